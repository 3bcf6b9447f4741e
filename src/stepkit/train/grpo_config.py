"""The configuration of a GRPO run (:class:`StepGRPOConfig`), with help text on every field.

It has the SFT config's shape (:class:`stepkit.train.config.StepTrainConfig`): the same data, video,
model, optimisation, distribution and checkpoint fields with the same meaning and defaults, minus the
supervised objective's (``lambda_rationale``, ``samples``, ``rationale_with_answer``), plus the
rollout, reward and KL fields, named as in TRL's ``GRPOConfig`` where TRL has the same knob
(``num_generations``, ``max_completion_length``, ``temperature``, ``top_p``, ``beta``,
``scale_rewards``, ``loss_type``, ``mask_truncated_completions``).
"""

from __future__ import annotations

from dataclasses import dataclass

from stepkit.errors import ConfigError
from stepkit.train.config import CONFIG_VERSION, PRECISIONS, ConfigFile, _f
from stepkit.train.rewards import FORMATS, RewardWeights

GRPO_CONFIG_FILE = "grpo_config.json"
SCALE_REWARDS = ("group", "batch", "none")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo")
ROLLOUTS = ("hf", "vllm")
# Fields that only steer one invocation and may differ on --resume without changing the run.
GRPO_SESSION_FIELDS = ("stop_after_steps", "max_steps", "epochs", "save_steps", "logging_steps", "save_total_limit",
                       "dataloader_num_workers", "progress")


