"""STAR's question templates → stepkit programs (``stepkit.reason.ops``).

STAR (Wu et al., NeurIPS 2021) writes every question from a template named by its ``qid``
(``Sequence_T3_12`` → type Sequence, template T3). Each template family has a fixed grammar; this
module parses the question text with one regular expression per template (slots: verbs, objects,
relations), normalises the verb forms STAR uses ("was put down by", "after they held", "after
holding", "Lied on."), and builds the program that answers the template on a graph. Options are
parsed the same way ("The box." → object, "Tidied up." → verb, "Put down the box." → both).

Programs are in the reason package's language. In ``clip`` mode the question's clip is added to the
graph as one ``situation`` event (STAR's ``Situations``): programs for "what happened in the
situation" run on the graph cropped to the clip, programs for what the person is able to do *after*
the situation localise after that event. In ``none`` mode the whole timeline is the situation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from stepkit.sources.vocab import canonical_object, charades_actions, star_actions

SITUATION_VERB = "star situation"

# STAR's inflections of its verbs (STAR writes "lied on" for the past of "lie on").
_IRREGULAR = {  # base head: (past, participle)
    "take": ("took", "taken"), "throw": ("threw", "thrown"), "eat": ("ate", "eaten"), "sit": ("sat", "sat"),
    "lie": ("lied", "lied"), "hold": ("held", "held"), "drink": ("drank", "drunk"), "put": ("put", "put"),
    "make": ("made", "made"), "stand": ("stood", "stood"), "run": ("ran", "run"), "awaken": ("awakened", "awakened"),
}
_EXTRA_FORMS = {"lie": ("lay", "lain"), "awaken": ("awoke", "awoken")}


def _regular_past(head: str) -> str:
    if head.endswith("e"):
        return head + "d"
    if head.endswith("y") and head[-2:-1] not in tuple("aeiou"):
        return head[:-1] + "ied"
    return head + "ed"


def _gerund(head: str) -> str:
    if head == "lie":
        return "lying"
    if head in ("sit", "put", "run", "get"):
        return head + head[-1] + "ing"
    if head.endswith("e") and not head.endswith("ee"):
        return head[:-1] + "ing"
    return head + "ing"


def verb_forms(base: str) -> set[str]:
    """Every form STAR writes of a (possibly multi-word) verb: base, past, participle, gerund, 3rd person."""
    head, _, rest = base.partition(" ")
    rest = " " + rest if rest else ""
    past, part = _IRREGULAR.get(head, (_regular_past(head), _regular_past(head)))
    heads = {head, past, part, _gerund(head), head + ("es" if head.endswith(("s", "sh", "ch", "x")) else "s")}
    heads |= set(_EXTRA_FORMS.get(head, ()))
    return {h + rest for h in heads}


def known_verbs() -> list[str]:
    """Base verbs of the STAR and Charades vocabularies (what graphs imported by stepkit use)."""
    verbs = {a.verb for a in charades_actions().values()} | {a.verb for a in star_actions().values()}
    return sorted(verbs)


_FORM_TABLE: dict[str, str] | None = None


def _forms() -> dict[str, str]:
    global _FORM_TABLE
    if _FORM_TABLE is None:
        table: dict[str, str] = {}
        for v in known_verbs():
            for f in sorted(verb_forms(v)):
                table.setdefault(f, v)
        _FORM_TABLE = table
    return _FORM_TABLE


def base_verb(text: str) -> str:
    """The base form of a verb phrase as STAR writes it (``tidied up`` → ``tidy up``).

    Unknown verbs are de-inflected by rule (``-ied``/``-ed``/``-ing``) so that a verb outside the
    vocabulary still yields a plausible base form rather than an error.
    """
    t = " ".join(text.lower().strip().rstrip(".").split())
    forms = _forms()
    if t in forms:
        return forms[t]
    head, _, rest = t.partition(" ")
    rest = " " + rest if rest else ""
    for suffix, repl in (("ied", "y"), ("ying", "ie"), ("ing", ""), ("ed", ""), ("ed", "e"), ("ing", "e")):
        if head.endswith(suffix):
            cand = head[: -len(suffix)] + repl + rest
            if cand in forms.values():
                return cand
    return t


def relation_predicate(text: str) -> str:
    """A relation phrase of a question as a graph predicate (``on the side of`` → ``on_the_side_of``)."""
    return "_".join(text.lower().split())


# ----------------------------------------------------------------------------------------------
# Parsing


@dataclass
class Condition:
    """A condition of a question: an action (verb + object) or a relation (predicate + object)."""

    kind: str  # "action" | "relation"
    label: str
    object: str

    def text(self) -> str:
        """Readable form."""
        return f"{self.label} {self.object}"


@dataclass
class ParsedQuestion:
    """A STAR question's template, slots and what its answer is (object, verb or action)."""

    qtype: str
    template: str
    answer_kind: str  # "object" | "verb" | "action"
    verb: str | None = None  # the verb the answer must carry (object answers)
    object: str | None = None  # the object the answer must concern (verb answers)
    conditions: list[Condition] = field(default_factory=list)
    temporal: str = "in"  # in | while | after | before | next | next_after | feasible | feasible_after


