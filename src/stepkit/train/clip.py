"""Decode the frames of a record's clip with PyAV: uniform by count, or by rate, inside a time window."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from stepkit.errors import VideoError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


@dataclass
class Clip:
    """Sampled frames (N, H, W, 3) uint8 with their timestamps (s), source frame indices and rate."""

    frames: np.ndarray
    times: list[float]
    indices: list[int]
    fps: float
    window_frames: int = 0
    meta: dict = field(default_factory=dict)


def sample_times(t0: float, t1: float, *, num_frames: int | None, fps: float | None, max_frames: int,
                 multiple_of: int = 1) -> list[float]:
    """Timestamps to sample in [t0, t1]: ``num_frames`` uniform (segment centres), or ``fps`` per second.

    The count is capped at ``max_frames`` and rounded up to a multiple of ``multiple_of`` (>= 1 frame).
    """
    span = max(t1 - t0, 1e-6)
    if fps is not None:
        n = max(1, int(math.floor(span * fps + 1e-9)))
    else:
        n = max(1, int(num_frames or 1))
    n = min(n, max_frames)
    if multiple_of > 1 and n % multiple_of:
        n += multiple_of - n % multiple_of
    return [t0 + (i + 0.5) * span / n for i in range(n)]


@lru_cache(maxsize=64)
def _probe(path: str, mtime: float) -> tuple[float, float, int]:
    """(fps, duration s, frame count) of a video file."""
    import av

    try:
        with av.open(path) as c:
            st = c.streams.video[0]
            fps = float(st.average_rate or st.guessed_rate or 25.0)
            if st.duration is not None and st.time_base is not None:
                dur = float(st.duration * st.time_base)
            elif c.duration is not None:
                dur = c.duration / 1_000_000
            else:
                dur = (st.frames or 0) / fps
            n = st.frames or int(round(dur * fps))
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise VideoError(f"{path}: cannot read video ({exc})") from None
    return fps, dur, n


def _resize(img, max_side: int | None):
    if max_side and max(img.width, img.height) > max_side:
        scale = max_side / max(img.width, img.height)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    return img


def read_clip(path: str | os.PathLike, window: tuple[float, float] | None = None, *, num_frames: int | None = 8,
              fps: float | None = None, max_frames: int = 32, max_side: int | None = 448,
              multiple_of: int = 1) -> Clip:
    """Decode the frames nearest to the sampling times of ``window`` (whole video when None)."""
    import av
    import numpy as np

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such video file")
    src_fps, duration, n_total = _probe(path, os.path.getmtime(path))
    t0, t1 = (0.0, duration) if window is None else (max(0.0, float(window[0])), float(window[1]))
    if duration > 0:
        t1 = min(t1, duration)
    if t1 <= t0:
        raise VideoError(f"{path}: empty window [{t0:.3f}, {t1:.3f}] (video lasts {duration:.3f} s)")
    want = sample_times(t0, t1, num_frames=num_frames, fps=fps, max_frames=max_frames, multiple_of=multiple_of)
    picked: list = [None] * len(want)
    best = [math.inf] * len(want)
    pts_of: list[float] = [0.0] * len(want)
    try:
        with av.open(path) as c:
            st = c.streams.video[0]
            tb = float(st.time_base)
            if t0 > 0.5:
                c.seek(int(max(0.0, t0 - 0.5) / tb), stream=st, backward=True)
            for frame in c.decode(st):
                ts = float(frame.pts * tb) if frame.pts is not None else float(frame.time or 0.0)
                if ts > want[-1] + 1.0 / src_fps:
                    break
                for i, w in enumerate(want):
                    d = abs(ts - w)
                    if d < best[i]:
                        best[i] = d
                        picked[i] = frame
                        pts_of[i] = ts
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: decoding failed ({exc})") from None
    if any(p is None for p in picked):
        raise VideoError(f"{path}: no frames decoded in window [{t0:.3f}, {t1:.3f}]")
    cache: dict[int, np.ndarray] = {}
    frames = []
    for fr in picked:
        key = id(fr)
        if key not in cache:
            cache[key] = np.asarray(_resize(fr.to_image(), max_side).convert("RGB"), dtype=np.uint8)
        frames.append(cache[key])
    indices = [int(round(t * src_fps)) for t in pts_of]
    return Clip(frames=np.stack(frames), times=pts_of, indices=indices, fps=src_fps,
                window_frames=max(1, int(round((t1 - t0) * src_fps))),
                meta={"duration": duration, "total_frames": n_total, "window": [t0, t1]})
