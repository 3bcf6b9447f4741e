"""Which verb-object and predicate-object pairs make sense: a prior shipped with stepkit, extended
with the pairs of the corpus being processed.

A "no" question ("did anyone sit on the doorknob?") or a distractor built from a pair nobody would
ever see is answerable from the text alone, so the generator draws them only from plausible pairs.
The shipped prior (``reason/data/plausibility_prior.json``) is built by
``python -m stepkit.reason.build_prior ../shared/data`` from the Charades action classes (and how
often each occurs in ``Charades_v1_train.csv``), STAR's action mapping and Action Genome's object
and relationship classes. Labels are compared as natural nouns (``cup/glass/bottle`` and ``bottle``
are both ``cup``), verbs and predicates as words (``sitting_on`` is ``sitting on``) and through
their synonyms in ``templates/conflicts.yaml`` ("take" the box is plausible where "pick up" the box is).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Iterable

from stepkit.reason.lexicon import _conflict_tables, clean, noun_key

PRIOR_FILE = "plausibility_prior.json"


def _pv(word: str) -> str:
    return clean(str(word)).lower()


class PlausibilityPrior:
    """A set of plausible (verb or predicate, object noun) pairs, plus predicates that fit any object."""

    def __init__(self, pairs: dict[str, Iterable[str]] | None = None, any_object: Iterable[str] = ()):
        self.pairs: dict[str, set[str]] = {}
        self.any_object: set[str] = {_pv(p) for p in any_object}
        for k, objs in (pairs or {}).items():
            self.pairs.setdefault(_pv(k), set()).update(noun_key(o) for o in objs)
        self._memo: dict[tuple[str, str], bool] = {}

    def copy(self) -> "PlausibilityPrior":
        """An independent copy (extend it without touching the shipped prior)."""
        out = PlausibilityPrior(any_object=self.any_object)
        out.pairs = {k: set(v) for k, v in self.pairs.items()}
        return out

    def add(self, predicate_or_verb: str, object_label: str) -> None:
        """Mark one pair plausible."""
        key, obj = _pv(predicate_or_verb), noun_key(object_label)
        got = self.pairs.setdefault(key, set())
        if obj not in got:
            got.add(obj)
            self._memo.clear()

    def extend(self, pairs: Iterable[tuple[str, str]]) -> "PlausibilityPrior":
        """Add pairs (verb or predicate, object label); returns self."""
        for k, o in pairs:
            self.add(k, o)
        return self

    def add_graph(self, graph, targets: bool = True) -> "PlausibilityPrior":
        """Add every pair a graph shows: verbs with their objects (and targets, unless ``targets`` is
        False), predicates with objects."""
        labels = {o.id: o.label for o in graph.objects}
        for a in graph.actions:
            for oid in ((a.object, a.target) if targets else (a.object if a.object is not None else a.target,)):
                if oid is not None and oid in labels:
                    self.add(a.verb, labels[oid])
        for r in graph.relations:
            if r.object in labels:
                self.add(r.predicate, labels[r.object])
        return self

    def is_plausible(self, predicate_or_verb: str, object_label: str) -> bool:
        """Whether the pair is seen in the prior or the corpus added (directly or through a synonym)."""
        key = (_pv(predicate_or_verb), noun_key(object_label))
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = self._check(*key)
        return got

    def _check(self, pv: str, obj: str) -> bool:
        syn = _conflict_tables()[0]
        for k in {pv} | set(syn.get(pv, ())):
            if k in self.any_object or obj in self.pairs.get(k, ()):
                return True
        return False

    def known(self, predicate_or_verb: str) -> bool:
        """Whether anything is known about this verb or predicate (unknown ones cannot be judged)."""
        pv = _pv(predicate_or_verb)
        syn = _conflict_tables()[0]
        return any(k in self.any_object or k in self.pairs for k in {pv} | set(syn.get(pv, ())))

    def to_dict(self) -> dict:
        """JSON-ready form (sorted)."""
        return {"any_object": sorted(self.any_object), "pairs": {k: sorted(v) for k, v in sorted(self.pairs.items())}}


@lru_cache(maxsize=1)
def _shipped() -> PlausibilityPrior:
    text = resources.files("stepkit.reason").joinpath("data").joinpath(PRIOR_FILE).read_text(encoding="utf-8")
    doc = json.loads(text)
    return PlausibilityPrior(doc["pairs"], doc.get("any_object", ()))


def load_prior() -> PlausibilityPrior:
    """The shipped prior (a fresh copy: extending it never changes what the next caller gets)."""
    return _shipped().copy()


def prior_for_graphs(graphs: Iterable) -> PlausibilityPrior:
    """The shipped prior extended with the pairs of some graphs (a corpus)."""
    p = load_prior()
    for g in graphs:
        p.add_graph(g)
    return p
