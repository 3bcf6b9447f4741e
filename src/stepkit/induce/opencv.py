"""Classical perception for real footage: people, moving objects, tracks, geometric relations, motions.

One decoding pass at a reduced resolution feeds: PySceneDetect's content detector (clips), frame
features (keyframes by k-means), a MOG2/KNN background subtractor (moving blobs) and, every
``1/detect_fps`` seconds, people detectors (HOG full body, Haar frontal face and upper body).
Detections are tracked per clip by IoU / centroid matching; relations between tracks (near,
touching, left of, right of, in front of, behind) and motions (moving, stopping, approaching,
leaving) become timed edges. Labels stay honest: ``person`` and ``object``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stepkit.errors import ConfigError
from stepkit.graph.types import STSG, Action, Box, Clip, Object, Relation

Xyxy = tuple[float, float, float, float]


@dataclass
class OpenCVConfig:
    """Every knob of the opencv inducer (all part of the resume key)."""

    max_width: int = 480  # frames are shrunk to at most this width …
    min_width: int = 320  # … and small videos enlarged to at least this (HOG needs ~128 px people)
    detect_fps: float = 5.0  # detection/tracking samples per second
    cut_detector: str = "combined"  # combined | content | adaptive (see stepkit.video.split.CutDetector)
    cut_threshold: float = 27.0  # ContentDetector threshold (hard cuts)
    cut_soft_threshold: float = 6.0  # AdaptiveDetector minimum content score (soft cuts)
    cut_ratio: float = 4.0  # AdaptiveDetector: score over its neighbours' average
    min_scene_len: float = 0.5  # seconds
    keyframes_per_clip: int = 3
    background: str = "mog2"  # or "knn"
    hog: bool = True
    faces: bool = True
    upper_body: bool = True
    hog_min_score: float = 0.3
    min_object_area: float = 0.004  # share of the frame a moving blob must cover
    max_object_area: float = 0.5  # larger blobs are treated as a global change (cut, light)
    match_iou: float = 0.3
    max_gap: float = 1.0  # seconds a track may go undetected before it ends
    min_track_hits: int = 2  # detections a person track needs
    min_object_hits: int = 3  # detections a moving-object track needs
    max_foreground: float = 0.3  # above this moving share of the frame the background model restarts
    cascade_width: int = 240  # Haar cascades run on frames shrunk to this width
    near: float = 0.08  # box gap, as a share of the frame diagonal, below which two tracks are near
    moving_speed: float = 0.03  # frame diagonals per second
    approach_rate: float = 0.03  # change of centre distance, frame diagonals per second
    approach_within: float = 0.25  # approaching/leaving only between tracks this close (box gap / diagonal)
    min_edge_samples: int = 2
    seed: int = 0

    def check(self) -> None:
        """Raise ConfigError for values that cannot work."""
        if self.background not in ("mog2", "knn"):
            raise ConfigError(f"opencv inducer: background must be 'mog2' or 'knn', got {self.background!r}")
        if self.cut_detector not in ("combined", "adaptive", "content"):
            raise ConfigError(
                f"opencv inducer: cut_detector must be combined, content or adaptive, got {self.cut_detector!r}"
            )
        if self.detect_fps <= 0:
            raise ConfigError(f"opencv inducer: detect_fps must be positive, got {self.detect_fps}")
        if self.max_width < 64 or self.min_width < 32 or self.min_width > self.max_width:
            raise ConfigError(
                f"opencv inducer: need 32 <= min_width <= max_width and max_width >= 64, "
                f"got min_width={self.min_width}, max_width={self.max_width}"
            )
        for name in ("keyframes_per_clip", "min_track_hits", "min_object_hits", "min_edge_samples", "cascade_width"):
            if getattr(self, name) < 1:
                raise ConfigError(f"opencv inducer: {name} must be >= 1, got {getattr(self, name)}")


@dataclass
class _Det:
    label: str
    box: Xyxy
    score: float


@dataclass
class _Track:
    label: str
    clip: int
    hits: list[tuple[int, float, int, Xyxy, float]] = field(default_factory=list)  # (sample, t, frame, box, score)

    @property
    def last(self) -> tuple[int, float, int, Xyxy, float]:
        return self.hits[-1]


def _iou(a: Xyxy, b: Xyxy) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _inside_share(a: Xyxy, b: Xyxy) -> float:
    """Share of box ``a`` lying inside box ``b``."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return ix * iy / area if area > 0 else 0.0


