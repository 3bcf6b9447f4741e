"""Training on stepkit's ``trl`` export with TRL's ``SFTTrainer``, the video reaching the model.

TRL's own vision collator only knows an ``images`` column: given video entries it renders
``<|video_pad|>`` placeholders with no pixel values, and the model trains blind. The ``trl``
export therefore keeps each sample's clip as a **video entry** (path + window) in its
conversational prompt / completion rows, and :class:`VideoSFTCollator` is the ``data_collator``:

- it decodes the window with PyAV (:func:`stepkit.train.clip.read_clip`; no torchcodec needed) and
  passes the frames to the model's processor **as one video with its timestamps**
  (``VideoMetadata``): Qwen2/2.5/3-VL get ``pixel_values_videos`` with temporal patches and
  time-aligned positions, SmolVLM2 gets "Frame from 00:02" timestamps before each frame.
  Frames-as-images (TRL's ``images`` column) would drop both;
- it supervises the completion only (prompt and padding labels are -100);
- it fails loudly (:class:`MissingMediaError`) if a batch carries media placeholders but no pixel
  values, and :func:`checked` wraps any other collator (TRL's included) with the same check.

Recipe (``docs/formats-qra.md``, "TRL")::

    ds = load_dataset("EXPORT_DIR", "trl", split="train")
    trainer = SFTTrainer(model=model, processing_class=processor, train_dataset=ds,
                         data_collator=VideoSFTCollator(processor),
                         args=SFTConfig(output_dir="out", remove_unused_columns=False,
                                        dataset_kwargs={"skip_prepare_dataset": True}))
"""

from __future__ import annotations

import os
from typing import Any, Callable

from stepkit.data.videos import require_video, resolve_video
from stepkit.errors import DataError

IGNORE_INDEX = -100
_PER_TOKEN = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")


class MissingMediaError(DataError):
    """A batch has media placeholder tokens but no pixel values: the model would not see the video."""


def media_token_ids(processor: Any) -> dict[str, int]:
    """The processor's media placeholder tokens (``<|video_pad|>``, ``<image>`` …) and their ids."""
    tok = getattr(processor, "tokenizer", processor)
    vocab = tok.get_vocab()
    out: dict[str, int] = {}
    for attr in ("video_token", "image_token"):
        t = getattr(processor, attr, None)
        if isinstance(t, str) and t in vocab:
            out[t] = vocab[t]
    return out


def check_media(batch: dict[str, Any], processor: Any) -> int:
    """The number of media placeholders in ``batch``; :class:`MissingMediaError` if there are some but
    the batch has no (non-empty) ``pixel_values*`` tensor."""
    import torch

    ids = batch.get("input_ids")
    if ids is None:
        return 0
    tokens = media_token_ids(processor)
    if not tokens:
        return 0
    n = int(torch.isin(ids, torch.tensor(list(tokens.values()), device=ids.device)).sum())
    pixels = [k for k, v in batch.items() if k.startswith("pixel_values") and hasattr(v, "numel") and v.numel()]
    if n and not pixels:
        raise MissingMediaError(
            f"a training batch has {n} media placeholder tokens ({', '.join(tokens)}) but no pixel values: "
            "the model would train without seeing the video. Use stepkit.data.trl.VideoSFTCollator as the "
            "data_collator (with SFTConfig(remove_unused_columns=False, dataset_kwargs={'skip_prepare_dataset': True}))")
    return n


def checked(collator: Callable[[list[dict]], dict], processor: Any) -> Callable[[list[dict]], dict]:
    """``collator`` with :func:`check_media` applied to every batch it makes."""
    def call(examples: list[dict]) -> dict:
        batch = collator(examples)
        check_media(batch, processor)
        return batch

    return call


