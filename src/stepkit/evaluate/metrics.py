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


def scored(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that were scored: an item whose video could not be read or whose model request
    failed (``error``) is reported, never counted as a wrong answer."""
    return [r for r in rows if not r.get("error")]


def breakdown(rows: Sequence[dict[str, Any]], *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """Overall accuracy, and by steps bucket (1 / 2 / 3+), exact step count and type, each with a
    95% bootstrap interval, over the scored rows; parse failures (wrong) and errors (not scored)
    counted."""
    all_rows = rows
    rows = scored(rows)
    out: dict[str, Any] = {"overall": accuracy_stats([bool(r.get("correct")) for r in rows], n_boot=n_boot, seed=seed)}
    for name, key in (("by_steps_bucket", lambda r: steps_bucket(r.get("steps"))),
                      ("by_steps", lambda r: UNKNOWN if r.get("steps") is None else str(int(r["steps"]))),
                      ("by_type", lambda r: str(r.get("type") or UNKNOWN))):
        out[name] = {k: accuracy_stats(v, n_boot=n_boot, seed=seed) for k, v in _group(rows, key).items()}
    out["modes"] = {k: v for k, v in sorted(Counter(str(r.get("mode") or "?") for r in rows).items())}
    out["parse_failures"] = sum(1 for r in rows if r.get("parse_failed"))
    out["errors"] = sum(1 for r in all_rows if r.get("error"))
    out["questions"] = len(all_rows)
    kinds = Counter(str(r.get("error_kind") or "other") for r in all_rows if r.get("error"))
    if kinds:
        out["errors_by_kind"] = dict(sorted(kinds.items()))
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
    a = {r["id"]: r for r in scored(rows_a)}
    b = {r["id"]: r for r in scored(rows_b)}
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


# --- the perception gate ---------------------------------------------------------------------

GATE_MIN_GAP = 0.10


def perception_gate(rows_frames: Sequence[dict[str, Any]], rows_wrong_video: Sequence[dict[str, Any]], *,
                    steps: str | None = "1", min_gap: float = GATE_MIN_GAP, n_boot: int = DEFAULT_BOOTSTRAP,
                    seed: int = 0) -> dict[str, Any]:
    """Whether a model looks at the video: on the questions of steps bucket ``steps`` (``None``: all)
    answered in both runs, its accuracy with its own frames must beat its accuracy with another
    video's frames (``stepkit eval --videos-from shuffle``) by at least ``min_gap``, with the 95%
    paired-bootstrap interval of the difference above zero.

    Returns ``{passed, n, acc_frames, acc_wrong_video, gap, ci_low, ci_high, min_gap, steps, reason}``.
    """
    a = {r["id"]: r for r in scored(rows_wrong_video)}
    b = {r["id"]: r for r in scored(rows_frames)}
    ids = sorted(i for i in set(a) & set(b) if steps is None or steps_bucket(b[i].get("steps")) == steps)
    res: dict[str, Any] = {"steps": steps, "min_gap": min_gap, "n": len(ids), "bootstrap": {"resamples": n_boot,
                                                                                          "seed": seed}}
    if not ids:
        res.update(passed=False, acc_frames=None, acc_wrong_video=None, gap=None, ci_low=None, ci_high=None,
                   reason="no shared scored questions" + (f" with {steps} step(s)" if steps else ""))
        return res
    c = paired_comparison([a[i] for i in ids], [b[i] for i in ids], n_boot=max(n_boot, 1), seed=seed)["overall"]
    gap, lo, hi = c["diff"], c.get("diff_ci_low"), c.get("diff_ci_high")
    passed = gap >= min_gap - 1e-12 and lo is not None and lo > 0
    why = (f"gap {100 * gap:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]"
           + ("" if passed else (f" is under {100 * min_gap:.0f} points" if gap < min_gap - 1e-12
                                 else "; the interval reaches zero")))
    res.update(passed=bool(passed), acc_frames=c["acc_b"], acc_wrong_video=c["acc_a"], gap=gap, ci_low=lo,
               ci_high=hi, changed=c["only_a_correct"] + c["only_b_correct"], reason=why)
    return res


def mean_stats(values: Sequence[float], *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """``{n, mean, ci_low, ci_high}`` of a list of numbers (95% bootstrap interval)."""
    x = [float(v) for v in values]
    if not x:
        return {"n": 0, "mean": None, "ci_low": None, "ci_high": None}
    lo, hi = bootstrap_ci(x, n_boot=n_boot, seed=seed)
    return {"n": len(x), "mean": round(float(np.mean(x)), 6), "ci_low": round(lo, 6), "ci_high": round(hi, 6)}


def faithfulness_breakdown(rows: Sequence[dict[str, Any]], *, n_boot: int = DEFAULT_BOOTSTRAP,
                           seed: int = 0) -> dict[str, Any]:
    """Rationale faithfulness of the scored rows that carry a ``faithfulness`` report, overall and by
    steps bucket: mean score (95% interval), grounded fraction, temporal IoU of quoted spans, share
    whose steps reach the answer, share naming an entity the graph lacks, claims per rationale, and
    coverage of the ids the reference rationale rests on (where the data has them)."""
    def group(rs: list[dict[str, Any]]) -> dict[str, Any]:
        reps = [r["faithfulness"] for r in rs]
        tious = [f["temporal_iou"] for f in reps if f.get("temporal_iou") is not None]
        reach = [f["reaches_answer"] for f in reps if f.get("reaches_answer") is not None]
        cover = [f["coverage"] for f in reps if f.get("coverage") is not None]
        return {**mean_stats([f["score"] for f in reps], n_boot=n_boot, seed=seed),
                "grounded_fraction": round(float(np.mean([f["grounded_fraction"] for f in reps])), 6) if reps else None,
                "temporal_iou": round(float(np.mean(tious)), 6) if tious else None,
                "reaches_answer": round(float(np.mean(reach)), 6) if reach else None,
                "hallucination_rate": round(float(np.mean([bool(f["hallucinated_entities"]) for f in reps])), 6)
                if reps else None,
                "claims_per_rationale": round(float(np.mean([f["n_claims"] for f in reps])), 4) if reps else None,
                "coverage": round(float(np.mean(cover)), 6) if cover else None}

    rows = [r for r in scored(rows) if isinstance(r.get("faithfulness"), dict)]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[steps_bucket(r.get("steps"))].append(r)
    return {"overall": group(rows),
            "by_steps_bucket": {k: group(groups[k]) for k in sorted(groups, key=_key_order)}}
