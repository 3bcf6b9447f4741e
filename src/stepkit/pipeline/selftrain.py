"""STEP's self-training loop as resumable stages: setup, then rounds of induce → generate → train → eval.

Every stage is a ``stepkit`` verb (see :mod:`stepkit.pipeline.stages`), so a round is exactly what a
user could type, and the run folder reads like a transcript::

    OUT/config.yaml                the validated config the run was made with
    OUT/world/                     training videos (+ ground-truth graphs) from the synthetic world
    OUT/heldout/world, heldout/qa  held-out videos and the questions every round is scored on
    OUT/base_model/                the starting model (a tiny random one for ``tiny:FAMILY``)
    OUT/round_0/eval/              the starting model on the held-out questions
    OUT/round_K/{graphs,score,qa,train,grpo,eval}/  (grpo/ with a `grpo:` section)
    OUT/rounds.jsonl               the ledger: one line per finished round
    OUT/logs/                      each stage's stdout/stderr
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from stepkit.errors import ConfigError
from stepkit.io import atomic_write_jsonl, atomic_write_text
from stepkit.pipeline.config import SelfTrainConfig
from stepkit.pipeline.stages import OnStage, Stage, resume_if_checkpointed, run_stages, save_run_config

CONFIG_FILE = "config.yaml"
LEDGER_FILE = "rounds.jsonl"
TINY_PREFIX = "tiny:"


class RunLayout:
    """Where each stage of a self-training run writes (all paths derive from ``cfg.out``)."""

    def __init__(self, cfg: SelfTrainConfig) -> None:
        self.cfg = cfg
        self.root = Path(cfg.out)

    @property
    def world(self) -> Path:
        return self.root / "world"

    @property
    def videos(self) -> Path:
        return self.world / "videos" if self.cfg.world is not None else Path(self.cfg.videos or "")

    @property
    def ground_truth(self) -> Path | None:
        if self.cfg.world is not None:
            return self.world / "graphs"
        return Path(self.cfg.ground_truth) if self.cfg.ground_truth else None

    @property
    def heldout(self) -> Path:
        return self.root / "heldout"

    @property
    def base_model(self) -> Path:
        m = self.cfg.train.model
        return self.root / "base_model" if m.startswith(TINY_PREFIX) else Path(m)

    def round(self, k: int) -> Path:
        return self.root / f"round_{k}"

    def model_after(self, k: int) -> Path:
        """The model a round leaves behind (round 0: the base model)."""
        if k == 0:
            return self.base_model
        train = self.round(k) / ("grpo" if self.cfg.grpo is not None else "train")
        return train / "merged" if self.cfg.train.lora else train

    def sft_model(self, k: int) -> Path:
        """The model round ``k``'s supervised stage leaves (what its GRPO stage starts from)."""
        if self.cfg.grpo is not None and not self.cfg.grpo.after_sft:
            return self.model_after(k - 1)
        train = self.round(k) / "train"
        return train / "merged" if self.cfg.train.lora else train


def _world_args(src: Any) -> list[str]:
    args = []
    for name in ("duration", "fps", "size"):
        v = getattr(src, name)
        if v is not None:
            args += [f"--{name}", str(v)]
    return args