@dataclass(frozen=True)
class Option:
    """One parsed answer option."""

    verb: str | None
    object: str | None


class TemplateError(ValueError):
    """A question does not follow the grammar of its template."""


_P = "the person"
_PATTERNS: dict[str, list[str]] = {
    "Interaction_T1": [rf"^which object was (?P<v>.+) by {_P}$"],
    "Interaction_T2": [rf"^what did {_P} do with the (?P<o>.+)$"],
    "Interaction_T3": [r"^what did the person do while they were (?P<c1>.+)$"],
    "Interaction_T4": [r"^what did the person do while they were (?P<c1>.+?) and (?P<c2>.+)$"],
    "Sequence_T1": [rf"^which object did {_P} (?P<v>.+?) after they (?P<a1>.+)$"],
    "Sequence_T2": [rf"^which object did {_P} (?P<v>.+?) before they (?P<a1>.+)$"],
    "Sequence_T3": [rf"^what happened after {_P} (?P<a1>.+)$"],
    "Sequence_T4": [rf"^what happened before {_P} (?P<a1>.+)$"],
    "Sequence_T5": [rf"^what did {_P} do to the (?P<o>.+?) after (?P<a1>.+)$"],
    "Sequence_T6": [rf"^what did {_P} do to the (?P<o>.+?) before (?P<a1>.+)$"],
    "Prediction_T1": [rf"^what will {_P} do next$"],
    "Prediction_T2": [rf"^what will {_P} do next with the (?P<o>.+)$"],
    "Prediction_T3": [rf"^which object would {_P} (?P<v>.+) next$"],
    "Prediction_T4": [rf"^which object would {_P} (?P<v>.+?) next after they (?P<a1>.+)$"],
    "Feasibility_T1": [rf"^what is {_P} able to do$"],
    "Feasibility_T2": [rf"^what else is {_P} able to do with the (?P<o>.+)$"],
    "Feasibility_T3": [rf"^which object is possible to be (?P<v>.+?) when {_P} is (?P<c1>.+)$"],
    "Feasibility_T4": [r"^what is the person able to do when they are (?P<c1>.+)$"],
    "Feasibility_T5": [rf"^which object is {_P} able to (?P<v>.+?) after (?P<a1>.+)$"],
    "Feasibility_T6": [rf"^what is {_P} able to do after (?P<a1>.+)$"],
}
# Template → (answer kind, temporal semantics).
_SEMANTICS = {
    "Interaction_T1": ("object", "in"), "Interaction_T2": ("verb", "in"), "Interaction_T3": ("action", "while"),
    "Interaction_T4": ("action", "while"), "Sequence_T1": ("object", "after"), "Sequence_T2": ("object", "before"),
    "Sequence_T3": ("action", "after"), "Sequence_T4": ("action", "before"), "Sequence_T5": ("verb", "after"),
    "Sequence_T6": ("verb", "before"), "Prediction_T1": ("action", "next"), "Prediction_T2": ("verb", "next"),
    "Prediction_T3": ("object", "next"), "Prediction_T4": ("object", "next_after"),
    "Feasibility_T1": ("action", "feasible"), "Feasibility_T2": ("action", "feasible"),
    "Feasibility_T3": ("object", "feasible_while"), "Feasibility_T4": ("action", "feasible_while"),
    "Feasibility_T5": ("object", "feasible_after"), "Feasibility_T6": ("action", "feasible_after"),
}
TEMPLATES = tuple(_PATTERNS)

