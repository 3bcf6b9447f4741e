"""Rationale faithfulness: a free-text rationale parsed into claims and each claim checked against the
video's scene graph.

A claim is what one clause of a rationale asserts about the video: that an entity is there (or is
not), that it has an attribute value, that a relation held or an action happened (with its roles and,
when quoted, its time span), that one event came before another, or which of a listed set is first /
last / longest. Claims are recognised through stepkit's own lexicon — the graph's labels, predicates,
verbs and attribute values plus the shipped vocabularies (``reason/templates/lexicon.yaml``, the
synthetic world's classes, STAR / Action Genome classes) in their inflected forms
(:func:`stepkit.reason.lexicon.past`, :func:`~stepkit.reason.lexicon.gerund`,
:func:`~stepkit.reason.lexicon.plural`) — and time expressions ("from 2.1 s to 5.0 s", "at 4.3 s",
"lasts 0.6 s", "between 1 and 2 seconds"), never by template strings, so reworded rationales and a
model's own phrasing parse the same way.

:func:`score_rationale` returns a :class:`FaithfulnessReport`: the share of claims the graph grounds,
the entities named that the graph does not hold, the temporal IoU of the quoted spans, whether the
steps reach the answer, and one headline ``score`` in [0, 1] (the mean per-claim score, halved when
the steps do not reach the answer). :func:`corrupt_rationale` makes the wrong-object / wrong-time /
wrong-order corruptions the scorer is calibrated against (:func:`calibrate`).
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from stepkit.graph.types import STSG, Action, Relation
from stepkit.reason.lexicon import clean, gerund, is_person_label, lexicon, past, plural

if TYPE_CHECKING:
    from stepkit.data.record import QRARecord

#: Spans quoted in a rationale are printed with one decimal: ends within this of the graph's match.
TIME_TOLERANCE = 0.051
#: A quoted span grounds its claim when its temporal IoU with the graph's event reaches this.
TIOU_GROUNDED = 0.5
#: The headline score is multiplied by this when the steps do not reach the answer.
UNREACHED_FACTOR = 0.5
CORRUPTIONS = ("wrong_object", "wrong_time", "wrong_order")

_ARTICLES = {"the", "a", "an", "some", "this", "that's"}
_NEG = {"no", "not", "never", "nothing", "none", "nobody", "noone", "neither", "nor", "n't", "cannot"}
_WILDCARD = {"something", "anything", "anyone", "someone", "somebody", "anybody", "everything", "nothing",
             "it", "they", "them", "he", "she", "object", "objects", "thing", "things"}
_GENERIC_PERSON = {"person", "people", "human", "someone", "somebody", "anyone", "anybody", "they", "he", "she"}
_COPULA = {"is", "was", "are", "were", "be", "being", "been", "stays", "stayed", "remains", "remained"}
_DETERMINERS = {"the", "a", "an", "his", "her", "their", "its", "this", "that", "these", "those", "another"}
_ADVERBS = {"not", "n't", "never", "still", "also", "just", "then", "already", "no", "longer"}
_PREPOSITIONS = {"on", "in", "at", "to", "behind", "above", "beneath", "under", "below", "inside", "near", "by",
                 "with", "of", "over", "beside", "from", "into", "onto", "against", "across", "through"}
_NOT_NOUNS = {"moment", "time", "one", "more", "longer", "such", "other", "way", "sign", "point", "matter"} | _WILDCARD
_PRONOUNS = {"it", "them", "him", "her", "something", "anything", "everything", "object", "thing"}
_PARTICLES = {"up", "down", "in", "on", "off", "out", "to", "into", "onto", "from", "at", "away", "over", "back"}
#: Words that make the reasoner, not the video, the subject of a verb ("we look at what happens").
_SELF = {"we", "i", "us", "let", "let's", "you", "that", "this", "which", "what"}
_UNITS = {"s", "sec", "secs", "second", "seconds"}
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+(?:'[a-z]+)?|n't|[;,.:!?/()]|[-–—]")
_ANSWER_CUE = re.compile(r"\b(?:final\s+|short\s+)?answer\s*(?:is|would be|:)\s*[:：]?\s*", re.I)


# --- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One checked claim: its ``kind`` (entity | attribute | relation | action | order), the words it
    came from, whether the graph grounds it, its score in [0, 1], and why."""

    kind: str
    text: str
    grounded: bool
    score: float
    reason: str
    negated: bool = False
    span: tuple[float, float] | None = None
    tiou: float | None = None
    refs: tuple[str, ...] = ()
    conclusion: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["span"] = list(self.span) if self.span is not None else None
        d["refs"] = list(self.refs)
        return d


@dataclass(frozen=True)
class FaithfulnessReport:
    """How faithful a rationale is to a graph.

    ``score`` (the headline, in [0, 1]): mean claim score (a quoted span scores its temporal IoU,
    1 within print precision), times 0.5 when the steps do not reach the answer, 0 with no claim.
    ``grounded_fraction``: claims the graph grounds / claims. ``hallucinated_entities``: labels named
    in positive claims that no object of the graph has. ``temporal_iou``: mean best temporal IoU of
    the quoted ``from … to …`` spans (None: none quoted). ``reaches_answer``: the rationale states an
    answer that the earlier grounded claims support (and, given a record, it is the record's answer);
    None without a record and without a stated answer. ``coverage`` (given a record whose rationale
    steps carry ``grounding``): the share of those graph ids the grounded claims name — a short
    rationale of true but beside-the-point statements scores high, covers little.
    """

    score: float
    grounded_fraction: float
    n_claims: int
    hallucinated_entities: list[str]
    temporal_iou: float | None
    reaches_answer: bool | None
    n_grounded: int = 0
    stated_answer: str | None = None
    coverage: float | None = None
    claims: tuple[Claim, ...] = field(default=(), repr=False)

    def to_dict(self, claims: bool = False) -> dict[str, Any]:
        """JSON-ready dict (``claims`` adds every claim)."""
        d: dict[str, Any] = {"score": self.score, "grounded_fraction": self.grounded_fraction,
                             "n_claims": self.n_claims, "n_grounded": self.n_grounded,
                             "hallucinated_entities": list(self.hallucinated_entities),
                             "temporal_iou": self.temporal_iou, "reaches_answer": self.reaches_answer,
                             "stated_answer": self.stated_answer, "coverage": self.coverage}
        if claims:
            d["claims"] = [c.to_dict() for c in self.claims]
        return d


# --- vocabulary -------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(clean(str(text)).lower()))


