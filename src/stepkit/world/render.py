"""Drawing world frames (Pillow, flat colours from the fixed palette) and encoding them (PyAV, H.264)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from stepkit.world import vocab as V
from stepkit.world.sim import Timeline, _furn, head_center, item_box

_C = V.PALETTE


class _Canvas:
    """World-to-pixel mapping for one camera view plus Pillow drawing helpers."""

    def __init__(self, img, W: int, H: int, x_left: float, s: float):
        from PIL import ImageDraw

        self.d = ImageDraw.Draw(img)
        self.W, self.H, self.xl, self.s = W, H, x_left, s
        self.base = H - int(round(V.FLOOR_DEPTH * s))

    def px(self, x: float) -> int:
        return int(round((x - self.xl) * self.s))

    def py(self, y: float) -> int:
        return self.base - int(round(y * self.s))

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: str) -> None:
        a, b = self.px(min(x0, x1)), self.px(max(x0, x1))
        top, bot = self.py(max(y0, y1)), self.py(min(y0, y1))
        if b > a and bot > top:
            self.d.rectangle([a, top, b - 1, bot - 1], fill=_C[color])

    def ellipse(self, x0: float, y0: float, x1: float, y1: float, color: str) -> None:
        a, b = self.px(x0), self.px(x1)
        top, bot = self.py(y1), self.py(y0)
        if b > a and bot > top:
            self.d.ellipse([a, top, b - 1, bot - 1], fill=_C[color])

    def line(self, x0: float, y0: float, x1: float, y1: float, color: str, width: int) -> None:
        self.d.line([(self.px(x0), self.py(y0)), (self.px(x1), self.py(y1))], fill=_C[color], width=width)


def _draw_furniture(c: _Canvas, tl: Timeline, f: int) -> None:
    for F in tl.furniture:
        m = F.material
        x0, x1 = F.x0, F.x1
        if F.label == "table":
            c.rect(x0, 24, x1, 28, m)
            c.rect(x0 + 1, 0, x0 + 4, 24, m)
            c.rect(x1 - 4, 0, x1 - 1, 24, m)
        elif F.label == "chair":
            back = (x0, x0 + 2.5) if F.side < 0 else (x1 - 2.5, x1)
            front = (x1 - 2.5, x1) if F.side < 0 else (x0, x0 + 2.5)
            c.rect(back[0], 0, back[1], 44, m)
            c.rect(x0, 16, x1, 19, m)
            c.rect(front[0], 0, front[1], 16, m)
        elif F.label == "shelf":
            c.rect(x0, 0, x0 + 2.5, 60, m)
            c.rect(x1 - 2.5, 0, x1, 60, m)
            for y in (0.0, 30.0, 57.5):
                c.rect(x0, y, x1, y + 2.5, m)
        elif F.label == "bed":
            c.rect(x0, 4, x1, 20, m)
            c.rect(x0, 0, x0 + 3, 4, m)
            c.rect(x1 - 3, 0, x1, 4, m)
            if F.side > 0:
                c.rect(x1 - 4, 0, x1, 34, m)
            else:
                c.rect(x0, 0, x0 + 4, 34, m)
        elif F.label == "door":
            o = float(tl.door[F.id][f])
            c.rect(x0, 0, x1, 70, "wood")
            c.rect(x0 + 2, 0, x1 - 2, 68, "doorway")
            leaf = 22.0 * (1 - o) + 5.0 * o
            c.rect(x0 + 2, 0, x0 + 2 + leaf, 68, "wood")
            if o < 0.5:
                c.rect(x0 + 2 + leaf - 5, 32, x0 + 2 + leaf - 3, 36, "doorway")


def _draw_person(c: _Canvas, tl: Timeline, pid: str, color: str, f: int) -> None:
    pose = tl.pose[pid][f]
    hx, hy = head_center(tl, pid, f)
    fc = int(tl.facing[pid][f])
    r = V.HEAD_R
    if pose == "lie":
        bed = _furn(tl, tl.seat[pid][f])
        d = -1 if bed.side > 0 else 1
        c.rect(hx + d * (r + 0.5), 21, hx + d * 28, 32, color)
        c.rect(hx + d * 28, 22, hx + d * 50, 30, "pants")
    elif pose == "sit":
        c.rect(hx - 6, 18, hx + 6, hy - 6, color)
        c.rect(hx - 4 * fc, 15, hx + fc * 14, 21, "pants")
        c.rect(hx + fc * 14 - fc * 5, 0, hx + fc * 14, 21, "pants")
    else:
        hip = hy - 28
        c.rect(hx - 6, hip, hx + 6, hy - 6, color)
        step = 2.0 if (tl.moving[pid][f] and f % 4 < 2) else (-2.0 if tl.moving[pid][f] else 0.0)
        c.rect(hx - 5.5 + step, 0, hx - 1 + step, hip, "pants")
        c.rect(hx + 1 - step, 0, hx + 5.5 - step, hip, "pants")
    c.ellipse(hx - r, hy - r, hx + r, hy + r, "skin")


def _gaze_end(tl: Timeline, target: str, f: int, start: tuple[float, float]) -> tuple[float, float]:
    """Where a gaze line toward ``target`` ends: inside furniture (below any surface), else at the box edge."""
    box = entity_box(tl, target, f, head_only=True)
    if target not in tl.px and target not in tl.sup:
        return ((box[0] + box[2]) / 2, box[1] + 0.4 * (box[3] - box[1]))
    tx, ty = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    sx, sy = start
    # step back from the centre until outside the box (ends just at its edge)
    t = 1.0
    for _ in range(60):
        x, y = sx + (tx - sx) * t, sy + (ty - sy) * t
        if not (box[0] - 1 <= x <= box[2] + 1 and box[1] - 1 <= y <= box[3] + 1):
            break
        t -= 0.02
    return sx + (tx - sx) * t, sy + (ty - sy) * t


def entity_box(tl: Timeline, eid: str, f: int, head_only: bool = False) -> tuple[float, float, float, float]:
    """World box of any entity at frame ``f`` (a person's head only when ``head_only``)."""
    from stepkit.world.sim import furniture_box, person_box

    if eid in tl.px:
        if head_only:
            hx, hy = head_center(tl, eid, f)
            return (hx - V.HEAD_R, hy - V.HEAD_R, hx + V.HEAD_R, hy + V.HEAD_R)
        return person_box(tl, eid, f)
    if eid in tl.sup:
        return item_box(tl, eid, f)
    return furniture_box(_furn(tl, eid))


def _draw_item(c: _Canvas, tl: Timeline, it, f: int) -> None:
    """A small object: its colour inside a 1-pixel dark ring."""
    x0, y0, x1, y1 = item_box(tl, it.id, f)
    a, b, top, bot = c.px(x0), c.px(x1), c.py(y1), c.py(y0)
    if b > a and bot > top:
        shape = c.d.ellipse if it.label == "pillow" else c.d.rectangle
        shape([a - 1, top - 1, b, bot], fill=_C["outline"])
        shape([a, top, b - 1, bot - 1], fill=_C[it.color])


def draw_frame(tl: Timeline, f: int, size: tuple[int, int]) -> np.ndarray:
    """Frame ``f`` as an HxWx3 uint8 RGB array."""
    from PIL import Image

    W, H = size
    x_left, s = tl.views[tl.shot_of(f)]
    img = Image.new("RGB", (W, H), _C["wall"])
    c = _Canvas(img, W, H, x_left, s)
    c.d.rectangle([0, c.base, W - 1, H - 1], fill=_C["floor"])
    _draw_furniture(c, tl, f)
    lw = max(3, int(round(2.0 * s)))
    for p in tl.persons:
        g = tl.gaze[p.id][f]
        if g is not None:
            hx, hy = head_center(tl, p.id, f)
            fc = int(tl.facing[p.id][f])
            tb = entity_box(tl, g, f, head_only=True)
            tx = (tb[0] + tb[2]) / 2
            fc = (1 if tx >= hx else -1) if tl.pose[p.id][f] == "lie" or abs(tx - hx) > 8 else fc
            start = (hx + fc * V.GAZE_START, hy + 1)
            end = _gaze_end(tl, g, f, start)
            c.line(start[0], start[1], end[0], end[1], "gaze", lw)
    # resting items (boxes before their contents), then people, then what people hold or throw
    def key(it) -> int:
        sp = tl.sup[it.id][f]
        return {"on": 1 if it.label == "box" else 0, "in": 2}.get(sp[0], 3)

    items = sorted(tl.items, key=key)
    resting = [it for it in items if key(it) < 3]
    for it in resting:
        _draw_item(c, tl, it, f)
    for p in tl.persons:
        _draw_person(c, tl, p.id, p.color, f)
    aw = max(2, int(round(1.8 * s)))
    for it in items[len(resting):]:
        sp = tl.sup[it.id][f]
        if sp[0] == "held":
            x0, y0, x1, y1 = item_box(tl, it.id, f)
            hx, hy = head_center(tl, sp[1], f)
            fc = int(tl.facing[sp[1]][f])
            c.line(hx + fc * 5, hy - 10, (x0 + x1) / 2, y0 + 1, "skin", aw)
        _draw_item(c, tl, it, f)
    return np.asarray(img)


def iter_frames(tl: Timeline, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """All frames of the timeline in order."""
    for f in range(tl.n):
        yield draw_frame(tl, f, size)


def encode_mp4(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float, size: tuple[int, int],
               crf: int = 14) -> int:
    """Encode RGB frames to an H.264 (yuv420p) MP4, atomically; returns the frame count."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    rate = Fraction(fps).limit_denominator(1000)
    n = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            st = out.add_stream("libx264", rate=rate)
            st.width, st.height = size
            st.pix_fmt = "yuv420p"
            st.codec_context.time_base = 1 / rate
            st.options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "tune": "animation",
                          "bframes": "0"}
            for arr in frames:
                fr = av.VideoFrame.from_ndarray(arr, format="rgb24")
                fr.pts = n
                fr.time_base = 1 / rate
                for pkt in st.encode(fr):
                    out.mux(pkt)
                n += 1
            for pkt in st.encode():
                out.mux(pkt)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n
