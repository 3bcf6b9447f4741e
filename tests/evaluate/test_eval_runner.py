"""The run folder: what it holds, and that the same run gives the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stepkit.errors import ConfigError
from stepkit.evaluate.runner import EvalConfig, compare_runs, evaluate
from stepkit.models.scripted import ScriptedBackend

FILES = ["accuracy_by_steps.png", "accuracy_by_type.png", "config.json", "metrics.json", "predictions.jsonl",
         "report.html", "report.md", "summary.json"]


def _always(answer: str) -> ScriptedBackend:
    return ScriptedBackend({"model_id": f"scripted/{answer}", "rules": [], "default": answer})


def test_run_folder_is_deterministic(world_split, tmp_path: Path) -> None:
    cfg = EvalConfig(benchmark="stepkit", data=str(world_split["qa"]), videos=str(world_split["videos"]),
                     mode="mc-generate", frames=2, bootstrap=200)
    m1 = evaluate(cfg, tmp_path / "a", model=_always("The answer is (A)."))
    evaluate(cfg, tmp_path / "b", model=_always("The answer is (A)."))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == FILES
    for name in FILES:
        if name != "summary.json":
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    rows = [json.loads(line) for line in (tmp_path / "a" / "predictions.jsonl").read_text().splitlines()]
    # always "A": right exactly where the gold option is the first (yes/no questions: "yes")
    assert [r["correct"] for r in rows] == [r["answer_index"] == 0 for r in rows]
    assert m1["overall"]["correct"] == sum(r["answer_index"] == 0 for r in rows)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["questions"] == len(rows) and summary["videos"] == 3

    # a model that always says "B" against the one that always says "A"
    evaluate(cfg, tmp_path / "c", model=_always("B"))
    res = compare_runs(tmp_path / "a", tmp_path / "c", tmp_path / "cmp", n_boot=200)
    assert res["common"] == len(rows)
    assert res["overall"]["diff"] == pytest.approx(
        (sum(r["answer_index"] == 1 for r in rows) - sum(r["answer_index"] == 0 for r in rows)) / len(rows), abs=1e-6)
    assert (tmp_path / "cmp" / "comparison.md").read_text().startswith("# scripted/B")


def test_bad_settings(world_split, tmp_path: Path) -> None:
    cfg = EvalConfig(benchmark="stepkit", data=str(world_split["qa"]), frames=0, mode="mc-guess")
    with pytest.raises(ConfigError, match="--mode"):
        evaluate(cfg, tmp_path / "x", model=_always("A"))
    cfg = EvalConfig(benchmark="stepkit", data=str(world_split["qa"]), frames=0, limit=0)
    with pytest.raises(ConfigError, match="--limit"):
        evaluate(cfg, tmp_path / "x", model=_always("A"))
    cfg = EvalConfig(benchmark="stepkit", data=str(world_split["qa"]), frames=0, mode="mc-generate",
                     judge_endpoint="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="judge"):
        evaluate(cfg, tmp_path / "x", model=_always("A"))
