"""Fixtures for the reasoning tests: household graphs in memory and on disk."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from household import kitchen, random_household  # noqa: E402

from stepkit.graph.serialize import save_graph  # noqa: E402
from stepkit.graph.types import STSG  # noqa: E402


@pytest.fixture
def kitchen_graph() -> STSG:
    return kitchen()


@pytest.fixture
def random_graphs_dir(tmp_path):
    """Twelve random household graphs on disk."""
    d = tmp_path / "rgraphs"
    for i in range(12):
        save_graph(random_household(i), d / f"rand{i}.json")
    return d
