"""Charades action timelines (``Charades_v1_*.csv``) → STSG.

Each row is one video: ``actions`` holds ``cNNN t0 t1`` segments separated by ``;``, ``objects`` the
objects the script names, ``scene`` the room and ``length`` the duration in seconds. One ``person``
node is the agent of every action; each class maps to a verb, object and target through
``vocab/charades_actions.txt``, and classes that imply a relation while they last ("holding a cup",
"sitting on the sofa") add that relation over the action's interval.

Charades segments often end up to ~1.5 s past ``length``; such ends are clipped to the duration (a
warning in the summary). Segments that start after the video ends are dropped, reversed ones are
swapped, both with a warning.
"""

from __future__ import annotations

import csv
import io
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from stepkit.errors import DataError
from stepkit.graph.types import STSG, Action, Object, Relation
from stepkit.parallel import pool_context
from stepkit.sources.common import PERSON_ID, object_id, write_items, write_summary
from stepkit.sources.vocab import canonical_object, charades_actions, star_video_fps

DEFAULT_FPS = 30.0
_REQUIRED = ("id", "actions", "length")
# Objects that never move in a home; everything else is "dynamic".
STATIC_LABELS = frozenset({"door", "window", "floor", "table", "shelf", "closet/cabinet", "refrigerator", "bed",
                           "sofa/couch", "doorway", "mirror", "light", "television", "stove", "sink", "stairs",
                           "wall", "counter", "desk", "toilet"})


def parse_actions(field: str) -> list[tuple[str, float, float]]:
    """``"c092 11.90 21.20;c147 0.00 12.60"`` → ``[("c092", 11.9, 21.2), …]``; DataError on bad segments."""
    out = []
    for seg in filter(None, (s.strip() for s in (field or "").split(";"))):
        parts = seg.split()
        if len(parts) != 3:
            raise DataError(f"action segment {seg!r} is not 'cNNN t0 t1'")
        cls, t0, t1 = parts
        try:
            out.append((cls, float(t0), float(t1)))
        except ValueError:
            raise DataError(f"action segment {seg!r} has non-numeric times") from None
    return out


def row_to_graph(row: dict[str, str], *, fps: float | None = None) -> tuple[STSG, list[str]]:
    """One CSV row → (graph, warnings). Raises DataError naming the problem when the row is unusable."""
    vid = (row.get("id") or "").strip()
    if not vid:
        raise DataError("row has no video id")
    try:
        duration = float(row.get("length") or "")
    except ValueError:
        raise DataError(f"length {row.get('length')!r} is not a number") from None
    if not duration > 0:
        raise DataError(f"length {duration} is not positive")
    classes = charades_actions()
    fps = fps or star_video_fps().get(vid, DEFAULT_FPS)
    warnings: list[str] = []
    g = STSG(video_id=vid, fps=float(fps), duration=duration, num_frames=int(round(duration * fps)),
             meta={"source": "charades", "scene": (row.get("scene") or "").strip(),
                   "script": (row.get("script") or "").strip()})
    objects: dict[str, Object] = {PERSON_ID: Object(PERSON_ID, "person", "dynamic")}

    def node(label: str) -> str:
        label = canonical_object(label)
        oid = object_id(label)
        if oid not in objects:
            objects[oid] = Object(oid, label, "static" if label in STATIC_LABELS else "dynamic")
        return oid

    for word in filter(None, (w.strip() for w in (row.get("objects") or "").split(";"))):
        node(word)
    segments = parse_actions(row.get("actions", ""))
    n_rel = 0
    for i, (cls, t0, t1) in enumerate(sorted(segments, key=lambda s: (s[1], s[2], s[0])), 1):
        ac = classes.get(cls)
        if ac is None:
            raise DataError(f"unknown Charades action class {cls!r}")
        if t1 < t0:
            warnings.append(f"{cls} {t0} {t1}: reversed interval swapped")
            t0, t1 = t1, t0
        if t0 > duration:
            warnings.append(f"{cls} {t0} {t1}: starts after the video ends ({duration} s); dropped")
            continue
        if t1 > duration:
            warnings.append(f"{cls} {t0} {t1}: end clipped to the duration {duration}")
            t1 = duration
        t0 = max(t0, 0.0)
        obj = node(ac.object) if ac.object else None
        tgt = node(ac.target) if ac.target else None
        g.actions.append(Action(f"a{i}", PERSON_ID, ac.verb, round(t0, 3), round(t1, 3), object=obj, target=tgt))
        if ac.relation and (obj or tgt):
            n_rel += 1
            g.relations.append(Relation(f"r{n_rel}", PERSON_ID, ac.relation, obj or tgt, round(t0, 3), round(t1, 3)))
    g.objects = sorted(objects.values(), key=lambda o: (o.id != PERSON_ID, o.id))
    g.meta["charades_classes"] = sorted({c for c, _, _ in segments})
    return g, warnings


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a Charades CSV, checking its header."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such Charades CSV")
    text = path.read_text(encoding="utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: not a Charades CSV (missing column(s) {', '.join(missing)})")
    return list(reader)


def iter_charades(rows: list[tuple[int, dict[str, str]]]) -> Iterator[tuple[str, STSG | None, str | None, list[str]]]:
    """``(row id, graph or None, why it failed, warnings)`` for ``(line number, row)`` pairs."""
    for n, row in rows:
        rid = (row.get("id") or "").strip() or f"line {n}"
        try:
            g, warnings = row_to_graph(row)
        except DataError as exc:
            yield rid, None, f"line {n}: {exc}", []
            continue
        yield rid, g, None, warnings


def _import_chunk(rows: list[tuple[int, dict[str, str]]], out: str) -> tuple[int, dict[str, str], dict[str, list[str]]]:
    return write_items(iter_charades(rows), Path(out))


def import_charades(src: str | os.PathLike, out: str | os.PathLike, *, workers: int | None = None) -> dict[str, Any]:
    """Import a Charades CSV into a folder of graphs (one per row); returns the ``summary.json`` written.

    Rows are split across ``workers`` processes (default: up to 2, the CPUs available); the output
    does not depend on the number of workers.
    """
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = list(enumerate(read_rows(src), 2))
    if workers is None:
        workers = max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
    written, failed, warned = 0, {}, {}
    if workers <= 1 or len(rows) < 200:
        results = [_import_chunk(rows, str(out))]
    else:
        size = -(-len(rows) // workers)
        chunks = [rows[i:i + size] for i in range(0, len(rows), size)]
        with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as pool:
            results = list(pool.map(_import_chunk, chunks, [str(out)] * len(chunks)))
    for w, f, wa in results:
        written += w
        failed.update(f)
        warned.update(wa)
    return write_summary(out, source="charades", src=Path(src), written=written, failed=failed, warnings=warned,
                         seconds=time.perf_counter() - started, config={"default_fps": DEFAULT_FPS})
