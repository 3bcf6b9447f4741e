"""Visual splitting: scene cuts (PySceneDetect's content detector), then keyframes per clip.

Two modes: ``scenes`` (cuts where the picture changes — PySceneDetect's content and adaptive
detectors — keyframes by k-means over per-frame colour
histograms and tiny thumbnails, taking the frame nearest each centre) and ``uniform`` (fixed-length
clips with evenly spaced keyframes; the paper's ablation). Deterministic for a given ``seed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stepkit.errors import ConfigError
from stepkit.video.decode import VideoInfo, _uniform_indices, iter_frames, probe, read_frames_at

SPLIT_MODES = ("scenes", "uniform")
# Frames are shrunk to this width for cut detection and features (PySceneDetect downscales too).
_THUMB_WIDTH = 160


@dataclass
class Keyframe:
    """A representative frame of a clip; ``image`` is HxWx3 uint8 RGB when frames were loaded."""

    index: int
    t: float
    image: np.ndarray | None = None


@dataclass
class VideoClip:
    """A shot ``[t0, t1]`` covering frames ``frame0..frame1`` (inclusive), with its keyframes."""

    id: str
    t0: float
    t1: float
    frame0: int
    frame1: int
    keyframes: list[Keyframe] = field(default_factory=list)


@dataclass
class Split:
    """A video cut into clips, with the settings used."""

    info: VideoInfo
    clips: list[VideoClip]
    config: dict[str, Any]

    def cuts(self) -> list[float]:
        """Times where a new clip starts (all but the first)."""
        return [c.t0 for c in self.clips[1:]]


DETECTORS = ("combined", "content", "adaptive")


class CutDetector:
    """Feeds frames one by one to PySceneDetect detectors; returns the cut frame indices.

    ``content``: ContentDetector, a cut where the HSV content score ≥ ``threshold`` (hard cuts).
    ``adaptive``: AdaptiveDetector, a cut where the score ≥ ``soft_threshold`` and ≥
    ``adaptive_ratio`` × its neighbours' average (soft cuts: zooms, a new view of the same scene).
    ``combined`` (default): the union of both, cuts closer than ``min_scene_len`` merged.
    """

    def __init__(self, fps: float, threshold: float = 27.0, min_scene_len: float = 0.5, *,
                 detector: str = "combined", soft_threshold: float = 6.0, adaptive_ratio: float = 4.0):
        from scenedetect import AdaptiveDetector, ContentDetector

        if detector not in DETECTORS:
            raise ConfigError(f"unknown cut detector {detector!r}; choose one of {', '.join(DETECTORS)}")
        self.fps = float(fps)
        self.min_frames = max(1, int(round(float(min_scene_len) * self.fps)))
        self._detectors = []
        if detector in ("content", "combined"):
            self._detectors.append(ContentDetector(threshold=float(threshold), min_scene_len=float(min_scene_len)))
        if detector in ("adaptive", "combined"):
            self._detectors.append(AdaptiveDetector(adaptive_threshold=float(adaptive_ratio),
                                                    min_scene_len=float(min_scene_len),
                                                    min_content_val=float(soft_threshold)))
        self._cuts: list[int] = []
        self._last = -1

    def push(self, index: int, bgr: np.ndarray) -> None:
        """Process frame ``index`` (a BGR uint8 image, any size)."""
        from scenedetect import FrameTimecode

        tc = FrameTimecode(int(index), fps=self.fps)
        for d in self._detectors:
            self._cuts += [int(c.frame_num) for c in d.process_frame(tc, bgr)]
        self._last = index

    def finish(self) -> list[int]:
        """Indices of the first frame of each new scene, sorted."""
        from scenedetect import FrameTimecode

        if self._last >= 0:
            tc = FrameTimecode(int(self._last), fps=self.fps)
            for d in self._detectors:
                self._cuts += [int(c.frame_num) for c in d.post_process(tc)]
        merged: list[int] = []
        for c in sorted({c for c in self._cuts if 0 < c <= self._last}):
            if not merged or c - merged[-1] >= self.min_frames:
                merged.append(c)
        return merged


def frame_feature(rgb: np.ndarray) -> np.ndarray:
    """A small descriptor of a frame: HSV colour histogram plus an 8x8 grey thumbnail."""
    import cv2

    small = cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    hist /= max(float(hist.sum()), 1.0)
    grey = cv2.resize(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), (8, 8), interpolation=cv2.INTER_AREA)
    return np.concatenate([hist * 4.0, grey.ravel().astype(np.float64) / 255.0 / 8.0])


def kmeans_representatives(features: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> list[int]:
    """Rows of ``features`` nearest each of ``k`` k-means centres (k-means++ seeded by ``seed``), sorted."""
    n = len(features)
    if n == 0 or k <= 0:
        return []
    if k >= n:
        return list(range(n))
    x = np.asarray(features, dtype=np.float64)
    rng = np.random.default_rng(seed)
    centres = [x[int(rng.integers(n))]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        if total <= 0:
            break
        centres.append(x[int(rng.choice(n, p=d2 / total))])
    c = np.array(centres)
    for _ in range(iters):
        labels = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.array([x[labels == j].mean(0) if np.any(labels == j) else c[j] for j in range(len(c))])
        if np.allclose(new, c):
            break
        c = new
    picks = {int(np.argmin(((x - cj) ** 2).sum(-1))) for cj in c}
    return sorted(picks)


def clips_from_cuts(cuts: list[int], times: list[float], duration: float) -> list[tuple[int, int, float, float]]:
    """(frame0, frame1, t0, t1) per clip, given cut indices and every frame's timestamp."""
    n = len(times)
    bounds = [0] + [c for c in cuts if 0 < c < n] + [n]
    out = []
    for a, b in zip(bounds, bounds[1:]):
        if b <= a:
            continue
        t0 = 0.0 if a == 0 else times[a]
        t1 = duration if b == n else times[b]
        out.append((a, b - 1, t0, max(t1, t0)))
    return out


