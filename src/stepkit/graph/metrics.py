"""Graph accuracy: how well a predicted STSG recovers a ground-truth one.

Matching, in order (all one-to-one and deterministic):

1. **Entities.** Nodes joined by reference edges are one entity (label of the lowest id). A
   predicted entity may match a GT entity only with the same label and no conflicting attribute
   (for every attribute name both carry, their value sets intersect). Candidates are ranked by
   agreeing attributes, then mean box IoU over the times both tracks have a box, then temporal IoU
   of their visible spans; pairs are taken greedily best-first. *Object recall* = matched GT
   entities / GT entities.
2. **Triplets.** A predicted relation matches a GT relation when its subject and object map (through
   step 1) to the GT relation's subject and object, the predicates are equal, and the temporal IoU is
   at least ``tiou`` (0.5); pairs are taken greedily by tIoU. Precision over predicted relations,
   recall over GT relations.
3. **Actions.** A predicted action matches a GT action on equal verb and object (mapped through
   step 1; both absent also agrees) at tIoU ≥ ``tiou``. ``action_recall_agent`` also requires the agent.
4. **Cuts.** GT cuts are the clip starts after the first; a predicted cut matches an unmatched GT
   cut within ``cut_tolerance`` seconds (closest first). F1 = 2·matched / (predicted + GT), 1 when
   both are empty.

Overall numbers are micro-averages (summed matches over summed counts); a ratio with a zero
denominator is ``None``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepkit.graph.types import STSG, Object

METRIC_KEYS = (
    "object_recall",
    "object_precision",
    "triplet_precision",
    "triplet_recall",
    "action_recall",
    "action_recall_agent",
    "cut_precision",
    "cut_recall",
    "cut_f1",
)
# Interval ends are float seconds: an IoU of exactly the threshold must not fail by rounding.
_EPS = 1e-9
COUNT_KEYS = (
    "gt_objects", "pred_objects", "matched_objects",
    "gt_triplets", "pred_triplets", "matched_triplets",
    "gt_actions", "pred_actions", "matched_actions", "matched_actions_agent",
    "gt_cuts", "pred_cuts", "matched_cuts",
)


def tiou(a0: float, a1: float, b0: float, b1: float) -> float:
    """Temporal IoU of ``[a0, a1]`` and ``[b0, b1]`` (two equal instants count as 1)."""
    inter = min(a1, b1) - max(a0, b0)
    union = max(a1, b1) - min(a0, b0)
    if union <= 0:
        return 1.0 if a0 == b0 and a1 == b1 else 0.0
    return max(0.0, inter) / union


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Entity:
    id: str
    label: str
    members: list[Object]
    span: tuple[float, float] | None

    def attrs(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for o in self.members:
            for a in o.attributes:
                out.setdefault(a.name, set()).add(a.value)
        return out

    def boxes(self) -> list[tuple[float, tuple]]:
        return sorted((b.t, tuple(b.xyxy)) for o in self.members for b in o.track)


def entities(graph: STSG) -> tuple[dict[str, str], dict[str, _Entity]]:
    """Node id → entity id (reference edges merged), and the entities by id."""
    from stepkit.graph.index import TemporalIndex

    parent = {o.id: o.id for o in graph.objects}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in graph.references:
        if r.a in parent and r.b in parent:
            ra, rb = find(r.a), find(r.b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    node_to = {o.id: find(o.id) for o in graph.objects}
    index = TemporalIndex(graph)
    groups: dict[str, list[Object]] = {}
    for o in sorted(graph.objects, key=lambda o: o.id):
        groups.setdefault(node_to[o.id], []).append(o)
    ents: dict[str, _Entity] = {}
    for eid, members in groups.items():
        spans = [s for s in (index.visible_span(m.id) for m in members) if s is not None]
        span = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
        ents[eid] = _Entity(eid, members[0].label, members, span)
    return node_to, ents


def _track_iou(p: _Entity, g: _Entity, tol: float) -> float:
    gb = g.boxes()
    if not gb:
        return 0.0
    import bisect

    times = [t for t, _ in gb]
    ious = []
    for t, box in p.boxes():
        i = bisect.bisect_left(times, t)
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(gb) and abs(gb[j][0] - t) <= tol and (best is None or abs(gb[j][0] - t) < abs(gb[best][0] - t)):
                best = j
        if best is not None:
            ious.append(_box_iou(box, gb[best][1]))
    return sum(ious) / len(ious) if ious else 0.0


def match_entities(pred: STSG, gt: STSG) -> tuple[dict[str, str], dict[str, str], dict[str, _Entity], dict[str, _Entity]]:
    """(pred node → GT entity, pred entity → GT entity, pred entities, GT entities)."""
    p_node, p_ents = entities(pred)
    g_node, g_ents = entities(gt)
    tol = 0.5 / max(gt.fps, 1e-6)
    cands = []
    for pe in p_ents.values():
        pa = pe.attrs()
        for ge in g_ents.values():
            if pe.label != ge.label:
                continue
            ga = ge.attrs()
            shared = set(pa) & set(ga)
            if any(not (pa[n] & ga[n]) for n in shared):
                continue
            agree = len(shared)
            box = _track_iou(pe, ge, tol)
            span = tiou(*pe.span, *ge.span) if pe.span and ge.span else 0.0
            cands.append((-agree, -box, -span, pe.id, ge.id))
    ent_map: dict[str, str] = {}
    used: set[str] = set()
    for _, _, _, pid, gid in sorted(cands):
        if pid in ent_map or gid in used:
            continue
        ent_map[pid] = gid
        used.add(gid)
    node_map = {n: ent_map[e] for n, e in p_node.items() if e in ent_map}
    return node_map, ent_map, p_ents, g_ents


def _greedy(cands: list[tuple[float, str, str]]) -> int:
    """Size of a greedy one-to-one matching of (score, pred id, gt id) candidates, best score first."""
    used_p: set[str] = set()
    used_g: set[str] = set()
    for _, p, g in sorted(cands, key=lambda c: (-c[0], c[1], c[2])):
        if p not in used_p and g not in used_g:
            used_p.add(p)
            used_g.add(g)
    return len(used_p)


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def count_matches(pred: STSG, gt: STSG, *, tiou_threshold: float = 0.5, cut_tolerance: float = 0.5) -> dict[str, int]:
    """The raw match counts between one predicted and one GT graph (see the module doc)."""
    node_map, ent_map, p_ents, g_ents = match_entities(pred, gt)
    g_node_ent = entities(gt)[0]

    def g_ent(node: str | None) -> str | None:
        return None if node is None else g_node_ent.get(node, node)

    def p_ent(node: str | None) -> str | None:
        if node is None:
            return None
        return node_map.get(node, f"\x00unmatched:{node}")

    rel = []
    for p in pred.relations:
        ps, po = p_ent(p.subject), p_ent(p.object)
        for g in gt.relations:
            if p.predicate == g.predicate and ps == g_ent(g.subject) and po == g_ent(g.object):
                s = tiou(p.t0, p.t1, g.t0, g.t1)
                if s >= tiou_threshold - _EPS:
                    rel.append((s, p.id, g.id))
    act, act_agent = [], []
    for p in pred.actions:
        po = p_ent(p.object)
        for g in gt.actions:
            if p.verb == g.verb and po == g_ent(g.object):
                s = tiou(p.t0, p.t1, g.t0, g.t1)
                if s >= tiou_threshold - _EPS:
                    act.append((s, p.id, g.id))
                    if p_ent(p.agent) == g_ent(g.agent):
                        act_agent.append((s, p.id, g.id))
    pc, gc = pred.cuts(), gt.cuts()
    cut = [(-abs(a - b), f"p{i:09d}", f"g{j:09d}") for i, a in enumerate(pc) for j, b in enumerate(gc)
           if abs(a - b) <= cut_tolerance + _EPS]
    return {
        "gt_objects": len(g_ents), "pred_objects": len(p_ents), "matched_objects": len(ent_map),
        "gt_triplets": len(gt.relations), "pred_triplets": len(pred.relations), "matched_triplets": _greedy(rel),
        "gt_actions": len(gt.actions), "pred_actions": len(pred.actions), "matched_actions": _greedy(act),
        "matched_actions_agent": _greedy(act_agent),
        "gt_cuts": len(gc), "pred_cuts": len(pc), "matched_cuts": _greedy(cut),
    }


def metrics_from_counts(c: dict[str, int]) -> dict[str, float | None]:
    """The ratios of :data:`METRIC_KEYS` from match counts."""
    n_cuts = c["pred_cuts"] + c["gt_cuts"]
    return {
        "object_recall": _ratio(c["matched_objects"], c["gt_objects"]),
        "object_precision": _ratio(c["matched_objects"], c["pred_objects"]),
        "triplet_precision": _ratio(c["matched_triplets"], c["pred_triplets"]),
        "triplet_recall": _ratio(c["matched_triplets"], c["gt_triplets"]),
        "action_recall": _ratio(c["matched_actions"], c["gt_actions"]),
        "action_recall_agent": _ratio(c["matched_actions_agent"], c["gt_actions"]),
        "cut_precision": _ratio(c["matched_cuts"], c["pred_cuts"]),
        "cut_recall": _ratio(c["matched_cuts"], c["gt_cuts"]),
        "cut_f1": 2 * c["matched_cuts"] / n_cuts if n_cuts else 1.0,
    }


def score_graph(pred: STSG, gt: STSG, *, tiou_threshold: float = 0.5, cut_tolerance: float = 0.5) -> dict[str, Any]:
    """Metrics and counts for one video."""
    counts = count_matches(pred, gt, tiou_threshold=tiou_threshold, cut_tolerance=cut_tolerance)
    return {**metrics_from_counts(counts), "counts": counts}


def _empty_like(gt: STSG) -> STSG:
    return STSG(video_id=gt.video_id, fps=gt.fps, duration=gt.duration)


def score_dirs(
    pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, *, tiou_threshold: float = 0.5, cut_tolerance: float = 0.5
) -> dict[str, Any]:
    """Score every GT graph in ``gt_dir`` against the same-named file in ``pred_dir``.

    A GT video with no prediction scores as an empty prediction and is listed under ``missing``;
    predictions with no GT are listed under ``extra`` and not scored.
    """
    from stepkit.errors import GraphError
    from stepkit.graph.serialize import iter_graph_files, load_graph

    gt_files = {p.stem: p for p in iter_graph_files(gt_dir)}
    pred_files = {p.stem: p for p in iter_graph_files(pred_dir)}
    if not gt_files:
        raise GraphError(f"{gt_dir}: no ground-truth graph files (*.json)")
    per_video: dict[str, Any] = {}
    total = {k: 0 for k in COUNT_KEYS}
    missing = []
    for stem in sorted(gt_files):
        gt = load_graph(gt_files[stem])
        if stem in pred_files:
            pred = load_graph(pred_files[stem])
        else:
            missing.append(stem)
            pred = _empty_like(gt)
        res = score_graph(pred, gt, tiou_threshold=tiou_threshold, cut_tolerance=cut_tolerance)
        per_video[stem] = res
        for k in COUNT_KEYS:
            total[k] += res["counts"][k]
    return {
        "overall": {**metrics_from_counts(total), "counts": total, "videos": len(per_video)},
        "videos": per_video,
        "missing": missing,
        "extra": sorted(set(pred_files) - set(gt_files)),
        "settings": {"tiou": tiou_threshold, "cut_tolerance": cut_tolerance},
        "pred_dir": str(Path(pred_dir)),
        "gt_dir": str(Path(gt_dir)),
    }
