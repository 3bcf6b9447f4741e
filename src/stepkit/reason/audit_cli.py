"""`stepkit qa audit`: the data-quality audit of a Q/R/A folder (see :mod:`stepkit.reason.audit`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from stepkit.cli_common import console, fail


def audit_cmd(
    qa_dir: Path = typer.Argument(..., help="Folder with qa.jsonl (or the file)."),
    graphs_dir: Path = typer.Argument(..., help="Folder of the graphs the records were made from."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Reference question set for the diversity "
                                             "figures (a STAR JSON file, e.g. ../shared/data/star/val_dev.json)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write audit.json / audit.md "
                                       "(default: the QA folder)."),
    margin: float = typer.Option(1.0, "--margin", help="Seconds an order or a window must be decided by."),
    folds: int = typer.Option(5, "--folds", help="Folds by video of the blind baseline."),
    seed: int = typer.Option(0, "--seed", help="Seed of the blind baseline's video folds."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when a quality bar is missed (0 no-op steps, "
                                "references, true distractors, orders under the margin, slash labels; <= 2% "
                                "implausible pairs; blind baseline within 5 points of chance)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
) -> None:
    """Measure a Q/R/A set: no-op steps, missing references, true distractors, plausibility, margins,
    wording, answer concentration, a blind text-only baseline and diversity vs a reference."""
    from rich.table import Table

    from stepkit.errors import StepkitError
    from stepkit.io import dumps_json
    from stepkit.reason.audit import audit, failed_checks, summary_rows, write_audit

    try:
        report = audit(qa_dir, graphs_dir, reference=reference, margin=margin, folds=folds, seed=seed)
        path = write_audit(report, out or (qa_dir if qa_dir.is_dir() else qa_dir.parent))
    except StepkitError as exc:
        fail(exc)
    if as_json:
        print(dumps_json(report), end="")
    else:
        t = Table(title=f"Q/R/A audit: {qa_dir}")
        for col in ("check", "found", "note"):
            t.add_column(col)
        for row in summary_rows(report):
            t.add_row(*row)
        console.print(t)
        b = Table(title="Blind baseline (question + options only, held-out videos)")
        for col in ("type", "n", "blind accuracy", "chance", "points above chance"):
            b.add_column(col, justify="right" if col != "type" else "left")
        for qt, d in report["blind_baseline"].get("by_type", {}).items():
            b.add_row(qt, str(d["n"]), f"{100 * d['accuracy']:.1f}%", f"{100 * d['chance']:.1f}%",
                      f"{100 * d['above_chance']:+.1f}")
        console.print(b)
        d = Table(title="Diversity")
        d.add_column("figure")
        d.add_column("this set", justify="right")
        d.add_column("reference", justify="right")
        ours, ref = report["diversity"], report.get("reference") or {}
        for key in ("questions", "distinct_question_ratio", "skeletons", "skeleton_ratio", "anchor_share",
                    "anchor_share_multi_step", "templates", "mean_question_words"):
            d.add_row(key.replace("_", " "), _v(ours.get(key)), _v(ref.get(key)))
        d.add_row("phrasings per template (min / median)", _ppt(ours), _ppt(ref))
        console.print(d)
        console.print(f"wrote {path}", highlight=False)
    missed = failed_checks(report)
    if strict and missed:
        console.print("[red]quality bars missed:[/red] " + "; ".join(missed), highlight=False)
        raise typer.Exit(1)


def _v(v: object) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _ppt(d: dict) -> str:
    p = d.get("phrasings_per_template") or {}
    return f"{p.get('min', '–')} / {p.get('median', '–')}" if p else "–"
