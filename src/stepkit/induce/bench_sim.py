"""`stepkit bench induce --server sim`: videos per minute against simulated GPU servers.

Renders a few small world videos, starts ``servers`` :class:`~stepkit.models.sim_server.SimServer`
instances on loopback and runs the real ``stepkit induce --backend vlm`` path (runner, inducer,
OpenAI client, HTTP) over a folder of them at each in-flight setting. The servers run in child
processes, as real servers would. Each point reports the rate (videos / wall time, start and tail
included) and the servers' modelled capacity for this workload: ``60 * capacity * servers / (slot-seconds per video)`` videos per minute, the rate of a
server whose every sequence slot is always busy. Graphs are hashed and compared with the
sequential (in-flight 1) run.
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from stepkit.models.sim_server import SimServerConfig, SimServerProcess

BENCH_CONFIG: dict[str, Any] = {
    # small keyframes keep the client's CPU (PNG + JSON per request) far below the modelled GPU time
    "split": "uniform", "clip_seconds": 2.0, "keyframes_per_clip": 2, "image_size": 64, "max_objects": 4,
}


def render_videos(root: Path, distinct: int, seed: int = 0) -> list[Path]:
    """Render ``distinct`` small world videos with the ``stepkit world`` command's code."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "stepkit.cli", "world", "--out", str(root), "--videos", str(distinct),
           "--seed", str(seed), "--duration", "4", "--size", "96x64", "--workers", "1"]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    vids = sorted((root / "videos").glob("*.mp4"))
    if len(vids) != distinct:
        raise RuntimeError(f"stepkit world rendered {len(vids)} videos, expected {distinct}")
    return vids


def _folder(d: Path, sources: Sequence[Path], n: int) -> Path:
    """The folder ``d`` holding exactly ``n`` videos: links to the rendered ones under distinct names.

    Every point uses this one folder, so a video's path (recorded in its graph) is the same in all.
    """
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    for i in range(n):
        os.symlink(sources[i % len(sources)], d / f"v{i:04d}.mp4")
    return d


