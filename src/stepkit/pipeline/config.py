"""The self-training run's config: one YAML file, validated, saved with the run."""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stepkit.errors import ConfigError


@dataclass
class WorldSource:
    """Render training videos (with ground-truth graphs) from the synthetic world."""

    videos: int = field(default=12, metadata={"help": "How many videos to render."})
    seed: int = field(default=0, metadata={"help": "World seed; held-out videos use other seeds."})
    duration: str | None = field(default=None, metadata={"help": "Seconds per video, or a range such as 8-12 (world default when unset)."})
    fps: float | None = field(default=None, metadata={"help": "Frames per second (world default when unset)."})
    size: str | None = field(default=None, metadata={"help": "Frame size WIDTHxHEIGHT (world default when unset)."})


@dataclass
class InduceStage:
    """How each round turns videos into graphs."""

    backend: str = field(default="world", metadata={"help": "Inducer: world | opencv | vlm."})
    model: str | None = field(
        default=None,
        metadata={"help": "vlm only: a model path, or 'current' for the model being self-trained."},
    )
    endpoint: str | None = field(default=None, metadata={"help": "vlm only: an OpenAI-compatible endpoint URL."})
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "Backend options (written to a YAML --config)."})


@dataclass
class GenerateStage:
    """How Q/R/A records are sampled from each round's graphs."""

    per_video: int = field(default=30, metadata={"help": "Records to sample per video."})
    steps: str = field(default="1:0.25,2:0.25,3:0.25,4:0.25", metadata={"help": "Step mix, e.g. 1:0.2,2:0.3,3:0.5."})
    types: str | None = field(default=None, metadata={"help": "Comma-separated question types (all when unset)."})
    seed: int = field(default=0, metadata={"help": "Sampling seed (each round adds its index)."})


@dataclass
class TrainStage:
    """How each round fine-tunes the model on its Q/R/A."""

    model: str = field(default="tiny:qwen2.5-vl", metadata={"help": "Base model: a local path, or tiny:FAMILY for a tiny random model."})
    lambda_rationale: float = field(default=1.0, metadata={"help": "λ in L = L_answer + λ·L_rationale."})
    max_steps: int = field(default=60, metadata={"help": "Optimizer steps per round."})
    lora: bool = field(default=False, metadata={"help": "Train a LoRA adapter instead of all weights."})
    save_steps: int = field(default=20, metadata={"help": "Checkpoint every N steps (what an interrupted round resumes from)."})
    seed: int = field(default=0, metadata={"help": "Seed of the tiny model's weights; each round trains with seed + round."})
    tiny_args: list[str] = field(default_factory=list, metadata={"help": "More `stepkit models tiny` options for tiny:FAMILY, verbatim."})
    launcher: list[str] = field(default_factory=list, metadata={"help": "Command that starts the training processes and takes `-m module`, e.g. [torchrun, --nproc_per_node, '8'] for a --preset; empty: one process."})
    extra_args: list[str] = field(default_factory=list, metadata={"help": "More `stepkit train` options, verbatim."})


@dataclass
class GRPOStage:
    """GRPO with graph-verified rewards after (or instead of) each round's supervised training."""

    max_steps: int = field(default=30, metadata={"help": "GRPO optimizer steps per round."})
    save_steps: int = field(default=10, metadata={"help": "Checkpoint every N steps (what an interrupted GRPO stage resumes from)."})
    after_sft: bool = field(default=True, metadata={"help": "Run GRPO on the round's SFT model (SFT then GRPO); false: GRPO alone, from the previous round's model."})
    num_generations: int = field(default=4, metadata={"help": "Completions sampled per question (the GRPO group)."})
    max_completion_length: int = field(default=128, metadata={"help": "Most new tokens per completion."})
    beta: float = field(default=0.04, metadata={"help": "KL coefficient to the stage's starting model."})
    completion_format: str = field(default="stepkit", metadata={"help": "stepkit (reasoning, then 'So the answer is X.', what SFT teaches) or tags (<think>/<answer>)."})
    weight_answer: float = field(default=1.0, metadata={"help": "Weight of the answer-correctness reward."})
    weight_format: float = field(default=0.5, metadata={"help": "Weight of the format reward."})
    weight_faithfulness: float = field(default=1.0, metadata={"help": "Weight of the rationale-faithfulness reward (checked against the round's graphs)."})
    temporal_contrast: bool = field(default=False, metadata={"help": "Video-R1's T-GRPO bonus from rollouts on shuffled frames."})
    extra_args: list[str] = field(default_factory=list, metadata={"help": "More `stepkit train --method grpo` options, verbatim (e.g. --lr, --batch-size, --num-frames)."})


@dataclass
class EvalStage:
    """The held-out questions every round is scored on (from ground-truth graphs of unseen videos)."""

    videos: int = field(default=6, metadata={"help": "Held-out world videos."})
    seed: int = field(default=1000, metadata={"help": "World seed of the held-out videos (never a training seed)."})
    per_video: int = field(default=20, metadata={"help": "Held-out questions per video."})
    steps: str = field(default="1:0.34,2:0.33,3:0.33", metadata={"help": "Step mix of the held-out questions."})
    mode: str = field(default="mc-loglik", metadata={"help": "Scoring mode: mc-loglik | mc-generate | open | reason (explain, then answer; rationale faithfulness scored against the held-out graphs)."})
    frames: int = field(default=4, metadata={"help": "Frames sampled per question."})
    show_options: bool = field(default=True, metadata={"help": "mc-loglik: list the options in the prompt, as training prompts do."})
    wrong_video: bool = field(default=False, metadata={"help": "Also score each round with another video's frames (--videos-from shuffle) for the perception gate."})
    extra_args: list[str] = field(default_factory=list, metadata={"help": "More `stepkit eval` options, verbatim."})


