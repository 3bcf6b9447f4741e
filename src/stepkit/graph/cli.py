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


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add `stepkit graph …` to the root app."""
    root.add_typer(app, name="graph")