# One question in each template's grammar (the wording STAR generates), for tests and the docs.
TEMPLATE_EXAMPLES = {
    "Interaction_T1": "Which object was put down by the person?",
    "Interaction_T2": "What did the person do with the table?",
    "Interaction_T3": "What did the person do while they were holding the clothes?",
    "Interaction_T4": "What did the person do while they were sitting on the sofa/couch and holding the book?",
    "Sequence_T1": "Which object did the person take after they opened the box?",
    "Sequence_T2": "Which object did the person take before they held the dish?",
    "Sequence_T3": "What happened after the person sat on the sofa/couch?",
    "Sequence_T4": "What happened before the person put down the box?",
    "Sequence_T5": "What did the person do to the table after opening the box?",
    "Sequence_T6": "What did the person do to the book before taking the paper/notebook?",
    "Prediction_T1": "What will the person do next?",
    "Prediction_T2": "What will the person do next with the closet/cabinet?",
    "Prediction_T3": "Which object would the person throw next?",
    "Prediction_T4": "Which object would the person take next after they close the door?",
    "Feasibility_T1": "What is the person able to do?",
    "Feasibility_T2": "What else is the person able to do with the pillow?",
    "Feasibility_T3": "Which object is possible to be closed when the person is near the table?",
    "Feasibility_T4": "What is the person able to do when they are on the side of the shelf?",
    "Feasibility_T5": "Which object is the person able to put down after walking through the doorway?",
    "Feasibility_T6": "What is the person able to do after closing the door?",
}


def split_qid(qid: str) -> tuple[str, str]:
    """``Sequence_T3_12`` → (``Sequence``, ``Sequence_T3``)."""
    m = re.match(r"^([A-Za-z]+)_(T\d+)", qid or "")
    if not m:
        raise TemplateError(f"qid {qid!r} does not name a STAR type and template (e.g. Sequence_T3_12)")
    return m.group(1), f"{m.group(1)}_{m.group(2)}"


def _split_object(text: str) -> tuple[str, str]:
    """``watched outside the window`` → (``watched outside``, ``window``): split at the last ``the``."""
    head, sep, obj = text.rpartition(" the ")
    if not sep:
        if text.startswith("the "):
            return "", text[4:]
        raise TemplateError(f"{text!r} names no object ('... the OBJECT')")
    return head.strip(), obj.strip()


def _object(text: str) -> str:
    return canonical_object(text)


def _action_condition(text: str) -> Condition:
    verb, obj = _split_object(text)
    return Condition("action", base_verb(verb), _object(obj))


def _relation_condition(text: str) -> Condition:
    m = re.match(r"^having (?:the )?(?P<o>.+) on the back$", text)  # STAR's have_it_on_the_back
    if m:
        return Condition("relation", "have_it_on_the_back", _object(m.group("o")))
    rel, obj = _split_object(text)
    if not rel:
        raise TemplateError(f"{text!r} names no relation")
    return Condition("relation", relation_predicate(rel), _object(obj))


def _normalise(question: str) -> str:
    return " ".join(question.strip().lower().rstrip("?").split())


def parse_question(question: str, qid: str) -> ParsedQuestion:
    """Parse a STAR question by its template's grammar; :class:`TemplateError` when it does not fit."""
    qtype, template = split_qid(qid)
    if template not in _PATTERNS:
        raise TemplateError(f"unknown STAR template {template} (qid {qid!r})")
    text = _normalise(question)
    m = None
    for pat in _PATTERNS[template]:
        m = re.match(pat, text)
        if m:
            break
    if m is None:
        raise TemplateError(f"{template}: question {question!r} does not follow the template's grammar")
    slots = m.groupdict()
    kind, temporal = _SEMANTICS[template]
    pq = ParsedQuestion(qtype, template, kind, temporal=temporal)
    if slots.get("v"):
        pq.verb = base_verb(slots["v"])
    if slots.get("o"):
        pq.object = _object(slots["o"])
    for key in ("c1", "c2"):
        if slots.get(key):
            pq.conditions.append(_relation_condition(slots[key]))
    if slots.get("a1"):
        pq.conditions.append(_action_condition(slots["a1"]))
    return pq