@lru_cache(maxsize=1)
def _shipped_vocab() -> dict[str, frozenset[str]]:
    """Labels, verbs, predicates, attribute names and values stepkit ships (lexicon, world, STAR, AG)."""
    lex = lexicon()
    fb = lex.get("fallback", {})
    labels = set(fb.get("label", [])) | set(lex.get("person_labels", []))
    verbs = set(fb.get("verb", []))
    preds = set(fb.get("predicate", []))
    values: set[str] = set()
    names = {"color", "size", "material", "state", "shape"}
    for k in ("color", "state", "size", "material", "value"):
        values |= set(fb.get(k, []))
    try:
        from stepkit.world import vocab as wv

        labels |= set(wv.OBJECT_CLASSES)
        verbs |= set(wv.VERBS) | set(wv.RAISE_VERBS.values())
        preds |= set(wv.PREDICATES)
        names |= set(wv.ATTRIBUTES)
        for vs in wv.ATTRIBUTES.values():
            values |= set(vs)
    except ImportError:  # pragma: no cover - the world package ships with stepkit
        pass
    try:
        from stepkit.sources import vocab as sv

        labels |= set(sv.star_objects().values()) | set(sv.ag_objects())
        preds |= {clean(p) for p in sv.star_relations().values()} | {clean(p) for p in sv.ag_relations()}
        for a in list(sv.star_actions().values()) + list(sv.charades_actions().values()):
            verbs.add(a.verb)
            labels |= {x for x in (a.object, a.target) if x}
    except Exception:  # noqa: BLE001 - a missing vocabulary file only narrows the lexicon
        pass
    try:
        from stepkit.sources.charades import STATIC_LABELS

        labels |= set(STATIC_LABELS)
    except ImportError:  # pragma: no cover
        pass
    try:
        from stepkit.reason.lexicon import load_templates

        labels |= set(load_templates("nouns").get("labels", {}))
        verbs |= set(load_templates("verbs").get("verbs", {}))
    except Exception:  # noqa: BLE001 - the noun / verb lexicons are optional data
        pass
    return {"labels": frozenset(clean(x) for x in labels if x), "verbs": frozenset(clean(x) for x in verbs if x),
            "preds": frozenset(clean(x) for x in preds if x), "names": frozenset(names),
            "values": frozenset(clean(x) for x in values if x)}


def _noun_words(label: str) -> tuple[str, ...]:
    """The natural noun of a label and its synonyms (``stepkit.reason.lexicon.noun_info``)."""
    try:
        from stepkit.reason.lexicon import noun_info
    except ImportError:  # pragma: no cover - older lexicon without the noun table
        return ()
    info = noun_info(label)
    return (info.noun, *info.synonyms)


def _verb_forms(verb: str) -> set[str]:
    """Surface forms of a verb label and of the verb as people say it (``watch at``: ``looked at``)."""
    v = clean(verb)
    out: set[str] = set()
    says = {v}
    try:
        from stepkit.reason.lexicon import verb_say

        says.add(clean(verb_say(v)))
    except ImportError:  # pragma: no cover
        pass
    for say in says:
        head, _, rest = say.partition(" ")
        rest = (" " + rest) if rest else ""
        third = (head + "es" if head.endswith(("s", "x", "z", "ch", "sh", "o")) else
                 head[:-1] + "ies" if head.endswith("y") and len(head) > 1 and head[-2] not in "aeiou" else head + "s")
        heads = {head, past(head), gerund(head), third}
        try:
            from stepkit.reason.lexicon import participle

            heads.add(participle(head))
        except ImportError:  # pragma: no cover
            pass
        out |= {h + rest for h in heads}
    return out | {past(v), gerund(v)}


@dataclass
class _Lex:
    """Phrase table for one graph: token tuple -> [(kind, value)], longest phrase first."""

    table: dict[tuple[str, ...], list[tuple[str, str]]]
    max_len: int
    split_heads: dict[str, list[tuple[str, str]]]  # "put" -> [("in", "put in"), ...]


def _build_lex(graph: STSG) -> _Lex:
    """The phrase table for ``graph``'s words (cached by those words: many rationales, one graph)."""
    return _lex_for(frozenset(clean(o.label) for o in graph.objects), frozenset(clean(a.verb) for a in graph.actions),
                    frozenset(clean(r.predicate) for r in graph.relations),
                    frozenset(clean(a.name) for o in graph.objects for a in o.attributes),
                    frozenset(clean(a.value) for o in graph.objects for a in o.attributes))


@lru_cache(maxsize=256)
def _lex_for(g_labels: frozenset, g_verbs: frozenset, g_preds: frozenset, g_names: frozenset,
             g_values: frozenset) -> _Lex:
    shipped = _shipped_vocab()
    labels = set(shipped["labels"]) | g_labels
    verbs = set(shipped["verbs"]) | g_verbs
    preds = set(shipped["preds"]) | g_preds
    names = set(shipped["names"]) | g_names
    values = set(shipped["values"]) | g_values
    table: dict[tuple[str, ...], list[tuple[str, str]]] = {}

    def add(phrase: str, kind: str, value: str) -> None:
        key = _words(phrase)
        if key and (kind, value) not in table.setdefault(key, []):
            table[key].append((kind, value))

    for lab in labels:
        add(lab, "noun", lab)
        add(plural(lab), "noun", lab)
        for part in lab.split("/") if "/" in lab else ():
            add(part, "noun", lab)
            add(plural(part), "noun", lab)
        for word in _noun_words(lab):  # the natural noun and its synonyms: "mug" for cup/glass/bottle
            add(word, "noun", lab)
            add(plural(word), "noun", lab)
    for v in verbs:
        for f in _verb_forms(v):
            add(f, "verb", v)
    for p in preds:
        add(p, "pred", p)
    for n in names:
        add(n, "attrname", n)
    for val in values:
        add(val, "value", val)
    split: dict[str, list[tuple[str, str]]] = {}
    # "put the cup in the box", "picked the cup up", "walks over to the bed": a particle verb whose
    # particle stands apart from its head
    for v in set(lexicon().get("split_particle", [])) | verbs:
        head, _, particle = clean(v).rpartition(" ")
        if head and particle in _PARTICLES and " " not in head:
            for f in _verb_forms(head):
                split.setdefault(f, []).append((particle, clean(v)))
    return _Lex(table, max(len(k) for k in table), split)


# --- mentions ---------------------------------------------------------------------------------


@dataclass
class _M:
    """A mention in a clause: token position, kind and value(s)."""

    pos: int
    end: int
    kind: str  # noun | verb | pred | copula | attrname | value | time | neg | wild | ordinal | order
    values: tuple[str, ...] = ()
    span: tuple[float, float] | None = None
    point: float | None = None
    duration: float | None = None
    text: str = ""
    alts: tuple[tuple[str, str], ...] = ()


def _num(tok: str) -> float | None:
    try:
        return float(tok)
    except ValueError:
        return None


