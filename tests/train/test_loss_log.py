"""`stepkit train` loss-log lines carry a timestamp and λ as applied; `--threads` and its default."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner


def _rows(out):
    return [json.loads(ln) for ln in (out / "loss_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("samples, lam", [("dual", 0.5), ("answer", 0.0)])
def test_loss_log_has_timestamp_and_applied_lambda(qa_dir, tiny_models, tmp_path, one_torch_thread, samples, lam):
    from stepkit.cli import app

    out = tmp_path / samples
    r = CliRunner().invoke(app, ["train", str(qa_dir), "--model", str(tiny_models("qwen2-vl")), "--out", str(out),
                                 "--max-steps", "2", "--num-frames", "2", "--batch-size", "4", "--samples", samples,
                                 "--lambda-rationale", "0.5", "--quiet", "--threads", "1"])
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    assert [x["step"] for x in rows] == [1, 2]
    stamps = [datetime.fromisoformat(x["timestamp"]) for x in rows]
    assert stamps[0] <= stamps[1] and stamps[0].tzinfo is not None
    # with answer samples only, no rationale term was there for λ to weight
    assert all(x["lambda_rationale"] == lam for x in rows)


def test_threads_option_and_default(monkeypatch, one_torch_thread):
    import torch

    from stepkit.train.cli import apply_threads

    assert apply_threads(2) == 2 == torch.get_num_threads()
    torch.set_num_threads(3)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert apply_threads(None) == 3  # one process: the library's (or OMP_NUM_THREADS's) count stands
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert apply_threads(None) == 1  # several ranks share the cores: one thread each
    torch.set_num_threads(3)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert apply_threads(None) == 3  # an explicit OMP_NUM_THREADS is the user's choice


def test_threads_must_be_positive(qa_dir, tmp_path):
    from stepkit.cli import app

    r = CliRunner().invoke(app, ["train", str(qa_dir), "--model", "m", "--out", str(tmp_path / "o"), "--threads", "0"])
    assert r.exit_code == 1 and "--threads must be >= 1" in r.output