@dataclass
class StepGRPOConfig(ConfigFile):
    """Everything a GRPO run depends on (saved as ``grpo_config.json`` in every checkpoint)."""

    KIND = "grpo config"
    FILE = GRPO_CONFIG_FILE
    ABSENT = "no GRPO config here"

    method: str = _f("grpo", "Training method this config is for (always 'grpo'; `stepkit train --method`).")
    qa: str = _f("", "Q/R/A folder (holding qa.jsonl) or a qa.jsonl file: the questions rolled out, with the "
                     "answers the answer reward checks.")
    model: str = _f("", "Starting model directory (or hub id where a network exists): the policy's initial weights "
                        "and the frozen reference of the KL term.")
    out: str = _f("", "Output folder: checkpoints, the final model, reward log, config and data manifest.")
    family: str | None = _f(None, "Model family (qwen2-vl, qwen2.5-vl, qwen3-vl, llava-onevision, "
                                  "llava-next-video, smolvlm2); read from the model's config.json when unset.")
    graphs: str | None = _f(None, "Folder (or file) of the videos' scene graphs (STSG JSON) the faithfulness reward "
                                  "checks rationales against, matched to records by video_id; videos_dir, then the "
                                  "Q/R/A folder, when unset.")
    # rewards
    completion_format: str = _f("stepkit", "Completion format the format reward checks and answers are read from: "
                                           "'stepkit' (reasoning, then 'So the answer is X.', what STEP's rationale "
                                           "samples teach) or 'tags' (<think>…</think><answer>…</answer>).")
    instruction: str | None = _f(None, "Instruction after the question; the record's rationale_instruction "
                                       "('stepkit' format) or a <think>/<answer> instruction ('tags') when unset.")
    weight_answer: float = _f(1.0, "Weight of the answer reward (1 when the answer is the record's, else 0).")
    weight_format: float = _f(0.5, "Weight of the format reward (1 when the completion is well formed, else 0).")
    weight_faithfulness: float = _f(1.0, "Weight of the faithfulness reward (the rationale's graph-faithfulness score "
                                         "in [0, 1]); 0 turns it off (no graphs needed).")
    temporal_contrast: bool = _f(False, "Video-R1's T-GRPO: also roll out each question on its frames shuffled, and "
                                        "give right answers a bonus when order helps (see temporal_alpha / "
                                        "temporal_margin).")
    temporal_alpha: float = _f(0.3, "T-GRPO bonus added to each right answer of a group when order helps.")
    temporal_margin: float = _f(0.8, "T-GRPO: order helps when p >= margin · p̃ (p, p̃: share of right answers with "
                                     "ordered / shuffled frames).")
    temporal_generations: int | None = _f(None, "Completions per question on shuffled frames (num_generations // 2, "
                                                "at least 1, when unset, as in Video-R1).")
    # rollouts
    num_generations: int = _f(4, "Completions sampled per question (the group of GRPO's group-relative advantage).")
    max_completion_length: int = _f(128, "Most new tokens per completion; a completion cut here is 'truncated'.")
    temperature: float = _f(1.0, "Sampling temperature of the rollouts (> 0).")
    top_p: float = _f(1.0, "Nucleus sampling mass of the rollouts (1: off).")
    top_k: int = _f(0, "Sample among the k most likely tokens (0: off).")
    rollout: str = _f("hf", "Rollout engine: 'hf' (the policy's own generate) or 'vllm' (a colocated vLLM engine "
                            "fed the policy's weights every step; needs a GPU and the vllm package).")
    vllm_gpu_memory_utilization: float = _f(0.3, "rollout=vllm: share of GPU memory vLLM may take.")
    vllm_max_model_length: int | None = _f(None, "rollout=vllm: context length of the engine (the model's when unset).")
    # objective
    beta: float = _f(0.04, "KL coefficient: loss += beta · KL(policy ‖ reference), k3 estimator per token; 0 drops "
                           "the term and the reference model.")
    scale_rewards: str = _f("group", "Advantage scaling: 'group' (divide by the group's std, GRPO), 'batch' (by the "
                                     "micro-batch's std) or 'none' (Dr. GRPO).")
    loss_type: str = _f("grpo", "Loss aggregation: 'grpo' (mean over each completion's tokens, then over "
                                "completions), 'bnpo' (mean over all completion tokens of the micro-batch) or "
                                "'dr_grpo' (sum over tokens / (completions · max_completion_length)).")
    mask_truncated_completions: bool = _f(False, "Leave completions cut at max_completion_length out of the loss.")
    # video
    videos_dir: str | None = _f(None, "Folder that relative video paths in the records are relative to (for "
                                      "`stepkit generate` output: the graphs folder); the Q/R/A folder when unset.")
    num_frames: int | None = _f(8, "Frames per clip, uniformly over the record's window (ignored when fps is set).")
    fps: float | None = _f(None, "Sample frames at this rate instead of a fixed count (capped at max_frames).")
    max_frames: int = _f(32, "Most frames per clip.")
    max_side: int | None = _f(448, "Resize decoded frames so the longer side is at most this many pixels.")
    max_length: int = _f(8192, "Prompts with more tokens than this are refused (a DataError naming the record).")
    # model
    lora: bool = _f(False, "Train a LoRA adapter (peft) instead of all weights (the reference is then the base "
                           "model with the adapter off).")
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
    epochs: float = _f(1.0, "Passes over the questions (ignored when max_steps > 0).")
    max_steps: int = _f(-1, "Optimizer steps to train; > 0 overrides epochs.")
    per_device_batch_size: int = _f(2, "Questions per device per micro-batch (each rolled out num_generations times).")
    gradient_accumulation_steps: int = _f(1, "Micro-batches per optimizer step.")
    learning_rate: float | None = _f(None, "Peak learning rate; 2e-4 with LoRA, 1e-6 for full fine-tuning when unset.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    warmup_steps: float = _f(0.0, "Linear warm-up: steps (>= 1) or a fraction of all steps (< 1).")
    lr_scheduler: str = _f("constant", "Learning-rate schedule (any transformers scheduler name).")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm.")
    seed: int = _f(0, "Seed for new modules, question order, frame shuffles and rollout sampling.")
    # distribution
    preset: str | None = _f(None, "Distributed preset: ddp, zero2, zero3 or fsdp (bundled accelerate/DeepSpeed "
                                  "configs); single process when unset.")
    # checkpoints and logs
    save_steps: int = _f(100, "Write a checkpoint every this many optimizer steps.")
    save_total_limit: int | None = _f(3, "Keep at most this many checkpoints (oldest removed).")
    logging_steps: int = _f(1, "Log reward terms and KL every this many optimizer steps.")
    stop_after_steps: int | None = _f(None, "Stop (with a checkpoint) once this global step is reached, leaving the "
                                            "schedule of max_steps/epochs intact; continue later with --resume.")
    save_merged: bool = _f(False, "With LoRA, also write the adapter merged into the base model to OUT/merged.")
    dataloader_num_workers: int = _f(0, "Worker processes for the question loader.")
    progress: bool = _f(True, "Show a progress bar.")
    version: int = _f(CONFIG_VERSION, "Config format version.")

    def validate(self) -> StepGRPOConfig:
        """ConfigError naming the first bad field; returns self."""
        if self.method != "grpo":
            raise ConfigError(f"grpo config: method={self.method!r}; this config is for 'grpo'")
        for name, what in (("qa", "the Q/R/A folder or file"), ("model", "a model directory"),
                           ("out", "the output folder")):
            if not getattr(self, name):
                raise ConfigError(f"grpo config: '{name}' ({what}) is required")
        if self.completion_format not in FORMATS:
            raise ConfigError(f"grpo config: completion_format={self.completion_format!r}; choose one of "
                              f"{', '.join(FORMATS)}")
        for name, allowed in (("scale_rewards", SCALE_REWARDS), ("loss_type", LOSS_TYPES), ("rollout", ROLLOUTS),
                              ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"grpo config: {name}={getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        try:
            self.weights().validate()
        except ConfigError as exc:
            raise ConfigError(f"grpo config: {exc}") from None
        if self.num_generations < 2:
            raise ConfigError(f"grpo config: num_generations must be >= 2 (a group needs a spread), got "
                              f"{self.num_generations}")
        if self.temperature <= 0:
            raise ConfigError(f"grpo config: temperature must be > 0 (rollouts are sampled), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"grpo config: top_p must be in (0, 1], got {self.top_p}")
        if self.beta < 0 or self.temporal_alpha < 0 or self.temporal_margin < 0:
            raise ConfigError("grpo config: beta, temporal_alpha and temporal_margin must be >= 0")
        if self.temporal_generations is not None and self.temporal_generations < 1:
            raise ConfigError(f"grpo config: temporal_generations must be >= 1, got {self.temporal_generations}")
        if self.fps is None and (self.num_frames is None or self.num_frames < 1):
            raise ConfigError("grpo config: give num_frames >= 1 or fps")
        if self.fps is not None and self.fps <= 0:
            raise ConfigError(f"grpo config: fps must be > 0, got {self.fps}")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("grpo config: give max_steps > 0 or epochs > 0")
        for name in ("per_device_batch_size", "gradient_accumulation_steps", "max_frames", "save_steps",
                     "logging_steps", "lora_r", "max_completion_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"grpo config: {name} must be >= 1, got {getattr(self, name)}")
        if self.top_k < 0:
            raise ConfigError(f"grpo config: top_k must be >= 0, got {self.top_k}")
        if self.preset is not None:
            from stepkit.train.presets import preset_names

            if self.preset not in preset_names():
                raise ConfigError(f"grpo config: unknown preset {self.preset!r}; known: {', '.join(preset_names())}")
        return self

    def weights(self) -> RewardWeights:
        """The reward weights."""
        return RewardWeights(self.weight_answer, self.weight_format, self.weight_faithfulness)

    def shuffled_generations(self) -> int:
        """Completions per question on shuffled frames (T-GRPO)."""
        return self.temporal_generations or max(1, self.num_generations // 2)

    def lr(self) -> float:
        """The learning rate actually used."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return 2e-4 if self.lora else 1e-6
