"""Self-training with an SFT + GRPO round: the config, the plan, and a round run end to end whose
ledger records rewards, faithfulness and accuracy by steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stepkit.errors import ConfigError
from stepkit.pipeline.config import config_from_dict, load_config
from stepkit.pipeline.selftrain import plan

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "stepkit" / "pipeline" / "configs"

ONE_ROUND = {
    "rounds": 1,
    "world": {"videos": 2, "seed": 0, "duration": "6"},
    "induce": {"backend": "world"},
    "generate": {"per_video": 6, "steps": "1:0.5,2:0.25,3:0.25", "seed": 0},
    "train": {"model": "tiny:qwen2-vl", "max_steps": 40, "save_steps": 20,
              "extra_args": ["--lr", "3e-3", "--num-frames", "2", "--batch-size", "4"]},
    "grpo": {"max_steps": 4, "save_steps": 2, "num_generations": 2, "max_completion_length": 24,
             "extra_args": ["--lr", "3e-4", "--num-frames", "2", "--batch-size", "2"]},
    "eval": {"videos": 1, "seed": 1000, "per_video": 6, "steps": "1:0.5,3:0.5", "frames": 2, "mode": "reason",
             "extra_args": ["--bootstrap", "50", "--max-new-tokens", "24"]},
}


def test_bundled_sft_grpo_config_plans_sft_then_grpo():
    cfg = load_config(CONFIGS / "selftrain-grpo.yaml")
    stages = plan(cfg)
    names = [s.name for s in stages if s.round == 1]
    assert names == ["induce", "score", "generate", "train", "grpo", "eval"]
    by = {(s.round, s.name): s.argv for s in stages}
    grpo = by[(1, "grpo")]
    assert grpo[:3] == ["train", by[(1, "train")][1], "--method"] and grpo[3] == "grpo"
    model_of = lambda argv: argv[argv.index("--model") + 1]  # noqa: E731
    assert model_of(grpo) == str(Path(cfg.out) / "round_1" / "train")  # GRPO starts from the round's SFT model
    assert grpo[grpo.index("--graphs") + 1] == str(Path(cfg.out) / "round_1" / "graphs")
    assert model_of(by[(1, "eval")]) == str(Path(cfg.out) / "round_1" / "grpo")
    assert "--graphs" in by[(1, "eval")]  # reason mode scores held-out rationales against their graphs


def test_grpo_alone_starts_from_the_previous_round():
    cfg = config_from_dict({**ONE_ROUND, "rounds": 2, "out": "R", "grpo": {**ONE_ROUND["grpo"], "after_sft": False}})
    stages = {(s.round, s.name): s.argv for s in plan(cfg)}
    assert (1, "train") not in stages and (2, "train") not in stages
    model_of = lambda argv: argv[argv.index("--model") + 1]  # noqa: E731
    assert model_of(stages[(1, "grpo")]) == str(Path("R/base_model"))
    assert model_of(stages[(2, "grpo")]) == str(Path("R/round_1/grpo"))


@pytest.mark.parametrize("change, message", [
    ({"num_generations": 1}, "grpo.num_generations"),
    ({"completion_format": "xml"}, "grpo.completion_format"),
    ({"weight_answer": 0, "weight_format": 0, "weight_faithfulness": 0}, "reward weights"),
    ({"max_stepz": 3}, "grpo.max_stepz: unknown field"),
])
def test_grpo_config_errors_name_the_field(tmp_path, change, message):
    data = json.loads(json.dumps(ONE_ROUND))
    data["grpo"].update(change)
    p = tmp_path / "st.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(p)


def test_sft_then_grpo_round_runs_end_to_end(tmp_path):
    cfg = tmp_path / "st.yaml"
    cfg.write_text(yaml.safe_dump(ONE_ROUND), encoding="utf-8")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "stepkit.cli", "selftrain", "--config", str(cfg), "--out", str(run), "--threads", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ledger = [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in ledger] == [0, 1]
    r1 = ledger[1]
    assert r1["model"].endswith("grpo") and r1["train"]["global_step"] == 40
    g = r1["grpo"]
    assert g["global_step"] == 4
    assert set(g["by_steps"]) <= {"1", "2", "3+"} and g["by_steps"]
    for v in g["by_steps"].values():
        assert 0.0 <= v["accuracy"] <= 1.0 and 0.0 <= v["faithfulness"] <= 1.0 and v["n"] > 0
    for key in ("reward", "reward_answer", "reward_format", "reward_faithfulness", "accuracy", "kl"):
        assert key in g["last_quarter"]
    for row in ledger:
        fa = row["eval"]["faithfulness"]
        assert set(row["eval"]["by_steps_bucket"]) <= {"1", "2", "3+"}
        assert set(fa["by_steps_bucket"]) <= {"1", "2", "3+"} and fa["overall"]["n"] > 0
    rows = [json.loads(ln) for ln in (run / "round_1" / "grpo" / "loss_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == [1, 2, 3, 4]
    # a finished run reruns as a no-op
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert (run / "rounds.jsonl").read_text().count("\n") == 2
