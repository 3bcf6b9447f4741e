"""`stepkit graph …`: validate, show and score scene graphs."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from stepkit.cli_common import console, fail

app = typer.Typer(help="Validate, show and score scene graph (STSG) files.", no_args_is_help=True)


@app.command("validate")
def validate_cmd(paths: List[Path] = typer.Argument(..., help="Graph files or folders of *.json graphs.")) -> None:
    """Check graphs against the STSG schema; one line per problem, exit 1 if any is invalid."""
    from stepkit.errors import GraphError
    from stepkit.graph.serialize import iter_graph_files, read_graph_doc
    from stepkit.graph.validate import graph_problems

    n_files = n_bad = 0
    for root in paths:
        try:
            files = list(iter_graph_files(root))
        except GraphError as exc:
            console.print(f"[red]{exc}[/red]", highlight=False)
            n_bad += 1
            continue
        for f in files:
            n_files += 1
            try:
                problems = graph_problems(read_graph_doc(f))
            except GraphError as exc:
                problems = [str(exc).split(": ", 1)[1]]
            if problems:
                n_bad += 1
                for p in problems:
                    console.print(f"{f}: {p}", highlight=False, soft_wrap=True)
    console.print(f"{n_files - n_bad if n_files >= n_bad else 0}/{n_files} graph files valid", highlight=False)
    if n_bad:
        raise typer.Exit(1)


@app.command("show")
def show_cmd(path: Path = typer.Argument(..., help="One graph file.")) -> None:
    """Print a readable timeline of a graph's objects, relations and actions."""
    from stepkit.errors import StepkitError
    from stepkit.graph.serialize import load_graph
    from stepkit.graph.show import timeline_lines

    try:
        graph = load_graph(path)
    except StepkitError as exc:
        fail(exc)
    for line in timeline_lines(graph):
        console.print(line, highlight=False, soft_wrap=True)


@app.command("score")
def score_cmd(
    pred_dir: Path = typer.Argument(..., help="Folder (or file) of predicted graphs."),
    gt_dir: Path = typer.Argument(..., help="Folder (or file) of ground-truth graphs; files pair up by name."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object instead of a table."),
    tiou: float = typer.Option(0.5, "--tiou", help="Temporal IoU a relation or action match needs."),
    cut_tolerance: float = typer.Option(0.5, "--cut-tolerance", help="Seconds within which a predicted cut matches."),
) -> None:
    """Object recall, triplet precision/recall and action recall at tIoU, camera-cut F1."""
    from stepkit.errors import StepkitError
    from stepkit.graph.metrics import score_dirs

    try:
        result = score_dirs(pred_dir, gt_dir, tiou_threshold=tiou, cut_tolerance=cut_tolerance)
    except StepkitError as exc:
        fail(exc)
    if as_json:
        import sys

        from stepkit.io import dumps_json

        sys.stdout.write(dumps_json(result))
        return
    from rich.table import Table

    from stepkit.graph.metrics import METRIC_KEYS

    def fmt(v) -> str:
        return "–" if v is None else f"{v:.3f}"

    short = {"object_recall": "obj R", "object_precision": "obj P", "triplet_precision": "trip P",
             "triplet_recall": "trip R", "action_recall": "act R", "action_recall_agent": "act R+agent",
             "cut_precision": "cut P", "cut_recall": "cut R", "cut_f1": "cut F1"}
    # The headline metrics always; precision/agent/cut details when the terminal is wide enough.
    keys = list(METRIC_KEYS) if console.width >= 120 else [
        "object_recall", "triplet_precision", "triplet_recall", "action_recall", "cut_f1"]
    table = Table(title=f"graph accuracy (tIoU ≥ {tiou}, cuts within {cut_tolerance} s)")
    table.add_column("video", no_wrap=True, min_width=7)
    for k in keys:
        table.add_column(short[k], justify="right", min_width=5, no_wrap=True)
    for vid, res in result["videos"].items():
        table.add_row(vid + (" (missing)" if vid in result["missing"] else ""), *(fmt(res[k]) for k in keys))
    table.add_row("[bold]overall[/bold]", *(f"[bold]{fmt(result['overall'][k])}[/bold]" for k in keys))
    console.print(table)
    if result["extra"]:
        console.print(f"{len(result['extra'])} predicted graphs have no ground truth: {', '.join(result['extra'][:10])}",
                      highlight=False)


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add `stepkit graph …` to the root app."""
    root.add_typer(app, name="graph")
