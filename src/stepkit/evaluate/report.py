"""Run reports: a markdown table, PNG plots (accuracy by steps and by type, one bar per model) and one
self-contained HTML page (inline PNGs, sample items with predictions)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Sequence

from stepkit.io import atomic_write_bytes, atomic_write_text

PLOT_STEPS = "accuracy_by_steps.png"
PLOT_TYPES = "accuracy_by_type.png"
SAMPLES = 24


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _cell(s: dict[str, Any]) -> str:
    if s.get("accuracy") is None:
        return "–"
    return f"{_pct(s['accuracy'])} [{_pct(s['ci_low'])}, {_pct(s['ci_high'])}]"


def markdown_table(metrics: dict[str, Any]) -> str:
    """The run's metrics as markdown: overall, by steps bucket, by exact steps, by type (accuracy %, 95% CI)."""
    m = metrics
    lines = [f"# {m.get('benchmark', '?')} · {m.get('model', '?')} · {m.get('mode', '?')}", "",
             f"{m['overall']['n']} questions; accuracy {_cell(m['overall'])} (%, 95% bootstrap interval); "
             f"parse failures {m.get('parse_failures', 0)}; errors {m.get('errors', 0)}.", ""]
    for title, key in (("Reasoning steps (bucket)", "by_steps_bucket"), ("Reasoning steps (exact)", "by_steps"),
                       ("Type", "by_type")):
        lines += [f"## {title}", "", "| group | n | accuracy % [95% CI] |", "|---|---:|---|"]
        for k, s in m.get(key, {}).items():
            lines.append(f"| {k} | {s['n']} | {_cell(s)} |")
        lines.append("")
    if m.get("judge"):
        j = m["judge"]
        lines += ["## LLM judge", "", f"accuracy {_cell(j['accuracy'])}; mean score {j['score']} / 5; "
                  f"unreadable {j['unreadable']}", ""]
    if m.get("faithfulness"):
        lines += ["## Rationale faithfulness (against the scene graphs)", "",
                  "| steps | n | score [95% CI] | grounded | temporal IoU | reaches answer | hallucinating | claims |",
                  "|---|---:|---|---:|---:|---:|---:|---:|"]
        f = m["faithfulness"]
        for k, g in [("all", f["overall"]), *f["by_steps_bucket"].items()]:
            lines.append(f"| {k} | {g['n']} | {_fcell(g)} | {_num(g['grounded_fraction'])} | {_num(g['temporal_iou'])} | "
                         f"{_num(g['reaches_answer'])} | {_num(g['hallucination_rate'])} | {_num(g['claims_per_rationale'], 1)} |")
        lines.append("")
    return "\n".join(lines)


def _num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _fcell(g: dict[str, Any]) -> str:
    if g.get("mean") is None:
        return "–"
    return f"{g['mean']:.3f} [{g['ci_low']:.3f}, {g['ci_high']:.3f}]"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_groups(runs: Sequence[tuple[str, dict[str, Any]]], key: str, title: str, xlabel: str) -> bytes:
    """Grouped bars (one colour per run) of accuracy per group of ``key`` with 95% interval whiskers; PNG bytes."""
    plt = _plt()
    import numpy as np

    groups: list[str] = []
    for _, m in runs:
        for g in m.get(key, {}):
            if g not in groups:
                groups.append(g)
    fig, ax = plt.subplots(figsize=(min(14.0, max(4.0, 1.1 * len(groups) * max(1, len(runs)) ** 0.5 + 2)), 3.6),
                           dpi=100)
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(groups))
    for i, (label, m) in enumerate(runs):
        stats = [m.get(key, {}).get(g) for g in groups]
        acc = [s["accuracy"] if s and s["accuracy"] is not None else np.nan for s in stats]
        lo = [a - s["ci_low"] if s and s["accuracy"] is not None else 0 for a, s in zip(acc, stats)]
        hi = [s["ci_high"] - a if s and s["accuracy"] is not None else 0 for a, s in zip(acc, stats)]
        ax.bar(x + (i - (len(runs) - 1) / 2) * width, acc, width, yerr=[lo, hi], capsize=3, label=label)
    ax.set_xticks(x)
    counts = [max((m.get(key, {}).get(g) or {}).get("n", 0) for _, m in runs) for g in groups]
    ax.set_xticklabels([f"{g}\nn={c}" for g, c in zip(groups, counts)], rotation=30 if len(groups) > 8 else 0, ha="right" if len(groups) > 8 else "center")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def write_plots(out_dir: str | Path, runs: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, bytes]:
    """Write the accuracy-by-steps and accuracy-by-type PNGs; returns their bytes by file name."""
    out = Path(out_dir)
    pngs = {PLOT_STEPS: plot_groups(runs, "by_steps_bucket", "Accuracy by reasoning steps", "steps"),
            PLOT_TYPES: plot_groups(runs, "by_type", "Accuracy by question type", "type")}
    for name, data in pngs.items():
        atomic_write_bytes(out / name, data)
    return pngs


def _table_html(m: dict[str, Any], key: str, title: str) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{s['n']}</td><td>{_cell(s)}</td></tr>"
                   for k, s in m.get(key, {}).items())
    return (f"<h3>{html.escape(title)}</h3><table><tr><th>group</th><th>n</th><th>accuracy % [95% CI]</th></tr>"
            f"{rows}</table>")


