"""The program language over STSGs: typed operators, programs as JSON, and the executor.

A program is a list of nodes ``{"op": NAME, "in": [i, ...], "args": {...}}``; ``in`` holds indices
of earlier nodes whose outputs feed this one, and the last node's output is the answer (the form
of CLEVR's and STAR's functional programs). :func:`program_to_tree` / :func:`tree_to_program`
convert to and from the nested form ``{"op", "args", "in": [subtree, ...]}``.

Values: ``objs`` / ``events`` are tuples of graph ids, ``item`` one id, ``window`` a
:class:`Window`, plus ``str``, ``int`` and ``bool``. The step count of a program is the number of
nodes whose operator is a reasoning step (``OPS[name].step``); see ``docs/reasoning.md``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Callable, NamedTuple, Sequence

from stepkit.errors import DataError, StepkitError
from stepkit.graph.types import STSG, Action, Relation
from stepkit.reason.lexicon import clean
from stepkit.reason.lexicon import verb_say as _verb_say

Event = Action | Relation


class ProgramError(DataError):
    """A program is malformed (unknown operator, bad input index, missing argument)."""


class ExecError(StepkitError):
    """A program cannot be executed on a graph; ``reason`` names why (e.g. ``ambiguous``)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Window(NamedTuple):
    """A time window ``[t0, t1]`` made by :func:`localize` relative to an ``anchor`` event."""

    t0: float
    t1: float
    mode: str = "all"
    anchor: str | None = None


# ----------------------------------------------------------------------------------------------
# Graph context


ROLES = ("agent", "subject", "object", "target")


