"""Graph-guided Q/R/A generation: stream graphs, sample questions to a step / type mix, verify,
balance, add distractors, and write ``qa.jsonl`` plus ``summary.json``."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from stepkit.data.record import QRARecord
from stepkit.errors import ConfigError, StepkitError
from stepkit.graph.types import STSG
from stepkit.reason import draw
from stepkit.reason.lexicon import clean, conflicts, is_person_label, lexicon, phrases
from stepkit.reason.ops import (ExecError, GraphContext, ProgramError, answer_text, check_program, run_values,
                                step_count)
from stepkit.reason.plausibility import PlausibilityPrior, load_prior
from stepkit.reason.quality import DEFAULT_MARGIN, margin_problems, missing_references, noop_steps, run_all
from stepkit.reason.render import answer_sentence, rationale
from stepkit.reason.sampler import CHOICE_VARIANTS, MIN_STEPS, TYPES, YESNO_SLACK, Candidate, Reject, Sampler

GENERATOR_VERSION = "reason/1"
DEFAULT_STEPS = "1:0.2,2:0.3,3:0.3,4:0.2"
MAX_STEPS = 8
# Balance: within a (type, steps) bucket no answer may pass this share (checked online, so it
# holds at every size past the small-bucket allowance); yes/no counts stay within YESNO_SLACK.
ANSWER_CAP = 0.345
# Counts have more values than a question has options, and the smallest ones ("0", "1") would
# otherwise be a good bet whenever offered: no count passes this share of its bucket.
COUNT_CAP = 0.28
SMALL_BUCKET_ALLOWANCE = 3
# Inside one question skeleton (the question with its content words masked) no answer may pass
# this share, so a learner reading only the wording stays near chance (AGQA balances the same way).
SKELETON_CAP = 0.30
# Share of multi-step questions anchored in time (before / after / while an event) the generator
# holds: an unanchored candidate of 3+ steps is passed over while the share is below it.
ANCHOR_SHARE = 0.6
# A graph whose record slots fail this many times in a row has no more questions to give.
GIVE_UP_AFTER = 5
# How far above its requested share a step count may go when a graph cannot give the one the
# mix needs most (the mix then still holds within a few points).
STEP_SLACK = 0.01
DEAD_AFTER = 6
# Failures in a row after which a (type, steps) pair is no longer tried first for a graph's slots:
# the type lagging furthest behind its share over the whole run is often one this graph has little
# of, and asking for it first slot after slot cost many attempts for little gain in the type mix
# (benchmarks/generate.md, seventh session).
LAGGING_RETRIES = 1
# Attempts of a slot that go to the lagging type before types are drawn by weight.
LAGGING_ATTEMPTS = 1
# Types whose questions are never anchored in time (a comparison states its two events).
UNANCHORED_TYPES = frozenset({"comparison"})


def parse_steps(spec: str) -> dict[int, float]:
    """``"1:0.2,2:0.3"`` -> ``{1: 0.4, 2: 0.6}`` (weights normalised); ``"3"`` means all 3-step."""
    out: dict[int, float] = {}
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        k, _, w = part.partition(":")
        try:
            n, weight = int(k), float(w) if w else 1.0
        except ValueError:
            raise ConfigError(f"--steps: cannot read {part!r}; write STEPS:WEIGHT pairs like 1:0.2,2:0.3") from None
        if not 1 <= n <= MAX_STEPS:
            raise ConfigError(f"--steps: step count {n} outside 1..{MAX_STEPS}")
        if weight < 0:
            raise ConfigError(f"--steps: negative weight for {n} steps")
        out[n] = out.get(n, 0.0) + weight
    total = sum(out.values())
    if total <= 0:
        raise ConfigError(f"--steps: {spec!r} gives no positive weight")
    return {k: v / total for k, v in sorted(out.items())}


def parse_types(spec: str | Iterable[str] | None) -> dict[str, float]:
    """``"attribute,relation:2"`` or a list of names -> normalised weights; None or ``all``: every type."""
    if spec is None:
        parts = ["all"]
    elif isinstance(spec, str):
        parts = [p for p in spec.split(",") if p.strip()]
    else:
        parts = [p for s in spec for p in str(s).split(",") if p.strip()]
    out: dict[str, float] = {}
    for part in parts:
        name, _, w = part.strip().partition(":")
        names = TYPES if name == "all" else (name,)
        if name != "all" and name not in TYPES:
            raise ConfigError(f"--types: unknown question type {name!r}; choose from {', '.join(TYPES)} or all")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise ConfigError(f"--types: bad weight in {part!r}") from None
        for n in names:
            out[n] = out.get(n, 0.0) + weight
    total = sum(out.values())
    if total <= 0:
        raise ConfigError("--types: no question type selected")
    return {k: v / total for k, v in out.items()}


def parse_excess_types(spec: str) -> frozenset[str]:
    """``"action"``, ``"all"``, ``"none"`` or comma-separated types -> the types the answer cap applies to."""
    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    if parts == ["none"]:
        return frozenset()
    if "all" in parts:
        return frozenset(TYPES)
    bad = [p for p in parts if p not in TYPES]
    if bad or not parts:
        raise ConfigError(f"--answer-excess-types: unknown question type {(bad or [spec])[0]!r}; "
                          f"choose from {', '.join(TYPES)}, all or none")
    return frozenset(parts)


@dataclass
class GenerateConfig:
    """Settings of one generation run (saved in ``summary.json``)."""

    per_video: int = 50
    steps: str = DEFAULT_STEPS
    types: str = "all"
    seed: int = 0
    options: int = 4
    attempts_per_record: int = 20
    validate: bool | str = True  # True: quick checks; "full": the JSON Schema too; False: none
    margin: float = DEFAULT_MARGIN  # seconds by which every order a question relies on must be decided
    # how many answers more than chance a value may win where it is offered, in its slot and over
    # all slots of its kind (at least; 10% of its chance count where that is more), in questions of
    # the types of ``answer_excess_types``; None: no such cap (see Distractors.options)
    answer_excess: float | None = 1.0
    # "action" (the default: verb–object typicality makes action options a text-only bet where the
    # corpus is real annotation; measured in docs/reasoning.md), "all", "none", or types, comma-separated
    answer_excess_types: str = "action"
    videos_dir: str | None = None  # where the graphs' videos are (default: as the graphs name them)
    paths: str = "absolute"  # record video paths: absolute, or relative to qa.jsonl's folder

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


_NON_WORD = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=16384)
def _norm(text: str) -> str:
    # cached: the same option values are tested against question after question
    return " " + _NON_WORD.sub(" ", text.lower()).strip() + " "


def answer_in_question(question: str, answer: str, _q: tuple[str, str] | None = None) -> bool:
    """Whether the answer's words appear as a phrase in the question (yes/no and numbers exempt).
    ``_q``: the question lower-cased and normalised, when the caller tests many answers."""
    if answer in ("yes", "no") or answer.isdigit():
        return False
    a = _norm(answer)
    # Every word of the normalised question is a run of the lower-cased question, so an answer
    # whose first word is not even a substring cannot match (the common case, without the regex).
    head = a.split(None, 1)
    if not head:
        return False
    low, normed = _q if _q is not None else (question.lower(), None)
    return head[0] in low and a in (normed if normed is not None else _norm(question))


def _answer_event_in_reference(cand: Candidate) -> bool:
    """Whether the event the answer reads out is also an edge a reference in the question leans on
    ("what did the man who picked up the book do first?" -> "pick up the book")."""
    b = cand.builder
    last = b.nodes[-1]
    if last["op"] != "query" or not last["in"]:
        return False
    item = b.values[last["in"][0]]
    if not isinstance(item, str) or item not in b.ctx.events:
        return False
    return any(n["op"] == "hop" and item in b.ids[i] for i, n in enumerate(b.nodes))


@lru_cache(maxsize=1)
def _template_words() -> frozenset[str]:
    words: set[str] = {"the", "a", "an", "some", "any", "someone", "anyone", "something", "anything", "who", "what",
                       "which", "that", "was", "were", "is", "are", "did", "do", "does", "of", "in", "video"}
    ph = phrases()
    texts = [t for opts in ph["questions"].values() for t in opts] + list(ph["anchors"].values())
    for t in texts:
        words.update(w for w in _WORD.findall(re.sub(r"\{[^}]*\}", " ", t).lower()))
    return frozenset(words)


_WORD = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=8192)
def skeleton(question: str) -> str:
    """The question with its content words masked: every word that is not template wording becomes
    ``_`` (runs collapse), so "What did the man pick up?" and "What did the woman open?" share one."""
    keep = _template_words()
    out: list[str] = []
    for w in _WORD.findall(question.lower()):
        if w in keep:
            out.append(w)
        elif not out or out[-1] != "_":
            out.append("_")
    return " ".join(out)


def _reuses_asked_event(cand: Candidate, sampler: Sampler) -> bool:
    """Whether a reference or an anchor leans on an event the question asks about (or its twin,
    the same happening annotated as an action and as the relation it implies)."""
    asked: set[str] = set()
    for e in cand.asked:
        if isinstance(e, str):
            asked |= sampler.twins.get(e, {e})
    if not asked:
        return False
    b = cand.builder
    refs = set(cand.ref_nodes)
    for i, n in enumerate(b.nodes):
        if (i in refs or n["op"] == "localize") and any(x in asked for x in b.ids[i]):
            return True
    return False


@lru_cache(maxsize=16384)
def _slot_key(qtype: str, slot: tuple[str | None, str | None]) -> str:
    """The balance key of a question type's slot (cached: the sampler asks it of every candidate)."""
    return f"slot|{qtype}|{slot[0] or ''}|{slot[1] or ''}"


