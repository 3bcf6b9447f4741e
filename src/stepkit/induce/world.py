"""The synthetic world's perceiver: a world video's STSG recovered from its pixels alone.

It knows the world's visual language (:mod:`stepkit.world.vocab`: palette, class shapes, drawing
geometry), never a video's state or ground truth. Per frame it labels pixels by nearest palette
colour, finds furniture (per shot), people (shirt colour = identity) and small objects (colour +
shape = identity), gaze lines and door leaves; then applies the world's relation rules per frame,
turns them into intervals, and reads actions off the changes (what left a surface for a hand, which
hand it went to, which pose followed which).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stepkit.errors import VideoError
from stepkit.graph.types import STSG, Action, Attribute, Box, Clip, Object, Relation


@dataclass
class WorldInducerConfig:
    """The knobs of the world perceiver."""

    max_color_dist: float = 32.0   # pixels farther than this from every palette colour are unlabelled
    cut_rows: int = 2              # a floor line moving by this many rows is a cut …
    cut_profile: float = 0.35      # … or a furniture column profile changing by this share
    hand_tol: float = 3.8          # world units between an object's centre and a hand point
    rest_tol_px: float = 2.5       # pixels between an object's bottom and a surface
    move_units: float = 0.9        # per-frame head shift (world units) that counts as walking
    gap_fill: int = 2              # frames of missed detection bridged inside a relation
    min_run: int = 3               # shortest relation, in frames
    min_object_frames: int = 6     # things seen for fewer frames are taken for glimpses of others
    keyframes_per_clip: int = 3


class WorldInducer:
    """Recovers the STSG of a synthetic-world video from its frames (``--backend world``)."""

    name = "world"

    def __init__(self, **options: Any):
        from stepkit.errors import ConfigError

        known = set(WorldInducerConfig.__dataclass_fields__)
        bad = set(options) - known
        if bad:
            raise ConfigError(f"world inducer: unknown option(s) {', '.join(sorted(bad))}; known: {', '.join(sorted(known))}")
        from stepkit.userfiles import field_type_problems

        wrong = field_type_problems(options, WorldInducerConfig, where="world inducer")
        if wrong:
            raise ConfigError(wrong[0])
        self.cfg = WorldInducerConfig(**options)
        self._lut = None

    def config(self) -> dict[str, Any]:
        """The settings that shape the output."""
        return {"backend": self.name, **asdict(self.cfg)}

    # -- decoding -----------------------------------------------------------------------------
    @staticmethod
    def _decode(video: Path) -> tuple[list[np.ndarray], float]:
        import av

        video = Path(video)
        if not video.is_file():
            raise VideoError(f"{video}: no such video file")
        if video.stat().st_size == 0:
            raise VideoError(f"{video}: empty file (0 bytes)")
        from stepkit.video.decode import _check_y4m_header, _reason

        _check_y4m_header(video)
        try:
            with av.open(str(video)) as c:
                if not c.streams.video:
                    raise VideoError(f"{video}: no video stream")
                st = c.streams.video[0]
                fps = float(st.average_rate or st.guessed_rate or 0)
                frames = [f.to_ndarray(format="rgb24") for f in c.decode(st)]
        except VideoError:
            raise
        except Exception as exc:  # PyAV raises many error types for broken files
            raise VideoError(f"{video}: not a readable video (truncated, corrupt or not a video file): "
                             f"cannot decode it ({_reason(exc)})") from None
        if not frames or fps <= 0:
            raise VideoError(f"{video}: no decodable frames")
        return frames, fps

    def _labels(self, frame: np.ndarray) -> np.ndarray:
        """Palette index per pixel (255: no palette colour close enough)."""
        if self._lut is None:
            from stepkit.world.vocab import PALETTE

            pal = np.array(list(PALETTE.values()), dtype=np.float32)
            g = (np.arange(32, dtype=np.float32) * 8 + 4)
            rgb = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
            d = ((rgb[:, None, :] - pal[None]) ** 2).sum(-1)
            lut = d.argmin(1).astype(np.uint8)
            lut[np.sqrt(d.min(1)) > self.cfg.max_color_dist] = 255
            self._lut = lut
            self._names = list(PALETTE)
        q = (frame >> 3).astype(np.int32)
        return self._lut[(q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]]

    def _id(self, name: str) -> int:
        return self._names.index(name)

    # -- main ---------------------------------------------------------------------------------
    def induce(self, video: Path, video_id: str) -> STSG:
        """The STSG of ``video``."""
        frames, fps = self._decode(Path(video))
        labels = [self._labels(f) for f in frames]
        H, W = labels[0].shape
        n = len(labels)
        shots = self._shots(labels)
        per_frame: list[dict] = [None] * n  # type: ignore[list-item]
        shot_info = []
        for a, b in shots:
            info = self._shot_static(labels[a:b], W, H)
            shot_info.append(info)
            for f in range(a, b):
                per_frame[f] = self._perceive(labels[f], frames[f], info, W, H)
        return self._assemble(per_frame, shots, shot_info, fps, n, W, H, video_id, str(video))

    # -- cuts ---------------------------------------------------------------------------------
    def _floor_rows(self, lab: np.ndarray) -> int:
        floor = self._id("floor")
        H = lab.shape[0]
        col = lab[:, :: 8] == floor
        # rows from the bottom that are floor in most sampled columns
        frac = col.mean(1)
        k = 0
        for r in range(H - 1, -1, -1):
            if frac[r] < 0.5:
                break
            k += 1
        return k

    def _profile(self, lab: np.ndarray) -> np.ndarray:
        m = np.isin(lab, [self._id("wood"), self._id("metal"), self._id("doorway")])
        return m.sum(0).astype(np.float32)

    def _shots(self, labels: list[np.ndarray]) -> list[tuple[int, int]]:
        rows = [self._floor_rows(l) for l in labels]
        prof = [self._profile(l) for l in labels]
        cuts = []
        for f in range(1, len(labels)):
            if abs(rows[f] - rows[f - 1]) >= self.cfg.cut_rows:
                cuts.append(f)
                continue
            a, b = prof[f - 1], prof[f]
            tot = a.sum() + b.sum()
            if tot > 0 and np.abs(a - b).sum() / tot > self.cfg.cut_profile:
                cuts.append(f)
        bounds = [0] + cuts + [len(labels)]
        return [(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]

    # -- per shot: scale and furniture ----------------------------------------------------------
    def _shot_static(self, labels: list[np.ndarray], W: int, H: int) -> dict:
        import cv2

        from stepkit.world import vocab as V

        rows = int(np.median([self._floor_rows(l) for l in labels[:: max(1, len(labels) // 9)]]))
        s = max(rows, 1) / V.FLOOR_DEPTH
        base = H - rows
        furniture = []
        sample = labels[:: max(1, len(labels) // 30)]
        for mat in ("wood", "metal"):
            codes = [self._id(mat)] + ([self._id("doorway")] if mat == "wood" else [])
            count = np.zeros((H, W), dtype=np.int32)
            for l in sample:
                count += np.isin(l, codes)
            union = count >= max(1, 0.3 * len(sample))
            nlab, _, stats, _ = cv2.connectedComponentsWithStats(union.astype(np.uint8), connectivity=8)
            comps = [tuple(int(v) for v in stats[i][:4]) for i in range(1, nlab) if stats[i][4] >= 12]
            # merge pieces that overlap horizontally (a chair's back and legs split by a sitter)
            comps.sort()
            groups: list[list[int]] = []
            for x, y, w, h in comps:
                if groups and x <= groups[-1][2]:
                    g = groups[-1]
                    g[0], g[1], g[2], g[3] = min(g[0], x), min(g[1], y), max(g[2], x + w), max(g[3], y + h)
                else:
                    groups.append([x, y, x + w, y + h])
            for x0, y0, x1, y1 in groups:
                if abs(y1 - base) > 3:
                    continue
                furniture.append({"material": mat, "px": (x0, y0, x1, y1)})
        # scale from furniture heights once classified with the floor's scale
        num = den = 0.0
        for F in furniture:
            F["label"], F["dist"] = self._classify_static(F["px"], s)
            if F["label"] and F["dist"] < 0.12 and F["px"][1] >= 2:
                num += F["px"][3] - F["px"][1]
                den += V.STATIC_CLASSES[F["label"]][1]
        if den:
            s = num / den
        out = []
        for F in furniture:
            F["label"], F["dist"] = self._classify_static(F["px"], s)
            x0, y0, x1, y1 = F["px"]
            F["visible"] = x0 >= 2 and x1 <= W - 2 and y0 >= 2
            if F["label"] is None:
                continue
            if F["label"] == "door":
                F["material"] = "wood"
            cw = V.STATIC_CLASSES[F["label"]][0] * s
            if x1 - x0 < 0.8 * cw:
                # part-hidden the whole shot: widen it toward the person hiding it
                people = np.zeros((H, W), dtype=np.int32)
                codes = [self._id(c) for c in (*V.SHIRT_COLORS, "pants", "skin")]
                for l in sample:
                    people += np.isin(l, codes)
                left = people[y0:y1, max(0, int(x0 - cw)):x0].sum()
                right = people[y0:y1, x1:min(W, int(x1 + cw))].sum()
                F["px"] = (int(round(x1 - cw)), y0, x1, y1) if left > right else (x0, y0, int(round(x0 + cw)), y1)
                x0, y0, x1, y1 = F["px"]
                F["visible"] = x0 >= 2 and x1 <= W - 2 and y0 >= 2
            out.append(F)
        return {"s": s, "base": base, "furniture": out}

    @staticmethod
    def _classify_static(px, s: float) -> tuple[str | None, float]:
        from stepkit.world import vocab as V

        w, h = (px[2] - px[0]) / s, (px[3] - px[1]) / s
        best, bd = None, 9.0
        for lab, (cw, ch) in V.STATIC_CLASSES.items():
            # height decides; a narrower piece may be part-hidden (someone sitting), a wider one is wrong
            dw = math.log(max(w, 0.5) / cw)
            d = math.hypot(dw if dw > 0 else 0.1 * dw, math.log(max(h, 0.5) / ch))
            if d < bd:
                best, bd = lab, d
        return (best, bd) if bd < 0.35 else (None, bd)

    @staticmethod
    def _classify_item(w: float, h: float) -> tuple[str, str, float]:
        from stepkit.world import vocab as V

        best, bd = ("", ""), 9.0
        for lab, sizes in V.DYNAMIC_CLASSES.items():
            for size, (cw, ch) in sizes.items():
                d = math.hypot(math.log(max(w, 0.5) / cw), math.log(max(h, 0.5) / ch))
                if d < bd:
                    best, bd = (lab, size), d
        return best[0], best[1], bd

    # -- per frame ----------------------------------------------------------------------------
    def _perceive(self, lab: np.ndarray, frame_rgb: np.ndarray, info: dict, W: int, H: int) -> dict:
        import cv2

        from stepkit.world import vocab as V

        s, base = info["s"], info["base"]
        out: dict[str, Any] = {"persons": {}, "items": {}, "doors": {}, "gaze": None}

        def wy(py: float) -> float:
            return (base - py) / s

        # people: shirt colour is identity; the head is the skin blob nearest above the shirt
        skin = cv2.morphologyEx((lab == self._id("skin")).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        ns, _, sst, _ = cv2.connectedComponentsWithStats(skin, connectivity=8)
        heads = []
        for i in range(1, ns):
            x, y, w, h, a = (int(v) for v in sst[i])
            if 0.55 * 2 * V.HEAD_R * s <= w <= 1.5 * 2 * V.HEAD_R * s and 0.55 * 2 * V.HEAD_R * s <= h <= 1.5 * 2 * V.HEAD_R * s:
                heads.append((x, y, x + w, y + h))
        for color in V.SHIRT_COLORS:
            m = (lab == self._id(color)).astype(np.uint8)
            nm, _, st, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
            parts = [st[i] for i in range(1, nm) if st[i][4] >= max(6, 0.02 * (12 * 22) * s * s)]
            if not parts:
                continue
            x0 = min(p[0] for p in parts); y0 = min(p[1] for p in parts)
            x1 = max(p[0] + p[2] for p in parts); y1 = max(p[1] + p[3] for p in parts)
            if sum(p[4] for p in parts) < 0.25 * (12 * 20) * s * s:
                continue
            lying = (x1 - x0) > 1.3 * (y1 - y0)
            best, bd = None, 1e9
            for hb in heads:
                hcx, hcy = (hb[0] + hb[2]) / 2, (hb[1] + hb[3]) / 2
                if lying:
                    d = min(abs(hcx - x0), abs(hcx - x1)) + abs(hcy - (y0 + y1) / 2)
                else:
                    d = abs(hcx - (x0 + x1) / 2) + abs(hcy - (y0 - V.HEAD_R * s))
                if d < bd:
                    best, bd = hb, d
            if best is None or bd > 11 * s:
                continue
            if not lying and abs((best[0] + best[2]) / 2 - (x0 + x1) / 2) > 3 * s:
                continue  # shirt half hidden behind someone: not a reliable sighting
            if any(P["head"] == best for P in out["persons"].values()):
                # two shirts claim one head (people overlapping): neither sighting is reliable
                out["persons"] = {k: P for k, P in out["persons"].items() if P["head"] != best}
                continue
            hcx, hcy = (best[0] + best[2]) / 2, (best[1] + best[3]) / 2
            hy = wy(hcy)
            if lying and abs(hy - V.HEAD_Y["lie"]) < 3.5:
                pose = "lie"
            elif abs(hy - V.HEAD_Y["stand"]) <= 2.4:
                pose = "stand"
            elif abs(hy - V.HEAD_Y["sit"]) <= 2.4 and not lying:
                pose = "sit"
            else:
                pose = "trans"
            bx0, by0 = min(x0, best[0]), min(y0, best[1])
            bx1, by1 = max(x1, best[2]), max(y1, best[3])
            vis = bx0 >= 2 and bx1 <= W - 2 and by0 >= 2
            out["persons"][color] = {"hx": hcx / s, "hy": hy, "hpx": (hcx, hcy), "pose": pose, "vis": vis,
                                     "px": (bx0, by0, bx1, by1), "head": best}

        # small objects: colour + shape
        comps: dict[str, list[list[int]]] = {}
        for color in V.OBJECT_COLORS:
            m = (lab == self._id(color)).astype(np.uint8)
            nm, _, st, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
            comps[color] = [[int(v) for v in st[i]] for i in range(1, nm) if st[i][4] >= 8]
        # a box with something inside can show as two pieces, one each side of its content
        for color, cs in comps.items():
            others = [c for k, v in comps.items() if k != color for c in v]
            merged = True
            while merged:
                merged = False
                for i in range(len(cs)):
                    for j in range(len(cs)):
                        a, b = cs[i], cs[j]
                        if i == j or a[0] > b[0] or abs((a[1] + a[3]) - (b[1] + b[3])) > 2:
                            continue
                        gap0, gap1 = a[0] + a[2], b[0]
                        if not 0 <= gap1 - gap0 <= 14 * s:
                            continue
                        if not any(gap0 - 2 <= o[0] + o[2] / 2 <= gap1 + 2 for o in others):
                            continue
                        x0, y0 = a[0], min(a[1], b[1])
                        x1, y1 = b[0] + b[2], max(a[1] + a[3], b[1] + b[3])
                        label, _, d = self._classify_item((x1 - x0 + 1.0) / s, (y1 - y0 + 1.0) / s)
                        if label == "box" and d < 0.2:
                            cs[i] = [x0, y0, x1 - x0, y1 - y0, a[4] + b[4]]
                            del cs[j]
                            merged = True
                            break
                    if merged:
                        break
        for color, cs in comps.items():
            for x, y, w, h, a in cs:
                if a < 0.45 * w * h and not (a >= 0.25 * w * h and self._classify_item((w + 1.0) / s, (h + 1.0) / s)[0] == "box"):
                    continue
                label, size, d = self._classify_item((w + 1.0) / s, (h + 1.0) / s)
                if d > 0.4:
                    continue
                key = (label, color, size)
                prev = out["items"].get(key)
                if prev is not None and prev["area"] >= a:
                    continue
                out["items"][key] = {"px": (x, y, x + w, y + h), "area": a,
                                     "vis": x >= 2 and x + w <= W - 2 and y >= 2}

        # doors: how much of the leaf covers the doorway, just under the lintel
        for k, F in enumerate(info["furniture"]):
            if F["label"] != "door":
                continue
            x0, y0, x1, y1 = F["px"]
            r0, r1 = int(round(base - 67 * s)), int(round(base - 62 * s))
            c0, c1 = int(round(x0 + 2.5 * s)), int(round(x1 - 2.5 * s))
            band = lab[max(r0, 0):max(r1, 1), max(c0, 0):max(c1, 1)]
            if band.size:
                frac = float((band == self._id("wood")).mean())
                out["doors"][k] = "closed" if frac > 0.85 else ("open" if frac < 0.4 else "trans")

        # gaze: one cyan line per frame at most; its far end touches what is looked at
        gm = (frame_rgb[..., 1] > 175) & (frame_rgb[..., 2] > 175) & (frame_rgb[..., 0] < 150)
        if gm.sum() >= 4:
            ys, xs = np.nonzero(gm)
            pts = np.stack([xs, ys], 1).astype(np.float32)
            c = pts.mean(0)
            vt = np.linalg.svd(pts - c, full_matrices=False)[2]
            proj = (pts - c) @ vt[0]
            e1, e2 = pts[proj.argmin()], pts[proj.argmax()]
            out["gaze"] = (tuple(e1), tuple(e2))
        return out

    # -- assembling the graph -----------------------------------------------------------------
    def _assemble(self, per_frame, shots, shot_info, fps, n, W, H, video_id, video) -> STSG:
        from stepkit.world import vocab as V
        from stepkit.world.groundtruth import describe, runs, spatial

        cfg = self.cfg

        def t(f: int) -> float:
            return round(f / fps, 4)

        # stable identities: persons by shirt, items by (label, colour, size), furniture by (label, material)
        ids: dict[tuple, str] = {}
        counters: dict[str, int] = defaultdict(int)

        def ident(key: tuple, label: str) -> str:
            if key not in ids:
                counters[label] += 1
                ids[key] = f"{label}{counters[label]}"
            return ids[key]

        shot_of = np.zeros(n, dtype=int)
        for k, (a, b) in enumerate(shots):
            shot_of[a:b] = k
        furn_ids = []
        for info in shot_info:
            furn_ids.append([ident(("f", F["label"], F["material"]), F["label"]) for F in info["furniture"]])

        facts: list[set] = [set() for _ in range(n)]
        item_state: dict[str, list] = defaultdict(lambda: [None] * n)
        pose_seq: dict[str, list] = defaultdict(lambda: [None] * n)
        hx_seq: dict[str, list] = defaultdict(lambda: [None] * n)
        door_seq: dict[str, list] = defaultdict(lambda: [None] * n)
        boxes: dict[str, dict[int, tuple]] = defaultdict(dict)
        vis_frames: dict[str, int] = defaultdict(int)
        attrs: dict[str, list[Attribute]] = {}
        labels: dict[str, str] = {}

        for f in range(n):
            pf = per_frame[f]
            info = shot_info[shot_of[f]]
            s = info["s"]
            fids = furn_ids[shot_of[f]]
            furn = [(fid, F) for fid, F in zip(fids, info["furniture"]) if F["visible"]]
            for fid, F in furn:
                labels[fid] = F["label"]
                attrs[fid] = [] if F["label"] == "door" else [Attribute("material", F["material"])]
                boxes[fid][f] = F["px"]
                vis_frames[fid] += 1
            for k, F in enumerate(info["furniture"]):
                if F["label"] == "door" and F["visible"] and k in pf["doors"]:
                    door_seq[fids[k]][f] = pf["doors"][k]
            persons = {}
            for color, P in pf["persons"].items():
                pid = ident(("p", color), "person")
                labels[pid] = "person"
                attrs[pid] = [Attribute("color", color)]
                if P["vis"]:
                    persons[pid] = P
                    boxes[pid][f] = P["px"]
                    vis_frames[pid] += 1
                    pose_seq[pid][f] = P["pose"]
                    hx_seq[pid][f] = P["hx"]
            items = {}
            for (label, color, size), I in pf["items"].items():
                iid = ident(("i", label, color, size), label)
                labels[iid] = label
                attrs[iid] = [Attribute("color", color)] + ([Attribute("size", size)] if size else [])
                if I["vis"]:
                    items[iid] = I
                    boxes[iid][f] = I["px"]
                    vis_frames[iid] += 1
            pf["_persons"], pf["_items"], pf["_furn"] = persons, items, furn

        # a person briefly hidden behind someone (or something) is still there: bridge short gaps
        for pid in list(hx_seq):
            last = None
            for f in range(n):
                if hx_seq[pid][f] is not None:
                    if last is not None and 1 < f - last <= 12 and shot_of[last] == shot_of[f] and \
                            pose_seq[pid][f] == pose_seq[pid][last]:
                        P0 = per_frame[last]["_persons"][pid]
                        s0 = shot_info[shot_of[f]]["s"]
                        for g in range(last + 1, f):
                            hx = hx_seq[pid][last] + (hx_seq[pid][f] - hx_seq[pid][last]) * (g - last) / (f - last)
                            dx = (hx - P0["hx"]) * s0
                            P = dict(P0, hx=hx, hpx=(P0["hpx"][0] + dx, P0["hpx"][1]),
                                     px=(P0["px"][0] + dx, P0["px"][1], P0["px"][2] + dx, P0["px"][3]))
                            if not (P["px"][0] >= 2 and P["px"][2] <= W - 2):
                                continue
                            per_frame[g]["_persons"][pid] = P
                            hx_seq[pid][g], pose_seq[pid][g] = hx, pose_seq[pid][last]
                    last = f

        # walking: head shifts between consecutive frames in the same shot
        moving: dict[str, list[bool]] = {}
        for pid, xs in hx_seq.items():
            mv = [False] * n
            for f in range(1, n - 1):
                a, b, c = xs[f - 1], xs[f], xs[f + 1]
                if None in (a, b, c) or shot_of[f - 1] != shot_of[f + 1]:
                    continue
                if abs(b - a) > cfg.move_units and abs(c - b) > cfg.move_units and pose_seq[pid][f] == "stand":
                    mv[f] = True
            moving[pid] = mv

        rest_mem: dict[str, tuple] = {}
        last_px: dict[str, tuple] = {}
        for f in range(n):
            pf = per_frame[f]
            info = shot_info[shot_of[f]]
            s = info["s"]
            persons, items, furn = pf["_persons"], pf["_items"], pf["_furn"]
            # spatial relations of still, standing people
            for pid, P in persons.items():
                if P["pose"] == "stand" and not moving[pid][f]:
                    ext = (P["hx"] - V.TORSO_HALF, P["hx"] + V.TORSO_HALF)
                    for fid, F in furn:
                        rel = spatial(ext, (F["px"][0] / s, F["px"][2] / s))
                        if rel:
                            facts[f].add((pid, rel, fid))
                    for qid, Q in persons.items():
                        if qid != pid and Q["pose"] == "stand" and not moving[qid][f]:
                            if spatial(ext, (Q["hx"] - V.TORSO_HALF, Q["hx"] + V.TORSO_HALF), V.PERSON_NEXT_TO_GAP) == "next to":
                                facts[f].add((pid, "next to", qid))
                elif P["pose"] in ("sit", "lie"):
                    for fid, F in furn:
                        if F["label"] in (("chair", "bed") if P["pose"] == "sit" else ("bed",)) and F["px"][0] <= P["hpx"][0] <= F["px"][2]:
                            facts[f].add((pid, "sitting on" if P["pose"] == "sit" else "lying on", fid))
                            break
            # items: held, on a surface, or inside a box
            for iid, I in items.items():
                x0, y0, x1, y1 = I["px"]
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                mem = rest_mem.get(iid)
                m = mem[1] if mem is not None else None
                if mem is not None and mem[2] == shot_of[f] and I["px"][0] >= m[0] - 1.5 and I["px"][1] >= m[1] - 1.5 \
                        and I["px"][2] <= m[2] + 1.5 and I["px"][3] <= m[3] + 1.5:
                    # resting things stay put until picked up (a hand passing by does not take them)
                    item_state[iid][f] = mem[0]
                    facts[f].add((iid, "on" if mem[0][0] == "on" else "inside", mem[0][1]))
                    continue
                best = None
                for pid, P in persons.items():
                    if P["pose"] == "lie":
                        continue
                    hxp, hyp = P["hpx"]
                    for r, (ox, oy) in (("hand", V.HAND_OFFSET), ("raised", V.RAISED_OFFSET)):
                        for sign in (-1, 1):
                            d = math.hypot(cx - (hxp + sign * ox * s), cy - (hyp - oy * s)) / s
                            if d <= cfg.hand_tol and (best is None or d < best[0]):
                                best = (d, pid, r)
                prev = item_state[iid][f - 1] if f else None
                if best is not None and prev is not None and prev[0] == "held" and prev[1] != best[1] and best[0] > 1.5:
                    best = None  # an object does not jump between hands (a give ends right in the hand)
                if best is not None:
                    rest_mem.pop(iid, None)
                    item_state[iid][f] = ("held", best[1], best[2])
                    facts[f].add((best[1], "holding", iid))
                    continue
                placed = None
                for fid, F in furn:
                    fx0, fy0, fx1, fy1 = F["px"]
                    if not fx0 <= cx <= fx1:
                        continue
                    hgt = fy1 - fy0
                    if F["label"] == "table":
                        surf = [fy0]
                    elif F["label"] == "shelf":
                        surf = [fy1 - hgt * y / 60.0 for y in V.SURFACES["shelf"]]
                    elif F["label"] == "bed":
                        surf = [fy1 - hgt * 20.0 / 34.0]
                    else:
                        surf = []
                    if any(abs(y1 - sy) <= cfg.rest_tol_px for sy in surf):
                        placed = ("on", fid)
                        break
                if placed is None:
                    for bid, B in items.items():
                        if bid == iid or labels[bid] != "box":
                            continue
                        bx0, by0, bx1, by1 = B["px"]
                        if bx0 <= cx <= bx1 and abs(y1 - (by1 - V.INSIDE_LIFT * s)) <= cfg.rest_tol_px:
                            placed = ("in", bid)
                            break
                if placed is not None:
                    item_state[iid][f] = placed
                    facts[f].add((iid, "on" if placed[0] == "on" else "inside", placed[1]))
                    rest_mem[iid] = (placed, I["px"], shot_of[f])
                else:
                    # still and unheld, its support out of sight: resting somewhere
                    prev_px = last_px.get(iid)
                    still = prev_px is not None and prev_px[0] == f - 1 and max(
                        abs(a - b) for a, b in zip(prev_px[1], I["px"])) <= 1
                    item_state[iid][f] = ("rest", None) if still else ("free",)
                last_px[iid] = (f, I["px"])
            # gaze
            if pf["gaze"] is not None and persons:
                e1, e2 = pf["gaze"]
                best = None
                for pid, P in persons.items():
                    for a, b in ((e1, e2), (e2, e1)):
                        d = math.hypot(a[0] - P["hpx"][0], a[1] - P["hpx"][1]) / s
                        if d <= V.GAZE_START + 4 and (best is None or d < best[0]):
                            best = (d, pid, a, b)
                if best is not None:
                    _, pid, a, b = best
                    v = np.array(b) - np.array(a)
                    v = v / (np.linalg.norm(v) + 1e-6)
                    probe = (b[0] + 2 * v[0], b[1] + 2 * v[1])
                    cands = []
                    for qid, Q in persons.items():
                        if qid != pid:
                            cands.append((qid, Q["head"]))
                    cands += [(iid, I["px"]) for iid, I in items.items()]
                    cands += [(fid, F["px"]) for fid, F in furn]
                    hit = None
                    for cid, (bx0, by0, bx1, by1) in cands:
                        if bx0 - 3 <= probe[0] <= bx1 + 2 and by0 - 3 <= probe[1] <= by1 + 2:
                            area = (bx1 - bx0) * (by1 - by0)
                            if hit is None or area < hit[0]:
                                hit = (area, cid)
                    if hit is not None:
                        facts[f].add((pid, "looking at", hit[1]))

        # a resting object hidden for a moment by someone walking past is still where it was
        for iid, seq in item_state.items():
            last = None
            for f in range(n):
                st = seq[f]
                if st is None:
                    continue
                if st[0] in ("on", "in"):
                    if last is not None and seq[last] == st and 1 < f - last <= 40 and shot_of[last] == shot_of[f]:
                        tr = (iid, "on" if st[0] == "on" else "inside", st[1])
                        for g in range(last + 1, f):
                            seq[g] = st
                            facts[g].add(tr)
                    last = f
                else:
                    last = None

        # a held object moving between hand and face is still held: bridge those short free spells
        for iid, seq in item_state.items():
            last = None  # (frame, holder) of the last held frame
            for f in range(n):
                st = seq[f]
                if st is not None and st[0] in ("on", "in", "rest"):
                    last = None
                elif st is not None and st[0] == "held":
                    if last is not None and last[1] == st[1] and 1 < f - last[0] <= 12:
                        for g in range(last[0] + 1, f):
                            facts[g].add((st[1], "holding", iid))
                    last = (f, st[1])

        # relations: runs with small gaps bridged, short runs dropped
        by_triplet: dict[tuple, list[int]] = defaultdict(list)
        for f, fs in enumerate(facts):
            for tr in fs:
                by_triplet[tr].append(f)
        spans: dict[tuple, list[tuple[int, int]]] = {}
        for tr, frames in by_triplet.items():
            merged: list[list[int]] = []
            for a, b in runs(frames):
                if merged and a - merged[-1][1] - 1 <= cfg.gap_fill and shot_of[a] == shot_of[merged[-1][1]]:
                    merged[-1][1] = b
                else:
                    merged.append([a, b])
            spans[tr] = [(a, b) for a, b in merged if b - a + 1 >= cfg.min_run]
        relations = [Relation(id="", subject=s_, predicate=p_, object=o_, t0=t(a), t1=t(b))
                     for (s_, p_, o_), sp in sorted(spans.items()) for a, b in sp]

        def holds(tr: tuple, f: int, slack: int = 1) -> bool:
            return any(a - slack <= f <= b + slack for a, b in spans.get(tr, []))

        actions: list[Action] = []
        # object transfers
        for iid, seq in item_state.items():
            stable = []  # (state, first, last)
            for f, st in enumerate(seq):
                key = None if st is None or st[0] == "free" else (st[0], st[1])
                if key is None:
                    continue
                if stable and stable[-1][0] == key and f - stable[-1][2] <= 6:
                    stable[-1][2] = f
                else:
                    stable.append([key, f, f])
            stable = [r for r in stable if r[2] - r[1] + 1 >= 2]
            for (k1, a1, b1), (k2, a2, b2) in zip(stable, stable[1:]):
                if sum(seq[g] is None for g in range(b1, a2 + 1)) > 4 or shot_of[b1] != shot_of[a2]:
                    continue
                if k1 == k2:
                    continue
                if k2[0] == "held" and k1[0] in ("on", "in", "rest"):
                    actions.append(Action("", k2[1], "pick up", t(b1), t(a2), object=iid))
                elif k1[0] == "held" and k2[0] == "held":
                    actions.append(Action("", k1[1], "give", t(b1), t(a2), object=iid, target=k2[1]))
                elif k1[0] == "held" and k2[0] == "in":
                    actions.append(Action("", k1[1], "put in", t(b1), t(a2), object=iid, target=k2[1]))
                elif k1[0] == "held" and k2[0] == "on":
                    near = holds((k1[1], "next to", k2[1]), b1, 2) or holds((k1[1], "in front of", k2[1]), b1, 2)
                    actions.append(Action("", k1[1], "put down" if near else "throw", t(b1), t(a2), object=iid, target=k2[1]))
            # raising a held object to the face
            verb = V.RAISE_VERBS.get(labels.get(iid, ""))
            if verb:
                f = 0
                while f < n:
                    st = seq[f]
                    if st is not None and st[0] == "held" and st[2] == "raised":
                        g = f
                        while g + 1 < n and seq[g + 1] is not None and seq[g + 1][0] in ("held", "free") and not (
                                seq[g + 1][0] == "held" and seq[g + 1][2] == "hand"):
                            g += 1
                        a = f - 1
                        while a >= 0 and seq[a] is not None and seq[a][0] == "free":
                            a -= 1
                        b = g + 1
                        if a >= 0 and b < n and seq[a] is not None and seq[b] is not None and seq[a][0] == "held" and \
                                seq[b][0] == "held" and seq[a][2] == "hand" and seq[b][2] == "hand" and seq[a][1] == st[1]:
                            actions.append(Action("", st[1], verb, t(a), t(b), object=iid))
                        f = g + 1
                    else:
                        f += 1

        # poses
        for pid, ps in pose_seq.items():
            f = 0
            last_stable = None  # (pose, frame)
            for f in range(n):
                p = ps[f]
                if p in ("stand", "sit", "lie") and not (p == "stand" and moving[pid][f]):
                    if last_stable and last_stable[0] != p and shot_of[last_stable[1]] == shot_of[f] and \
                            all(ps[g] == "trans" for g in range(last_stable[1] + 1, f)) and f - last_stable[1] >= 2:
                        a = last_stable[1]
                        if p in ("sit", "lie"):
                            seat = next((tr[2] for tr in facts[f] if tr[0] == pid and tr[1] in ("sitting on", "lying on")), None)
                            if seat:
                                actions.append(Action("", pid, "sit down" if p == "sit" else "lie down", t(a), t(f), object=seat))
                        elif last_stable[0] in ("sit", "lie"):
                            seat = next((tr[2] for tr in facts[a] if tr[0] == pid and tr[1] in ("sitting on", "lying on")), None)
                            if seat:
                                actions.append(Action("", pid, "stand up", t(a), t(f), object=seat))
                    last_stable = (p, f)
                elif p is None:
                    last_stable = None
        # walks
        for pid, mv in moving.items():
            f = 0
            while f < n:
                if mv[f]:
                    g = f
                    while g + 1 < n and mv[g + 1]:
                        g += 1
                    a, b = f - 1, g + 1
                    if a >= 0 and b < n and pose_seq[pid][a] is not None and pose_seq[pid][b] is not None and b - a >= 3:
                        tgt = [tr[2] for tr in facts[b] if tr[0] == pid and tr[1] in ("next to", "in front of")]
                        people = [x for x in tgt if labels.get(x) == "person"]
                        tgt = people or tgt  # walking up to someone who stands by the furniture
                        if len(tgt) == 1:
                            actions.append(Action("", pid, "walk to", t(a), t(b), target=tgt[0]))
                    f = g + 1
                else:
                    f += 1
        # doors
        for did, seq in door_seq.items():
            last = None
            for f, st in enumerate(seq):
                if st in ("open", "closed"):
                    if last and last[0] != st and all(seq[g] == "trans" for g in range(last[1] + 1, f)) and f - last[1] >= 2:
                        agent = next((tr[0] for tr in facts[last[1]] if tr[1] == "in front of" and tr[2] == did), None)
                        if agent is None:
                            agent = next((tr[0] for tr in facts[f] if tr[1] == "in front of" and tr[2] == did), None)
                        if agent:
                            actions.append(Action("", agent, "open" if st == "open" else "close", t(last[1]), t(f), object=did))
                    last = (st, f)
                elif st is None:
                    last = None
            states = []
            for value in ("closed", "open"):
                frames = [f for f, st in enumerate(seq) if st == value]
                states += [Attribute("state", value, t(a), t(b)) for a, b in runs(frames) if b - a + 1 >= cfg.min_run]
            attrs[did] = sorted(states, key=lambda a: a.t0)

        # objects
        step = max(1, int(round(fps / 2)))
        objects = []
        for key, oid in sorted(ids.items(), key=lambda kv: kv[1]):
            if vis_frames[oid] < cfg.min_object_frames:
                continue
            label = labels[oid]
            track = [Box(t=t(f), xyxy=tuple(float(v) for v in boxes[oid][f]), frame=f)
                     for f in sorted(boxes[oid]) if f % step == 0]
            kind = "static" if label in V.STATIC_CLASSES else "dynamic"
            objects.append(Object(id=oid, label=label, kind=kind, attributes=attrs.get(oid, []), track=track))
        kept = {o.id for o in objects}
        relations = [r for r in relations if r.subject in kept and r.object in kept]
        relations.sort(key=lambda r: (r.t0, r.t1, r.subject, r.predicate, r.object))
        for k, r in enumerate(relations):
            r.id = f"r{k + 1}"
        actions = [a for a in actions if a.agent in kept and (a.object in kept or a.object is None)
                   and (a.target in kept or a.target is None)]
        actions.sort(key=lambda a: (a.t0, a.t1, a.agent, a.verb))
        for k, a in enumerate(actions):
            a.id = f"a{k + 1}"
        clips = []
        for k, (a, b) in enumerate(shots):
            t0, t1 = t(a), t(b)
            q = self.cfg.keyframes_per_clip
            kf = sorted({t(a + int((b - a) * (j + 0.5) / q)) for j in range(q)})
            clips.append(Clip(id=f"c{k + 1}", t0=t0, t1=t1, keyframes=kf))
        for c in clips:
            c.description = describe(actions, objects, c.t0, c.t1)
        return STSG(video_id=video_id, fps=float(fps), duration=t(n), num_frames=n, width=W, height=H, video=video,
                    objects=objects, relations=relations, actions=actions, clips=clips,
                    meta={"inducer": self.config()})
