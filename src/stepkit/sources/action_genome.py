"""Action Genome ``.pkl`` annotations → STSG, read through a restricted unpickler.

``object_bbox_and_relationship.pkl`` maps ``"VIDEO.mp4/FRAME.png"`` to a list of objects
(``class``, ``bbox`` as x, y, w, h, ``attention_relationship``, ``spatial_relationship``,
``contacting_relationship``, ``visible``, ``metadata``); ``person_bbox.pkl`` maps the same keys to
``{"bbox": array (n, 4) xyxy, "bbox_size": (w, h), …}``. Pickles can run code when loaded, so they
are never read with plain ``pickle.load``: :class:`SafeUnpickler` rebuilds only plain containers and
numpy arrays and refuses every other global with a :class:`~stepkit.errors.DataError`.

Mapping: one ``person`` node and one node per object class of the video (Action Genome labels each
class once per frame); visible boxes become tracks; every person → object relation present on
consecutive annotated frames becomes one interval from its first to its last frame. The negative
labels ``not_looking_at``, ``unsure`` and ``not_contacting`` carry no relation and are skipped.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

from stepkit.errors import DataError
from stepkit.graph.types import STSG, Box, Object, Relation
from stepkit.sources.common import PERSON_ID, object_id, write_graphs
from stepkit.sources.vocab import ag_label, ag_objects, ag_relations, label_synonyms, natural_label, star_video_fps

OBJECT_FILE = "object_bbox_and_relationship.pkl"
PERSON_FILE = "person_bbox.pkl"
DEFAULT_FPS = 30.0
SKIPPED_RELATIONS = frozenset({"not_looking_at", "unsure", "not_contacting"})
STATIC_LABELS = frozenset({"bed", "closet/cabinet", "door", "doorway", "floor", "light", "mirror", "refrigerator",
                           "shelf", "sofa/couch", "table", "television", "window"})

# The only globals an annotation pickle may name: numpy array / scalar reconstruction, plain
# containers (Python 2 pickles spell builtins "__builtin__") and the text→bytes codec of protocol 2.
_ALLOWED = {
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("__builtin__", "set"), ("__builtin__", "frozenset"), ("__builtin__", "bytearray"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol-2 pickles store bytes (array buffers) as latin-1 text
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and plain containers, and refuses anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise DataError(f"refusing to load {module}.{name} from a pickle (only numpy arrays and plain "
                            "containers are allowed in annotation files)")
        if module.startswith("numpy"):
            import numpy

            if module == "numpy":
                return getattr(numpy, name)
            try:
                mod = __import__(module, fromlist=[name])
            except ImportError:  # numpy 1 ↔ 2 module rename
                other = module.replace("numpy._core", "numpy.core") if "_core" in module else \
                    module.replace("numpy.core", "numpy._core")
                mod = __import__(other, fromlist=[name])
            return getattr(mod, name)
        if module == "collections":
            import collections

            return getattr(collections, name)
        if module == "_codecs":
            import codecs

            return codecs.encode
        import builtins

        return getattr(builtins, name)


def safe_load_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle file through :class:`SafeUnpickler`; DataError names the file on any problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such pickle file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    try:
        return SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except Exception as exc:  # corrupt or truncated pickles raise many types
        raise DataError(f"{path}: not a readable pickle: {type(exc).__name__}: {exc}") from None


_KEY = re.compile(r"^(?P<video>[^/]+?)(?:\.mp4)?/(?P<frame>\d+)(?:\.\w+)?$")


def parse_key(key: str) -> tuple[str, int]:
    """``"50N4E.mp4/000682.png"`` → (``"50N4E"``, 682)."""
    m = _KEY.match(str(key))
    if not m:
        raise DataError(f"frame key {key!r} is not 'VIDEO.mp4/FRAME.png'")
    return m.group("video"), int(m.group("frame"))


def _as_list(v: Any) -> list:
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return list(v)
    return [v]


def video_graph(video: str, frames: dict[int, list[dict[str, Any]]], persons: dict[int, Any] | None = None,
                *, fps: float | None = None) -> tuple[STSG, list[str]]:
    """One video's annotated frames → (graph, warnings)."""
    warnings: list[str] = []
    if fps is None:
        fps = star_video_fps().get(video)
        if fps is None:
            fps = DEFAULT_FPS
            warnings.append(f"frame rate unknown; assumed {DEFAULT_FPS}")
    known_objects, known_rels = set(ag_objects()), set(ag_relations())
    order = sorted(frames)
    times = [round(f / fps, 3) for f in order]
    objects: dict[str, Object] = {PERSON_ID: Object(PERSON_ID, "person", "dynamic")}
    present: dict[tuple[str, str], list[int]] = defaultdict(list)
    width = height = None
    for k, frame in enumerate(order):
        where = f"{video}/{frame:06d}"
        for item in frames[frame]:
            if not isinstance(item, dict) or "class" not in item:
                raise DataError(f"{where}: annotation {item!r} has no 'class'")
            label = ag_label(str(item["class"]))
            if label not in known_objects:
                warnings.append(f"{where}: object class {label!r} not in Action Genome's list")
            oid = object_id(label)
            if oid not in objects:
                objects[oid] = Object(oid, natural_label(label), "static" if label in STATIC_LABELS else "dynamic")
            box = item.get("bbox")
            if item.get("visible", True) and box is not None:
                try:
                    x, y, w, h = (float(v) for v in list(box)[:4])
                except (TypeError, ValueError):
                    raise DataError(f"{where}: bbox {box!r} of {label} is not (x, y, w, h)") from None
                objects[oid].track.append(Box(times[k], (x, y, x + w, y + h), frame))
            for field in ("attention_relationship", "spatial_relationship", "contacting_relationship"):
                for rel in _as_list(item.get(field)):
                    pred = ag_label(str(rel))
                    if pred in SKIPPED_RELATIONS:
                        continue
                    if pred not in known_rels:
                        warnings.append(f"{where}: relation {pred!r} not in Action Genome's list")
                    present[(pred, oid)].append(k)
        pb = (persons or {}).get(frame)
        if isinstance(pb, dict) and pb.get("bbox") is not None:
            rows = [list(map(float, r)) for r in list(pb["bbox"])]
            if rows and len(rows[0]) >= 4:
                objects[PERSON_ID].track.append(Box(times[k], tuple(rows[0][:4]), frame))
            size = pb.get("bbox_size")
            if size is not None and len(size) == 2:
                width, height = int(size[0]), int(size[1])
    g = STSG(video_id=video, fps=float(fps), duration=times[-1] if times else 0.0, width=width, height=height,
             meta={"source": "action_genome", "keyframes": order,
                   "duration_note": "lower bound: time of the last annotated frame"})
    g.objects = sorted(objects.values(), key=lambda o: (o.id != PERSON_ID, o.id))
    synonyms = {o.label: list(label_synonyms(o.label)) for o in g.objects if label_synonyms(o.label)}
    if synonyms:
        g.meta["synonyms"] = dict(sorted(synonyms.items()))
    n = 0
    for (pred, oid) in sorted(present):
        idx = sorted(set(present[(pred, oid)]))
        runs: list[list[int]] = []
        for i in idx:
            if runs and i == runs[-1][1] + 1:
                runs[-1][1] = i
            else:
                runs.append([i, i])
        for a, b in runs:
            n += 1
            g.relations.append(Relation(f"r{n}", PERSON_ID, pred, oid, times[a], times[b]))
    g.relations.sort(key=lambda r: (r.t0, r.t1, r.predicate, r.object))
    for i, r in enumerate(g.relations, 1):
        r.id = f"r{i}"
    return g, warnings


