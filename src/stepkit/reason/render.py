"""Rendering a program's trace into a rationale: one grounded statement per reasoning step,
with the graph's times, ending in a statement that gives the answer."""

from __future__ import annotations

from typing import Any

from stepkit.data.record import RationaleStep
from stepkit.graph.types import Action
from stepkit.reason.lexicon import (action_words, cap, clean, fmt_time, is_person_label, noun, ordinal, past, phrases,
                                    verb_something)
from stepkit.reason.ops import GraphContext, TraceStep, Window

_MAX_LISTED = 3


def _the(ctx: GraphContext, oid: str | None) -> str:
    return f"the {ctx.label(oid)}" if oid is not None else "something"


def edge_core(ctx: GraphContext, eid: str) -> str:
    """An event as a clause without times: ``the man picked up the cup``."""
    e = ctx.events[eid]
    if isinstance(e, Action):
        obj = _the(ctx, e.object) if e.object is not None else ""
        tgt = _the(ctx, e.target) if e.target is not None else ""
        return f"{_the(ctx, e.agent)} {action_words(past(e.verb), e.verb, obj, tgt)}"
    return f"{_the(ctx, e.subject)} was {clean(e.predicate)} {_the(ctx, e.object)}"


def edge_sentence(ctx: GraphContext, eid: str) -> str:
    """An event as a clause with its graph times (cached per graph)."""
    got = ctx.text_cache.get(eid)
    if got is None:
        e = ctx.events[eid]
        got = ctx.text_cache[eid] = f"{edge_core(ctx, eid)} from {fmt_time(e.t0)} s to {fmt_time(e.t1)} s"
    return got


def _edges(ctx: GraphContext, ids) -> str:
    evs = [i for i in ids if i in ctx.events]
    listed = [edge_sentence(ctx, i) for i in evs[:_MAX_LISTED]]
    more = len(evs) - len(listed)
    text = "; ".join(listed)
    return text + (f"; and {more} more" if more > 0 else "")


def _span(ctx: GraphContext, ids) -> tuple[float | None, float | None]:
    events = ctx.events
    lo: float | None = None
    hi = 0.0
    for i in ids:
        e = events.get(i)
        if e is not None:
            if lo is None:
                lo, hi = e.t0, e.t1
            else:
                lo, hi = min(lo, e.t0), max(hi, e.t1)
    return lo, (None if lo is None else hi)


def _attr_key(ctx: GraphContext, oid: str, name: str, key: str) -> str:
    """The rationale phrasing for an attribute: a person's colour is their shirt's."""
    if clean(name) in ("color", "colour", "shirt", "shirt color") and is_person_label(ctx.objects[oid].label):
        return key + "_person"
    return key


def _input_ids(trace: list[TraceStep], i: int, seen: set[int] | None = None) -> list[str]:
    """Ids touched by the inputs of node ``i`` (nearest non-empty ancestors)."""
    seen = seen if seen is not None else set()
    out: list[str] = []
    for j in trace[i].inputs:
        if j in seen:
            continue
        seen.add(j)
        ids = list(trace[j].ids) or _input_ids(trace, j, seen)
        out += [x for x in ids if x not in out]
    return out


def _objs_of(ctx: GraphContext, v: Any) -> list[str]:
    items = (v,) if isinstance(v, str) else (v if isinstance(v, tuple) else ())
    return [i for i in items if i in ctx.objects]


def _phrase(ctx: GraphContext, objs: list[str], default: str) -> str:
    return " or ".join(_the(ctx, o) for o in objs[:2]) if objs else default


