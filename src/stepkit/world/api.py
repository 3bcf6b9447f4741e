"""Public entry points: simulate one world video, or render a whole world folder."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from stepkit.errors import ConfigError
from stepkit.graph.types import STSG

WORLD_VERSION = "1"
DEFAULT_SIZE = (320, 180)
DEFAULT_FPS = 10.0
DEFAULT_DURATION = (16.0, 24.0)  # seconds; each video draws its length from this range


def video_seed(seed: int, index: int) -> int:
    """The seed of video ``index`` of a world rendered with ``seed`` (independent of worker count)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def video_name(seed: int, index: int) -> str:
    """The id (and file stem) of video ``index`` of world ``seed``."""
    return f"world-s{seed}-{index:03d}"


MAX_SIDE = 3840


def _check(duration: float | tuple[float, float] | None, fps: float, size: tuple[int, int]) -> None:
    W, H = size
    if W < 96 or H < 64 or W % 2 or H % 2:
        raise ConfigError(f"size {W}x{H}: width and height must be even and at least 96x64")
    if W > MAX_SIDE or H > MAX_SIDE:  # frames are held whole in memory: 100000x100000 is 30 GB each
        raise ConfigError(f"size {W}x{H}: width and height must be at most {MAX_SIDE} pixels")
    if not 2 <= fps <= 60:
        raise ConfigError(f"fps {fps}: must lie between 2 and 60")
    lo, hi = _duration_range(duration)
    if not 3 <= lo <= hi <= 600:
        raise ConfigError(f"duration {duration}: must lie between 3 and 600 seconds")


def _duration_range(duration) -> tuple[float, float]:
    if duration is None:
        return DEFAULT_DURATION
    if isinstance(duration, (tuple, list)):
        return float(duration[0]), float(duration[1])
    return float(duration), float(duration)


def simulate(seed: int, *, duration: float | tuple[float, float] | None = None, fps: float = DEFAULT_FPS,
             size: tuple[int, int] = DEFAULT_SIZE, video_id: str | None = None) -> tuple[STSG, Iterator[np.ndarray]]:
    """One world video: its ground-truth STSG and a generator of its HxWx3 uint8 RGB frames."""
    from stepkit.world.groundtruth import build_graph
    from stepkit.world.render import iter_frames
    from stepkit.world.sim import plan_world

    size = (int(size[0]), int(size[1]))
    _check(duration, fps, size)
    lo, hi = _duration_range(duration)
    rng = np.random.default_rng(seed)
    dur = round(float(rng.uniform(lo, hi)), 1) if hi > lo else lo
    tl = plan_world(int(rng.integers(2**31)), duration=dur, fps=fps, size=size)
    meta = {"generator": "stepkit.world", "world_version": WORLD_VERSION, "seed": int(seed),
            "views": [[round(x, 3), round(s, 4)] for x, s in tl.views]}
    graph = build_graph(tl, size, video_id or f"world-{seed}", meta)
    return graph, iter_frames(tl, size)


def render_video(out_dir: str | os.PathLike, seed: int, index: int, *, duration=None, fps: float = DEFAULT_FPS,
                 size: tuple[int, int] = DEFAULT_SIZE) -> dict[str, Any]:
    """Render video ``index`` of world ``seed`` into ``out_dir`` (videos/ and graphs/); returns its summary row."""
    from stepkit.graph.serialize import save_graph
    from stepkit.world.render import encode_mp4

    t = time.perf_counter()
    out = Path(out_dir)
    name = video_name(seed, index)
    graph, frames = simulate(video_seed(seed, index), duration=duration, fps=fps, size=size, video_id=name)
    graph.video = f"../videos/{name}.mp4"
    graph.meta["index"] = index
    n = encode_mp4(frames, out / "videos" / f"{name}.mp4", fps, size)
    assert n == graph.num_frames
    save_graph(graph, out / "graphs" / f"{name}.json")
    return {"video_id": name, "video": f"videos/{name}.mp4", "graph": f"graphs/{name}.json",
            "duration": graph.duration, "num_frames": n, "people": sum(o.label == "person" for o in graph.objects),
            "objects": len(graph.objects), "relations": len(graph.relations), "actions": len(graph.actions),
            "cuts": len(graph.cuts()), "seconds": round(time.perf_counter() - t, 3)}


def _render_one(args) -> dict[str, Any]:
    out_dir, seed, index, duration, fps, size = args
    return render_video(out_dir, seed, index, duration=duration, fps=fps, size=size)


def render_world(out_dir: str | os.PathLike, videos: int = 20, seed: int = 0, *, duration=None,
                 fps: float = DEFAULT_FPS, size: tuple[int, int] = DEFAULT_SIZE, workers: int = 2,
                 on_video: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Render ``videos`` world videos with their ground-truth graphs into ``out_dir``; returns the summary.

    Writes ``videos/*.mp4``, ``graphs/*.json`` and ``summary.json``. Video ``i`` depends only on
    ``(seed, i)``, so the result does not depend on ``workers``.
    """
    from stepkit.io import atomic_write_json

    size = (int(size[0]), int(size[1]))
    _check(duration, fps, size)
    if videos < 0:
        raise ConfigError(f"videos {videos}: must be zero or more")
    t = time.perf_counter()
    jobs = [(str(out_dir), int(seed), i, duration, float(fps), size) for i in range(videos)]
    rows: list[dict[str, Any]] = []
    if workers > 1 and videos > 1:
        from stepkit.parallel import pool_context

        with pool_context().Pool(min(workers, videos)) as pool:
            for row in pool.imap_unordered(_render_one, jobs):
                rows.append(row)
                if on_video:
                    on_video(row)
    else:
        for j in jobs:
            row = _render_one(j)
            rows.append(row)
            if on_video:
                on_video(row)
    rows.sort(key=lambda r: r["video_id"])
    summary = {
        "config": {"videos": videos, "seed": seed, "duration": list(_duration_range(duration)), "fps": fps,
                   "size": list(size), "world_version": WORLD_VERSION},
        "videos": [{k: v for k, v in r.items() if k != "seconds"} for r in rows],
        "totals": {k: sum(r[k] for r in rows) for k in ("num_frames", "relations", "actions", "cuts")},
        "seconds": round(time.perf_counter() - t, 2),
    }
    atomic_write_json(Path(out_dir) / "summary.json", summary)
    return summary
