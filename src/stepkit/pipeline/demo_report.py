"""The self-contained HTML page of a demo / self-training run: graphs, sample Q/R/A, accuracy by steps."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from stepkit.io import atomic_write_text
from stepkit.pipeline.config import SelfTrainConfig
from stepkit.pipeline.selftrain import LEDGER_FILE, RunLayout, read_json_or_none

REPORT_FILE = "report.html"
SAMPLES_PER_STEPS = 2


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _accuracy_table(rows: list[dict[str, Any]]) -> str:
    buckets: list[str] = []
    for r in rows:
        for b in r["eval"].get("by_steps_bucket") or {}:
            if b not in buckets:
                buckets.append(b)
    head = "".join(f"<th>{html.escape(b)} step{'' if b == '1' else 's'}</th>" for b in buckets)
    body = []
    for r in rows:
        label = "base model" if r["round"] == 0 else f"after round {r['round']}"
        o = r["eval"]["overall"]
        cells = []
        for b in buckets:
            s = (r["eval"].get("by_steps_bucket") or {}).get(b)
            cells.append("<td>–</td>" if not s else
                         f"<td>{_pct(s['accuracy'])} [{_pct(s['ci_low'])}, {_pct(s['ci_high'])}] (n={s['n']})</td>")
        body.append(f"<tr><td>{label}</td><td>{_pct(o['accuracy'])} [{_pct(o['ci_low'])}, {_pct(o['ci_high'])}] "
                    f"(n={o['n']})</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>model</th><th>overall %</th>{head}</tr>{''.join(body)}</table>"


def _gate_table(rows: list[dict[str, Any]]) -> str:
    """Every evaluated model with its own frames vs another video's (the perception gate, 1-step questions)."""
    body = []
    for r in rows:
        g = r.get("gate")
        if not g:
            continue
        label = "base model" if r["round"] == 0 else f"after round {r['round']}"
        if g.get("acc_frames") is None:
            body.append(f"<tr><td>{label}</td><td colspan=5>{html.escape(str(g.get('reason')))}</td></tr>")
            continue
        wrong_all = ((r.get("eval_wrong_video") or {}).get("overall") or {}).get("accuracy")
        own_all = (r["eval"].get("overall") or {}).get("accuracy")
        verdict = "passes" if g["passed"] else "fails"
        body.append(f"<tr><td>{label}</td><td>{_pct(g['acc_frames'])} (n={g['n']})</td>"
                    f"<td>{_pct(g['acc_wrong_video'])}</td><td>{100 * g['gap']:+.1f} [{100 * g['ci_low']:+.1f}, "
                    f"{100 * g['ci_high']:+.1f}]</td><td><b>{verdict}</b></td>"
                    f"<td>{_pct(own_all)} vs {_pct(wrong_all)}</td></tr>")
    if not body:
        return ""
    return ("<h2>Perception gate: its own frames vs another video's</h2>"
            "<p>Each held-out question is scored again with the frames of another held-out video "
            "(<code>--videos-from shuffle</code>). A model that looks at the video loses accuracy; one that answers "
            "from the wording does not. It <b>passes</b> when its 1-step accuracy with its own frames beats the "
            "wrong-video accuracy by at least 10 points with the 95% paired interval above zero; a STEP-vs-baseline "
            "difference means little for a model that fails.</p>"
            "<table><tr><th>model</th><th>1-step, own frames %</th><th>1-step, wrong video %</th>"
            "<th>own − wrong (points) [95%]</th><th>gate</th><th>all questions: own vs wrong %</th></tr>"
            + "".join(body) + "</table>")


