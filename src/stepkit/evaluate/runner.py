"""``evaluate``: load a benchmark, check its videos, score a model, write metrics, predictions and reports.

Run folder: ``metrics.json`` (overall / per steps bucket / per exact steps / per type, 95% bootstrap
intervals; identical bytes for identical runs), ``predictions.jsonl`` (one row per question),
``config.json``, ``summary.json`` (counts and timing), ``report.md``,
``accuracy_by_steps.png``, ``accuracy_by_type.png`` and ``report.html``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from stepkit.errors import ConfigError, DataError
from stepkit.evaluate.items import EvalItem, resolve_videos
from stepkit.evaluate.loaders import annotation_base
from stepkit.evaluate.metrics import DEFAULT_BOOTSTRAP, breakdown, faithfulness_breakdown
from stepkit.evaluate.report import write_report
from stepkit.evaluate.scoring import ScoreConfig, judge_rows, score_items
from stepkit.evaluate.tasks import get_task
from stepkit.io import atomic_write_json, atomic_write_jsonl

EVAL_VERSION = "1"
DEFAULT_TINY_FAMILY = "qwen2.5-vl"


@dataclass
class EvalConfig:
    """Everything one evaluation run depends on (written to ``config.json``)."""

    benchmark: str
    data: str
    mode: str | None = None
    videos: str | None = None
    limit: int | None = None
    frames: int = 8
    max_new_tokens: int | None = None  # None: 32, or 256 in reason mode
    loglik_norm: str = "none"
    show_options: bool = False
    batch_size: int = 8
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = 0
    backend: str = "hf"
    model: str | None = None
    endpoint: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    judge_endpoint: str | None = None
    judge_model: str | None = None
    cache: str | None = None
    videos_from: str = "own"
    graphs: str | None = None
    threads: int | None = None
    allow_outside_videos: bool = False


VIDEOS_FROM = ("own", "shuffle")
DEFAULT_MAX_NEW_TOKENS = {"reason": 256}


def new_tokens(cfg: EvalConfig, mode: str) -> int:
    """The generation length of a run: as asked, else 32 (256 when the model reasons first)."""
    return int(cfg.max_new_tokens) if cfg.max_new_tokens is not None else DEFAULT_MAX_NEW_TOKENS.get(mode, 32)


def shuffle_videos(items: list[EvalItem], seed: int) -> list[EvalItem]:
    """Each item with the frames of another video of the set (``--videos-from shuffle``), never its
    own: the other video is drawn uniformly from the set's other videos by a generator seeded with
    ``seed`` and the item id, so the choice does not depend on the order or number of items. The
    item's ``meta['frames_from']`` names the video shown."""
    import random
    from dataclasses import replace

    names: dict[str, str] = {}
    for it in items:
        if it.video_path:
            names.setdefault(it.video_path, it.video)
    paths = sorted(names)
    if len(paths) < 2:
        raise ConfigError(f"--videos-from shuffle needs questions about at least 2 different videos; "
                          f"these {len(items)} questions show {len(paths)}")
    out = []
    for it in items:
        if not it.video_path:
            out.append(it)
            continue
        others = [p for p in paths if p != it.video_path]
        other = others[random.Random(f"stepkit-shuffle:{seed}:{it.id}").randrange(len(others))]
        out.append(replace(it, video_path=other, meta={**it.meta, "frames_from": names[other]}))
    return out


def load_items(cfg: EvalConfig) -> list[EvalItem]:
    """The benchmark's items (first ``limit``), with videos resolved when frames are shown.

    Raises :class:`~stepkit.evaluate.items.MissingVideosError` (how many, which) before any model loads.
    """
    task = get_task(cfg.benchmark)
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {cfg.limit}")
    items = task.loader(cfg.data)
    if cfg.videos_from not in VIDEOS_FROM:
        raise ConfigError(f"--videos-from {cfg.videos_from!r}: choose one of {', '.join(VIDEOS_FROM)}")
    if cfg.videos_from == "shuffle" and cfg.frames <= 0:
        raise ConfigError("--videos-from shuffle shows each question another video's frames; it needs --frames > 0")
    # the wrong videos come from the whole set, so a --limit run shows each question what a full run does
    pool = items if cfg.videos_from == "shuffle" else None
    if cfg.limit is not None:
        items = items[: cfg.limit]
    if cfg.frames > 0:
        # stepkit's own records name their videos by absolute paths (stepkit.data.videos), so outside
        # the roots they may name video files (by extension) but nothing else
        roots = dict(base=annotation_base(cfg.data), confine=not cfg.allow_outside_videos,
                     outside_video_files=cfg.benchmark == "stepkit")
        if pool is not None:
            resolved = {it.id: it for it in shuffle_videos(resolve_videos(pool, cfg.videos, **roots), cfg.seed)}
            return [resolved[it.id] for it in items]
        items = resolve_videos(items, cfg.videos, **roots)
    return items


