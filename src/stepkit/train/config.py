"""The one configuration of a training run (:class:`StepTrainConfig`), with help text on every field."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from stepkit.errors import ConfigError

SAMPLE_MODES = ("dual", "combined", "answer")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CONFIG_FILE = "step_config.json"
MANIFEST_FILE = "data_manifest.json"
CONFIG_VERSION = 1

# Fields that only steer one invocation and may differ on --resume without changing the run.
SESSION_FIELDS = ("stop_after_steps", "max_steps", "epochs", "save_steps", "logging_steps", "save_total_limit",
                  "dataloader_num_workers", "progress")


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


class ConfigFile:
    """The JSON form shared by the trainers' configs: dicts, the saved file, help texts, defaults."""

    KIND = "train config"  # how errors name it
    FILE = CONFIG_FILE  # the file a run folder holds
    ABSENT = "no training config here"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Build from a dict; ConfigError on unknown fields."""
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{cls.KIND}: unknown field(s) {unknown}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path):
        """Read the config file (a file or a folder holding one)."""
        p = Path(path)
        if p.is_dir():
            p = p / cls.FILE
        try:
            return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"{p}: {cls.ABSENT}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p}: invalid JSON: {exc.msg}") from None

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Field name -> default value."""
        out = {}
        for f in fields(cls):  # type: ignore[arg-type]
            out[f.name] = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
        return out


@dataclass
class StepTrainConfig(ConfigFile):
    """Everything a STEP fine-tuning run depends on (saved as ``step_config.json`` in every checkpoint)."""

    qa: str = _f("", "Q/R/A folder (holding qa.jsonl) or a qa.jsonl file.")
    model: str = _f("", "Model directory (or hub id where a network exists) loadable with from_pretrained.")
    out: str = _f("", "Output folder: checkpoints, the final model, loss log, config and data manifest.")
    family: str | None = _f(None, "Model family (qwen2-vl, qwen2.5-vl, qwen3-vl, llava-onevision, "
                                  "llava-next-video, smolvlm2); read from the model's config.json when unset.")
    # objective
    lambda_rationale: float = _f(1.0, "λ in L = L_answer + λ·L_rationale; 0 trains on answers only.")
    samples: str = _f("dual", "How a record becomes samples: 'dual' (one answer sample and one rationale sample), "
                              "'combined' (one two-turn sample: answer turn, then rationale turn) or 'answer' "
                              "(answer samples only: the plain-QA baseline).")
    rationale_with_answer: bool = _f(True, "End the rationale target with the answer sentence (the rationale "
                                           "instruction asks for it).")
    # video
    videos_dir: str | None = _f(None, "Folder that relative video paths in the records are relative to (for "
                                      "`stepkit generate` output: the graphs folder); the Q/R/A folder when unset.")
    num_frames: int | None = _f(8, "Frames per clip, uniformly over the record's window (ignored when fps is set).")
    fps: float | None = _f(None, "Sample frames at this rate instead of a fixed count (capped at max_frames).")
    max_frames: int = _f(32, "Most frames per clip.")
    max_side: int | None = _f(448, "Resize decoded frames so the longer side is at most this many pixels.")
    max_length: int = _f(8192, "Samples with more tokens than this are dropped (counted in the summary).")
    # model
    lora: bool = _f(False, "Train a LoRA adapter (peft) instead of all weights.")
    lora_r: int = _f(16, "LoRA rank (width of the low-rank update).")
    lora_alpha: int = _f(32, "LoRA alpha (scaling = alpha / r).")
    lora_dropout: float = _f(0.0, "Dropout on the LoRA branch.")
    lora_target_modules: list[str] = _f([], "Module names LoRA wraps; the family's defaults when empty.")
    freeze_vision: bool = _f(True, "Freeze the vision tower and projector (full fine-tuning of the language model).")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass to save memory.")
    precision: str = _f("auto", "auto (bf16 where the GPU supports it, else fp32), fp32, bf16 or fp16.")
    attn_implementation: str | None = _f(None, "Attention kernel passed to from_pretrained (e.g. sdpa, eager, "
                                                "flash_attention_2); the library default when unset.")
    # optimisation
    epochs: float = _f(1.0, "Passes over the samples (ignored when max_steps > 0).")
    max_steps: int = _f(-1, "Optimizer steps to train; > 0 overrides epochs.")
    per_device_batch_size: int = _f(2, "Samples per device per micro-batch.")
    gradient_accumulation_steps: int = _f(1, "Micro-batches per optimizer step.")
    learning_rate: float | None = _f(None, "Peak learning rate; 2e-4 with LoRA, 1e-5 for full fine-tuning when unset.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    warmup_steps: float = _f(0.03, "Linear warm-up: steps (>= 1) or a fraction of all steps (< 1).")
    lr_scheduler: str = _f("cosine", "Learning-rate schedule (any transformers scheduler name).")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm.")
    seed: int = _f(0, "Seed for weights of new modules, data order and dropout.")
    # distribution
    preset: str | None = _f(None, "Distributed preset: ddp, zero2, zero3 or fsdp (bundled accelerate/DeepSpeed "
                                  "configs); single process when unset.")
    # checkpoints and logs
    save_steps: int = _f(100, "Write a checkpoint every this many optimizer steps.")
    save_total_limit: int | None = _f(3, "Keep at most this many checkpoints (oldest removed).")
    logging_steps: int = _f(1, "Log loss terms every this many optimizer steps.")
    stop_after_steps: int | None = _f(None, "Stop (with a checkpoint) once this global step is reached, leaving the "
                                            "schedule of max_steps/epochs intact; continue later with --resume.")
    save_merged: bool = _f(False, "With LoRA, also write the adapter merged into the base model to OUT/merged.")
    dataloader_num_workers: int = _f(0, "Worker processes decoding video for the data loader.")
    progress: bool = _f(True, "Show a progress bar.")
    version: int = _f(CONFIG_VERSION, "Config format version.")

    def validate(self) -> StepTrainConfig:
        """ConfigError naming the first bad field; returns self."""
        if not self.qa:
            raise ConfigError("train config: 'qa' (the Q/R/A folder or file) is required")
        if not self.model:
            raise ConfigError("train config: 'model' (a model directory) is required")
        if not self.out:
            raise ConfigError("train config: 'out' (the output folder) is required")
        if self.samples not in SAMPLE_MODES:
            raise ConfigError(f"train config: samples={self.samples!r}; choose one of {', '.join(SAMPLE_MODES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train config: precision={self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.lambda_rationale < 0:
            raise ConfigError(f"train config: lambda_rationale must be >= 0, got {self.lambda_rationale}")
        if self.fps is None and (self.num_frames is None or self.num_frames < 1):
            raise ConfigError("train config: give num_frames >= 1 or fps")
        if self.fps is not None and self.fps <= 0:
            raise ConfigError(f"train config: fps must be > 0, got {self.fps}")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("train config: give max_steps > 0 or epochs > 0")
        for name in ("per_device_batch_size", "gradient_accumulation_steps", "max_frames", "save_steps",
                     "logging_steps", "lora_r"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train config: {name} must be >= 1, got {getattr(self, name)}")
        if self.preset is not None:
            from stepkit.train.presets import preset_names

            if self.preset not in preset_names():
                raise ConfigError(f"train config: unknown preset {self.preset!r}; known: {', '.join(preset_names())}")
        return self

    def lr(self) -> float:
        """The learning rate actually used."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return 2e-4 if self.lora else 1e-5
