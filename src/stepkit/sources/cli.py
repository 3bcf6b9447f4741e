"""`stepkit import …`: turn other datasets' annotations into STSG folders."""

from __future__ import annotations

from pathlib import Path

import typer

from stepkit.cli_common import console, fail

app = typer.Typer(help="Import annotations (Action Genome, STAR situation graphs, Charades) as scene graphs.",
                  no_args_is_help=True)

_OUT = typer.Option(..., "--out", "-o", help="Folder to write one graph per video (and summary.json) into.")


def _report(summary: dict) -> None:
    console.print(f"{summary['written']} graphs written, {summary['n_failed']} failed, "
                  f"{summary.get('n_warned', 0)} with warnings ({summary['seconds']:.1f} s)", highlight=False)
    for item, why in list(summary["failed"].items())[:20]:
        console.print(f"  failed {item}: {why}", highlight=False, soft_wrap=True)
    if summary["n_failed"] > 20:
        console.print(f"  … and {summary['n_failed'] - 20} more (see summary.json)", highlight=False)
    if summary["n_failed"]:
        raise typer.Exit(1)


@app.command("charades")
def charades_cmd(src: Path = typer.Argument(..., help="A Charades CSV (e.g. Charades_v1_train.csv)."),
                 out: Path = _OUT,
                 workers: int = typer.Option(None, help="Processes to use (default: up to 2).")) -> None:
    """Charades action timelines: one graph per row (person, objects, actions, implied relations)."""
    from stepkit.errors import StepkitError
    from stepkit.sources.charades import import_charades

    try:
        summary = import_charades(src, out, workers=workers)
    except StepkitError as exc:
        fail(exc)
    _report(summary)


@app.command("star")
def star_cmd(src: Path = typer.Argument(..., help="A STAR JSON (record or list of records) or a folder of them."),
             out: Path = _OUT) -> None:
    """STAR situation graphs: keyframe relations, actions and boxes merged into one graph per video."""
    from stepkit.errors import StepkitError
    from stepkit.sources.star import import_star

    try:
        summary = import_star(src, out)
    except StepkitError as exc:
        fail(exc)
    _report(summary)


@app.command("action-genome")
def action_genome_cmd(src: Path = typer.Argument(..., help="Action Genome annotation folder or "
                                                            "object_bbox_and_relationship.pkl."),
                      out: Path = _OUT) -> None:
    """Action Genome pkl annotations (read with a restricted unpickler): relations and boxes per video."""
    from stepkit.errors import StepkitError
    from stepkit.sources.action_genome import import_action_genome

    try:
        summary = import_action_genome(src, out)
    except StepkitError as exc:
        fail(exc)
    _report(summary)


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add `stepkit import …` to the root app."""
    root.add_typer(app, name="import")
