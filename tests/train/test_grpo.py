"""`stepkit train --method grpo`: tiny models of two families, every reward term and the KL logged,
exact resume after a kill, and a mean reward that rises on a set small enough to fit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner

TERMS = ("reward", "reward_answer", "reward_format", "reward_faithfulness", "reward_temporal", "kl", "accuracy",
         "completion_length", "reward_std", "faithfulness_errors")
FAST = ["--num-frames", "2"]


def _train(*args: str):
    from stepkit.cli import app

    return CliRunner().invoke(app, ["train", *args])


def _rows(out: Path) -> list[dict]:
    return [json.loads(ln) for ln in (out / "loss_log.jsonl").read_text().splitlines() if ln.strip()]


def _weights(path: Path, name: str = "model.safetensors"):
    from safetensors.torch import load_file

    return load_file(str(path / name))


@pytest.fixture(scope="module")
def qa3(world_qa, tmp_path_factory) -> Path:
    """Three of the world questions: a training set small enough to fit."""
    qa, _ = world_qa
    out = tmp_path_factory.mktemp("qa3")
    lines = (qa / "qa.jsonl").read_text().splitlines()[:3]
    (out / "qa.jsonl").write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="module")
def warm(qa3, world_qa, tiny_models, tmp_path_factory):
    """family -> a tiny model after a short supervised cold start on ``qa3`` (the R1 recipe: SFT on the
    rationales, then GRPO). A random tiny model never ends a completion nor names an option, so every
    reward would be 0, every advantage 0 and nothing would move."""
    import torch

    _, graphs = world_qa
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            out = tmp_path_factory.mktemp(f"sft-{family}")
            before = torch.get_num_threads()
            r = _train(str(qa3), "--model", str(tiny_models(family)), "--out", str(out), "--videos-dir", str(graphs),
                       "--max-steps", "100", "--samples", "combined", "--lr", "3e-3", "--quiet", "--threads", "1",
                       *FAST)
            torch.set_num_threads(before)
            assert r.exit_code == 0, r.output
            cache[family] = out
        return cache[family]

    return get


def test_config_has_help_on_every_field_and_the_sft_shape():
    from stepkit.train.config import StepTrainConfig
    from stepkit.train.grpo_config import StepGRPOConfig

    helps = StepGRPOConfig.help()
    assert all(h.strip() for h in helps.values()), [k for k, h in helps.items() if not h.strip()]
    sft = {f.name: f.type for f in fields(StepTrainConfig)}
    grpo = {f.name: f.type for f in fields(StepGRPOConfig)}
    shared = set(sft) - {"lambda_rationale", "samples", "rationale_with_answer"}
    assert shared <= set(grpo)
    assert all(sft[k] == grpo[k] for k in shared)
    for name in ("num_generations", "max_completion_length", "temperature", "top_p", "beta", "scale_rewards",
                 "loss_type", "mask_truncated_completions"):  # TRL's GRPOConfig names
        assert name in grpo


@pytest.mark.parametrize("bad, message", [
    ({"num_generations": 1}, "num_generations must be >= 2"),
    ({"weight_answer": 0, "weight_format": 0, "weight_faithfulness": 0}, "all 0"),
    ({"completion_format": "xml"}, "completion_format"),
    ({"scale_rewards": "rank"}, "scale_rewards"),
    ({"temperature": 0}, "temperature must be > 0"),
])
def test_config_errors(bad, message):
    from stepkit.errors import ConfigError
    from stepkit.train.grpo_config import StepGRPOConfig

    with pytest.raises(ConfigError, match=message):
        StepGRPOConfig(qa="q", model="m", out="o", max_steps=1, **bad).validate()


def test_cli_errors_name_the_input(world_qa, tiny_models, tmp_path):
    qa, graphs = world_qa
    model = str(tiny_models("qwen2-vl"))
    r = _train(str(qa), "--method", "grpo", "--model", model, "--out", str(tmp_path / "a"), "--lambda-rationale", "0")
    assert r.exit_code == 1 and "--lambda-rationale" in r.output and "grpo" in r.output
    r = _train(str(qa), "--model", model, "--out", str(tmp_path / "b"), "--num-generations", "4")
    assert r.exit_code == 1 and "--num-generations" in r.output
    r = _train(str(qa), "--method", "grpo", "--model", model, "--out", str(tmp_path / "c"), "--max-steps", "1",
               "--graphs", str(tmp_path / "nowhere"), "--videos-dir", str(graphs))
    assert r.exit_code == 1 and "nowhere" in r.output
    empty = tmp_path / "empty_graphs"
    empty.mkdir()
    r = _train(str(qa), "--method", "grpo", "--model", model, "--out", str(tmp_path / "d"), "--max-steps", "1",
               "--graphs", str(empty), "--videos-dir", str(graphs))
    assert r.exit_code == 1 and "no scene graph for video" in r.output
    try:
        import vllm  # noqa: F401
    except ImportError:  # the GPU rollout engine: absent here, and the error says so
        r = _train(str(qa), "--method", "grpo", "--model", model, "--out", str(tmp_path / "e"), "--max-steps", "1",
                   "--videos-dir", str(graphs), "--rollout", "vllm")
        assert r.exit_code == 1 and "vllm" in r.output and "rollout=hf" in r.output


@pytest.mark.parametrize("family, extra", [
    ("qwen2-vl", ["--temporal-contrast"]),   # video input; T-GRPO rollouts on shuffled frames
    ("smolvlm2", ["--lora"]),                # frames as images; reference = base with the adapter off
])
def test_two_families_run_and_log_every_term(qa3, world_qa, warm, tmp_path, one_torch_thread, family, extra):
    _, graphs = world_qa
    out = tmp_path / family
    r = _train(str(qa3), "--method", "grpo", "--model", str(warm(family)), "--out", str(out), "--videos-dir",
               str(graphs), "--max-steps", "24", "--batch-size", "1", "--num-generations", "3",
               "--max-completion-length", "48", "--lr", "1e-3", "--quiet", *FAST, *extra)
    assert r.exit_code == 0, r.output
    assert "24/24 steps, finished" in r.output and "kl=" in r.output
    rows = _rows(out)
    assert [x["step"] for x in rows] == list(range(1, 25))
    for row in rows:
        assert all(k in row for k in TERMS), sorted(row)
        assert "T" in row["timestamp"] and row["beta"] == 0.04
        assert all(0.0 <= row[k] <= 1.0 for k in ("reward_answer", "reward_format", "reward_faithfulness"))
        assert set(row["by_steps"]) <= {"1", "2", "3+"}
    assert any(x["kl"] > 0 for x in rows[1:])  # the policy moved away from its reference
    if "--temporal-contrast" in extra:
        assert all("shuffled_accuracy" in x for x in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and summary["method"] == "grpo"
    assert summary["rewards"]["logged_steps"] == 24 and summary["rewards"]["by_steps"]
    saved = json.loads((out / "grpo_config.json").read_text())
    assert saved["method"] == "grpo" and saved["max_steps"] == 24
    weights = "adapter_model.safetensors" if "--lora" in extra else "model.safetensors"
    assert (out / weights).is_file()


def test_resume_after_a_kill_is_exact(qa3, world_qa, warm, tmp_path, one_torch_thread, wait_for):
    _, graphs = world_qa
    common = [str(qa3), "--method", "grpo", "--model", str(warm("qwen2-vl")), "--videos-dir", str(graphs),
              "--max-steps", "16", "--batch-size", "2", "--num-generations", "3", "--max-completion-length", "48",
              "--lr", "1e-3", "--train-vision", "--save-steps", "4", "--quiet", "--seed", "5", *FAST]
    full, split = tmp_path / "full", tmp_path / "split"
    r = _train(*common, "--out", str(full))
    assert r.exit_code == 0, r.output
    cmd = [sys.executable, "-m", "stepkit.cli", "train", *common, "--out", str(split), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        from stepkit.train.trainer import latest_checkpoint

        wait_for(lambda: latest_checkpoint(split) is not None, proc, 300, "the first complete checkpoint")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (split / "summary.json").exists()  # killed mid-run
    r = _train("--out", str(split), "--resume", "--beta", "0.5")
    assert r.exit_code == 1 and "beta" in r.output  # what the run is made of cannot change on resume
    r = _train("--out", str(split), "--resume", "--method", "sft")
    assert r.exit_code == 1 and "grpo run" in r.output
    r = _train("--out", str(split), "--resume")
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output and "16/16 steps, finished" in r.output
    a, b = _weights(full), _weights(split)
    assert a.keys() == b.keys()
    assert max(float((a[k].double() - b[k].double()).abs().max()) for k in a) <= 1e-6
    start = _weights(warm("qwen2-vl"))
    assert max(float((a[k] - start[k]).abs().max()) for k in a) > 1e-4  # GRPO did move the weights
    # the same completions were sampled: every logged reward term matches the uninterrupted run
    ra, rb = _rows(full), _rows(split)
    assert [x["step"] for x in rb] == list(range(1, 17))
    for x, y in zip(ra, rb):
        assert {k: x[k] for k in TERMS} == pytest.approx({k: y[k] for k in TERMS}, abs=1e-6)


def test_mean_reward_rises_on_a_set_small_enough_to_fit(qa3, world_qa, warm, tmp_path, one_torch_thread):
    _, graphs = world_qa
    out = tmp_path / "grpo"
    r = _train(str(qa3), "--method", "grpo", "--model", str(warm("qwen2-vl")), "--out", str(out), "--videos-dir",
               str(graphs),
               "--max-steps", "20", "--batch-size", "3", "--num-generations", "6", "--max-completion-length", "64",
               "--lr", "3e-4", "--quiet", *FAST)
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    first = sum(x["reward"] for x in rows[:5]) / 5
    last = sum(x["reward"] for x in rows[-5:]) / 5
    assert last > first + 0.1, (first, last)
    summary = json.loads((out / "summary.json").read_text())["rewards"]
    assert summary["last_quarter"]["reward"] > summary["first_quarter"]["reward"]


def test_grpo_loss_matches_a_hand_computation():
    import math

    import torch

    from stepkit.train.grpo import grpo_loss

    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.7, 0.0]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[-1.2, -1.5, -0.5], [-0.3, -1.0, 0.0]], dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)  # row 2: 2 tokens
    beta = 0.1

    def k3(r, p):
        return math.exp(r - p) - (r - p) - 1

    kls = [[k3(ref[i, t].item(), logp[i, t].item()) for t in range(3)] for i in range(2)]
    # at the sampling policy the ratio is 1: the value is -A per token plus beta * KL
    tok = [[-adv[i].item() + beta * kls[i][t] for t in range(3)] for i in range(2)]
    want = {"grpo": (sum(tok[0]) / 3 + sum(tok[1][:2]) / 2) / 2,
            "bnpo": (sum(tok[0]) + sum(tok[1][:2])) / 5,
            "dr_grpo": (sum(tok[0]) + sum(tok[1][:2])) / (2 * 4)}
    for loss_type, value in want.items():
        loss, kl = grpo_loss(logp, ref, adv, mask, beta=beta, loss_type=loss_type, max_completion_length=4)
        assert loss.item() == pytest.approx(value, rel=1e-12)
        assert kl[0, 0].item() == pytest.approx(kls[0][0], rel=1e-12)
    # the gradient: -A * dlogp (per-completion mean) + beta * dKL/dlogp = beta * (1 - exp(ref - logp))
    loss, _ = grpo_loss(logp, ref, adv, mask, beta=beta, loss_type="grpo")
    loss.backward()
    for i, n in ((0, 3), (1, 2)):
        for t in range(n):
            g = (-adv[i].item() + beta * (1 - math.exp(ref[i, t].item() - logp[i, t].item()))) / n / 2
            assert logp.grad[i, t].item() == pytest.approx(g, rel=1e-10)
    assert logp.grad[1, 2].item() == 0.0  # padding gets nothing
    # no reference at beta 0: the KL is neither computed nor added
    loss, kl = grpo_loss(logp.detach(), None, adv, mask, beta=0.0)
    assert kl is None and loss.item() == pytest.approx(((-1.0 * 3) / 3 + (1.0 * 2) / 2) / 2)
