"""A tiny rendered world shared by the world and world-inducer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = {"videos": 3, "seed": 5, "duration": 8.0, "fps": 10.0, "size": (320, 180)}


@pytest.fixture(scope="session")
def tiny_params() -> dict:
    """The settings the tiny world was rendered with."""
    return dict(TINY)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """Three 8-second world videos (seed 5) with their ground-truth graphs."""
    from stepkit.world import render_world

    root = tmp_path_factory.mktemp("tiny_world")
    render_world(root, videos=TINY["videos"], seed=TINY["seed"], duration=TINY["duration"], fps=TINY["fps"],
                 size=TINY["size"], workers=1)
    return root
