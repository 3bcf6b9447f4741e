"""`stepkit selftrain`, `stepkit demo` and `stepkit experiment replicate`: the whole loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from stepkit.cli_common import console, err_console, fail

experiment_app = typer.Typer(help="Studies built from whole pipeline runs (the paper's tables at CPU scale).",
                             no_args_is_help=True)

CONFIGS = Path(__file__).with_name("configs")


def _stage_printer(total: int):
    """An ``on_stage`` callback that shows one progress line per stage."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(),
                   console=err_console)
    tasks: dict[int, int] = {}
    count = {"n": 0}

    def on_stage(stage, event: str, seconds: float) -> None:
        key = id(stage)
        if event in ("start", "skip"):
            count["n"] += 1
            label = f"[{count['n']}/{total}] round {stage.round} {stage.name}"
            tasks[key] = bar.add_task(label + (" (done before)" if event == "skip" else ""), total=1,
                                      completed=1 if event == "skip" else 0)
        else:
            bar.update(tasks[key], completed=1)
            bar.stop_task(tasks[key])

    return bar, on_stage


def _run(cfg, dry_run: bool, threads: Optional[int], title: str) -> None:
    from stepkit.errors import StepkitError
    from stepkit.pipeline.demo_report import write_run_report
    from stepkit.pipeline.selftrain import plan, run_selftrain, stage_env

    stages = plan(cfg)
    if dry_run:
        for s in stages:
            done = " (done)" if s.is_done() else ""
            console.print(s.describe() + done, highlight=False, markup=False, soft_wrap=True)
        return
    t0 = time.perf_counter()
    bar, on_stage = _stage_printer(len(stages))
    try:
        with bar:
            ledger = run_selftrain(cfg, on_stage=on_stage, env=stage_env(threads))
        report = write_run_report(cfg, title=title)
    except StepkitError as exc:
        fail(exc)
    console.print(f"{cfg.rounds} round(s) finished in {time.perf_counter() - t0:.0f} s; ledger {ledger}; "
                  f"report {report}", highlight=False, soft_wrap=True)


def selftrain_cmd(
    config: Path = typer.Option(..., "--config", "-c", help="Self-training YAML config (see configs/selftrain-world.yaml)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (overrides the config's 'out')."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (every stage's command) and exit."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per stage (OMP_NUM_THREADS)."),
) -> None:
    """Rounds of induce → generate → train → eval; rerun the same command to resume."""
    from stepkit.errors import StepkitError
    from stepkit.pipeline.config import load_config, validate_config

    try:
        cfg = load_config(config)
        if out is not None:
            cfg.out = str(out)
        validate_config(cfg, str(config))
    except StepkitError as exc:
        fail(exc)
    _run(cfg, dry_run, threads, title=f"stepkit selftrain · {config.name}")


def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run folder (report.html lands here)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and exit."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per stage (OMP_NUM_THREADS)."),
) -> None:
    """The whole STEP loop on the embedded world with a tiny Video-LLM: no downloads, no GPU."""
    from stepkit.errors import StepkitError
    from stepkit.pipeline.config import load_config

    try:
        cfg = load_config(CONFIGS / "demo.yaml")
    except StepkitError as exc:
        fail(exc)
    cfg.out = str(out)
    _run(cfg, dry_run, threads, title="stepkit demo: STEP on a synthetic world with a tiny Video-LLM")


def _bundled(config: Path) -> Path:
    """A config path as given, or the bundled ``configs/NAME.yaml`` when only a name is given."""
    named = CONFIGS / f"{config}.yaml"
    return named if not config.exists() and config.suffix == "" and named.is_file() else config


def replicate_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Replication YAML config, or the name of a bundled one (replicate, replicate-see; default: replicate)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (overrides the config's 'out')."),
    results: Optional[Path] = typer.Option(None, "--results", help="Also write the results page here (e.g. docs/results.md)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and exit."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per stage (OMP_NUM_THREADS)."),
) -> None:
    """The paper's Table 2 at CPU scale: base / answer-only / STEP / oracle graphs, by reasoning steps."""
    from stepkit.errors import StepkitError
    from stepkit.pipeline.replicate import load_replicate_config, plan_replicate, run_replicate
    from stepkit.pipeline.selftrain import stage_env

    try:
        cfg = load_replicate_config(_bundled(config) if config else CONFIGS / "replicate.yaml")
        if out is not None:
            cfg.out = str(out)
        if dry_run:
            for s in plan_replicate(cfg):
                console.print(s.describe() + (" (done)" if s.is_done() else ""), highlight=False, markup=False,
                              soft_wrap=True)
            return
        stages = plan_replicate(cfg)
        bar, on_stage = _stage_printer(len(stages))
        t0 = time.perf_counter()
        with bar:
            table = run_replicate(cfg, on_stage=on_stage, env=stage_env(threads), results=results)
    except StepkitError as exc:
        fail(exc)
    console.print(table, highlight=False, markup=False)
    console.print(f"finished in {time.perf_counter() - t0:.0f} s -> {cfg.out}", highlight=False)


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add ``selftrain``, ``demo`` and ``experiment`` to the root app."""
    root.command("selftrain")(selftrain_cmd)
    root.command("demo")(demo_cmd)
    experiment_app.command("replicate")(replicate_cmd)
    root.add_typer(experiment_app, name="experiment")
