"""`stepkit eval …`: evaluate a model on a benchmark, compare two runs, export to lmms-eval.

The ``eval`` group is registered before ``stepkit.evaluate.star_cli``, which adds ``star-graph`` to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from stepkit.cli_common import console, fail, progress

app = typer.Typer(
    help="Evaluate a Video-LLM (accuracy by reasoning steps and type), compare runs, export to lmms-eval.",
    invoke_without_command=True,
)


def _parse_opts(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs as a dict (ints, floats, booleans decoded)."""
    from stepkit.errors import ConfigError

    out: dict = {}
    for p in pairs:
        key, sep, val = p.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-opt {p!r}: expected KEY=VALUE")
        v: object = val
        if val.lower() in ("true", "false"):
            v = val.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    v = cast(val)
                    break
                except ValueError:
                    pass
        out[key] = v
    return out


@app.callback()
def eval_cmd(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", help="Checkpoint folder (hf), tiny model folder or family (tiny), served model name (openai)."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", "-b", help="star | agqa | nextqa | mvbench | stepkit."),
    data: Optional[Path] = typer.Option(None, "--data", help="The benchmark's annotation file (or qa.jsonl / its folder)."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Root folder of the benchmark's videos."),
    mode: Optional[str] = typer.Option(None, "--mode", help="mc-loglik | mc-generate | open | reason (explain, then answer) (default: the benchmark's)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder for metrics.json, predictions and reports."),
    backend: str = typer.Option("hf", "--backend", help="hf | tiny | openai."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="Base URL of an OpenAI-compatible server (--backend openai)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate only the first N questions."),
    frames: int = typer.Option(8, "--frames", help="Frames sampled per question (0: text only)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="Generation length (mc-generate, open: 32; reason: 256)."),
    loglik_norm: str = typer.Option("none", "--loglik-norm", help="mc-loglik option score: none (sum) | chars (per character)."),
    show_options: bool = typer.Option(False, "--show-options/--hide-options", help="mc-loglik: list the options in the prompt, as `stepkit train` prompts do."),
    batch_size: int = typer.Option(8, "--batch-size", help="Questions per model call."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% intervals."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    model_opt: List[str] = typer.Option([], "--model-opt", help="Backend option KEY=VALUE (repeatable), e.g. device=cpu."),
    judge_endpoint: Optional[str] = typer.Option(None, "--judge-endpoint", help="OpenAI-compatible URL of an LLM judge (open mode)."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="The judge's served model name."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="SQLite response cache: a rerun answers from it."),
    videos_from: str = typer.Option("own", "--videos-from", help="own | shuffle: each question shown another video's frames (seeded by --seed, never its own): the wrong-video control."),
    graphs: Optional[Path] = typer.Option(None, "--graphs", help="Scene graphs of the videos (--mode reason): score each rationale's faithfulness against them."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch intra-op threads (default: torch's own)."),
    allow_outside_videos: bool = typer.Option(False, "--allow-outside-videos", help="Open videos outside --videos and the data file's folder (refused by default)."),
) -> None:
    """Evaluate a model: `stepkit eval --model PATH --benchmark NAME --data PATH --out DIR`; or a subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    if benchmark is None and data is None and out is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    from stepkit.errors import StepkitError
    from stepkit.evaluate.runner import EvalConfig, evaluate

    missing = [n for n, v in (("--benchmark", benchmark), ("--data", data), ("--out", out)) if v is None]
    if missing:
        fail(f"stepkit eval needs {', '.join(missing)}")
    from stepkit.models.registry import available_backends

    if backend not in available_backends():  # before any video is looked at
        fail(f"--backend {backend!r}: unknown backend; choose one of {', '.join(available_backends())}")
    try:
        cfg = EvalConfig(benchmark=benchmark, data=str(data), mode=mode, videos=str(videos) if videos else None,
                         limit=limit, frames=frames, max_new_tokens=max_new_tokens, loglik_norm=loglik_norm,
                         show_options=show_options, batch_size=batch_size, bootstrap=bootstrap, seed=seed, backend=backend, model=model,
                         endpoint=endpoint, model_options=_parse_opts(model_opt), judge_endpoint=judge_endpoint,
                         judge_model=judge_model, cache=str(cache) if cache else None, videos_from=videos_from,
                         graphs=str(graphs) if graphs else None, threads=threads,
                         allow_outside_videos=allow_outside_videos)
        with progress(transient=True) as bar:
            task = bar.add_task(f"eval {benchmark}", total=None)
            metrics = evaluate(cfg, out, progress=lambda done, total: bar.update(task, completed=done, total=total))
    except StepkitError as exc:
        fail(exc)
    o = metrics["overall"]
    if not o["n"]:
        fail(f"nothing could be scored: all {metrics['errors']} questions failed "
             f"({', '.join(f'{k}: {v}' for k, v in metrics.get('errors_by_kind', {}).items())}); the errors are in "
             f"{out}/predictions.jsonl (first: {_first_error(out)})")
    parts = [f"{k}: {100 * s['accuracy']:.1f}" for k, s in metrics["by_steps_bucket"].items() if s["accuracy"] is not None]
    shown = " (frames of other videos)" if metrics.get("videos_from") == "shuffle" else ""
    console.print(f"{benchmark} ({metrics['mode']}{shown}): accuracy {100 * o['accuracy']:.1f}% "
                  f"[{100 * o['ci_low']:.1f}, {100 * o['ci_high']:.1f}] on {o['n']} questions; by steps "
                  f"{', '.join(parts)}; parse failures {metrics['parse_failures']}; errors {metrics['errors']} -> {out}",
                  highlight=False)
    fa = metrics.get("faithfulness")
    if fa and fa["overall"]["n"]:
        by = ", ".join(f"{k}: {v['mean']:.2f}" for k, v in fa["by_steps_bucket"].items() if v["mean"] is not None)
        console.print(f"rationale faithfulness {fa['overall']['mean']:.3f} [{fa['overall']['ci_low']:.3f}, "
                      f"{fa['overall']['ci_high']:.3f}] (grounded {fa['overall']['grounded_fraction']:.3f}); "
                      f"by steps {by}", highlight=False)
    elif metrics["mode"] == "reason":
        console.print("rationale faithfulness not scored (give --graphs DIR)", highlight=False)
    if metrics["errors"]:
        from stepkit.cli_common import err_console

        err_console.print(f"[yellow]{metrics['errors']} of {metrics['questions']} questions not scored[/yellow] "
                          f"(first: {_first_error(out)}); see {out}/predictions.jsonl", highlight=False, soft_wrap=True)
        raise typer.Exit(2)


def _first_error(out: Path) -> str:
    import json

    try:
        return str(json.loads((Path(out) / "summary.json").read_text(encoding="utf-8")).get("first_error"))
    except (OSError, ValueError):
        return "?"


@app.command("gate")
def gate_cmd(
    run_frames: Path = typer.Argument(..., help="Run folder of the model shown each question's own video."),
    run_wrong: Path = typer.Argument(..., help="Run folder of the same model with --videos-from shuffle."),
    steps: str = typer.Option("1", "--steps", help="Steps bucket the gate looks at: 1 | 2 | 3+ | all."),
    min_gap: float = typer.Option(10.0, "--min-gap", help="Accuracy points the own video must beat the wrong one by."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Paired bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write gate.json here."),
) -> None:
    """The perception gate: does the model score higher with its own video than with another's? Exit 1 if not."""
    from stepkit.errors import StepkitError
    from stepkit.evaluate.runner import perception_gate_runs

    try:
        res = perception_gate_runs(run_frames, run_wrong, steps=None if steps == "all" else steps,
                                   min_gap=min_gap / 100.0, n_boot=bootstrap, seed=seed, out_dir=out)
    except StepkitError as exc:
        fail(exc)
    verdict = "passes" if res["passed"] else "fails"
    acc = "–" if res["acc_frames"] is None else (f"{100 * res['acc_frames']:.1f}% with its frames vs "
                                                  f"{100 * res['acc_wrong_video']:.1f}% with another video's")
    console.print(f"perception gate ({steps}-step, {res['n']} questions): {verdict}: {acc}; {res['reason']}",
                  highlight=False)
    if not res["passed"]:
        raise typer.Exit(1)


@app.command("compare")
def compare_cmd(
    run_a: Path = typer.Argument(..., help="Baseline run folder (metrics.json + predictions.jsonl)."),
    run_b: Path = typer.Argument(..., help="The run compared against it."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for comparison.json/.md and plots."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Paired bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
) -> None:
    """Paired comparison of two runs on the same questions (difference with a paired bootstrap interval)."""
    from stepkit.errors import StepkitError
    from stepkit.evaluate.runner import compare_runs, comparison_markdown

    try:
        res = compare_runs(run_a, run_b, out, n_boot=bootstrap, seed=seed)
    except StepkitError as exc:
        fail(exc)
    console.print(comparison_markdown(res), highlight=False, markup=False)


@app.command("export-lmms")
def export_lmms_cmd(
    qa: Path = typer.Argument(..., help="A Q/R/A split (qa.jsonl or its folder)."),
    out: Path = typer.Option(..., "--out", "-o", help="Task folder to write."),
    task: str = typer.Option("stepkit_qa", "--task", help="lmms-eval task name."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Resolve videos under this root to absolute paths."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="Generation length in the task YAML."),
) -> None:
    """Write an lmms-eval task folder (YAML, utils.py, data jsonl) for a Q/R/A split."""
    from stepkit.errors import StepkitError
    from stepkit.evaluate.lmms import export_lmms

    try:
        s = export_lmms(qa, out, task=task, videos=videos, max_new_tokens=max_new_tokens)
    except StepkitError as exc:
        fail(exc)
    console.print(f"lmms-eval task {s['task']}: {s['records']} records -> {s['folder']} "
                  f"(lmms-eval --include_path {s['folder']} --tasks {s['task']})", highlight=False)


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add ``stepkit eval`` to the root app."""
    root.add_typer(app, name="eval")