def _clean(obj: Any) -> Any:
    """Messages as written, without the ``None`` fields a columnar load may add to content entries."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def _cat(tensors: list[Any]) -> Any:
    """Concatenate along dim 0, zero-padding the other dims to the largest."""
    import torch

    if all(t.shape[1:] == tensors[0].shape[1:] for t in tensors):
        return torch.cat(tensors, dim=0)
    shape = [max(t.shape[d] for t in tensors) for d in range(1, tensors[0].dim())]
    out = []
    for t in tensors:
        buf = t.new_zeros((t.shape[0], *shape))
        buf[(slice(None),) + tuple(slice(0, s) for s in t.shape[1:])] = t
        out.append(buf)
    return torch.cat(out, dim=0)


class VideoSFTCollator:
    """``data_collator`` for TRL's ``SFTTrainer`` on the ``trl`` export (rows with ``prompt`` and
    ``completion`` messages whose user turn holds a ``{"type": "video", "video": PATH,
    "video_start", "video_end"}`` entry; the ``chatml`` export's ``messages`` rows work too).

    ``num_frames`` (or ``fps``) frames of at most ``max_side`` px are sampled in each window;
    ``base`` is the folder relative video paths are relative to (the export's folder) and
    ``videos_dir`` an override, as :mod:`stepkit.data.videos` says. ``max_length`` rejects longer
    samples (truncating would cut media placeholders off their features)."""

    def __init__(self, processor: Any, *, num_frames: int | None = 8, fps: float | None = None,
                 max_frames: int = 32, max_side: int | None = 448, max_length: int | None = None,
                 base: str | os.PathLike | None = None, videos_dir: str | os.PathLike | None = None) -> None:
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.num_frames, self.fps, self.max_frames, self.max_side = num_frames, fps, max_frames, max_side
        self.max_length = max_length
        self.base, self.videos_dir = base, videos_dir
        vp = getattr(processor, "video_processor", None)
        if vp is None:
            raise DataError(f"{type(processor).__name__}: this processor has no video processor; "
                            "VideoSFTCollator needs a Video-LLM's processor (Qwen2/2.5/3-VL, LLaVA-OneVision, "
                            "LLaVA-NeXT-Video, SmolVLM2)")
        self._multiple_of = int(getattr(vp, "temporal_patch_size", 1) or 1)
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else self.tokenizer.eos_token_id

    def _clip(self, entry: dict, row_id: str):
        from transformers.video_utils import VideoMetadata

        from stepkit.train.clip import read_clip

        named = entry.get("video") or entry.get("path")
        if named and not os.path.isabs(named) and self.base is None and self.videos_dir is None:
            raise DataError(f"trl row {row_id!r}: video path {named!r} is relative; pass base=<the export's folder> "
                            "(relative paths are relative to the file holding them, never the working directory)")
        path = require_video(resolve_video(named, base=self.base, videos_dir=self.videos_dir), f"trl row {row_id!r}")
        window = None
        if entry.get("video_start") is not None and entry.get("video_end") is not None:
            window = (float(entry["video_start"]), float(entry["video_end"]))
        clip = read_clip(path, window, num_frames=self.num_frames, fps=self.fps, max_frames=self.max_frames,
                         max_side=self.max_side, multiple_of=self._multiple_of)
        meta = VideoMetadata(total_num_frames=clip.window_frames, fps=clip.fps, frames_indices=list(clip.indices),
                             height=int(clip.frames.shape[1]), width=int(clip.frames.shape[2]),
                             duration=clip.window_frames / clip.fps if clip.fps else None)
        return clip.frames, meta

    def encode(self, example: dict) -> dict[str, Any]:
        """One row as unpadded tensors: the prompt through the processor (with its video), the
        completion's tokens appended, labels on the completion only."""
        import torch

        row_id = str(example.get("id", "?"))
        if "prompt" in example and "completion" in example:
            prompt, completion = _clean(list(example["prompt"])), _clean(list(example["completion"]))
        elif "messages" in example and len(example["messages"]) >= 2:  # the chatml export: the last turn is the target
            messages = _clean(list(example["messages"]))
            prompt, completion = messages[:-1], messages[-1:]
        else:
            raise DataError(f"trl row {row_id!r}: needs 'prompt' and 'completion' messages (stepkit's trl export) "
                            "or 'messages' (its chatml export)")
        videos, metas = [], []
        for msg in prompt:
            content = msg.get("content")
            if not isinstance(content, list):
                continue
            for i, part in enumerate(content):
                if part.get("type") == "video":
                    frames, meta = self._clip(part, row_id)
                    videos.append(frames)
                    metas.append(meta)
                    content[i] = {"type": "video"}
        prefix = self.processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        full = self.processor.apply_chat_template(prompt + completion, tokenize=False)
        if full.startswith(prefix):
            reply = full[len(prefix):]
        else:  # the template renders replies differently from its generation prompt
            reply = "".join(p.get("text", "") for m in completion for p in m["content"]) + (self.tokenizer.eos_token or "")
        kwargs: dict[str, Any] = {}
        if videos:
            kwargs = {"videos": videos, "video_metadata": metas, "do_sample_frames": False}
        first = self.processor(text=[prefix], return_tensors="pt", **kwargs)
        reply_ids = self.tokenizer(reply, add_special_tokens=False)["input_ids"]
        out: dict[str, Any] = {}
        n0 = first["input_ids"].shape[1]
        for k, v in first.items():
            if k in _PER_TOKEN:
                fill = 1 if k == "attention_mask" else 0
                extra = reply_ids if k == "input_ids" else [fill] * len(reply_ids)
                out[k] = torch.cat([v[0], torch.tensor(extra, dtype=v.dtype)])
            elif hasattr(v, "shape"):
                out[k] = v
        out["labels"] = torch.cat([torch.full((n0,), IGNORE_INDEX, dtype=torch.long),
                                   torch.tensor(reply_ids, dtype=torch.long)])
        if self.max_length is not None and out["input_ids"].shape[0] > self.max_length:
            raise DataError(f"trl row {row_id!r}: {out['input_ids'].shape[0]} tokens > max_length {self.max_length}; "
                            "use fewer or smaller frames, or a larger max_length")
        return out

    def __call__(self, examples: list[dict]) -> dict[str, Any]:
        """A padded batch (right padding) with the vision tensors of every example; checked by :func:`check_media`."""
        import torch

        feats = [self.encode(e) for e in examples]
        n = max(f["input_ids"].shape[0] for f in feats)
        fill = {"input_ids": self.pad_token_id, "attention_mask": 0, "mm_token_type_ids": 0, "token_type_ids": 0,
                "labels": IGNORE_INDEX}
        batch: dict[str, Any] = {}
        for key, value in fill.items():
            if key in feats[0]:
                batch[key] = torch.stack([torch.cat([f[key], f[key].new_full((n - f[key].shape[0],), value)])
                                          for f in feats])
        for key in feats[0]:
            if key not in batch:
                present = [f[key] for f in feats if key in f]
                batch[key] = _cat(present)
        check_media(batch, self.processor)
        return batch