def parse_option(text: str) -> Option:
    """``The box.`` → object; ``Tidied up.`` → verb; ``Put down the box.`` → verb + object."""
    t = " ".join(str(text).strip().rstrip(".").split())
    low = t.lower()
    if low.startswith("the "):
        return Option(None, _object(t[4:]))
    if " the " in low:
        verb, obj = _split_object(low)
        return Option(base_verb(verb), _object(obj))
    if not low:
        raise TemplateError("empty option")
    return Option(base_verb(low), None)


def option_fits(pq: ParsedQuestion, opt: Option) -> bool:
    """Whether an option has the shape the template's answer has (object / verb / action)."""
    if pq.answer_kind == "object":
        return opt.object is not None and opt.verb is None
    if pq.answer_kind == "verb":
        return opt.verb is not None and opt.object is None
    return opt.verb is not None


# ----------------------------------------------------------------------------------------------
# Programs


class _P:
    """A tiny program builder: appends nodes and returns their indices."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []

    def add(self, op: str, ins: list[int] | None = None, **args: Any) -> int:
        self.nodes.append({"op": op, "in": list(ins or []), "args": {k: v for k, v in args.items() if v is not None}})
        return len(self.nodes) - 1


def _anchor(p: _P, cond: Condition, pick: str = "unique") -> int:
    """Nodes finding the one event a condition names; returns the index of the node that picks it
    (``unique``; in a clip, ``first`` / ``last`` choose among repeats of the condition)."""
    video = p.add("video")
    if cond.kind == "action":
        evs = p.add("actions", [video])
    else:
        evs = p.add("relations", [video])
    objs = p.add("objects", label=cond.object)
    found = p.add("filter_events", [evs, objs], label=cond.label, roles=["object"])
    return p.add(pick, [found])


def _situation(p: _P) -> int:
    """Nodes finding the situation event (the question's clip, added to the graph in clip mode)."""
    video = p.add("video")
    evs = p.add("actions", [video])
    found = p.add("filter_events", [evs], label=SITUATION_VERB, roles=[])
    return p.add("unique", [found])


def candidate_program(pq: ParsedQuestion, mode: str, *, canonical: bool = False) -> tuple[list[dict[str, Any]], str]:
    """The program whose last node is the set of candidate events the options are checked against,
    and how the supported options are ranked (``exists``, ``earliest`` or ``latest``).

    ``mode`` is ``clip`` (the graph is cropped to the clip, or carries the situation event for
    Feasibility) or ``none`` (whole timeline). ``canonical`` gives the program as it would read with
    a start-ordered ``localize`` (one window per anchor): the form the step count is read from.
    """
    p = _P()
    t = pq.temporal
    if t == "in":
        cands = p.add("actions", [p.add("video")])
        rank = "exists"
    elif t == "while":
        windows = []
        for c in pq.conditions:
            windows.append(p.add("actions", [p.add("localize", [_anchor(p, c)], mode="while")]))
        cands = windows[0]
        for w in windows[1:]:
            cands = p.add("intersect", [cands, w])
        rank = "exists"
    elif t in ("after", "before"):
        # In a clip, STAR's clip starts (after) or ends (before) with the condition: a repeated
        # condition is its first (after) or last (before) occurrence there.
        pick = "unique" if canonical or mode != "clip" else ("first" if t == "after" else "last")
        anchor = _anchor(p, pq.conditions[0], pick)
        # STAR orders events by their starts; the language's ``localize`` windows take events wholly
        # after / before the anchor, so overlapping ones are added through a ``while`` window.
        cands = p.add("actions", [p.add("localize", [anchor], mode=t)])
        if not canonical:
            overlap = p.add("actions", [p.add("localize", [anchor], mode="while")])
            cands = p.add("union", [cands, overlap])
        if mode == "clip":  # STAR cuts the clip from the anchor's start to the answer's end (or back)
            rank = "latest" if t == "after" else "earliest"
        else:  # the event nearest the anchor
            rank = "earliest" if t == "after" else "latest"
    elif t == "next":
        cands = p.add("actions", [p.add("video")])
        rank = "latest" if mode == "clip" else "exists"
    elif t == "next_after":
        win = p.add("localize", [_anchor(p, pq.conditions[0])], mode="after")
        cands = p.add("actions", [win])
        rank = "latest" if mode == "clip" else "earliest"
    elif t in ("feasible", "feasible_while", "feasible_after"):
        # What the person can do is what they go on to do after the situation (STAR's answers lie
        # after the clip); without a clip the template's condition is the situation.
        if mode == "clip":
            anchor = _situation(p)
        elif t == "feasible":
            anchor = None
        else:
            anchor = _anchor(p, pq.conditions[0])
        if anchor is None:
            cands = p.add("actions", [p.add("video")])
        else:
            cands = p.add("actions", [p.add("localize", [anchor], mode="after")])
        # Canonically a membership question (any action the person can do); when several options
        # happen after the situation, the one the person goes on to do first is the answer, as for
        # "next" (STAR writes the action that follows the situation).
        rank = "exists" if canonical or anchor is None else "earliest"
    else:  # pragma: no cover - _SEMANTICS covers every template
        raise TemplateError(f"no program for temporal relation {t!r}")
    if pq.verb is not None or (pq.object is not None and pq.answer_kind == "verb"):
        ins = [cands]
        roles: list[str] = []
        if pq.object is not None and pq.answer_kind in ("verb", "action"):
            ins.append(p.add("objects", label=pq.object))
            roles.append("object")
        cands = p.add("filter_events", ins, label=pq.verb, roles=roles)
    elif pq.object is not None:
        cands = p.add("filter_events", [cands, p.add("objects", label=pq.object)], roles=["object"])
    return p.nodes, rank


def candidate_plans(pq: ParsedQuestion, mode: str) -> list[tuple[str, list[dict[str, Any]], str]]:
    """``(view, program, rank)`` to try in order until one supports an option.

    ``view`` says which graph the program runs on in clip mode: ``crop`` (events in the clip),
    ``overlap`` (events overlapping it) or ``situation`` (the whole graph plus the clip as an event).
    "Next" questions first look for the action starting latest in the clip (STAR's Prediction clips
    usually end a quarter into the answer action), then for the first one after the clip.
    """
    nodes, rank = candidate_program(pq, mode)
    if mode != "clip":
        return [("whole", nodes, rank)]
    if pq.temporal.startswith("feasible"):
        return [("situation", nodes, rank)]
    if pq.temporal == "next":
        after = replace(pq, temporal="feasible")  # after the situation, the earliest
        later, _ = candidate_program(after, mode)
        return [("overlap", nodes, rank), ("situation", later, "earliest")]
    if pq.temporal == "next_after":
        return [("overlap", nodes, rank)]
    return [("crop", nodes, rank)]


def option_program(base: list[dict[str, Any]], opt: Option) -> list[dict[str, Any]]:
    """``base`` (ending in candidate events) narrowed to the events an option describes."""
    p = _P()
    p.nodes = [dict(n) for n in base]
    cands = len(base) - 1
    ins, roles = [cands], []
    if opt.object is not None:
        ins.append(p.add("objects", label=opt.object))
        roles.append("object")
    p.add("filter_events", ins, label=opt.verb, roles=roles)
    return p.nodes


def answer_program(pq: ParsedQuestion, mode: str = "clip") -> list[dict[str, Any]]:
    """The template's canonical question program: candidates, then the one answer and its name.

    This is the program the step count of a template is read from (``reason.ops.step_count``).
    """
    nodes, rank = candidate_program(pq, mode, canonical=True)
    p = _P()
    p.nodes = [dict(n) for n in nodes]
    last = len(nodes) - 1
    pick = {"exists": "unique", "earliest": "first", "latest": "last"}[rank]
    one = p.add(pick, [last])
    field_ = {"object": "object", "verb": "verb", "action": "action"}[pq.answer_kind]
    p.add("query", [one], field=field_)
    return p.nodes


def template_steps() -> dict[str, int]:
    """Reasoning steps of every STAR template: ``reason.ops.step_count`` of its canonical program."""
    from stepkit.reason.ops import check_program, step_count

    out = {}
    for template, question in TEMPLATE_EXAMPLES.items():
        prog = check_program(answer_program(parse_question(question, template + "_0")))
        out[template] = step_count(prog)
    return out