def split_video(
    path: str | os.PathLike,
    *,
    mode: str = "scenes",
    threshold: float = 27.0,
    min_scene_len: float = 0.5,
    detector: str = "combined",
    soft_threshold: float = 6.0,
    adaptive_ratio: float = 4.0,
    keyframes_per_clip: int = 3,
    clip_seconds: float = 4.0,
    seed: int = 0,
    load_frames: bool = True,
    frame_width: int | None = None,
) -> Split:
    """Cut ``path`` into clips and choose keyframes (see the module doc for the two modes).

    ``detector``, ``threshold``, ``soft_threshold`` and ``adaptive_ratio`` choose how cuts are found
    (see :class:`CutDetector`; ``threshold`` is ContentDetector's, 27 by default).
    With ``load_frames`` the keyframes carry their RGB images (rescaled to ``frame_width`` when given).
    """
    path = Path(path)
    if mode not in SPLIT_MODES:
        raise ConfigError(f"unknown split mode {mode!r}; choose one of {', '.join(SPLIT_MODES)}")
    if keyframes_per_clip < 1:
        raise ConfigError(f"keyframes_per_clip must be at least 1, got {keyframes_per_clip}")
    if mode == "uniform" and clip_seconds <= 0:
        raise ConfigError(f"clip_seconds must be positive, got {clip_seconds}")
    config = {"mode": mode, "keyframes_per_clip": keyframes_per_clip, "seed": seed}
    info = probe(path)
    clips: list[VideoClip] = []
    if mode == "scenes":
        config.update(threshold=threshold, min_scene_len=min_scene_len, detector=detector)
        if detector != "content":
            config.update(soft_threshold=soft_threshold, adaptive_ratio=adaptive_ratio)
        cutter = CutDetector(info.fps, threshold, min_scene_len, detector=detector,
                             soft_threshold=soft_threshold, adaptive_ratio=adaptive_ratio)
        times: list[float] = []
        feats: list[np.ndarray] = []
        for fr in iter_frames(path, width=min(_THUMB_WIDTH, info.width), fmt="bgr24"):
            cutter.push(fr.index, fr.image)
            times.append(fr.t)
            feats.append(frame_feature(fr.image[:, :, ::-1]))
        spans = clips_from_cuts(cutter.finish(), times, max(info.duration, times[-1]))
        allf = np.array(feats)
        for i, (f0, f1, t0, t1) in enumerate(spans):
            picks = kmeans_representatives(allf[f0 : f1 + 1], keyframes_per_clip, seed=seed + i)
            kfs = [Keyframe(index=f0 + p, t=times[f0 + p]) for p in picks]
            clips.append(VideoClip(id=f"c{i + 1}", t0=t0, t1=t1, frame0=f0, frame1=f1, keyframes=kfs))
    else:
        config.update(clip_seconds=clip_seconds)
        n = max(info.num_frames, 1)
        per = max(1, int(round(clip_seconds * info.fps)))
        for i, f0 in enumerate(range(0, n, per)):
            f1 = min(f0 + per, n) - 1
            t0 = f0 / info.fps
            t1 = min(info.duration, (f1 + 1) / info.fps)
            kfs = [Keyframe(index=j, t=j / info.fps) for j in _uniform_indices(f0, f1, keyframes_per_clip)]
            clips.append(VideoClip(id=f"c{i + 1}", t0=t0, t1=max(t1, t0), frame0=f0, frame1=f1, keyframes=kfs))
    if load_frames:
        wanted = [k.index for c in clips for k in c.keyframes]
        images = read_frames_at(path, wanted, width=frame_width)
        for c in clips:
            for k in c.keyframes:
                k.image, k.t = images[k.index].image, images[k.index].t
    return Split(info=info, clips=clips, config=config)