def _samples(rows: Sequence[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The first ``k/2`` wrong and the first right items (deterministic), in file order."""
    wrong = [r for r in rows if not r.get("correct")][: k // 2]
    right = [r for r in rows if r.get("correct")][: k - len(wrong)]
    keep = {id(r) for r in wrong + right}
    return [r for r in rows if id(r) in keep]


def html_page(metrics: dict[str, Any], rows: Sequence[dict[str, Any]], pngs: dict[str, bytes]) -> str:
    """One self-contained HTML page: headline, tables, inline plots, sample items with predictions."""
    m = metrics
    e = html.escape
    imgs = "".join(f'<img alt="{e(n)}" src="data:image/png;base64,{base64.b64encode(b).decode()}">'
                   for n, b in pngs.items())
    items = []
    for r in _samples(rows, SAMPLES):
        opts = ""
        if r.get("options"):
            lis = []
            for i, o in enumerate(r["options"]):
                cls = " ".join(c for c, on in (("gold", i == r.get("answer_index")), ("pred", i == r.get("pred_index"))) if on)
                lis.append(f'<li class="{cls}">{e(str(o))}</li>')
            opts = "<ol type='A'>" + "".join(lis) + "</ol>"
        verdict = "right" if r.get("correct") else "wrong"
        extra = f"<div class='raw'>output: {e(str(r.get('raw')))}</div>" if r.get("raw") is not None else ""
        if r.get("error"):
            extra += f"<div class='raw'>error: {e(str(r['error']))}</div>"
        if isinstance(r.get("faithfulness"), dict):
            fr = r["faithfulness"]
            extra += (f"<div class='meta'>faithfulness {fr['score']:.2f} · grounded {fr['grounded_fraction']:.2f} of "
                      f"{fr['n_claims']} claims · reaches answer {e(str(fr['reaches_answer']))}"
                      + (f" · not in the video: {e(', '.join(fr['hallucinated_entities']))}"
                         if fr["hallucinated_entities"] else "") + "</div>")
        items.append(
            f"<div class='item {verdict}'><div class='meta'>{e(str(r['id']))} · steps {e(str(r.get('steps')))} · "
            f"{e(str(r.get('type')))} · {e(str(r.get('video')))}</div><div class='q'>{e(str(r['question']))}</div>"
            f"{opts}<div>gold: <b>{e(str(r.get('answer')))}</b> · prediction: <b>{e(str(r.get('prediction')))}</b> "
            f"({verdict})</div>{extra}</div>")
    judge = ""
    if m.get("judge"):
        j = m["judge"]
        judge = f"<p>LLM judge: accuracy {_cell(j['accuracy'])} %, mean score {j['score']} / 5.</p>"
    if m.get("faithfulness"):
        f = m["faithfulness"]
        rows_f = "".join(f"<tr><td>{e(k)}</td><td>{g['n']}</td><td>{_fcell(g)}</td><td>{_num(g['grounded_fraction'])}</td>"
                         f"<td>{_num(g['temporal_iou'])}</td><td>{_num(g['reaches_answer'])}</td></tr>"
                         for k, g in [("all", f["overall"]), *f["by_steps_bucket"].items()])
        judge += ("<h3>Rationale faithfulness</h3><table><tr><th>steps</th><th>n</th><th>score [95% CI]</th>"
                  f"<th>grounded</th><th>temporal IoU</th><th>reaches answer</th></tr>{rows_f}</table>")
    if m.get("videos_from") == "shuffle":
        judge += "<p><b>Wrong-video control:</b> each question was shown the frames of another video.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stepkit eval · {e(str(m.get('benchmark')))} · {e(str(m.get('model')))}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1em}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}
img{{max-width:48%;margin:.5em 1% .5em 0;border:1px solid #eee}}
.item{{border-left:4px solid #ccc;padding:.3em .8em;margin:.6em 0}}.right{{border-color:#3a3}}.wrong{{border-color:#c33}}
.meta{{color:#777;font-size:.85em}}.q{{font-weight:600}}li.gold{{color:#180;font-weight:600}}li.pred{{text-decoration:underline}}
.raw{{font-family:monospace;font-size:.85em;color:#555;white-space:pre-wrap}}
</style></head><body>
<h1>{e(str(m.get('benchmark')))} · {e(str(m.get('model')))}</h1>
<p>mode <b>{e(str(m.get('mode')))}</b> · {m['overall']['n']} questions · accuracy <b>{_cell(m['overall'])}</b> %
(95% bootstrap interval, {m.get('bootstrap', {}).get('resamples', '?')} resamples, seed {m.get('bootstrap', {}).get('seed', '?')})
· parse failures {m.get('parse_failures', 0)} · errors {m.get('errors', 0)}</p>{judge}
{imgs}
{_table_html(m, 'by_steps_bucket', 'By reasoning steps')}
{_table_html(m, 'by_steps', 'By exact step count')}
{_table_html(m, 'by_type', 'By type')}
<h2>Sample items</h2>
{''.join(items)}
</body></html>
"""


def write_report(out_dir: str | Path, metrics: dict[str, Any], rows: Sequence[dict[str, Any]]) -> list[Path]:
    """Write ``report.md``, the two plots and ``report.html`` for one run; returns the paths."""
    out = Path(out_dir)
    label = str(metrics.get("model") or "model")
    pngs = write_plots(out, [(label, metrics)])
    paths = [atomic_write_text(out / "report.md", markdown_table(metrics))]
    paths += [out / n for n in pngs]
    paths.append(atomic_write_text(out / "report.html", html_page(metrics, rows, pngs)))
    return paths
