"""Tiny models built once per test session (each family on first use)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Every model test here runs on one torch thread."""
    yield


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """``tiny_dir(family)`` → folder of a tiny model of that family (seed 0), built once per session."""
    from stepkit.models.tiny import build_tiny_model

    built: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("tiny")

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_model(family, root / family, seed=0)
        return built[family]

    return get


@pytest.fixture(scope="session")
def frames() -> list[np.ndarray]:
    """Four deterministic 56x56 RGB frames (a red square moving right on grey)."""
    out = []
    for i in range(4):
        f = np.full((56, 56, 3), 128, np.uint8)
        f[20:36, 4 + 8 * i:20 + 8 * i] = (220, 30, 30)
        out.append(f)
    return out