def _none_clause(ctx: GraphContext, trace: list[TraceStep], t: TraceStep) -> str:
    """What a search that found nothing was looking for: ``the man picked up the book``."""
    role_objs: dict[str, list[str]] = {}
    if t.op == "hop":
        role_objs[t.args["from"]] = _objs_of(ctx, trace[t.inputs[0]].output)
        is_action = t.args["kind"] == "action"
    else:
        for r, j in zip(t.args.get("roles", []), t.inputs[1:]):
            role_objs[r] = _objs_of(ctx, trace[j].output)
        src = trace[t.inputs[0]].output
        first = src[0] if isinstance(src, tuple) and src else None
        is_action = (isinstance(ctx.events.get(first), Action) if first else
                     trace[t.inputs[0]].op != "relations")
    label = t.args.get("label")
    who = _phrase(ctx, role_objs.get("agent") or role_objs.get("subject") or [], "anyone" if is_action else "anything")
    what = _role_phrase(ctx, trace, t, role_objs, "object")
    if is_action:
        if not label:
            return f"{who} did something to {what or 'anything'}"
        target = _role_phrase(ctx, trace, t, role_objs, "target")
        if not what and not target:  # no participant asked about: "walked to anything", "sneezed"
            return f"{who} {past(verb_something(label)).replace('something', 'anything')}"
        return f"{who} {action_words(past(label), label, what, target)}"
    pred = clean(label) if label else "related to"
    return f"{who} was {pred} {what or 'anything'}"


def _role_phrase(ctx: GraphContext, trace: list[TraceStep], t: TraceStep,
                 role_objs: dict[str, list[str]], role: str) -> str:
    """The participant a search asked for in ``role``; one absent from the video is named by its
    label ("the sofa"), not dropped, so the clause never denies every such event."""
    if role_objs.get(role):
        return _phrase(ctx, role_objs[role], "")
    if role not in role_objs or t.op == "hop":
        return ""
    src = trace[t.inputs[1 + list(t.args.get("roles", [])).index(role)]]
    label = src.args.get("label") if src.op == "objects" else None
    return f"the {noun(label)}" if label else ""


def _searched(ctx: GraphContext, trace: list[TraceStep], t: TraceStep) -> list[str]:
    """Grounding for an empty search: the entities it was about, else the events it scanned."""
    ids = _input_ids(trace, t.index)
    if ids:
        return ids
    src = trace[t.inputs[0]].output if t.inputs else ()
    if isinstance(src, tuple) and src:
        return list(src[:5])
    return sorted(ctx.objects)[:5]