def set_threads(n: int | None) -> None:
    """Run torch with ``n`` intra-op threads (``--threads``; None leaves torch's default)."""
    if n is None:
        return
    if n < 1:
        raise ConfigError(f"--threads must be >= 1, got {n}")
    try:
        import torch
    except ImportError:  # a served model (openai) needs no torch
        return
    torch.set_num_threads(int(n))


def item_graphs(items: list[EvalItem], folder: str | os.PathLike) -> dict[str, Any]:
    """The scene graphs of the items' videos (by ``video_id``) from a folder of graph files; DataError
    naming the videos that have none."""
    from stepkit.graph.serialize import iter_graph_files, load_graph

    want = {_video_id(it) for it in items}
    got: dict[str, Any] = {}
    files = list(iter_graph_files(folder))
    # files named after their video first; the rest only when some video is still without a graph
    for f in sorted(files, key=lambda f: (f.stem not in want, f.name)):
        if want <= set(got):
            break
        if f.stem in want or f.stem not in got:
            g = load_graph(f)
            if g.video_id in want:
                got.setdefault(g.video_id, g)
    missing = sorted(want - set(got))
    if missing:
        raise DataError(f"--graphs {folder}: no scene graph for {len(missing)} of {len(want)} videos "
                        f"(first: {', '.join(missing[:5])})")
    return got


def _video_id(it: EvalItem) -> str:
    return str(it.meta.get("video_id") or Path(it.video).stem)


def score_faithfulness(rows: list[dict[str, Any]], items: list[EvalItem], graphs: dict[str, Any]) -> None:
    """Add each reasoning row's ``faithfulness`` report: its rationale (the output up to the sentence
    stating the answer) against the question's own video's graph, and the gold answer."""
    from stepkit.data.record import QRARecord, RationaleStep
    from stepkit.evaluate.scoring import rationale_of
    from stepkit.reason.faithfulness import score_rationale

    by_id = {it.id: it for it in items}
    for r in rows:
        if r.get("error") or r.get("raw") is None:
            continue
        it = by_id[r["id"]]
        rec = QRARecord(id=it.id, video_id=_video_id(it), question=it.question, answer=it.answer,
                        steps=int(it.steps or 0), type=str(it.type or ""),
                        options=list(it.options) if it.options else None, answer_index=it.answer_index,
                        rationale=[RationaleStep("", list(it.meta.get("grounding") or []))])
        r["faithfulness"] = score_rationale(rationale_of(r["raw"]), graphs[_video_id(it)], rec).to_dict()


def resolve_mode(cfg: EvalConfig, items: list[EvalItem]) -> str:
    """The scoring mode: as asked, else the task's default (open when its items have no options)."""
    task = get_task(cfg.benchmark)
    mode = cfg.mode or (task.default_mode if any(it.is_mc for it in items) else "open")
    if mode not in task.modes():
        raise ConfigError(f"--mode {mode!r} does not fit benchmark {task.name!r} (its answers are "
                          f"{task.answer_format}); choose one of {', '.join(task.modes())}")
    return mode


