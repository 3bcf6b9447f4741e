"""A temporal index over one STSG: what holds at time t, and what happened before/after/during."""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence, TypeVar

from stepkit.graph.types import STSG, Action, Object, Relation

E = TypeVar("E", Relation, Action)


@dataclass(frozen=True)
class _Sorted:
    """Edges sorted by start and by end, with the key arrays for bisection."""

    by_start: tuple
    starts: tuple[float, ...]
    by_end: tuple
    ends: tuple[float, ...]

    @classmethod
    def build(cls, edges: Iterable[E]) -> "_Sorted":
        edges = list(edges)
        by_start = tuple(sorted(edges, key=lambda e: (e.t0, e.t1, e.id)))
        by_end = tuple(sorted(edges, key=lambda e: (e.t1, e.t0, e.id)))
        return cls(by_start, tuple(e.t0 for e in by_start), by_end, tuple(e.t1 for e in by_end))

    def overlapping(self, t0: float, t1: float) -> list:
        # Edges that started by t1; keep those not yet ended at t0.
        hi = bisect.bisect_right(self.starts, t1)
        return [e for e in self.by_start[:hi] if e.t1 >= t0]

    def ended_before(self, t: float, strict: bool = True) -> list:
        hi = bisect.bisect_left(self.ends, t) if strict else bisect.bisect_right(self.ends, t)
        return list(self.by_end[:hi])

    def started_after(self, t: float, strict: bool = True) -> list:
        lo = bisect.bisect_right(self.starts, t) if strict else bisect.bisect_left(self.starts, t)
        return list(self.by_start[lo:])


class TemporalIndex:
    """Fast temporal queries over a graph's relations and actions.

    >>> from stepkit.graph.types import STSG, Object, Action
    >>> g = STSG("v", fps=10, duration=10)
    >>> g.objects += [Object("p", "person"), Object("c", "cup")]
    >>> g.actions += [Action("a1", "p", "pick up", 1, 2, object="c"), Action("a2", "p", "put down", 5, 6, object="c")]
    >>> ix = TemporalIndex(g)
    >>> [a.id for a in ix.actions_before(5)]
    ['a1']
    """

    def __init__(self, graph: STSG):
        self.graph = graph
        self.objects: dict[str, Object] = graph.object_map()
        self._rel = _Sorted.build(graph.relations)
        self._act = _Sorted.build(graph.actions)
        self.relations_by_subject: dict[str, list[Relation]] = defaultdict(list)
        self.relations_by_object: dict[str, list[Relation]] = defaultdict(list)
        for r in self._rel.by_start:
            self.relations_by_subject[r.subject].append(r)
            self.relations_by_object[r.object].append(r)
        self.actions_by_agent: dict[str, list[Action]] = defaultdict(list)
        self.actions_by_object: dict[str, list[Action]] = defaultdict(list)
        for a in self._act.by_start:
            self.actions_by_agent[a.agent].append(a)
            for o in {a.object, a.target} - {None}:
                self.actions_by_object[o].append(a)
        self.actions_by_verb: dict[str, list[Action]] = defaultdict(list)
        for a in self._act.by_start:
            self.actions_by_verb[a.verb].append(a)

    # Relations -----------------------------------------------------------------------------
    def relations_at(self, t: float) -> list[Relation]:
        """Relations holding at time ``t``."""
        return self._rel.overlapping(t, t)

    def relations_during(self, t0: float, t1: float) -> list[Relation]:
        """Relations overlapping ``[t0, t1]``."""
        return self._rel.overlapping(t0, t1)

    def relations_before(self, t: float) -> list[Relation]:
        """Relations that ended before ``t``."""
        return self._rel.ended_before(t)

    def relations_after(self, t: float) -> list[Relation]:
        """Relations that started after ``t``."""
        return self._rel.started_after(t)

    # Actions -------------------------------------------------------------------------------
    def actions_at(self, t: float) -> list[Action]:
        """Actions in progress at ``t``."""
        return self._act.overlapping(t, t)

    def actions_during(self, t0: float, t1: float) -> list[Action]:
        """Actions overlapping ``[t0, t1]``."""
        return self._act.overlapping(t0, t1)

    def actions_before(self, t: float) -> list[Action]:
        """Actions that ended before ``t``."""
        return self._act.ended_before(t)

    def actions_after(self, t: float) -> list[Action]:
        """Actions that started after ``t``."""
        return self._act.started_after(t)

    @property
    def actions(self) -> Sequence[Action]:
        """All actions in start order."""
        return self._act.by_start

    @property
    def relations(self) -> Sequence[Relation]:
        """All relations in start order."""
        return self._rel.by_start

    def visible_span(self, object_id: str) -> tuple[float, float] | None:
        """First and last time the object appears in any edge or track, or None."""
        times: list[float] = [b.t for b in self.objects[object_id].track] if object_id in self.objects else []
        for r in self.relations_by_subject.get(object_id, []) + self.relations_by_object.get(object_id, []):
            times += [r.t0, r.t1]
        for a in self.actions_by_agent.get(object_id, []) + self.actions_by_object.get(object_id, []):
            times += [a.t0, a.t1]
        return (min(times), max(times)) if times else None
