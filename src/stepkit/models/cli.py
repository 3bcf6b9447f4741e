"""`stepkit models …`: list the supported families and build tiny random models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from stepkit.cli_common import console, fail

app = typer.Typer(help="Supported Video-LLM families, tiny random models, backends.", no_args_is_help=True)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print the families as JSON.")) -> None:
    """List the supported model families and the model backends."""
    from rich.table import Table

    from stepkit.models.families import FAMILIES
    from stepkit.models.registry import available_backends

    if as_json:
        console.print_json(json.dumps({"families": [f.summary() for f in FAMILIES.values()],
                                       "backends": available_backends()}))
        return
    table = Table(title="model families")
    for col in ("family", "model class", "video input", "vision tower", "example checkpoint"):
        table.add_column(col)
    for f in FAMILIES.values():
        table.add_row(f.name, f.model_class, f.video_input, ", ".join(p.rstrip(".") for p in f.vision_prefixes),
                      f.example_checkpoints[0] if f.example_checkpoints else "")
    console.print(table)
    console.print(f"backends: {', '.join(available_backends())}", highlight=False)


# At 56 px a 4-frame 320x180 clip is 4 visual tokens for Qwen2.5-VL (14 px patches, 2x2 merge, frame
# pairs): too few to see a small object. 112 px gives ~30 (docs/replication-notes.md).
CLI_IMAGE_SIZE = 112


@app.command("tiny")
def tiny_cmd(
    family: str = typer.Option(..., "--family", "-f", help="Model family (see `stepkit models list`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the model into."),
    seed: int = typer.Option(0, help="Seed of the random weights."),
    hidden_size: Optional[int] = typer.Option(None, help="Text hidden size (multiple of 16; default 64)."),
    layers: Optional[int] = typer.Option(None, help="Text decoder layers (default 2)."),
    vision_hidden_size: Optional[int] = typer.Option(None, help="Vision hidden size (multiple of 16; default 32)."),
    vision_layers: Optional[int] = typer.Option(None, help="Vision encoder layers (default 1)."),
    image_size: Optional[int] = typer.Option(None, help="Frame side in pixels (default 112, 128 for qwen3-vl: about 30 visual tokens per 4-frame 16:9 clip for the Qwen families; the library's TinySize keeps 56 for fast tests)."),
    num_frames: Optional[int] = typer.Option(None, help="Frames per video the processor expects (default 4)."),
    overwrite: bool = typer.Option(False, help="Replace whatever is in --out."),
) -> None:
    """Write a tiny random model of a family (weights, tokenizer, processor, chat template) to --out."""
    from stepkit.errors import StepkitError
    from stepkit.models.tiny import build_tiny_model

    try:
        path = build_tiny_model(family, out, seed=seed, overwrite=overwrite, hidden_size=hidden_size,
                                num_layers=layers, vision_hidden_size=vision_hidden_size,
                                vision_layers=vision_layers, image_size=image_size or CLI_IMAGE_SIZE,
                                num_frames=num_frames)
    except StepkitError as exc:
        fail(exc)
    spec = json.loads((path / "stepkit_tiny.json").read_text(encoding="utf-8"))
    console.print(f"wrote tiny {spec['family']} model (seed {seed}, size {spec['size']}) to {path}", highlight=False)


@app.command("graft")
def graft_cmd(
    decoder: Path = typer.Argument(..., help="Model whose language model, tokenizer and chat template are kept."),
    vision: Path = typer.Argument(..., help="Model (same family) whose vision tower and projector replace the decoder's."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the joined model into."),
    overwrite: bool = typer.Option(False, help="Replace whatever is in --out."),
) -> None:
    """Join DECODER's language model to VISION's vision tower and projector (trained apart)."""
    from stepkit.errors import StepkitError
    from stepkit.models.graft import graft_vision

    try:
        s = graft_vision(decoder, vision, out, overwrite=overwrite)
    except StepkitError as exc:
        fail(exc)
    console.print(f"{s['family']}: language model of {decoder}, vision tower of {vision} "
                  f"({s['vision_parameters']:,} parameters) -> {out}", highlight=False)


def _read_video(path: Path, num_frames: int):
    """``num_frames`` evenly spaced RGB frames of a video and the rate they stand for (frames/second)."""
    import av
    import numpy as np

    from stepkit.errors import VideoError

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
            rate = float(stream.average_rate or 0) or 25.0
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise VideoError(f"cannot decode video {path}: {exc}") from exc
    if not frames:
        raise VideoError(f"video {path} has no frames")
    idx = np.linspace(0, len(frames) - 1, min(num_frames, len(frames))).round().astype(int)
    duration = len(frames) / rate
    return [frames[i] for i in idx], len(idx) / duration


@app.command("ask")
def ask_cmd(
    question: str = typer.Argument(..., help="The question (the user turn's text)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Checkpoint folder, hub id, or tiny:FAMILY[:SEED]."),
    endpoint: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1."),
    image: List[Path] = typer.Option([], "--image", help="Image file(s) to show (repeatable)."),
    video: Optional[Path] = typer.Option(None, help="A video file; evenly sampled --frames frames are shown."),
    frames: int = typer.Option(8, help="Frames to sample from --video."),
    system: Optional[str] = typer.Option(None, help="System message."),
    n: int = typer.Option(1, help="Number of answers."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    max_new_tokens: int = typer.Option(128, help="Longest answer in tokens."),
    seed: int = typer.Option(0, help="Sampling seed."),
    cache: Optional[Path] = typer.Option(None, help="SQLite response cache file."),
    dtype: str = typer.Option("auto", help="hf/tiny: auto | float32 | bfloat16 | float16."),
    device: str = typer.Option("auto", help="hf/tiny: auto | cpu | cuda | cuda:N | mps."),
    as_json: bool = typer.Option(False, "--json", help="Print the answers as a JSON list."),
) -> None:
    """Ask a model one question about images or a video (a smoke test for a checkpoint or endpoint)."""
    import numpy as np
    from PIL import Image

    from stepkit.errors import StepkitError
    from stepkit.models.base import Prompt, SamplingParams
    from stepkit.models.registry import open_model

    try:
        images = []
        for p in image:
            try:
                images.append(np.asarray(Image.open(p).convert("RGB")))
            except OSError as exc:
                from stepkit.errors import DataError

                raise DataError(f"cannot read image {p}: {exc}") from exc
        clip, fps = _read_video(video, frames) if video else (None, None)
        opts = {} if endpoint else {"dtype": dtype, "device": device}
        backend = open_model(model, endpoint, cache=str(cache) if cache else None, **opts)
        answers = backend.generate([Prompt(question, images=images, video=clip, video_fps=fps, system=system)],
                                   SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                                                  seed=seed))[0]
    except StepkitError as exc:
        fail(exc)
    if as_json:
        console.print_json(json.dumps(answers))
        return
    for i, a in enumerate(answers):
        console.print(f"[bold]{i + 1}.[/bold] {a}" if n > 1 else a, highlight=False, soft_wrap=True)


def register(root: typer.Typer, bench: typer.Typer) -> None:
    """Add ``stepkit models`` to the root app."""
    root.add_typer(app, name="models")
