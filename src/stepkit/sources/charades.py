"""Charades action timelines (``Charades_v1_*.csv``) → STSG.

Each row is one video: ``actions`` holds ``cNNN t0 t1`` segments separated by ``;``, ``objects`` the
objects the script names, ``scene`` the room and ``length`` the duration in seconds. One ``person``
node is the agent of every action; each class maps to a verb, object and target through
``vocab/charades_actions.txt``.

Charades annotates actions only, so the relations of a graph are *derived*: each class implies the
relations listed for it in ``vocab/charades_relations.txt`` while it lasts ("holding some clothes" →
person holding clothes and touching clothes; "sitting in a chair" → sitting on and touching the
chair), "carrying X" is derived where holding X overlaps walking or running, and overlapping copies
of one relation are merged. ``meta["derived_relations"]`` records, for every relation, the actions
it was derived from. Slash labels become one natural noun (``cup/glass/bottle`` → the word the row's
``objects`` uses, else ``cup``), the class's other words kept in ``meta["synonyms"]``.

Charades segments often end up to ~1.5 s past ``length``; such ends are clipped to the duration (a
warning in the summary). Segments that start after the video ends are dropped, reversed ones are
swapped, both with a warning.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from stepkit.errors import DataError
from stepkit.graph.types import STSG, Action, Attribute, Object, Relation
from stepkit.parallel import pool_context
from stepkit.sources.common import PERSON_ID, object_id, write_items, write_summary
from stepkit.sources.vocab import (
    canonical_object,
    charades_actions,
    charades_relations,
    charades_states,
    label_synonyms,
    natural_label,
    star_video_fps,
)

DEFAULT_FPS = 30.0
_REQUIRED = ("id", "actions", "length")
# Objects that never move in a home; everything else is "dynamic".
STATIC_LABELS = frozenset({"door", "window", "floor", "table", "shelf", "closet/cabinet", "refrigerator", "bed",
                           "sofa/couch", "doorway", "mirror", "light", "television", "stove", "sink", "stairs",
                           "wall", "counter", "desk", "toilet", "cabinet", "closet", "sofa", "couch"})
# Locomotion classes (walking through a doorway, running): holding X while one lasts is carrying X.
CARRY_WHILE = frozenset({"c097", "c150"})
# Words of the ``objects`` column that name no object.
_NOT_OBJECTS = frozenset({"something", "someone", "somewhere", "nothing", "anything"})
# Free text in the ``objects`` column ("a book;a bottle of sprite;and a stool"): the words before
# the noun are no part of its label (else "can you see an a bottle of sprite?").
_LEADING_WORDS = re.compile(r"^(?:(?:and|or|a|an|the|some|his|her|their)\s+)+")
RELATION_RULES = "stepkit/sources/vocab/charades_relations.txt"
STATE_RULES = "stepkit/sources/vocab/charades_states.txt"


def parse_actions(field: str) -> list[tuple[str, float, float]]:
    """``"c092 11.90 21.20;c147 0.00 12.60"`` → ``[("c092", 11.9, 21.2), …]``; DataError on bad segments."""
    out = []
    for seg in filter(None, (s.strip() for s in (field or "").split(";"))):
        parts = seg.split()
        if len(parts) != 3:
            raise DataError(f"action segment {seg!r} is not 'cNNN t0 t1'")
        cls, t0, t1 = parts
        try:
            times = (float(t0), float(t1))
        except ValueError:
            raise DataError(f"action segment {seg!r} has non-numeric times") from None
        if not all(math.isfinite(t) for t in times):  # NaN would pass every comparison below
            raise DataError(f"action segment {seg!r} has a time that is not a finite number")
        out.append((cls, *times))
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
    if not (math.isfinite(duration) and duration > 0):
        raise DataError(f"length {duration} is not a positive, finite number of seconds")
    classes = charades_actions()
    fps = fps or star_video_fps().get(vid, DEFAULT_FPS)
    warnings: list[str] = []
    g = STSG(video_id=vid, fps=float(fps), duration=duration, num_frames=int(round(duration * fps)),
             meta={"source": "charades", "scene": (row.get("scene") or "").strip(),
                   "script": (row.get("script") or "").strip()})
    objects: dict[str, Object] = {PERSON_ID: Object(PERSON_ID, "person", "dynamic")}
    by_class: dict[str, str] = {}  # STAR / Charades class label -> node id
    words: dict[str, str] = {}  # class -> the word the row's objects column uses for it

    def node(label: str) -> str:
        cls = canonical_object(natural_label(canonical_object(label)))
        if cls not in by_class:
            noun = natural_label(cls, words.get(cls))
            oid = object_id(noun)
            by_class[cls] = oid
            objects.setdefault(oid, Object(oid, noun, "static" if noun in STATIC_LABELS else "dynamic"))
        return by_class[cls]

    for word in filter(None, (_LEADING_WORDS.sub("", w.strip().lower()) for w in (row.get("objects") or "").split(";"))):
        if " ".join(word.split()) in _NOT_OBJECTS:
            continue
        word = natural_label(canonical_object(word)) if "/" in word else word
        words.setdefault(canonical_object(word), " ".join(word.split()))
        node(word)
    segments = parse_actions(row.get("actions", ""))
    implied = charades_relations()
    derived: list[tuple[str, str, float, float, tuple[str, ...]]] = []  # predicate, object, t0, t1, actions
    moving: list[tuple[float, float, str]] = []
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
        t0, t1 = round(max(t0, 0.0), 3), round(t1, 3)
        obj = node(ac.object) if ac.object else None
        tgt = node(ac.target) if ac.target else None
        aid = f"a{i}"
        g.actions.append(Action(aid, PERSON_ID, ac.verb, t0, t1, object=obj, target=tgt))
        for pred, arg in implied.get(cls, ()):
            oid = obj if arg == "object" else tgt if arg == "target" else node(arg)
            if oid is not None:
                derived.append((pred, oid, t0, t1, (aid,)))
        if cls in CARRY_WHILE:
            moving.append((t0, t1, aid))
    for pred, oid, t0, t1, src in list(derived):
        if pred == "holding":
            for m0, m1, mid in moving:
                if max(t0, m0) < min(t1, m1):
                    derived.append(("carrying", oid, max(t0, m0), min(t1, m1), src + (mid,)))
    provenance: dict[str, list[str]] = {}
    for n_rel, (pred, oid, t0, t1, src) in enumerate(merge_relations(derived), 1):
        g.relations.append(Relation(f"r{n_rel}", PERSON_ID, pred, oid, t0, t1))
        provenance[f"r{n_rel}"] = sorted(src, key=lambda a: int(a[1:]))
    g.meta["derived_relations"] = {"rules": RELATION_RULES, "from_actions": provenance}
    states = derive_states(g.actions, duration)
    for oid, attrs in states.items():
        objects[oid].attributes.extend(Attribute(name, value, t0, t1) for name, value, t0, t1, _ in attrs)
    if states:
        g.meta["derived_attributes"] = {"rules": STATE_RULES, "from_actions": {
            oid: [{"name": n, "value": v, "t0": t0, "t1": t1, "actions": list(src)} for n, v, t0, t1, src in attrs]
            for oid, attrs in sorted(states.items())}}
    synonyms = {o.label: list(label_synonyms(o.label)) for o in objects.values() if label_synonyms(o.label)}
    if synonyms:
        g.meta["synonyms"] = dict(sorted(synonyms.items()))
    g.objects = sorted(objects.values(), key=lambda o: (o.id != PERSON_ID, o.id))
    g.meta["charades_classes"] = sorted({c for c, _, _ in segments})
    return g, warnings


def derive_states(actions: list[Action], duration: float
                  ) -> dict[str, list[tuple[str, str, float, float, tuple[str, ...]]]]:
    """Object id → the states its actions imply, as ``(attribute, value, t0, t1, source actions)``.

    After an opening the door is open until the next closing starts (or the video ends); before
    the first opening it was closed. Consecutive actions that disagree (opened twice) or overlap
    leave the span between them without a state.
    """
    rules = charades_states()
    by_obj: dict[str, list[Action]] = {}
    for a in actions:
        if a.verb in rules and a.object is not None:
            by_obj.setdefault(a.object, []).append(a)
    out: dict[str, list[tuple[str, str, float, float, tuple[str, ...]]]] = {}
    for oid, acts in by_obj.items():
        acts.sort(key=lambda a: (a.t0, a.t1, a.id))
        spans = []
        name, before, _ = rules[acts[0].verb]
        if acts[0].t0 > 0:
            spans.append((name, before, 0.0, acts[0].t0, (acts[0].id,)))
        for cur, nxt in zip(acts, acts[1:] + [None]):
            name, _, after = rules[cur.verb]
            end = duration if nxt is None else nxt.t0
            if nxt is not None and (rules[nxt.verb][0] != name or rules[nxt.verb][1] != after):
                continue  # the next action does not start from this state: annotations disagree
            if end > cur.t1:
                spans.append((name, after, cur.t1, round(end, 3), (cur.id,) + ((nxt.id,) if nxt else ())))
        if spans:
            out[oid] = spans
    return out


def merge_relations(items: list[tuple[str, str, float, float, tuple[str, ...]]]
                    ) -> list[tuple[str, str, float, float, tuple[str, ...]]]:
    """Merge same-predicate, same-object relations whose intervals overlap or touch; ordered by time.

    Each item is ``(predicate, object id, t0, t1, source action ids)``; a merged item keeps the union
    of its sources.
    """
    groups: dict[tuple[str, str], list[tuple[float, float, tuple[str, ...]]]] = {}
    for pred, oid, t0, t1, src in items:
        groups.setdefault((pred, oid), []).append((t0, t1, src))
    out = []
    for (pred, oid), spans in groups.items():
        spans.sort()
        cur_t0, cur_t1, cur_src = spans[0][0], spans[0][1], set(spans[0][2])
        for t0, t1, src in spans[1:]:
            if t0 <= cur_t1:
                cur_t1, cur_src = max(cur_t1, t1), cur_src | set(src)
                continue
            out.append((pred, oid, cur_t0, cur_t1, tuple(cur_src)))
            cur_t0, cur_t1, cur_src = t0, t1, set(src)
        out.append((pred, oid, cur_t0, cur_t1, tuple(cur_src)))
    return sorted(out, key=lambda r: (r[2], r[3], r[0], r[1]))


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a Charades CSV, checking its header."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such Charades CSV")
    from stepkit.userfiles import read_text

    text = read_text(path, what="Charades CSV")  # not UTF-8: named, not silently garbled
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
