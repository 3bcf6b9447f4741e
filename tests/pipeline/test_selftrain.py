"""Self-training rounds: config validation, the plan, a two-round run, kill during round 2 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from stepkit.cli import app
from stepkit.errors import ConfigError
from stepkit.pipeline.config import config_from_dict, load_config
from stepkit.pipeline.selftrain import plan

TWO_ROUNDS = {
    "rounds": 2,
    "world": {"videos": 2, "seed": 0, "duration": "6"},
    "induce": {"backend": "world"},
    "generate": {"per_video": 12, "steps": "1:0.5,2:0.25,3:0.25", "seed": 0},
    "train": {"model": "tiny:qwen2.5-vl", "max_steps": 6, "save_steps": 2,
              "extra_args": ["--lr", "1e-3", "--num-frames", "2", "--batch-size", "2"]},
    "eval": {"videos": 1, "seed": 1000, "per_video": 8, "steps": "1:0.5,3:0.5", "frames": 2,
             "extra_args": ["--bootstrap", "50"]},
}


def _write(tmp_path: Path, data: dict, name: str = "st.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


@pytest.mark.parametrize("change, message", [
    ({"rounds": 0}, "rounds: must be at least 1"),
    ({"train": {"max_stepz": 3}}, "train.max_stepz: unknown field"),
    ({"train": {"max_steps": "many"}}, "train.max_steps: expected int"),
    ({"eval": {"seed": 0}}, "eval.seed: held-out videos must not share"),
    ({"induce": {"backend": "magic"}}, "induce.backend: unknown backend"),
    ({"induce": {"backend": "vlm"}}, "induce.model: the vlm backend needs"),
    ({"world": None}, "set exactly one of 'world'"),
])
def test_config_errors_name_the_field(tmp_path: Path, change: dict, message: str) -> None:
    data = json.loads(json.dumps(TWO_ROUNDS))
    data.update(change)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(_write(tmp_path, data))
    assert "st.yaml" in str(err.value)


def test_bundled_configs_load_and_plan() -> None:
    root = Path(__file__).resolve().parents[2] / "src" / "stepkit" / "pipeline" / "configs"
    for name in ("demo.yaml", "selftrain-world.yaml"):
        cfg = load_config(root / name)
        names = [(s.round, s.name) for s in plan(cfg)]
        control = ["eval-wrong-video"] if cfg.eval.wrong_video else []
        assert [n for r, n in names if r == 0] == ["world", "heldout", "questions", "model", *control, "eval"]
        assert [n for r, n in names if r == cfg.rounds] == ["induce", "score", "generate", "train", *control, "eval"]
    # the demo scores every model with another video's frames too (the perception gate)
    assert load_config(root / "demo.yaml").eval.wrong_video


def test_each_round_trains_the_previous_rounds_model() -> None:
    cfg = config_from_dict({**TWO_ROUNDS, "out": "R", "induce": {"backend": "vlm", "model": "current"}})
    stages = {(s.round, s.name): s.argv for s in plan(cfg)}
    model_of = lambda argv: argv[argv.index("--model") + 1]  # noqa: E731
    assert model_of(stages[(1, "train")]) == str(Path("R/base_model"))
    assert model_of(stages[(2, "train")]) == str(Path("R/round_1/train"))
    assert model_of(stages[(2, "induce")]) == str(Path("R/round_1/train"))  # the model being trained parses
    assert model_of(stages[(2, "eval")]) == str(Path("R/round_2/train"))


def test_training_can_go_through_a_launcher() -> None:
    cfg = config_from_dict({**TWO_ROUNDS, "out": "R", "train": {**TWO_ROUNDS["train"],
                                                                "launcher": ["torchrun", "--nproc_per_node", "2"]}})
    for stage in plan(cfg):
        cmd = stage.command()
        if stage.name == "train":
            assert cmd[:5] == ["torchrun", "--nproc_per_node", "2", "-m", "stepkit.cli"] and cmd[5] == "train"
        else:
            assert cmd[0] == sys.executable and cmd[1:3] == ["-m", "stepkit.cli"]


def test_dry_run_prints_the_plan(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["selftrain", "--config", str(_write(tmp_path, TWO_ROUNDS)), "--out",
                                   str(tmp_path / "run"), "--dry-run"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 15 and lines[-1].startswith("round 2  eval") and "stepkit train" in lines[8]
    assert not (tmp_path / "run").exists()


def _markers(run: Path, round_: int) -> dict[str, float]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in (run / f"round_{round_}").rglob(".stage-done.json")}


def test_two_rounds_kill_during_round_2_training_then_resume(tmp_path: Path, wait_for) -> None:
    cfg = _write(tmp_path, TWO_ROUNDS)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "stepkit.cli", "selftrain", "--config", str(cfg), "--out", str(run), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: bool(list((run / "round_2" / "train").glob("checkpoint-*/trainer_state.json"))), proc,
                 600, "round 2's training to write its first checkpoint")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (run / "round_2" / "train" / ".stage-done.json").exists()
    round1 = _markers(run, 1)
    assert len(round1) == 5
    weights_1 = (run / "round_1" / "train" / "model.safetensors").stat().st_mtime_ns

    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _markers(run, 1) == round1  # round 1 was not redone
    assert (run / "round_1" / "train" / "model.safetensors").stat().st_mtime_ns == weights_1
    assert "resuming" in (run / "logs" / "round2-train.log").read_text()  # from its checkpoint, not from scratch
    ledger = [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in ledger] == [0, 1, 2]
    for r in ledger[1:]:
        assert r["train"]["global_step"] == 6 and r["qa"]["records"] > 0
        assert r["graph_accuracy"]["object_recall"] > 0.5
        assert set(r["eval"]["by_steps_bucket"]) <= {"1", "2", "3+"}
    state = json.loads((run / "round_2" / "train" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["rounds"] == 2 and saved["train"]["max_steps"] == 6
    page = (run / "report.html").read_text()
    assert "Accuracy by reasoning steps" in page and "Sample questions with rationales" in page
    assert "So the answer is" in page and page.count("data:image/png;base64,") == 2

    # a finished run reruns as a no-op; another config in the same folder is refused
    round2 = _markers(run, 2)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and _markers(run, 2) == round2
    other = _write(tmp_path, {**TWO_ROUNDS, "rounds": 1}, "other.yaml")
    res = CliRunner().invoke(app, ["selftrain", "--config", str(other), "--out", str(run)])
    assert res.exit_code == 1 and "holds a run of another config" in res.output


def test_demo_dry_run_plans_one_round(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--dry-run"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 12 and "stepkit induce" in lines[6] and "--backend world" in lines[6]
    assert "stepkit train" in lines[9] and "--lambda-rationale 1.0" in lines[9]
    assert all("--videos-from shuffle" in lines[i] for i in (4, 10))