def build_model(cfg: EvalConfig) -> Any:
    """The VideoLLM named by ``backend``/``model``: ``hf`` loads a checkpoint folder; ``tiny`` a tiny model
    folder or a family name (built offline); ``openai`` a served model at ``endpoint``."""
    from stepkit.models import get_backend

    opts = dict(cfg.model_options)
    if cfg.backend == "openai":
        if not cfg.endpoint:
            raise ConfigError("--backend openai needs --endpoint URL (e.g. http://127.0.0.1:8000/v1)")
        return get_backend("openai", cache=cfg.cache, endpoint=cfg.endpoint, model=cfg.model, **opts)
    if cfg.backend == "tiny":
        if cfg.model and Path(cfg.model).expanduser().is_dir():
            return get_backend("hf", cache=cfg.cache, model=str(Path(cfg.model).expanduser()), **opts)
        return get_backend("tiny", cache=cfg.cache, family=cfg.model or DEFAULT_TINY_FAMILY, **opts)
    if not cfg.model:
        raise ConfigError(f"--backend {cfg.backend} needs --model PATH")
    return get_backend(cfg.backend, cache=cfg.cache, model=cfg.model, **opts)


def model_label(model: Any, cfg: EvalConfig) -> str:
    """A short human name for the model of a run."""
    mid = str(getattr(model, "model_id", "") or cfg.model or cfg.backend)
    return mid if len(mid) <= 60 else mid[:57] + "..."


