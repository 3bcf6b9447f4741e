"""`stepkit eval star-graph`: answer STAR questions from scene graphs (the STAR graph check).

The command joins an existing ``eval`` group when one is registered before this module (the
evaluation verbs' own group), and otherwise creates the ``eval`` group itself.
"""

from __future__ import annotations

from pathlib import Path

import typer

from stepkit.cli_common import console, fail


def star_graph_cmd(
    questions: Path = typer.Option(..., "--questions", "-q", help="STAR questions (SeViLA-style JSON list)."),
    graphs: Path = typer.Option(..., "--graphs", "-g", help="Folder of graphs named <video>.json."),
    window: str = typer.Option("clip", "--window", help="clip: the question start..end is the situation "
                                                         "(STAR's semantics); none: the whole timeline."),
    out: Path = typer.Option(None, "--out", "-o", help="Write star_graph.json / .md / _questions.jsonl here."),
    tolerance: float = typer.Option(0.5, help="Seconds of slack when an action must lie within the clip."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
) -> None:
    """Parse STAR's question templates into programs, run them on each video's graph, pick the option."""
    from stepkit.errors import StepkitError
    from stepkit.evaluate.star_graph import render_star_graph_markdown, run_star_graph_check
    from stepkit.io import dumps_json

    try:
        report = run_star_graph_check(questions, graphs, window=window, out_dir=out, tolerance=tolerance)
    except StepkitError as exc:
        fail(exc)
    if as_json:
        print(dumps_json(report), end="")
    else:
        console.print(render_star_graph_markdown(report), highlight=False, soft_wrap=True)


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add `stepkit eval star-graph` (to the `eval` group, creating it when absent)."""
    group = next((g.typer_instance for g in root.registered_groups if g.name == "eval"), None)
    if group is None:
        group = typer.Typer(help="Evaluate models and graphs on benchmarks.", no_args_is_help=True)
        root.add_typer(group, name="eval")
    group.command("star-graph")(star_graph_cmd)
