"""Fixtures for the evaluation tests: a small held-out world Q/R/A split with its videos, a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def world_split(tmp_path_factory) -> dict[str, Path]:
    """Three rendered world videos and the Q/R/A generated from their graphs (``stepkit world`` +
    ``stepkit generate``): ``{"videos": …, "qa": …/qa.jsonl}``."""
    from typer.testing import CliRunner

    from stepkit.cli import app

    root = tmp_path_factory.mktemp("world")
    runner = CliRunner()
    res = runner.invoke(app, ["world", "--out", str(root / "world"), "--videos", "3", "--seed", "1",
                              "--duration", "16", "--size", "160x96", "--workers", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["generate", str(root / "world" / "graphs"), "--out", str(root / "qa"),
                              "--per-video", "6", "--seed", "0"])
    assert res.exit_code == 0, res.output
    return {"videos": root / "world" / "videos", "qa": root / "qa" / "qa.jsonl", "root": root}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random qwen2.5-vl checkpoint folder (built once per session)."""
    from stepkit.models.tiny import build_tiny_model

    return build_tiny_model("qwen2.5-vl", tmp_path_factory.mktemp("tiny") / "qwen", seed=0)
