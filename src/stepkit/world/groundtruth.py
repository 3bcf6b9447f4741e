"""The exact STSG of a world video, stating only what its pixels show.

An entity counts as visible in a frame when its whole box lies inside the picture (2 px margin);
relations and actions are stated only while all their ends are visible. Spatial relations of a
person ("next to", "in front of") hold while the person stands still close to the other end.
"""

from __future__ import annotations

from collections import defaultdict

from stepkit.graph.types import STSG, Action, Attribute, Box, Clip, Object, Relation
from stepkit.world import vocab as V
from stepkit.world.render import entity_box
from stepkit.world.sim import Timeline

MIN_RUN = 3  # frames; shorter relation runs are not stated (the perceiver drops them too)


def pixel_box(tl: Timeline, box, f: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A world box as integer pixel coordinates (x0, y0, x1, y1; y down, x1/y1 exclusive)."""
    W, H = size
    x_left, s = tl.views[tl.shot_of(f)]
    base = H - int(round(V.FLOOR_DEPTH * s))
    return (int(round((box[0] - x_left) * s)), base - int(round(box[3] * s)),
            int(round((box[2] - x_left) * s)), base - int(round(box[1] * s)))


def visible(pbox: tuple[int, int, int, int], size: tuple[int, int]) -> bool:
    """Whether a pixel box lies wholly inside the picture (the visibility rule)."""
    W, H = size
    return pbox[0] >= 2 and pbox[2] <= W - 2 and pbox[1] >= 2 and pbox[3] <= H


def spatial(person: tuple[float, float], other: tuple[float, float], near: float = V.NEXT_TO_GAP) -> str | None:
    """The spatial predicate between a still, standing person's x-extent and another's (or None)."""
    overlap = min(person[1], other[1]) - max(person[0], other[0])
    if overlap >= V.TORSO_HALF:
        return "in front of"
    if overlap > -near:
        return "next to"
    return None


def frame_facts(tl: Timeline, f: int, size: tuple[int, int], vis: dict[str, bool]) -> set[tuple[str, str, str]]:
    """(subject, predicate, object) triplets that hold and are visible at frame ``f``."""
    out: set[tuple[str, str, str]] = set()
    for p in tl.persons:
        pid = p.id
        if not vis[pid]:
            continue
        pose = tl.pose[pid][f]
        if pose == "stand" and not tl.moving[pid][f]:
            pb = entity_box(tl, pid, f)
            for F in tl.furniture:
                if vis[F.id]:
                    rel = spatial((pb[0], pb[2]), (F.x0, F.x1))
                    if rel:
                        out.add((pid, rel, F.id))
            for q in tl.persons:
                if q.id != pid and vis[q.id] and tl.pose[q.id][f] == "stand" and not tl.moving[q.id][f]:
                    qb = entity_box(tl, q.id, f)
                    if spatial((pb[0], pb[2]), (qb[0], qb[2]), V.PERSON_NEXT_TO_GAP) == "next to":
                        out.add((pid, "next to", q.id))
        elif pose in ("sit", "lie") and vis.get(tl.seat[pid][f] or "", False):
            out.add((pid, "sitting on" if pose == "sit" else "lying on", tl.seat[pid][f]))
        g = tl.gaze[pid][f]
        if g is not None and vis.get(g, False):
            out.add((pid, "looking at", g))
    for it in tl.items:
        if not vis[it.id]:
            continue
        sp = tl.sup[it.id][f]
        if sp[0] == "held" and vis[sp[1]]:
            out.add((sp[1], "holding", it.id))
        elif sp[0] == "on" and vis[sp[1]]:
            out.add((it.id, "on", sp[1]))
        elif sp[0] == "in" and vis[sp[1]]:
            out.add((it.id, "inside", sp[1]))
    return out


def runs(frames: list[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive frame indices as (first, last)."""
    out: list[tuple[int, int]] = []
    for f in sorted(frames):
        if out and f == out[-1][1] + 1:
            out[-1] = (out[-1][0], f)
        else:
            out.append((f, f))
    return out


def _t(f: int, fps: float) -> float:
    return round(f / fps, 4)


def _phrase(a: Action, names: dict[str, str]) -> str:
    o = names.get(a.object or "", "")
    t = names.get(a.target or "", "")
    return {
        "walk to": f"walks to {t}", "pick up": f"picks up {o}", "put down": f"puts {o} down on {t}",
        "put in": f"puts {o} in {t}", "give": f"gives {o} to {t}", "throw": f"throws {o} onto {t}",
        "open": f"opens {o}", "close": f"closes {o}", "sit down": f"sits down on {o}",
        "lie down": f"lies down on {o}", "stand up": f"stands up from {o}",
        "drink from": f"drinks from {o}", "read": f"reads {o}", "use": f"uses {o}",
    }.get(a.verb, f"{a.verb} {o}".strip())


def referring_names(objects: list[Object]) -> dict[str, str]:
    """A short referring expression per object ("the person in the orange shirt", "the small red cup")."""
    names = {}
    for o in objects:
        if o.label == "person":
            names[o.id] = f"the person in the {o.attribute('color')} shirt"
            continue
        words = [a.value for a in o.attributes if a.name in ("size", "color")]
        mat = o.attribute("material")
        if mat:
            words.append("wooden" if mat == "wood" else "metal")
        names[o.id] = "the " + " ".join(words + [o.label])
    return names


def describe(actions: list[Action], objects: list[Object], t0: float, t1: float) -> str:
    """One sentence describing what happens in ``[t0, t1]``."""
    names = referring_names(objects)
    inside = [a for a in sorted(actions, key=lambda a: a.t0) if a.t0 >= t0 - 1e-6 and a.t1 <= t1 + 1e-6]
    if not inside:
        people = [names[o.id] for o in objects if o.label == "person"]
        who = people[0] if people else "nobody"
        return (who[0].upper() + who[1:] + " stays in the room.") if people else "An empty room."
    parts: list[str] = []
    agent = None
    for a in inside[:3]:
        ph = _phrase(a, names)
        parts.append(ph if a.agent == agent else f"{names[a.agent]} {ph}")
        agent = a.agent
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text[0].upper() + text[1:] + "."


def build_graph(tl: Timeline, size: tuple[int, int], video_id: str, meta: dict | None = None) -> STSG:
    """The ground-truth STSG of a planned world video."""
    fps, n = tl.fps, tl.n
    ids = [p.id for p in tl.persons] + [F.id for F in tl.furniture] + [i.id for i in tl.items]
    boxes: dict[str, list] = {e: [None] * n for e in ids}
    vis: list[dict[str, bool]] = []
    for f in range(n):
        v = {}
        for e in ids:
            pb = pixel_box(tl, entity_box(tl, e, f), f, size)
            boxes[e][f] = pb
            v[e] = visible(pb, size)
        vis.append(v)
    facts = [frame_facts(tl, f, size, vis[f]) for f in range(n)]

    # objects (only those seen long enough to be recoverable)
    seen = {e: sum(vis[f][e] for f in range(n)) for e in ids}
    step = max(1, int(round(fps / 2)))
    objects: list[Object] = []
    for e in ids:
        if seen[e] < MIN_RUN:
            continue
        track = [Box(t=_t(f, fps), xyxy=tuple(float(x) for x in boxes[e][f]), frame=f)
                 for f in range(0, n, step) if vis[f][e]]
        if e in tl.px:
            p = next(p for p in tl.persons if p.id == e)
            objects.append(Object(id=e, label="person", kind="dynamic", attributes=[Attribute("color", p.color)], track=track))
        elif e in tl.sup:
            it = next(i for i in tl.items if i.id == e)
            attrs = [Attribute("color", it.color)] + ([Attribute("size", it.size)] if it.size else [])
            objects.append(Object(id=e, label=it.label, kind="dynamic", attributes=attrs, track=track))
        else:
            F = next(F for F in tl.furniture if F.id == e)
            if F.label == "door":
                attrs = []
                for value, o in (("closed", 0.0), ("open", 1.0)):
                    frames = [f for f in range(n) if vis[f][e] and tl.door[e][f] == o]
                    attrs += [Attribute("state", value, _t(a, fps), _t(b, fps)) for a, b in runs(frames) if b - a + 1 >= MIN_RUN]
                attrs.sort(key=lambda a: a.t0)
            else:
                attrs = [Attribute("material", F.material)]
            objects.append(Object(id=e, label=F.label, kind="static", attributes=attrs, track=track))
    kept = {o.id for o in objects}

    # relations
    by_triplet: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for f, fs in enumerate(facts):
        for tr in fs:
            by_triplet[tr].append(f)
    relations: list[Relation] = []
    for (s_, p_, o_), frames in sorted(by_triplet.items()):
        if s_ not in kept or o_ not in kept:
            continue
        for a, b in runs(frames):
            if b - a + 1 >= MIN_RUN:
                relations.append(Relation(id="", subject=s_, predicate=p_, object=o_, t0=_t(a, fps), t1=_t(b, fps)))
    relations.sort(key=lambda r: (r.t0, r.t1, r.subject, r.predicate, r.object))
    for k, r in enumerate(relations):
        r.id = f"r{k + 1}"

    # actions, stated when every participant is visible where it matters
    actions: list[Action] = []
    for a in tl.actions:
        need0 = [a.agent] + ([a.object] if a.object else [])
        need1 = need0 + ([a.target] if a.target else [])
        if not all(e in kept and vis[a.f0][e] for e in need0) or not all(e in kept and vis[a.f1][e] for e in need1):
            continue
        if a.verb == "walk to" and not any(tr[0] == a.agent and tr[2] == a.target and tr[1] in ("next to", "in front of")
                                           for tr in facts[a.f1]):
            continue
        actions.append(Action(id="", agent=a.agent, verb=a.verb, t0=_t(a.f0, fps), t1=_t(a.f1, fps),
                              object=a.object, target=a.target))
    actions.sort(key=lambda x: (x.t0, x.t1, x.agent))
    for k, x in enumerate(actions):
        x.id = f"a{k + 1}"

    # clips
    bounds = [0] + list(tl.cuts) + [n]
    clips: list[Clip] = []
    for k in range(len(bounds) - 1):
        a, b = bounds[k], bounds[k + 1]
        t0, t1 = _t(a, fps), (_t(b, fps) if k + 1 < len(bounds) - 1 else _t(n, fps))
        kf = sorted({_t(a + int((b - a) * (j + 0.5) / 3), fps) for j in range(3)})
        clips.append(Clip(id=f"c{k + 1}", t0=t0, t1=t1, keyframes=kf))
    for c in clips:
        c.description = describe(actions, objects, c.t0, c.t1)

    W, H = size
    return STSG(video_id=video_id, fps=float(fps), duration=_t(n, fps), num_frames=n, width=W, height=H,
                objects=objects, relations=relations, actions=actions, clips=clips, meta=dict(meta or {}))
