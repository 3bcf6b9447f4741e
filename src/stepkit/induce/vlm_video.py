"""Visual splitting for the Video-LLM inducer: :func:`stepkit.video.split_video` → clips of keyframes."""

from __future__ import annotations

import os
from typing import Any

from stepkit.induce.vlm_config import VLMInducerConfig


def split_video(path: str | os.PathLike, cfg: VLMInducerConfig) -> tuple[dict[str, Any], list]:
    """Video facts (``fps``, ``duration``, ``num_frames``, ``width``, ``height``) and the clips to parse."""
    from stepkit.induce.vlm import ClipFrames, Keyframe
    from stepkit.video import split_video as _split

    opts: dict[str, Any] = {"mode": cfg.split, "keyframes_per_clip": cfg.keyframes_per_clip, "seed": cfg.seed}
    if cfg.scene_threshold is not None:
        opts["threshold"] = cfg.scene_threshold
    if cfg.min_scene_len is not None:
        opts["min_scene_len"] = cfg.min_scene_len
    if cfg.clip_seconds is not None:
        opts["clip_seconds"] = cfg.clip_seconds
    sp = _split(path, load_frames=True, **opts)
    clips = sp.clips[: cfg.max_clips] if cfg.max_clips is not None else sp.clips
    out = [
        ClipFrames(float(c.t0), float(c.t1), [Keyframe(float(k.t), k.image, int(k.index)) for k in c.keyframes if k.image is not None])
        for c in clips
    ]
    info = sp.info
    return ({"fps": float(info.fps), "duration": float(max(info.duration, max((c.t1 for c in out), default=0.0))),
             "num_frames": int(info.num_frames), "width": int(info.width), "height": int(info.height)}, out)