def _times(toks: Sequence[str]) -> list[_M]:
    """Time expressions: ``from A (s) to B s``, ``between A and B s``, ``A s to B s``, ``at A s``,
    ``lasts A s`` / ``for A s``."""
    out: list[_M] = []
    i, n = 0, len(toks)
    while i < n:
        t = toks[i]
        a = _num(toks[i + 1]) if i + 1 < n else None
        if t in ("from", "between") and a is not None:
            j = i + 2
            if j < n and toks[j] in _UNITS:
                j += 1
            if j + 1 < n and toks[j] in ("to", "until", "till", "and", "through") and _num(toks[j + 1]) is not None:
                b = _num(toks[j + 1])
                k = j + 2
                if k < n and toks[k] in _UNITS:
                    k += 1
                    lo, hi = min(a, b), max(a, b)
                    out.append(_M(i, k, "time", span=(lo, hi), text=" ".join(toks[i:k])))
                    i = k
                    continue
        if _num(t) is not None and (i == 0 or toks[i - 1] not in ("from", "between")):
            # "2.1 s to 5.0 s", "2.1-5.0 s", "(2.1 s – 5.0 s)"
            j = i + 1 + (1 if i + 1 < n and toks[i + 1] in _UNITS else 0)
            if j + 1 < n and toks[j] in ("to", "until", "-", "–", "—") and _num(toks[j + 1]) is not None and (
                    j + 2 < n and toks[j + 2] in _UNITS or toks[i + 1] in _UNITS):
                k = j + 2 + (1 if j + 2 < n and toks[j + 2] in _UNITS else 0)
                lo, hi = sorted((float(t), float(toks[j + 1])))
                out.append(_M(i, k, "time", span=(lo, hi), text=" ".join(toks[i:k])))
                i = k
                continue
        if t in ("at", "around") and a is not None and i + 2 < n and toks[i + 2] in _UNITS:
            out.append(_M(i, i + 3, "time", point=a, text=" ".join(toks[i:i + 3])))
            i += 3
            continue
        if t in ("lasts", "lasted", "last", "for", "takes", "took") and a is not None and i + 2 < n \
                and toks[i + 2] in _UNITS:
            out.append(_M(i, i + 3, "time", duration=a, text=" ".join(toks[i:i + 3])))
            i += 3
            continue
        i += 1
    return out


_ORDINAL_WORDS = {w: k for k, w in enumerate(lexicon()["ordinals"], 1)}
_ORDER_WORDS = {"before": "before", "after": "after", "meanwhile": "while", "while": "while", "during": "while"}


def _mentions(toks: Sequence[str], lex: _Lex) -> list[_M]:
    """All mentions of a clause's tokens, in order, non-overlapping (times, then longest phrases)."""
    taken = [False] * len(toks)
    out = _times(toks)

    def nxt_is_noun(k: int) -> bool:
        """Whether a noun starts at token ``k`` ("the red cup": "red" is the value)."""
        return any(kind == "noun" for L in range(1, min(lex.max_len, len(toks) - k) + 1)
                   for kind, _ in lex.table.get(tuple(toks[k:k + L]), ()))

    for m in out:
        for k in range(m.pos, m.end):
            taken[k] = True
    i = 0
    while i < len(toks):
        if taken[i]:
            i += 1
            continue
        hit = None
        for L in range(min(lex.max_len, len(toks) - i), 0, -1):
            key = tuple(toks[i:i + L])
            if any(taken[i:i + L]):
                continue
            got = lex.table.get(key)
            if got:
                hit = (L, got)
                break
        t = toks[i]
        if t in lex.split_heads and (hit is None or len(hit[1]) and hit[0] == 1):
            # "put the cup in the box": a verb whose particle follows its object
            parts: list[str] = []
            for k in range(i + 1, min(len(toks), i + 7)):
                if not toks[k][0].isalnum():
                    break  # the particle belongs to the same clause
                parts = [v for particle, v in lex.split_heads[t] if particle == toks[k] and not taken[k]]
                if parts:
                    taken[k] = True
                    out.append(_M(i, i + 1, "verb", tuple(sorted(set(parts))), text=f"{t} … {toks[k]}"))
                    break
            if parts:
                i += 1
                continue
        if hit is not None:
            L, got = hit
            kinds = {k for k, _ in got}
            j = i - 1
            while j >= 0 and toks[j] in _ADVERBS:
                j -= 1
            prev = toks[j] if j >= 0 else ""
            # A predicate right after a copula is a relation; a bare preposition ("on", "in") only
            # there; otherwise a verb wins over a predicate, and a noun / verb over an attribute value
            # sharing its spelling.
            bare = L == 1 and t in _PREPOSITIONS
            nxt = toks[i + L] if i + L < len(toks) else ""
            at_end = all(not x[0].isalnum() for x in toks[i + L:])
            nouns_before = sum(1 for m in out if m.kind == "noun" and m.pos < i)
            after_article = i > 0 and toks[i - 1] in _DETERMINERS
            if "noun" in kinds and after_article and not ("value" in kinds and L == 1 and nxt_is_noun(i + L)):
                kind = "noun"  # "washed the hands": after an article a noun, not the verb "hands"
            elif "value" in kinds and "pred" not in kinds and i == 0 and at_end:
                kind = "value"  # a bare value: "open" as an answer
            elif "pred" in kinds and prev in _COPULA and at_end and nouns_before >= 2:
                kind = "pred"  # stranded: "the table the cup was on"
            elif "value" in kinds and prev in _COPULA and L == 1 and not (
                    "pred" in kinds and (nxt in _ARTICLES or (nxt,) in lex.table)):
                kind = "value"  # "the door is closed": a state, not the action of closing
            elif "verb" in kinds and nxt in ("longer", "shorter", "first", "earlier", "later", "last"):
                kind = ""  # "took longer", "came first": a comparison word, not an event
            elif "pred" in kinds and "verb" in kinds and not bare:
                kind = "event"  # "holding": the relation or the action, whichever the graph has
            elif "pred" in kinds and (prev in _COPULA or not bare and "noun" not in kinds):
                kind = "pred"
            elif "verb" in kinds:
                kind = "verb"
            elif "noun" in kinds:
                kind = "noun"
            elif "value" in kinds and (L > 1 or t not in ("on", "off", "open", "closed", "full", "empty")
                                       or prev in _COPULA):
                kind = "value"
            elif "attrname" in kinds:
                kind = "attrname"
            elif "pred" in kinds and bare:
                kind = ""  # a bare preposition
            else:
                kind = sorted(kinds)[0]
            if kind:
                vals = tuple(v for k, v in got if k == kind or kind == "event" and k in ("verb", "pred"))
                out.append(_M(i, i + L, kind, vals, text=" ".join(toks[i:i + L]), alts=tuple(got)))
                i += L
                continue
        if t in _COPULA:
            out.append(_M(i, i + 1, "copula", text=t))
        elif t in _NEG and not (i == 0 and i + 1 < len(toks) and toks[i + 1] == ","):
            out.append(_M(i, i + 1, "neg", text=t))  # (a leading "No, ..." answers; it denies nothing)
            w = toks[i + 1] if i + 1 < len(toks) else ""
            if t == "no" and w.isalpha() and (w,) not in lex.table and w not in _NOT_NOUNS and not taken[i + 1]:
                # "we see no toaster": a thing the lexicon does not know is still a thing denied
                out.append(_M(i + 1, i + 2, "noun", (w, w[:-1]) if w.endswith("s") else (w,), text=w))
                i += 2
                continue
        elif t in _SELF:
            out.append(_M(i, i + 1, "self", text=t))
        elif t in ("who", "whom"):
            out.append(_M(i, i + 1, "rel", text=t))
        elif t in _WILDCARD:
            out.append(_M(i, i + 1, "wild", (t,), text=t))
        elif t in _ORDINAL_WORDS or t in ("last", "latest", "earliest", "longest", "shortest"):
            out.append(_M(i, i + 1, "ordinal", (t,), text=t))
        elif t in _ORDER_WORDS or t in ("first", "earlier", "later", "longer", "shorter"):
            out.append(_M(i, i + 1, "order", (t,), text=t))
        i += 1
    out.sort(key=lambda m: m.pos)
    return out


# --- claims -----------------------------------------------------------------------------------


