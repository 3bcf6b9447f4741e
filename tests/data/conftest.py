"""Q/R/A records generated from hand-built graphs, for the export tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reason"))


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory):
    """A qa.jsonl made by the generator from four random household graphs."""
    from household import random_household  # tests/reason/household.py

    from stepkit.graph.serialize import save_graph
    from stepkit.reason.generate import GenerateConfig, generate

    root = tmp_path_factory.mktemp("exp")
    for i in range(4):
        save_graph(random_household(40 + i), root / "graphs" / f"rand{40 + i}.json")
    generate(root / "graphs", root / "qa", GenerateConfig(per_video=6, seed=0))
    return root / "qa"
