"""Fixtures of the bad-input corpus: a tiny rendered world (videos + exact graphs) built once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """Three 4-second synthetic videos with their graphs (``videos/``, ``graphs/``)."""
    from typer.testing import CliRunner

    from stepkit.cli import app

    root = tmp_path_factory.mktemp("badinput-world") / "W"
    r = CliRunner().invoke(app, ["world", "--out", str(root), "--videos", "3", "--duration", "4", "--size",
                                 "160x96", "--fps", "6", "--workers", "1", "--seed", "0"])
    assert r.exit_code == 0, r.output
    return root
