"""The paper's Table 2 at CPU scale: does training on rationales help multi-step questions?

Arms (all with the same optimizer steps after a shared base model, per training seed):

- ``base``: a tiny Video-LLM trained from scratch on single-step perception Q/A only (answers
  only), then trained further on the same kind of data;
- ``answer-only``: the base model trained on STEP records from induced graphs with λ = 0;
- ``step``: the same records with λ = 1 (L = L_answer + L_rationale);
- ``oracle``: STEP records from the ground-truth graphs, λ = 1 (the paper's perfect-teacher control).

Every arm is scored on questions from held-out world videos (another seed, never trained on, never
tuned on), by reasoning steps, over several training seeds; the STEP − answer-only difference gets a
paired bootstrap interval (resampling questions, seeds kept paired).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stepkit.errors import ConfigError
from stepkit.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from stepkit.pipeline.config import build_dataclass, read_yaml
from stepkit.pipeline.stages import OnStage, Stage, resume_if_checkpointed, run_stages, save_run_config
from stepkit.train.perception import parse_mix
from stepkit.train.vision_pretrain import HEADS, TARGETS

ARMS = ("base", "answer-only", "step", "oracle")
START = "start"  # the starting model every arm trains from (the output of the perception stage)
CONTROLS = ("frames", "blind", "wrong-video")  # own frames; --frames 0; --videos-from shuffle
_EVAL_DIRS = {"frames": "eval", "blind": "eval_blind", "wrong-video": "eval_wrong_video"}
_PREP = ("world", "heldout", "questions", "perception-world", "perception-questions", "caption-data", "perception-data",
         "model")
_DATA = ("induce", "score", "base-data", "step-data", "oracle-data")
_LEARN_TO_SEE = ("vision-pretrain", "caption-train", "perception-train")  # the starting model
BUCKETS = ("1", "2", "3+")
PERCEPTION_TYPES = "attribute,relation,action,existence"
PAPER_RELATIVE_GAIN = 0.213  # STEP vs its baseline on STAR >= 3-step questions (Qiu et al., CVPR 2025)


def _f(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class ReplicateConfig:
    """Everything the replication study depends on (saved as ``OUT/config.yaml``)."""

    out: str = _f("runs/replicate", "Run folder.")
    family: str = _f("qwen2.5-vl", "Tiny model family (`stepkit models list`).")
    tiny_args: list[str] = _f([], "More `stepkit models tiny` options, verbatim (model size).")
    seeds: list[int] = _f([0, 1, 2], "Training seeds of the arms (data order); each runs every arm.")
    start_seed: int = _f(0, "Seed of the starting model's weights and of its perception stage.")
    train_videos: int = _f(24, "Training world videos.")
    train_seed: int = _f(0, "World seed of the training videos.")
    heldout_videos: int = _f(12, "Held-out world videos (questions from their ground-truth graphs).")
    heldout_seed: int = _f(5000, "World seed of the held-out videos (never a training seed).")
    duration: str = _f("10", "Seconds per world video (or a range such as 8-12).")
    size: str = _f("320x180", "World frame size.")
    induce_backend: str = _f("world", "Inducer for the STEP arms' graphs (world: from pixels alone).")
    perception_videos: int = _f(96, "World videos of the perception stage (their own seed; never held out).")
    perception_seed: int = _f(100, "World seed of the perception videos.")
    perception_per_video: int = _f(40, "Dense perception records per perception video (`stepkit perception`).")
    perception_mix: str = _f("describe:1,objects:3,colour:3,exists:2,left-right:2", "Kinds and weights of the perception records.")
    perception_questions_per_video: int = _f(40, "One-step generated questions per perception video, mixed in.")
    vision_steps: int = _f(400, "Steps of dense vision pretraining (`stepkit pretrain-vision`) on the perception videos' "
                                "graphs before any language stage; 0 skips it (and the caption stage).")
    vision_head: str = _f("words", "pretrain-vision --head: words (the decoder's word embeddings), linear, or vectors "
                                   "(each token regressed onto the sum of those embeddings).")
    vision_window: float = _f(1.0, "pretrain-vision --window: seconds of video per pretraining clip (the video's "
                                   "duration matches the language stages' frame spacing).")
    vision_targets: str = _f("objects", "pretrain-vision --targets: objects (labels, colours) or events (also the verbs "
                                        "and predicates of what each token covers).")
    vision_centre: bool = _f(False, "pretrain-vision --centre: fold the mean visual token into the projector's bias, so "
                                    "the decoder's input norm passes on what differs between tokens.")
    vision_token_scale: float = _f(0.0, "pretrain-vision --token-scale: with vision_centre, the visual tokens' RMS as a "
                                        "multiple of the text embeddings' (0 keeps it).")
    caption_steps: int = _f(1000, "Steps of the caption stage (what-is-in-the-video lists, vision frozen) between the "
                                  "vision pretraining and the perception stage.")
    caption_mix: str = _f("contents:1,colours:1", "Caption kinds of the caption stage (`stepkit perception --mix`; "
                                                  "one record of each per perception video).")
    captions_in_perception: bool = _f(True, "Mix the caption records into the perception stage too, so that the decoder "
                                            "keeps reading the frames while it learns multiple choice.")
    perception_steps: int = _f(1500, "Optimizer steps of the perception stage (the starting model).")
    base_per_video: int = _f(40, "Single-step perception records per training video (base arm data).")
    step_per_video: int = _f(40, "STEP records per training video.")
    step_mix: str = _f("1:0.25,2:0.25,3:0.25,4:0.25", "Step mix of the STEP records.")
    heldout_per_video: int = _f(30, "Held-out questions per video.")
    heldout_mix: str = _f("1:0.34,2:0.33,3:0.33", "Step mix of the held-out questions.")
    arm_steps: int = _f(200, "Optimizer steps of every arm on top of the starting model.")
    learning_rate: float = _f(1e-3, "Peak learning rate (full fine-tuning of a model trained from scratch).")
    batch_size: int = _f(8, "Samples per optimizer step.")
    num_frames: int = _f(4, "Frames per clip in training and evaluation.")
    train_vision: bool = _f(False, "Train the vision tower in the language stages too (without vision pretraining a "
                                   "model trained from scratch has no vision to freeze).")
    gate_min_gap: float = _f(10.0, "Perception gate: points the own video must beat another video's by (1-step questions).")
    shuffle_seed: int = _f(0, "Seed of the wrong-video control (the same wrong videos for every model).")
    bootstrap: int = _f(2000, "Bootstrap resamples for the intervals.")
    eval_bootstrap: int = _f(200, "Bootstrap resamples inside each `stepkit eval` stage (its own metrics.json).")
    workers: int = _f(1, "Stages run side by side (seeds' chains; induction beside the perception stage).")
    threads: int = _f(1, "torch threads of each training / evaluation process (--threads).")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for saving with the run)."""
        return asdict(self)