def role_of(ev: Event, role: str) -> str | None:
    """The id filling ``role`` of an event (``agent`` and ``subject`` are synonyms)."""
    if role in ("agent", "subject"):
        return ev.agent if isinstance(ev, Action) else ev.subject
    if role == "object":
        return ev.object
    if role == "target":
        return ev.target if isinstance(ev, Action) else None
    raise ExecError("bad-program", f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


# Where each role's filler sits in ``GraphContext.parts``: (agent or subject, object, target, label).
_ROLE_SLOT = {"agent": 0, "subject": 0, "object": 1, "target": 2}


def event_label(ev: Event) -> str:
    """An event's verb (actions) or predicate (relations)."""
    return ev.verb if isinstance(ev, Action) else ev.predicate


class GraphContext:
    """One graph plus the lookups the executor and the sampler need."""

    def __init__(self, graph: STSG, natural: bool = False):
        self.graph = graph
        # natural: labels read as natural nouns and verbs as people say them ("cup/glass/bottle" ->
        # "cup", "watch at" -> "look at"); generated records are made and verified this way
        self.natural = natural
        self._labels: dict[str, str] = {}
        self.duration = float(graph.duration)
        self.objects = graph.object_map()
        key = lambda e: (e.t0, e.t1, e.id)  # noqa: E731
        acts = sorted(graph.actions, key=key)
        rels = sorted(graph.relations, key=key)
        self.actions: tuple[str, ...] = tuple(a.id for a in acts)
        self.relations: tuple[str, ...] = tuple(r.id for r in rels)
        self.action_map: dict[str, Action] = {a.id: a for a in acts}
        self.events: dict[str, Event] = dict(self.action_map)
        self.events.update((e.id, e) for e in rels)
        self.rank: dict[str, int] = {e.id: i for i, e in enumerate(sorted(self.events.values(), key=key))}
        # event id -> (agent or subject, object, target, verb or predicate): role lookups as indexing
        self.parts: dict[str, tuple[str | None, ...]] = {
            e.id: (role_of(e, "agent"), e.object, role_of(e, "target"), event_label(e)) for e in self.events.values()}
        self._with: dict[str | None, tuple[str, ...]] = {}
        self._phrases: dict[str, str] = {}
        self._hops: dict[tuple, dict[str, list[tuple[Event, str]]]] = {}
        self.text_cache: dict[str, str] = {}  # rendered sentences of this graph's events
        self.results: dict[tuple, tuple] = {}  # operator results the sampler's builders remember (Builder memo)
        self.by_label: dict[str, list[str]] = defaultdict(list)
        for o in graph.objects:
            self.by_label[o.label].append(o.id)
        # object id -> [(event, role the object fills)]
        self.incident: dict[str, list[tuple[Event, str]]] = defaultdict(list)
        for e in acts:
            for role in ("agent", "object", "target"):
                oid = role_of(e, role)
                if oid is not None:
                    self.incident[oid].append((e, role))
        for r in rels:
            self.incident[r.subject].append((r, "subject"))
            self.incident[r.object].append((r, "object"))

    def objects_with(self, label: str | None) -> tuple[str, ...]:
        """Ids of the objects with ``label`` (all objects for None), sorted; cached."""
        got = self._with.get(label)
        if got is None:
            got = tuple(sorted(self.objects if label is None else self.by_label.get(label, ())))
            self._with[label] = got
        return got

    def hop_edges(self, kind: str, label: str | None, frm: str, to: str) -> dict[str, list[tuple[Event, str]]]:
        """For a hop along ``kind`` edges (with ``label``, if given) from role ``frm`` to role ``to``:
        object id -> [(edge, the object in role ``to``)], edges in time order; cached."""
        key = (kind, label, frm, to)
        got = self._hops.get(key)
        if got is None:
            for r in (frm, to):  # an unknown role is a bad program, even where no edge would use it
                if r not in ROLES:
                    raise ExecError("bad-program", f"hop: unknown role {r!r}; choose one of {', '.join(ROLES)}")
            want = Action if kind == "action" else Relation
            first = frm in ("agent", "subject")
            got = {}
            for oid, inc in self.incident.items():
                for e, role in inc:
                    if type(e) is not want or (role != frm and not (first and role in ("agent", "subject"))):
                        continue
                    if label is not None and event_label(e) != label:
                        continue
                    dst = role_of(e, to)
                    if dst is not None:
                        got.setdefault(oid, []).append((e, dst))
            self._hops[key] = got
        return got

    def label(self, oid: str) -> str:
        """The label of object ``oid`` as words (its natural noun in a natural context)."""
        got = self._labels.get(oid)
        if got is None:
            if self.natural:
                from stepkit.reason.lexicon import noun

                got = noun(self.objects[oid].label)
            else:
                got = clean(self.objects[oid].label)
            self._labels[oid] = got
        return got

    def verb(self, label: str) -> str:
        """A verb or predicate label as words (as people say it, in a natural context)."""
        if self.natural:
            return _verb_say(label)
        return clean(label)

    def sort_events(self, ids) -> tuple[str, ...]:
        """Event ids in time order."""
        return tuple(sorted(set(ids), key=self.rank.__getitem__))

    def action_phrase(self, eid: str) -> str:
        """An event as a base-form phrase: ``pick up the cup``, ``holding the cup`` (cached)."""
        got = self._phrases.get(eid)
        if got is None:
            got = self._phrases[eid] = self._action_phrase(eid)
        return got

    def _action_phrase(self, eid: str) -> str:
        from stepkit.reason.lexicon import action_words

        e = self.events[eid]
        if isinstance(e, Relation):
            return f"{clean(e.predicate)} the {self.label(e.object)}"
        obj = f"the {self.label(e.object)}" if e.object is not None else ""
        tgt = f"the {self.label(e.target)}" if e.target is not None else ""
        return action_words(self.verb(e.verb), e.verb, obj, tgt)


# ----------------------------------------------------------------------------------------------
# Operators


@dataclass(frozen=True)
class OpSpec:
    """One operator: its function, whether it is a reasoning step, its types and what it does."""

    name: str
    fn: Callable[[GraphContext, list, dict], tuple[Any, tuple]]
    step: int
    inputs: str
    output: str
    args: tuple[str, ...]
    doc: str
    star: str = ""
    agqa: str = ""


def _set(v: Any, what: str) -> tuple[str, ...]:
    if type(v) is tuple:
        return v
    if isinstance(v, str):
        return (v,)
    if isinstance(v, tuple) and not isinstance(v, Window):
        return v
    raise ExecError("type", f"{what}: expected a set of ids, got {type(v).__name__}")


def _event(ctx: GraphContext, v: Any, what: str) -> Event:
    if isinstance(v, str) and v in ctx.events:
        return ctx.events[v]
    raise ExecError("type", f"{what}: expected one event id, got {v!r}")


def _item(v: Any, what: str) -> str:
    if isinstance(v, str):
        return v
    raise ExecError("type", f"{what}: expected one id, got {v!r}")


def _window(v: Any, what: str) -> Window | None:
    if v is None or isinstance(v, Window):
        return v
    raise ExecError("type", f"{what}: expected a window, got {v!r}")


def in_window(ev: Event, w: Window | None) -> bool:
    """Whether an event falls in a window: actions must lie wholly before / after the anchor,
    relations (states) need only overlap; ``while`` and ``all`` windows take any overlap."""
    if w is None:
        return True
    if ev.id == w.anchor:
        return False
    if w.mode == "before":
        return (ev.t1 <= w.t1) if isinstance(ev, Action) else (ev.t0 < w.t1)
    if w.mode == "after":
        return (ev.t0 >= w.t0) if isinstance(ev, Action) else (ev.t1 > w.t0)
    return ev.t0 <= w.t1 and ev.t1 >= w.t0


def _opt_window(ins: list, i: int, what: str) -> Window | None:
    return _window(ins[i], what) if len(ins) > i else None


def op_video(ctx, ins, args):
    return Window(0.0, ctx.duration, "all", None), ()


def op_objects(ctx, ins, args):
    ids = ctx.objects_with(args.get("label"))
    return ids, ids


def op_actions(ctx, ins, args):
    w = _opt_window(ins, 0, "actions")
    ids = ctx.actions if w is None else tuple(i for i in ctx.actions if in_window(ctx.events[i], w))
    return ids, ()


def op_relations(ctx, ins, args):
    w = _opt_window(ins, 0, "relations")
    ids = ctx.relations if w is None else tuple(i for i in ctx.relations if in_window(ctx.events[i], w))
    return ids, ()


def op_during(ctx, ins, args):
    items = _set(ins[0], "during")
    w = _window(ins[1], "during")
    if all(i in ctx.events for i in items):
        out = tuple(i for i in items if in_window(ctx.events[i], w))
    else:  # objects: keep those taking part in an edge inside the window
        out = tuple(o for o in items if any(in_window(e, w) for e, _ in ctx.incident.get(o, ())))
    return out, ()


def op_unique(ctx, ins, args):
    items = ins[0]
    if type(items) is not tuple:
        items = _set(items, "unique")
    if len(items) != 1:
        reason = "empty" if not items else "ambiguous"
        raise ExecError(reason, f"unique: expected exactly one item, got {len(items)}")
    return items[0], items


def op_filter_events(ctx, ins, args):
    evs = _set(ins[0], "filter_events")
    label = args.get("label")
    roles = args.get("roles", [])
    if len(roles) != len(ins) - 1:
        raise ExecError("bad-program", f"filter_events: {len(roles)} roles but {len(ins) - 1} participant inputs")
    for r in roles:
        if r not in _ROLE_SLOT:
            raise ExecError("bad-program", f"filter_events: unknown role {r!r}; choose one of {', '.join(ROLES)}")
    pairs = [(_ROLE_SLOT[r], frozenset(_set(v, "filter_events"))) for r, v in zip(roles, ins[1:])]
    parts = ctx.parts
    out = []
    for i in evs:
        p = parts[i]
        if label is not None and p[3] != label:
            continue
        for slot, allowed in pairs:
            if p[slot] not in allowed:
                break
        else:
            out.append(i)
    out = tuple(out)
    return out, out


def op_filter_attr(ctx, ins, args):
    objs = _set(ins[0], "filter_attr")
    w = _opt_window(ins, 1, "filter_attr")
    name, value = args["name"], args["value"]
    out = tuple(o for o in objs if value in _attr_values(ctx, o, name, w))
    return out, out


def _attr_values(ctx: GraphContext, oid: str, name: str, w: Window | None) -> list[str]:
    obj = ctx.objects.get(oid)
    if obj is None:
        raise ExecError("type", f"attribute: {oid!r} is not an object")
    vals = []
    for a in obj.attributes:
        if a.name != name:
            continue
        if w is not None:
            lo = a.t0 if a.t0 is not None else float("-inf")
            hi = a.t1 if a.t1 is not None else float("inf")
            if w.mode == "before":
                ok = lo < w.t1
            elif w.mode == "after":
                ok = hi > w.t0
            else:
                ok = lo <= w.t1 and hi >= w.t0
            if not ok:
                continue
        if a.value not in vals:
            vals.append(a.value)
    return vals


def op_query_attr(ctx, ins, args):
    oid = _item(ins[0], "query_attr")
    w = _opt_window(ins, 1, "query_attr")
    vals = _attr_values(ctx, oid, args["name"], w)
    if len(vals) != 1:
        reason = "empty" if not vals else "ambiguous"
        raise ExecError(reason, f"query_attr: {oid} has {len(vals)} values of {args['name']!r} in the window")
    return vals[0], (oid,)


def op_hop(ctx, ins, args):
    src = _set(ins[0], "hop")
    w = _opt_window(ins, 1, "hop")
    edges = ctx.hop_edges(args["kind"], args.get("label"), args["from"], args["to"])
    out = set()
    used = []
    for oid in src:
        for e, dst in edges.get(oid, ()):
            if w is None or in_window(e, w):
                out.add(dst)
                used.append(e.id)
    res = tuple(sorted(out))
    return res, ctx.sort_events(used) + res


def op_participants(ctx, ins, args):
    evs = _set(ins[0], "participants")
    role = args["role"]
    out = tuple(sorted({r for i in evs if (r := role_of(ctx.events[i], role)) is not None}))
    return out, out


def op_query(ctx, ins, args):
    v = _item(ins[0], "query")
    field = args["field"]
    if v in ctx.objects:
        if field != "label":
            raise ExecError("type", f"query: objects have a label, not a {field!r}")
        return ctx.label(v), (v,)
    e = _event(ctx, v, "query")
    if field in ("verb", "predicate", "label"):
        return (ctx.verb(e.verb) if isinstance(e, Action) else clean(e.predicate)), (v,)
    if field in ("action", "relation"):
        return ctx.action_phrase(v), (v,)
    if field in ROLES:
        oid = role_of(e, field)
        if oid is None:
            raise ExecError("empty", f"query: event {v} has no {field}")
        return ctx.label(oid), (v, oid)
    raise ExecError("bad-program", f"query: unknown field {field!r}")


def op_localize(ctx, ins, args):
    e = _event(ctx, ins[0], "localize")
    mode = args["mode"]
    if mode == "before":
        w = Window(0.0, e.t0, mode, e.id)
    elif mode == "after":
        w = Window(e.t1, ctx.duration, mode, e.id)
    elif mode == "while":
        w = Window(e.t0, e.t1, mode, e.id)
    else:
        raise ExecError("bad-program", f"localize: mode must be before, after or while, not {mode!r}")
    return w, (e.id,)


def _select(ctx: GraphContext, evs: tuple[str, ...], k: int, what: str) -> str:
    if not evs:
        raise ExecError("empty", f"{what}: no events to choose from")
    events = ctx.events
    if not all(map(events.__contains__, evs)):
        raise ExecError("type", f"{what}: expects events")
    order = sorted(evs, key=ctx.rank.__getitem__)  # by start time: the rank orders by (t0, t1, id)
    n = len(order)
    idx = k if k >= 0 else n + k
    if not 0 <= idx < n:
        raise ExecError("empty", f"{what}: only {n} events")
    t = events[order[idx]].t0
    if sum(1 for i in order if events[i].t0 == t) > 1:
        raise ExecError("tie", f"{what}: several events start at {t}")
    return order[idx]


def op_first(ctx, ins, args):
    r = _select(ctx, _set(ins[0], "first"), 0, "first")
    return r, (r,)


def op_last(ctx, ins, args):
    r = _select(ctx, _set(ins[0], "last"), -1, "last")
    return r, (r,)


def op_nth(ctx, ins, args):
    k = int(args["k"])
    if k < 1:
        raise ExecError("bad-program", f"nth: k counts from 1, got {k}")
    r = _select(ctx, _set(ins[0], "nth"), k - 1, "nth")
    return r, (r,)


def op_longest(ctx, ins, args):
    evs = _set(ins[0], "longest")
    if not evs:
        raise ExecError("empty", "longest: no events")
    durs = sorted(((ctx.events[i].t1 - ctx.events[i].t0), i) for i in evs)
    if len(durs) > 1 and durs[-1][0] == durs[-2][0]:
        raise ExecError("tie", "longest: two events last equally long")
    return durs[-1][1], (durs[-1][1],)


def op_count(ctx, ins, args):
    items = _set(ins[0], "count")
    return len(items), items


def op_exists(ctx, ins, args):
    items = _set(ins[0], "exists")
    return bool(items), items


def op_compare_time(ctx, ins, args):
    a, b = _event(ctx, ins[0], "compare_time"), _event(ctx, ins[1], "compare_time")
    if a.t0 == b.t0:
        raise ExecError("tie", "compare_time: both events start together")
    return ("before" if a.t0 < b.t0 else "after"), (a.id, b.id)


def op_choose(ctx, ins, args):
    a, b = _event(ctx, ins[0], "choose"), _event(ctx, ins[1], "choose")
    by = args.get("by", "earlier")
    if by in ("earlier", "later"):
        ka, kb = a.t0, b.t0
    elif by in ("longer", "shorter"):
        ka, kb = a.t1 - a.t0, b.t1 - b.t0
    else:
        raise ExecError("bad-program", f"choose: unknown criterion {by!r}")
    if ka == kb:
        raise ExecError("tie", f"choose: no {by} event (equal)")
    pick_a = (ka < kb) if by in ("earlier", "shorter") else (ka > kb)
    win = a if pick_a else b
    return win.id, (a.id, b.id)


def op_equal(ctx, ins, args):
    if len(ins) == 2:
        a, b = ins
    else:
        a, b = ins[0], args["value"]
    if isinstance(a, str) and a in ctx.objects and not (isinstance(b, str) and b in ctx.objects):
        a = ctx.label(a)
    return a == b or (isinstance(a, str) and isinstance(b, str) and clean(a) == clean(b)), ()


def op_belong_to(ctx, ins, args):
    return _item(ins[0], "belong_to") in _set(ins[1], "belong_to"), ()


def op_except(ctx, ins, args):
    b = frozenset(_set(ins[1], "except"))
    out = tuple(i for i in _set(ins[0], "except") if i not in b)
    return out, out


def op_union(ctx, ins, args):
    a, b = _set(ins[0], "union"), _set(ins[1], "union")
    out = tuple(dict.fromkeys(a + b))
    if all(i in ctx.events for i in out):
        out = ctx.sort_events(out)
    else:
        out = tuple(sorted(out))
    return out, out


def op_intersect(ctx, ins, args):
    b = frozenset(_set(ins[1], "intersect"))
    out = tuple(i for i in _set(ins[0], "intersect") if i in b)
    return out, out


def _bool(v, what):
    if isinstance(v, bool):
        return v
    raise ExecError("type", f"{what}: expected yes/no, got {v!r}")


def op_and(ctx, ins, args):
    return _bool(ins[0], "and") and _bool(ins[1], "and"), ()


def op_or(ctx, ins, args):
    return _bool(ins[0], "or") or _bool(ins[1], "or"), ()


def op_xor(ctx, ins, args):
    return _bool(ins[0], "xor") != _bool(ins[1], "xor"), ()


def op_not(ctx, ins, args):
    return not _bool(ins[0], "not"), ()


def op_compare_count(ctx, ins, args):
    a, b = len(_set(ins[0], "compare_count")), len(_set(ins[1], "compare_count"))
    return ("more" if a > b else "fewer" if a < b else "same"), ()


def _spec(name, fn, step, inputs, output, args, doc, star="", agqa=""):
    return name, OpSpec(name, fn, step, inputs, output, tuple(args), doc, star, agqa)


OPS: dict[str, OpSpec] = dict([
    _spec("video", op_video, 0, "", "window", [], "The whole video as a window.", "Situations", "video"),
    _spec("objects", op_objects, 0, "", "objs", ["label?"], "All objects, or those with a label (a plain mention).",
          "", "Filter(frame, [objects])"),
    _spec("actions", op_actions, 0, "[window]", "events", [], "All actions (in a window).", "Actions", ""),
    _spec("relations", op_relations, 0, "[window]", "events", [], "All relations (in a window).", "", "Filter(frame, [relations])"),
    _spec("during", op_during, 0, "set, window", "set", [], "Keep events (or objects taking part in events) inside a window.",
          "", "Iterate(window, ...)"),
    _spec("unique", op_unique, 0, "set", "item", [], "The single member of a set; fails unless exactly one.", "Unique", "OnlyItem"),
    _spec("query", op_query, 0, "item", "str", ["field"],
          "Read a name: label of an object; verb / predicate / action phrase / a participant's label of an event.",
          "Query_Objs / Query_Verbs / Query_Actions", "Query(class|verb, ...)"),
    _spec("filter_events", op_filter_events, 1, "events, objs...", "events", ["label?", "roles"],
          "Events with a verb / predicate whose participants in the given roles lie in the given sets.",
          "Filter_Actions_with_Verb / Filter_Actions_with_Obj / Filter_Situations_with_Rel / Filter_Situations_with_Obj",
          "Filter(frame, [relations, X])"),
    _spec("filter_attr", op_filter_attr, 1, "objs, [window]", "objs", ["name", "value"],
          "Objects whose attribute has a value (in a window).", "", ""),
    _spec("hop", op_hop, 1, "objs, [window]", "objs", ["kind", "label?", "from", "to"],
          "Follow relation or action edges from objects in one role to the objects in another (a referring expression).",
          "Filter_Actions_with_Obj + Query_Objs", "Query(class, OnlyItem(...))"),
    _spec("participants", op_participants, 1, "events", "objs", ["role"], "Objects filling a role of some events.",
          "Query_Objs", ""),
    _spec("query_attr", op_query_attr, 1, "item, [window]", "str", ["name"],
          "The value of an object's attribute (in a window); fails unless exactly one.", "", ""),
    _spec("localize", op_localize, 1, "item", "window", ["mode"], "The window before / after / while an event.",
          "Filter_Before_Actions / Filter_After_Actions", "Localize(before|after|while, ...)"),
    _spec("first", op_first, 1, "events", "item", [], "The earliest-starting event.", "Query_Earliest_Action",
          "IterateUntil(forward, ...)"),
    _spec("last", op_last, 1, "events", "item", [], "The latest-starting event.", "Query_Latest_Action",
          "IterateUntil(backward, ...)"),
    _spec("nth", op_nth, 1, "events", "item", ["k"], "The k-th event by start time (k from 1).", "", "ordinal"),
    _spec("longest", op_longest, 1, "events", "item", [], "The longest event.", "", "Superlative(max, ...)"),
    _spec("count", op_count, 1, "set", "int", [], "How many items.", "", "count"),
    _spec("exists", op_exists, 1, "set", "bool", [], "Whether a set is non-empty.", "", "Exists / HasItem"),
    _spec("compare_time", op_compare_time, 1, "item, item", "str", [], "Whether event 1 starts before or after event 2.",
          "", "Compare([before, after], ...)"),
    _spec("choose", op_choose, 1, "item, item", "item", ["by"], "The earlier / later / longer / shorter of two events.",
          "", "Choose / Compare"),
    _spec("equal", op_equal, 1, "x, [y]", "bool", ["value?"], "Whether two values (or a value and args.value) are equal.",
          "Equal", "Equals"),
    _spec("belong_to", op_belong_to, 1, "item, set", "bool", [], "Whether an item is in a set.", "Belong_to", ""),
    _spec("except", op_except, 1, "set, set", "set", [], "Items of the first set not in the second.", "Except", ""),
    _spec("union", op_union, 1, "set, set", "set", [], "Items in either set.", "", ""),
    _spec("intersect", op_intersect, 1, "set, set", "set", [], "Items in both sets.", "", ""),
    _spec("and", op_and, 1, "bool, bool", "bool", [], "Logical and.", "", "AND"),
    _spec("or", op_or, 1, "bool, bool", "bool", [], "Logical or.", "", ""),
    _spec("xor", op_xor, 1, "bool, bool", "bool", [], "Logical exclusive or.", "", "XOR"),
    _spec("not", op_not, 1, "bool", "bool", [], "Logical not.", "", ""),
    _spec("compare_count", op_compare_count, 1, "set, set", "str", [], "more / fewer / same: sizes of two sets.", "", ""),
])


_FNS = {name: spec.fn for name, spec in OPS.items()}
_STEP = {name: spec.step for name, spec in OPS.items()}

# ----------------------------------------------------------------------------------------------
# Programs


# Required arguments per operator (``roles`` of filter_events defaults to none).
_REQUIRED = {name: tuple(a for a in spec.args if not a.endswith("?") and not (name == "filter_events" and a == "roles"))
             for name, spec in OPS.items()}


def check_program(program: Any) -> list[dict[str, Any]]:
    """Validate a linear program (raising :class:`ProgramError`) and return it."""
    if not isinstance(program, list) or not program:
        raise ProgramError("program: expected a non-empty list of operator nodes")
    for i, node in enumerate(program):
        if not isinstance(node, dict) or "op" not in node:
            raise ProgramError(f"program[{i}]: expected an object with an 'op'")
        if node["op"] not in OPS:
            raise ProgramError(f"program[{i}]: unknown operator {node['op']!r}")
        ins = node.get("in", [])
        if type(ins) is not list:
            raise ProgramError(f"program[{i}].in: inputs must be indices of earlier nodes, got {ins!r}")
        for j in ins:
            if type(j) is not int or not 0 <= j < i:
                raise ProgramError(f"program[{i}].in: inputs must be indices of earlier nodes, got {ins!r}")
        args = node.get("args", {})
        if not isinstance(args, dict):
            raise ProgramError(f"program[{i}].args: expected an object")
        for a in _REQUIRED[node["op"]]:
            if a not in args:
                raise ProgramError(f"program[{i}] ({node['op']}): missing argument {a!r}")
    return program


_op_of = itemgetter("op")  # a node's operator name


def step_count(program: Sequence[dict[str, Any]]) -> int:
    """The number of reasoning steps: nodes whose operator is a step (``OPS[op].step``)."""
    return sum(map(_STEP.__getitem__, map(_op_of, program)))


def program_to_tree(program: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The nested form of a linear program (shared sub-programs are copied)."""

    def build(i: int) -> dict[str, Any]:
        n = program[i]
        return {"op": n["op"], "args": dict(n.get("args", {})), "in": [build(j) for j in n.get("in", [])]}

    return build(len(program) - 1)


def tree_to_program(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """The linear form of a nested program (inputs first, post-order)."""
    out: list[dict[str, Any]] = []

    def walk(t: dict[str, Any]) -> int:
        if not isinstance(t, dict) or "op" not in t:
            raise ProgramError(f"program tree: expected an object with an 'op', got {t!r}")
        ins = [walk(c) for c in t.get("in", [])]
        out.append({"op": t["op"], "in": ins, "args": dict(t.get("args", {}))})
        return len(out) - 1

    walk(tree)
    return out


def as_program(obj: Any) -> list[dict[str, Any]]:
    """Accept a linear program or a nested tree; return the validated linear form."""
    if isinstance(obj, dict):
        obj = tree_to_program(obj)
    return check_program(obj)


# ----------------------------------------------------------------------------------------------
# Execution


@dataclass(slots=True)
class TraceStep:
    """What one node did: its operator, inputs, output, graph ids touched and time window."""

    index: int
    op: str
    inputs: list[int]
    args: dict[str, Any]
    output: Any
    ids: tuple[str, ...]
    window: tuple[float, float] | None
    step: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"index": self.index, "op": self.op, "in": list(self.inputs), "args": dict(self.args),
                "output": jsonable(self.output), "ids": list(self.ids),
                "window": list(self.window) if self.window else None, "step": self.step}


def jsonable(v: Any) -> Any:
    """A value as JSON (windows as ``[t0, t1]``)."""
    if isinstance(v, Window):
        return [v.t0, v.t1]
    if isinstance(v, tuple):
        return list(v)
    return v


def answer_text(v: Any, ctx: GraphContext) -> str:
    """The answer string of a program's final value."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        if v in ctx.objects:
            return ctx.label(v)
        if v in ctx.events:
            return ctx.action_phrase(v)
        return v
    raise ExecError("type", f"the program ends in a {type(v).__name__}, not an answer")


# Operators that scan the graph's events or edges: worth remembering (see Builder).
_MEMO_OPS = frozenset({"filter_events", "hop", "actions", "relations", "during", "participants", "filter_attr"})


def _memo_key(op: str, inputs: list, args: dict[str, Any]) -> tuple:
    """The key under which a result of one of ``_MEMO_OPS`` is remembered."""
    if op == "filter_events":
        roles = args.get("roles", ())
        return (op, tuple(inputs), args.get("label"), tuple(roles) if type(roles) is list else roles)
    if op == "hop":
        return (op, tuple(inputs), args["kind"], args.get("label"), args["from"], args["to"])
    return (op, tuple(inputs), tuple(args.items()))


def _copy_args(args: dict[str, Any]) -> dict[str, Any]:
    """A node's args as fresh containers (values are names, numbers or lists of names)."""
    return {k: list(v) if type(v) is list else v for k, v in args.items()}


class Builder:
    """Builds a program node by node, executing each as it is added (used by the sampler).

    ``memo``: a per-graph dict (``GraphContext.results``, say) in which the operators that scan
    the graph's events or edges (filter_events, hop, actions, ...) keep their results by inputs
    and args: the sampler asks them the same things attempt after attempt, and each is a pure
    function of the graph, its inputs and its args. For well-formed programs only (the sampler's):
    records are verified by :func:`run_values`, which remembers nothing."""

    __slots__ = ("ctx", "nodes", "values", "ids", "memo")

    def __init__(self, ctx: GraphContext, memo: dict | None = None):
        self.ctx = ctx
        self.nodes: list[dict[str, Any]] = []
        self.values: list[Any] = []
        self.ids: list[tuple] = []
        self.memo = memo

    def add(self, op: str, ins: Sequence[int] = (), **args: Any) -> int:
        """Append and run one node; returns its index (raises :class:`ExecError`)."""
        if None in args.values():
            args = {k: v for k, v in args.items() if v is not None}
        return self.add_node(op, ins, args)

    def add_node(self, op: str, ins: Sequence[int], args: dict[str, Any]) -> int:
        """Append and run one node given its args dict."""
        fn = _FNS.get(op)
        if fn is None:
            raise ProgramError(f"unknown operator {op!r}")
        values = self.values
        inputs = list(map(values.__getitem__, ins))
        memo = self.memo
        if memo is None or op not in _MEMO_OPS or not inputs:  # (all actions / relations: no scan)
            value, ids = fn(self.ctx, inputs, args)
        else:
            key = _memo_key(op, inputs, args)
            got = memo.get(key)
            if got is None:
                got = memo[key] = fn(self.ctx, inputs, args)
            value, ids = got
        self.nodes.append({"op": op, "in": list(ins), "args": args})
        values.append(value)
        self.ids.append(ids)
        return len(values) - 1

    def window(self, i: int) -> Window | None:
        """The time window node ``i`` works in: one it makes, else the first one its inputs work in."""
        v = self.values[i]
        if type(v) is Window:
            return v
        for j in self.nodes[i]["in"]:
            w = self.window(j)
            if w is not None:
                return w
        return None

    def truncate(self, n: int) -> None:
        """Drop nodes from index ``n`` on (undo a failed expansion)."""
        del self.nodes[n:], self.values[n:], self.ids[n:]

    def segment(self, start: int) -> tuple | None:
        """The nodes from ``start`` on, with their values, as a template :meth:`replay` appends
        again (inputs relative to ``start``); None when one reads a node before ``start``."""
        specs = []
        for n in self.nodes[start:]:
            rel = tuple(j - start for j in n["in"])
            if any(j < 0 for j in rel):
                return None
            args = _copy_args(n["args"])
            specs.append((n["op"], rel, args, any(type(v) is list for v in args.values())))
        return tuple(specs), tuple(self.values[start:]), tuple(self.ids[start:])

    def replay(self, segment: tuple) -> int:
        """Append the nodes of a :meth:`segment` (fresh node dicts, the same values: the nodes read
        only each other, so they compute what they computed when recorded); returns the last index."""
        specs, values, ids = segment
        nodes = self.nodes
        base = len(nodes)
        for op, rel, args, has_list in specs:
            nodes.append({"op": op, "in": [base + j for j in rel] if rel else [],
                          "args": _copy_args(args) if has_list else dict(args)})
        self.values.extend(values)
        self.ids.extend(ids)
        return len(nodes) - 1

    def steps(self) -> int:
        """Steps so far."""
        return step_count(self.nodes)

    def trace(self) -> list[TraceStep]:
        """The trace of the nodes built so far."""
        values, ids, step = self.values, self.ids, _STEP
        windows: list[Window | None] = []
        out = []
        for i, n in enumerate(self.nodes):
            v = values[i]
            if type(v) is Window:
                w = v
            else:
                w = None
                for j in n["in"]:
                    if windows[j] is not None:
                        w = windows[j]
                        break
            windows.append(w)
            out.append(TraceStep(i, n["op"], n["in"], n["args"], v, ids[i], (w.t0, w.t1) if w else None, step[n["op"]]))
        return out


@dataclass
class Execution:
    """The result of running a program: the answer string, the final value and the trace."""

    answer: str
    value: Any
    trace: list[TraceStep]


def run_values(program: Sequence[dict[str, Any]], ctx: GraphContext) -> Any:
    """The final value of a *validated* linear program (no trace kept: the fast re-check)."""
    values: list[Any] = []
    fetch = values.__getitem__
    for node in program:
        value, _ = _FNS[node["op"]](ctx, list(map(fetch, node["in"])), node["args"])
        values.append(value)
    return values[-1]


def execute(program: Any, graph: STSG | GraphContext, natural: bool = False) -> Execution:
    """Run a program (linear or nested) on a graph; raises :class:`ExecError` when it cannot.
    ``natural``: read labels as natural nouns (as generated records do; see :class:`GraphContext`)."""
    prog = as_program(program)
    ctx = graph if isinstance(graph, GraphContext) else GraphContext(graph, natural=natural)
    b = Builder(ctx)
    for node in prog:
        b.add_node(node["op"], node.get("in", []), node.get("args", {}))
    return Execution(answer_text(b.values[-1], ctx), b.values[-1], b.trace())