@dataclass
class _Event:
    """An event claim under construction."""

    head: _M
    kind: str  # action | relation
    agent: _M | None = None
    others: list[_M] = field(default_factory=list)
    time: _M | None = None
    skip: bool = False


class _Checker:
    """Graph lookups the claims are checked with."""

    def __init__(self, graph: STSG):
        self.graph = graph
        self.duration = float(graph.duration or 0.0)
        self.objects = graph.object_map()
        self.labels = {oid: clean(o.label) for oid, o in self.objects.items()}
        self.events: list[Action | Relation] = list(graph.actions) + list(graph.relations)
        self.narrow: dict[int, set[str]] = {}  # mention id -> the entities a relative clause allows
        self.ties: dict[str, list[Action | Relation]] = {}  # event id -> events a claim fit equally well
        self.event_ids = {e.id for e in self.events}

    def objs(self, m: _M | None) -> set[str] | None:
        """Object ids a noun mention can denote (None: a wildcard / no constraint)."""
        if m is None or m.kind == "wild":
            if m is not None and m.values and m.values[0] in _GENERIC_PERSON:
                return {o for o, lab in self.labels.items() if is_person_label(lab)}
            return None
        if id(m) in self.narrow:
            return set(self.narrow[id(m)])
        labs = set(m.values)
        out = set()
        for oid, lab in self.labels.items():
            if lab in labs:
                out.add(oid)
            elif is_person_label(lab) and any(is_person_label(x) for x in labs) and (
                    lab in _GENERIC_PERSON or labs & _GENERIC_PERSON):
                out.add(oid)
        return out

    def roles(self, e: Action | Relation) -> tuple[str, set[str]]:
        if isinstance(e, Action):
            return e.agent, {x for x in (e.object, e.target) if x is not None}
        return e.subject, {e.object}

    def matching(self, ev: _Event) -> list[Action | Relation]:
        """Graph events with the claim's verb / predicate and participants (objects in either slot)."""
        agent = self.objs(ev.agent)
        others = [self.objs(m) for m in ev.others]
        heads = set(ev.head.values)
        out = []
        for e in self.events:
            if isinstance(e, Action):
                if ev.kind == "relation" or clean(e.verb) not in heads:
                    continue
            elif ev.kind == "action" or clean(e.predicate) not in heads:
                continue
            a, _ = self.roles(e)
            if agent is not None and a not in agent:
                continue
            if self._fills(e, a, others, ordered=ev.agent is not None):
                out.append(e)
        return out

    @staticmethod
    def _fills(e: Action | Relation, agent: str, others: list[set[str] | None], ordered: bool) -> bool:
        """Whether the participants named after the verb fill the event's slots: in order (object,
        then target: "put down the cup on the table" is not "put down the table"; phrases past the
        last slot are not checked), or, with no agent named before the verb (passive: "the cup was put
        down by the man"), in any slots."""
        slots = [x for x in ((e.object, e.target) if isinstance(e, Action) else (e.object,)) if x is not None]
        named = [o for o in others if o is not None]
        if ordered:
            # more phrases than slots ("picked up the cup from the table"): the rest say where, unchecked
            return len(slots) >= min(len(others), 1) and all(o is None or s in o for s, o in zip(slots, others))
        free = set(slots) | {agent}
        for o in named:
            hit = o & free
            if not hit:
                return False
            free -= {sorted(hit)[0]}
        return True


def _tiou(a0: float, a1: float, b0: float, b1: float) -> float:
    if abs(a0 - b0) <= TIME_TOLERANCE and abs(a1 - b1) <= TIME_TOLERANCE:
        return 1.0
    inter = min(a1, b1) - max(a0, b0)
    union = max(a1, b1) - min(a0, b0)
    return max(0.0, inter) / union if union > 0 else 0.0


def _coverage(span: tuple[float, float], t0: float, t1: float) -> float:
    """Share of a quoted span during which a state held over [t0, t1] (1 within print precision)."""
    a, b = span
    if a >= t0 - TIME_TOLERANCE and b <= t1 + TIME_TOLERANCE:
        return 1.0
    if b - a <= 0:
        return 1.0 if t0 <= a <= t1 else 0.0
    return max(0.0, min(b, t1) - max(a, t0)) / (b - a)


def _time_fit(m: _M, t0: float, t1: float, state: bool = False) -> float:
    """How well a time mention fits an event over [t0, t1], in [0, 1]: an action's quoted span by
    temporal IoU, a state's (relation's) by how much of the span it held."""
    if state and m.span is not None:
        return _coverage(m.span, t0, t1)
    """How well a time mention fits an interval [t0, t1], in [0, 1]."""
    if m.span is not None:
        return _tiou(m.span[0], m.span[1], t0, t1)
    if m.point is not None:
        d = min(abs(m.point - t0), abs(m.point - t1)) if not t0 <= m.point <= t1 else 0.0
        if abs(m.point - t0) <= TIME_TOLERANCE:
            return 1.0
        return 0.0 if d > 0 else max(0.0, 1.0 - (m.point - t0) / max(t1 - t0, 1e-6))
    if m.duration is not None:
        return 1.0 if abs(m.duration - (t1 - t0)) <= TIME_TOLERANCE else 0.0
    return 1.0


@dataclass
class _Parsed:
    """A clause's checked claims and the events it grounded (for order and answer checks)."""

    claims: list[Claim]
    events: list[Action | Relation | None]  # best graph event per event claim (None: ungrounded)
    text: str
    readings: list[list[Claim]] = field(default_factory=list)  # every reading of an ambiguous word


def _split(text: str) -> list[tuple[int, str]]:
    """(sentence index, clause) pairs: sentences split at ``. `` / ``!`` / ``?``, clauses at ``;`` and
    ``, so`` / ``, then`` / ``, and then``."""
    out = []
    sentences = re.split(r"(?<=[.!?])\s+|\n+", str(text).strip())
    for si, s in enumerate(x for x in sentences if x.strip()):
        for c in re.split(r";|,\s*(?=so\b|then\b|and then\b|which\b)", s):
            if c.strip():
                out.append((si, c.strip()))
    return out


