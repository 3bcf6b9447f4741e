"""Seeded draws for the generator: ``random.Random``'s own algorithms as plain functions.

The same draws as ``rng.choice`` / ``rng.shuffle`` / ``rng.randrange`` / ``rng.choices(...,
cum_weights=...)`` on a ``random.Random`` (CPython 3.10-3.12; ``tests/reason/test_draw.py`` pins
each to the method it mirrors), so records do not change; written out so that the compiled
generator runs them as native code instead of calling into the interpreted ``random`` module,
which was the largest interpreted part left (~10 % of a compiled generation).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from typing import Any, Sequence


def below(rng: random.Random, n: int) -> int:
    """A uniform int in ``[0, n)``: ``rng.randrange(n)`` (``ValueError`` for n <= 0)."""
    if n <= 0:
        raise ValueError(f"empty range for randrange() ({n})")
    getrandbits = rng.getrandbits
    k = n.bit_length()
    r: int = getrandbits(k)
    while r >= n:
        r = getrandbits(k)
    return r


def choice(rng: random.Random, seq: Sequence[Any]) -> Any:
    """``rng.choice(seq)``."""
    if not len(seq):
        raise IndexError("Cannot choose from an empty sequence")
    return seq[below(rng, len(seq))]


def shuffle(rng: random.Random, x: list[Any]) -> None:
    """``rng.shuffle(x)``: in place."""
    for i in range(len(x) - 1, 0, -1):
        j = below(rng, i + 1)
        x[i], x[j] = x[j], x[i]


def choice_cum(rng: random.Random, population: Sequence[Any], cum_weights: Sequence[float]) -> Any:
    """``rng.choices(population, cum_weights=cum_weights)[0]``."""
    n = len(population)
    if len(cum_weights) != n:
        raise ValueError("The number of weights does not match the population")
    total = cum_weights[-1] + 0.0
    if total <= 0.0:
        raise ValueError("Total of weights must be greater than zero")
    return population[bisect_right(cum_weights, rng.random() * total, 0, n - 1)]
