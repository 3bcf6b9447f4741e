"""Fixtures of the kill-and-resume tests: a tiny world, its Q/R/A records, a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from killkit import stepkit


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory) -> Path:
    """Three short synthetic videos with their exact graphs."""
    root = tmp_path_factory.mktemp("kill-world") / "W"
    stepkit("world", "--out", str(root), "--videos", "3", "--duration", "4", "--size", "160x96", "--fps", "6",
            "--workers", "1", "--seed", "0")
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Qwen2-VL folder."""
    from stepkit.models.tiny import tiny_model_path

    return tiny_model_path("qwen2-vl", cache_dir=tmp_path_factory.mktemp("kill-tiny"))


@pytest.fixture(scope="session")
def qa_dir(tmp_path_factory, world_dir) -> Path:
    """Q/R/A records generated from the world's graphs."""
    out = tmp_path_factory.mktemp("kill-qa") / "qa"
    stepkit("generate", str(world_dir / "graphs"), "--out", str(out), "--per-video", "4", "--seed", "0")
    return out