def _event_claims(ms: list[_M]) -> list[_Event]:
    """Event claims of a clause's mentions: each verb, or copula + predicate, with its participants."""
    heads = [i for i, m in enumerate(ms) if m.kind in ("verb", "pred", "event")]
    events: list[_Event] = []
    start = 0  # first mention not taken by the previous event
    for n, hi in enumerate(heads):
        h = ms[hi]
        ev = _Event(h, {"verb": "action", "pred": "relation"}.get(h.kind, "event"))
        hi_bound = heads[n + 1] if n + 1 < len(heads) else len(ms)
        before = [m for m in ms[start:hi] if m.kind in ("noun", "wild", "self")]
        if before and before[-1].kind == "self":
            # "we look at …", "that makes 2": the reasoner speaking, not a claim about the video
            ev.skip = True
        elif before:
            ev.agent = before[-1]
        elif h.kind != "verb" and hi > 0 and ms[hi - 1].kind == "copula":
            # "the object the man sat down on is next to the table": the clause's first noun phrase
            first = next((m for m in ms[:hi] if m.kind in ("noun", "wild")), None)
            ev.agent = first if first is not None and (first.kind == "wild" or n == 0) else None
        elif n > 0 and events[-1].agent is not None:
            ev.agent = events[-1].agent  # "the person picked up the cup and walked to the bed"
        after = ms[hi + 1:hi_bound]
        # the next event's agent stands right before its verb: leave it to that event when a time
        # separates it from this event's objects, or when this event already has an object
        cut = len(after)
        if n + 1 < len(heads):
            nouns = [k for k, m in enumerate(after) if m.kind in ("noun", "wild")]
            first_time = next((k for k, m in enumerate(after) if m.kind == "time"), None)
            if first_time is not None:
                cut = first_time + 1  # "A picked up B at 1 s and C ...": C starts the next event
            elif nouns and (len(nouns) > 1 or ms[hi_bound].kind == "pred"):
                cut = nouns[-1]
        # a pronoun keeps its place among the participants ("put it down on the table")
        ev.others = [m for m in after[:cut] if m.kind == "noun" or m.kind == "wild" and m.values[0] in _PRONOUNS]
        times = [m for m in after[:cut] if m.kind == "time"]
        if not times and n == 0:
            times = [m for m in ms[:hi] if m.kind == "time"]  # "At 2.1 s the person ..."
        ev.time = times[0] if times else None
        if h.kind in ("pred", "event") and not ev.others and ev.agent is not None and \
                not any(m.kind in ("noun", "wild") for m in after):
            # a stranded predicate names its object before the subject: "the table the cup was on"
            k = ms.index(ev.agent)
            prior = [m for m in ms[:k] if m.kind == "noun"]
            if prior and ms[k - 1] is prior[-1]:
                ev.others = [prior[-1]]
        passive = h.kind == "verb" and hi > 0 and ms[hi - 1].kind == "copula" and ms[hi - 1].end == h.pos
        if passive and ev.agent is not None:
            # "the cup was put down on the table by the person": every named party fills some slot
            ev.others = [ev.agent, *ev.others]
            ev.agent = None
        events.append(ev)
        start = hi + 1 + cut
    return events


def _in_window(e: Action | Relation, window: tuple[str, Action | Relation] | None, duration: float = 1e9) -> bool:
    """Whether ``e`` lies before / after / during the anchor, as the program executor's windows say."""
    from stepkit.reason.ops import Window, in_window

    if window is None:
        return True
    mode, a = window
    w = {"before": Window(0.0, a.t0, mode, a.id), "after": Window(a.t1, max(duration, a.t1), mode, a.id)}.get(
        mode, Window(a.t0, a.t1, mode, a.id))
    return in_window(e, w)


def _check_clause(clause: str, lex: _Lex, ck: _Checker, conclusion: bool,
                  window: tuple[str, Action | Relation] | None = None) -> _Parsed:
    ms = _mentions(_words(clause), lex)
    content = [m for m in ms if m.kind in _CONTENT]
    if len(content) == 1 and len({k for k, _ in content[0].alts}) > 1:
        # one bare word with several readings ("open": a state or an action): the one the graph grounds
        best: _Parsed | None = None
        readings = []
        for kind in sorted({k for k, _ in content[0].alts} & _CONTENT):
            m = content[0]
            alt = _M(m.pos, m.end, kind, tuple(v for k, v in m.alts if k == kind), text=m.text, alts=m.alts)
            got = _claims_of([alt if x is m else x for x in ms], clause, ck, conclusion, window)
            readings.append(got.claims)
            if best is None or sum(c.score for c in got.claims) > sum(c.score for c in best.claims):
                best = got
        if best is not None:
            best.readings = readings
            return best
    return _claims_of(ms, clause, ck, conclusion, window)


_CONTENT = {"noun", "verb", "pred", "event", "value"}


def _claims_of(ms: list[_M], clause: str, ck: _Checker, conclusion: bool,
               window: tuple[str, Action | Relation] | None) -> _Parsed:
    """The checked claims of one clause's mentions."""
    heads = [m.pos for m in ms if m.kind in ("verb", "pred", "event")]
    negs = [m.pos for m in ms if m.kind == "neg"]
    relative = {m.pos for m in ms if m.kind in ("self", "rel")}  # "who", "that", "which" positions

    def negated_at(pos: int) -> bool:
        """A negation scopes over what follows it up to the next event: "the person who opened the
        door did not give the book" denies the giving only."""
        return any(n < pos and not any(n < h < pos for h in heads) for n in negs)

    claims: list[Claim] = []
    grounded_events: list[Action | Relation | None] = []
    used: set[int] = set()
    for ev in _event_claims(ms):
        if ev.skip:
            continue
        used |= {id(ev.head)} | ({id(ev.agent)} if ev.agent else set()) | {id(m) for m in ev.others}
        cands = ck.matching(ev)
        words = " ".join(m.text for m in [ev.agent, ev.head, *ev.others] if m is not None)
        span = ev.time.span if ev.time is not None else None
        if negated_at(ev.head.pos):
            # "we look at what happens meanwhile ... no moment when anyone picked up": within the window
            cands = [e for e in cands if _in_window(e, window, ck.duration)]
            ok = not cands
            claims.append(Claim(ev.kind, words, ok, 1.0 if ok else 0.0,
                                "no such event in the graph" if ok else f"the graph has {cands[0].id}",
                                negated=True, refs=tuple(sorted({x for e in cands for x in (e.id,)}))))
            grounded_events.append(None)
            continue
        if ev.agent is not None and ev.agent.kind == "noun" and ev.agent.end in relative and ev.head.pos > ev.agent.end:
            # "the person who opened the door ...": later claims about this person mean the opener
            ck.narrow[id(ev.agent)] = {ck.roles(e)[0] for e in cands}
        if not cands:
            claims.append(Claim(ev.kind, words, False, 0.0, "no event of the graph has these roles",
                                span=span, conclusion=conclusion))
            grounded_events.append(None)
            continue
        best, fit = cands[0], 1.0
        if ev.time is not None:
            fits = [(e, _time_fit(ev.time, e.t0, e.t1, isinstance(e, Relation))) for e in cands]
            best, fit = max(fits, key=lambda x: (x[1], -x[0].t0))
            # "was holding the cup": the action and the relation it implies may both fit
            ck.ties[best.id] = [e for e, f in fits if f == fit and e is not best]
        tiou = _tiou(span[0], span[1], best.t0, best.t1) if span is not None else None
        grounded = fit >= TIOU_GROUNDED if ev.time is not None and ev.time.span is not None else fit >= 0.999
        a, rest = ck.roles(best)
        # an untimed claim may mean any of its matching events
        refs = tuple(sorted({best.id, a, *rest} | ({e.id for e in cands} if ev.time is None else set())))
        kind = ev.kind if ev.kind != "event" else ("action" if isinstance(best, Action) else "relation")
        claims.append(Claim(kind, words + (f" {ev.time.text}" if ev.time else ""), grounded,
                            round(fit, 6), f"matches {best.id}" + (f" (fit {fit:.2f})" if ev.time else ""),
                            span=span, tiou=round(tiou, 6) if tiou is not None else None, refs=refs,
                            conclusion=conclusion))
        # order checks need to know which event is meant: only a timed claim says that
        grounded_events.append(best if grounded and ev.time is not None else None)
    # attributes: a value next to a noun ("the red cup"), or "the <name> of <noun> is <value>"
    nouns = [m for m in ms if m.kind == "noun"]
    names = [m.values[0] for m in ms if m.kind == "attrname"]
    for m in ms:
        if m.kind != "value":
            continue
        nxt = next((x for x in ms if x.pos == m.end), None)
        target = nxt if nxt is not None and nxt.kind == "noun" else None
        name_at = next((x for x in ms if x.kind == "attrname" and x.pos < m.pos), None)
        if target is None and name_at is not None:
            # "the color of the object the man picked up is red": the phrase right after the name
            head = next((x for x in ms if x.pos > name_at.pos and x.kind in ("noun", "wild")), None)
            if head is not None and head.kind == "noun":
                target = head  # (a wildcard head: any object may have it)
        if target is None and name_at is None:
            prior = [x for x in nouns if x.pos < m.pos]
            target = prior[-1] if prior else None
        if target is not None:
            used.add(id(target))
        objs = ck.objs(target) if target is not None else set(ck.objects)
        k = ms.index(m)
        time = ms[k + 1] if k + 1 < len(ms) and ms[k + 1].kind == "time" and ms[k + 1].span is not None else None
        hits = []
        for oid in sorted(objs or ()):
            for at in ck.objects[oid].attributes:
                if clean(at.value) in m.values and (not names or clean(at.name) in names):
                    lo = at.t0 if at.t0 is not None else 0.0
                    hi = at.t1 if at.t1 is not None else ck.duration
                    hits.append((oid, _coverage(time.span, lo, hi) if time is not None else 1.0,
                                 _tiou(time.span[0], time.span[1], lo, hi) if time is not None else None))
        words = f"{target.text if target else ''} {'/'.join(names)} {m.text}".strip()
        if negated_at(m.pos):
            ok = not hits
            claims.append(Claim("attribute", words, ok, 1.0 if ok else 0.0, "no object has it" if ok else
                                f"{hits[0][0]} has it", negated=True, conclusion=conclusion))
            continue
        top = max(hits, key=lambda h: (h[1], h[2] or 0.0), default=None)
        fit = top[1] if top else 0.0
        ok = bool(hits) and fit >= TIOU_GROUNDED
        claims.append(Claim("attribute", words, ok, round(fit, 6),
                            f"{top[0]} has it" if top else "no such object has this value",
                            span=time.span if time else None,
                            tiou=round(top[2], 6) if top and top[2] is not None else None,
                            refs=tuple(sorted({h[0] for h in hits})), conclusion=conclusion))
    # entities named outside any event or attribute claim
    for m in nouns:
        if id(m) in used:
            continue
        objs = ck.objs(m) or set()
        if negated_at(m.pos):
            claims.append(Claim("entity", m.text, not objs, 1.0 if not objs else 0.0,
                                "absent from the graph" if not objs else f"the graph has {sorted(objs)[0]}",
                                negated=True, conclusion=conclusion))
        else:
            claims.append(Claim("entity", m.text, bool(objs), 1.0 if objs else 0.0,
                                "in the graph" if objs else "no object of the graph has this label",
                                refs=tuple(sorted(objs)), conclusion=conclusion))
    return _Parsed(claims, grounded_events, clause)


