"""Reasoning-path sampling (paper §3.2): pick a connected pair of graph nodes as the first
sub-question, expand open mentions into referring expressions one edge at a time, and optionally
anchor the question to an event before / after / during which it is asked.

Each question type has a base number of steps; the remaining steps of a requested count go to
referring-expression depth and to a temporal anchor. Every node is executed as it is added, so a
reference that does not resolve to exactly one entity is caught at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from stepkit.graph.types import Action
from stepkit.reason.lexicon import (article, clean, gerund, is_person_label, object_preposition, ordinal, past,
                                    phrases, plural, verb_something, with_object)
from stepkit.reason.ops import Builder, ExecError, GraphContext, event_label, role_of

# Question types, their variants and the fewest steps each variant needs.
TYPES = ("attribute", "relation", "action", "temporal", "ordinal", "counting", "existence", "comparison")
MIN_STEPS = {
    "attribute": 1, "relation": 1, "action": 1, "counting": 1, "existence": 1,
    "ordinal": 1, "temporal": 3, "comparison": 3,
}
YESNO_TYPES = frozenset({"existence"})
# Types whose question states the candidate answers by design ("which first, A or B?").
CHOICE_VARIANTS = frozenset({"comparison_first", "comparison_longer", "comparison_any"})


class Reject(Exception):
    """A sampling attempt failed; ``reason`` is counted in the summary's drops."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Candidate:
    """A sampled question before rendering into a record."""

    type: str
    variant: str
    builder: Builder
    question: str
    answer: str
    answer_kind: str
    slots: dict[str, str] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)


def _split(rng: random.Random, total: int, k: int) -> list[int]:
    """``total`` split into ``k`` random non-negative parts."""
    parts = [0] * k
    for _ in range(total):
        parts[rng.randrange(k)] += 1
    return parts


