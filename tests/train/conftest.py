"""Fixtures for the training tests: a small rendered Q/R/A set and tiny models of every family."""

from __future__ import annotations

from pathlib import Path

import pytest

FAMILIES = ["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "llava-onevision", "llava-next-video", "smolvlm2"]


@pytest.fixture(scope="session")
def qa_dir(tmp_path_factory) -> Path:
    """qa.jsonl with 4 records over 2 rendered 16-frame mp4 clips (windows of 1 s)."""
    from stepkit.train.synthetic import synthetic_records

    return synthetic_records(tmp_path_factory.mktemp("qa"), n_videos=2, per_video=2, seed=0)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """family -> path of a tiny random model (built once per session)."""
    from stepkit.models.tiny import tiny_model_path

    root = tmp_path_factory.mktemp("tiny")
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            cache[family] = tiny_model_path(family, cache_dir=root)
        return cache[family]

    return get


def quick_config(qa: Path, model: Path, out: Path, **kw):
    """A StepTrainConfig for fast CPU runs (4 frames of <= 112 px, constant lr, no progress bar)."""
    from stepkit.train.config import StepTrainConfig

    base = dict(qa=str(qa), model=str(model), out=str(out), num_frames=4, max_side=112, per_device_batch_size=2,
                learning_rate=3e-3, lr_scheduler="constant", warmup_steps=0, progress=False, save_steps=1000)
    base.update(kw)
    return StepTrainConfig(**base)


@pytest.fixture(scope="session")
def world_qa(tmp_path_factory) -> tuple[Path, Path]:
    """(Q/R/A folder, graphs folder) from `stepkit world` (2 short videos) and `stepkit generate`."""
    from typer.testing import CliRunner

    from stepkit.cli import app

    root = tmp_path_factory.mktemp("world")
    run = CliRunner()
    r = run.invoke(app, ["world", "--out", str(root / "W"), "--videos", "2", "--duration", "6", "--size", "160x96",
                         "--workers", "1", "--seed", "0"])
    assert r.exit_code == 0, r.output
    r = run.invoke(app, ["generate", str(root / "W" / "graphs"), "--out", str(root / "QA"), "--per-video", "3",
                         "--seed", "0"])
    assert r.exit_code == 0, r.output
    return root / "QA", root / "W" / "graphs"
