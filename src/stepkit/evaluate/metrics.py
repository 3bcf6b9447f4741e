"""Accuracy breakdowns (by reasoning steps and by type) with seeded bootstrap intervals, and the paired
comparison of two runs on the same questions."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable, Sequence

import numpy as np

from stepkit.errors import DataError

BUCKETS = ("1", "2", "3+")
UNKNOWN = "unknown"
DEFAULT_BOOTSTRAP = 1000
CONFIDENCE = 0.95


def steps_bucket(steps: int | None) -> str:
    """``1``, ``2`` or ``3+`` (``unknown`` when the benchmark gives no step count)."""
    if steps is None:
        return UNKNOWN
    return "1" if steps <= 1 else "2" if steps == 2 else "3+"


def bootstrap_ci(values: Sequence[float], *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                 confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling with replacement, seeded)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    if n_boot <= 0:
        m = float(x.mean())
        return (m, m)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // max(x.size, 1))
    for s in range(0, n_boot, step):
        k = min(step, n_boot - s)
        means[s:s + k] = x[rng.integers(0, x.size, size=(k, x.size))].mean(axis=1)
    a = (1 - confidence) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return (float(lo), float(hi))


def accuracy_stats(correct: Sequence[bool], *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """``{n, correct, accuracy, ci_low, ci_high}`` of a list of outcomes."""
    x = [1.0 if c else 0.0 for c in correct]
    if not x:
        return {"n": 0, "correct": 0, "accuracy": None, "ci_low": None, "ci_high": None}
    lo, hi = bootstrap_ci(x, n_boot=n_boot, seed=seed)
    return {"n": len(x), "correct": int(sum(x)), "accuracy": round(float(np.mean(x)), 6),
            "ci_low": round(lo, 6), "ci_high": round(hi, 6)}


def _key_order(k: str) -> tuple:
    if k == UNKNOWN:
        return (2, 0, k)
    if k.rstrip("+").isdigit():
        return (0, int(k.rstrip("+")), k)
    return (1, 0, k)


def _group(rows: Iterable[dict[str, Any]], key) -> dict[str, list[bool]]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(bool(r.get("correct")))
    return {k: groups[k] for k in sorted(groups, key=_key_order)}


def breakdown(rows: Sequence[dict[str, Any]], *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """Overall accuracy, and by steps bucket (1 / 2 / 3+), exact step count and type, each with a
    95% bootstrap interval; parse failures and errors counted."""
    out: dict[str, Any] = {"overall": accuracy_stats([bool(r.get("correct")) for r in rows], n_boot=n_boot, seed=seed)}
    for name, key in (("by_steps_bucket", lambda r: steps_bucket(r.get("steps"))),
                      ("by_steps", lambda r: UNKNOWN if r.get("steps") is None else str(int(r["steps"]))),
                      ("by_type", lambda r: str(r.get("type") or UNKNOWN))):
        out[name] = {k: accuracy_stats(v, n_boot=n_boot, seed=seed) for k, v in _group(rows, key).items()}
    out["modes"] = {k: v for k, v in sorted(Counter(str(r.get("mode") or "?") for r in rows).items())}
    out["parse_failures"] = sum(1 for r in rows if r.get("parse_failed"))
    out["errors"] = sum(1 for r in rows if r.get("error"))
    judged = [r["judge"] for r in rows if isinstance(r.get("judge"), dict)]
    if judged:
        scores = [j["score"] for j in judged if j.get("score") is not None]
        out["judge"] = {
            "n": len(judged),
            "accuracy": accuracy_stats([j.get("pred") == "yes" for j in judged], n_boot=n_boot, seed=seed),
            "score": round(float(np.mean(scores)), 4) if scores else None,
            "unreadable": sum(1 for j in judged if j.get("pred") is None or j.get("score") is None),
        }
    return out


def paired_comparison(rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]], *,
                      n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, label_a: str = "A",
                      label_b: str = "B") -> dict[str, Any]:
    """Run B against run A on the questions both answered (matched by id).

    The difference ``acc_B - acc_A`` gets a paired bootstrap interval (the same resampled questions
    for both runs), the relative improvement ``(acc_B - acc_A) / acc_A``, the share of bootstrap
    resamples where B does not beat A (a one-sided p-value), and the discordant counts; overall, by
    steps bucket and by type.
    """
    a = {r["id"]: r for r in rows_a}
    b = {r["id"]: r for r in rows_b}
    common = sorted(set(a) & set(b))
    if not common:
        raise DataError(f"runs {label_a} and {label_b} share no question ids; compare runs on the same benchmark")

    def compare(ids: list[str]) -> dict[str, Any]:
        xa = np.array([1.0 if a[i].get("correct") else 0.0 for i in ids])
        xb = np.array([1.0 if b[i].get("correct") else 0.0 for i in ids])
        d = xb - xa
        acc_a, acc_b = float(xa.mean()), float(xb.mean())
        res: dict[str, Any] = {"n": len(ids), "acc_a": round(acc_a, 6), "acc_b": round(acc_b, 6),
                               "diff": round(acc_b - acc_a, 6),
                               "relative_improvement": round((acc_b - acc_a) / acc_a, 6) if acc_a > 0 else None,
                               "only_a_correct": int(((xa == 1) & (xb == 0)).sum()),
                               "only_b_correct": int(((xa == 0) & (xb == 1)).sum()),
                               "both_correct": int(((xa == 1) & (xb == 1)).sum())}
        if n_boot > 0:
            rng = np.random.default_rng(seed)
            idx = rng.integers(0, len(ids), size=(n_boot, len(ids)))
            diffs = d[idx].mean(axis=1)
            lo, hi = np.quantile(diffs, [(1 - CONFIDENCE) / 2, 1 - (1 - CONFIDENCE) / 2])
            res.update(diff_ci_low=round(float(lo), 6), diff_ci_high=round(float(hi), 6),
                       p_b_not_better=round(float((diffs <= 0).mean()), 6))
        return res

    out: dict[str, Any] = {"a": label_a, "b": label_b, "common": len(common),
                           "only_in_a": len(set(a) - set(b)), "only_in_b": len(set(b) - set(a)),
                           "overall": compare(common)}
    for name, key in (("by_steps_bucket", lambda r: steps_bucket(r.get("steps"))),
                      ("by_type", lambda r: str(r.get("type") or UNKNOWN))):
        groups: dict[str, list[str]] = defaultdict(list)
        for i in common:
            groups[key(a[i])].append(i)
        out[name] = {k: compare(groups[k]) for k in sorted(groups, key=_key_order)}
    return out
