"""Small videos written with PyAV for the video and induce tests (imported by both)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10, faststart: bool = False) -> Path:
    """Encode RGB frames as H.264 MP4."""
    import av

    h, w = frames[0].shape[:2]
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for img in frames:
            for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return path


def grey_ramp(n: int = 20, w: int = 64, h: int = 48) -> list[np.ndarray]:
    """Frame i is flat grey of level 10*i + 20 (so a frame's content tells its index)."""
    return [np.full((h, w, 3), 10 * i + 20, np.uint8) for i in range(n)]


def three_shots(fps: int = 10, seconds: float = 2.0, w: int = 96, h: int = 64) -> list[np.ndarray]:
    """Three shots of different colour, each with a small moving square: cuts at 2 s and 4 s."""
    frames = []
    n = int(fps * seconds)
    for colour in ((220, 30, 30), (20, 120, 20), (40, 40, 250)):
        for i in range(n):
            img = np.zeros((h, w, 3), np.uint8)
            img[:] = colour
            x = 4 + 3 * i
            img[20:36, x : x + 12] = 255
            frames.append(img)
    return frames




def moving_blocks(seconds: float = 8.0, fps: int = 10) -> list[np.ndarray]:
    """Two textured blocks on a noisy background slide towards each other during 1–5 s, then stop."""
    rng = np.random.default_rng(0)
    bg = rng.integers(60, 120, (120, 160, 3)).astype(np.uint8)
    tex = rng.integers(0, 255, (30, 20, 3)).astype(np.uint8)
    frames = []
    for i in range(int(seconds * fps)):
        a = min(max(i / fps - 1.0, 0.0), 4.0) / 4.0
        xa, xb = int(10 + 50 * a), int(130 - 50 * a)
        img = bg.copy()
        img[50:80, xa : xa + 20] = tex
        img[50:80, xb : xb + 20] = tex[:, ::-1]
        frames.append(img)
    return frames

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
