"""A small synthetic Q/R/A set (coloured shapes moving in a short mp4) for tests, demos and benchmarks."""

from __future__ import annotations

import os
import random
from pathlib import Path

from stepkit.data.record import QRARecord, RationaleStep

_COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40)}
_SHAPES = ["cube", "sphere", "cylinder"]


def render_video(path: str | os.PathLike, *, n_frames: int = 16, fps: int = 8, size: tuple[int, int] = (96, 64),
                 seed: int = 0) -> Path:
    """Write an mp4 of ``n_frames`` frames: a coloured square crossing a grey background."""
    import av
    import numpy as np

    rng = random.Random(seed)
    w, h = size
    colour = list(_COLOURS.values())[seed % len(_COLOURS)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with av.open(str(tmp), "w") as c:
        st = c.add_stream("mpeg4", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        y = rng.randint(0, h - 17)
        for i in range(n_frames):
            img = np.full((h, w, 3), 128, dtype=np.uint8)
            x = int((w - 16) * i / max(1, n_frames - 1))
            img[y:y + 16, x:x + 16] = colour
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    os.replace(tmp, path)
    return path


def synthetic_records(out_dir: str | os.PathLike, n_videos: int = 2, per_video: int = 2, seed: int = 0,
                      n_frames: int = 16, fps: int = 8) -> Path:
    """Render ``n_videos`` clips and write ``out_dir/qa.jsonl`` with ``per_video`` records each; returns out_dir."""
    from stepkit.io import atomic_write_text

    rng = random.Random(seed)
    out = Path(out_dir)
    lines = []
    names = list(_COLOURS)
    dur = n_frames / fps
    for v in range(n_videos):
        vid = f"vid{v}"
        render_video(out / "videos" / f"{vid}.mp4", n_frames=n_frames, fps=fps, seed=seed + v)
        colour = names[(seed + v) % len(names)]
        shape = rng.choice(_SHAPES)
        for q in range(per_video):
            t0 = 0.0 if q % 2 == 0 else dur / 2
            where = "left" if q % 2 == 0 else "right"
            rec = QRARecord(
                id=f"{vid}-q{q}", video_id=vid, steps=2, type="sequence",
                question=f"Which side of the room is the {colour} {shape} on?",
                answer=where, answer_sentence=f"The {colour} {shape} is on the {where} side.",
                options=["left", "right"] if q % 2 else None, answer_index=(1 if where == "right" else 0) if q % 2 else None,
                rationale=[RationaleStep(f"First, find the {colour} {shape}.", [f"o{v}"]),
                           RationaleStep(f"Then, the {shape} moves to the {where} of the room.", [f"r{v}"], t0, t0 + dur / 2)],
                video=f"videos/{vid}.mp4", window=(t0, t0 + dur / 2),
                provenance={"generator": "stepkit.train.synthetic", "seed": seed},
            )
            lines.append(rec.to_json())
    atomic_write_text(out / "qa.jsonl", "\n".join(lines) + "\n")
    return out
