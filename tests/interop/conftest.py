"""Fixtures for the real-client checks: a `stepkit world` -> `stepkit generate` run and its exports.

Each client is the installed package (``pip install -e ".[interop]"`` plus
``pip install --no-deps lmms-eval==0.7.3``); a test whose client is missing skips and says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from interop_cli import invoke


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    """``stepkit world`` (2 six-second videos) then ``stepkit generate`` with no path flags."""
    root = tmp_path_factory.mktemp("interop")
    invoke("world", "--out", root / "W", "--videos", "2", "--duration", "6", "--size", "160x96", "--workers", "1",
           "--seed", "0")
    invoke("generate", root / "W" / "graphs", "--out", root / "QA", "--per-video", "3", "--seed", "0")
    return {"root": root, "qa": root / "QA", "graphs": root / "W" / "graphs", "videos": root / "W" / "videos"}


@pytest.fixture(scope="session")
def exports(world) -> dict[str, Path]:
    """Each export in its own folder (absolute video paths, the default): format -> folder."""
    out = {}
    for fmt in ("llava", "chatml", "trl", "hf", "video-r1"):
        folder = world["root"] / "exp" / fmt
        invoke("qa", "export", world["qa"], "--format", fmt, "--out", folder)
        out[fmt] = folder
    return out
