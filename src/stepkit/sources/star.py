"""STAR situation graphs → STSG.

A STAR record (``STAR_{train,val}.json`` entries, or the shared ``sample_question_*.json``) carries
``situations``: per keyframe (a frame number) ``rel_pairs`` / ``rel_labels`` (``o000`` → ``r009`` →
``o017``), ``actions`` (``a086``) and ``bbox`` / ``bbox_labels``. Frame numbers become seconds through
STAR's ``video_fps``. Every record of one video contributes its keyframes to one graph:

- one node per object class (STAR labels each class once per situation), its boxes as the track;
- a relation or action present on consecutive keyframes becomes one interval from its first to its
  last keyframe (a gap of one or more keyframes without it starts a new interval);
- action classes map to verb + object through STAR's ``action_mapping``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Iterator

from stepkit.errors import DataError
from stepkit.graph.types import STSG, Action, Box, Object, Relation
from stepkit.sources.common import PERSON_ID, object_id, write_graphs
from stepkit.sources.vocab import label_synonyms, natural_label, star_actions, star_objects, star_relations, star_video_fps

DEFAULT_FPS = 30.0
STATIC_LABELS = frozenset({"door", "window", "floor", "table", "shelf", "closet/cabinet", "refrigerator", "bed",
                           "sofa/couch", "doorway", "mirror", "light", "television"})


def _records(doc: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(doc, dict) and "situations" in doc:
        return [doc]
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)]
    raise DataError(f"{where}: expected a STAR record (with 'situations') or a list of records")


def load_star_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """STAR records from a JSON file, or from every ``*.json`` in a folder (sorted)."""
    path = Path(path)
    files = sorted(p for p in path.glob("*.json") if p.name != "summary.json") if path.is_dir() else [path]
    if not path.exists():
        raise DataError(f"{path}: no such STAR file or folder")
    from stepkit.userfiles import load_json

    out: list[dict[str, Any]] = []
    seen: list[tuple[Path, list[dict[str, Any]]]] = []
    for f in files:
        recs = _records(load_json(f, what="STAR JSON file"), str(f))
        seen.append((f, recs))
        out += [r for r in recs if "situations" in r]
    if not out:
        raise DataError(_no_situations(path, seen))
    return out


_QUESTION_KEYS = {"question", "answer"}


def _no_situations(path: Path, seen: list[tuple[Path, list[dict[str, Any]]]]) -> str:
    """Why a STAR source gave no situation graphs, saying what the file holds instead."""
    if not seen:
        return f"{path}: no *.json files in this folder; expected STAR situation-graph JSON (records with 'situations')"
    f, recs = next(((f, r) for f, r in seen if r), seen[0])
    if not recs:
        return (f"{f}: holds no records; expected STAR records with 'situations' (keyframe relations, actions, "
                "boxes), e.g. STAR_train.json / STAR_val.json")
    keys = sorted(set().union(*(r.keys() for r in recs[:50])))
    if _QUESTION_KEYS <= set(keys):
        return (f"{f}: holds {len(recs)} STAR questions (fields {', '.join(keys[:12])}) but no situation graphs: "
                "this is a question file; `stepkit import star` needs records with 'situations' (STAR_train.json / "
                "STAR_val.json). Evaluate on questions with `stepkit eval --benchmark star --data FILE`")
    return (f"{f}: {len(recs)} records, none with 'situations' (fields: {', '.join(keys[:12])}); expected STAR "
            "situation-graph records (STAR_train.json / STAR_val.json)")


def _object_label(oid: str, where: str) -> str:
    label = star_objects().get(oid)
    if label is None:
        raise DataError(f"{where}: unknown STAR object class {oid!r}")
    return label


def _intervals(present: dict[tuple, list[int]], times: list[float]) -> Iterator[tuple[tuple, float, float]]:
    """For each key, runs of consecutive keyframe indices → (key, t_first, t_last)."""
    for key in sorted(present):
        idx = sorted(set(present[key]))
        start = prev = idx[0]
        for i in idx[1:] + [None]:
            if i is not None and i == prev + 1:
                prev = i
                continue
            yield key, times[start], times[prev]
            if i is not None:
                start = prev = i


def records_to_graph(video_id: str, records: Iterable[dict[str, Any]], *, fps: float | None = None) -> STSG:
    """All situations of one video's records → one graph. DataError names malformed situations."""
    records = list(records)
    fps = fps or star_video_fps().get(video_id)
    if not fps:
        raise DataError(f"video {video_id}: frame rate unknown (not in STAR's video_fps); pass fps")
    frames: dict[int, dict[str, Any]] = {}
    end = 0.0
    for rec in records:
        end = max(end, float(rec.get("end") or 0.0))
        sits = rec.get("situations")
        if not isinstance(sits, dict):
            raise DataError(f"video {video_id}: record {rec.get('question_id', '?')} has no 'situations' mapping")
        for fid, sit in sits.items():
            try:
                frames.setdefault(int(fid), sit)
            except ValueError:
                raise DataError(f"video {video_id}: keyframe id {fid!r} is not a frame number") from None
    order = sorted(frames)
    times = [round(f / fps, 3) for f in order]
    rels: dict[tuple, list[int]] = defaultdict(list)
    acts: dict[tuple, list[int]] = defaultdict(list)
    tracks: dict[str, list[Box]] = defaultdict(list)
    labels: set[str] = {"person"}
    for k, fid in enumerate(order):
        sit = frames[fid]
        where = f"video {video_id} keyframe {fid:06d}"
        pairs, rlabels = sit.get("rel_pairs", []), sit.get("rel_labels", [])
        if len(pairs) != len(rlabels):
            raise DataError(f"{where}: {len(pairs)} rel_pairs but {len(rlabels)} rel_labels")
        for pair, rid in zip(pairs, rlabels):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise DataError(f"{where}: rel_pair {pair!r} is not [subject, object]")
            pred = star_relations().get(rid)
            if pred is None:
                raise DataError(f"{where}: unknown STAR relation class {rid!r}")
            s, o = (_object_label(x, where) for x in pair)
            labels |= {s, o}
            rels[(s, pred, o)].append(k)
        for aid in sit.get("actions", []):
            ac = star_actions().get(aid)
            if ac is None:
                raise DataError(f"{where}: unknown STAR action class {aid!r}")
            labels.add(ac.object)
            acts[(ac.verb, ac.object, aid)].append(k)
        boxes, blabels = sit.get("bbox", []), sit.get("bbox_labels", [])
        if len(boxes) != len(blabels):
            raise DataError(f"{where}: {len(boxes)} bbox but {len(blabels)} bbox_labels")
        for box, oid in zip(boxes, blabels):
            label = _object_label(oid, where)
            labels.add(label)
            try:
                xyxy = tuple(float(v) for v in box)
            except (TypeError, ValueError):
                raise DataError(f"{where}: bbox {box!r} is not four numbers") from None
            if len(xyxy) != 4:
                raise DataError(f"{where}: bbox {box!r} is not four numbers")
            tracks[label].append(Box(t=times[k], xyxy=xyxy, frame=fid))

    def oid(label: str) -> str:
        return PERSON_ID if label == "person" else object_id(label)

    duration = max([end] + times)
    g = STSG(video_id=video_id, fps=float(fps), duration=duration,
             meta={"source": "star", "keyframes": order, "duration_note": "lower bound: last keyframe or clip end",
                   "questions": sorted(str(r.get("question_id", "")) for r in records)})
    # Slash classes get one natural noun (``closet/cabinet`` -> cabinet), the other words as synonyms.
    g.objects = sorted((Object(oid(lb), natural_label(lb), "static" if lb in STATIC_LABELS else "dynamic",
                               track=tracks.get(lb, [])) for lb in labels), key=lambda o: (o.id != PERSON_ID, o.id))
    synonyms = {o.label: list(label_synonyms(o.label)) for o in g.objects if label_synonyms(o.label)}
    if synonyms:
        g.meta["synonyms"] = dict(sorted(synonyms.items()))
    for n, ((s, pred, o), t0, t1) in enumerate(_intervals(rels, times), 1):
        g.relations.append(Relation(f"r{n}", oid(s), pred, oid(o), t0, t1))
    for n, ((verb, obj, aid), t0, t1) in enumerate(_intervals(acts, times), 1):
        g.actions.append(Action(f"a{n}", PERSON_ID, verb, t0, t1, object=oid(obj)))
    g.actions.sort(key=lambda a: (a.t0, a.t1, a.verb))
    for n, a in enumerate(g.actions, 1):
        a.id = f"a{n}"
    return g


def iter_star(records: list[dict[str, Any]]) -> Iterator[tuple[str, STSG | None, str | None, list[str]]]:
    """``(video id, graph or None, why, warnings)`` per video of the records."""
    by_video: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_video[str(r.get("video_id") or r.get("video") or "")].append(r)
    for vid in sorted(by_video):
        if not vid:
            yield "(no video_id)", None, f"{len(by_video[vid])} record(s) without video_id", []
            continue
        warnings = []
        fps = star_video_fps().get(vid)
        if fps is None:
            fps = DEFAULT_FPS
            warnings.append(f"frame rate unknown (not in STAR's video_fps); assumed {DEFAULT_FPS}")
        try:
            yield vid, records_to_graph(vid, by_video[vid], fps=fps), None, warnings
        except DataError as exc:
            yield vid, None, str(exc), []


def import_star(src: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Import STAR situation graphs (a record, a list of records, or a folder of such files)."""
    return write_graphs(iter_star(load_star_records(src)), out, source="star", src=Path(src))
