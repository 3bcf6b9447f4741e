"""The CLI reference (``docs/cli.md``), generated from the typer app so it cannot drift.

Regenerate with ``python -m stepkit.cli_docs > docs/cli.md`` (a test checks it is current).
"""

from __future__ import annotations

from typing import Any


def _params(cmd: Any) -> list[str]:
    rows = []
    for p in cmd.params:
        if p.name == "help" or getattr(p, "hidden", False):
            continue
        if p.param_type_name == "argument":
            name = f"`{p.name.upper()}`"
            kind = "argument" if p.required else "argument, optional"
        else:
            name = "`" + "/".join([" ".join(p.opts), *p.secondary_opts]) + "`"
            kind = "required" if p.required else ""
            if not getattr(p, "is_flag", False) and not p.required and p.default not in (None, (), []):
                kind = f"default `{p.default}`"
        cell = (getattr(p, "help", "") or "").replace("|", "\\|")
        rows.append(f"| {name} | {kind} | {cell} |")
    return rows


def _walk(cmd: Any, path: list[str], out: list[str]) -> None:
    out.append(f"## `{' '.join(path)}`\n")
    doc = (cmd.help or "").strip().split("\n\n")[0]
    if doc:
        out.append(doc.replace("\n", " ") + "\n")
    rows = _params(cmd)
    if rows:
        out += ["| argument / option | | help |", "|---|---|---|", *rows, ""]
    for sub in sorted(getattr(cmd, "commands", {})):
        _walk(cmd.commands[sub], [*path, sub], out)


def cli_reference_markdown() -> str:
    """Every ``stepkit`` verb with its arguments, options, defaults and help, as markdown."""
    import typer

    from stepkit.cli import app

    root = typer.main.get_command(app)
    out = ["# CLI reference", "",
           "Generated from the code by `python -m stepkit.cli_docs > docs/cli.md`; `stepkit VERB --help` "
           "prints the same.", ""]
    for sub in sorted(root.commands):  # type: ignore[attr-defined]
        _walk(root.commands[sub], ["stepkit", sub], out)  # type: ignore[attr-defined]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(cli_reference_markdown(), end="")
