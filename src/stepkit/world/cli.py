"""`stepkit world`: render a synthetic world; `stepkit bench world`: time it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from stepkit.cli_common import console, fail


def _parse_size(text: str) -> tuple[int, int]:
    from stepkit.errors import ConfigError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 320x180") from None
    return w, h


def _parse_duration(text: Optional[str]):
    from stepkit.errors import ConfigError

    if text is None:
        return None
    try:
        parts = [float(v) for v in text.split("-")]
    except ValueError:
        raise ConfigError(f"--duration {text!r}: expected seconds (20) or a range (16-24)") from None
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return (parts[0], parts[1])
    raise ConfigError(f"--duration {text!r}: expected seconds (20) or a range (16-24)")


def world_cmd(
    out: Path = typer.Option(..., "--out", help="Folder to write videos/, graphs/ and summary.json into."),
    videos: int = typer.Option(20, "--videos", help="How many videos."),
    seed: int = typer.Option(0, "--seed", help="World seed; video i depends only on (seed, i)."),
    duration: Optional[str] = typer.Option(None, "--duration", help="Seconds per video, or a range such as 16-24 (default)."),
    fps: float = typer.Option(10.0, "--fps", help="Frames per second."),
    size: str = typer.Option("320x180", "--size", help="Frame size WIDTHxHEIGHT (even numbers)."),
    workers: int = typer.Option(2, "--workers", help="Rendering processes."),
) -> None:
    """Render a synthetic household world: videos with their exact scene graphs."""
    from stepkit.cli_common import progress
    from stepkit.errors import StepkitError
    from stepkit.world.api import render_world

    try:
        dims = _parse_size(size)
        dur = _parse_duration(duration)
        with progress() as bar:
            task = bar.add_task("rendering world", total=videos)
            summary = render_world(out, videos=videos, seed=seed, duration=dur, fps=fps, size=dims, workers=workers,
                                   on_video=lambda row: bar.advance(task))
    except StepkitError as exc:
        fail(exc)
    t = summary["totals"]
    console.print(f"{videos} videos, {t['num_frames']} frames, {t['relations']} relations, {t['actions']} actions, "
                  f"{t['cuts']} cuts in {summary['seconds']} s -> {out}", highlight=False)


def bench_world_cmd(
    videos: int = typer.Option(20, "--videos"),
    seed: int = typer.Option(0, "--seed"),
    workers: int = typer.Option(2, "--workers"),
    induce: bool = typer.Option(False, "--induce", help="Also run the world inducer on the videos and score it."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to render (a temporary folder by default)."),
) -> None:
    """Time `stepkit world` (frames/s); with --induce also the world perceiver and its graph accuracy."""
    import json
    import tempfile
    import time

    from stepkit.world.api import render_world

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out or tmp)
        t = time.perf_counter()
        summary = render_world(root, videos=videos, seed=seed, workers=workers)
        dt = time.perf_counter() - t
        frames = summary["totals"]["num_frames"]
        video_s = sum(v["duration"] for v in summary["videos"])
        console.print(f"world: {videos} videos, {frames} frames ({video_s:.0f} s of video) in {dt:.2f} s wall, "
                      f"{frames / dt:.0f} frames/s, {video_s / dt:.1f}x real time, workers={workers}", highlight=False)
        if induce:
            from stepkit.graph.metrics import count_matches, metrics_from_counts
            from stepkit.graph.serialize import load_graph
            from stepkit.induce.world import WorldInducer

            ind = WorldInducer()
            totals: dict[str, int] = {}
            t = time.perf_counter()
            for row in summary["videos"]:
                gt = load_graph(root / row["graph"])
                pred = ind.induce(root / row["video"], row["video_id"])
                for k, v in count_matches(pred, gt).items():
                    totals[k] = totals.get(k, 0) + v
            di = time.perf_counter() - t
            m = {k: (round(v, 4) if v is not None else None) for k, v in metrics_from_counts(totals).items()}
            console.print(f"world inducer: {video_s / di:.1f}x real time ({di:.1f} s for {video_s:.0f} s of video, 1 process)",
                          highlight=False)
            console.print(json.dumps({"metrics": m, "counts": totals}, sort_keys=True), highlight=False, soft_wrap=True)


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add `stepkit world` and `stepkit bench world`."""
    root.command("world")(world_cmd)
    bench.command("world")(bench_world_cmd)