@dataclass
class SelfTrainConfig:
    """Rounds of induce → generate → train → eval (STEP's self-training loop)."""

    out: str = field(default="runs/selftrain", metadata={"help": "Run folder; each round writes round_K/ inside."})
    rounds: int = field(default=2, metadata={"help": "Self-training rounds."})
    world: WorldSource | None = field(default_factory=WorldSource, metadata={"help": "Synthetic training videos."})
    videos: str | None = field(default=None, metadata={"help": "A folder of real videos instead of the world."})
    ground_truth: str | None = field(default=None, metadata={"help": "Ground-truth graphs for graph accuracy (set for the world)."})
    induce: InduceStage = field(default_factory=InduceStage)
    generate: GenerateStage = field(default_factory=GenerateStage)
    train: TrainStage = field(default_factory=TrainStage)
    grpo: GRPOStage | None = field(default=None, metadata={"help": "GRPO stage of each round (none when unset)."})
    eval: EvalStage = field(default_factory=EvalStage)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for saving with the run)."""
        return dataclasses.asdict(self)


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field holds (``X`` or ``X | None``), else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def build_dataclass(cls, data: Any, where: str, source: str):
    """``cls`` from a parsed YAML mapping, recursing into nested dataclass fields; ConfigError naming the field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {where or '(top level)'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: {where + '.' if where else ''}{unknown[0]}: unknown field "
            f"(known: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        path = f"{where}.{name}" if where else name
        nested = _dataclass_of(hints[name])
        if nested is not None:
            optional = type(None) in typing.get_args(hints[name])
            kwargs[name] = None if (optional and value is None) else build_dataclass(nested, value, path, source)
        else:
            kwargs[name] = _check_type(fields[name], value, path, source)
    return cls(**kwargs)


def _check_type(f: dataclasses.Field, value: Any, path: str, source: str) -> Any:
    t = str(f.type)
    ok = True
    if t.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool) or (value is None and "None" in t)
    elif t.startswith("float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) or (value is None and "None" in t)
    elif t.startswith("bool"):
        ok = isinstance(value, bool)
    elif t.startswith("str"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # `duration: 8` in YAML means the string "8"
        ok = isinstance(value, str) or (value is None and "None" in t)
    elif t.startswith("list"):
        item = int if t.startswith("list[int") else str
        ok = isinstance(value, list) and all(isinstance(v, item) and not isinstance(v, bool) for v in value)
    elif t.startswith("dict"):
        ok = isinstance(value, dict)
    if not ok:
        raise ConfigError(f"{source}: {path}: expected {t}, got {value!r}")
    return value


def validate_config(cfg: SelfTrainConfig, source: str = "config") -> SelfTrainConfig:
    """Check cross-field rules; returns ``cfg``."""
    if cfg.rounds < 1:
        raise ConfigError(f"{source}: rounds: must be at least 1, got {cfg.rounds}")
    if (cfg.world is None) == (cfg.videos is None):
        raise ConfigError(f"{source}: set exactly one of 'world' (synthetic videos) or 'videos' (a folder)")
    if cfg.induce.backend not in {"world", "opencv", "vlm"}:
        raise ConfigError(f"{source}: induce.backend: unknown backend {cfg.induce.backend!r} (world, opencv, vlm)")
    if cfg.induce.backend == "vlm" and not (cfg.induce.model or cfg.induce.endpoint):
        raise ConfigError(f"{source}: induce.model: the vlm backend needs a model ('current' or a path) or an endpoint")
    if cfg.eval.mode not in {"mc-loglik", "mc-generate", "open", "reason"}:
        raise ConfigError(f"{source}: eval.mode: unknown mode {cfg.eval.mode!r}")
    if cfg.world is not None and cfg.eval.seed == cfg.world.seed:
        raise ConfigError(f"{source}: eval.seed: held-out videos must not share the training world seed {cfg.world.seed}")
    if cfg.train.max_steps < 1:
        raise ConfigError(f"{source}: train.max_steps: must be at least 1")
    if cfg.train.save_steps < 1:
        raise ConfigError(f"{source}: train.save_steps: must be at least 1")
    if cfg.train.lambda_rationale < 0:
        raise ConfigError(f"{source}: train.lambda_rationale: must be >= 0")
    if cfg.grpo is not None:
        _validate_grpo(cfg.grpo, source)
    return cfg


def _validate_grpo(g: GRPOStage, source: str) -> None:
    for name in ("max_steps", "save_steps", "max_completion_length"):
        if getattr(g, name) < 1:
            raise ConfigError(f"{source}: grpo.{name}: must be at least 1")
    if g.num_generations < 2:
        raise ConfigError(f"{source}: grpo.num_generations: must be at least 2 (a group needs a spread)")
    if g.completion_format not in ("stepkit", "tags"):
        raise ConfigError(f"{source}: grpo.completion_format: unknown format {g.completion_format!r} (stepkit, tags)")
    weights = (g.weight_answer, g.weight_format, g.weight_faithfulness)
    if g.beta < 0 or min(weights) < 0 or not any(weights):
        raise ConfigError(f"{source}: grpo: beta and the reward weights must be >= 0, with some weight > 0")


def config_from_dict(data: Any, source: str = "config") -> SelfTrainConfig:
    """Build and validate a config from a parsed YAML mapping."""
    return validate_config(build_dataclass(SelfTrainConfig, data, "", source), source)


def load_config(path: str | os.PathLike) -> SelfTrainConfig:
    """Read and validate a self-training YAML config."""
    return config_from_dict(read_yaml(path), str(path))


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML config file's content; ConfigError naming the file when missing or malformed."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
