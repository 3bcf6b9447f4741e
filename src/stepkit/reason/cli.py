"""`stepkit generate`, `stepkit qa verify|show|export` and `stepkit bench generate`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from stepkit.cli_common import console, fail

qa_app = typer.Typer(help="Inspect, verify and export Q/R/A records.", no_args_is_help=True)

FORMAT_HELP = "jsonl (qa.jsonl only), llava, chatml, trl, video-r1 or hf (a datasets folder), besides qa.jsonl."
PATHS_HELP = "Video paths: absolute (default) or relative (to the folder of the file holding them)."


def generate_cmd(
    graphs_dir: Path = typer.Argument(..., help="Folder of STSG *.json graphs (or one graph file)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for qa.jsonl, the export and summary.json."),
    per_video: int = typer.Option(50, "--per-video", "-k", help="Records to generate per video."),
    steps: str = typer.Option("1:0.2,2:0.3,3:0.3,4:0.2", "--steps", help="Step mix, STEPS:WEIGHT pairs (1..8)."),
    types: List[str] = typer.Option(["all"], "--types", help="Question types (comma list, optional :weight), or all."),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed and graphs give identical qa.jsonl."),
    fmt: str = typer.Option("jsonl", "--format", "-f", help=FORMAT_HELP),
    options: int = typer.Option(4, "--options", help="Multiple-choice options per record (0: none)."),
    combined: bool = typer.Option(False, "--combined", help="Export one 'rationale, then answer' sample per record."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Check graphs before use."),
    full_validation: bool = typer.Option(False, "--full-validation", help="Also run the full JSON Schema check."),
    videos_dir: Optional[Path] = typer.Option(None, "--videos-dir", help="Folder of the videos (default: as the graphs name them)."),
    paths: str = typer.Option("absolute", "--paths", help=PATHS_HELP),
    margin: float = typer.Option(1.0, "--margin", help="Seconds by which every order a question relies on must be decided."),
    answer_excess: float = typer.Option(
        1.0, "--answer-excess", help="Cap on how many answers more than chance a value may win where it is offered, "
        "in its slot and over all slots (questions of --answer-excess-types). Lower is stricter against "
        "text-only guessing, at a cost in records."),
    answer_excess_types: str = typer.Option(
        "action", "--answer-excess-types", help="Question types the answer cap applies to: comma-separated, "
        "all, or none (no cap)."),
) -> None:
    """Generate graph-grounded multi-step questions with rationales and answers."""
    from stepkit.errors import StepkitError
    from stepkit.reason.generate import GenerateConfig, generate

    cfg = GenerateConfig(per_video=per_video, steps=steps, types=",".join(types), seed=seed, options=options,
                         validate="full" if full_validation else validate,
                         videos_dir=str(videos_dir) if videos_dir is not None else None, paths=paths)
    if margin < 0:
        from stepkit.errors import ConfigError

        fail(ConfigError(f"--margin must be 0 or more seconds, got {margin}"))
    cfg.margin = margin
    if answer_excess < 0:
        from stepkit.errors import ConfigError

        fail(ConfigError(f"--answer-excess must be 0 or more, got {answer_excess}"))
    cfg.answer_excess = answer_excess
    cfg.answer_excess_types = answer_excess_types
    try:
        summary = generate(graphs_dir, out, cfg, fmt=fmt, combined=combined)
    except StepkitError as exc:
        fail(exc)
    console.print(f"{summary['records']} records from {summary['graphs']} graphs in {summary['seconds']} s "
                  f"({summary['records_per_second']} records/s) → {out / 'qa.jsonl'}", highlight=False)
    console.print("steps: " + ", ".join(f"{k}: {v:.0%}" for k, v in summary["step_mix"].items())
                  + "   types: " + ", ".join(f"{k} {v}" for k, v in summary["by_type"].items()), highlight=False)
    if summary["drops"]:
        console.print("drops: " + ", ".join(f"{k} {v}" for k, v in summary["drops"].items()), highlight=False)
    for f in summary["failed"]:
        console.print(f"[yellow]skipped[/yellow] {f['error']}", highlight=False)
    if not summary["records"]:  # nothing to train on is a failure, even when no graph was bad
        n = summary["graphs"] + len(summary["failed"])
        fail(f"{graphs_dir}: no records written: " + (
            f"{len(summary['failed'])} of {n} graph files failed (see {out / 'summary.json'})" if n
            else "no graph files (*.json) there"))
    if summary["failed"]:
        raise typer.Exit(2)  # some graphs failed (recorded in summary.json); the rest were used


@qa_app.command("verify")
def verify_cmd(
    qa_dir: Path = typer.Argument(..., help="Folder with qa.jsonl (or the file)."),
    graphs_dir: Path = typer.Argument(..., help="Folder of the graphs the records were made from."),
    show: int = typer.Option(20, "--show", help="How many mismatches to print."),
) -> None:
    """Re-execute every record's program on its graph; exit 1 on any mismatch."""
    from stepkit.errors import StepkitError
    from stepkit.reason.verify import verify

    try:
        report = verify(qa_dir, graphs_dir)
    except StepkitError as exc:
        fail(exc)
    for m in report.mismatches[:show]:
        console.print(f"{m.record_id}: {m.problem}", highlight=False, soft_wrap=True)
    console.print(f"{report.checked - len(report.mismatches)}/{report.checked} records verified, "
                  f"{len(report.mismatches)} mismatches", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@qa_app.command("show")
def show_cmd(
    qa_dir: Path = typer.Argument(..., help="Folder with qa.jsonl (or the file)."),
    n: int = typer.Option(5, "--n", help="How many records to print."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Only records with this many steps."),
    qtype: Optional[str] = typer.Option(None, "--type", help="Only records of this type."),
) -> None:
    """Print records readably: question, options, answer, rationale with grounding, program."""
    from stepkit.data.record import iter_records
    from stepkit.errors import StepkitError
    from stepkit.reason.verify import record_lines

    shown = 0
    try:
        for rec in iter_records(qa_dir):
            if (steps is not None and rec.steps != steps) or (qtype and rec.type != qtype):
                continue
            for line in record_lines(rec):
                console.print(line, highlight=False, soft_wrap=True)
            shown += 1
            if shown >= n:
                break
    except StepkitError as exc:
        fail(exc)


@qa_app.command("export")
def export_cmd(
    qa_dir: Path = typer.Argument(..., help="Folder with qa.jsonl (or the file)."),
    fmt: str = typer.Option(..., "--format", "-f", help="llava, chatml, trl, video-r1 or hf."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: QA_DIR/<format>; hf: QA_DIR/hf)."),
    combined: bool = typer.Option(False, "--combined", help="One 'rationale, then answer' sample per record."),
    with_options: bool = typer.Option(False, "--with-options", help="Show multiple-choice options in the prompt."),
    videos_dir: Optional[Path] = typer.Option(None, "--videos-dir", help="Look for the videos in VIDEOS_DIR first."),
    paths: str = typer.Option("absolute", "--paths", help=PATHS_HELP),
) -> None:
    """Export records to a training format."""
    from stepkit.data.export import default_out, export_report
    from stepkit.errors import StepkitError

    target = out or default_out(qa_dir, fmt)
    try:
        rep = export_report(qa_dir, target, fmt, combined=combined, with_options=with_options, videos_dir=videos_dir,
                            paths=paths)
    except StepkitError as exc:
        fail(exc)
    console.print(f"wrote {rep['path']} ({rep['samples']} samples)", highlight=False)
    if rep["missing_video_count"]:
        console.print(f"[yellow]warning[/yellow] {rep['missing_video_count']} videos not found, e.g. "
                      f"{rep['missing_videos'][0]} (use --videos-dir)", highlight=False)


@qa_app.command("refine")
def refine_cmd(
    qa_dir: Path = typer.Argument(..., help="Folder with qa.jsonl (or the file)."),
    graphs_dir: Path = typer.Argument(..., help="Folder of the graphs the records were made from."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for the reworded qa.jsonl."),
    model: Optional[str] = typer.Option(None, "--model", help="Checkpoint folder, hub id, or tiny:FAMILY."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="OpenAI-compatible server URL."),
) -> None:
    """Reword questions and rationales with an LLM, keeping a rewording only if it stays faithful."""
    from stepkit.errors import StepkitError
    from stepkit.models.registry import open_model
    from stepkit.reason.refine import refine_records

    try:
        summary = refine_records(qa_dir, graphs_dir, open_model(model, endpoint), out)
    except StepkitError as exc:
        fail(exc)
    console.print(f"{summary['reworded']} reworded, {summary['kept_original']} kept as they were "
                  f"({', '.join(f'{k} {v}' for k, v in summary['rejected_by_reason'].items()) or 'none'})",
                  highlight=False)


def bench_generate_cmd(
    videos: str = typer.Option("20,200", "--videos", help="Comma list of video counts to measure."),
    per_video: int = typer.Option(50, "--per-video", help="Records per video."),
    graphs: Optional[Path] = typer.Option(None, "--graphs", help="Use these graphs (first N files) instead of world graphs."),
    work: Optional[Path] = typer.Option(None, "--work", help="Scratch folder (default: a temporary one)."),
    seed: int = typer.Option(0, "--seed", help="World and generation seed."),
) -> None:
    """Throughput (verified records/s) and peak memory of `stepkit generate` at several sizes."""
    from stepkit.errors import StepkitError
    from stepkit.reason.bench import run_bench

    try:
        rows = run_bench([int(v) for v in videos.split(",") if v.strip()], per_video=per_video, graphs=graphs,
                         work=work, seed=seed)
    except StepkitError as exc:
        fail(exc)
    console.print("| videos | records | wall s | verified records/s (wall) | CPU s | records/CPU-s | peak RSS MiB "
                  "| verify mismatches | warm-up s (1 graph, cold) |", highlight=False, soft_wrap=True)
    console.print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|", highlight=False)
    for r in rows:
        console.print(f"| {r['videos']} | {r['records']} | {r['seconds']:.2f} | {r['records_per_second']:.0f} | "
                      f"{r['cpu_seconds']:.2f} | {r['records'] / max(r['cpu_seconds'], 1e-9):.0f} | "
                      f"{r['peak_rss_mib']:.1f} | {r['mismatches']} | {r['warmup_seconds']:.2f} |",
                      highlight=False, soft_wrap=True)
    console.print("generator: " + ("compiled (mypyc)" if rows and rows[0].get("compiled") else
                                   "pure Python (a non-editable `pip install .` compiles it: ~1.5× faster)"),
                  highlight=False)
    if len(rows) >= 2:
        console.print(f"memory growth {rows[0]['videos']}→{rows[-1]['videos']} videos: "
                      f"{rows[-1]['peak_rss_mib'] / rows[0]['peak_rss_mib']:.2f}×", highlight=False)


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add the verbs to the root app and the bench app."""
    root.command("generate")(generate_cmd)
    from stepkit.reason.audit_cli import audit_cmd

    qa_app.command("audit")(audit_cmd)
    root.add_typer(qa_app, name="qa")
    bench.command("generate")(bench_generate_cmd)