def load_replicate_config(path: str | Path) -> ReplicateConfig:
    """Read and validate a replication YAML config."""
    cfg = build_dataclass(ReplicateConfig, read_yaml(path), "", str(path))
    if not cfg.seeds:
        raise ConfigError(f"{path}: seeds: give at least one training seed")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"{path}: seeds: {cfg.seeds} repeats a seed")
    if cfg.heldout_seed == cfg.train_seed:
        raise ConfigError(f"{path}: heldout_seed: must differ from train_seed {cfg.train_seed}")
    if cfg.perception_seed in (cfg.heldout_seed, cfg.train_seed):
        raise ConfigError(f"{path}: perception_seed: must differ from train_seed and heldout_seed")
    if cfg.vision_head not in HEADS:
        raise ConfigError(f"{path}: vision_head: {', '.join(HEADS)}, got {cfg.vision_head!r}")
    if cfg.vision_window <= 0:
        raise ConfigError(f"{path}: vision_window: seconds > 0, got {cfg.vision_window}")
    if cfg.vision_targets not in TARGETS:
        raise ConfigError(f"{path}: vision_targets: {' or '.join(TARGETS)}, got {cfg.vision_targets!r}")
    if cfg.vision_token_scale < 0 or (cfg.vision_token_scale and not cfg.vision_centre):
        raise ConfigError(f"{path}: vision_token_scale must be >= 0 and needs vision_centre: true")
    if cfg.vision_steps < 0 or cfg.caption_steps < 0:
        raise ConfigError(f"{path}: vision_steps and caption_steps must be >= 0")
    for name in ("perception_steps", "arm_steps", "batch_size", "num_frames", "train_videos", "heldout_videos",
                 "perception_videos", "perception_per_video", "workers", "threads"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{path}: {name}: must be at least 1")
    if cfg.heldout_videos < 2:
        raise ConfigError(f"{path}: heldout_videos: the wrong-video control needs at least 2 held-out videos")
    if not 0 <= cfg.gate_min_gap <= 100:
        raise ConfigError(f"{path}: gate_min_gap: accuracy points between 0 and 100, got {cfg.gate_min_gap}")
    for name in ("perception_mix", "caption_mix"):
        try:
            parse_mix(getattr(cfg, name))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {name}: {exc}") from None
    return cfg


def _eval_argv(cfg: ReplicateConfig, model: Path, out: Path, control: str) -> list[str]:
    held = Path(cfg.out) / "heldout"
    frames = "0" if control == "blind" else str(cfg.num_frames)
    extra = ["--videos-from", "shuffle", "--seed", str(cfg.shuffle_seed)] if control == "wrong-video" else []
    return ["eval", "--backend", "hf", "--model", str(model), "--benchmark", "stepkit",
            "--data", str(held / "qa" / "qa.jsonl"), "--videos", str(held / "world" / "videos"),
            "--mode", "mc-loglik", "--show-options", "--frames", frames, *extra,
            "--bootstrap", str(cfg.eval_bootstrap), "--threads", str(cfg.threads), "--out", str(out)]


def _eval_stages(cfg: ReplicateConfig, name: str, model: Path, folder: Path, round: int) -> list[Stage]:
    return [Stage(f"eval-{name}" + ("" if c == "frames" else f"-{c}"), folder / _EVAL_DIRS[c],
                  _eval_argv(cfg, model, folder / _EVAL_DIRS[c], c), round=round) for c in CONTROLS]


def start_model(cfg: ReplicateConfig) -> Path:
    """Where the perception stage leaves the model every arm starts from."""
    return Path(cfg.out) / START / "model"


def plan_replicate(cfg: ReplicateConfig) -> list[Stage]:
    """Every stage of the study, in order (pure)."""
    root = Path(cfg.out)
    world, held, pw = root / "world", root / "heldout", root / "perception"
    induced = root / "induced"
    wargs = ["--duration", cfg.duration, "--size", cfg.size]
    captions = bool(cfg.vision_steps and cfg.caption_steps)  # captions only ever follow vision pretraining
    S: list[Stage] = [
        Stage("world", world, ["world", "--out", str(world), "--videos", str(cfg.train_videos), "--seed",
                               str(cfg.train_seed), *wargs]),
        Stage("heldout", held / "world", ["world", "--out", str(held / "world"), "--videos", str(cfg.heldout_videos),
                                          "--seed", str(cfg.heldout_seed), *wargs]),
        Stage("questions", held / "qa", ["generate", str(held / "world" / "graphs"), "--out", str(held / "qa"),
                                         "--per-video", str(cfg.heldout_per_video), "--steps", cfg.heldout_mix,
                                         "--seed", str(cfg.heldout_seed)]),
        Stage("perception-world", pw / "world", ["world", "--out", str(pw / "world"), "--videos",
                                                 str(cfg.perception_videos), "--seed", str(cfg.perception_seed),
                                                 *wargs]),
        Stage("perception-questions", pw / "questions",
              ["generate", str(pw / "world" / "graphs"), "--out", str(pw / "questions"), "--per-video",
               str(cfg.perception_questions_per_video), "--steps", "1:1", "--seed", str(cfg.perception_seed)],
              ok_codes=(0, 2)),
        *([Stage("caption-data", pw / "captions",
                 ["perception", str(pw / "world" / "graphs"), "--out", str(pw / "captions"), "--per-video",
                  str(sum(w > 0 for w in parse_mix(cfg.caption_mix).values())), "--mix", cfg.caption_mix, "--seed",
                  str(cfg.perception_seed)])] if captions else []),
        Stage("perception-data", pw / "data",
              ["perception", str(pw / "world" / "graphs"), "--out", str(pw / "data"), "--per-video",
               str(cfg.perception_per_video), "--mix", cfg.perception_mix, "--seed", str(cfg.perception_seed),
               "--mix-in", str(pw / "questions" / "qa.jsonl"),
               *(["--mix-in", str(pw / "captions" / "qa.jsonl")] if captions and cfg.captions_in_perception else [])]),
        Stage("model", root / START / "init", ["models", "tiny", "--family", cfg.family, "--out",
                                               str(root / START / "init"), "--seed", str(cfg.start_seed),
                                               "--overwrite", *cfg.tiny_args]),
        Stage("induce", induced, ["induce", str(world / "videos"), "--out", str(induced), "--backend",
                                  cfg.induce_backend]),
        Stage("score", root / "score", ["graph", "score", str(induced), str(world / "graphs"), "--json"],
              stdout_to=root / "score" / "graph_score.json"),
        Stage("base-data", root / "data" / "base",
              ["generate", str(induced), "--out", str(root / "data" / "base"), "--per-video",
               str(cfg.base_per_video), "--steps", "1:1", "--types", PERCEPTION_TYPES, "--seed", str(cfg.train_seed)]),
        Stage("step-data", root / "data" / "step",
              ["generate", str(induced), "--out", str(root / "data" / "step"), "--per-video",
               str(cfg.step_per_video), "--steps", cfg.step_mix, "--seed", str(cfg.train_seed)]),
        Stage("oracle-data", root / "data" / "oracle",
              ["generate", str(world / "graphs"), "--out", str(root / "data" / "oracle"), "--per-video",
               str(cfg.step_per_video), "--steps", cfg.step_mix, "--seed", str(cfg.train_seed)]),
    ]
    common = ["--lr", str(cfg.learning_rate), "--batch-size", str(cfg.batch_size), "--num-frames",
              str(cfg.num_frames), "--full", "--train-vision" if cfg.train_vision else "--freeze-vision",
              "--threads", str(cfg.threads), "--quiet"]
    start = start_model(cfg)
    first = root / START / "init"
    if cfg.vision_steps:
        # a tower that sees before any language loss, then captions that only the frames can give,
        # as LLaVA's first stage trains on captions (docs/replication-notes.md)
        vision, caption_model = root / START / "vision", root / START / "captions"
        S.append(Stage("vision-pretrain", vision,
                       ["pretrain-vision", str(pw / "world" / "graphs"), "--model", str(first), "--out", str(vision),
                        "--steps", str(cfg.vision_steps), "--head", cfg.vision_head, "--targets", cfg.vision_targets,
                        "--window", str(cfg.vision_window),
                        *(["--centre", "--token-scale", str(cfg.vision_token_scale)] if cfg.vision_centre else []),
                        "--batch-size",
                        str(cfg.batch_size), "--num-frames", str(cfg.num_frames), "--seed", str(cfg.start_seed),
                        "--threads", str(cfg.threads)]))
        first = vision
        if captions:
            S.append(Stage("caption-train", caption_model,
                           ["train", str(pw / "captions"), "--model", str(vision), "--out", str(caption_model),
                            "--samples", "answer", "--max-steps", str(cfg.caption_steps),
                            "--save-steps", str(max(1, cfg.caption_steps // 2)), "--seed", str(cfg.start_seed), *common],
                           resume_argv=resume_if_checkpointed))
            first = caption_model
    S.append(Stage("perception-train", start,
                   ["train", str(pw / "data"), "--model", str(first), "--out", str(start),
                    "--samples", "answer", "--max-steps", str(cfg.perception_steps),
                    "--save-steps", str(max(1, cfg.perception_steps // 4)), "--seed", str(cfg.start_seed), *common],
                   resume_argv=resume_if_checkpointed))
    S += _eval_stages(cfg, START, start, root / START, round=-1)
    arm_data = {"base": ("base", induced, "answer", 1.0), "answer-only": ("step", induced, "dual", 0.0),
                "step": ("step", induced, "dual", 1.0), "oracle": ("oracle", world / "graphs", "dual", 1.0)}
    for seed in cfg.seeds:
        sd = root / f"seed_{seed}"
        for arm in ARMS:
            data, videos_dir, samples, lam = arm_data[arm]
            out = sd / arm
            S.append(Stage(f"train-{arm}", out / "model",
                           ["train", str(root / "data" / data), "--model", str(start), "--out",
                            str(out / "model"), "--videos-dir", str(videos_dir), "--samples", samples,
                            "--lambda-rationale", str(lam), "--max-steps", str(cfg.arm_steps),
                            "--save-steps", str(max(1, cfg.arm_steps // 2)), "--seed", str(seed), *common],
                           round=seed, resume_argv=resume_if_checkpointed))
            S += _eval_stages(cfg, arm, out / "model", out, round=seed)
    return S


def _bucket(steps: int) -> str:
    return "3+" if steps >= 3 else str(steps)


def _predictions(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / "predictions.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path}: missing; the study has not finished (rerun the same command to resume)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {str(r["id"]): r for r in rows if "correct" in r and r.get("error") is None}


def _arm_folder(cfg: ReplicateConfig, seed: int | None, arm: str, control: str) -> Path:
    root = Path(cfg.out)
    base = root / START if arm == START else root / f"seed_{seed}" / arm
    return base / _EVAL_DIRS[control]


def summarize(cfg: ReplicateConfig) -> dict[str, Any]:
    """Accuracy per arm, control and steps bucket (mean over seeds, 95% bootstrap interval over
    questions with the seeds kept paired), the perception gate of every model, and STEP − answer-only."""
    import numpy as np

    preds = {(s, a, c): _predictions(_arm_folder(cfg, s, a, c)) for s in cfg.seeds for a in ARMS for c in CONTROLS}
    start = {c: _predictions(_arm_folder(cfg, None, START, c)) for c in CONTROLS}
    ids = sorted(set.intersection(*(set(p) for p in [*preds.values(), *start.values()])))
    if not ids:
        raise ConfigError(f"{cfg.out}: the models' predictions share no question")
    first = start["frames"]
    bucket_of = np.array([_bucket(int(first[i]["steps"])) for i in ids])
    # correct[(arm, control)] has shape (seeds, questions); the starting model is one "seed"
    correct = {(a, c): np.array([[bool(preds[(s, a, c)][i]["correct"]) for i in ids] for s in cfg.seeds], dtype=float)
               for a in ARMS for c in CONTROLS}
    for c in CONTROLS:
        correct[(START, c)] = np.array([[bool(start[c][i]["correct"]) for i in ids]], dtype=float)
    rng = np.random.default_rng(0)
    groups = {"all": np.ones(len(ids), dtype=bool), **{b: bucket_of == b for b in BUCKETS}}
    boot = {g: [rng.choice(np.flatnonzero(m), size=int(m.sum()), replace=True) for _ in range(cfg.bootstrap)]
            for g, m in groups.items() if m.any()}

    def stat(values: np.ndarray, g: str) -> dict[str, Any]:
        idx = np.flatnonzero(groups[g])
        point = float(values[:, idx].mean())
        draws = np.array([values[:, b].mean() for b in boot[g]])
        return {"mean": point, "ci_low": float(np.quantile(draws, 0.025)), "ci_high": float(np.quantile(draws, 0.975)),
                "n": int(idx.size), "per_seed": [float(v) for v in values[:, idx].mean(axis=1)]}

    models = (START, *ARMS)
    table = {a: {g: stat(correct[(a, "frames")], g) for g in boot} for a in ARMS}
    controls = {a: {c: {g: stat(correct[(a, c)], g) for g in boot} for c in CONTROLS} for a in models}
    gates = {}
    min_gap = cfg.gate_min_gap / 100.0
    for a in models:
        g = "1" if "1" in boot else "all"
        d = stat(correct[(a, "frames")] - correct[(a, "wrong-video")], g)
        passed = d["mean"] >= min_gap - 1e-12 and d["ci_low"] > 0
        gates[a] = {**d, "steps": g, "min_gap": min_gap, "passed": bool(passed),
                    "acc_frames": controls[a]["frames"][g]["mean"], "acc_wrong_video": controls[a]["wrong-video"][g]["mean"],
                    "acc_blind": controls[a]["blind"][g]["mean"]}
    diff = {g: stat(correct[("step", "frames")] - correct[("answer-only", "frames")], g) for g in boot}
    rel = {}
    for g in boot:
        ao = table["answer-only"][g]["mean"]
        rel[g] = None if ao == 0 else (table["step"][g]["mean"] - ao) / ao
    score = None
    score_path = Path(cfg.out) / "score" / "graph_score.json"
    if score_path.is_file():
        o = json.loads(score_path.read_text(encoding="utf-8"))["overall"]
        score = {k: v for k, v in o.items() if k != "counts"}
    counts = {}
    for name, p in (("perception", Path(cfg.out) / "perception" / "data"), *((n, Path(cfg.out) / "data" / n)
                                                                            for n in ("base", "step", "oracle"))):
        if (p / "summary.json").is_file():
            counts[name] = json.loads((p / "summary.json").read_text(encoding="utf-8")).get("records")
    return {"arms": table, "start": controls[START]["frames"], "controls": controls, "gates": gates,
            "step_minus_answer_only": diff, "relative_gain": rel, "questions": len(ids), "seeds": list(cfg.seeds),
            "graph_accuracy": score, "training_records": counts, "visual_tokens": _visual_tokens(cfg),
            "stage_seconds": _stage_seconds(cfg), "config": cfg.to_dict()}


def _visual_tokens(cfg: ReplicateConfig) -> int | None:
    """Visual tokens one held-out clip becomes in the starting model (from its processor)."""
    try:
        from stepkit.train.perception import visual_tokens_per_clip

        return visual_tokens_per_clip(start_model(cfg), num_frames=cfg.num_frames,
                                      size=tuple(int(v) for v in cfg.size.lower().split("x")))
    except Exception:  # informative only: a model folder this helper cannot read leaves it out
        return None


def _stage_seconds(cfg: ReplicateConfig) -> dict[str, float]:
    """Seconds each finished stage took (from its done marker), by stage folder."""
    from stepkit.pipeline.stages import DONE_MARKER

    out = {}
    root = Path(cfg.out)
    for s in plan_replicate(cfg):
        try:
            out[str(s.out.relative_to(root))] = float(json.loads((s.out / DONE_MARKER).read_text())["seconds"])
        except (OSError, ValueError, KeyError):
            continue
    return out


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _cell(s: dict[str, Any]) -> str:
    return f"{_pct(s['mean'])} [{_pct(s['ci_low'])}, {_pct(s['ci_high'])}]"


def _pts(s: dict[str, Any]) -> str:
    return f"{100 * s['mean']:+.1f} [{100 * s['ci_low']:+.1f}, {100 * s['ci_high']:+.1f}]"


def results_markdown(res: dict[str, Any]) -> str:
    """The results table (arms × steps buckets) and the STEP − answer-only line, as markdown."""
    groups = [g for g in ("1", "2", "3+", "all") if g in res["arms"]["base"]]
    names = {"1": "1 step", "2": "2 steps", "3+": "≥3 steps", "all": "all"}
    head = "| model | " + " | ".join(f"{names[g]} (n={res['arms']['base'][g]['n']})" for g in groups) + " |"
    lines = [head, "|---|" + "---:|" * len(groups)]
    if res.get("start"):
        lines.append("| start (perception stage) | " + " | ".join(_cell(res["start"][g]) for g in groups) + " |")
    for a in ARMS:
        lines.append(f"| {a} | " + " | ".join(_cell(res["arms"][a][g]) for g in groups) + " |")
    d = res["step_minus_answer_only"]
    lines.append("| STEP − answer-only (points) | " + " | ".join(_pts(d[g]) for g in groups) + " |")
    rel = res["relative_gain"]
    lines.append("| STEP vs answer-only (relative) | " + " | ".join(
        "–" if rel[g] is None else f"{100 * rel[g]:+.1f}%" for g in groups) + " |")
    return "\n".join(lines) + "\n"


def controls_markdown(res: dict[str, Any]) -> str:
    """Every model with both controls (no frames; another video's frames) and its perception gate."""
    gates, ctl = res["gates"], res["controls"]
    g0 = next(iter(gates.values()))
    b = g0["steps"]
    nb = ctl[START]["frames"][b]["n"]
    n_all = ctl[START]["frames"]["all"]["n"]
    lines = [f"| model | {b}-step: own frames (n={nb}) | no frames | wrong video | own − wrong (points) | gate "
             f"| all (n={n_all}): own frames | no frames | wrong video |",
             "|---|---:|---:|---:|---:|:---:|---:|---:|---:|"]
    for a in (START, *ARMS):
        c, g = ctl[a], gates[a]
        label = "start (perception stage)" if a == START else a
        lines.append(f"| {label} | {_cell(c['frames'][b])} | {_cell(c['blind'][b])} | {_cell(c['wrong-video'][b])} "
                     f"| {_pts(g)} | {'passes' if g['passed'] else 'fails'} | {_cell(c['frames']['all'])} "
                     f"| {_cell(c['blind']['all'])} | {_cell(c['wrong-video']['all'])} |")
    return "\n".join(lines) + "\n"


def plot_results(res: dict[str, Any]) -> bytes:
    """Grouped bars of accuracy per arm and steps bucket with 95% whiskers; PNG bytes."""
    from stepkit.evaluate.report import plot_groups

    runs = []
    for a in ARMS:
        m = {"by_steps_bucket": {g: {"accuracy": s["mean"], "ci_low": s["ci_low"], "ci_high": s["ci_high"], "n": s["n"]}
                                 for g, s in res["arms"][a].items() if g != "all"}}
        runs.append((a, m))
    return plot_groups(runs, "by_steps_bucket", "Held-out accuracy by reasoning steps (mean over seeds)", "steps")


def run_replicate(cfg: ReplicateConfig, *, on_stage: OnStage | None = None,
                  env: dict[str, str] | None = None, results: str | Path | None = None) -> str:
    """Run (or resume) every stage, then write ``OUT/results.json``, ``results.md`` and the plot; returns the table."""
    from stepkit.locks import output_lock

    from dataclasses import replace

    # absolute paths throughout: graphs written by `induce` name their videos as given on its command line
    cfg = replace(cfg, out=str(Path(cfg.out).resolve()))
    with output_lock(Path(cfg.out)):  # one study per folder
        return _run_replicate(cfg, on_stage=on_stage, env=env, results=results)


def _parallel(chains: list[list[Stage]], workers: int, logs: Path, env: dict[str, str] | None,
              on_stage: OnStage | None) -> None:
    chains = [c for c in chains if c]
    if workers == 1 or len(chains) == 1:
        for chain in chains:
            run_stages(chain, logs, env=env, on_stage=on_stage)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_stages, chain, logs, env=env, on_stage=on_stage) for chain in chains]
        for fut in futures:
            fut.result()


def _run_replicate(cfg: ReplicateConfig, *, on_stage: OnStage | None = None,
                   env: dict[str, str] | None = None, results: str | Path | None = None) -> str:
    import time

    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    save_run_config(root / "config.yaml", cfg.to_dict())
    t0 = time.time()
    stages = plan_replicate(cfg)
    by = lambda names: [s for s in stages if s.name in names]  # noqa: E731
    logs = root / "logs"
    env = {**(env or {}), "OMP_NUM_THREADS": str(cfg.threads)}
    run_stages(by(_PREP), logs, env=env, on_stage=on_stage)
    # the graphs of the STEP arms are induced while the starting model learns to see
    _parallel([by(_LEARN_TO_SEE), by(_DATA)], cfg.workers, logs, env, on_stage)
    start_chain = [s for s in stages if s.round == -1]
    setup = (*_PREP, *_DATA, *_LEARN_TO_SEE)
    chains = [start_chain, *([s for s in stages if s.round == seed and s.name not in setup]
                             for seed in cfg.seeds)]
    _parallel(chains, cfg.workers, logs, env, on_stage)
    res = summarize(cfg)
    res["seconds_this_session"] = round(time.time() - t0, 1)
    atomic_write_json(root / "results.json", res)
    table = results_markdown(res)
    atomic_write_text(root / "results.md", table + "\n" + controls_markdown(res))
    png = plot_results(res)
    atomic_write_bytes(root / "accuracy_by_steps.png", png)
    if results is not None:
        results = Path(results)
        png_path = results.with_name(results.stem + "_accuracy_by_steps.png")
        atomic_write_bytes(png_path, png)
        atomic_write_text(results, results_page(res, png_path.name))
    return table


def verdict_text(res: dict[str, Any]) -> str:
    """Whether the paper's effect showed on ≥3-step questions, and whether the comparison means anything."""
    d3 = res["step_minus_answer_only"].get("3+")
    rel3 = res["relative_gain"].get("3+")
    gate = (res.get("gates") or {}).get(START)
    if gate is None:
        sees = ""
    elif gate["passed"]:
        sees = (f"The starting model **passes** the perception gate (1-step accuracy with its own frames "
                f"{_pct(gate['acc_frames'])}% vs {_pct(gate['acc_wrong_video'])}% with another video's: "
                f"{_pts(gate)} points, at least {100 * gate['min_gap']:.0f} with the interval above zero), so "
                "the comparison below is between learners that look at the video. ")
    else:
        sees = (f"The starting model **fails** the perception gate (1-step accuracy with its own frames "
                f"{_pct(gate['acc_frames'])}% vs {_pct(gate['acc_wrong_video'])}% with another video's: "
                f"{_pts(gate)} points; it needs at least {100 * gate['min_gap']:.0f} with the interval above "
                "zero), so the STEP − answer-only figure is **not meaningful**: it compares learners "
                "that do not demonstrably look at the video. ")
    if d3 is None:
        return sees + "No held-out question has 3 or more steps; the ≥3-step comparison could not be made."
    reached = rel3 is not None and rel3 >= PAPER_RELATIVE_GAIN and d3["ci_low"] > 0
    return (sees + f"On ≥3-step held-out questions STEP scored {_pct(res['arms']['step']['3+']['mean'])}% against "
            f"answer-only's {_pct(res['arms']['answer-only']['3+']['mean'])}%: a difference of "
            f"{100 * d3['mean']:+.1f} points (95% interval {100 * d3['ci_low']:+.1f} to {100 * d3['ci_high']:+.1f})"
            + ("" if rel3 is None else f", {100 * rel3:+.1f}% relative") + f" (the paper: "
            f"+{100 * PAPER_RELATIVE_GAIN:.1f}% relative on STAR ≥3-step questions). "
            + ("The paper's effect (≥ +21.3% relative, interval above zero) **was reproduced**."
               if reached else "The paper's effect (≥ +21.3% relative with the interval above zero) "
                               "**was not reproduced** at this scale."))


def results_page(res: dict[str, Any], png_name: str) -> str:
    """``docs/results.md``: what was run, the tables, the plot, and whether the paper's effect showed."""
    c = res["config"]
    ga = res.get("graph_accuracy") or {}
    ga_line = ", ".join(f"{k.replace('_', ' ')} {ga[k]:.3f}" for k in ("object_recall", "triplet_precision",
                                                                      "triplet_recall", "action_recall", "cut_f1")
                        if isinstance(ga.get(k), (int, float)))
    counts = res.get("training_records") or {}
    records_line = ", ".join(f"{counts[k]} {k}" for k in ("perception", "base", "step", "oracle") if k in counts)
    vt = res.get("visual_tokens")
    secs = res.get("seconds_this_session")
    wall = f"{secs / 60:.1f} minutes in the session that finished it" if secs else "see the run folder"
    controls = controls_markdown(res) if res.get("gates") else ""
    return f"""# Results: the paper's Table 2 at CPU scale

Made by one command (config `src/stepkit/pipeline/configs/replicate.yaml`):

```bash
stepkit experiment replicate --results docs/results.md
```

A tiny `{c['family']}` Video-LLM (`{' '.join(c['tiny_args']) or 'default tiny size'}`; {vt if vt else '?'} visual
tokens per {c['num_frames']}-frame clip) is trained from scratch by a **perception stage**
({c['perception_steps']} steps on {counts.get('perception', '?')} dense one-step records from the ground-truth graphs of
{c['perception_videos']} perception videos, world seed {c['perception_seed']}: clip descriptions, objects in view,
colours, per-label balanced existence, left/right, and generated one-step questions; vision tower trained). That
**start** model is shared: each arm trains {c['arm_steps']} more steps from it with the same batch size
({c['batch_size']}), learning rate ({c['learning_rate']}) and frames ({c['num_frames']} per clip), so every arm
has equal training compute:

- **base**: single-step perception Q/A from the training videos' induced graphs (answers only);
- **answer-only**: STEP records from graphs induced from pixels (`{c['induce_backend']}` inducer), λ = 0;
- **STEP**: the same records and batches, λ = 1 (L = L_answer + L_rationale);
- **oracle**: STEP records from the ground-truth graphs, λ = 1.

Training videos: {c['train_videos']} world videos (seed {c['train_seed']}); induced-graph accuracy against
the ground truth: {ga_line or 'n/a'}. Training records: {records_line or 'n/a'}. Held out:
{res['questions']} questions from the ground-truth graphs of {c['heldout_videos']} other world videos
(seed {c['heldout_seed']}, used for nothing but this table), scored by option log-likelihood with the options
listed. Training seeds of the arms: {', '.join(map(str, res['seeds']))}. Cells are accuracy % averaged over seeds
with a 95% bootstrap interval over questions (seeds kept paired); differences are paired by question and seed.
Wall time: {wall}.

{results_markdown(res)}
![accuracy by steps]({png_name})

{verdict_text(res)}

## Controls and the perception gate

Every model is scored three ways on the same held-out questions: with its own frames, with **no frames**
(`--frames 0`) and with **another video's frames** (`--videos-from shuffle`, seed {c.get('shuffle_seed', 0)}, the
same wrong video per question for every model). A model passes the **perception gate** when its 1-step accuracy
with its own frames beats its wrong-video accuracy by at least {c.get('gate_min_gap', 10.0):g} points with the 95%
interval of the paired difference above zero. The no-frames control alone can be fooled (a model trained with
frames degrades without them whether or not it uses what they show); the wrong-video control cannot.

{controls}
Per-seed accuracies, every gate and each stage's seconds are in `results.json` of the run folder. What was
tried (on validation world seeds only) and what these numbers mean: [replication-notes.md](replication-notes.md).
"""