def _statement(ctx: GraphContext, trace: list[TraceStep], t: TraceStep) -> tuple[str, list[str]]:
    R = phrases()["rationale"]
    op, out, ids = t.op, t.output, list(t.ids)
    if op in ("hop", "filter_events"):
        evs = [i for i in ids if i in ctx.events]
        if evs:
            return R["hop" if op == "hop" else "events"].format(edges=_edges(ctx, evs)), ids
        return R["events_none"].format(clause=_none_clause(ctx, trace, t)), _searched(ctx, trace, t)
    if op == "filter_attr":
        objs = [i for i in ids if i in ctx.objects] or _input_ids(trace, t.index)
        txt = " ".join(R[_attr_key(ctx, o, t.args["name"], "filter_attr")].format(
            attr=clean(t.args["name"]), o=_the(ctx, o), value=clean(t.args["value"]))
                       for o in objs[:3])
        return (txt or R["filter_attr_none"].format(value=clean(t.args["value"]))), objs
    if op == "query_attr":
        oid = ids[0]
        obj = ctx.objects[oid]
        when = ""
        for at in obj.attributes:
            if at.name == t.args["name"] and at.value == out and (at.t0 is not None or at.t1 is not None):
                lo = fmt_time(at.t0 if at.t0 is not None else 0.0)
                hi = fmt_time(at.t1 if at.t1 is not None else ctx.duration)
                when = f" from {lo} s to {hi} s"
                break
        return R[_attr_key(ctx, oid, t.args["name"], "query_attr")].format(
            attr=clean(t.args["name"]), o=_the(ctx, oid), value=clean(str(out)),
                                      when=when), [oid]
    if op == "participants":
        objs = [i for i in ids if i in ctx.objects]
        return R["objects"].format(what=", ".join(_the(ctx, o) for o in objs[:3]) or "nothing"), objs or _input_ids(trace, t.index)
    if op == "localize":
        w: Window = out
        return R["localize"][w.mode].format(Edge=cap(edge_sentence(ctx, ids[0]))), ids
    if op in ("first", "last", "nth"):
        word = {"first": "first", "last": "last"}.get(op) or ordinal(int(t.args["k"]))
        return R["select"].format(ord=word, edge=edge_sentence(ctx, ids[0])), ids
    if op == "longest":
        return R["longest"].format(edge=edge_sentence(ctx, ids[0])), ids
    if op == "count":
        if not ids:
            return R["count_none"], _searched(ctx, trace, trace[t.inputs[0]]) if trace[t.inputs[0]].inputs else (
                _input_ids(trace, t.index) or sorted(ctx.objects)[:5])
        objs = [i for i in ids if i in ctx.objects]
        if objs and len(objs) == len(ids):
            names = ", ".join(_the(ctx, o) for o in objs[:_MAX_LISTED]) + (" and more" if len(objs) > _MAX_LISTED else "")
            return R["count_objects"].format(be="is" if out == 1 else "are", n=out, names=names), ids
        return R["count"].format(n=out), ids
    if op == "exists":
        if ids and all(i in ctx.objects for i in ids):
            return R["exists_object"].format(what=_the(ctx, ids[0])), ids
        if not ids:
            src = trace[t.inputs[0]]
            if src.op == "objects":
                return R["objects_none"].format(label=noun(src.args.get("label", "such object"))), sorted(ctx.objects)[:5]
            return R["exists_no"], _input_ids(trace, t.index) or sorted(ctx.objects)[:5]
        return R["exists_yes"], ids
    if op == "choose":
        a, b = ids[0], ids[1]
        ea, eb = ctx.events[a], ctx.events[b]
        win = ctx.action_phrase(out)
        if t.args.get("by", "earlier") in ("earlier", "later"):
            return R["choose_first"].format(Ea=cap(edge_core(ctx, a)), ta=fmt_time(ea.t0), eb=edge_core(ctx, b),
                                            tb=fmt_time(eb.t0), winner=win), ids
        return R["choose_longer"].format(Ea=cap(edge_core(ctx, a)), da=fmt_time(ea.t1 - ea.t0), eb=edge_core(ctx, b),
                                         db=fmt_time(eb.t1 - eb.t0), winner=win), ids
    val = out if not isinstance(out, tuple) else ", ".join(out)
    return R["generic"].format(op=op, value=val), ids or _input_ids(trace, t.index) or sorted(ctx.objects)[:3]


def rationale(ctx: GraphContext, trace: list[TraceStep], answer: str) -> list[RationaleStep]:
    """One grounded statement per reasoning step, then the answer statement."""
    steps: list[RationaleStep] = []
    for t in trace:
        if not t.step:
            continue
        text, grounding = _statement(ctx, trace, t)
        t0, t1 = _span(ctx, grounding)
        steps.append(RationaleStep(cap(text), list(grounding), t0, t1))
    last = steps[-1] if steps else RationaleStep(text="", grounding=sorted(ctx.objects)[:1])
    steps.append(RationaleStep(text=phrases()["rationale"]["conclusion"].format(answer=answer),
                               grounding=list(last.grounding), t0=last.t0, t1=last.t1))
    return steps


def answer_sentence(variant: str, slots: dict[str, str], answer: str) -> str:
    """The short answer sentence of a question variant."""
    table = phrases()["answer_sentences"]
    tmpl = table.get(variant) or table.get(variant.rsplit("_", 1)[0]) or "The answer is {answer}."
    kw = {k: v for k, v in slots.items()}
    kw.update({cap(k): cap(v) for k, v in slots.items()})
    kw.update(answer=answer, Answer_cap=cap(answer), answer_past=past(answer) if answer else answer,
              be="is" if answer == "1" else "are", times="time" if answer == "1" else "times",
              objects="object" if answer == "1" else "objects", things="thing" if answer == "1" else "things",
              noun=slots.get("label", "") if answer == "1" else slots.get("plural", ""))
    try:
        return cap(tmpl.format(**kw))
    except (KeyError, IndexError):
        return f"The answer is {answer}."
