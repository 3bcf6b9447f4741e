"""Reasoning-path sampling (paper §3.2): pick a connected pair of graph nodes as the first
sub-question, expand open mentions into referring expressions one edge at a time, and optionally
anchor the question to an event before / after / during which it is asked.

Each question type has a base number of steps; the remaining steps of a requested count go to
referring-expression depth and to a temporal anchor. Every node is executed as it is added, so a
reference that does not resolve to exactly one entity is caught at once. A reference is only
built where it is needed (several objects share the label), and the generator proves every step
by ablation (``reason/quality.py``), so a record's step count is that of its minimal program.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from stepkit.graph.types import Action
from stepkit.reason import draw
from stepkit.reason.lexicon import (action_words, cap, clean, conflicts, gerund, indefinite, is_person_label, noun_info,
                                    object_preposition, ordinal, participle, past, phrases, plural, related_words,
                                    verb_frame, verb_something)
from stepkit.reason.ops import Builder, Event, ExecError, GraphContext, Window, _op_of, event_label, in_window, role_of

# Question types, their variants and the fewest steps each variant needs.
TYPES = ("attribute", "relation", "action", "temporal", "ordinal", "counting", "existence", "comparison")
MIN_STEPS = {
    "attribute": 1, "relation": 1, "action": 1, "counting": 1, "existence": 1,
    "ordinal": 1, "temporal": 3, "comparison": 3,
}
YESNO_TYPES = frozenset({"existence"})
# Types whose question states the candidate answers by design ("which first, A or B?").
CHOICE_VARIANTS = frozenset({"comparison_first", "comparison_longer", "comparison_any"})
# How often a question with two spare steps is anchored in time (STAR: two thirds of questions).
ANCHOR_P = 0.9
# How many more of one yes/no answer than of the other a balance key may hold (see generate.py).
YESNO_SLACK = 2
# How often a yes/no question takes a pair whose slot is owed its answer, where one exists.
OWED_P = 0.75


class Reject(Exception):
    """A sampling attempt failed; ``reason`` (its one argument) is counted in the summary's drops.
    (No ``__init__`` of its own: thousands are raised per graph set, and the built-in one is cheaper.)"""

    @property
    def reason(self) -> str:
        return self.args[0]


@dataclass
class Candidate:
    """A sampled question before rendering into a record.

    ``conflicts``: values of the answer's kind that are true elsewhere in this video (another time,
    another object): the first distractors. ``also_true``: values a viewer could also call right
    (the answer read through entailments and synonyms in this graph): never offered.
    ``slot``: (verb or predicate, role) an object answer must fit, or (None, object label) a verb /
    predicate answer must fit, for the plausibility of distractors."""

    type: str
    variant: str
    builder: Builder
    question: str
    answer: str
    answer_kind: str
    slots: dict[str, str] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    also_true: set[str] = field(default_factory=set)
    slot: tuple[str | None, str | None] = (None, None)
    anchored: bool = False
    asked: tuple[str, ...] = ()
    ref_nodes: list = field(default_factory=list)
    phrasing: tuple[str, str] | None = None
    near: list = field(default_factory=list)  # the very first distractors (other events of the same window)
    # an extra balance the generator holds: (key, answer, yes/no-like) — the verb that follows an
    # anchor verb, which of two verbs comes first (scripts a text-only learner would know)
    balance: tuple[str, str, bool] | list[tuple[str, str, bool]] | None = None
    # a key for questions a graph can ask only one way (its program follows from the key): once
    # one is kept, the sampler does not build it again (``Sampler.done``)
    once: tuple | None = None


def _split(rng: random.Random, total: int, k: int) -> list[int]:
    """``total`` split into ``k`` random non-negative parts."""
    parts = [0] * k
    for _ in range(total):
        parts[draw.below(rng, k)] += 1
    return parts


def _prep(verb: str) -> str:
    p = object_preposition(verb)
    return f" {p}" if p else ""


class Sampler:
    """Samples questions of a given type and step count from one graph."""

    def __init__(self, ctx: GraphContext, rng: random.Random, label_pool: list[str] | None = None,
                 verb_pool: list[str] | None = None, prior=None):
        self.ctx = ctx
        self.rng = rng
        self.ph = phrases()
        self.label_pool = label_pool or []
        self.verb_pool = verb_pool or []
        self.prior = prior
        g = ctx.graph
        self.agents = sorted({a.agent for a in g.actions})
        self.persons = {o.id for o in g.objects if is_person_label(o.label)} | set(self.agents)
        self.acts_by_agent: dict[str, list[str]] = {}
        for eid in ctx.actions:
            self.acts_by_agent.setdefault(ctx.action_map[eid].agent, []).append(eid)
        self.obj_actions = [i for i in ctx.actions if self.thing(ctx.events[i]) is not None
                            and self.thing_role(ctx.events[i]) == "object"]
        self.thing_actions = [i for i in ctx.actions if self.thing(ctx.events[i]) is not None]
        self.attr_objects = [o.id for o in g.objects if o.attributes]
        self.plain = {o.id: len(ctx.by_label[o.label]) == 1 for o in g.objects}
        fan: dict[tuple, set] = {}
        pair: dict[tuple, int] = {}
        for r in g.relations:
            fan.setdefault(("rs", r.subject, r.predicate), set()).add(r.object)
            fan.setdefault(("ro", r.object, r.predicate), set()).add(r.subject)
            pair[("r", r.subject, r.object)] = pair.get(("r", r.subject, r.object), 0) + 1
        for e in g.actions:
            th = self.thing(e)
            if th is not None:
                fan.setdefault(("ao", e.agent, e.verb), set()).add(th)
                pair[("a", e.agent, th)] = pair.get(("a", e.agent, th), 0) + 1
        self.fan = {k: len(v) for k, v in fan.items()}
        self.pair = pair
        trip: dict[tuple, int] = {}
        for e in g.actions:
            k = (e.agent, e.verb, self.thing(e))
            trip[k] = trip.get(k, 0) + 1
        self.mentionable = {e.id: trip[(e.agent, e.verb, self.thing(e))] == 1 for e in g.actions}
        pair2: dict[tuple, int] = {}
        for e in g.actions:
            pair2[(e.verb, self.thing(e))] = pair2.get((e.verb, self.thing(e)), 0) + 1
        self.mentionable_any = {e.id: pair2[(e.verb, self.thing(e))] == 1
                                or (self.mentionable[e.id] and self.plain.get(e.agent, False)) for e in g.actions}
        # Relations are mentionable by (subject, predicate, object) when that triple is unique.
        rtrip: dict[tuple, int] = {}
        for r in g.relations:
            rtrip[(r.subject, r.predicate, r.object)] = rtrip.get((r.subject, r.predicate, r.object), 0) + 1
        self.rel_mentionable = {r.id: rtrip[(r.subject, r.predicate, r.object)] == 1 for r in g.relations}
        # The same happening annotated twice (an action and the relation it implies, same span).
        self.twins: dict[str, set[str]] = {}
        by_parts: dict[tuple, list[str]] = {}
        every: list[Event] = [*g.actions, *g.relations]
        for ev in every:
            subj = ev.agent if isinstance(ev, Action) else ev.subject
            obj = self.thing(ev) if isinstance(ev, Action) else ev.object
            by_parts.setdefault((subj, obj), []).append(ev.id)
        for ids in by_parts.values():
            for i in ids:
                a = ctx.events[i]
                self.twins[i] = {j for j in ids if abs(ctx.events[j].t0 - a.t0) < 1.0 and abs(ctx.events[j].t1 - a.t1) < 1.0}
        self.avoid_edges: set[str] = set()
        self.anchor_events: set[str] = set()
        self._ref_nodes: list = []
        self.force_anchor = False  # set by the generator while the anchored share is below its target
        # whether the generator's balance would take this answer in this slot (set by the generator)
        self.slot_ok = lambda qtype, slot, answer: True
        # whether the generator's balance would take this answer under this key (set by the generator)
        self.balance_ok = lambda key, answer, yesno: True
        # yes answers minus no answers kept so far in a yes/no slot (set by the generator)
        self.yes_lean = lambda qtype, slot: 0
        # (template, phrasing) -> records accepted with it; shared with the generator
        self.phrase_counts: Counter = Counter()
        self.phrasing: tuple[str, str] | None = None
        self._cache: dict[tuple, Any] = {}
        self._refer_edges: dict[str, list] = {}
        self._windows: dict[tuple[str, str], frozenset[str]] = {}
        self.done: set[tuple] = set()  # ``Candidate.once`` keys of records kept (set by the generator)
        self._balanced: dict[str, dict[tuple, Any]] = {}  # question type -> key -> list or bool (see _memo_balanced)
        self._plain_mentions: dict[str, tuple] = {}  # see _plain_mention
        self._plain_refs: dict[str, tuple | None] = {}  # object id -> the nodes of its plain mention (refer)

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def thing(e) -> str | None:
        """What an action is done to: its object, else its target ("walk to the table")."""
        if not isinstance(e, Action):
            return e.object
        return e.object if e.object is not None else e.target

    @staticmethod
    def thing_role(e) -> str | None:
        """The role holding :meth:`thing` (``object`` or ``target``)."""
        if not isinstance(e, Action):
            return "object"
        return "object" if e.object is not None else ("target" if e.target is not None else None)

    def _pick(self, seq):
        if not seq:
            raise Reject("no-candidate")
        return draw.choice(self.rng, seq)

    def _owed_pick(self, seq, slot_of, want: str):
        """One of ``seq`` for a yes/no question answered ``want``: mostly one whose slot (``slot_of(x)``
        is ``(qtype, slot)``) has had more of the other answer, so that each verb–object pair is as
        often "yes" as "no" over the corpus (a typical pair is otherwise a "yes" a text-only learner
        can bet on); never one whose slot the generator's balance would refuse."""
        if not seq:
            raise Reject("no-candidate")
        sign = 1 if want == "no" else -1
        lean = self.yes_lean
        leans = [sign * lean(*slot_of(x)) for x in seq]
        owed = [x for x, d in zip(seq, leans) if d > 0]
        if owed and self.rng.random() < OWED_P:
            return draw.choice(self.rng, owed)
        return self._pick([x for x, d in zip(seq, leans) if d > -YESNO_SLACK])

    def _pair_slot(self, eid: str) -> tuple[str, tuple[str, str]]:
        e = self.ctx.events[eid]
        th = self.thing(e)
        if th is None:
            raise KeyError(eid)  # an existence pair needs a thing
        return "existence", (event_label(e), self.ctx.objects[th].label)

    def _cat(self, oid: str) -> str:
        return "person" if oid in self.persons else "object"

    def _fill(self, template_key: str, passive_ok: bool = True, **kw: str) -> str:
        """A question from the phrasing of ``template_key`` used least so far (ties: random), so
        every phrasing of a template is used."""
        opts = self.ph["questions"][template_key]
        if not passive_ok:
            opts = [o for o in opts if "{participle}" not in o]
        if not opts:
            raise Reject("no-candidate")
        count = self.phrase_counts.get
        order = list(range(len(opts)))
        draw.shuffle(self.rng, order)
        i, least = order[0], count((template_key, opts[order[0]]), 0)
        for j in order[1:]:  # the first of the least used, as min() picks
            c = count((template_key, opts[j]), 0)
            if c < least:
                i, least = j, c
        self.phrasing = (template_key, opts[i])
        return cap(" ".join(opts[i].format(**kw).split()))

    def _plausible(self, pv: str, oid_or_label: str) -> bool:
        if self.prior is None:
            return True
        lab = self.ctx.objects[oid_or_label].label if oid_or_label in self.ctx.objects else oid_or_label
        return self.prior.is_plausible(pv, lab)

    def _mark_asked(self, ids) -> None:
        """Events the question asks about: references and anchors must not use them (or their twins)."""
        for i in ids:
            self.avoid_edges |= self.twins.get(i, {i})

    # -- referring expressions -----------------------------------------------------------------
    def refer(self, b: Builder, oid: str, depth: int, avoid: frozenset = frozenset(),
              avoid_attr: str | None = None) -> tuple[int, str]:
        """Add nodes resolving exactly to object ``oid`` with ``depth`` steps; returns (node, phrase).

        A reference (depth > 0) is only made where the plain mention would not do: several
        objects share the label (else the step would narrow nothing)."""
        ctx = self.ctx
        lab = ctx.objects[oid].label
        if depth == 0:
            if len(ctx.by_label[lab]) != 1:
                raise Reject("no-plain-reference")
            # the plain mention: always the same two nodes, built once per object and replayed
            seg = self._plain_refs.get(oid)
            if seg is None:
                n0 = len(b.nodes)
                i = b.add_node("objects", (), {"label": lab})
                u = b.add_node("unique", (i,), {})
                self._plain_refs[oid] = b.segment(n0)
                return u, "the " + ctx.label(oid)
            return b.replay(seg), "the " + ctx.label(oid)
        if len(ctx.by_label[lab]) == 1:
            raise Reject("no-op-reference")
        refs = self.ph["references"]
        inc = self._edges_of(oid)
        k = draw.below(self.rng, len(inc)) if inc else 0
        edges = inc[k:] + inc[:k]
        tried = 0
        avoid_edges, by_label = self.avoid_edges, ctx.by_label
        noun = ctx.label(oid)
        for entry in edges:
            if entry is None:
                continue
            e, role, other_role, other, kind = entry
            if e.id in avoid_edges or other in avoid or e.id in self.anchor_events:
                continue
            tried += 1
            if tried > 4:
                break
            # the other end must be mentioned plainly when its label is its own and by a reference
            # when it is shared: else the nested refer() refuses at once (tested here, not raised)
            if (len(by_label[ctx.objects[other].label]) == 1) != (depth == 1):
                continue
            n0 = len(b.nodes)
            try:
                oi, ophrase = self.refer(b, other, depth - 1, avoid | {oid})
                h = b.add_node("hop", [oi], {"kind": kind, "label": event_label(e), "from": other_role, "to": role})
            except (Reject, ExecError):
                b.truncate(n0)
                continue
            if len(b.values[h]) != 1:  # the reference does not pick one object (unique would fail)
                b.truncate(n0)
                continue
            u = b.add_node("unique", [h], {})
            self._ref_nodes.append(b.nodes[h])
            who = "who" if oid in self.persons else "that"
            if kind == "relation":
                key = "relation_object" if role == "object" else "relation_subject"
                phrase = refs[key].format(noun=noun, other=ophrase, pred=clean(e.predicate), who=who)
            else:
                if role in ("object", "target"):
                    phrase = refs["action_object"].format(noun=noun, other=ophrase, past=past(e.verb),
                                                          prep=_prep(e.verb) if role == "object" else "")
                else:
                    tgt_role = self.thing_role(e)
                    vp = (action_words(past(e.verb), e.verb, ophrase, "") if tgt_role == "object"
                          else action_words(past(e.verb), e.verb, "", ophrase))
                    phrase = refs["action_agent"].format(noun=noun, past_obj=vp, who=who)
            return u, phrase
        if depth == 1:
            obj = ctx.objects[oid]
            attrs = [a for a in obj.attributes if a.name != avoid_attr]
            draw.shuffle(self.rng, attrs)
            for a in attrs[:2]:
                n0 = len(b.nodes)
                try:
                    i = b.add("objects", label=obj.label)
                    f = b.add("filter_attr", [i], name=a.name, value=a.value)
                except ExecError:
                    b.truncate(n0)
                    continue
                if len(b.values[f]) != 1:  # the value does not pick one object (unique would fail)
                    b.truncate(n0)
                    continue
                u = b.add_node("unique", [f], {})
                key = f"person_{a.name}" if oid in self.persons and f"person_{a.name}" in refs["attribute"] else a.name
                tmpl = refs["attribute"].get(key, refs["attribute"]["default"])
                return u, tmpl.format(label=noun, value=clean(a.value))
        raise Reject("no-reference")

    def _edges_of(self, oid: str) -> list:
        """The edges at ``oid`` a reference can follow: (edge, role of ``oid``, role of the other
        end, the other end, kind), or None where the edge can never serve (cached per object)."""
        got = self._refer_edges.get(oid)
        if got is None:
            got = []
            for e, role in self.ctx.incident.get(oid, ()):
                is_act = isinstance(e, Action)
                thing = "object" if not is_act else self.thing_role(e)
                other_role = thing if role in ("agent", "subject") else ("agent" if is_act else "subject")
                other = role_of(e, other_role) if other_role else None
                if (role == "target" and thing != "target") or other is None or other == oid:
                    got.append(None)
                else:
                    got.append((e, role, other_role, other, "action" if is_act else "relation"))
            self._refer_edges[oid] = got
        return got

    # -- events and anchors --------------------------------------------------------------------
    def event_phrases(self, e, a_phrase: str, o_phrase: str) -> dict[str, str]:
        """Clauses for an event: past (``the man opened the door``), progressive, base, gerund."""
        if isinstance(e, Action):
            v = e.verb
            say = self.ctx.verb(v)
            role = self.thing_role(e)
            obj, tgt = (o_phrase, "") if role == "object" else ("", o_phrase)

            def vp(form: str) -> str:
                return action_words(form, v, obj, tgt)

            return {"past": f"{a_phrase} {vp(past(v))}", "prog": f"{a_phrase} was {vp(gerund(v))}",
                    "base": vp(say), "ger": vp(gerund(v))}
        pred = clean(e.predicate)
        return {"past": f"{a_phrase} was {pred} {o_phrase}", "prog": f"{a_phrase} was {pred} {o_phrase}",
                "base": f"be {pred} {o_phrase}", "ger": f"being {pred} {o_phrase}"}

    def mention_event(self, b: Builder, eid: str, depth: int, agent_node: int | None = None,
                      agent_phrase: str | None = None, source: int | None = None) -> tuple[int, dict[str, str]]:
        """Nodes resolving exactly to event ``eid`` (1 + ``depth`` steps); returns (node, phrases)."""
        if depth == 0 and agent_node is None and source is None:
            return self._plain_mention(b, eid)
        return self._mention_event(b, eid, depth, agent_node, agent_phrase, source)

    def _plain_mention(self, b: Builder, eid: str) -> tuple[int, dict[str, str]]:
        """:meth:`mention_event` with no reference, on nodes of its own: it draws nothing and its
        participants are plain mentions, so it builds the same nodes and phrases (or fails the same
        way) every time; they are built once per graph and replayed into the builder."""
        got = self._plain_mentions.get(eid)
        if got is None:
            n0 = len(b.nodes)
            try:
                u, ph = self._mention_event(b, eid, 0)
            except Reject as exc:
                self._plain_mentions[eid] = (Reject, (exc.reason,))
                raise
            except ExecError as err:
                self._plain_mentions[eid] = (ExecError, (err.reason, str(err)))
                raise
            seg = b.segment(n0)
            if seg is not None and u == len(b.nodes) - 1:
                self._plain_mentions[eid] = (seg, ph)
            return u, dict(ph)
        if type(got[0]) is type:  # it failed when built: it fails the same way (a fresh exception)
            raise got[0](*got[1])
        seg, ph = got
        return b.replay(seg), dict(ph)

    def _mention_event(self, b: Builder, eid: str, depth: int, agent_node: int | None = None,
                       agent_phrase: str | None = None, source: int | None = None) -> tuple[int, dict[str, str]]:
        ctx = self.ctx
        e = ctx.events[eid]
        is_act = isinstance(e, Action)
        first_role = "agent" if is_act else "subject"
        agent = e.agent if isinstance(e, Action) else e.subject
        thing = self.thing(e)
        thing_role = self.thing_role(e)
        if agent_node is not None:
            if thing is None and depth:
                raise Reject("no-reference")
            d_agent, d_obj = 0, depth
        else:
            d_agent, d_obj = _split(self.rng, depth, 2) if thing is not None else (depth, 0)
            # depth goes only where a reference narrows something (a label shared by several objects)
            if d_agent and self.plain.get(agent, False) and thing is not None:
                d_agent, d_obj = 0, depth
            elif d_obj and thing is not None and self.plain.get(thing, False):
                d_agent, d_obj = depth, 0
        n0 = len(b.nodes)
        ins: list[int] = []
        roles: list[str | None] = []
        # a participant's reference must not lean on the event being mentioned ("the person who
        # walked to the door was walking to the door")
        saved = self.avoid_edges
        self.avoid_edges = saved | self.twins.get(eid, {eid})
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
        finally:
            self.avoid_edges = saved
        return u, self.event_phrases(e, a_phrase, o_phrase)

    def window_set(self, eid: str, mode: str) -> frozenset[str]:
        """The events inside the window ``localize(eid, mode)`` makes (cached per graph)."""
        key = (eid, mode)
        got = self._windows.get(key)
        if got is None:
            e = self.ctx.events[eid]
            t0, t1 = {"before": (0.0, e.t0), "after": (e.t1, self.ctx.duration)}.get(mode, (e.t0, e.t1))
            w = Window(t0, t1, mode, eid)
            got = self._windows[key] = frozenset(i for i, ev in self.ctx.events.items() if in_window(ev, w))
        return got

    def anchor(self, b: Builder, depth: int, exclude: frozenset = frozenset(),
               modes: tuple[str, ...] = ("before", "after", "while"), viable=None,
               static: tuple | None = None, balanced: tuple | None = None) -> tuple[int, str, str]:
        """A localize node on a uniquely mentioned event (2 + ``depth`` steps); returns (node, phrase, mode).
        ``viable(window_events, anchor_twins)``: whether the question can use a window at all; windows
        it refuses are passed over before the anchor's mention is built. ``static``: a key under which
        ``viable`` depends on the anchor alone, so the anchors it takes are found once per graph;
        ``balanced``: one under which it depends on the anchor and the generator's balance, so its
        answers are kept until the generator keeps a record."""
        ctx = self.ctx
        mode = self._pick(modes)
        deep = depth > 0
        # the events that can be mentioned with (or without) a reference: actions, and for "while"
        # also relations (states), in that order; one list for before and after
        acts = self._mentionable_actions(deep)
        pool = acts if mode != "while" else self._memo(("anchor-pool", True, deep), lambda: acts + [
            i for i in ctx.relations if self._mention_ok(i, deep)])
        if viable is not None and static is not None:
            base = pool
            pool = self._memo(("anchor-viable", static, mode, depth > 0), lambda: [
                i for i in base if viable(self.window_set(i, mode), self.twins.get(i, {i}))])
            viable = None
        bad = exclude | self.avoid_edges
        if bad:
            pool = [i for i in pool if i not in bad]
        built = 0
        for _ in range(12 if viable is not None else 3):
            eid = self._pick(pool)
            if viable is not None and not (
                    viable(self.window_set(eid, mode), self.twins.get(eid, {eid})) if balanced is None else
                    self._memo_balanced(balanced[0][0], ("anchor-viable", balanced, mode, eid),
                                        lambda: viable(self.window_set(eid, mode), self.twins.get(eid, {eid})))):
                continue
            built += 1
            if built > 3:
                break
            n0 = len(b.nodes)
            try:
                ei, ph = self.mention_event(b, eid, depth)
                w = b.add("localize", [ei], mode=mode)
            except (Reject, ExecError):
                b.truncate(n0)
                continue
            clause = ph["prog"] if mode == "while" else ph["past"]
            self.anchor_events |= self.twins.get(eid, {eid})  # references must not restate the anchor
            return w, self.ph["anchors"][mode].format(event=clause), mode
        raise Reject("no-anchor")

    def _mentionable_actions(self, deep: bool) -> list[str]:
        """The actions :meth:`_mention_ok` takes, in time order (cached per graph)."""
        return self._memo(("mentionable-actions", deep), lambda: [
            i for i in self.ctx.actions if self._mention_ok(i, deep)])

    def _mention_ok(self, eid: str, deep: bool) -> bool:
        """Whether an event can be mentioned uniquely with no reference (``deep`` False: every
        participant by its own label) or needs one (``deep``: some participant's label is shared)."""
        e = self.ctx.events[eid]
        is_act = isinstance(e, Action)
        agent = e.agent if isinstance(e, Action) else e.subject
        th = self.thing(e)
        if not (self.mentionable[eid] if is_act else self.rel_mentionable[eid]):
            return False
        if not deep:
            named = [x for x in (th, agent if self.plain.get(agent, False) else None) if x]
            return all(self.plain.get(x, False) for x in named) and (not is_act or self.mentionable_any[eid]
                                                                     or self.plain.get(agent, False))
        return any(not self.plain.get(x, True) for x in (th, agent) if x)

    def _maybe_anchor(self, b: Builder, extra: int, p: float = ANCHOR_P,
                      viable=None, static: tuple | None = None,
                      balanced: tuple | None = None) -> tuple[int | None, str, int]:
        """Spend 2+ of ``extra`` steps on an anchor with probability ``p``; returns (node, phrase, left).
        ``viable(window_events, anchor_twins, left)``: whether the rest of the question can be built in
        a window (checked before the anchor is); ``static`` / ``balanced``: see :meth:`anchor`."""
        if extra >= 2 and (self.force_anchor or self.rng.random() < p):
            d = draw.below(self.rng, min(extra - 2, 1) + 1)
            left = extra - 2 - d
            check = None if viable is None else (lambda inw, excl: viable(inw, excl, left))
            w, phrase, _ = self.anchor(b, d, viable=check, static=None if static is None else (static, left),
                                       balanced=None if balanced is None else (balanced, left))
            return w, phrase, extra - 2 - d
        return None, "", extra

    def _also(self, values) -> set[str]:
        out: set[str] = set()
        for v in values:
            out |= related_words(v)
        return out

    # -- question types ------------------------------------------------------------------------
    def sample(self, qtype: str, steps: int, want: str | frozenset[str] | None = None) -> Candidate:
        """One candidate of ``qtype`` with exactly ``steps`` steps (``want``: yes/no for existence,
        the answers to avoid for counting)."""
        if steps < MIN_STEPS[qtype]:
            raise Reject("too-few-steps-for-type")
        b = Builder(self.ctx, memo=self.ctx.results)
        self._fresh_candidate()
        cand = _BY_TYPE[qtype](self, b, steps, want)
        cand.phrasing = self.phrasing
        if b.steps() != steps:
            raise Reject("step-mismatch")
        if self._ref_nodes:
            live = {id(n): i for i, n in enumerate(b.nodes)}
            cand.ref_nodes = [live[id(n)] for n in self._ref_nodes if id(n) in live and b.nodes[live[id(n)]] is n]
        cand.anchored = "localize" in map(_op_of, b.nodes)
        return cand

    def _fresh_candidate(self) -> None:
        """Forget what the last candidate marked (a method, not inline: a type checker, and mypyc
        with it, would otherwise take ``phrasing`` to stay None across the builder call)."""
        self.avoid_edges = set()
        self.anchor_events = set()
        self._ref_nodes = []
        self.phrasing = None

    def _core(self, a: str | None, b: str | None, label: str | None = None) -> None:
        """Mark every edge between ``a`` and ``b`` (with ``label``, if given) as off limits to references."""
        if a is None:
            return  # objects are never None: nothing is incident
        parts = self.ctx.parts  # event id -> (agent or subject, object, target, verb or predicate)
        for e, _ in self.ctx.incident.get(a, ()):
            p = parts[e.id]
            if label is not None and p[3] != label:
                continue
            if b == p[0] or b == p[1] or b == p[2]:
                self._mark_asked([e.id])

    def _memo(self, key: tuple, build):
        """A per-graph cache of candidate lists (they depend only on the graph and the key)."""
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = build()
        return got

    def _viable_in_window(self, qtype: str, variant: str, pool, fits):
        """The ``viable`` test of :meth:`_maybe_anchor` for a question over the events of ``pool``:
        whether a window (less ``excl``) holds one that ``fits`` this variant. Which events fit a
        window does not depend on the window, so they are found once per balance."""
        def viable(inw, excl, left):
            fit = self._memo_balanced(qtype, ("windowed", variant, left),
                                      lambda: [i for i in pool if fits(i, True, left)])
            return any(i in inw and i not in excl for i in fit)

        return viable

    def _memo_balanced(self, qtype: str, key: tuple, build):
        """A cache of candidate lists of questions of ``qtype`` that read the generator's balance
        (``slot_ok``, ``balance_ok``) or ``done``: valid until the generator keeps a record of that
        type (:meth:`kept`). The balance keys a type reads are its own (``slot|<type>|...``,
        ``temporal|...``) and so are its ``done`` keys, so a record of another type leaves them be."""
        cache = self._balanced.get(qtype)
        if cache is None:
            cache = self._balanced[qtype] = {}
        got = cache.get(key)
        if got is None:
            got = cache[key] = build()
        return got

    def kept(self, qtype: str) -> None:
        """The generator kept a record of ``qtype``: the balance and ``done`` of that type changed."""
        self._balanced.pop(qtype, None)

    def _plain_ok(self, oid: str | None, depth: int) -> bool:
        """Whether ``oid`` can be mentioned with ``depth`` reference steps: plainly only when its
        label is unique, by a reference only when it is not (a reference must narrow something)."""
        if oid is None:
            return False
        plain = self.plain.get(oid, False)
        return plain if depth == 0 else not plain

    def _window_events(self, w_node: int | None, b: Builder) -> frozenset[str] | None:
        if w_node is None:
            return None
        w = b.values[w_node]
        return self.window_set(w.anchor, w.mode)

    def _q_attribute(self, b, n, want):
        ctx = self.ctx
        # a window matters only for an attribute that changes over the video (a door opened)
        varying = self._memo(("attr-varying",), lambda: [
            o for o in self.attr_objects if len({a.value for a in ctx.objects[o].attributes}) > len(
                {a.name for a in ctx.objects[o].attributes})])
        w, anchor, extra = self._maybe_anchor(b, n - 1) if varying else (None, "", n - 1)
        pool = [o for o in (varying if w is not None else self.attr_objects) if self._plain_ok(o, extra)]
        oid = self._pick(pool)
        attrs = ctx.objects[oid].attributes
        names = [a.name for a in attrs]
        if w is None:  # without a window, only attributes with one value over the video can be asked
            attrs = [a for a in attrs if names.count(a.name) == 1]
        else:
            attrs = [a for a in attrs if names.count(a.name) > 1]
        attr = self._pick(attrs)
        oi, ophrase = self.refer(b, oid, extra, avoid_attr=attr.name)
        q = b.add("query_attr", [oi] + ([w] if w is not None else []), name=attr.name)
        name = clean(attr.name)
        answer = b.values[q]
        person = oid in self.persons and name in ("color", "colour", "shirt", "shirt color")
        variant = "attribute_person" if person else "attribute"
        question = self._fill(variant, attr=name, obj=ophrase, anchor=anchor)
        same_sort = [o for o in ctx.graph.objects if (o.id in self.persons) == (oid in self.persons)]
        conflicts = self._memo(("c-attr", attr.name, person), lambda: [
            clean(a.value) for o in same_sort for a in o.attributes if a.name == attr.name])
        if w is None:
            also = self._also(clean(a.value) for a in ctx.objects[oid].attributes if a.name == attr.name)
        else:  # in a window the other values of the attribute are false (and the best distractors)
            also = self._also([clean(answer)])
            conflicts = [clean(a.value) for a in ctx.objects[oid].attributes if a.name == attr.name] + list(conflicts)
        return Candidate("attribute", variant, b, question, answer, f"value:{attr.name}",
                         {"attr": name, "obj": ophrase, "noun": ctx.label(oid)}, conflicts, also,
                         slot=(f"attribute:{attr.name}", ctx.objects[oid].label))

    def _q_relation(self, b, n, want):
        ctx = self.ctx
        variant = self._pick(("relation_object", "relation_object", "relation_subject", "relation_predicate"))
        # a window is only worth building where the asked edge is ambiguous over the whole video
        fan_key = {"relation_object": "rs", "relation_subject": "ro"}.get(variant)
        can_window = self._memo(("rel-win", variant), lambda: any(
            (self.fan[(fan_key, e.subject if fan_key == "rs" else e.object, e.predicate)] if fan_key
             else self.pair[("r", e.subject, e.object)]) > 1 for e in ctx.graph.relations))

        def fits(i, windowed, extra, split=None):
            # the relation this variant can ask about (``split``: the reference depths of subject
            # and object, None to check the rest only)
            e = ctx.events[i]
            if variant == "relation_predicate":
                return ((split is None or (self._plain_ok(e.subject, split[0]) and self._plain_ok(e.object, split[1])))
                        and (self.pair[("r", e.subject, e.object)] == 1) != windowed
                        and self.slot_ok("relation", (None, ctx.objects[e.object].label), clean(e.predicate)))
            if variant == "relation_object":
                return (self._plain_ok(e.subject, extra) and (self.fan[("rs", e.subject, e.predicate)] == 1) != windowed
                        and self.slot_ok("relation", (e.predicate, "object"), ctx.label(e.object)))
            # "who is sitting on the chair?" -> "person" says nothing: never asked
            return (self._plain_ok(e.object, extra) and (self.fan[("ro", e.object, e.predicate)] == 1) != windowed
                    and not (e.subject in self.persons and is_person_label(ctx.objects[e.subject].label)))

        viable = self._viable_in_window("relation", variant, ctx.relations, fits)
        w, anchor, extra = (self._maybe_anchor(b, n - 1, viable=viable, balanced=("relation", variant)) if can_window
                            else (None, "", n - 1))
        src = [w] if w is not None else []
        inw = self._window_events(w, b)
        windowed = w is not None
        gone = frozenset(self.anchor_events)

        def fitting(split=None):
            # the relations of the window (less the anchor's) this variant can ask about
            return self._memo_balanced("relation", (variant, b.values[w] if windowed else None, gone, extra, split),
                                       lambda: [i for i in ctx.relations if i not in gone and (inw is None or i in inw)
                                                and fits(i, windowed, extra, split)])

        if variant == "relation_predicate":
            ds, do = _split(self.rng, extra, 2)
            r = ctx.events[self._pick(fitting((ds, do)))]
            self._core(r.subject, r.object)
            si, sphrase = self.refer(b, r.subject, ds)
            oi, ophrase = self.refer(b, r.object, do, avoid=frozenset({r.subject}))
            rel = b.add("relations", src)
            f = b.add("filter_events", [rel, si, oi], roles=["subject", "object"])
            u = b.add_node("unique", [f], {})
            q = b.add("query", [u], field="predicate")
            question = self._fill(variant, subj=sphrase, obj=ophrase, anchor=anchor)
            conflicts = self._memo(("c-pred",), lambda: sorted({clean(ctx.events[i].predicate) for i in ctx.relations}))
            also = self._also(clean(ctx.events[i].predicate) for i in ctx.relations
                              if ctx.events[i].subject == r.subject and ctx.events[i].object == r.object)
            return Candidate("relation", variant, b, question, b.values[q], "predicate",
                             {"subj": sphrase, "obj": ophrase, "subj_person": "1" if r.subject in self.persons else "0"},
                             conflicts, also, (None, ctx.objects[r.object].label), asked=(r.id,))
        if variant == "relation_object":
            r = ctx.events[self._pick(fitting())]
            pred = clean(r.predicate)
            self._core(r.subject, r.object, r.predicate)
            si, sphrase = self.refer(b, r.subject, extra)
            h = b.add("hop", [si] + src, kind="relation", label=r.predicate, **{"from": "subject", "to": "object"})
            u = b.add_node("unique", [h], {})
            q = b.add("query", [u], field="label")
            question = self._fill(variant, subj=sphrase, pred=pred, anchor=anchor)
            conflicts = self._memo(("c-ro", r.predicate), lambda: sorted({
                ctx.label(ctx.events[i].object) for i in ctx.relations if ctx.events[i].predicate == r.predicate}))
            rel_preds = related_words(pred)
            also = self._also(ctx.label(ctx.events[i].object) for i in ctx.relations
                              if ctx.events[i].subject == r.subject and clean(ctx.events[i].predicate) in rel_preds)
            return Candidate("relation", variant, b, question, b.values[q], "label",
                             {"subj": sphrase, "pred": pred}, conflicts, also, (r.predicate, "object"), asked=(r.id,))
        r = ctx.events[self._pick(fitting())]
        pred = clean(r.predicate)
        self._core(r.subject, r.object, r.predicate)
        oi, ophrase = self.refer(b, r.object, extra)
        h = b.add("hop", [oi] + src, kind="relation", label=r.predicate, **{"from": "object", "to": "subject"})
        u = b.add_node("unique", [h], {})
        q = b.add("query", [u], field="label")
        if b.values[u] in self.persons and is_person_label(ctx.objects[b.values[u]].label):
            raise Reject("trivial-answer")  # "who is sitting on the chair?" -> "person" says nothing
        person = b.values[u] in self.persons
        question = self._fill(variant, Wh="Who" if person else "What", cat="person" if person else "object",
                              pred=pred, obj=ophrase, anchor=anchor)
        conflicts = self._memo(("c-rs", r.predicate), lambda: sorted({
            ctx.label(ctx.events[i].subject) for i in ctx.relations if ctx.events[i].predicate == r.predicate}))
        rel_preds = related_words(pred)
        also = self._also(ctx.label(ctx.events[i].subject) for i in ctx.relations
                          if ctx.events[i].object == r.object and clean(ctx.events[i].predicate) in rel_preds)
        return Candidate("relation", variant, b, question, b.values[q], "label", {"obj": ophrase, "pred": pred},
                         conflicts, also, (None, None), asked=(r.id,))

    def _q_action(self, b, n, want):
        ctx = self.ctx
        variant = self._pick(("action_object", "action_verb"))
        can_window = self._memo(("act-win", variant), lambda: any(
            (self.fan[("ao", ctx.events[i].agent, ctx.events[i].verb)] if variant == "action_object"
             else self.pair[("a", ctx.events[i].agent, ctx.events[i].object)]) > 1 for i in self.obj_actions))
        no_plain_agent = not any(self.plain.get(a) for a in self.agents)

        def fits(i, windowed, extra, split=None):
            e = ctx.events[i]
            if variant == "action_object":
                return extra == 0 and no_plain_agent or (
                    self._plain_ok(e.agent, extra) and (self.fan[("ao", e.agent, e.verb)] == 1) != windowed
                    and self.slot_ok("action", (e.verb, "object"), ctx.label(e.object)))
            return ((split is None or (self._plain_ok(e.agent, split[0]) and self._plain_ok(e.object, split[1])))
                    and (self.pair[("a", e.agent, e.object)] == 1) != windowed
                    and self.slot_ok("action", (None, ctx.objects[e.object].label), ctx.verb(e.verb)))

        viable = self._viable_in_window("action", variant, self.obj_actions, fits)
        w, anchor, extra = (self._maybe_anchor(b, n - 1, viable=viable, balanced=("action", variant)) if can_window
                            else (None, "", n - 1))
        src = [w] if w is not None else []
        inw = self._window_events(w, b)
        windowed = w is not None
        gone = frozenset(self.anchor_events)
        obj_acts = [i for i in self.obj_actions if i not in gone and (inw is None or i in inw)]

        def fitting(split=None):
            # the actions of the window (less the anchor's) this variant can ask about
            return self._memo_balanced("action", (variant, b.values[w] if windowed else None, gone, extra, split),
                                       lambda: [i for i in obj_acts if fits(i, windowed, extra, split)])

        if variant == "action_object" and extra == 0 and no_plain_agent:
            a = ctx.events[self._pick(obj_acts)]
            acts = b.add("actions", src)
            f = b.add("filter_events", [acts], label=a.verb, roles=[])
            u = b.add_node("unique", [f], {})
            q = b.add("query", [u], field="object")
            fr = verb_frame(a.verb)
            question = self._fill("action_any", fr.passive, verb=ctx.verb(a.verb), prep=_prep(a.verb),
                                  participle=participle(a.verb), past=past(a.verb), anchor=anchor)
            self._mark_asked([a.id])
            conflicts = self._memo(("c-obj",), lambda: sorted({ctx.label(ctx.events[i].object) for i in self.obj_actions}))
            rel = related_words(clean(a.verb))
            also = self._also(ctx.label(ctx.events[i].object) for i in self.obj_actions
                              if clean(ctx.events[i].verb) in rel)
            return Candidate("action", "action_any", b, question, b.values[q], "label",
                             {"agent": "someone", "past": past(a.verb) + _prep(a.verb)}, conflicts, also,
                             (a.verb, "object"), asked=(a.id,))
        if variant == "action_object":
            a = ctx.events[self._pick(fitting())]
            self._core(a.agent, a.object, a.verb)
            ai, aphrase = self.refer(b, a.agent, extra)
            h = b.add("hop", [ai] + src, kind="action", label=a.verb, **{"from": "agent", "to": "object"})
            u = b.add_node("unique", [h], {})
            q = b.add("query", [u], field="label")
            fr = verb_frame(a.verb)
            question = self._fill(variant, fr.passive, agent=aphrase, verb=ctx.verb(a.verb), prep=_prep(a.verb),
                                  participle=participle(a.verb), past=past(a.verb), anchor=anchor)
            conflicts = self._memo(("c-ao", a.verb), lambda: sorted({
                ctx.label(ctx.events[i].object) for i in self.obj_actions if ctx.events[i].verb == a.verb}))
            rel = related_words(clean(a.verb))
            also = self._also(ctx.label(ctx.events[i].object) for i in self.obj_actions
                              if ctx.events[i].agent == a.agent and clean(ctx.events[i].verb) in rel)
            return Candidate("action", variant, b, question, b.values[q], "label",
                             {"agent": aphrase, "past": past(a.verb) + _prep(a.verb)}, conflicts, also,
                             (a.verb, "object"), asked=(a.id,))
        da, do = _split(self.rng, extra, 2)
        a = ctx.events[self._pick(fitting((da, do)))]
        self._core(a.agent, a.object)
        ai, aphrase = self.refer(b, a.agent, da)
        oi, ophrase = self.refer(b, a.object, do, avoid=frozenset({a.agent}))
        acts = b.add("actions", src)
        f = b.add("filter_events", [acts, ai, oi], roles=["agent", "object"])
        u = b.add_node("unique", [f], {})
        q = b.add("query", [u], field="verb")
        question = self._fill(variant, agent=aphrase, obj=ophrase, anchor=anchor)
        conflicts = self._memo(("c-verb",), lambda: sorted({ctx.verb(ctx.events[i].verb) for i in ctx.actions}))
        also = self._also([ctx.verb(ctx.events[i].verb) for i in ctx.actions
                           if ctx.events[i].agent == a.agent and self.thing(ctx.events[i]) == a.object]
                          + [clean(r.predicate) for r in ctx.graph.relations  # "looking at" the window: "look at" it
                             if r.subject == a.agent and r.object == a.object])
        return Candidate("action", variant, b, question, b.values[q], "verb", {"agent": aphrase, "obj": ophrase},
                         conflicts, also, (None, ctx.objects[a.object].label), asked=(a.id,))

    def _q_temporal(self, b, n, want):
        ctx = self.ctx
        mode = self._pick(("before", "after"))
        sel = "last" if mode == "before" else "first"
        key = f"temporal_{mode}"
        da, de = _split(self.rng, max(n - 4, 0), 2)
        # an agent filter narrows only where several people act
        agents = self._memo(("t-agents", da > 0, de > 0), lambda: [
            a for a, evs in self.acts_by_agent.items() if len(self.acts_by_agent) >= 2 and len(evs) >= 2
            and self._plain_ok(a, da)
            and any(self.mentionable[i] and self._plain_ok(self.thing(ctx.events[i]) or a, de) for i in evs)])
        if n == 3 or not agents or self.rng.random() < 0.3:
            mentionable = self._mentionable_actions(n > 3)
            # those not asked already (a 3-step one has one way only), and, since the verb that
            # follows an anchor verb is balanced (a script), not those whose answer the balance
            # would refuse, passed over before building them
            pool = self._memo_balanced("temporal", (n == 3, n > 3, mode), lambda: [
                i for i in mentionable if not (n == 3 and ("temporal", mode, i) in self.done)
                and all(self.balance_ok(k, self._next_verb(i, mode), False) for k in self._temporal_keys(i, mode))])
            eid = self._pick(pool)
            ei, ph = self.mention_event(b, eid, n - 3)
            self.anchor_events |= self.twins.get(eid, {eid})
            w = b.add("localize", [ei], mode=mode)
            acts = b.add("actions", [w])
            s = b.add(sel, [acts])
            q = b.add("query", [s], field="action")
            question = self._fill(f"{key}_any", event=ph["past"])
            conflicts = self._memo(("c-acts",), lambda: [ctx.action_phrase(i) for i in ctx.actions])
            return Candidate("temporal", key + "_any", b, question, b.values[q], "action", {"agent": "someone"},
                             conflicts, self._also([b.values[q]]), asked=(b.values[s],),
                             near=self._same_thing(eid) + [ctx.action_phrase(i) for i in b.values[acts]],
                             balance=[(k, ctx.events[b.values[s]].verb, False) for k in self._temporal_keys(eid, mode)],
                             once=("temporal", mode, eid) if n == 3 else None)
        agent = self._pick(agents)
        ai, aphrase = self.refer(b, agent, da)
        anchors = [i for i in self.acts_by_agent[agent]
                   if self.mentionable[i] and self._plain_ok(self.thing(ctx.events[i]) or agent, de)]
        eid = self._pick(anchors)
        ei, ph = self.mention_event(b, eid, de, agent_node=ai, agent_phrase="")
        self.anchor_events |= self.twins.get(eid, {eid})
        w = b.add("localize", [ei], mode=mode)
        acts = b.add("actions", [w])
        f = b.add("filter_events", [acts, ai], roles=["agent"])
        s = b.add(sel, [f])
        q = b.add("query", [s], field="action")
        question = self._fill(key, agent=aphrase, event=ph["ger"])
        conflicts = self._memo(("c-agent", agent), lambda: [ctx.action_phrase(i) for i in self.acts_by_agent[agent]])
        return Candidate("temporal", key, b, question, b.values[q], "action", {"agent": aphrase}, conflicts,
                         self._also([b.values[q]]), asked=(b.values[s],),
                         near=self._same_thing(eid) + [ctx.action_phrase(i) for i in b.values[f]],
                         balance=[(k, ctx.events[b.values[s]].verb, False) for k in self._temporal_keys(eid, mode)])

    def _temporal_keys(self, eid: str, mode: str) -> tuple[str, str]:
        """The balance keys of the verb that comes before / after anchor ``eid``: per anchor verb,
        and per anchor verb and thing ("after walking to the door" is mostly "open", a script a
        text-only learner knows; the cap on each key leaves only the video to tell)."""
        e = self.ctx.action_map[eid]
        th = self.thing(e)
        return (f"temporal|{mode}|{e.verb}", f"temporal|{mode}|{e.verb}|{self.ctx.label(th) if th else ''}")

    def _same_thing(self, eid: str) -> list[str]:
        """Phrases of the other actions on the thing an anchor action is done to ("open the door"
        after "walk to the door"): the first distractors of a what-happened-next question, since
        the action that follows is often done to the same thing, which would otherwise tell the
        answer from the wording alone."""
        ctx = self.ctx
        th = self.thing(ctx.events[eid])
        if th is None:
            return []
        lab = ctx.label(th)
        return self._memo(("same-thing", eid), lambda: [
            ctx.action_phrase(i) for i in ctx.actions if i != eid and self.thing(ctx.events[i]) is not None
            and ctx.label(self.thing(ctx.events[i])) == lab])  # type: ignore[arg-type]

    def _next_verb(self, eid: str, mode: str) -> str | None:
        """The verb of the action right before / after ``eid`` (None when there is none)."""
        key = ("next-verb", eid, mode)
        got = self._cache.get(key, 0)
        if got == 0:
            inw = self.window_set(eid, mode)
            acts = [i for i in self.ctx.actions if i in inw]
            got = self._cache[key] = (self.ctx.action_map[acts[-1 if mode == "before" else 0]].verb if acts else None)
        return got

    def _q_ordinal_anchored(self, b, n):
        """The k-th event in a window: "What was the second thing that happened after ...?" (3
        steps), or the k-th object a verb was done to in it (4 steps)."""
        ctx = self.ctx
        obj_set = self._memo(("obj-set",), lambda: frozenset(self.obj_actions))
        phrase, every = ctx.action_phrase, ctx.actions

        def ks_any(evs):
            # k >= 2: the first one after / last one before an event is a temporal question; and
            # the window must matter (the k-th thing before an event is mostly the k-th overall)
            return [k for k in range(2, min(len(evs), 5) + 1) if phrase(evs[k - 1]) != phrase(every[k - 1])]

        def ks_verb(evs, verb):
            sub = [i for i in evs if ctx.events[i].verb == verb]
            whole = [i for i in every if ctx.events[i].verb == verb]

            def obj(i):
                o = ctx.events[i].object
                return ctx.label(o) if o else None

            # the verb filter and the window must each change the answer (sub is part of both)
            return [k for k in range(1, min(len(sub), 4) + 1)
                    if obj(sub[k - 1]) != obj(evs[k - 1]) and obj(sub[k - 1]) != obj(whole[k - 1])]

        if n == 3:
            def viable(inw, excl, left):
                return bool(ks_any([i for i in every if i in inw]))
        else:
            def viable(inw, excl, left):
                evs = [i for i in every if i in inw]
                return any(ks_verb(evs, v) for v in {ctx.events[i].verb for i in evs if i in obj_set})
        w, anchor, extra = self._maybe_anchor(b, 2, p=1.0, viable=viable, static=("ordinal", n))
        acts = b.add("actions", [w])
        evs = list(b.values[acts])
        if n == 3:
            ks = ks_any(evs)
            k = self._pick(ks)
            s, ordw = b.add("nth", [acts], k=k), ordinal(k)
            q = b.add("query", [s], field="action")
            question = self._fill("ordinal_any", ord=ordw, anchor=anchor)
            conflicts = [ctx.action_phrase(i) for i in evs]
            verb = ctx.events[b.values[s]].verb
            return Candidate("ordinal", "ordinal_any", b, question, b.values[q], "action", {"ord": ordw}, conflicts,
                             self._also([b.values[q]]), asked=(b.values[s],),
                             near=[ctx.action_phrase(i) for i in ctx.actions if ctx.events[i].verb == verb],
                             balance=(f"ordinal|{b.values[w].mode}|{ordw}", verb, False))
        verbs = sorted({ctx.events[i].verb for i in evs if i in obj_set})
        verb = self._pick([v for v in verbs if ks_verb(evs, v)])
        f = b.add("filter_events", [acts], label=verb, roles=[])
        k = self._pick(ks_verb(evs, verb))
        s, ordw = b.add("nth", [f], k=k), ordinal(k)
        q = b.add("query", [s], field="object")
        question = self._fill("ordinal_verb", ord=ordw, past=past(verb), prep=_prep(verb), anchor=anchor)
        conflicts = [ctx.label(ctx.events[i].object) for i in self.obj_actions if ctx.events[i].verb == verb]
        return Candidate("ordinal", "ordinal_verb", b, question, b.values[q], "label", {
            "ord": ordw, "past": past(verb) + _prep(verb)}, conflicts, self._also([b.values[q]]),
            (verb, "object"), asked=(b.values[s],))

    def _q_ordinal(self, b, n, want):
        ctx = self.ctx
        if n in (3, 4) and (len(self.acts_by_agent) < 2 or self.rng.random() < 0.5):
            return self._q_ordinal_anchored(b, n)
        if n == 1:
            if len(ctx.actions) < 2:
                raise Reject("no-candidate")
            acts = b.add_node("actions", [], {})
            k = self._pick([k for k in range(1, min(len(ctx.actions), 5) + 1) if ("ordinal", k) not in self.done])
            if k == len(ctx.actions) and self.rng.random() < 0.5:
                s, ordw = b.add("last", [acts]), "last"
            else:
                s, ordw = b.add("nth", [acts], k=k), ordinal(k)
            q = b.add("query", [s], field="action")
            question = self._fill("ordinal_any", ord=ordw, anchor=" in the video")
            conflicts = self._memo(("c-acts",), lambda: [ctx.action_phrase(i) for i in ctx.actions])
            # what happens first in a video is a script ("pick up" before "put down"): the answer's
            # verb is balanced per ordinal, and other actions with that verb are the first distractors
            verb = ctx.events[b.values[s]].verb
            return Candidate("ordinal", "ordinal_any", b, question, b.values[q], "action", {"ord": ordw}, conflicts,
                             self._also([b.values[q]]), asked=(b.values[s],),
                             once=("ordinal", k) if ordw != "last" else None,
                             near=[ctx.action_phrase(i) for i in ctx.actions if ctx.events[i].verb == verb],
                             balance=(f"ordinal|{ordw}", verb, False))
        agents = self._memo(("o-agents", n > 2), lambda: [
            a for a, evs in self.acts_by_agent.items() if len(self.acts_by_agent) >= 2 and len(evs) >= 2
            and self._plain_ok(a, n - 2)])
        if n == 2 and (not agents or self.rng.random() < 0.4):
            verbs = self._memo(("o-verbs",), lambda: sorted(
                v for v in {ctx.events[i].verb for i in self.obj_actions}
                if 2 <= sum(1 for i in self.obj_actions if ctx.events[i].verb == v) < len(ctx.actions)))
            verb = self._pick(verbs)
            evs = [i for i in self.obj_actions if ctx.events[i].verb == verb]
            acts = b.add_node("actions", [], {})
            f = b.add("filter_events", [acts], label=verb, roles=[])
            # a k where the verb filter matters (the k-th pick-up is not the k-th action)
            ks = [k for k in range(1, min(len(evs), 4) + 1) if evs[k - 1] != ctx.actions[k - 1]]
            k = self._pick(ks)
            s, ordw = b.add("nth", [f], k=k), ordinal(k)
            q = b.add("query", [s], field="object")
            question = self._fill("ordinal_verb", ord=ordw, past=past(verb), prep=_prep(verb), anchor="")
            conflicts = [ctx.label(ctx.events[i].object) for i in evs]
            return Candidate("ordinal", "ordinal_verb", b, question, b.values[q], "label", {
                "ord": ordw, "past": past(verb) + _prep(verb)}, conflicts, self._also([b.values[q]]),
                (verb, "object"), asked=(b.values[s],))
        agent = self._pick(agents)
        evs = self.acts_by_agent[agent]
        ai, aphrase = self.refer(b, agent, n - 2)
        acts = b.add_node("actions", [], {})
        f = b.add("filter_events", [acts, ai], roles=["agent"])
        ks = [k for k in range(1, min(len(evs), 5) + 1) if evs[k - 1] != ctx.actions[k - 1]]
        k = self._pick(ks)
        if k == len(evs) and evs[-1] != ctx.actions[-1] and self.rng.random() < 0.5:
            s, ordw = b.add("last", [f]), "last"
        else:
            s, ordw = b.add("nth", [f], k=k), ordinal(k)
        q = b.add("query", [s], field="action")
        question = self._fill("ordinal", agent=aphrase, ord=ordw)
        conflicts = self._memo(("c-agent", agent), lambda: [ctx.action_phrase(i) for i in evs])
        return Candidate("ordinal", "ordinal", b, question, b.values[q], "action", {"agent": aphrase, "ord": ordw},
                         conflicts, self._also([b.values[q]]), asked=(b.values[s],))

    def _q_counting(self, b, n, want):
        """``want`` here is the set of answers the bucket has too many of (avoided when possible)."""
        ctx = self.ctx
        avoid = want or frozenset()
        if n == 1:
            labels = self._memo(("countable-labels",), lambda: sorted(
                lab for lab in ctx.by_label if noun_info(lab).countable))
            good = [lab for lab in labels if str(len(ctx.by_label[lab])) not in avoid]
            lab = self._pick(good or labels)
            i = b.add("objects", label=lab)
            c = b.add("count", [i])
            question = self._fill("counting_label", plural=plural(lab))
            return Candidate("counting", "counting_label", b, question, str(b.values[c]), "count",
                             {"plural": plural(lab), "label": noun_info(lab).noun}, slot=(None, lab))
        if n == 3 and self.rng.random() < 0.5:
            # how many things happened in a window (localize + its event + count)
            n_acts = len(ctx.actions)
            w, anchor, _ = self._maybe_anchor(
                b, 2, p=1.0, viable=lambda inw, excl, left: sum(1 for i in ctx.actions if i in inw) != n_acts,
                static=("counting-window",))
            acts = b.add("actions", [w])
            c = b.add("count", [acts])
            if b.values[c] == len(ctx.actions):
                raise Reject("no-op-window")
            self._mark_asked(b.values[acts])
            question = self._fill("counting_window", anchor=anchor)
            win = b.values[w]
            # how much happens after an early verb ("after the person took the bag") is a script a
            # text-only learner knows: the count is balanced per anchor verb and mode; and the mode
            # alone tells much ("while" spans overlap many actions, "before" the first one none),
            # so the mode is the count's slot: its answers are capped, its options balanced, per mode
            return Candidate("counting", "counting_window", b, question, str(b.values[c]), "count",
                             {"agent": "someone"}, slot=(f"{win.mode} window", None), asked=tuple(b.values[acts]),
                             balance=(f"counting-window|{win.mode}|{event_label(ctx.events[win.anchor])}",
                                      str(b.values[c]), False))
        variant = self._pick(("counting_events", "counting_objects"))
        w, anchor, extra = self._maybe_anchor(b, n - 2)
        src = [w] if w is not None else []
        # an agent filter narrows only where several people act
        agents = self._memo(("c-agents", extra > 0), lambda: [a for a in self.agents if self._plain_ok(a, extra)])
        if not agents or self.rng.random() < 0.25:
            if extra:
                raise Reject("no-reference")
            verbs = list(self._memo(("count-verbs", None), lambda: sorted(
                {ctx.events[i].verb for i in ctx.actions} | set(self.verb_pool))))  # a copy: shuffled below
            if not verbs:
                raise Reject("no-candidate")
            draw.shuffle(self.rng, verbs)
            acts = b.add("actions", src)
            n0 = len(b.nodes)
            for verb in verbs[:8]:
                b.truncate(n0)
                f = b.add("filter_events", [acts], label=verb, roles=[])
                c = b.add("count", [f])
                k = b.values[c]
                # the verb filter and the window must each change the count
                if k == len(b.values[acts]) or (w is not None and k == self._verb_counts()[verb]):
                    continue
                if str(k) not in avoid and self.slot_ok("counting", (verb, None), str(k)):
                    break
            self._mark_asked(b.values[f])
            question = self._fill("counting_any", something=verb_something(verb), anchor=anchor)
            return Candidate("counting", "counting_any", b, question, str(b.values[c]), "count",
                             {"agent": "someone"}, slot=(verb, None), asked=tuple(b.values[f]))
        agent = self._pick(agents)
        ai, aphrase = self.refer(b, agent, extra)
        verbs = list(self._memo(("count-verbs", variant), lambda: self._count_verbs(variant)))  # shuffled below
        if not verbs:
            raise Reject("no-candidate")
        draw.shuffle(self.rng, verbs)
        n0 = len(b.nodes)
        agent_acts = self.acts_by_agent[agent]  # (in time order, as ctx.actions)
        win = b.values[w] if w is not None else None
        c = None
        for verb in verbs[:8]:
            b.truncate(n0)
            c = None
            if variant == "counting_events":
                acts = b.add("actions", src)
                f = b.add("filter_events", [acts, ai], label=verb, roles=["agent"])
                k = b.values[f]
                # the verb filter and the window must each change what is counted
                if len(k) == self._memo(("agent-acts", win, agent), lambda: sum(
                        1 for i in b.values[acts] if ctx.events[i].agent == agent)) or (
                        w is not None and len(k) == self._memo(("agent-verb-acts", agent, verb), lambda: sum(
                            1 for i in agent_acts if ctx.events[i].verb == verb))):
                    continue
            else:
                # the thing a verb is done to sits in its frame's role ("walk to" the table: target)
                role = verb_frame(verb).thing
                f = b.add("hop", [ai] + src, kind="action", label=verb, **{"from": "agent", "to": role})
                if w is not None and len(b.values[f]) == self._memo(("agent-verb-things", agent, verb, role), lambda: len(
                        {role_of(ctx.events[i], role) for i in agent_acts if ctx.events[i].verb == verb} - {None})):
                    continue
            c = b.add("count", [f])
            if str(b.values[c]) not in avoid and self.slot_ok("counting", (verb, None), str(b.values[c])):
                break
        if c is None:
            raise Reject("no-candidate")
        fr = verb_frame(verb)
        question = self._fill(variant, agent=aphrase, verb=ctx.verb(verb), something=verb_something(verb),
                              prep=_prep(verb) if fr.thing == "object" else "", anchor=anchor)
        return Candidate("counting", variant, b, question, str(b.values[c]), "count", {"agent": aphrase},
                         slot=(verb, None))

    def _verb_counts(self) -> Counter:
        """How many actions of this graph have each verb (cached per graph)."""
        return self._memo(("verb-counts",), lambda: Counter(self.ctx.action_map[i].verb for i in self.ctx.actions))

    def _count_verbs(self, variant: str) -> list[str]:
        """The verbs a count of ``variant`` can ask about: of this graph's actions (those done to a
        thing, for things counted) and of the corpus; only transitive ones where things are counted."""
        ctx = self.ctx
        pool = ctx.actions if variant == "counting_events" else self.thing_actions
        verbs = sorted({ctx.action_map[i].verb for i in pool} | set(self.verb_pool))
        if variant == "counting_objects":
            verbs = [v for v in verbs if not verb_frame(v).intransitive]
        return verbs

    def _q_existence(self, b, n, want):
        ctx = self.ctx
        want = want or self._pick(("yes", "no"))
        if n == 1:
            # people are in nearly every video: asking whether one appears is answerable from priors
            if want == "yes":
                labs = self._memo(("present-labels",), lambda: sorted(
                    lab for lab in ctx.by_label if not is_person_label(lab)))
            else:
                labs = self._memo(("absent-labels",), self._absent_labels)
            lab = self._owed_pick(labs, lambda x: ("existence", (None, x)), want)
            i = b.add("objects", label=lab)
            b.add("exists", [i])
            info = noun_info(lab)
            many = info.plural_only
            indef = f"any {info.noun}" if (info.mass or many) else indefinite(lab)
            question = self._fill("existence_label", Be="Are" if many else "Is", indef=indef)
            be = "are" if many else "is"
            clause = f"there {be} {indef}" if want == "yes" else f"there {be} no {info.noun}"
            return Candidate("existence", "existence_label", b, question, want, "yesno", {"exists_clause": clause},
                             slot=(None, lab))
        use_rel = bool(ctx.relations) and (not self.obj_actions or self.rng.random() < 0.4)
        pool = list(ctx.relations) if use_rel else self.thing_actions
        first_role = "subject" if use_rel else "agent"
        partners = self._memo(("e-partners", use_rel), lambda: self._pair_partners(pool, first_role))

        def viable(inw, excl, left):
            # a "yes" pair must also happen outside the window, a "no" pair only outside it
            # (read loosely, as the "anyone" form does, or strictly, as the named one does)
            if want == "yes":
                return any(i in inw and i not in excl and any(j not in inw and j not in excl for j in partners[i][0])
                           for i in pool)
            return any(i not in inw and i not in excl and not any(j in inw and j not in excl for j in partners[i][1])
                       for i in pool)

        w, anchor, extra = self._maybe_anchor(b, n - 2, viable=viable, static=("existence", want, use_rel))
        src = [w] if w is not None else []
        gone, every = frozenset(self.anchor_events), pool
        pool = self._memo(("e-pool", use_rel, gone), lambda: [i for i in every if i not in gone])
        ds, do = _split(self.rng, extra, 2)
        # those whose subject can be mentioned with ds steps (cached: the list depends on ds > 0 only)
        cands = self._memo(("e-cands", use_rel, gone, ds > 0), lambda: [
            i for i in pool if self._plain_ok(role_of(ctx.events[i], first_role), ds)])
        anyone = not cands or (ds == 0 and self.rng.random() < 0.25)
        if anyone:
            do += ds
            ds = 0
            cands = pool
        inw = self._window_events(w, b)
        if inw is not None:
            # with a window the window must matter: a "yes" pair also happens outside it, a "no"
            # pair happens, but only outside it (a compositional "no", true at another time).
            # The same pair: the events of the pool with the label and thing (and, unless
            # "anyone", the subject), found among the partners (the pool less the anchor's events).
            group, gone = (0 if anyone else 1), self.anchor_events
            if want == "yes":
                cands = [i for i in cands if i in inw
                         and any(j not in inw and j not in gone for j in partners[i][group])]
            else:
                cands = [i for i in cands if i not in inw and self._plain_ok(self.thing(ctx.events[i]), do)
                         and not any(j in inw and j not in gone for j in partners[i][group])]
        swap = want == "no" and inw is None  # (a "no" built from a "yes" pair: its slot is not the pair's)
        e = ctx.events[self._pick(cands) if swap else self._owed_pick(cands, self._pair_slot, want)]
        subj = role_of(e, first_role)
        label = event_label(e)
        obj = self.thing(e)
        role = self.thing_role(e)
        if swap or not self._plain_ok(obj, do):
            # Change the object (or the verb / predicate) to a plausible one this subject never pairs with.
            same = [self.thing(ctx.events[i]) for i in pool if event_label(ctx.events[i]) == label
                    and role_of(ctx.events[i], first_role) == subj]
            alts = [o for o in sorted(ctx.objects) if o not in same and o != subj and o not in self.persons
                    and self._plain_ok(o, do) and self._plausible(label, o)]
            if want == "yes":
                raise Reject("no-reference")
            if anyone:
                alts = [o for o in alts if not any(event_label(ctx.events[i]) == label and self.thing(ctx.events[i]) == o
                                                   for i in pool)]
            if alts and self.rng.random() < 0.6:
                obj = self._owed_pick(alts, lambda o: ("existence", (label, ctx.objects[o].label)), want)
            else:
                pairs = {event_label(ctx.events[i]) for i in pool if role_of(ctx.events[i], first_role) == subj
                         and self.thing(ctx.events[i]) == obj}
                labels = sorted(lab for lab in {event_label(ctx.events[i]) for i in pool} - pairs
                                if self._plausible(lab, obj) and not any(conflicts(clean(lab), clean(p)) for p in pairs))
                label = self._owed_pick(labels, lambda x: ("existence", (x, ctx.objects[obj].label)), want)
                if not use_rel:
                    same_role = [ctx.events[i] for i in pool if event_label(ctx.events[i]) == label]
                    role = self.thing_role(same_role[0]) if same_role else role
        self._core(subj, obj, label)
        self._core(subj, self.thing(e), label)
        if anyone:
            sphrase = "anyone" if subj in self.persons else "anything"
            oi, ophrase = self.refer(b, obj, do)
            base = b.add("relations" if use_rel else "actions", src)
            f = b.add("filter_events", [base, oi], label=label, roles=[role])
        else:
            si, sphrase = self.refer(b, subj, ds)
            oi, ophrase = self.refer(b, obj, do, avoid=frozenset({subj}))
            base = b.add("relations" if use_rel else "actions", src)
            f = b.add("filter_events", [base, si, oi], label=label, roles=[first_role, role])
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
            obj_p, tgt_p = (ophrase, "") if role == "object" else ("", ophrase)
            vp = action_words(ctx.verb(label), label, obj_p, tgt_p)
            vp_ger = action_words(gerund(label), label, obj_p, tgt_p)
            question = self._fill("existence_event", agent=sphrase, vp=vp, vp_ger=vp_ger, anchor=anchor)
            if anyone:
                clause = f"{'someone did' if ans == 'yes' else 'no one did'} {vp}{anchor}"
            else:
                clause = f"{sphrase} {'did' if ans == 'yes' else 'did not'} {vp}{anchor}"
            variant = "existence_event"
        return Candidate("existence", variant, b, question, ans, "yesno", {"exists_clause": " ".join(clause.split())},
                         slot=(label, ctx.objects[obj].label), asked=tuple(b.values[f]))

    def _absent_labels(self) -> list[str]:
        """Labels of the corpus a "no" question can ask about in this graph: no person, and no
        noun this graph has or conflicts with one it has."""
        have = {noun_info(x).noun for x in self.ctx.by_label}
        return sorted({x for x in self.label_pool if not is_person_label(x) and noun_info(x).noun not in have
                       and not any(conflicts(noun_info(x).noun, h) for h in have)})

    def _pair_partners(self, pool, first_role: str) -> dict[str, tuple[list[str], list[str]]]:
        """For each event of ``pool``: the events with its label and thing (any subject), and those
        also with its subject."""
        ctx = self.ctx
        groups: dict[tuple, list[str]] = {}
        for j in pool:
            e = ctx.events[j]
            groups.setdefault((event_label(e), self.thing(e)), []).append(j)
        out = {}
        for i in pool:
            e = ctx.events[i]
            loose = groups[(event_label(e), self.thing(e))]
            out[i] = (loose, [j for j in loose if role_of(ctx.events[j], first_role) == role_of(e, first_role)])
        return out

    def _q_comparison(self, b, n, want):
        ctx = self.ctx
        extra = n - 3
        da, d1, d2 = _split(self.rng, extra, 3)

        def pool(agent, d):
            # the actions of ``agent`` (None: of anyone) whose thing can be mentioned with d steps
            # (cached per graph: the list depends on d > 0 only)
            evs = ctx.actions if agent is None else self.acts_by_agent[agent]
            return self._memo(("cmp-pool", agent, d > 0), lambda: [
                i for i in evs if self.mentionable[i] and (self.thing(ctx.events[i]) is None
                                                           or self._plain_ok(self.thing(ctx.events[i]), d))])

        agents = self._memo(("cmp-agents", da > 0, d1 > 0, d2 > 0), lambda: [
            a for a in self.acts_by_agent if self._plain_ok(a, da) and pool(a, d1) and pool(a, d2)
            and len(set(pool(a, d1)) | set(pool(a, d2))) >= 2])
        acts = b.add_node("actions", [], {})
        if agents and self.rng.random() < 0.7:
            agent = self._pick(agents)
            e1 = self._pick(pool(agent, d1))
            e2 = self._pick([i for i in pool(agent, d2) if i != e1])
            ai, aphrase = self.refer(b, agent, da)
            i1, ph1 = self.mention_event(b, e1, d1, agent_node=ai, agent_phrase=aphrase, source=acts)
            i2, ph2 = self.mention_event(b, e2, d2, agent_node=ai, agent_phrase=aphrase, source=acts)
            variant = self._pick(("comparison_first", "comparison_first", "comparison_longer"))
        else:
            p1 = [i for i in pool(None, d1 + da) if self.mentionable_any[i]]
            e1 = self._pick(p1)
            e2 = self._pick([i for i in pool(None, d2) if self.mentionable_any[i] and i != e1])
            i1, ph1 = self.mention_event(b, e1, d1 + da, source=acts)
            i2, ph2 = self.mention_event(b, e2, d2, source=acts)
            aphrase = "someone"
            variant = "comparison_any"
        pa, pb = ctx.action_phrase(e1), ctx.action_phrase(e2)
        if pa == pb or conflicts(pa, pb) or e2 in self.twins.get(e1, ()):
            raise Reject("same-phrase")
        c = b.add("choose", [i1, i2], by="longer" if variant == "comparison_longer" else "earlier")
        q = b.add("query", [c], field="action")
        if variant == "comparison_any":
            question = self._fill(variant, ea=ph1["past"], eb=ph2["past"])
        else:
            question = self._fill(variant, agent=aphrase, a=ph1["base"], b=ph2["base"])
        answer = b.values[q]
        other = pb if answer == pa else pa
        va, vb = sorted((ctx.events[e1].verb, ctx.events[e2].verb))
        won = ctx.events[b.values[c]].verb
        return Candidate("comparison", variant, b, question, answer, "action", {"agent": aphrase}, [other],
                         self._also([answer]), asked=(b.values[c],),
                         # which of two verbs comes first (or lasts longer) is balanced per pair and
                         # per verb: "smile" must not be a safe bet for "not first"
                         balance=[(f"comparison|{variant}|{va}|{vb}", "yes" if won == va else "no", True),
                                  (f"comparison-verb|{variant}|{va}", "yes" if won == va else "no", True),
                                  (f"comparison-verb|{variant}|{vb}", "yes" if won == vb else "no", True)])


_BY_TYPE = {t: getattr(Sampler, f"_q_{t}") for t in TYPES}
