"""`stepkit train`: 40 steps in one go equals 20 steps, stop, `--resume` to 40; resume guards."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner


def _run(*args: str):
    from stepkit.cli import app

    res = CliRunner().invoke(app, ["train", *args])
    return res


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.slow
def test_resume_matches_uninterrupted_run(qa_dir, tiny_models, tmp_path):
    model = str(tiny_models("qwen2-vl"))
    common = [str(qa_dir), "--model", model, "--max-steps", "40", "--num-frames", "4", "--lr", "1e-3",
              "--train-vision", "--quiet", "--seed", "3"]
    full, split = tmp_path / "full", tmp_path / "split"
    r = _run(*common, "--out", str(full))
    assert r.exit_code == 0, r.output
    assert "40/40 steps, finished" in r.output
    r = _run(*common, "--out", str(split), "--stop-after", "20")
    assert r.exit_code == 0, r.output
    assert "stopped at step 20" in r.output
    assert (split / "checkpoint-20" / "step_config.json").is_file()
    assert not (split / "model.safetensors").exists()
    # a second plain start refuses to overwrite the run
    r = _run(*common, "--out", str(split))
    assert r.exit_code == 1 and "--resume" in r.output
    # changing what the run is made of is refused on resume
    r = _run("--out", str(split), "--resume", "--lambda-rationale", "0.5")
    assert r.exit_code == 1 and "lambda_rationale" in r.output
    r = _run("--out", str(split), "--resume")
    assert r.exit_code == 0, r.output
    assert "40/40 steps, finished" in r.output
    a, b = _weights(full), _weights(split)
    assert a.keys() == b.keys()
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    assert diff <= 1e-6, diff
    moved = _weights(tiny_models("qwen2-vl"))
    assert max(float((a[k] - moved[k]).abs().max()) for k in a) > 1e-3  # training did change the weights
    # the resumed loss log has each step once, in order
    steps = [json.loads(ln)["step"] for ln in (split / "loss_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))


def test_resume_refuses_changed_data(qa_dir, tiny_models, tmp_path):
    import shutil

    qa = tmp_path / "qa"
    shutil.copytree(qa_dir, qa)
    out = tmp_path / "run"
    r = _run(str(qa), "--model", str(tiny_models("qwen2-vl")), "--out", str(out), "--max-steps", "4",
             "--stop-after", "2", "--num-frames", "4", "--quiet")
    assert r.exit_code == 0, r.output
    lines = (qa / "qa.jsonl").read_text().splitlines()
    (qa / "qa.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    r = _run("--out", str(out), "--resume")
    assert r.exit_code == 1 and "SHA-256" in r.output


def test_cli_errors_name_the_input(tmp_path, qa_dir):
    r = _run(str(qa_dir), "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert r.exit_code == 1 and "nope" in r.output
    r = _run(str(tmp_path / "missing"), "--model", "x", "--out", str(tmp_path / "o"))
    assert r.exit_code == 1 and "missing" in r.output
    r = _run("--out", str(tmp_path / "o2"), "--resume")
    assert r.exit_code == 1 and "nothing to resume" in r.output
    r = _run(str(qa_dir), "--model", "x", "--out", str(tmp_path / "o"), "--preset", "bogus")
    assert r.exit_code == 1 and "bogus" in r.output