def _find(src: Path, name: str) -> Path | None:
    if src.is_file():
        return src if src.name == name or name == OBJECT_FILE else None
    p = src / name
    return p if p.is_file() else None


def iter_action_genome(src: str | os.PathLike) -> Iterator[tuple[str, STSG | None, str | None, list[str]]]:
    """``(video, graph or None, why, warnings)`` per video of an Action Genome annotation folder or pkl."""
    src = Path(src)
    obj_path = _find(src, OBJECT_FILE)
    if obj_path is None:
        raise DataError(f"{src}: no {OBJECT_FILE} (pass the annotation folder or the pkl itself)")
    annotations = safe_load_pickle(obj_path)
    if not isinstance(annotations, dict):
        raise DataError(f"{obj_path}: expected a dict of 'VIDEO.mp4/FRAME.png' → objects")
    person_path = _find(src, PERSON_FILE) if src.is_dir() else None
    persons_raw = safe_load_pickle(person_path) if person_path else {}
    by_video: dict[str, dict[int, list]] = defaultdict(dict)
    bad: dict[str, str] = {}
    for key, items in annotations.items():
        try:
            video, frame = parse_key(key)
        except DataError as exc:
            bad[str(key)] = str(exc)
            continue
        by_video[video][frame] = _as_list(items)
    persons: dict[str, dict[int, Any]] = defaultdict(dict)
    for key, val in (persons_raw.items() if isinstance(persons_raw, dict) else []):
        try:
            video, frame = parse_key(key)
        except DataError:
            continue
        persons[video][frame] = val
    for key, why in sorted(bad.items()):
        yield key, None, why, []
    for video in sorted(by_video):
        try:
            g, warnings = video_graph(video, by_video[video], persons.get(video))
        except DataError as exc:
            yield video, None, str(exc), []
            continue
        yield video, g, None, warnings


def import_action_genome(src: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Import Action Genome annotations into a folder of graphs; returns the summary."""
    return write_graphs(iter_action_genome(src), out, source="action_genome", src=Path(src))