def _order_claims(parsed: list[tuple[int, _Parsed]], texts: list[str], ck: _Checker) -> list[Claim]:
    """Temporal-order claims: ``A at t and B at t', so A came first``; ``E, so we look at what happens
    before / after / meanwhile`` (later events must lie there); ``the first / k-th / last / longest of
    these is E`` over the events of the sentence before."""
    out: list[Claim] = []
    anchor: tuple[str, Action | Relation] | None = None
    anchor_sentence = window_sentence = -1
    window_events: list[Action | Relation] = []
    prev_events: list[Action | Relation] = []
    prev_complete = True
    last_sentence = -1
    sentence_events: list[Action | Relation] = []
    sentence_complete = True
    for (si, p), text in zip(parsed, texts):
        toks = _words(text)
        if si != last_sentence:
            prev_events, prev_complete = sentence_events, sentence_complete
            sentence_events, sentence_complete = [], True
            last_sentence = si
        evs = [e for e in p.events if e is not None]
        if re.search(r"\band\s+\d+\s+more\b", text, re.I):
            sentence_complete = False
        mode = next((_ORDER_WORDS[t] for t in toks if t in ("before", "after", "meanwhile")), None)
        so_far = sentence_events + evs
        if mode is not None and ("look" in toks or "happens" in toks or "happened" in toks) and so_far:
            anchor, anchor_sentence, window_events = (mode, so_far[-1]), si, []
        elif anchor is not None and si != anchor_sentence and evs:
            if window_sentence != si:
                window_events, window_sentence = [], si
            window_events.extend(evs)
        sel = [t for t in toks[:4] if t in _ORDINAL_WORDS or t in ("last", "longest", "earliest", "latest")]
        if sel and "these" in toks and evs and len(prev_events) >= 2:
            w, e = sel[0], evs[0]
            by_start = sorted(prev_events, key=lambda x: (x.t0, x.t1, x.id))
            if w in ("first", "earliest"):
                ok = e.t0 <= by_start[0].t0 + TIME_TOLERANCE
            elif w in ("last", "latest"):
                ok = e.t0 >= by_start[-1].t0 - TIME_TOLERANCE
            elif w == "longest":
                ok = (e.t1 - e.t0) >= max(x.t1 - x.t0 for x in prev_events) - TIME_TOLERANCE
            else:
                k = _ORDINAL_WORDS[w]
                ok = (k <= len(by_start) and abs(by_start[k - 1].t0 - e.t0) <= TIME_TOLERANCE) if (
                    prev_complete or k <= len(by_start)) else True
            out.append(Claim("order", f"{w} of these: {e.id}", ok, 1.0 if ok else 0.0,
                             "holds in the graph" if ok else "another listed event comes there", refs=(e.id,)))
        if prev_events and prev_complete and re.search(r"\bof (?:them|these)\b", text, re.I):
            # "There are 2 of them: the table, the bed": the things counted take part in the events before
            present = {x for e in prev_events for x in (*ck.roles(e)[1], ck.roles(e)[0])}
            for c in p.claims:
                if c.kind == "entity" and not c.negated and c.grounded:
                    ok = bool(set(c.refs) & present)
                    out.append(Claim("order", f"{c.text} among the events before", ok, 1.0 if ok else 0.0,
                                     "takes part in them" if ok else "takes part in none of them", refs=c.refs))
        # "A at 1 s and B at 5 s, so A came first": the winner is named after the two timed events
        pair = (sentence_events + evs)[-2:]
        if len(pair) == 2 and re.search(r"\b(came|comes|happened|happens|was)\s+(first|earlier)\b", text, re.I):
            out.extend(_winner_claim(pair, text, lambda e: e.t0, min))
        if len(pair) == 2 and re.search(r"\b(took|takes|lasted|lasts|was)\s+longer\b", text, re.I):
            out.extend(_winner_claim(pair, text, lambda e: e.t1 - e.t0, max))
        sentence_events.extend(evs)
    if anchor is not None:
        # the window bounds the step that gives the answer: the last sentence with timed events
        mode_a, a = anchor
        for e in window_events:
            ok = any(_in_window(x, anchor, ck.duration) for x in (e, *ck.ties.get(e.id, ())))
            out.append(Claim("order", f"{e.id} {mode_a} {a.id}", ok, 1.0 if ok else 0.0,
                             "holds in the graph" if ok else "the graph orders them otherwise", refs=(e.id, a.id)))
    return out