def plan(cfg: SelfTrainConfig) -> list[Stage]:
    """Every stage of the run, in order (pure: reads and writes nothing)."""
    L = RunLayout(cfg)
    stages: list[Stage] = []
    if cfg.world is not None:
        w = cfg.world
        stages.append(Stage("world", L.world, ["world", "--out", str(L.world), "--videos", str(w.videos),
                                               "--seed", str(w.seed), *_world_args(w)]))
    e = cfg.eval
    held_world = L.heldout / "world"
    stages.append(Stage("heldout", held_world, ["world", "--out", str(held_world), "--videos", str(e.videos),
                                                "--seed", str(e.seed), *(_world_args(cfg.world) if cfg.world else [])]))
    stages.append(Stage("questions", L.heldout / "qa",
                        ["generate", str(held_world / "graphs"), "--out", str(L.heldout / "qa"),
                         "--per-video", str(e.per_video), "--steps", e.steps, "--seed", str(e.seed)]))
    if cfg.train.model.startswith(TINY_PREFIX):
        family = cfg.train.model[len(TINY_PREFIX):]
        stages.append(Stage("model", L.base_model, ["models", "tiny", "--family", family, "--out", str(L.base_model),
                                                    "--seed", str(cfg.train.seed), "--overwrite",
                                                    *cfg.train.tiny_args]))
    stages += _wrong_video_stages(cfg, L, 0)  # before eval: the ledger line is written after eval
    stages.append(_eval_stage(cfg, L, 0))
    for k in range(1, cfg.rounds + 1):
        rd = L.round(k)
        graphs = rd / "graphs"
        argv = ["induce", str(L.videos), "--out", str(graphs), "--backend", cfg.induce.backend]
        if cfg.induce.model:
            model = L.model_after(k - 1) if cfg.induce.model == "current" else Path(cfg.induce.model)
            argv += ["--model", str(model)]
        if cfg.induce.endpoint:
            argv += ["--endpoint", cfg.induce.endpoint]
        if cfg.induce.options:
            argv += ["--config", str(rd / "induce.yaml")]
        # exit 2 = some videos failed (recorded in summary.json); the round goes on with the rest
        stages.append(Stage("induce", graphs, argv, round=k, ok_codes=(0, 2)))
        if L.ground_truth is not None:
            stages.append(Stage("score", rd / "score", ["graph", "score", str(graphs), str(L.ground_truth), "--json"],
                                round=k, stdout_to=rd / "score" / "graph_score.json"))
        g = cfg.generate
        argv = ["generate", str(graphs), "--out", str(rd / "qa"), "--per-video", str(g.per_video),
                "--steps", g.steps, "--seed", str(g.seed + k)]
        if g.types:
            argv += ["--types", g.types]
        stages.append(Stage("generate", rd / "qa", argv, round=k, ok_codes=(0, 2)))  # 2: some graphs failed
        t = cfg.train
        lora = ["--lora", "--save-merged"] if t.lora else ["--full"]
        if cfg.grpo is None or cfg.grpo.after_sft:
            argv = ["train", str(rd / "qa"), "--model", str(L.model_after(k - 1)), "--out", str(rd / "train"),
                    "--videos-dir", str(graphs), "--max-steps", str(t.max_steps), "--lambda-rationale",
                    str(t.lambda_rationale), "--save-steps", str(t.save_steps), "--seed", str(t.seed + k), "--quiet"]
            stages.append(Stage("train", rd / "train", argv + lora + list(t.extra_args), round=k,
                                resume_argv=resume_if_checkpointed, launcher=list(t.launcher)))
        if cfg.grpo is not None:
            stages.append(_grpo_stage(cfg, L, k, lora))
        stages += _wrong_video_stages(cfg, L, k)  # before eval: the ledger line is written after eval
        stages.append(_eval_stage(cfg, L, k))
    return stages


def _grpo_stage(cfg: SelfTrainConfig, L: RunLayout, k: int, lora: list[str]) -> Stage:
    """`stepkit train --method grpo` on the round's questions, rewarded against the round's graphs."""
    g, t, rd = cfg.grpo, cfg.train, L.round(k)
    assert g is not None
    graphs = rd / "graphs"
    argv = ["train", str(rd / "qa"), "--method", "grpo", "--model", str(L.sft_model(k)), "--out", str(rd / "grpo"),
            "--videos-dir", str(graphs), "--graphs", str(graphs), "--max-steps", str(g.max_steps),
            "--save-steps", str(g.save_steps), "--seed", str(t.seed + k), "--num-generations", str(g.num_generations),
            "--max-completion-length", str(g.max_completion_length), "--beta", str(g.beta),
            "--completion-format", g.completion_format, "--weight-answer", str(g.weight_answer),
            "--weight-format", str(g.weight_format), "--weight-faithfulness", str(g.weight_faithfulness),
            "--temporal-contrast" if g.temporal_contrast else "--no-temporal-contrast", "--quiet", *lora,
            *g.extra_args]
    return Stage("grpo", rd / "grpo", argv, round=k, resume_argv=resume_if_checkpointed, launcher=list(t.launcher))


def _eval_stage(cfg: SelfTrainConfig, L: RunLayout, k: int) -> Stage:
    e = cfg.eval
    out = L.round(k) / "eval"
    graphs = ["--graphs", str(L.heldout / "world" / "graphs")] if e.mode == "reason" else []
    argv = ["eval", "--backend", "hf", "--model", str(L.model_after(k)), "--benchmark", "stepkit",
            "--data", str(L.heldout / "qa" / "qa.jsonl"), "--videos", str(L.heldout / "world" / "videos"),
            "--mode", e.mode, "--frames", str(e.frames), "--show-options" if e.show_options else "--hide-options",
            *graphs, "--out", str(out), *e.extra_args]
    return Stage("eval", out, argv, round=k)


def _wrong_video_stages(cfg: SelfTrainConfig, L: RunLayout, k: int) -> list[Stage]:
    """The round's eval with each question shown another video's frames (``eval.wrong_video``)."""
    if not cfg.eval.wrong_video:
        return []
    st = _eval_stage(cfg, L, k)
    out = L.round(k) / "eval_wrong_video"
    i = st.argv.index("--out")
    argv = [*st.argv[:i], "--videos-from", "shuffle", "--seed", "0", "--out", str(out), *st.argv[i + 2:]]
    return [Stage("eval-wrong-video", out, argv, round=k)]


