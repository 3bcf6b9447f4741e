"""Q/R/A records → supervised video-chat samples through the model's own processor and chat template.

A record gives an *answer* sample (answer instruction → short answer) and a *rationale* sample
(rationale instruction → the rationale, ending with the answer sentence), or one *combined*
two-turn sample. Each sample's prompt (system, user turn with the clip, assistant header) is
rendered by the processor's chat template and encoded by the processor together with the clip;
each assistant turn is the text the template puts after its generation prompt, tokenised alone
and appended. Labels cover the assistant turns only (-100 elsewhere) and every labelled token
carries its kind (answer / rationale) for the dual loss.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepkit.data.record import QRARecord
from stepkit.errors import ConfigError, DataError
from stepkit.train.loss import ANSWER, IGNORE_INDEX, IGNORE_KIND, RATIONALE

if TYPE_CHECKING:  # pragma: no cover
    from stepkit.models.families import Family
    from stepkit.train.clip import Clip
    from stepkit.train.config import StepTrainConfig

SAMPLE_KINDS = {"answer": 0, "rationale": 1, "combined": 2}
PER_TOKEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")


# --- record → turns ---------------------------------------------------------------------------

def question_text(record: QRARecord) -> str:
    """The question with its lettered options (multiple choice) or alone (open-ended)."""
    q = record.question.strip()
    if record.options:
        q += "\nOptions:\n" + "\n".join(f"({chr(65 + i)}) {o}" for i, o in enumerate(record.options))
    return q


def user_text(record: QRARecord, instruction: str) -> str:
    """The user turn's text: question (and options), then the instruction."""
    return f"{question_text(record)}\n{instruction.strip()}" if instruction.strip() else question_text(record)


def answer_target(record: QRARecord) -> str:
    """What the answer sample supervises: the short answer."""
    return record.answer.strip()


def rationale_target(record: QRARecord, with_answer: bool = True) -> str:
    """What the rationale sample supervises: the rationale steps, then (optionally) the answer sentence."""
    text = record.rationale_text.strip()
    if with_answer:
        tail = record.answer_sentence.strip() or f"The answer is {record.answer.strip()}."
        text = f"{text} {tail}".strip()
    return text


@dataclass
class Turn:
    """One user → assistant exchange; ``kind`` is ANSWER or RATIONALE."""

    user: str
    target: str
    kind: int


@dataclass
class SampleSpec:
    """One training sample before encoding: the record it comes from, its kind and its turns."""

    record: QRARecord
    kind: str
    turns: list[Turn] = field(default_factory=list)


def record_samples(record: QRARecord, mode: str = "dual", rationale_with_answer: bool = True) -> list[SampleSpec]:
    """The samples of one record under ``mode`` (dual / combined / answer); records without a
    rationale give only their answer sample."""
    ans = Turn(user_text(record, record.answer_instruction), answer_target(record), ANSWER)
    if not ans.target:
        raise DataError(f"Q/R/A record {record.id!r}: empty answer")
    has_rat = bool(record.rationale_text.strip())
    rat = Turn(user_text(record, record.rationale_instruction), rationale_target(record, rationale_with_answer),
               RATIONALE)
    if mode == "answer" or not has_rat:
        return [SampleSpec(record, "answer", [ans])]
    if mode == "dual":
        return [SampleSpec(record, "answer", [ans]), SampleSpec(record, "rationale", [rat])]
    if mode == "combined":
        return [SampleSpec(record, "combined", [ans, Turn(record.rationale_instruction.strip(), rat.target,
                                                             RATIONALE)])]
    raise ConfigError(f"unknown sample mode {mode!r}; choose dual, combined or answer")


# --- encoding ---------------------------------------------------------------------------------

def resolve_video(record: QRARecord, base: str | os.PathLike | None,
                  videos_dir: str | os.PathLike | None = None) -> str | None:
    """The record's absolute video path by stepkit's one rule (:func:`stepkit.data.videos.resolve_video`):
    ``videos_dir`` first (the path as named, then its file name), else as named, relative to the
    Q/R/A folder ``base``."""
    from stepkit.data.videos import resolve_video as _resolve

    return _resolve(record.video, base=base, videos_dir=videos_dir)