def _centre(b: Xyxy) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


def _gap(a: Xyxy, b: Xyxy) -> float:
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return math.hypot(dx, dy)


def _nms(dets: list[_Det], iou: float = 0.4) -> list[_Det]:
    keep: list[_Det] = []
    for d in sorted(dets, key=lambda d: (-d.score, d.box)):
        if all(_iou(d.box, k.box) < iou and _inside_share(d.box, k.box) < 0.7 for k in keep):
            keep.append(d)
    return keep


def _runs(samples: list[int], max_step: int = 1) -> list[list[int]]:
    """Split sorted sample numbers into runs of consecutive ones (steps of at most ``max_step``)."""
    runs: list[list[int]] = []
    for s in samples:
        if runs and s - runs[-1][-1] <= max_step:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


class OpenCVInducer:
    """Scene graphs of real footage with OpenCV (HOG/Haar people, background subtraction, tracking)."""

    name = "opencv"

    def __init__(self, **options: Any):
        known = set(OpenCVConfig.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"opencv inducer: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        from stepkit.userfiles import field_type_problems

        wrong = field_type_problems(options, OpenCVConfig, where="opencv inducer")
        if wrong:
            raise ConfigError(wrong[0])
        self.cfg = OpenCVConfig(**options)
        self.cfg.check()

    def config(self) -> dict[str, Any]:
        """The settings that shape the output."""
        return {"backend": self.name, **asdict(self.cfg)}

    # Detection -----------------------------------------------------------------------------
    def _detectors(self):
        import cv2

        hog = None
        if self.cfg.hog:
            hog = cv2.HOGDescriptor()
            hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        cascades = []
        if self.cfg.faces:
            cascades.append(("face", cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")))
        if self.cfg.upper_body:
            cascades.append(("upper", cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_upperbody.xml")))
        return hog, cascades

    def _people(self, bgr: np.ndarray, hog, cascades) -> list[_Det]:
        import cv2

        h, w = bgr.shape[:2]
        dets: list[_Det] = []
        if hog is not None:
            boxes, weights = hog.detectMultiScale(bgr, winStride=(8, 8), padding=(8, 8), scale=1.08)
            for (x, y, bw, bh), s in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).ravel()):
                if float(s) >= self.cfg.hog_min_score:
                    dets.append(_Det("person", (float(x), float(y), float(x + bw), float(y + bh)), min(1.0, float(s))))
        if cascades:
            cw = min(w, self.cfg.cascade_width)
            cs = w / cw
            small = cv2.resize(bgr, (cw, max(2, int(round(h / cs)))), interpolation=cv2.INTER_AREA)
            grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
            for kind, cascade in cascades:
                if kind == "face":
                    m = max(16, cw // 14)
                    found = cascade.detectMultiScale(grey, scaleFactor=1.2, minNeighbors=5, minSize=(m, m))
                else:
                    m = max(32, cw // 7)
                    found = cascade.detectMultiScale(grey, scaleFactor=1.2, minNeighbors=4, minSize=(m, m))
                for x, y, bw, bh in np.asarray(found, dtype=np.float64).reshape(-1, 4) * cs:
                    if kind == "face":  # the head around the face
                        x0, y0 = x - 0.25 * bw, y - 0.35 * bh
                        x1, y1 = x + 1.25 * bw, y + 1.2 * bh
                    else:
                        x0, y0, x1, y1 = x, y, x + bw, y + bh
                    box = (max(0.0, float(x0)), max(0.0, float(y0)), min(float(w), float(x1)), min(float(h), float(y1)))
                    dets.append(_Det("person", box, 0.6 if kind == "face" else 0.4))
        return _nms(dets)

    def _moving(self, mask: np.ndarray, scale: float, people: list[_Det]) -> list[_Det]:
        import cv2

        h, w = mask.shape[:2]
        area = float(h * w)
        _, fg = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)  # drop shadows (127)
        kernel = np.ones((3, 3), np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, kernel)
        # Close the holes a uniform moving surface leaves (only its edges change between frames).
        k = max(3, (w // 24) | 1)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        fg = cv2.dilate(fg, kernel, iterations=1)
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        out: list[_Det] = []
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            share = bw * bh / area
            if share < self.cfg.min_object_area or share > self.cfg.max_object_area:
                continue
            box = (x * scale, y * scale, (x + bw) * scale, (y + bh) * scale)
            if any(_inside_share(box, p.box) > 0.5 or _inside_share(p.box, box) > 0.5 for p in people):
                continue  # a moving person, already detected as such
            out.append(_Det("object", box, float(min(1.0, cv2.contourArea(c) / max(bw * bh, 1)))))
        return _nms(out)

    # Tracking ------------------------------------------------------------------------------
    def _track(self, samples: list[tuple[int, float, int, int, list[_Det]]], diag: float) -> list[_Track]:
        """Greedy IoU / centroid tracking within each clip; returns tracks with enough hits."""
        done: list[_Track] = []
        live: list[_Track] = []
        cur_clip = None
        for k, t, frame, clip, dets in samples:
            if clip != cur_clip:
                done += live
                live, cur_clip = [], clip
            still = []
            for tr in live:
                (done if t - tr.last[1] > self.cfg.max_gap else still).append(tr)
            live = still
            pairs = []
            for i, tr in enumerate(live):
                for j, d in enumerate(dets):
                    if d.label != tr.label:
                        continue
                    iou = _iou(tr.last[3], d.box)
                    (cx, cy), (dx, dy) = _centre(tr.last[3]), _centre(d.box)
                    dist = math.hypot(cx - dx, cy - dy)
                    size = math.hypot(tr.last[3][2] - tr.last[3][0], tr.last[3][3] - tr.last[3][1])
                    if iou >= self.cfg.match_iou or dist <= 0.5 * size:
                        pairs.append((-iou, dist / diag, i, j))
            used_t: set[int] = set()
            used_d: set[int] = set()
            for _, _, i, j in sorted(pairs):
                if i in used_t or j in used_d:
                    continue
                used_t.add(i)
                used_d.add(j)
                live[i].hits.append((k, t, frame, dets[j].box, dets[j].score))
            for j, d in enumerate(dets):
                if j not in used_d:
                    live.append(_Track(d.label, clip, [(k, t, frame, d.box, d.score)]))
        done += live
        need = {"person": self.cfg.min_track_hits, "object": self.cfg.min_object_hits}
        kept = [tr for tr in done if len(tr.hits) >= need[tr.label]]
        return sorted(kept, key=lambda tr: (tr.hits[0][0], tr.label, tr.hits[0][3]))

    # The pass ------------------------------------------------------------------------------
    def induce(self, video: Path, video_id: str) -> STSG:
        """The STSG of ``video`` (raises VideoError for unreadable input)."""
        import cv2

        from stepkit.video.decode import iter_frames, probe
        from stepkit.video.split import CutDetector, clips_from_cuts, frame_feature, kmeans_representatives

        cfg = self.cfg
        video = Path(video)
        info = probe(video)
        pw = int(min(cfg.max_width, max(cfg.min_width, info.width)))
        ph = max(2, int(round(info.height * pw / info.width / 2)) * 2)
        scale_back = info.width / pw
        diag = math.hypot(pw, ph)
        step = max(1, int(round(info.fps / cfg.detect_fps)))
        bw = min(pw, 240)  # background model resolution
        bh = max(2, int(round(ph * bw / pw)))
        bscale = pw / bw
        tw = min(160, pw)
        th = max(2, int(round(ph * tw / pw)))

        hog, cascades = self._detectors()
        detector = CutDetector(info.fps, cfg.cut_threshold, cfg.min_scene_len, detector=cfg.cut_detector,
                               soft_threshold=cfg.cut_soft_threshold, adaptive_ratio=cfg.cut_ratio)

        def new_bg():
            if cfg.background == "knn":
                return cv2.createBackgroundSubtractorKNN(history=200, detectShadows=True)
            return cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=25, detectShadows=True)

        bg = new_bg()
        times: list[float] = []
        feats: list[np.ndarray] = []
        raw: list[tuple[float, int, list[_Det]]] = []  # per detection sample: (t, frame, detections)
        warm = 0
        for fr in iter_frames(video, width=pw, height=ph, fmt="bgr24"):
            img = fr.image
            thumb = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
            detector.push(fr.index, thumb)
            times.append(fr.t)
            feats.append(frame_feature(thumb[:, :, ::-1]))
            small = cv2.resize(img, (bw, bh), interpolation=cv2.INTER_AREA)
            mask = bg.apply(small)
            if float(np.count_nonzero(mask > 200)) / mask.size > cfg.max_foreground:
                bg = new_bg()  # a cut or a lighting jump: start the background model again
                bg.apply(small)
                warm = 0
            warm += 1
            if fr.index % step:
                continue
            people = self._people(img, hog, cascades)
            moving = self._moving(mask, bscale, people) if warm > 5 else []
            raw.append((fr.t, fr.index, people + moving))
        if not times:
            from stepkit.errors import VideoError

            raise VideoError(f"{video}: no frame could be decoded")
        duration = max(info.duration, times[-1])
        spans = clips_from_cuts(detector.finish(), times, duration)
        clip_starts = [s[0] for s in spans]

        def clip_of(frame: int) -> int:
            return int(np.searchsorted(clip_starts, frame, side="right")) - 1

        samples = [(k, t, f, clip_of(f), dets) for k, (t, f, dets) in enumerate(raw)]
        tracks = self._track(samples, diag)

        graph = STSG(
            video_id=video_id, fps=info.fps, duration=round(duration, 6), num_frames=len(times),
            width=info.width, height=info.height, video=str(video),
        )
        allf = np.array(feats)
        n_kind = [{"person": 0, "object": 0} for _ in spans]
        for tr in tracks:
            n_kind[tr.clip][tr.label] += 1
        for i, (f0, f1, t0, t1) in enumerate(spans):
            picks = kmeans_representatives(allf[f0 : f1 + 1], cfg.keyframes_per_clip, seed=cfg.seed + i)
            np_, no = n_kind[i]["person"], n_kind[i]["object"]
            desc = (
                f"shot {i + 1}: {np_} {'person' if np_ == 1 else 'people'} tracked, "
                f"{no} other moving {'object' if no == 1 else 'objects'}"
            )
            graph.clips.append(
                Clip(id=f"c{i + 1}", t0=round(t0, 4), t1=round(t1, 4), description=desc,
                     keyframes=[round(times[f0 + p], 4) for p in picks])
            )

        counters = {"person": 0, "object": 0}
        ids: list[str] = []
        for tr in tracks:
            counters[tr.label] += 1
            oid = f"{tr.label}{counters[tr.label]}"
            ids.append(oid)
            graph.objects.append(
                Object(
                    id=oid, label=tr.label, kind="dynamic", clip=f"c{tr.clip + 1}",
                    confidence=round(float(np.mean([h[4] for h in tr.hits])), 4),
                    track=[
                        Box(t=round(t, 4), frame=f,
                            xyxy=tuple(round(v * scale_back, 1) for v in b))  # type: ignore[arg-type]
                        for _, t, f, b, _ in tr.hits
                    ],
                )
            )
        sample_t = [s[1] for s in samples]
        boxes = [self._interpolated(tr) for tr in tracks]
        self._relations(graph, tracks, ids, boxes, sample_t, diag, ph)
        self._actions(graph, tracks, ids, boxes, sample_t, diag)
        graph.meta = {"inducer": "opencv", "config": self.config(), "processing_size": [pw, ph],
                      "detection_samples": len(samples)}
        return graph

    @staticmethod
    def _interpolated(tr: _Track) -> dict[int, Xyxy]:
        """The track's box at every detection sample from its first hit to its last (linear in between)."""
        out: dict[int, Xyxy] = {}
        for (k0, _, _, b0, _), (k1, _, _, b1, _) in zip(tr.hits, tr.hits[1:]):
            for k in range(k0, k1):
                a = (k - k0) / (k1 - k0)
                out[k] = tuple((1 - a) * u + a * v for u, v in zip(b0, b1))  # type: ignore[assignment]
        out[tr.hits[-1][0]] = tr.hits[-1][3]
        return out

    def _emit_runs(self, hold: dict[tuple, list[int]], sample_t: list[float], make) -> None:
        for key in sorted(hold):
            for run in _runs(sorted(hold[key])):
                if len(run) >= self.cfg.min_edge_samples:
                    make(key, round(sample_t[run[0]], 4), round(sample_t[run[-1]], 4))

    def _relations(self, graph: STSG, tracks, ids, boxes, sample_t, diag: float, height: int) -> None:
        hold: dict[tuple[int, str, int], list[int]] = {}
        for i in range(len(tracks)):
            for j in range(i + 1, len(tracks)):
                if tracks[i].clip != tracks[j].clip:
                    continue
                # The person (or the earlier track) is the subject.
                a, b = (j, i) if tracks[j].label == "person" and tracks[i].label != "person" else (i, j)
                for k in sorted(set(boxes[a]) & set(boxes[b])):
                    ba, bb = boxes[a][k], boxes[b][k]
                    preds = []
                    if _iou(ba, bb) > 0:
                        preds.append("touching")
                    elif _gap(ba, bb) < self.cfg.near * diag:
                        preds.append("near")
                    (cax, _), (cbx, _) = _centre(ba), _centre(bb)
                    if cax < bb[0] and cbx > ba[2]:
                        preds.append("left of")
                    elif cax > bb[2] and cbx < ba[0]:
                        preds.append("right of")
                    x_overlap = min(ba[2], bb[2]) - max(ba[0], bb[0]) > 0
                    if x_overlap and ba[3] > bb[3] + 0.05 * height:
                        preds.append("in front of")
                    elif x_overlap and bb[3] > ba[3] + 0.05 * height:
                        preds.append("behind")
                    for p in preds:
                        hold.setdefault((a, p, b), []).append(k)
        n = [0]

        def make(key, t0, t1):
            a, p, b = key
            n[0] += 1
            graph.relations.append(Relation(id=f"r{n[0]}", subject=ids[a], predicate=p, object=ids[b], t0=t0, t1=t1))

        self._emit_runs(hold, sample_t, make)

    def _actions(self, graph: STSG, tracks, ids, boxes, sample_t, diag: float) -> None:
        cfg = self.cfg
        # Rates are measured over two sample steps (k-2 → k) to damp detector jitter.
        speed: list[dict[int, float]] = []
        for bx in boxes:
            sp: dict[int, float] = {}
            for k1 in sorted(bx):
                k0 = k1 - 2 if k1 - 2 in bx else k1 - 1
                if k0 not in bx:
                    continue
                dt = max(sample_t[k1] - sample_t[k0], 1e-6)
                (x0, y0), (x1, y1) = _centre(bx[k0]), _centre(bx[k1])
                sp[k1] = math.hypot(x1 - x0, y1 - y0) / dt / diag
            speed.append(sp)
        hold: dict[tuple, list[int]] = {}
        for i, sp in enumerate(speed):
            moving = sorted(k for k, v in sp.items() if v > cfg.moving_speed)
            if moving:
                hold[(i, "moving", -1)] = moving
            # stopping: a moving run followed by at least two still samples
            still = {k for k, v in sp.items() if v <= cfg.moving_speed}
            for run in _runs(moving):
                nxt = run[-1] + 1
                if len(run) >= cfg.min_edge_samples and nxt in still and nxt + 1 in still:
                    hold.setdefault((i, "stopping", -1), []).extend([run[-1], nxt])
        for a in range(len(tracks)):
            for b in range(len(tracks)):
                if a == b or tracks[a].clip != tracks[b].clip:
                    continue
                both = set(boxes[a]) & set(boxes[b])
                for k1 in sorted(both):
                    k0 = k1 - 2
                    if k0 not in both or speed[a].get(k1, 0.0) <= cfg.moving_speed:
                        continue
                    dt = max(sample_t[k1] - sample_t[k0], 1e-6)
                    (ax0, ay0), (bx0, by0) = _centre(boxes[a][k0]), _centre(boxes[b][k0])
                    (ax1, ay1), (bx1, by1) = _centre(boxes[a][k1]), _centre(boxes[b][k1])
                    rate = (math.hypot(ax1 - bx1, ay1 - by1) - math.hypot(ax0 - bx0, ay0 - by0)) / dt / diag
                    if _gap(boxes[a][k1], boxes[b][k1]) > cfg.approach_within * diag:
                        continue
                    if rate < -cfg.approach_rate:
                        hold.setdefault((a, "approaching", b), []).append(k1)
                    elif rate > cfg.approach_rate:
                        hold.setdefault((a, "leaving", b), []).append(k1)
        hold = {k: sorted(set(v)) for k, v in hold.items()}
        n = [0]

        def make(key, t0, t1):
            a, verb, b = key
            n[0] += 1
            graph.actions.append(
                Action(id=f"a{n[0]}", agent=ids[a], verb=verb, t0=t0, t1=t1, object=None if b < 0 else ids[b])
            )

        self._emit_runs(hold, sample_t, make)
