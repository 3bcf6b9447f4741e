"""`stepkit train` (dual-objective SFT, or GRPO with graph rewards) and `stepkit bench train`."""

from __future__ import annotations

from pathlib import Path

import typer

from stepkit.cli_common import console, fail


SFT_ONLY = {"lambda_rationale": "--lambda-rationale", "samples": "--samples"}
GRPO_ONLY = {"graphs": "--graphs", "num_generations": "--num-generations",
             "max_completion_length": "--max-completion-length", "temperature": "--temperature", "beta": "--beta",
             "completion_format": "--completion-format", "weight_answer": "--weight-answer",
             "weight_format": "--weight-format", "weight_faithfulness": "--weight-faithfulness",
             "temporal_contrast": "--temporal-contrast", "rollout": "--rollout"}


def apply_threads(threads: int | None) -> int:
    """Set torch's intra-op threads: ``threads`` when given, else one per process when several run
    (torchrun / a preset) and OMP_NUM_THREADS does not say otherwise; returns the count in force."""
    import os

    import torch

    if threads is not None:
        if threads < 1:
            fail(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # several ranks share the cores: more threads each only contend
    return torch.get_num_threads()


def train_cmd(
    qa_dir: Path | None = typer.Argument(None, help="Q/R/A folder (with qa.jsonl) or a qa.jsonl file; "
                                                         "optional with --resume."),
    model: str | None = typer.Option(None, "--model", help="Model directory (from_pretrained)."),
    out: Path = typer.Option(..., "--out", help="Output folder for checkpoints, model, logs."),
    method: str | None = typer.Option(None, "--method", help="sft (L = L_answer + λ·L_rationale, default) or grpo "
                                                             "(rollouts with graph-verified rewards); read from the "
                                                             "run with --resume."),
    lambda_rationale: float | None = typer.Option(None, "--lambda-rationale", help="sft: λ in L = L_answer + λ·L_rationale (default 1.0)."),
    lora: bool | None = typer.Option(None, "--lora/--full", help="Train a LoRA adapter, or all weights (default)."),
    preset: str | None = typer.Option(None, "--preset", help="Distributed preset: ddp, zero2, zero3, fsdp."),
    epochs: float | None = typer.Option(None, "--epochs", help="Passes over the data (default 1)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer steps; overrides --epochs."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    samples: str | None = typer.Option(None, "--samples", help="sft: dual (default), combined or answer."),
    family: str | None = typer.Option(None, "--family", help="Model family when config.json does not say."),
    videos_dir: Path | None = typer.Option(None, "--videos-dir", help="Folder relative video paths are relative to (e.g. the graphs folder)."),
    num_frames: int | None = typer.Option(None, "--num-frames", help="Frames per clip (default 8)."),
    fps: float | None = typer.Option(None, "--fps", help="Sample frames at this rate instead of a count."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Samples (grpo: questions) per device per micro-batch (default 2)."),
    grad_accum: int | None = typer.Option(None, "--grad-accum", help="Micro-batches per optimizer step (default 1)."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (2e-4 LoRA; full: 1e-5 sft, 1e-6 grpo by default)."),
    freeze_vision: bool | None = typer.Option(None, "--freeze-vision/--train-vision", help="Freeze the vision tower (default)."),
    gradient_checkpointing: bool | None = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing", help="Recompute activations to save memory."),
    precision: str | None = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16."),
    save_steps: int | None = typer.Option(None, "--save-steps", help="Checkpoint every N steps (default 100)."),
    stop_after: int | None = typer.Option(None, "--stop-after", help="Stop with a checkpoint at this global step (continue with --resume)."),
    save_merged: bool | None = typer.Option(None, "--save-merged/--no-save-merged", help="With --lora, also write OUT/merged."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default 0)."),
    graphs: Path | None = typer.Option(None, "--graphs", help="grpo: folder of the videos' scene graphs for the faithfulness reward (default: --videos-dir)."),
    num_generations: int | None = typer.Option(None, "--num-generations", help="grpo: completions per question (default 4)."),
    max_completion_length: int | None = typer.Option(None, "--max-completion-length", help="grpo: most new tokens per completion (default 128)."),
    temperature: float | None = typer.Option(None, "--temperature", help="grpo: rollout sampling temperature (default 1.0)."),
    beta: float | None = typer.Option(None, "--beta", help="grpo: KL coefficient to the starting model (default 0.04)."),
    completion_format: str | None = typer.Option(None, "--completion-format", help="grpo: stepkit (reasoning, then 'So the answer is X.'; default) or tags (<think>/<answer>)."),
    weight_answer: float | None = typer.Option(None, "--weight-answer", help="grpo: weight of the answer reward (default 1.0)."),
    weight_format: float | None = typer.Option(None, "--weight-format", help="grpo: weight of the format reward (default 0.5)."),
    weight_faithfulness: float | None = typer.Option(None, "--weight-faithfulness", help="grpo: weight of the faithfulness reward (default 1.0; 0 needs no graphs)."),
    temporal_contrast: bool | None = typer.Option(None, "--temporal-contrast/--no-temporal-contrast", help="grpo: Video-R1 T-GRPO bonus from rollouts on shuffled frames."),
    rollout: str | None = typer.Option(None, "--rollout", help="grpo: hf (default) or vllm (GPU)."),
    threads: int | None = typer.Option(None, "--threads", help="torch intra-op threads (default: the library's; one per process when several run)."),
    config: Path | None = typer.Option(None, "--config", help="A JSON file of StepTrainConfig (grpo: StepGRPOConfig) fields (options override it)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Fine-tune a Video-LLM on Q/R/A records: SFT with L = L_answer + λ·L_rationale, or GRPO with graph rewards."""
    from stepkit.errors import StepkitError

    given = {"qa": str(qa_dir) if qa_dir is not None else None, "model": model, "lambda_rationale": lambda_rationale,
             "lora": lora, "preset": preset, "epochs": epochs, "max_steps": max_steps, "samples": samples,
             "family": family, "videos_dir": str(videos_dir) if videos_dir is not None else None, "num_frames": num_frames, "fps": fps, "per_device_batch_size": batch_size,
             "gradient_accumulation_steps": grad_accum, "learning_rate": lr, "freeze_vision": freeze_vision,
             "gradient_checkpointing": gradient_checkpointing, "precision": precision, "save_steps": save_steps,
             "stop_after_steps": stop_after, "save_merged": save_merged, "seed": seed,
             "graphs": str(graphs) if graphs is not None else None, "num_generations": num_generations,
             "max_completion_length": max_completion_length, "temperature": temperature, "beta": beta,
             "completion_format": completion_format, "weight_answer": weight_answer, "weight_format": weight_format,
             "weight_faithfulness": weight_faithfulness, "temporal_contrast": temporal_contrast, "rollout": rollout}
    given = {k: v for k, v in given.items() if v is not None}
    if quiet:
        given["progress"] = False
    if method is not None and method not in ("sft", "grpo"):
        fail(f"--method {method!r}: choose sft or grpo")
    try:
        from stepkit.train.grpo import is_grpo_run

        if resume:
            run_method = "grpo" if is_grpo_run(out) else "sft"
            if method is not None and method != run_method:
                fail(f"--method {method}: the run in {out} is a {run_method} run")
            method = run_method
        method = method or "sft"
        wrong = SFT_ONLY if method == "grpo" else GRPO_ONLY
        bad = [opt for key, opt in wrong.items() if key in given]
        if bad:
            fail(f"{', '.join(bad)}: not an option of --method {method}")
        apply_threads(threads)
        if method == "grpo":
            from stepkit.train.grpo import resume_grpo_config, train_grpo
            from stepkit.train.grpo_config import StepGRPOConfig as Config

            resume_fn, train_fn = resume_grpo_config, train_grpo
        else:
            from stepkit.train.config import StepTrainConfig as Config
            from stepkit.train.trainer import resume_config as resume_fn
            from stepkit.train.trainer import train as train_fn
        if resume:
            cfg, ckpt = resume_fn(out, given)
            console.print(f"resuming {out} from {ckpt.name}", highlight=False, soft_wrap=True)
        else:
            base = {}
            if config is not None:
                from stepkit.errors import ConfigError
                from stepkit.userfiles import field_type_problems, load_json

                base = load_json(config, what="training config", error=ConfigError, expect=dict)
                wrong = field_type_problems(base, Config, where=str(config))
                if wrong:
                    raise ConfigError(wrong[0])
            base.update(given)
            base["out"] = str(out)
            if not base.get("qa") or not base.get("model"):
                fail("give QA_DIR and --model (or --resume to continue a run in --out)")
            try:
                cfg = Config.from_dict(base).validate()
            except StepkitError as exc:  # the options are known fields: a bad field came from the file
                if config is None or str(exc).startswith(str(config)):
                    raise
                raise type(exc)(f"{config}: {exc}") from None
        result = train_fn(cfg, resume=resume)
    except StepkitError as exc:
        fail(exc)
    if result.trainer is not None and not result.trainer.is_world_process_zero():
        return
    last = next((h for h in reversed(result.log_history) if "loss" in h), {})
    state = "finished" if result.finished else f"stopped at step {result.global_step}; continue with --resume"
    names = ("reward", "reward_answer", "reward_format", "reward_faithfulness", "kl") if method == "grpo" \
        else ("loss", "loss_answer", "loss_rationale")
    terms = " ".join(f"{k}={last[k]:.4f}" for k in names if isinstance(last.get(k), (int, float)))
    console.print(f"{out}: {result.global_step}/{result.max_steps} steps, {state}; {terms}", highlight=False,
                  soft_wrap=True)


def bench_train_cmd(
    family: str = typer.Option("qwen2-vl", "--family", help="Tiny model family to benchmark."),
    steps: int = typer.Option(20, "--steps", help="Timed optimizer steps."),
    batch_size: int = typer.Option(4, "--batch-size", help="Samples per step."),
    num_frames: int = typer.Option(4, "--num-frames", help="Frames per clip."),
    hidden_size: int | None = typer.Option(None, "--hidden-size", help="Tiny model width (default 256; --memory: 64)."),
    num_layers: int | None = typer.Option(None, "--num-layers", help="Tiny model depth (default 4; --memory: 2)."),
    image_size: int = typer.Option(112, "--image-size", help="Frame size of the tiny model."),
    repeats: int = typer.Option(5, "--repeats", help="Interleaved repeats of the dual-vs-plain loss timing."),
    threads: int = typer.Option(1, "--threads", help="torch intra-op threads (0: library default)."),
    out: Path | None = typer.Option(None, "--out", help="Write the results as JSON here."),
    memory: bool = typer.Option(False, "--memory", help="Instead: peak memory and time of a training step with logits at every position vs only at supervised ones."),
    vocab_size: int = typer.Option(151_936, "--vocab-size", help="--memory: LM-head vocabulary (Qwen's by default)."),
    tokens: list[int] = typer.Option([1024, 2048, 4096, 8192], "--tokens", help="--memory: sequence lengths (repeat)."),
    full_max_tokens: int = typer.Option(4096, "--full-max-tokens", help="--memory: longest sequence measured with logits at every position."),
    dtype: str = typer.Option("bfloat16", "--dtype", help="--memory: model dtype (bfloat16 | float32)."),
    markdown: Path | None = typer.Option(None, "--markdown", help="--memory: also write the table here."),
) -> None:
    """Samples/s and tokens/s of a tiny model, and the dual loss's cost against plain cross-entropy; --memory: LM-head memory."""
    from stepkit.errors import StepkitError
    from stepkit.train.bench import bench_train, format_bench

    if memory:
        from stepkit.train.bench import bench_train_memory, format_memory

        if dtype not in ("bfloat16", "float32", "float16"):
            fail(f"--dtype {dtype!r}: choose bfloat16, float32 or float16")
        res = bench_train_memory(family=family, vocab_size=vocab_size, tokens=tuple(tokens), batch_size=1,
                                 hidden_size=hidden_size or 64, num_layers=num_layers or 2,
                                 dtype=dtype, full_max_tokens=full_max_tokens, threads=threads or 1)
        text = format_memory(res)
        console.print(text, highlight=False, end="")
        if markdown is not None:
            from stepkit.io import atomic_write_text

            atomic_write_text(markdown, text)
        if out is not None:
            from stepkit.io import atomic_write_json

            atomic_write_json(out, res)
        return
    try:
        res = bench_train(family=family, steps=steps, batch_size=batch_size, num_frames=num_frames,
                          hidden_size=hidden_size or 256, num_layers=num_layers or 4, image_size=image_size, repeats=repeats,
                          threads=threads or None)
    except StepkitError as exc:
        fail(exc)
    console.print(format_bench(res), highlight=False)
    if out is not None:
        from stepkit.io import atomic_write_json

        atomic_write_json(out, res)


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add `stepkit train` and `stepkit bench train`."""
    root.command("train")(train_cmd)
    bench.command("train")(bench_train_cmd)