class VideoChatEncoder:
    """Turns :class:`SampleSpec` into model inputs with labels, using the model's processor."""

    def __init__(self, processor: Any, family: Family, *, num_frames: int | None = 8, fps: float | None = None,
                 max_frames: int = 32, max_side: int | None = 448, max_length: int = 8192,
                 video_base: str | os.PathLike | None = None, videos_dir: str | os.PathLike | None = None,
                 clip_cache: int = 32) -> None:
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.family = family
        self.num_frames, self.fps, self.max_frames, self.max_side = num_frames, fps, max_frames, max_side
        self.max_length = max_length
        self.video_base = video_base
        self.videos_dir = videos_dir
        self._clips: OrderedDict[tuple, Clip] = OrderedDict()
        self._clip_cache = clip_cache
        vp = getattr(processor, "video_processor", None)
        self._multiple_of = int(getattr(vp, "temporal_patch_size", 1) or 1) if family.video_input == "videos" else 1

    @classmethod
    def from_config(cls, processor: Any, family: Family, cfg: StepTrainConfig) -> VideoChatEncoder:
        """An encoder with the frame / length settings of a training config."""
        base = Path(cfg.qa) if Path(cfg.qa).is_dir() else Path(cfg.qa).parent
        return cls(processor, family, num_frames=cfg.num_frames, fps=cfg.fps, max_frames=cfg.max_frames,
                   max_side=cfg.max_side, max_length=cfg.max_length, video_base=base, videos_dir=cfg.videos_dir)

    # clips
    def clip(self, record: QRARecord) -> Clip | None:
        """The record's decoded clip (cached), or None for a record without video."""
        from stepkit.train.clip import read_clip

        path = resolve_video(record, self.video_base, self.videos_dir)
        if path is None:
            return None
        key = (path, record.window)
        if key in self._clips:
            self._clips.move_to_end(key)
            return self._clips[key]
        clip = read_clip(path, record.window, num_frames=self.num_frames, fps=self.fps, max_frames=self.max_frames,
                         max_side=self.max_side, multiple_of=self._multiple_of)
        self._clips[key] = clip
        while len(self._clips) > self._clip_cache:
            self._clips.popitem(last=False)
        return clip

    def _user_message(self, text: str, clip: Clip | None) -> dict:
        parts: list[dict] = []
        if clip is not None:
            if self.family.video_input == "videos":
                parts.append({"type": "video"})
            else:
                parts.extend({"type": "image"} for _ in range(len(clip.frames)))
        parts.append({"type": "text", "text": text})
        return {"role": "user", "content": parts}

    def _visual_kwargs(self, clip: Clip | None) -> dict:
        if clip is None:
            return {}
        if self.family.video_input == "videos":
            from transformers.video_utils import VideoMetadata

            meta = VideoMetadata(total_num_frames=clip.window_frames, fps=clip.fps, frames_indices=list(clip.indices),
                                 height=int(clip.frames.shape[1]), width=int(clip.frames.shape[2]))
            return {"videos": [clip.frames], "video_metadata": [meta]}
        from PIL import Image

        return {"images": [[Image.fromarray(f) for f in clip.frames]]}

    def _render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        return self.processor.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                                  tokenize=False)

    def prompt_inputs(self, record: QRARecord, kind: str = "answer", return_tensors: str = "pt") -> Any:
        """Processor inputs for generation: the user turn of ``kind`` (answer / rationale) with the clip."""
        instr = record.answer_instruction if kind == "answer" else record.rationale_instruction
        clip = self.clip(record)
        text = self._render([self._user_message(user_text(record, instr), clip)], True)
        return self.processor(text=[text], return_tensors=return_tensors, **self._visual_kwargs(clip))

    def encode(self, spec: SampleSpec) -> dict[str, Any]:
        """Input tensors (batch of one) plus ``labels``, ``label_kinds`` and ``sample_kind``."""
        import torch

        clip = self.clip(spec.record)
        messages: list[dict] = []
        pieces: list[tuple[str, int | None]] = []  # (text, kind or None for unsupervised)
        tmpl_full = ""
        eos = self.tokenizer.eos_token or ""
        for i, turn in enumerate(spec.turns):
            messages.append(self._user_message(turn.user, clip if i == 0 else None))
            prefix = self._render(messages, True)
            if not prefix.startswith(tmpl_full):
                raise ConfigError(f"{self.family.name}: the chat template does not extend a conversation by appending; "
                                  "use samples='dual'")
            pieces.append((prefix[len(tmpl_full):], None))
            messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.target}]})
            full = self._render(messages, False)
            if full.startswith(prefix) and turn.target in full[len(prefix):]:
                reply = full[len(prefix):]
            else:  # the template renders replies differently from its generation prompt: supervise what
                reply = turn.target + eos  # generation must produce after that prompt
            core = reply.rstrip()
            pieces.append((core, turn.kind))
            if reply[len(core):]:
                pieces.append((reply[len(core):], None))
            tmpl_full = full
        first = self.processor(text=[pieces[0][0]], return_tensors="pt", **self._visual_kwargs(clip))
        feats: dict[str, Any] = {}
        n0 = first["input_ids"].shape[1]
        for k, v in first.items():
            if k in PER_TOKEN_KEYS:
                feats[k] = v[0].tolist()
            elif hasattr(v, "shape"):
                feats[k] = v
        labels = [IGNORE_INDEX] * n0
        kinds = [IGNORE_KIND] * n0
        for text, kind in pieces[1:]:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            feats["input_ids"] += ids
            for k in PER_TOKEN_KEYS[1:]:
                if k in feats:
                    feats[k] += [1 if k == "attention_mask" else 0] * len(ids)
            labels += ids if kind is not None else [IGNORE_INDEX] * len(ids)
            kinds += [kind if kind is not None else IGNORE_KIND] * len(ids)
        if len(feats["input_ids"]) > self.max_length:
            raise DataError(f"Q/R/A record {spec.record.id!r} ({spec.kind} sample): {len(feats['input_ids'])} tokens "
                            f"> max_length {self.max_length}; use fewer frames, smaller frames or a larger max_length")
        out = {k: torch.tensor(v, dtype=torch.long) for k, v in feats.items() if k in PER_TOKEN_KEYS}
        out.update({k: v for k, v in feats.items() if k not in PER_TOKEN_KEYS})
        out["labels"] = torch.tensor(labels, dtype=torch.long)
        out["label_kinds"] = torch.tensor(kinds, dtype=torch.long)
        out["sample_kind"] = torch.tensor(SAMPLE_KINDS[spec.kind], dtype=torch.long)
        return out