class Sampler:
    """Samples questions of a given type and step count from one graph."""

    def __init__(self, ctx: GraphContext, rng: random.Random, label_pool: list[str] | None = None,
                 verb_pool: list[str] | None = None):
        self.ctx = ctx
        self.rng = rng
        self.ph = phrases()
        self.label_pool = label_pool or []
        self.verb_pool = verb_pool or []
        g = ctx.graph
        self.agents = sorted({a.agent for a in g.actions})
        self.persons = {o.id for o in g.objects if is_person_label(o.label)} | set(self.agents)
        self.acts_by_agent: dict[str, list[str]] = {}
        for eid in ctx.actions:
            self.acts_by_agent.setdefault(ctx.events[eid].agent, []).append(eid)
        self.obj_actions = [i for i in ctx.actions if ctx.events[i].object is not None]
        self.attr_objects = [o.id for o in g.objects if o.attributes]
        self.plain = {o.id: len(ctx.by_label[o.label]) == 1 for o in g.objects}
        # How many distinct partners an entity has along a labelled edge, and how many edges join a
        # pair: questions whose core hop would be ambiguous over the whole video are skipped early.
        fan: dict[tuple, set] = {}
        pair: dict[tuple, int] = {}
        for e in g.relations:
            fan.setdefault(("rs", e.subject, e.predicate), set()).add(e.object)
            fan.setdefault(("ro", e.object, e.predicate), set()).add(e.subject)
            pair[("r", e.subject, e.object)] = pair.get(("r", e.subject, e.object), 0) + 1
        for e in g.actions:
            if e.object is not None:
                fan.setdefault(("ao", e.agent, e.verb), set()).add(e.object)
                pair[("a", e.agent, e.object)] = pair.get(("a", e.agent, e.object), 0) + 1
        self.fan = {k: len(v) for k, v in fan.items()}
        self.pair = pair
        # Actions a mention by verb + thing (+ agent) can single out: the rest would be ambiguous.
        trip: dict[tuple, int] = {}
        for e in g.actions:
            k = (e.agent, e.verb, self.thing(e))
            trip[k] = trip.get(k, 0) + 1
        self.mentionable = {e.id: trip[(e.agent, e.verb, self.thing(e))] == 1 for e in g.actions}
        pair2: dict[tuple, int] = {}
        for e in g.actions:
            pair2[(e.verb, self.thing(e))] = pair2.get((e.verb, self.thing(e)), 0) + 1
        # ...and without naming the agent (someone opened the door), unless the agent is named anyway
        self.mentionable_any = {e.id: pair2[(e.verb, self.thing(e))] == 1
                                or (self.mentionable[e.id] and self.plain.get(e.agent, False)) for e in g.actions}
        # Edges the question is about: a reference must not lean on them ("did the man who opened
        # the door open the door?" answers itself).
        self.avoid_edges: set[str] = set()
        self._cache: dict[tuple, list] = {}
        self._refer_edges: dict[str, list] = {}

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def thing(e: Action) -> str | None:
        """What an action is done to: its object, else its target ("walk to the table")."""
        return e.object if e.object is not None else e.target

    def _pick(self, seq):
        if not seq:
            raise Reject("no-candidate")
        return seq[self.rng.randrange(len(seq))]

    def _cat(self, oid: str) -> str:
        return "person" if oid in self.persons else "object"

    def _fill(self, template_key: str, **kw: str) -> str:
        opts = self.ph["questions"][template_key]
        return self._pick(opts).format(**kw)

    # -- referring expressions -----------------------------------------------------------------
    def refer(self, b: Builder, oid: str, depth: int, avoid: frozenset = frozenset(),
              avoid_attr: str | None = None) -> tuple[int, str]:
        """Add nodes resolving exactly to object ``oid`` with ``depth`` steps; returns (node, phrase)."""
        ctx = self.ctx
        if depth == 0:
            lab = ctx.objects[oid].label
            if len(ctx.by_label[lab]) != 1:
                raise Reject("no-plain-reference")
            i = b.add_node("objects", (), {"label": lab})
            return b.add_node("unique", (i,), {}), "the " + clean(lab)
        refs = self.ph["references"]
        inc = self._edges_of(oid)
        k = self.rng.randrange(len(inc)) if inc else 0
        edges = inc[k:] + inc[:k]  # a random rotation: cheaper than a shuffle, still seeded
        tried = 0
        avoid_edges = self.avoid_edges
        for entry in edges:
            if entry is None:
                continue
            e, role, other_role, other, kind = entry
            if e.id in avoid_edges or other in avoid:
                continue
            tried += 1
            if tried > 4:
                break
            n0 = len(b.nodes)
            try:
                oi, ophrase = self.refer(b, other, depth - 1, avoid | {oid})
                h = b.add_node("hop", [oi], {"kind": kind, "label": event_label(e), "from": other_role, "to": role})
                u = b.add_node("unique", [h], {})
            except (Reject, ExecError):
                b.truncate(n0)
                continue
            cat = self._cat(oid)
            if kind == "relation":
                key = "relation_object" if role == "object" else "relation_subject"
                phrase = refs[key].format(cat=cat, other=ophrase, pred=clean(e.predicate))
            else:
                if role in ("object", "target"):
                    prep = object_preposition(e.verb)
                    phrase = refs["action_object"].format(cat=cat, other=ophrase, past=past(e.verb),
                                                          prep=f" {prep}" if prep else "")
                else:
                    phrase = refs["action_agent"].format(cat=cat, past_obj=with_object(past(e.verb), e.verb, ophrase),
                                                          who="who" if cat == "person" else "that")
            return u, phrase
        if depth == 1:
            obj = ctx.objects[oid]
            attrs = [a for a in obj.attributes if a.name != avoid_attr]
            self.rng.shuffle(attrs)
            for a in attrs[:2]:
                n0 = len(b.nodes)
                try:
                    i = b.add("objects", label=obj.label)
                    f = b.add("filter_attr", [i], name=a.name, value=a.value)
                    u = b.add_node("unique", [f], {})
                except ExecError:
                    b.truncate(n0)
                    continue
                key = f"person_{a.name}" if oid in self.persons and f"person_{a.name}" in refs["attribute"] else a.name
                tmpl = refs["attribute"].get(key, refs["attribute"]["default"])
                return u, tmpl.format(label=clean(obj.label), value=clean(a.value))
        raise Reject("no-reference")

    def _edges_of(self, oid: str) -> list:
        """The edges at ``oid`` a reference can follow, aligned with ``ctx.incident[oid]``: for each,
        (edge, role of ``oid``, role of the other end, the other end, kind), or None where the edge
        can never serve (cached per object)."""
        got = self._refer_edges.get(oid)
        if got is None:
            got = []
            for e, role in self.ctx.incident.get(oid, ()):
                is_act = isinstance(e, Action)
                # the thing an action is done to: its object, or its target when it has no object ("walk to")
                thing = "object" if not is_act or e.object is not None else "target"
                other_role = thing if role in ("agent", "subject") else ("agent" if is_act else "subject")
                other = role_of(e, other_role)
                if (role == "target" and thing != "target") or other is None or other == oid:
                    got.append(None)
                else:
                    got.append((e, role, other_role, other, "action" if is_act else "relation"))
            self._refer_edges[oid] = got
        return got

    # -- events and anchors --------------------------------------------------------------------
    def mention_event(self, b: Builder, eid: str, depth: int, agent_node: int | None = None,
                      agent_phrase: str | None = None, source: int | None = None) -> tuple[int, dict[str, str]]:
        """Nodes resolving exactly to event ``eid`` (1 + ``depth`` steps); returns (node, phrases)."""
        ctx = self.ctx
        e = ctx.events[eid]
        is_act = isinstance(e, Action)
        first_role = "agent" if is_act else "subject"
        agent = e.agent if is_act else e.subject
        thing = e.object if e.object is not None else (e.target if is_act else None)
        thing_role = "object" if e.object is not None else "target"
        if agent_node is not None:
            if thing is None and depth:
                raise Reject("no-reference")
            d_agent, d_obj = 0, depth
        else:
            d_agent, d_obj = _split(self.rng, depth, 2) if thing is not None else (depth, 0)
        n0 = len(b.nodes)
        ins: list[int] = []
        roles: list[str] = []
        try:
            if source is None:
                source = b.add("actions" if is_act else "relations")
            ins.append(source)
            if agent_node is not None:
                ins.append(agent_node)
                roles.append(first_role)
                a_phrase = agent_phrase or ""
            elif d_agent > 0 or len(ctx.by_label[ctx.objects[agent].label]) == 1:
                ai, a_phrase = self.refer(b, agent, d_agent)
                ins.append(ai)
                roles.append(first_role)
            else:
                a_phrase = "someone"
                if d_agent:
                    raise Reject("no-reference")
            o_phrase = ""
            if thing is not None:
                oi, o_phrase = self.refer(b, thing, d_obj)
                ins.append(oi)
                roles.append(thing_role)
            f = b.add("filter_events", ins, label=event_label(e), roles=roles)
            u = b.add_node("unique", [f], {})
        except (Reject, ExecError):
            b.truncate(n0)
            raise
        if is_act:
            v = e.verb
            ph = {"past": f"{a_phrase} {with_object(past(v), v, o_phrase)}",
                  "prog": f"{a_phrase} was {with_object(gerund(v), v, o_phrase)}",
                  "base": with_object(clean(v), v, o_phrase), "ger": with_object(gerund(v), v, o_phrase)}
        else:
            ph = {"past": f"{a_phrase} was {clean(e.predicate)} {o_phrase}",
                  "prog": f"{a_phrase} was {clean(e.predicate)} {o_phrase}",
                  "base": f"be {clean(e.predicate)} {o_phrase}", "ger": f"being {clean(e.predicate)} {o_phrase}"}
        return u, ph

    def anchor(self, b: Builder, depth: int, exclude: frozenset = frozenset(),
               modes: tuple[str, ...] = ("before", "after", "while")) -> tuple[int, str, str]:
        """A localize node on a uniquely mentioned event (2 + ``depth`` steps); returns (node, phrase, mode)."""
        ctx = self.ctx
        mode = self._pick(modes)
        pool = self._memo(("anchor-pool", mode), lambda: [i for i in ctx.actions if self.mentionable[i]]
                          + (list(ctx.relations) if mode == "while" else []))
        if exclude:
            pool = [i for i in pool if i not in exclude]
        for _ in range(3):
            eid = self._pick(pool)
            n0 = len(b.nodes)
            try:
                ei, ph = self.mention_event(b, eid, depth)
                w = b.add("localize", [ei], mode=mode)
            except (Reject, ExecError):
                b.truncate(n0)
                continue
            clause = ph["prog"] if mode == "while" else ph["past"]
            self.avoid_edges.add(eid)  # references must not restate the anchor event
            return w, self.ph["anchors"][mode].format(event=clause), mode
        raise Reject("no-anchor")

    def _maybe_anchor(self, b: Builder, extra: int, p: float = 0.4) -> tuple[int | None, str, int]:
        """Spend 2+ of ``extra`` steps on an anchor with probability ``p``; returns (node, phrase, left)."""
        if extra >= 2 and self.rng.random() < p:
            d = self.rng.randrange(0, min(extra - 2, 1) + 1)
            w, phrase, _ = self.anchor(b, d)
            return w, phrase, extra - 2 - d
        return None, "", extra

    # -- question types ------------------------------------------------------------------------
    def sample(self, qtype: str, steps: int, want: str | None = None) -> Candidate:
        """One candidate of ``qtype`` with exactly ``steps`` steps (``want``: yes/no for existence)."""
        if steps < MIN_STEPS[qtype]:
            raise Reject("too-few-steps-for-type")
        b = Builder(self.ctx)
        self.avoid_edges = set()
        cand = _BY_TYPE[qtype](self, b, steps, want)
        if b.steps() != steps:
            raise Reject("step-mismatch")
        return cand

    def _core(self, a: str | None, b: str | None, label: str | None = None) -> None:
        """Mark every edge between ``a`` and ``b`` (with ``label``, if given) as off limits to references."""
        for e, _ in self.ctx.incident.get(a, ()):
            if label is not None and event_label(e) != label:
                continue
            if b in (role_of(e, "agent"), e.object, getattr(e, "target", None)):
                self.avoid_edges.add(e.id)

    def _memo(self, key: tuple, build):
        """A per-graph cache of candidate lists (they depend only on the graph and the key)."""
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = build()
        return got

    def _plain_ok(self, oid: str | None, depth: int) -> bool:
        return oid is not None and (depth > 0 or self.plain.get(oid, False))

    def _q_attribute(self, b, n, want):
        ctx = self.ctx
        w, anchor, extra = self._maybe_anchor(b, n - 1, 0.5)
        pool = [o for o in self.attr_objects if self._plain_ok(o, extra)]
        oid = self._pick(pool)
        attrs = ctx.objects[oid].attributes
        if w is None:  # without a window, only attributes with one value over the video can be asked
            names = [a.name for a in attrs]
            attrs = [a for a in attrs if names.count(a.name) == 1]
        attr = self._pick(attrs)
        oi, ophrase = self.refer(b, oid, extra, avoid_attr=attr.name)
        q = b.add("query_attr", [oi] + ([w] if w is not None else []), name=attr.name)
        name = clean(attr.name)
        answer = b.values[q]
        question = self._fill("attribute", attr=name, obj=ophrase, anchor=anchor)
        conflicts = self._memo(("c-attr", attr.name), lambda: [
            a.value for o in ctx.graph.objects for a in o.attributes if a.name == attr.name])
        return Candidate("attribute", "attribute", b, question, answer, f"value:{attr.name}",
                         {"attr": name, "obj": ophrase}, conflicts)

    def _q_relation(self, b, n, want):
        ctx = self.ctx
        variant = self._pick(("relation_object", "relation_object", "relation_subject", "relation_predicate"))
        w, anchor, extra = self._maybe_anchor(b, n - 1)
        src = [w] if w is not None else []
        if variant == "relation_predicate":
            ds, do = _split(self.rng, extra, 2)
            r = ctx.events[self._pick(self._memo(("rp", ds > 0, do > 0, w is None), lambda: [
                i for i in ctx.relations if self._plain_ok(ctx.events[i].subject, ds)
                                       and self._plain_ok(ctx.events[i].object, do)
                                       and (w is not None or self.pair[("r", ctx.events[i].subject,
                                                                         ctx.events[i].object)] == 1)]))]
            self._core(r.subject, r.object)
            si, sphrase = self.refer(b, r.subject, ds)
            oi, ophrase = self.refer(b, r.object, do, avoid=frozenset({r.subject}))
            rel = b.add("relations", src)
            f = b.add("filter_events", [rel, si, oi], roles=["subject", "object"])
            u = b.add_node("unique", [f], {})
            q = b.add("query", [u], field="predicate")
            question = self._fill(variant, subj=sphrase, obj=ophrase, anchor=anchor)
            conflicts = self._memo(("c-pred",), lambda: sorted({clean(ctx.events[i].predicate) for i in ctx.relations}))
            return Candidate("relation", variant, b, question, b.values[q], "predicate",
                             {"subj": sphrase, "obj": ophrase}, conflicts)
        if variant == "relation_object":
            r = ctx.events[self._pick(self._memo(("ro", extra > 0, w is None), lambda: [
                i for i in ctx.relations if self._plain_ok(ctx.events[i].subject, extra)
                                       and (w is not None or self.fan[("rs", ctx.events[i].subject,
                                                                        ctx.events[i].predicate)] == 1)]))]
            pred = clean(r.predicate)
            self._core(r.subject, r.object, r.predicate)
            si, sphrase = self.refer(b, r.subject, extra)
            h = b.add("hop", [si] + src, kind="relation", label=r.predicate, **{"from": "subject", "to": "object"})
            u = b.add_node("unique", [h], {})
            q = b.add("query", [u], field="label")
            question = self._fill(variant, subj=sphrase, pred=pred, anchor=anchor)
            conflicts = self._memo(("c-ro", r.predicate), lambda: sorted({
                ctx.label(ctx.events[i].object) for i in ctx.relations if ctx.events[i].predicate == r.predicate}))
            return Candidate("relation", variant, b, question, b.values[q], "label",
                             {"subj": sphrase, "pred": pred}, conflicts)
        r = ctx.events[self._pick(self._memo(("rs", extra > 0, w is None), lambda: [
            i for i in ctx.relations if self._plain_ok(ctx.events[i].object, extra)
                                   and (w is not None or self.fan[("ro", ctx.events[i].object,
                                                                    ctx.events[i].predicate)] == 1)]))]
        pred = clean(r.predicate)
        self._core(r.subject, r.object, r.predicate)
        oi, ophrase = self.refer(b, r.object, extra)
        h = b.add("hop", [oi] + src, kind="relation", label=r.predicate, **{"from": "object", "to": "subject"})
        u = b.add_node("unique", [h], {})
        q = b.add("query", [u], field="label")
        if b.values[u] in self.persons and is_person_label(ctx.objects[b.values[u]].label):
            raise Reject("trivial-answer")  # "who is sitting on the chair?" -> "person" says nothing
        wh = "Who" if b.values[u] in self.persons else "What"
        question = self._fill(variant, Wh=wh, pred=pred, obj=ophrase, anchor=anchor)
        conflicts = self._memo(("c-rs", r.predicate), lambda: sorted({
            ctx.label(ctx.events[i].subject) for i in ctx.relations if ctx.events[i].predicate == r.predicate}))
        return Candidate("relation", variant, b, question, b.values[q], "label", {"obj": ophrase, "pred": pred},
                         conflicts)

    def _q_action(self, b, n, want):
        ctx = self.ctx
        variant = self._pick(("action_object", "action_verb"))
        w, anchor, extra = self._maybe_anchor(b, n - 1)
        src = [w] if w is not None else []
        if variant == "action_object" and extra == 0 and not any(self.plain.get(a) for a in self.agents):
            a = ctx.events[self._pick(self.obj_actions)]
            acts = b.add("actions", src)
            f = b.add("filter_events", [acts], label=a.verb, roles=[])
            u = b.add_node("unique", [f], {})
            q = b.add("query", [u], field="object")
            prep = object_preposition(a.verb)
            question = self._fill("action_any", verb=clean(a.verb), prep=f" {prep}" if prep else "", anchor=anchor)
            conflicts = self._memo(("c-obj",), lambda: sorted({ctx.label(ctx.events[i].object) for i in self.obj_actions}))
            return Candidate("action", "action_any", b, question, b.values[q], "label",
                             {"agent": "someone", "past": past(a.verb) + (f" {prep}" if prep else "")}, conflicts)
        if variant == "action_object":
            a = ctx.events[self._pick(self._memo(("ao", extra > 0, w is None), lambda: [
                i for i in self.obj_actions if self._plain_ok(ctx.events[i].agent, extra)
                                       and (w is not None or self.fan[("ao", ctx.events[i].agent,
                                                                        ctx.events[i].verb)] == 1)]))]
            self._core(a.agent, a.object, a.verb)
            ai, aphrase = self.refer(b, a.agent, extra)
            h = b.add("hop", [ai] + src, kind="action", label=a.verb, **{"from": "agent", "to": "object"})
            u = b.add_node("unique", [h], {})
            q = b.add("query", [u], field="label")
            prep = object_preposition(a.verb)
            question = self._fill(variant, agent=aphrase, verb=clean(a.verb), prep=f" {prep}" if prep else "",
                                  anchor=anchor)
            conflicts = self._memo(("c-ao", a.verb), lambda: sorted({
                ctx.label(ctx.events[i].object) for i in self.obj_actions if ctx.events[i].verb == a.verb}))
            return Candidate("action", variant, b, question, b.values[q], "label",
                             {"agent": aphrase, "past": past(a.verb) + (f" {prep}" if prep else "")}, conflicts)
        da, do = _split(self.rng, extra, 2)
        a = ctx.events[self._pick(self._memo(("av", da > 0, do > 0, w is None), lambda: [
            i for i in self.obj_actions if self._plain_ok(ctx.events[i].agent, da)
                                   and self._plain_ok(ctx.events[i].object, do)
                                   and (w is not None or self.pair[("a", ctx.events[i].agent,
                                                                     ctx.events[i].object)] == 1)]))]
        self._core(a.agent, a.object)
        ai, aphrase = self.refer(b, a.agent, da)
        oi, ophrase = self.refer(b, a.object, do, avoid=frozenset({a.agent}))
        acts = b.add("actions", src)
        f = b.add("filter_events", [acts, ai, oi], roles=["agent", "object"])
        u = b.add_node("unique", [f], {})
        q = b.add("query", [u], field="verb")
        question = self._fill(variant, agent=aphrase, obj=ophrase, anchor=anchor)
        conflicts = self._memo(("c-verb",), lambda: sorted({clean(ctx.events[i].verb) for i in ctx.actions}))
        return Candidate("action", variant, b, question, b.values[q], "verb", {"agent": aphrase, "obj": ophrase},
                         conflicts)

    def _q_temporal(self, b, n, want):
        ctx = self.ctx
        mode = self._pick(("before", "after"))
        sel = "last" if mode == "before" else "first"
        key = f"temporal_{mode}"
        da, de = _split(self.rng, max(n - 4, 0), 2)
        # _plain_ok depends on a depth only through depth > 0: so does this list
        agents = self._memo(("t-agents", da > 0, de > 0), lambda: [
            a for a, evs in self.acts_by_agent.items() if len(evs) >= 2 and self._plain_ok(a, da)
            and any(self.mentionable[i] and self._plain_ok(self.thing(ctx.events[i]) or a, de) for i in evs)])
        if n == 3 or not agents or self.rng.random() < 0.3:
            ei, ph = self.mention_event(b, self._pick(self._memo(("mentionable",), lambda: [
                i for i in ctx.actions if self.mentionable[i]])), n - 3)
            w = b.add("localize", [ei], mode=mode)
            acts = b.add("actions", [w])
            s = b.add(sel, [acts])
            q = b.add("query", [s], field="action")
            question = self._fill(f"{key}_any", event=ph["past"])
            conflicts = self._memo(("c-acts",), lambda: [ctx.action_phrase(i) for i in ctx.actions])
            return Candidate("temporal", key + "_any", b, question, b.values[q], "action", {"agent": "someone"},
                             conflicts)
        agent = self._pick(agents)
        ai, aphrase = self.refer(b, agent, da)
        anchors = [i for i in self.acts_by_agent[agent]
                   if self.mentionable[i] and self._plain_ok(self.thing(ctx.events[i]) or agent, de)]
        ei, ph = self.mention_event(b, self._pick(anchors), de, agent_node=ai, agent_phrase="they")
        w = b.add("localize", [ei], mode=mode)
        acts = b.add("actions", [w])
        f = b.add("filter_events", [acts, ai], roles=["agent"])
        s = b.add(sel, [f])
        q = b.add("query", [s], field="action")
        question = self._fill(key, agent=aphrase, event=ph["past"])
        conflicts = self._memo(("c-agent", agent), lambda: [ctx.action_phrase(i) for i in self.acts_by_agent[agent]])
        return Candidate("temporal", key, b, question, b.values[q], "action", {"agent": aphrase}, conflicts)

    def _q_ordinal(self, b, n, want):
        ctx = self.ctx
        if n == 1:
            if not ctx.actions:
                raise Reject("no-candidate")
            acts = b.add_node("actions", [], {})
            k = self.rng.randrange(1, min(len(ctx.actions), 5) + 1)
            if k == len(ctx.actions) and self.rng.random() < 0.5:
                s, ordw = b.add("last", [acts]), "last"
            else:
                s, ordw = b.add("nth", [acts], k=k), ordinal(k)
            q = b.add("query", [s], field="action")
            question = self._fill("ordinal_any", ord=ordw)
            conflicts = self._memo(("c-acts",), lambda: [ctx.action_phrase(i) for i in ctx.actions])
            return Candidate("ordinal", "ordinal_any", b, question, b.values[q], "action", {"ord": ordw}, conflicts)
        agents = self._memo(("o-agents", n > 2), lambda: [
            a for a, evs in self.acts_by_agent.items() if len(evs) >= 2 and self._plain_ok(a, n - 2)])
        if n == 2 and (not agents or self.rng.random() < 0.3):
            verb = self._pick(sorted({ctx.events[i].verb for i in self.obj_actions}))
            evs = [i for i in self.obj_actions if ctx.events[i].verb == verb]
            acts = b.add_node("actions", [], {})
            f = b.add("filter_events", [acts], label=verb, roles=[])
            k = self.rng.randrange(1, min(len(evs), 4) + 1)
            s, ordw = b.add("nth", [f], k=k), ordinal(k)
            q = b.add("query", [s], field="object")
            prep = object_preposition(verb)
            question = self._fill("ordinal_verb", ord=ordw, past=past(verb), prep=f" {prep}" if prep else "")
            conflicts = [ctx.label(ctx.events[i].object) for i in evs]
            return Candidate("ordinal", "ordinal_verb", b, question, b.values[q], "label", {"ord": ordw,
                             "past": past(verb) + (f" {prep}" if prep else "")}, conflicts)
        agent = self._pick(agents)
        evs = self.acts_by_agent[agent]
        ai, aphrase = self.refer(b, agent, n - 2)
        acts = b.add_node("actions", [], {})
        f = b.add("filter_events", [acts, ai], roles=["agent"])
        k = self.rng.randrange(1, min(len(evs), 5) + 1)
        if k == len(evs) and self.rng.random() < 0.5:
            s, ordw = b.add("last", [f]), "last"
        else:
            s, ordw = b.add("nth", [f], k=k), ordinal(k)
        q = b.add("query", [s], field="action")
        question = self._fill("ordinal", agent=aphrase, ord=ordw)
        conflicts = self._memo(("c-agent", agent), lambda: [ctx.action_phrase(i) for i in evs])
        return Candidate("ordinal", "ordinal", b, question, b.values[q], "action", {"agent": aphrase, "ord": ordw},
                         conflicts)

    def _q_counting(self, b, n, want):
        """``want`` here is the set of answers the bucket has too many of (avoided when possible)."""
        ctx = self.ctx
        avoid = want or frozenset()
        if n == 1:
            labels = sorted(ctx.by_label)
            good = [lab for lab in labels if str(len(ctx.by_label[lab])) not in avoid]
            lab = self._pick(good or labels)
            i = b.add("objects", label=lab)
            c = b.add("count", [i])
            question = self._fill("counting_label", plural=plural(lab))
            return Candidate("counting", "counting_label", b, question, str(b.values[c]), "count",
                             {"plural": plural(lab), "label": clean(lab)})
        variant = self._pick(("counting_events", "counting_objects"))
        w, anchor, extra = self._maybe_anchor(b, n - 2)
        src = [w] if w is not None else []
        agents = self._memo(("c-agents", extra > 0), lambda: [a for a in self.agents if self._plain_ok(a, extra)])
        if not agents or self.rng.random() < 0.25:
            if extra:
                raise Reject("no-reference")
            verbs = sorted({ctx.events[i].verb for i in ctx.actions} | set(self.verb_pool))
            if not verbs:
                raise Reject("no-candidate")
            self.rng.shuffle(verbs)
            acts = b.add("actions", src)
            n0 = len(b.nodes)
            for verb in verbs[:6]:
                b.truncate(n0)
                f = b.add("filter_events", [acts], label=verb, roles=[])
                c = b.add("count", [f])
                if str(b.values[c]) not in avoid:
                    break
            question = self._fill("counting_any", something=verb_something(verb),
                                  anchor=anchor)
            return Candidate("counting", "counting_any", b, question, str(b.values[c]), "count",
                             {"agent": "someone"})
        agent = self._pick(agents)
        ai, aphrase = self.refer(b, agent, extra)
        verbs = sorted({ctx.events[i].verb for i in (ctx.actions if variant == "counting_events" else self.obj_actions)}
                       | set(self.verb_pool))
        if not verbs:
            raise Reject("no-candidate")
        self.rng.shuffle(verbs)
        n0 = len(b.nodes)
        for verb in verbs[:6]:
            b.truncate(n0)
            if variant == "counting_events":
                acts = b.add("actions", src)
                f = b.add("filter_events", [acts, ai], label=verb, roles=["agent"])
            else:
                f = b.add("hop", [ai] + src, kind="action", label=verb, **{"from": "agent", "to": "object"})
            c = b.add("count", [f])
            if str(b.values[c]) not in avoid:
                break
        prep = object_preposition(verb)
        question = self._fill(variant, agent=aphrase, verb=clean(verb), something=verb_something(verb),
                              prep=f" {prep}" if prep else "", anchor=anchor)
        return Candidate("counting", variant, b, question, str(b.values[c]), "count", {"agent": aphrase})

    def _q_existence(self, b, n, want):
        ctx = self.ctx
        want = want or self._pick(("yes", "no"))
        if n == 1:
            # people are in nearly every video: asking whether one appears is answerable from priors
            present = sorted(lab for lab in ctx.by_label if not is_person_label(lab))
            if want == "yes":
                lab = self._pick(present)
            else:
                lab = self._pick(sorted(set(self.label_pool) - set(ctx.by_label)
                                        - {x for x in self.label_pool if is_person_label(x)}))
            i = b.add("objects", label=lab)
            b.add("exists", [i])
            question = self._fill("existence_label", label=clean(lab))
            clause = f"there is {article(lab)} {clean(lab)}" if want == "yes" else f"there is no {clean(lab)}"
            return Candidate("existence", "existence_label", b, question, want, "yesno", {"exists_clause": clause})
        use_rel = bool(ctx.relations) and (not self.obj_actions or self.rng.random() < 0.4)
        pool = list(ctx.relations) if use_rel else self.obj_actions
        first_role = "subject" if use_rel else "agent"
        w, anchor, extra = self._maybe_anchor(b, n - 2)
        src = [w] if w is not None else []
        ds, do = _split(self.rng, extra, 2)
        cands = [i for i in pool if self._plain_ok(role_of(ctx.events[i], first_role), ds)]
        anyone = not cands or (ds == 0 and self.rng.random() < 0.25)
        if anyone:
            do += ds
            ds = 0
            cands = pool
        e = ctx.events[self._pick(cands)]
        subj = role_of(e, first_role)
        label = event_label(e)
        obj = e.object
        if want == "no" or not self._plain_ok(obj, do):
            # Change the object (or the predicate / verb) to one this subject never pairs with.
            same = [role_of(ctx.events[i], "object") for i in pool if event_label(ctx.events[i]) == label
                    and role_of(ctx.events[i], first_role) == subj]
            alts = [o for o in sorted(ctx.objects) if o not in same and o != subj and o not in self.persons
                    and self._plain_ok(o, do)]
            if want == "yes":
                raise Reject("no-reference")
            if anyone:
                alts = [o for o in alts if not any(event_label(ctx.events[i]) == label and ctx.events[i].object == o
                                                   for i in pool)]
            if alts and self.rng.random() < 0.6:
                obj = self._pick(alts)
            else:
                pairs = {event_label(ctx.events[i]) for i in pool if role_of(ctx.events[i], first_role) == subj
                         and ctx.events[i].object == obj}
                labels = sorted({event_label(ctx.events[i]) for i in pool} - pairs)
                label = self._pick(labels)
        self._core(subj, obj, label)
        self._core(subj, e.object, label)
        if anyone:
            sphrase = "anyone" if subj in self.persons else "anything"
            oi, ophrase = self.refer(b, obj, do)
            base = b.add("relations" if use_rel else "actions", src)
            f = b.add("filter_events", [base, oi], label=label, roles=["object"])
        else:
            si, sphrase = self.refer(b, subj, ds)
            oi, ophrase = self.refer(b, obj, do, avoid=frozenset({subj}))
            base = b.add("relations" if use_rel else "actions", src)
            f = b.add("filter_events", [base, si, oi], label=label, roles=[first_role, "object"])
        x = b.add("exists", [f])
        ans = "yes" if b.values[x] else "no"
        if ans != want:
            raise Reject("existence-answer-flip")
        if use_rel:
            question = self._fill("existence_relation", subj=sphrase, pred=clean(label), obj=ophrase, anchor=anchor)
            who = {"anyone": "someone", "anything": "something"}.get(sphrase, sphrase)
            if anyone and ans == "no":
                who = "nothing" if sphrase == "anything" else "no one"
                clause = f"{who} was {clean(label)} {ophrase}{anchor}"
            else:
                clause = f"{who} was {'' if ans == 'yes' else 'not '}{clean(label)} {ophrase}{anchor}"
            variant = "existence_relation"
        else:
            vp = with_object(clean(label), label, ophrase)
            question = self._fill("existence_event", agent=sphrase, vp=vp, anchor=anchor)
            if anyone:
                clause = f"{'someone did' if ans == 'yes' else 'no one did'} {vp}{anchor}"
            else:
                clause = f"{sphrase} {'did' if ans == 'yes' else 'did not'} {vp}{anchor}"
            variant = "existence_event"
        return Candidate("existence", variant, b, question, ans, "yesno", {"exists_clause": clause})

    def _q_comparison(self, b, n, want):
        ctx = self.ctx
        extra = n - 3
        da, d1, d2 = _split(self.rng, extra, 3)

        def pool(evs, d):
            return [i for i in evs if self.mentionable[i] and (self.thing(ctx.events[i]) is None
                                                                or self._plain_ok(self.thing(ctx.events[i]), d))]

        # _plain_ok depends on a depth only through depth > 0: so do these lists
        agents = self._memo(("cmp-agents", da > 0, min(d1, d2) > 0), lambda: [
            a for a, evs in self.acts_by_agent.items() if self._plain_ok(a, da) and len(pool(evs, min(d1, d2))) >= 2])
        acts = b.add_node("actions", [], {})
        if agents and self.rng.random() < 0.7:
            agent = self._pick(agents)
            p1 = pool(self.acts_by_agent[agent], d1)
            e1 = self._pick(p1)
            e2 = self._pick([i for i in pool(self.acts_by_agent[agent], d2) if i != e1])
            ai, aphrase = self.refer(b, agent, da)
            i1, _ = self.mention_event(b, e1, d1, agent_node=ai, agent_phrase=aphrase, source=acts)
            i2, _ = self.mention_event(b, e2, d2, agent_node=ai, agent_phrase=aphrase, source=acts)
            variant = self._pick(("comparison_first", "comparison_first", "comparison_longer"))
        else:
            p1 = [i for i in pool(ctx.actions, d1 + da) if self.mentionable_any[i]]
            e1 = self._pick(p1)
            e2 = self._pick([i for i in pool(ctx.actions, d2) if self.mentionable_any[i] and i != e1])
            i1, p1 = self.mention_event(b, e1, d1 + da, source=acts)
            i2, p2 = self.mention_event(b, e2, d2, source=acts)
            aphrase = "someone"
            variant = "comparison_any"
        pa, pb = ctx.action_phrase(e1), ctx.action_phrase(e2)
        if pa == pb:
            raise Reject("same-phrase")
        c = b.add("choose", [i1, i2], by="longer" if variant == "comparison_longer" else "earlier")
        q = b.add("query", [c], field="action")
        if variant == "comparison_any":
            question = self._fill(variant, ea=p1["past"], eb=p2["past"])
        else:
            question = self._fill(variant, agent=aphrase, a=pa, b=pb)
        answer = b.values[q]
        other = pb if answer == pa else pa
        return Candidate("comparison", variant, b, question, answer, "action", {"agent": aphrase}, [other])


_BY_TYPE = {t: getattr(Sampler, f"_q_{t}") for t in TYPES}
