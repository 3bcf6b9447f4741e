"""Breakdowns by steps and type, seeded bootstrap intervals, paired comparison."""

from __future__ import annotations

import numpy as np
import pytest

from stepkit.errors import DataError
from stepkit.evaluate.metrics import bootstrap_ci, breakdown, paired_comparison, steps_bucket


def _rows(pattern: list[tuple[int | None, str, bool]]) -> list[dict]:
    return [{"id": f"q{i}", "steps": s, "type": t, "correct": c} for i, (s, t, c) in enumerate(pattern)]


def test_steps_bucket() -> None:
    assert [steps_bucket(s) for s in (1, 2, 3, 4, 9, None)] == ["1", "2", "3+", "3+", "3+", "unknown"]


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    x = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1] * 5
    a = bootstrap_ci(x, n_boot=500, seed=3)
    assert a == bootstrap_ci(x, n_boot=500, seed=3)
    assert a != bootstrap_ci(x, n_boot=500, seed=4)
    assert a[0] < np.mean(x) < a[1]
    # the interval narrows with more data
    wide = bootstrap_ci(x[:10], n_boot=500, seed=3)
    assert wide[1] - wide[0] > a[1] - a[0]


def test_breakdown() -> None:
    rows = _rows([(1, "count", True), (1, "count", False), (2, "order", True), (3, "order", False),
                  (5, "count", True), (None, "order", True)])
    rows[1]["parse_failed"] = True
    m = breakdown(rows, n_boot=200, seed=0)
    assert m["overall"]["n"] == 6 and m["overall"]["accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert list(m["by_steps_bucket"]) == ["1", "2", "3+", "unknown"]
    assert m["by_steps_bucket"]["3+"]["n"] == 2 and m["by_steps_bucket"]["3+"]["accuracy"] == 0.5
    assert list(m["by_steps"]) == ["1", "2", "3", "5", "unknown"]
    assert m["by_type"]["count"]["correct"] == 2
    for s in m["by_type"].values():
        assert s["ci_low"] <= s["accuracy"] <= s["ci_high"]
    assert m["parse_failures"] == 1


def test_paired_comparison() -> None:
    rng = np.random.default_rng(0)
    n = 200
    steps = rng.integers(1, 5, n)
    a = rng.random(n) < 0.5
    b = a | (rng.random(n) < 0.3)  # B fixes some of A's mistakes, never breaks a right answer
    ra = [{"id": f"q{i}", "steps": int(steps[i]), "type": "t", "correct": bool(a[i])} for i in range(n)]
    rb = [{"id": f"q{i}", "steps": int(steps[i]), "type": "t", "correct": bool(b[i])} for i in range(n)]
    rb.append({"id": "extra", "steps": 1, "type": "t", "correct": True})
    res = paired_comparison(ra, rb, n_boot=500, seed=0)
    o = res["overall"]
    assert res["common"] == n and res["only_in_b"] == 1
    assert o["diff"] == pytest.approx(b.mean() - a.mean(), abs=1e-6)
    assert o["relative_improvement"] == pytest.approx((b.mean() - a.mean()) / a.mean(), abs=1e-6)
    assert 0 < o["diff_ci_low"] <= o["diff"] <= o["diff_ci_high"]
    assert o["only_a_correct"] == 0 and o["p_b_not_better"] == 0.0
    assert set(res["by_steps_bucket"]) == {"1", "2", "3+"}
    # the paired interval is narrower than one that ignores the pairing would be
    unpaired = np.sqrt(a.mean() * (1 - a.mean()) / n + b.mean() * (1 - b.mean()) / n) * 3.92
    assert o["diff_ci_high"] - o["diff_ci_low"] < unpaired
    with pytest.raises(DataError, match="share no question"):
        paired_comparison(ra, [{"id": "z", "correct": True}])