def run_point(videos: Path, servers: list[SimServerProcess], in_flight: int, config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Induce ``videos`` at ``in_flight`` requests over ``servers``; rates, capacity and graph hashes."""
    from stepkit.induce.runner import run_induce
    from stepkit.induce.vlm import VLMInducer

    for s in servers:
        s.reset_stats()
    inducer = VLMInducer(endpoint=[s.url for s in servers],
                         config={**config, "in_flight": in_flight, "videos_in_flight": max(1, in_flight)},
                         backend_options={"model_id": "openai:sim-video-llm"})
    finished: list[float] = []
    t0 = time.perf_counter()
    c0 = time.process_time()
    summary = run_induce(videos, out, inducer, on_video=lambda r: finished.append(time.perf_counter() - t0))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    n = summary["induced"]
    stats = [s.stats() for s in servers]
    slot_s = sum(st["slot_seconds"] for st in stats)
    cap = servers[0].config.capacity * len(servers)
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("v*.json"))}
    return {
        "servers": len(servers), "in_flight": in_flight, "videos": n, "failed": summary["failed"],
        "wall_s": wall, "client_cpu_s": cpu,
        "videos_per_min": 60.0 * n / wall if wall > 0 else 0.0,
        "utilization": slot_s / (cap * wall) if wall > 0 else 0.0,
        "capacity_videos_per_min": 60.0 * cap * n / slot_s if slot_s > 0 else None,
        "requests_per_video": summary["cost"]["requests_per_video"],
        "prompt_tokens_per_video": summary["cost"]["prompt_tokens_per_video"],
        "completion_tokens_per_video": summary["cost"]["completion_tokens_per_video"],
        "server_queue_s": sum(st["queue_seconds"] for st in stats),
        "busy_max": max(st["busy_max"] for st in stats),
        "server_prompt_tokens": sum(st["prompt_tokens"] for st in stats),
        "prefix_cached_tokens": sum(st["prefix_cached_tokens"] for st in stats),
        "prefix_cached_tokens_text_first": sum(st["prefix_cached_tokens_text_first"] for st in stats),
        "n_saved_prefill_tokens": sum(st["n_saved_prefill_tokens"] for st in stats),
        "graphs": hashes,
    }


def bench_sim(*, in_flight: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256), servers: Sequence[int] = (1, 2, 4),
              capacity: int = 64, time_scale: float = 1.0, seconds: float = 20.0, distinct: int = 8,
              server_config: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
              progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The sweep: in-flight 1 … 256 on one server, then ``servers`` servers at 64 in flight each.

    Each point induces about ``seconds`` worth of videos at the rate it is expected to reach
    (from the in-flight 1 point), at least 4 (and at least 2 per in-flight request / 16).
    """
    cfg = {**BENCH_CONFIG, **(config or {})}
    scfg = {"capacity": capacity, "time_scale": time_scale, **(server_config or {})}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stepkit-bench-sim-") as tmp:
        root = Path(tmp)
        sources = render_videos(root / "world", distinct)
        sims = [SimServerProcess(SimServerConfig(**scfg)) for _ in range(max(servers))]
        try:
            base_rate: float | None = None
            reference: dict[str, str] | None = None
            plan = [(1, k) for k in in_flight] + [(s, capacity * s) for s in servers if s > 1]
            if 1 not in in_flight:
                plan.insert(0, (1, 1))
            for i, (n_servers, k) in enumerate(plan):
                if base_rate is None:
                    n = 3
                else:
                    # expected rate: linear in in-flight until the servers' slots are full
                    expect = base_rate * min(k, 0.9 * capacity * n_servers)
                    n = max(4, k // 8, int(expect / 60.0 * seconds))
                vids = _folder(root / "videos", sources, n)
                row = run_point(vids, sims[:n_servers], k, cfg, root / f"out{i}")
                if base_rate is None and n_servers == 1 and k == 1:
                    base_rate = row["videos_per_min"]
                if reference is None:
                    reference = row["graphs"]
                common = set(reference) & set(row["graphs"])
                row["graphs_identical"] = all(reference[g] == row["graphs"][g] for g in common) and bool(common)
                row.pop("graphs")
                rows.append(row)
                if progress:
                    progress(row)
        finally:
            for s in sims:
                s.close()
    return {"rows": rows, "server": {**SimServerConfig(**scfg).__dict__}, "config": cfg,
            "cpus": os.cpu_count(), "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "python": platform.python_version()}


def sim_markdown(result: dict[str, Any]) -> str:
    """The sweep as a Markdown table plus the checks of issue 16."""
    rows = result["rows"]
    srv = result["server"]
    lines = [
        f"simulated server: capacity {srv['capacity']} sequences, overhead {srv['overhead_s']} s, prefill "
        f"{srv['prefill_s_per_token']} s/token, decode {srv['decode_s_per_token']} s/token, {srv['image_tokens']} tokens "
        f"per image, time scale {srv['time_scale']}; {result['cpus']} CPUs, load {result['load'] or 0:.1f} at the end",
        "",
        "| servers | in flight | videos | wall s | client CPU s | videos/min | modelled capacity videos/min | "
        "of capacity | requests/video | prompt tokens/video | completion tokens/video | graphs = sequential |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cap = r["capacity_videos_per_min"] or 0.0
        lines.append(
            f"| {r['servers']} | {r['in_flight']} | {r['videos']} | {r['wall_s']:.1f} | {r['client_cpu_s']:.1f} | "
            f"{r['videos_per_min']:.1f} | {cap:.1f} | {r['videos_per_min'] / cap if cap else 0:.0%} | "
            f"{r['requests_per_video']:.1f} | {r['prompt_tokens_per_video']:.0f} | {r['completion_tokens_per_video']:.0f} | "
            f"{'yes' if r['graphs_identical'] else 'NO'} |")
    one = next((r for r in rows if r["servers"] == 1 and r["in_flight"] == 1), None)
    at64 = next((r for r in rows if r["servers"] == 1 and r["in_flight"] == 64), None)
    two = next((r for r in rows if r["servers"] == 2), None)
    lines.append("")
    if one and at64:
        lines.append(f"- in-flight 64 / in-flight 1: {at64['videos_per_min'] / one['videos_per_min']:.1f}x; in-flight 64 "
                     f"at {at64['videos_per_min'] / at64['capacity_videos_per_min']:.0%} of the modelled capacity")
    if at64 and two:
        lines.append(f"- 2 servers (in flight 128) / 1 server (in flight 64): "
                     f"{two['videos_per_min'] / at64['videos_per_min']:.2f}x")
    if one and one["server_prompt_tokens"]:
        p = one["server_prompt_tokens"]
        lines.append(f"- request shape, per video (in-flight 1 point, distinct videos): a prefix cache would serve "
                     f"{one['prefix_cached_tokens'] / p:.0%} of the prompt tokens with the image first, "
                     f"{one['prefix_cached_tokens_text_first'] / p:.0%} were the question first; n samples in one request "
                     f"spare {one['n_saved_prefill_tokens'] / one['videos']:,.0f} prompt tokens of prefill per video "
                     f"({one['n_saved_prefill_tokens'] / (p + one['n_saved_prefill_tokens']):.0%} of what one request "
                     "per sample would prefill)")
    lines.append(f"- graphs byte-identical to the sequential run at every point: "
                 f"{'yes' if all(r['graphs_identical'] for r in rows) else 'NO'}")
    return "\n".join(lines) + "\n"