_NO_ANSWERS: Counter = Counter()  # read-only: the answers of a key nothing was kept under


class Balancer:
    """Online answer balancing inside each (type, steps) bucket and each question skeleton."""

    def __init__(self, n_options: int = 4) -> None:
        self.counts: dict[tuple[str, int], Counter] = defaultdict(Counter)
        self.skeletons: dict[str, Counter] = defaultdict(Counter)
        self.skeleton_cap = max(SKELETON_CAP, 1.0 / max(n_options, 1) + 0.05)

    def accepts_skeleton(self, skel: str, answer: str | None, yesno: bool) -> bool:
        """Whether adding ``answer`` keeps the skeleton's (or the slot's) answers balanced."""
        # (.get: probing a key must not add an empty counter per key the sampler asks about)
        c = self.skeletons.get(skel, _NO_ANSWERS)
        if yesno:
            other = "no" if answer == "yes" else "yes"
            return c.get(answer, 0) + 1 - c.get(other, 0) <= YESNO_SLACK
        k = c.get(answer, 0) + 1
        if k <= SMALL_BUCKET_ALLOWANCE:  # within the allowance whatever the total (the common case)
            return True
        return k <= max(SMALL_BUCKET_ALLOWANCE, self.skeleton_cap * (sum(c.values()) + 1))

    def want_yesno(self, bucket: tuple[str, int]) -> str:
        """The yes/no answer this bucket needs next."""
        c = self.counts[bucket]
        return "yes" if c["yes"] <= c["no"] else "no"

    def accepts(self, bucket: tuple[str, int], answer: str, yesno: bool) -> bool:
        """Whether adding ``answer`` keeps the bucket balanced."""
        c = self.counts[bucket]
        if yesno:
            other = "no" if answer == "yes" else "yes"
            return c.get(answer, 0) + 1 - c.get(other, 0) <= YESNO_SLACK
        k = c.get(answer, 0) + 1
        if k <= SMALL_BUCKET_ALLOWANCE:
            return True
        return k <= max(SMALL_BUCKET_ALLOWANCE, self._cap(bucket) * (sum(c.values()) + 1))

    @staticmethod
    def _cap(bucket: tuple[str, int]) -> float:
        return COUNT_CAP if bucket[0] == "counting" else ANSWER_CAP

    def saturated(self, bucket: tuple[str, int]) -> frozenset[str]:
        """Answers the bucket cannot take now."""
        c = self.counts[bucket]
        cap = max(SMALL_BUCKET_ALLOWANCE, self._cap(bucket) * (sum(c.values()) + 1))
        return frozenset(a for a, k in c.items() if k + 1 > cap)

    def add(self, bucket: tuple[str, int], answer: str, skel: str | None = None) -> None:
        """Record an accepted answer."""
        self.counts[bucket][answer] += 1
        if skel is not None:
            self.skeletons[skel][answer] += 1