def read_json_or_none(path: Path) -> Any:
    """A stage's JSON output, or None while it is missing or half-written."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def round_row(cfg: SelfTrainConfig, k: int) -> dict[str, Any] | None:
    """The ledger line of round ``k`` (None until its eval has finished)."""
    L = RunLayout(cfg)
    rd = L.round(k)
    metrics = read_json_or_none(rd / "eval" / "metrics.json")
    if metrics is None:
        return None
    row: dict[str, Any] = {"round": k, "model": str(L.model_after(k))}
    if k > 0:
        induce = read_json_or_none(rd / "graphs" / "summary.json") or {}
        row["graphs"] = {key: induce.get(key) for key in ("videos", "induced", "skipped", "failed", "totals") if key in induce}
        score = read_json_or_none(rd / "score" / "graph_score.json")
        if isinstance(score, dict) and isinstance(score.get("overall"), dict):
            row["graph_accuracy"] = {key: v for key, v in score["overall"].items() if key != "counts"}
        qa = read_json_or_none(rd / "qa" / "summary.json") or {}
        row["qa"] = {key: qa.get(key) for key in ("records", "by_steps", "by_type", "drops") if key in qa}
        train = read_json_or_none(rd / "train" / "summary.json") or {}
        row["train"] = {key: train.get(key) for key in ("global_step", "final_loss", "final_loss_answer",
                                                        "final_loss_rationale", "seconds_this_session")}
        if cfg.grpo is not None:
            grpo = read_json_or_none(rd / "grpo" / "summary.json") or {}
            rewards = grpo.get("rewards") or {}
            # rewards, faithfulness and accuracy of the round's rollouts, overall and by steps bucket
            row["grpo"] = {"global_step": grpo.get("global_step"), "seconds_this_session": grpo.get("seconds_this_session"),
                           **{key: rewards.get(key) for key in ("first_quarter", "last_quarter", "by_steps",
                                                                "by_steps_last_quarter")}}
    row["eval"] = {"overall": metrics.get("overall"), "by_steps_bucket": metrics.get("by_steps_bucket"),
                   "by_type": metrics.get("by_type")}
    wrong = rd / "eval_wrong_video"
    if cfg.eval.wrong_video and (wrong / "metrics.json").is_file():
        from stepkit.errors import StepkitError
        from stepkit.evaluate.runner import perception_gate_runs

        try:  # the perception gate: own frames vs another video's, 1-step questions
            row["gate"] = perception_gate_runs(rd / "eval", wrong, steps="1")
        except StepkitError as exc:
            row["gate"] = {"passed": False, "reason": str(exc)}
        row["eval_wrong_video"] = {"overall": (read_json_or_none(wrong / "metrics.json") or {}).get("overall")}
    fa = metrics.get("faithfulness")
    if isinstance(fa, dict):  # eval.mode reason: faithfulness of the held-out rationales by steps bucket
        row["eval"]["faithfulness"] = {key: fa.get(key) for key in ("overall", "by_steps_bucket")}
    return row


def write_ledger(cfg: SelfTrainConfig) -> Path:
    """Rebuild ``rounds.jsonl`` from the finished rounds (so a resumed run never duplicates a line)."""
    rows = [r for r in (round_row(cfg, k) for k in range(cfg.rounds + 1)) if r is not None]
    return atomic_write_jsonl(Path(cfg.out) / LEDGER_FILE, rows)


def run_selftrain(cfg: SelfTrainConfig, *, on_stage: OnStage | None = None,
                  env: dict[str, str] | None = None) -> Path:
    """Run (or resume) every stage not yet done; returns the ledger path.

    ``on_stage(stage, event, seconds)`` is called with event ``start``, ``done`` or ``skip``.
    """
    from stepkit.locks import output_lock

    L = RunLayout(cfg)
    with output_lock(L.root):  # one run per folder; each stage locks its own folder too
        save_run_config(L.root / CONFIG_FILE, cfg.to_dict())
        for k in range(1, cfg.rounds + 1):
            if cfg.induce.options:
                atomic_write_text(L.round(k) / "induce.yaml", yaml.safe_dump(cfg.induce.options, sort_keys=True))
        if cfg.world is None and not L.videos.is_dir():
            raise ConfigError(f"videos: {L.videos} is not a folder")
        run_stages(plan(cfg), L.root / "logs", env=env, on_stage=on_stage,
                   after=lambda stage: write_ledger(cfg) if stage.name == "eval" else None)
        return write_ledger(cfg)


def stage_env(threads: int | None) -> dict[str, str]:
    """Environment for stage subprocesses: an optional torch thread count; tokenizer threads off (each
    stage is one process, and forked data-loader workers would warn)."""
    env = {"TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env
