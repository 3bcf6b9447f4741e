"""`stepkit train` (dual-objective fine-tuning) and `stepkit bench train`."""

from __future__ import annotations

from pathlib import Path

import typer

from stepkit.cli_common import console, fail


def train_cmd(
    qa_dir: Path | None = typer.Argument(None, help="Q/R/A folder (with qa.jsonl) or a qa.jsonl file; "
                                                         "optional with --resume."),
    model: str | None = typer.Option(None, "--model", help="Model directory (from_pretrained)."),
    out: Path = typer.Option(..., "--out", help="Output folder for checkpoints, model, logs."),
    lambda_rationale: float | None = typer.Option(None, "--lambda-rationale", help="λ in L = L_answer + λ·L_rationale (default 1.0)."),
    lora: bool | None = typer.Option(None, "--lora/--full", help="Train a LoRA adapter, or all weights (default)."),
    preset: str | None = typer.Option(None, "--preset", help="Distributed preset: ddp, zero2, zero3, fsdp."),
    epochs: float | None = typer.Option(None, "--epochs", help="Passes over the data (default 1)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer steps; overrides --epochs."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    samples: str | None = typer.Option(None, "--samples", help="dual (default), combined or answer."),
    family: str | None = typer.Option(None, "--family", help="Model family when config.json does not say."),
    videos_dir: Path | None = typer.Option(None, "--videos-dir", help="Folder relative video paths are relative to (e.g. the graphs folder)."),
    num_frames: int | None = typer.Option(None, "--num-frames", help="Frames per clip (default 8)."),
    fps: float | None = typer.Option(None, "--fps", help="Sample frames at this rate instead of a count."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Samples per device per micro-batch (default 2)."),
    grad_accum: int | None = typer.Option(None, "--grad-accum", help="Micro-batches per optimizer step (default 1)."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (2e-4 LoRA, 1e-5 full by default)."),
    freeze_vision: bool | None = typer.Option(None, "--freeze-vision/--train-vision", help="Freeze the vision tower (default)."),
    gradient_checkpointing: bool | None = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing", help="Recompute activations to save memory."),
    precision: str | None = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16."),
    save_steps: int | None = typer.Option(None, "--save-steps", help="Checkpoint every N steps (default 100)."),
    stop_after: int | None = typer.Option(None, "--stop-after", help="Stop with a checkpoint at this global step (continue with --resume)."),
    save_merged: bool | None = typer.Option(None, "--save-merged/--no-save-merged", help="With --lora, also write OUT/merged."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default 0)."),
    config: Path | None = typer.Option(None, "--config", help="A JSON file of StepTrainConfig fields (options override it)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Fine-tune a Video-LLM on Q/R/A records with L = L_answer + λ·L_rationale."""
    import json

    from stepkit.errors import StepkitError
    from stepkit.train.config import StepTrainConfig

    given = {"qa": str(qa_dir) if qa_dir is not None else None, "model": model, "lambda_rationale": lambda_rationale,
             "lora": lora, "preset": preset, "epochs": epochs, "max_steps": max_steps, "samples": samples,
             "family": family, "videos_dir": str(videos_dir) if videos_dir is not None else None, "num_frames": num_frames, "fps": fps, "per_device_batch_size": batch_size,
             "gradient_accumulation_steps": grad_accum, "learning_rate": lr, "freeze_vision": freeze_vision,
             "gradient_checkpointing": gradient_checkpointing, "precision": precision, "save_steps": save_steps,
             "stop_after_steps": stop_after, "save_merged": save_merged, "seed": seed}
    given = {k: v for k, v in given.items() if v is not None}
    if quiet:
        given["progress"] = False
    try:
        from stepkit.train.trainer import resume_config, train

        if resume:
            cfg, ckpt = resume_config(out, given)
            console.print(f"resuming {out} from {ckpt.name}", highlight=False, soft_wrap=True)
        else:
            base = {}
            if config is not None:
                try:
                    base = json.loads(config.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    fail(f"{config}: cannot read the config ({exc})")
            base.update(given)
            base["out"] = str(out)
            if not base.get("qa") or not base.get("model"):
                fail("give QA_DIR and --model (or --resume to continue a run in --out)")
            cfg = StepTrainConfig.from_dict(base).validate()
        result = train(cfg, resume=resume)
    except StepkitError as exc:
        fail(exc)
    if result.trainer is not None and not result.trainer.is_world_process_zero():
        return
    last = next((h for h in reversed(result.log_history) if "loss" in h), {})
    state = "finished" if result.finished else f"stopped at step {result.global_step}; continue with --resume"
    terms = " ".join(f"{k}={last[k]:.4f}" for k in ("loss", "loss_answer", "loss_rationale") if k in last)
    console.print(f"{out}: {result.global_step}/{result.max_steps} steps, {state}; {terms}", highlight=False,
                  soft_wrap=True)


def bench_train_cmd(
    family: str = typer.Option("qwen2-vl", "--family", help="Tiny model family to benchmark."),
    steps: int = typer.Option(20, "--steps", help="Timed optimizer steps."),
    batch_size: int = typer.Option(4, "--batch-size", help="Samples per step."),
    num_frames: int = typer.Option(4, "--num-frames", help="Frames per clip."),
    hidden_size: int = typer.Option(256, "--hidden-size", help="Tiny model width."),
    num_layers: int = typer.Option(4, "--num-layers", help="Tiny model depth."),
    image_size: int = typer.Option(112, "--image-size", help="Frame size of the tiny model."),
    repeats: int = typer.Option(5, "--repeats", help="Interleaved repeats of the dual-vs-plain loss timing."),
    threads: int = typer.Option(1, "--threads", help="torch intra-op threads (0: library default)."),
    out: Path | None = typer.Option(None, "--out", help="Write the results as JSON here."),
) -> None:
    """Samples/s and tokens/s of a tiny model, and the dual loss's cost against plain cross-entropy."""
    from stepkit.errors import StepkitError
    from stepkit.train.bench import bench_train, format_bench

    try:
        res = bench_train(family=family, steps=steps, batch_size=batch_size, num_frames=num_frames,
                          hidden_size=hidden_size, num_layers=num_layers, image_size=image_size, repeats=repeats,
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