def _same_sort(kind: str, answer: str):
    """A filter keeping distractors of the answer's sort (people for people, things for things)."""
    if kind != "label":
        return lambda v: True
    person = is_person_label(answer)
    return lambda v: is_person_label(v) == person


# Attributes whose values fit any object (any thing can be red or small); others ("state",
# "material") are offered only with values seen on objects of the same noun.
GENERIC_ATTRIBUTES = frozenset({"color", "colour", "size", "shirt", "shirt color"})
# A value offered as a distractor this many times more than 1 in n of its offers would allow
# (over all slots of its kind) is not offered again until it has been the answer: else a value
# that is never right ("tidy up", "vacuum") is eliminable from the text alone.
DISTRACTOR_SLACK = 4
# ``GenerateConfig.answer_excess``, as a share of a value's chance count where that is more.
ANSWER_EXCESS_SHARE = 0.1
MIN_OPTIONS = 2


class Distractors:
    """Multiple-choice options. Distractors are, first, *compositional conflicts* (values of the
    same slot true elsewhere in this video: another object the verb was done to, another action
    of the same person), then values of the same kind from the corpus; each must be plausible in
    the question's slot (``plausibility.py``; attribute values seen on that noun), conflict with
    neither the answer nor another option (``conflicts.yaml``), and be false in the graph (not
    among the values the graph makes true for the question, read through entailments). Among
    eligible values, those offered less often than they are the answer *in the same slot* come
    first, so that no value is a better bet than another from the wording alone. Where fewer
    plausible values exist than ``n_options - 1``, fewer options are offered (at least 2)."""

    def __init__(self, rng: random.Random, n_options: int = 4, prior: PlausibilityPrior | None = None,
                 answer_excess: float | None = None, excess_types: frozenset[str] = frozenset(TYPES)):
        self.rng = rng
        self.n = n_options
        self.prior = prior
        self.answer_excess = answer_excess
        self.excess_types = excess_types
        # pairs seen in the corpus itself: a distractor must be a value this slot really takes
        # somewhere (one only the prior knows is rarely an answer, so a text-only learner could
        # rule it out); the shipped prior judges the pairs of "no" questions
        self.corpus = PlausibilityPrior()
        self.subjects: dict[str, set[str]] = defaultdict(set)  # predicate -> nouns seen as its subject
        self.pool: dict[str, Counter] = defaultdict(Counter)
        self.attr_nouns: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.pred_sorts: dict[str, set[bool]] = defaultdict(set)
        self.fallback = lexicon()["fallback"]
        self._positions: list[int] = []
        self.position_counts: Counter = Counter()
        self.small_positions: Counter = Counter()
        self.as_answer: Counter = Counter()
        self.as_option: Counter = Counter()
        # (slot key, value) -> the answers a guess of that value would win by chance: the sum of
        # 1 / len(options) over the records offering it (as the answer or not)
        self.expected: dict[tuple[str, str], float] = {}
        self.count_ranks: Counter = Counter()
        self._cache: dict[str, list[str]] = {}

    def observe(self, ctx: GraphContext) -> None:
        """Add a graph's vocabulary to the pools."""
        self._cache = {}
        self.corpus.add_graph(ctx.graph, targets=False)  # "put the cup down on the bed": the bed is no thing put down
        for o in ctx.graph.objects:
            self.pool["label"][ctx.label(o.id)] += 1
            for a in o.attributes:
                self.pool[f"value:{a.name}"][clean(a.value)] += 1
                self.attr_nouns[(a.name, ctx.label(o.id))].add(clean(a.value))
        for e in ctx.graph.actions:
            self.pool["verb"][ctx.verb(e.verb)] += 1
            self.pool["action"][ctx.action_phrase(e.id)] += 1
        for r in ctx.graph.relations:
            self.pool["predicate"][clean(r.predicate)] += 1
            if r.subject in ctx.objects:
                self.subjects[clean(r.predicate)].add(ctx.label(r.subject))
            self.pred_sorts[clean(r.predicate)].add(is_person_label(ctx.graph.object_map()[r.subject].label)
                                                    if r.subject in ctx.objects else False)

    def _everything(self, kind: str) -> list[str]:
        got = self._cache.get(kind)
        if got is None:
            got = self._cache[kind] = sorted(set(self.pool.get(kind, ())) | set(self._fallback(kind)))
        return got

    def _fallback(self, kind: str) -> list[str]:
        if kind.startswith("value:"):
            name = kind.split(":", 1)[1]
            if name not in GENERIC_ATTRIBUTES:
                return []
            return [str(v) for v in self.fallback.get(name, [])]  # never mix in values of other attributes
        # labels, verbs, predicates and actions: only what the corpus shows (a value the corpus
        # never has as an answer would be eliminable from the text alone)
        return []

    def _plausible(self, cand: Candidate, v: str) -> bool:
        kind = cand.answer_kind
        if kind.startswith("value:"):
            name = kind.split(":", 1)[1]
            return name in GENERIC_ATTRIBUTES or v in self.attr_nouns.get((name, cand.slots.get("noun", "")), ())
        if kind == "predicate" and cand.slots.get("subj_person") is not None:
            sorts = self.pred_sorts.get(v)
            if sorts is not None and (cand.slots["subj_person"] == "1") not in sorts:
                return False
        pv, other = cand.slot
        if kind == "label" and cand.variant == "relation_subject":
            return v in self.subjects.get(cand.slots.get("pred", ""), ())
        if kind == "label" and pv is not None:
            return self.corpus.is_plausible(pv, v)
        if kind in ("verb", "predicate") and other is not None:
            return self.corpus.is_plausible(v, other)
        return True

    @staticmethod
    def _slot_key(cand: Candidate) -> str:
        return f"{cand.answer_kind}|{cand.slot[0] or cand.slot[1] or cand.variant}"

    def _score(self, key: str, v: str) -> float:
        # values that are answers in this slot more often than 1 in n of their offers go first;
        # the same over all slots of the answer's kind (a text-only learner also sees the value
        # alone: "food" or "0" must not be a better bet than any other value anywhere)
        kind = key.split("|", 1)[0]
        return (self.as_answer[(key, v)] * (self.n - 1) - self.as_option[(key, v)]
                + self.as_answer[(kind, v)] * (self.n - 1) - self.as_option[(kind, v)])

    def options(self, cand: Candidate) -> tuple[list[str], int] | str | None:
        """Options and the answer's index; None when too few distractors exist, and
        ``"answer-over-offered"`` when the answer would be the answer too often where it is offered."""
        ans = cand.answer
        kind = cand.answer_kind
        key = self._slot_key(cand)
        picks: list[str] = []
        if cand.variant in CHOICE_VARIANTS:
            # "which first, A or B?": the options are A and B
            picks = [c for c in cand.conflicts if c != ans][:1]
        elif kind == "count":
            # The answer's rank among the numbers offered is balanced (else "the second smallest"
            # would be a good bet), and so is how often each number is the answer when offered.
            # Small counts are the common answers, so always offering the numbers just above a
            # count would make "the smallest number" (and "0", "1") a good bet: for each rank the
            # answer could take, the best-owed numbers below and above it are found, and the rank
            # whose set is most owed wins (ties: the rank used least).
            k = int(ans)
            ranks = list(range(0, min(k, self.n - 1) + 1))
            draw.shuffle(self.rng, ranks)
            lo, hi = list(range(max(0, k - 5), k)), list(range(k + 1, k + 6))
            draw.shuffle(self.rng, lo)
            draw.shuffle(self.rng, hi)
            score_of = {x: self._score(key, str(x)) for x in lo + hi}  # (nothing changes them meanwhile)
            lo.sort(key=lambda x: -score_of[x])
            hi.sort(key=lambda x: -score_of[x])
            low_rank = min(self.count_ranks[r] for r in ranks)

            def owed(r: int) -> float:
                chosen = lo[:r] + hi[: self.n - 1 - r]
                return sum(score_of[x] for x in chosen) - (self.count_ranks[r] - low_rank)

            rho = max(ranks, key=owed)
            picks = [str(x) for x in sorted(lo[:rho] + hi[: self.n - 1 - rho])]
        else:
            fits = _same_sort(kind, ans)
            truth = cand.also_true
            # the answer is never in an open question, so an option the question names would be
            # eliminable from the text alone
            said = cand.question
            said_q = (said.lower(), _norm(said))

            as_answer, as_option, m = self.as_answer, self.as_option, self.n - 1

            def ok(v: str) -> bool:
                # ``truth`` already holds the synonyms, hypernyms and entailments of what is true
                # (cheap tests first)
                return (v != ans and v not in truth
                        and as_answer.get((kind, v), 0) * m - as_option.get((kind, v), 0) > -DISTRACTOR_SLACK
                        and as_answer.get((key, v), 0) * m - as_option.get((key, v), 0) > -DISTRACTOR_SLACK
                        and fits(v) and not conflicts(v, ans) and not answer_in_question(said, v, said_q)
                        and not any(conflicts(v, p) for p in picks) and self._plausible(cand, v))

            def score(v: str) -> float:
                return -(as_answer.get((key, v), 0) * m - as_option.get((key, v), 0)
                         + as_answer.get((kind, v), 0) * m - as_option.get((kind, v), 0))

            def take(values: list[str], unique: bool = False) -> None:
                if len(picks) >= m:
                    return
                vals = values if unique else sorted(set(values))
                if len(vals) > 24:  # a seeded sample of a big vocabulary is enough to choose from
                    vals = self.rng.sample(vals, 24)
                elif vals is values:
                    vals = list(values)  # shuffled below: never the cached vocabulary itself
                draw.shuffle(self.rng, vals)
                vals.sort(key=score)
                for v in vals:
                    if len(picks) >= self.n - 1:
                        return
                    if ok(v):
                        picks.append(v)

            take([c for c in cand.near if c != ans])
            take([c for c in cand.conflicts if c != ans])
            take(self._everything(kind), unique=True)
        if len(picks) < MIN_OPTIONS - 1:
            return None
        n = len(picks[: self.n - 1]) + 1
        # A value that is the answer much more often than chance where it is offered ("hold" in
        # "how did the person interact with the cup?": true of nearly every object, so rarely a
        # distractor) is a bet a text-only learner wins: with ``answer_excess`` set, such a record
        # waits until the value has been offered enough without being right (checked before any
        # balance state changes). Counts are exempt: their options are built around the answer,
        # with its rank balanced.
        if self.answer_excess is not None and kind != "count" and cand.type in self.excess_types:
            for where in (key, kind):  # in its slot, and over its kind (the option's words alone)
                chance = self.expected.get((where, ans), 0.0) + 1.0 / n
                if self.as_answer[(where, ans)] + 1 - chance > max(self.answer_excess, ANSWER_EXCESS_SHARE * chance):
                    return "answer-over-offered"
        if kind == "count":
            self.count_ranks[rho] += 1
        if n == self.n:
            if not self._positions:
                self._positions = self.rng.sample(range(self.n), self.n)
            pos = self._positions.pop()
        else:
            # fewer options than usual ("A or B?"): the answer's place is balanced per list length
            # too, so that "the first option" is no bet
            order = list(range(n))
            draw.shuffle(self.rng, order)
            pos = min(order, key=lambda j: self.small_positions[(n, j)])
            self.small_positions[(n, pos)] += 1
        opts = picks[: self.n - 1]
        opts.insert(pos, ans)
        self.position_counts[pos] += 1
        return opts, pos

    def commit(self, cand: Candidate, options: list[str]) -> None:
        """Count an accepted record's options (for the value balance)."""
        key = self._slot_key(cand)
        kind = key.split("|", 1)[0]
        self.as_answer[(key, cand.answer)] += 1
        self.as_answer[(kind, cand.answer)] += 1
        if self.answer_excess is not None:  # (read only by that cap)
            share = 1.0 / len(options)
            expected = self.expected
            for o in options:
                expected[(key, o)] = expected.get((key, o), 0.0) + share
                expected[(kind, o)] = expected.get((kind, o), 0.0) + share
        for o in options:
            if o != cand.answer:
                self.as_option[(key, o)] += 1
                self.as_option[(kind, o)] += 1


