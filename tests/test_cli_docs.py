"""docs/cli.md is generated from the typer app; this keeps it current."""

from __future__ import annotations

from pathlib import Path

from stepkit.cli_docs import cli_reference_markdown


def test_cli_reference_is_current() -> None:
    doc = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    assert doc.read_text(encoding="utf-8") == cli_reference_markdown(), (
        "docs/cli.md is stale: run `python -m stepkit.cli_docs > docs/cli.md`")