def _winner_claim(evs: list[Action | Relation], text: str, key, pick) -> list[Claim]:
    """The clause after ``so`` names the winner: it must be the earlier (longer) of the two events."""
    tail = re.split(r"\bso\b", text, flags=re.I)[-1].lower()
    if evs[0] is evs[1] or not re.search(r"[a-z]", tail):
        return []
    best = pick(evs, key=key)
    other = evs[0] if best is evs[1] else evs[1]
    if abs(key(best) - key(other)) <= TIME_TOLERANCE:
        return []
    said_best = _names_event(tail, best)
    said_other = _names_event(tail, other)
    if said_best == said_other:
        return []
    ok = said_best
    return [Claim("order", f"{'first' if pick is min else 'longer'}: {best.id if ok else other.id}", ok,
                  1.0 if ok else 0.0, "holds in the graph" if ok else "the other event wins in the graph",
                  refs=(best.id, other.id))]


def _names_event(text: str, e: Action | Relation) -> bool:
    label = clean(e.verb if isinstance(e, Action) else e.predicate)
    toks = set(_words(text))
    forms = _verb_forms(label) if isinstance(e, Action) else {label}
    return any(set(_words(f)) <= toks for f in forms)


def _stated_answer(text: str) -> str | None:
    cues = list(_ANSWER_CUE.finditer(str(text)))
    if not cues:
        return None
    tail = str(text)[cues[-1].end():].strip().split("\n")[0]
    tail = re.split(r"(?<=[a-z0-9)])\.(?:\s|$)", tail, maxsplit=1)[0]
    return tail.strip().strip("\"'").strip() or None


def _same_answer(stated: str, gold: str) -> bool:
    from stepkit.evaluate.extract import normalize_answer

    a, b = normalize_answer(stated), normalize_answer(gold)
    if a == b:
        return True
    if b in ("yes", "no"):
        return (a.split() or [""])[0] == b
    # an action answer in another verb form ("walked to the bed" for "walk to the bed")
    return bool(a) and a.split()[1:] == b.split()[1:] and past(b.split()[0]) == a.split()[0] if a.split() and b.split() else False


def score_rationale(rationale: str, graph: STSG, record: "QRARecord | None" = None) -> FaithfulnessReport:
    """Parse ``rationale`` into claims and check each against ``graph`` (see the module docstring).

    ``record`` (the question's Q/R/A record) adds the gold answer: the steps then reach the answer
    only if the stated answer is the record's.
    """
    text = str(rationale or "")
    lex = _build_lex(graph)
    ck = _Checker(graph)
    stated = _stated_answer(text)
    clauses = _split(text)
    parsed: list[tuple[int, _Parsed]] = []
    window: tuple[str, Action | Relation] | None = None
    for si, c in clauses:
        cue = _ANSWER_CUE.search(c)
        body = c
        if cue:
            body = c[cue.end():]
            if _words(c[:cue.start()]):
                parsed.append((si, _check_clause(c[:cue.start()], lex, ck, False, window)))
        parsed.append((si, _check_clause(body, lex, ck, bool(cue), window)))
        toks = set(_words(c))
        mode = next((_ORDER_WORDS[t] for t in ("before", "after", "meanwhile") if t in toks), None)
        if mode is not None and toks & {"look", "happens", "happened"}:
            timed = [e for s_i, p in parsed if s_i == si for e in p.events if e is not None]
            if timed:
                window = (mode, timed[-1])
    claims = [cl for _, p in parsed for cl in p.claims]
    claims += _order_claims(parsed, [p.text for _, p in parsed], ck)
    n = len(claims)
    n_ok = sum(1 for c in claims if c.grounded)
    spans = [c.tiou for c in claims if c.span is not None and c.tiou is not None]
    spans += [0.0 for c in claims if c.span is not None and c.tiou is None and not c.negated]
    halluc = sorted({c.text for c in claims if c.kind == "entity" and not c.negated and not c.grounded}
                    | {w for c in claims if c.kind in ("action", "relation", "event") and not c.grounded and not c.negated
                       for w in _unknown_nouns(c.text, lex, ck)})
    reaches: bool | None = None
    if stated is not None or record is not None:
        reaches = stated is not None
        if stated is not None and record is not None:
            reaches = _same_answer(stated, record.answer)
            if not reaches and record.options:
                # "So the answer is (B).": the option it names
                from stepkit.evaluate.extract import extract_choice

                k = extract_choice(stated, list(record.options)).index
                reaches = k is not None and _same_answer(record.options[k], record.answer)
        if reaches:
            support = {r for c in claims if not c.conclusion and c.grounded for r in c.refs}
            events = {e.id for e in ck.events}

            def supported(c: Claim) -> bool:
                refs = set(c.refs) & events if c.kind in ("action", "relation") else set(c.refs)
                return bool(refs & support)

            steps = [c for c in claims if not c.conclusion]
            # each answer clause is reached by one of its readings ("open": the state or the action)
            answer_clauses = [p.readings or [p.claims] for _, p in parsed if any(c.conclusion for c in p.claims)]
            reaches = any(c.grounded for c in steps) and all(
                any(all(c.grounded and supported(c) for c in r if not c.negated) for r in readings)
                for readings in answer_clauses)
    mean = sum(c.score for c in claims) / n if n else 0.0
    score = mean * (UNREACHED_FACTOR if reaches is False else 1.0)
    return FaithfulnessReport(
        score=round(max(0.0, min(1.0, score)), 6), grounded_fraction=round(n_ok / n, 6) if n else 0.0,
        n_claims=n, hallucinated_entities=halluc,
        temporal_iou=round(sum(spans) / len(spans), 6) if spans else None, reaches_answer=reaches,
        n_grounded=n_ok, stated_answer=stated, coverage=_coverage_of(claims, record, ck), claims=tuple(claims))


def _coverage_of(claims: list[Claim], record: "QRARecord | None", ck: _Checker) -> float | None:
    """Share of the graph entities and events the record's own rationale rests on (its steps'
    ``grounding``) that the rationale's grounded claims name; None without a record that has them."""
    if record is None:
        return None
    gold = {g for st in record.rationale for g in st.grounding if g in ck.objects or g in ck.event_ids}
    if not gold:
        return None
    named = {r for c in claims if c.grounded and not c.negated for r in c.refs}
    return round(len(gold & named) / len(gold), 6)


def _unknown_nouns(text: str, lex: _Lex, ck: _Checker) -> list[str]:
    present = set(ck.labels.values())
    out = []
    for m in _mentions(_words(text), lex):
        if m.kind == "noun" and not (ck.objs(m) or set()) and not set(m.values) & present:
            out.append(m.text)
    return out


# --- corruptions and calibration --------------------------------------------------------------


def _fmt(t: float) -> str:
    return f"{t:.1f}"