def _pick_steps(targets: dict[int, float], counts: Counter, total: int) -> int:
    """The step count furthest below its requested share."""
    return max(targets, key=lambda s: (targets[s] * (total + 1) - counts[s], -s))


def _stable_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


class Generator:
    """Turns graphs into verified, balanced Q/R/A records; keeps only small global state."""

    def __init__(self, config: GenerateConfig):
        self.cfg = config
        self.step_targets = parse_steps(config.steps)
        self.type_weights = parse_types(config.types)
        self.balancer = Balancer(config.options or 4)
        # the shipped prior, extended with the pairs of every graph seen so far (the corpus)
        self.prior = load_prior()
        self.distractors = Distractors(random.Random(_stable_seed(config.seed, "options")), config.options or 4,
                                       self.prior, config.answer_excess, parse_excess_types(config.answer_excess_types))
        self.anchored_multi = 0
        self.multi = 0
        self.phrase_counts: Counter = Counter()
        self.step_counts: Counter = Counter()
        self.type_counts: Counter = Counter()
        self.bucket_counts: Counter = Counter()
        self.drops: Counter = Counter()
        self.drops_by_type: dict[str, Counter] = defaultdict(Counter)
        self.unfilled = 0
        self.total = 0
        self._feasible_cache: dict[int, tuple[list[str], list[float]]] = {}
        self.labels: set[str] = set(lexicon()["fallback"]["label"])
        self.verbs: set[str] = set()

    def records(self, graph: STSG, graph_hash: str = "") -> list[QRARecord]:
        """Up to ``per_video`` records for one graph."""
        cfg = self.cfg
        ctx = GraphContext(graph, natural=True)
        self.prior.add_graph(graph)
        self.distractors.observe(ctx)
        self.labels.update(clean(o.label) for o in graph.objects)
        self.verbs.update(a.verb for a in graph.actions)
        rng = random.Random(_stable_seed(cfg.seed, graph.video_id))
        sampler = Sampler(ctx, rng, label_pool=sorted(self.labels), verb_pool=sorted(self.verbs), prior=self.prior)
        sampler.phrase_counts = self.phrase_counts
        bal = self.balancer
        sampler.slot_ok = lambda qtype, slot, answer: bal.accepts_skeleton(_slot_key(qtype, slot), answer, False)
        sampler.balance_ok = bal.accepts_skeleton

        def yes_lean(qtype: str, slot: tuple) -> int:
            c = bal.skeletons.get(_slot_key(qtype, slot), _NO_ANSWERS)
            return c.get("yes", 0) - c.get("no", 0)

        sampler.yes_lean = yes_lean
        seen_programs: dict[tuple, list[list[dict[str, Any]]]] = {}
        seen_questions: set[str] = set()
        out: list[QRARecord] = []
        weights, type_counts = self.type_weights, self.type_counts
        misses = 0
        # (type, steps) -> failed attempts in a row on this graph: a pair that keeps failing has
        # nothing left to give here, and is not drawn again for this graph
        failing: Counter = Counter()
        for _slot in range(cfg.per_video):
            if misses >= GIVE_UP_AFTER:
                # this graph has run out of honest questions of the step counts the mix allows now
                self.unfilled += 1
                continue
            rec = None
            # The step count furthest below its share first; where this graph has no honest
            # question of it, the next ones, as long as their share stays within STEP_SLACK.
            n1 = self.total + 1
            order = sorted(self.step_targets, key=lambda s: (-(self.step_targets[s] * n1 - self.step_counts[s]), s))
            for k, steps in enumerate(order):
                if k and self.step_counts[steps] + 1 > self.step_targets[steps] * n1 + max(STEP_SLACK * n1, 2):
                    continue
                budget = cfg.attempts_per_record if k == 0 else max(cfg.attempts_per_record // 3, 1)
                rec = self._fill_slot(sampler, ctx, graph, graph_hash, steps, budget, failing, rng, len(out),
                                      seen_programs, seen_questions)
                if rec is not None or k >= 2:
                    break
            if rec is None:
                self.unfilled += 1
                misses += 1
                continue
            misses = 0
            out.append(rec)
        return out

    def _fill_slot(self, sampler: Sampler, ctx: GraphContext, graph: STSG, graph_hash: str, steps: int, budget: int,
                   failing: Counter, rng: random.Random, index: int, seen_programs, seen_questions) -> QRARecord | None:
        """One record of ``steps`` steps within ``budget`` attempts, or None."""
        weights, type_counts = self.type_weights, self.type_counts
        feasible, cum = self._feasible(steps)
        fails = failing.get  # (.get: a Counter's missing key costs a Python-level __missing__ call)
        if any(fails((t, steps), 0) >= DEAD_AFTER for t in feasible):
            alive = [t for t in feasible if fails((t, steps), 0) < DEAD_AFTER]
            feasible, cum = alive, list(itertools.accumulate(weights[t] for t in alive))
        if not feasible:
            return None
        # First try the type furthest below its requested share (so the type mix follows the
        # request where the graphs allow), then draw types by weight.
        n1 = self.total + 1
        # (a type that has just failed on this graph is not forced first again: the lagging type
        # of the whole run is often one this graph has little of)
        fresh = [t for t in feasible if fails((t, steps), 0) < LAGGING_RETRIES] or feasible
        lagging = max(fresh, key=lambda t: (weights[t] * n1 - type_counts[t], t))
        need_anchor = steps >= 3 and self.anchored_multi < ANCHOR_SHARE * (self.multi + 1)
        sampler.force_anchor = need_anchor
        if need_anchor:
            # while anchors are short, only types that can still give one are drawn (but the last attempt)
            anchorable = [t for t in feasible if t not in UNANCHORED_TYPES and fails(("unanchored", t, steps), 0) < 2]
            a_cum = list(itertools.accumulate(weights[t] for t in anchorable))
        for attempt in range(budget):
            late = attempt >= budget - 1
            if need_anchor and not late:
                if not anchorable:
                    continue
                qtype = lagging if attempt < LAGGING_ATTEMPTS and lagging in anchorable else draw.choice_cum(rng, anchorable, a_cum)
                if fails(("unanchored", qtype, steps), 0) >= 2:
                    continue
            else:
                qtype = lagging if attempt < LAGGING_ATTEMPTS else draw.choice_cum(rng, feasible, cum)
            bucket = (qtype, steps)
            want: str | frozenset[str] | None
            if qtype == "existence":
                want = self.balancer.want_yesno(bucket)
            elif qtype == "counting":
                want = self.balancer.saturated(bucket)
            else:
                want = None
            try:
                cand = sampler.sample(qtype, steps, want)
            except (Reject, ExecError) as exc:
                reason = exc.reason  # (Reject.reason is a property: read it once)
                self.drops[reason] += 1
                self.drops_by_type[qtype][reason] += 1
                failing[(qtype, steps)] += 1
                continue
            if need_anchor and not cand.anchored and not late:
                self._drop(cand, "anchor-quota")
                failing[("unanchored", qtype, steps)] += 1
                continue
            rec = self._finish(cand, ctx, graph, graph_hash, steps, index, seen_programs, seen_questions, sampler)
            if rec is not None:
                failing[(qtype, steps)] = 0
                return rec
            failing[(qtype, steps)] += 1
        return None

    def _feasible(self, steps: int) -> tuple[list[str], list[float]]:
        """The types a question of ``steps`` steps can have, and their cumulative weights."""
        got = self._feasible_cache.get(steps)
        if got is None:
            feasible = [t for t in self.type_weights if MIN_STEPS[t] <= steps]
            got = self._feasible_cache[steps] = (feasible, list(itertools.accumulate(self.type_weights[t] for t in feasible)))
        return got

    def _drop(self, cand: Candidate, reason: str) -> None:
        self.drops[reason] += 1
        self.drops_by_type[cand.type][reason] += 1

    def _finish(self, cand: Candidate, ctx: GraphContext, graph: STSG, graph_hash: str, steps: int, index: int,
                seen_programs: dict[tuple, list[list[dict[str, Any]]]], seen_questions: set[str],
                sampler: Sampler | None = None) -> QRARecord | None:
        bucket = (cand.type, steps)
        if cand.variant not in CHOICE_VARIANTS and answer_in_question(cand.question, cand.answer):
            self._drop(cand, "answer-in-question")
            return None
        if _answer_event_in_reference(cand) or (sampler is not None and _reuses_asked_event(cand, sampler)):
            self._drop(cand, "reused-event")
            return None
        program = cand.builder.nodes
        # Deduplication by program: the sampler builds every program in one normal form (operators
        # in evaluation order), so equal questions give equal programs. A cheap signature narrows
        # the programs to compare as data to the few with the same length, answer and last operator.
        key = (len(program), cand.answer, program[-1]["op"])
        same = seen_programs.get(key)
        if same is not None and program in same:
            self._drop(cand, "duplicate-program")
            return None
        if cand.question in seen_questions:
            self._drop(cand, "duplicate-question")
            return None
        yesno = cand.answer_kind == "yesno"
        if not self.balancer.accepts(bucket, cand.answer, yesno):
            self._drop(cand, "unbalanced-answer")
            return None
        skel = skeleton(cand.question)
        if not self.balancer.accepts_skeleton(skel, cand.answer, yesno):
            self._drop(cand, "unbalanced-skeleton")
            return None
        # ...and inside its slot (the verb / predicate / object the question names): "how many
        # people" is mostly 1, "what was the cup on" mostly a table, unless held in balance
        slot_key = _slot_key(cand.type, cand.slot)
        if cand.slot != (None, None) and not self.balancer.accepts_skeleton(slot_key, cand.answer, yesno):
            self._drop(cand, "unbalanced-slot")
            return None
        balances = [cand.balance] if isinstance(cand.balance, tuple) else list(cand.balance or ())
        if any(not self.balancer.accepts_skeleton(*bal) for bal in balances):
            self._drop(cand, "unbalanced-slot")
            return None
        # Honesty: every step narrows something (ablation), every time decision has its margin,
        # every reference the program uses is said in the question.
        values = cand.builder.values
        if noop_steps(program, ctx, values, memo=ctx.results):
            self._drop(cand, "no-op-step")
            return None
        shaky = margin_problems(program, ctx, self.cfg.margin, values)
        if shaky:
            self._drop(cand, shaky[0])
            return None
        if missing_references(program, cand.question):
            self._drop(cand, "reference-missing")
            return None
        # Verification: validate the program as data and re-run it from scratch (no shared state
        # with the builder); the answer must come out the same.
        try:
            answer = answer_text(run_values(check_program(program), ctx), ctx)
        except (ExecError, ProgramError):
            self._drop(cand, "verify-failed")
            return None
        if answer != cand.answer or step_count(program) != steps:
            self._drop(cand, "verify-mismatch")
            return None
        options: list[str] | None = None
        answer_index: int | None = None
        if self.cfg.options and not yesno:
            got = self.distractors.options(cand)
            if got is None or isinstance(got, str):
                self._drop(cand, got or "too-few-distractors")
                return None
            options, answer_index = got
        seen_programs.setdefault(key, []).append(program)
        seen_questions.add(cand.question)
        if cand.once is not None and sampler is not None:
            sampler.done.add(cand.once)
        self.balancer.add(bucket, cand.answer, skel)
        if cand.slot != (None, None):
            self.balancer.skeletons[slot_key][cand.answer] += 1
        for bal in balances:
            self.balancer.skeletons[bal[0]][bal[1]] += 1
        if sampler is not None:
            sampler.kept(cand.type)  # this type's balance and sampler.done changed: its pools are stale
        if options is not None:
            self.distractors.commit(cand, options)
        if steps > 1:
            self.multi += 1
            self.anchored_multi += cand.anchored
        if cand.phrasing is not None:
            self.phrase_counts[cand.phrasing] += 1
        self.step_counts[steps] += 1
        self.type_counts[cand.type] += 1
        self.bucket_counts[f"{cand.type}/{steps}"] += 1
        self.total += 1
        return QRARecord(
            id=f"{graph.video_id}-{index:03d}",
            video_id=graph.video_id,
            question=cand.question,
            answer=cand.answer,
            steps=steps,
            type=cand.type,
            rationale=rationale(ctx, cand.builder.trace(), cand.answer),
            answer_sentence=answer_sentence(cand.variant, cand.slots, cand.answer),
            options=options,
            answer_index=answer_index,
            program=program,  # the builder's own nodes: fresh dicts and lists, owned by this candidate
            video=graph.video,
            window=(0.0, float(graph.duration)),
            provenance={"graph_sha256": graph_hash, "generator": _GENERATOR,
                        "seed": self.cfg.seed, "variant": cand.variant},
        )

    def summary(self) -> dict[str, Any]:
        """Counts so far: by type, steps and bucket, drops by reason, answer positions."""
        n = max(self.total, 1)
        return {
            "records": self.total,
            "by_type": dict(sorted(self.type_counts.items())),
            "by_steps": {str(k): v for k, v in sorted(self.step_counts.items())},
            "step_mix": {str(k): round(v / n, 4) for k, v in sorted(self.step_counts.items())},
            "step_request": {str(k): round(v, 4) for k, v in self.step_targets.items()},
            "by_bucket": dict(sorted(self.bucket_counts.items())),
            "drops": dict(sorted(self.drops.items())),
            "drops_by_type": {t: dict(sorted(c.items())) for t, c in sorted(self.drops_by_type.items())},
            "unfilled_slots": self.unfilled,
            "answer_positions": {str(k): v for k, v in sorted(self.distractors.position_counts.items())},
            "anchored_share_multistep": round(self.anchored_multi / max(self.multi, 1), 4),
        }


def _version() -> str:
    from stepkit import __version__

    return __version__


_GENERATOR = f"stepkit {_version()} {GENERATOR_VERSION}"


def _load(path: Path, validate: bool | str) -> tuple[STSG, str]:
    from stepkit.errors import GraphError
    from stepkit.graph.validate import graph_problems

    try:
        data = path.read_bytes()
    except OSError as read_err:
        raise GraphError(f"{path}: cannot read graph file: {read_err}") from None
    from stepkit.userfiles import parse_json

    doc = parse_json(data, path, what="graph file", error=GraphError)  # names depth, NaN, UTF-8 problems
    if validate == "full":
        problems = graph_problems(doc)
    elif validate:
        problems = _quick_problems(doc)
    else:
        problems = []
    if problems:
        raise GraphError(f"{path}: {problems[0]}")
    # Boxes are never used by generation and dominate big graphs: build the graph without them.
    if isinstance(doc, dict) and isinstance(doc.get("objects"), list):
        doc = dict(doc)
        doc["objects"] = [{**o, "track": []} if isinstance(o, dict) else o for o in doc["objects"]]
    try:
        graph = STSG.from_dict(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GraphError(f"{path}: not an STSG document: {exc!r}") from None
    return graph, hashlib.sha256(data).hexdigest()


_STR_FIELDS = {"objects": ("id", "label"), "relations": ("id", "subject", "predicate", "object"),
               "actions": ("id", "agent", "verb")}
_NUM_FIELDS = {"relations": ("t0", "t1"), "actions": ("t0", "t1")}


def _quick_problems(doc) -> list[str]:
    """The checks generation relies on, without the full JSON Schema pass (which costs more than
    generating the graph's questions): field types, ids, references, intervals. Anything odd is
    handed to the full validator so the message is the usual one."""
    from stepkit.graph.types import SUPPORTED_SCHEMA_VERSIONS
    from stepkit.graph.validate import _semantic_problems, graph_problems

    try:
        if not isinstance(doc, dict) or doc.get("schema_version") not in SUPPORTED_SCHEMA_VERSIONS:
            return graph_problems(doc)
        if not isinstance(doc["video_id"], str) or not all(
                isinstance(doc[k], (int, float)) and not isinstance(doc[k], bool) for k in ("fps", "duration")):
            return graph_problems(doc)
        for section, names in _STR_FIELDS.items():
            for item in doc.get(section, []):
                if not all(isinstance(item[n], str) for n in names):
                    return graph_problems(doc)
                if not all(isinstance(item[n], (int, float)) and not isinstance(item[n], bool)
                           for n in _NUM_FIELDS.get(section, ())):
                    return graph_problems(doc)
                for n in ("object", "target"):
                    if section == "actions" and item.get(n) is not None and not isinstance(item[n], str):
                        return graph_problems(doc)
            for item in doc.get("objects", []) if section == "objects" else []:
                for a in item.get("attributes", []):
                    if not (isinstance(a["name"], str) and isinstance(a["value"], str)):
                        return graph_problems(doc)
        # Tracks are not used here and dominate the document: check the rest.
        light = dict(doc)
        light["objects"] = [{**o, "track": []} for o in doc.get("objects", [])]
        return _semantic_problems(light)
    except (KeyError, TypeError, AttributeError):
        return graph_problems(doc) or ["(document): malformed STSG"]


def iter_generated(graph_files: Iterable[Path], gen: Generator, failed: list[dict[str, str]]) -> Iterator[QRARecord]:
    """Records for each graph file in turn (one graph in memory at a time)."""
    for path in graph_files:
        try:
            graph, digest = _load(path, gen.cfg.validate)
        except StepkitError as bad_input:
            failed.append({"path": str(path), "error": str(bad_input)})
            continue
        try:
            records = gen.records(graph, digest)
        except Exception as exc:  # a bug must not sink the batch: record it and go on
            failed.append({"path": str(path), "error": f"generation failed: {type(exc).__name__}: {exc}"})
            continue
        from stepkit.data.videos import resolve_video

        video = resolve_video(graph.video, base=path.parent, videos_dir=gen.cfg.videos_dir)
        for rec in records:  # one path rule for every stage: stepkit.data.videos
            rec.video = video
        yield from records


def generate(graphs: str | os.PathLike, out_dir: str | os.PathLike, config: GenerateConfig | None = None,
             fmt: str = "jsonl", combined: bool = False) -> dict[str, Any]:
    """Write ``out_dir/qa.jsonl`` (+ the ``fmt`` export) and ``summary.json``; returns the summary."""
    from stepkit.data.videos import check_mode, video_reference
    from stepkit.graph.serialize import iter_graph_files
    from stepkit.io import atomic_text_writer, atomic_write_json

    config = config or GenerateConfig()
    check_mode(config.paths)
    if config.per_video < 1:
        raise ConfigError(f"--per-video must be at least 1, got {config.per_video}")
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
    gen = Generator(config)
    files = list(iter_graph_files(graphs))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    failed: list[dict[str, str]] = []
    t0 = time.perf_counter()
    n = 0
    with atomic_text_writer(out / "qa.jsonl") as fh:
        for rec in iter_generated(files, gen, failed):
            if config.paths == "relative":
                rec.video = video_reference(rec.video, holder_dir=out, mode="relative")
            fh.write(rec.to_json() + "\n")
            n += 1
    seconds = time.perf_counter() - t0
    exported = None
    if fmt != "jsonl":
        from stepkit.data.export import default_out, export

        exported = str(export(out / "qa.jsonl", default_out(out, fmt), fmt, combined=combined, paths=config.paths))
    summary = gen.summary()
    summary.update({
        "graphs": len(files) - len(failed),
        "failed": failed,
        "seconds": round(seconds, 3),
        "records_per_second": round(n / seconds, 1) if seconds > 0 else None,
        "config": config.to_dict(),
        "format": fmt,
        "export": exported,
    })
    atomic_write_json(out / "summary.json", summary)
    return summary


EXPORT_FORMATS = ("jsonl", "llava", "chatml", "hf", "trl", "video-r1")