def evaluate(cfg: EvalConfig, out_dir: str | os.PathLike, *, model: Any = None,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Evaluate and write the run folder; returns the metrics.

    ``model`` (any VideoLLM) overrides ``cfg.backend``/``cfg.model``. ``progress(done, total)`` is
    called after each batch.
    """
    started = time.perf_counter()
    items = load_items(cfg)
    if not items:
        raise DataError(f"{cfg.data}: no questions to evaluate")
    mode = resolve_mode(cfg, items)
    if cfg.graphs and mode != "reason":
        raise ConfigError("--graphs scores the model's rationales against the scene graphs; use it with --mode reason")
    graphs = item_graphs(items, cfg.graphs) if cfg.graphs else None
    set_threads(cfg.threads)
    judge = None
    if cfg.judge_endpoint:
        if mode != "open":
            raise ConfigError("--judge-endpoint grades open answers; use it with --mode open")
        from stepkit.models import get_backend

        judge = get_backend("openai", endpoint=cfg.judge_endpoint, model=cfg.judge_model)
    if model is None:
        model = build_model(cfg)
    sc = ScoreConfig(mode=mode, frames=cfg.frames, max_new_tokens=new_tokens(cfg, mode),
                     loglik_norm=cfg.loglik_norm, batch_size=cfg.batch_size, show_options=cfg.show_options)
    done = [0]

    def tick(k: int) -> None:
        done[0] += k
        if progress is not None:
            progress(done[0], len(items))

    rows = score_items(model, items, sc, on_item=tick)
    if judge is not None:
        judge_rows(judge, [r for r in rows if not r.get("error")], batch_size=cfg.batch_size)
    if graphs is not None:
        score_faithfulness(rows, items, graphs)
    metrics = breakdown(rows, n_boot=cfg.bootstrap, seed=cfg.seed)
    if mode == "reason":
        metrics["faithfulness"] = faithfulness_breakdown(rows, n_boot=cfg.bootstrap, seed=cfg.seed) \
            if graphs is not None else None
    metrics.update(benchmark=cfg.benchmark, data=str(cfg.data), mode=mode, model=model_label(model, cfg),
                   model_id=str(getattr(model, "model_id", "")), frames=cfg.frames, videos_from=cfg.videos_from,
                   bootstrap={"resamples": cfg.bootstrap, "seed": cfg.seed, "confidence": 0.95},
                   eval_version=EVAL_VERSION)
    out = Path(out_dir)
    atomic_write_jsonl(out / "predictions.jsonl", rows)
    atomic_write_json(out / "config.json", {**asdict(cfg), "mode": mode, "max_new_tokens": sc.max_new_tokens})
    atomic_write_json(out / "metrics.json", metrics)
    files = [p.name for p in write_report(out, metrics, rows)]
    first_error = next((r["error"] for r in rows if r.get("error")), None)
    atomic_write_json(out / "summary.json", {
        "questions": len(rows), "scored": metrics["overall"]["n"], "videos": len({it.video for it in items}),
        "mode": mode, "videos_from": cfg.videos_from,
        "model_id": metrics["model_id"], "accuracy": metrics["overall"]["accuracy"],
        "parse_failures": metrics["parse_failures"], "errors": metrics["errors"],
        "errors_by_kind": metrics.get("errors_by_kind", {}), "first_error": first_error,
        "seconds": round(time.perf_counter() - started, 3),
        "files": sorted(["metrics.json", "predictions.jsonl", "config.json", "summary.json", *files])})
    return metrics


def read_run(run_dir: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run folder's metrics and prediction rows."""
    run = Path(run_dir)
    mpath, ppath = run / "metrics.json", run / "predictions.jsonl"
    for p in (mpath, ppath):
        if not p.is_file():
            raise DataError(f"{run}: not an eval run folder (no {p.name})")
    try:
        metrics = json.loads(mpath.read_text(encoding="utf-8"))
        rows = [json.loads(line) for line in ppath.read_text(encoding="utf-8").splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise DataError(f"{run}: unreadable run file: {exc.msg}") from None
    return metrics, rows


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                 n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """Paired comparison of run B against run A; with ``out_dir``, writes ``comparison.json``,
    ``comparison.md`` and the two-model plots."""
    from stepkit.evaluate.metrics import paired_comparison
    from stepkit.evaluate.report import write_plots

    ma, ra = read_run(run_a)
    mb, rb = read_run(run_b)
    la, lb = str(ma.get("model") or run_a), str(mb.get("model") or run_b)
    if la == lb:
        la, lb = f"{la} ({Path(run_a).name})", f"{lb} ({Path(run_b).name})"
    res = paired_comparison(ra, rb, n_boot=n_boot, seed=seed, label_a=la, label_b=lb)
    res.update(run_a=str(run_a), run_b=str(run_b), bootstrap={"resamples": n_boot, "seed": seed})
    if out_dir is not None:
        from stepkit.io import atomic_write_text

        out = Path(out_dir)
        atomic_write_json(out / "comparison.json", res)
        atomic_write_text(out / "comparison.md", comparison_markdown(res))
        write_plots(out, [(la, ma), (lb, mb)])
    return res


def comparison_markdown(res: dict[str, Any]) -> str:
    """A paired comparison as markdown."""
    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * v:.1f}"

    lines = [f"# {res['b']} vs {res['a']}", "", f"{res['common']} shared questions.", "",
             "| group | n | acc A % | acc B % | B − A (pts) [95% CI] | relative | P(B ≤ A) |",
             "|---|---:|---:|---:|---|---:|---:|"]
    groups = [("overall", res["overall"])] + [(f"steps {k}", v) for k, v in res["by_steps_bucket"].items()] + \
             [(f"type {k}", v) for k, v in res["by_type"].items()]
    for name, c in groups:
        ci = f" [{pct(c.get('diff_ci_low'))}, {pct(c.get('diff_ci_high'))}]" if "diff_ci_low" in c else ""
        rel = "–" if c["relative_improvement"] is None else f"{100 * c['relative_improvement']:+.1f}%"
        lines.append(f"| {name} | {c['n']} | {pct(c['acc_a'])} | {pct(c['acc_b'])} | {pct(c['diff'])}{ci} | {rel} | "
                     f"{c.get('p_b_not_better', '–')} |")
    return "\n".join(lines) + "\n"


def perception_gate_runs(run_frames: str | os.PathLike, run_wrong: str | os.PathLike, *, steps: str | None = "1",
                         min_gap: float = 0.10, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                         out_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The perception gate (:func:`stepkit.evaluate.metrics.perception_gate`) of two run folders: the
    model with each question's own frames, and with ``--videos-from shuffle``; with ``out_dir``,
    writes ``gate.json``."""
    from stepkit.evaluate.metrics import perception_gate

    mf, rf = read_run(run_frames)
    mw, rw = read_run(run_wrong)
    if mw.get("videos_from") != "shuffle":
        raise DataError(f"{run_wrong}: not a wrong-video run (evaluate it with --videos-from shuffle)")
    if mf.get("videos_from", "own") != "own" or not mf.get("frames"):
        raise DataError(f"{run_frames}: not a run with each question's own frames")
    res = perception_gate(rf, rw, steps=steps, min_gap=min_gap, n_boot=n_boot, seed=seed)
    res.update(run_frames=str(run_frames), run_wrong_video=str(run_wrong))
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / "gate.json", res)
    return res
