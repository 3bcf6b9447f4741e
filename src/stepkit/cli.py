"""The `stepkit` command line: one verb per pipeline stage.

Each package owns its verbs in its own ``cli.py`` exposing ``register(app, bench)``, so
``stepkit --help`` stays fast (heavy imports happen inside the commands).
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="stepkit",
    help="STEP for Video-LLMs: scene graphs from video, graph-guided multi-step Q/R/A, dual-objective training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Measure speed and memory of a stage (results go to docs/benchmarks.md).", no_args_is_help=True)

# Modules that add verbs; each defines register(app, bench_app).
VERB_MODULES = [
    "stepkit.graph.cli",
    "stepkit.world.cli",
    "stepkit.induce.cli",
    "stepkit.video.cli",
    "stepkit.reason.cli",
    "stepkit.models.cli",
    "stepkit.train.cli",
    "stepkit.train.perception",
    "stepkit.train.vision_pretrain",
    "stepkit.sources.cli",
    "stepkit.evaluate.cli",
    "stepkit.evaluate.star_cli",
    "stepkit.pipeline.cli",
]


def _build() -> None:
    from stepkit.locks import lock_commands

    for name in VERB_MODULES:
        importlib.import_module(name).register(app, bench_app)
    app.add_typer(bench_app, name="bench")
    lock_commands(app)  # one writer per --out folder (stepkit.locks)


def main() -> None:
    """Entry point of the ``stepkit`` script."""
    from stepkit.procgroup import watch_parent_from_env

    watch_parent_from_env()  # a stage of `stepkit selftrain` ends when the run does
    app()


_build()

if __name__ == "__main__":
    main()
