"""stepkit.reason.draw makes exactly the draws of random.Random's methods (so records never change
with it), and leaves the generator in the same state."""

from __future__ import annotations

import random

import pytest

from stepkit.reason import draw


@pytest.mark.parametrize("seed", range(40))
def test_draws_match_random_random(seed: int) -> None:
    ours, stdlib = random.Random(seed), random.Random(seed)
    for n in (1, 2, 3, 7, 8, 9, 64, 1000, 2**40 + 3):
        assert draw.below(ours, n) == stdlib.randrange(n)
        seq = list(range(n % 50 + 1))
        assert draw.choice(ours, seq) == stdlib.choice(seq)
        a, b = seq[:], seq[:]
        draw.shuffle(ours, a)
        stdlib.shuffle(b)
        assert a == b
        cum = [float(i * i + 1) for i in range(1, len(seq) + 1)]
        assert draw.choice_cum(ours, seq, cum) == stdlib.choices(seq, cum_weights=cum)[0]
    assert ours.getstate() == stdlib.getstate()


def test_bad_draws_raise_as_random_does() -> None:
    rng = random.Random(0)
    with pytest.raises(ValueError):
        draw.below(rng, 0)
    with pytest.raises(IndexError):
        draw.choice(rng, [])
    with pytest.raises(ValueError):
        draw.choice_cum(rng, [1, 2], [1.0])