# --- batching ---------------------------------------------------------------------------------

def _cat_padded(tensors: Sequence[Any]) -> Any:
    """Concatenate along dim 0, zero-padding the other dims to the largest."""
    import torch

    if all(t.shape[1:] == tensors[0].shape[1:] for t in tensors):
        return torch.cat(list(tensors), dim=0)
    nd = tensors[0].dim()
    shape = [max(t.shape[d] for t in tensors) for d in range(1, nd)]
    padded = []
    for t in tensors:
        buf = t.new_zeros((t.shape[0], *shape))
        buf[(slice(None),) + tuple(slice(0, s) for s in t.shape[1:])] = t
        padded.append(buf)
    return torch.cat(padded, dim=0)


class DataCollator:
    """Right-pads per-token fields and concatenates the vision tensors of encoded samples."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        n = max(f["input_ids"].shape[0] for f in features)
        fill = {"input_ids": self.pad_token_id, "attention_mask": 0, "mm_token_type_ids": 0, "token_type_ids": 0,
                "labels": IGNORE_INDEX, "label_kinds": IGNORE_KIND}
        batch: dict[str, Any] = {}
        for key, value in fill.items():
            if key not in features[0]:
                continue
            rows = []
            for f in features:
                t = f[key]
                rows.append(torch.cat([t, t.new_full((n - t.shape[0],), value)]))
            batch[key] = torch.stack(rows)
        batch["sample_kind"] = torch.stack([f["sample_kind"] for f in features])
        for key in features[0]:
            if key in batch or key == "sample_kind":
                continue
            # samples without video simply have no vision tensors; the model matches them by placeholder
            batch[key] = _cat_padded([f[key] for f in features if key in f])
        return batch


class QRADataset:
    """A torch-style dataset of encoded samples, encoded lazily (video decoded on demand)."""

    def __init__(self, specs: list[SampleSpec], encoder: VideoChatEncoder) -> None:
        self.specs = specs
        self.encoder = encoder

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.encoder.encode(self.specs[i])


def build_specs(records: Sequence[QRARecord], mode: str = "dual", rationale_with_answer: bool = True) -> list[SampleSpec]:
    """All samples of ``records`` in record order."""
    out: list[SampleSpec] = []
    for r in records:
        out.extend(record_samples(r, mode, rationale_with_answer))
    return out