_SPAN_RE = re.compile(r"\bfrom (\d+(?:\.\d+)?) s to (\d+(?:\.\d+)?) s\b")
_POINT_RE = re.compile(r"\bat (\d+(?:\.\d+)?) s\b")


def corrupt_rationale(rationale: str, graph: STSG, kind: str, rng: random.Random) -> str | None:
    """A corrupted copy of ``rationale``, or None where ``kind`` does not apply to it.

    ``wrong_object``: one object named in an event or attribute statement becomes another object
    label (one of the graph's where it has another, else one of the lexicon's). ``wrong_time``: one
    quoted span (or time point) moves to a part of the video it does not overlap. ``wrong_order``:
    an order word flips (before/after, first/last, earlier/later), else the spans of two different
    events are swapped.
    """
    text = str(rationale)
    if kind == "wrong_object":
        labels = sorted({clean(o.label) for o in graph.objects})
        lex_labels = sorted(_shipped_vocab()["labels"] - set(labels))
        hits = []
        for s0, sent in _sentences_at(text):
            if _ANSWER_CUE.search(sent) or set(_words(sent)) & _NEG:
                continue  # the answer itself, and statements of absence, stay as they are
            for lab in labels:
                for m in re.finditer(rf"\bthe {re.escape(lab)}\b", sent):
                    hits.append((s0 + m.start() + 4, s0 + m.end(), lab))
        if not hits:
            return None
        s, e, lab = sorted(hits)[rng.randrange(len(hits))]
        person = is_person_label(lab)
        pool = [x for x in labels if x != lab and not (person and is_person_label(x))]
        lex_pool = [x for x in lex_labels if not (person and is_person_label(x))]
        new = rng.choice(pool) if pool and (rng.random() < 0.5 or not lex_pool) else rng.choice(lex_pool)
        return text[:s] + new + text[e:]
    if kind == "wrong_time":
        dur = float(graph.duration or 0.0)
        spans = list(_SPAN_RE.finditer(text))
        if spans:
            m = spans[rng.randrange(len(spans))]
            a, b = float(m.group(1)), float(m.group(2))
            length = max(b - a, 0.2)
            free = [x for x in (b + 1.0 + rng.random() * 2, a - length - 1.0 - rng.random() * 2)
                    if 0.0 <= x and x + length <= max(dur, b + length + 3.0)]
            if not free:
                return None
            na = rng.choice(free)
            return text[:m.start()] + f"from {_fmt(na)} s to {_fmt(na + length)} s" + text[m.end():]
        points = list(_POINT_RE.finditer(text))
        if points:
            m = points[rng.randrange(len(points))]
            a = float(m.group(1))
            na = a + 2.0 + rng.random() * 2 if a + 2.0 < max(dur, a + 4.0) else max(0.0, a - 3.0)
            return text[:m.start()] + f"at {_fmt(na)} s" + text[m.end():]
        return None
    if kind == "wrong_order":
        return _wrong_order(text, _build_lex(graph), rng)
    raise ValueError(f"unknown corruption {kind!r}; choose one of {', '.join(CORRUPTIONS)}")


def _sentences_at(text: str) -> list[tuple[int, str]]:
    """(offset, sentence) pairs."""
    out, pos = [], 0
    for part in re.split(r"(?<=[.!?])(\s+)", text):
        if part and not part.isspace():
            out.append((pos, part))
        pos += len(part)
    return out


def _event_key(clause: str, lex: _Lex) -> tuple:
    """What a clause says without its times: two events with equal keys say the same thing."""
    return tuple((m.kind, m.values) for m in _mentions(_words(clause), lex)
                 if m.kind in ("noun", "verb", "pred", "event", "value"))


def _wrong_order(text: str, lex: _Lex, rng: random.Random) -> str | None:
    """Flip an order word whose effect the text can show (``before`` / ``after`` of a window with a
    timed event after it; ``first`` / ``last`` of a listed set), else swap the times of two different
    events so each is said to happen when the other did."""
    sents = _sentences_at(text)
    cands: list[tuple[int, int, str]] = []
    for k, (s0, sent) in enumerate(sents):
        later_timed = any(_SPAN_RE.search(x) for _, x in sents[k + 1:])
        for m in re.finditer(r"\b(before|after)\b", sent):
            if later_timed and re.search(r"\blook\b|\bhappens?\b", sent):
                cands.append((s0 + m.start(), s0 + m.end(), "after" if m.group(1) == "before" else "before"))
        m = re.match(r"\s*the (first|last) of these\b", sent, re.I)
        if m and k > 0 and len(_SPAN_RE.findall(sents[k - 1][1])) >= 2:
            word = m.group(1).lower()
            cands.append((s0 + m.start(1), s0 + m.end(1), "last" if word == "first" else "first"))
    if cands:
        s, e, b = sorted(cands)[rng.randrange(len(cands))]
        return text[:s] + b + text[e:]
    times: list[tuple[re.Match, str]] = []
    for s0, sent in sents:
        pos = s0
        for clause in re.split(r"(;|\band\b)", sent):
            for m in list(_SPAN_RE.finditer(clause)) + list(_POINT_RE.finditer(clause)):
                times.append((pos + m.start(), pos + m.end(), m.group(0), _event_key(clause[:m.start()], lex)))
            pos += len(clause)
    pairs = [(i, j) for i in range(len(times)) for j in range(i + 1, len(times))
             if times[i][3] != times[j][3] and times[i][2] != times[j][2]
             and times[i][2].startswith("from") == times[j][2].startswith("from")]
    if not pairs:
        return None
    i, j = pairs[rng.randrange(len(pairs))]
    (a0, a1, at, _), (b0, b1, bt, _) = times[i], times[j]
    return text[:a0] + bt + text[a1:b0] + at + text[b1:]


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """Area under the ROC curve of scores separating ``positives`` from ``negatives`` (ties count 1/2)."""
    import numpy as np

    p, n = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    if p.size == 0 or n.size == 0:
        return None
    greater = (p[:, None] > n[None, :]).sum()
    ties = (p[:, None] == n[None, :]).sum()
    return float((greater + 0.5 * ties) / (p.size * n.size))


def calibrate(records: Iterable["QRARecord"], graphs: dict[str, STSG], *, seed: int = 0,
              kinds: Sequence[str] = CORRUPTIONS) -> dict[str, Any]:
    """Score each record's own rationale and its corruptions; mean scores and the AUC separating the
    originals from each kind of corruption (and from all)."""
    rng = random.Random(seed)
    orig: list[float] = []
    bad: dict[str, list[float]] = {k: [] for k in kinds}
    for rec in records:
        g = graphs.get(rec.video_id)
        if g is None:
            continue
        text = rec.rationale_text
        orig.append(score_rationale(text, g, rec).score)
        for k in kinds:
            c = corrupt_rationale(text, g, k, rng)
            if c is not None and c != text:
                bad[k].append(score_rationale(c, g, rec).score)
    all_bad = [s for v in bad.values() for s in v]
    mean = lambda xs: round(sum(xs) / len(xs), 6) if xs else None  # noqa: E731
    return {"n": len(orig), "original_mean": mean(orig), "original_min": min(orig) if orig else None,
            "by_kind": {k: {"n": len(v), "mean": mean(v), "auc": auc(orig, v)} for k, v in bad.items()},
            "auc": auc(orig, all_bad)}