def _graph_section(L: RunLayout, k: int) -> str:
    from stepkit.graph.serialize import iter_graph_files, load_graph
    from stepkit.graph.show import timeline_lines

    rd = L.round(k)
    parts = []
    score = read_json_or_none(rd / "score" / "graph_score.json")
    if isinstance(score, dict):
        overall = score.get("overall", score)
        keys = [key for key, v in overall.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        cells = "".join(f"<tr><td>{html.escape(key)}</td><td>{overall[key]:.3f}</td></tr>" if isinstance(overall[key], float)
                        else f"<tr><td>{html.escape(key)}</td><td>{overall[key]}</td></tr>" for key in keys[:16])
        parts.append(f"<h3>Induced graphs against the ground truth</h3><table>{cells}</table>")
    graphs = list(iter_graph_files(rd / "graphs")) if (rd / "graphs").is_dir() else []
    if graphs:
        g = load_graph(graphs[0])
        lines = "\n".join(timeline_lines(g)[:40])
        parts.append(f"<h3>An induced graph: {html.escape(graphs[0].name)}</h3><pre>{html.escape(lines)}</pre>")
    return "".join(parts)


def _samples_section(L: RunLayout, k: int) -> str:
    path = L.round(k) / "qa" / "qa.jsonl"
    if not path.is_file():
        return ""
    picked: dict[int, list[dict[str, Any]]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            bucket = picked.setdefault(int(r["steps"]), [])
            if len(bucket) < SAMPLES_PER_STEPS:
                bucket.append(r)
    items = []
    for steps in sorted(picked):
        for r in picked[steps]:
            rationale = r.get("rationale") or []
            texts = [s["text"] if isinstance(s, dict) else str(s) for s in rationale]
            opts = "".join(f"<li>{html.escape(str(o))}</li>" for o in r.get("options") or [])
            items.append(
                f"<div class='item'><div class='meta'>{steps} step(s) · {html.escape(str(r.get('type')))} · "
                f"{html.escape(str(r.get('video')))}</div><div class='q'>{html.escape(r['question'])}</div>"
                f"{'<ol type=A>' + opts + '</ol>' if opts else ''}"
                f"<ol class='rat'>{''.join(f'<li>{html.escape(t)}</li>' for t in texts)}</ol>"
                f"<div>answer: <b>{html.escape(str(r['answer']))}</b></div></div>")
    return "<h2>Sample questions with rationales</h2>" + "".join(items)


def write_run_report(cfg: SelfTrainConfig, title: str = "stepkit run") -> Path:
    """Write ``OUT/report.html`` from a finished (or partly finished) run folder."""
    from stepkit.evaluate.report import write_plots

    L = RunLayout(cfg)
    rows = []
    ledger = L.root / LEDGER_FILE
    if ledger.is_file():
        rows = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines() if line.strip()]
    runs = [("base model" if r["round"] == 0 else f"round {r['round']}", r["eval"]) for r in rows]
    imgs = ""
    if runs:
        pngs = write_plots(L.root / "plots", runs)
        imgs = "".join(f'<img alt="{html.escape(n)}" src="data:image/png;base64,{base64.b64encode(b).decode()}">'
                       for n, b in pngs.items())
    last = max((r["round"] for r in rows if r["round"] > 0), default=None)
    qa = read_json_or_none(L.round(last) / "qa" / "summary.json") if last else None
    qa_line = ""
    if isinstance(qa, dict):
        qa_line = f"<p>Round {last} generated <b>{qa.get('records')}</b> Q/R/A records from its induced graphs.</p>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1em}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}
img{{display:block;max-width:100%;margin:.5em 0;border:1px solid #eee}}pre{{background:#f6f6f6;padding:.6em;overflow:auto}}
.item{{border-left:4px solid #69c;padding:.3em .8em;margin:.6em 0}}.meta{{color:#777;font-size:.85em}}
.q{{font-weight:600}}.rat{{color:#333;font-size:.92em}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{cfg.rounds} round(s) of induce → generate → train → eval; model <code>{html.escape(cfg.train.model)}</code>,
λ = {cfg.train.lambda_rationale}, inducer <code>{html.escape(cfg.induce.backend)}</code>; held-out questions from
{cfg.eval.videos} unseen world videos (seed {cfg.eval.seed}), 4 options each (chance 25%). A tiny random model
trained for minutes on a CPU shows the machinery end to end, not a capable model: swap in a real checkpoint
(<code>train.model</code>) for real numbers.</p>
<h2>Accuracy by reasoning steps (held-out questions)</h2>
{_accuracy_table(rows) if rows else '<p>No round has been evaluated yet.</p>'}
{_gate_table(rows)}
{imgs}
{qa_line}
<h2>Graphs</h2>
{_graph_section(L, last) if last else ''}
{_samples_section(L, last) if last else ''}
</body></html>
"""
    return atomic_write_text(L.root / REPORT_FILE, page)
