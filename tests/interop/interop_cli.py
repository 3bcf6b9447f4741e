"""``invoke``: run a stepkit command in-process (a module of its own: conftest modules share one name)."""

from __future__ import annotations

from typer.testing import CliRunner

from stepkit.cli import app


def invoke(*args) -> str:
    """Run a stepkit command in-process; fail the test with its output if it fails."""
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output
