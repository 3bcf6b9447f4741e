"""The replication study: equal-compute arms, the aggregation math, and one tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stepkit.errors import ConfigError
from stepkit.pipeline.replicate import (
    ARMS,
    ReplicateConfig,
    load_replicate_config,
    plan_replicate,
    results_markdown,
    results_page,
    run_replicate,
    summarize,
)


def _opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_arms_have_equal_compute_and_the_right_data() -> None:
    cfg = ReplicateConfig(out="R", seeds=[0, 1])
    stages = {(s.round, s.name): s.argv for s in plan_replicate(cfg)}
    for seed in (0, 1):
        trains = {a: stages[(seed, f"train-{a}")] for a in ARMS}
        for opt in ("--max-steps", "--batch-size", "--lr", "--num-frames", "--model", "--seed"):
            assert len({_opt(t, opt) for t in trains.values()}) == 1, opt
        assert _opt(trains["base"], "--model") == str(Path(f"R/seed_{seed}/base0"))
        assert _opt(trains["answer-only"], "--lambda-rationale") == "0.0"
        assert _opt(trains["step"], "--lambda-rationale") == "1.0"
        assert trains["answer-only"][1] == trains["step"][1] == str(Path("R/data/step"))
        assert trains["oracle"][1] == str(Path("R/data/oracle"))
        assert _opt(trains["base"], "--samples") == "answer" and trains["base"][1] == str(Path("R/data/base"))
        base0 = stages[(seed, "base-train")]
        assert _opt(base0, "--model") == str(Path(f"R/seed_{seed}/init")) and _opt(base0, "--samples") == "answer"
    gen = {n: a for (r, n), a in stages.items() if n.endswith("-data")}
    assert _opt(gen["base-data"], "--steps") == "1:1"
    assert gen["oracle-data"][1] == str(Path("R/world/graphs")) and gen["step-data"][1] == str(Path("R/induced"))
    assert _opt(stages[(0, "questions")], "--seed") == str(cfg.heldout_seed) != str(cfg.train_seed)


def test_config_validation(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump({"heldout_seed": 0, "train_seed": 0}))
    with pytest.raises(ConfigError, match="r.yaml: heldout_seed: must differ"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"seeds": [0, "one"]}))
    with pytest.raises(ConfigError, match="seeds: expected list"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"armsteps": 3}))
    with pytest.raises(ConfigError, match="armsteps: unknown field"):
        load_replicate_config(p)
    bundled = Path(__file__).resolve().parents[2] / "src" / "stepkit" / "pipeline" / "configs" / "replicate.yaml"
    assert load_replicate_config(bundled).seeds and len(plan_replicate(load_replicate_config(bundled))) > 10


def _fake_run(root: Path, seeds: list[int], correct: dict[str, list[list[int]]], steps: list[int]) -> None:
    for si, seed in enumerate(seeds):
        for arm in ARMS:
            d = root / f"seed_{seed}" / arm / "eval"
            d.mkdir(parents=True)
            rows = [{"id": f"q{i}", "steps": s, "correct": bool(correct[arm][si][i])} for i, s in enumerate(steps)]
            (d / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_summary_means_differences_and_relative_gain(tmp_path: Path) -> None:
    steps = [1, 1, 2, 2, 3, 3, 4, 4]
    correct = {
        "base": [[1, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]],
        "answer-only": [[1, 1, 1, 0, 1, 0, 0, 0], [1, 1, 0, 0, 0, 1, 0, 0]],   # 3+: 1/4 and 1/4
        "step": [[1, 1, 1, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0]],          # 3+: 2/4 and 3/4
        "oracle": [[1] * 8, [1] * 8],
    }
    _fake_run(tmp_path, [0, 1], correct, steps)
    cfg = ReplicateConfig(out=str(tmp_path), seeds=[0, 1], bootstrap=300)
    res = summarize(cfg)
    assert res["questions"] == 8
    a = res["arms"]
    assert a["answer-only"]["3+"]["mean"] == pytest.approx(0.25) and a["step"]["3+"]["mean"] == pytest.approx(0.625)
    assert a["step"]["3+"]["per_seed"] == [0.5, 0.75] and a["oracle"]["all"]["mean"] == 1.0
    assert a["base"]["1"]["mean"] == 0.5 and a["base"]["3+"]["n"] == 4
    d = res["step_minus_answer_only"]["3+"]
    assert d["mean"] == pytest.approx(0.375) and d["ci_low"] <= d["mean"] <= d["ci_high"]
    assert res["relative_gain"]["3+"] == pytest.approx(1.5)
    table = results_markdown(res)
    assert "| step | " in table and "+150.0%" in table and "≥3 steps (n=4)" in table
    page = results_page(res, "plot.png")
    assert "was reproduced" in page or "was not reproduced" in page
    assert "![accuracy by steps](plot.png)" in page


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path: Path) -> None:
    cfg = ReplicateConfig(out=str(tmp_path / "run"), seeds=[0], train_videos=2, heldout_videos=1, duration="6",
                          base_per_video=6, step_per_video=8, heldout_per_video=9, base_steps=2, arm_steps=2,
                          batch_size=2, num_frames=2, bootstrap=50)
    table = run_replicate(cfg, env={"OMP_NUM_THREADS": "1"}, results=tmp_path / "docs" / "results.md")
    assert table.count("\n") == 2 + len(ARMS) + 2
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(res["arms"]) == set(ARMS) and res["graph_accuracy"]["object_recall"] > 0.5
    assert (tmp_path / "docs" / "results_accuracy_by_steps.png").read_bytes()[:4] == b"\x89PNG"
    assert "stepkit experiment replicate" in (tmp_path / "docs" / "results.md").read_text()
    # rerun: every stage is skipped and the same table comes back
    assert run_replicate(cfg, env={"OMP_NUM_THREADS": "1"}) == table
