"""Exports of Q/R/A records to training formats: LLaVA ``conversations`` JSON, ChatML ``messages``
JSONL with video content entries, and a Hugging Face ``datasets`` folder.

By default each record gives two samples, as the paper trains them: an *answer* sample (answer
instruction -> short answer) and a *rationale* sample (rationale instruction -> rationale ending in
the answer). ``combined=True`` gives one sample per record: rationale, then the answer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from stepkit.data.record import QRARecord, iter_records
from stepkit.errors import ConfigError

VIDEO_TOKEN = "<video>"
FORMATS = ("llava", "chatml", "hf")
FILENAMES = {"llava": "llava.json", "chatml": "chatml.jsonl", "hf": "hf"}


def option_text(record: QRARecord) -> str:
    """Multiple-choice options as ``(A) x (B) y …`` (empty without options)."""
    if not record.options:
        return ""
    return " ".join(f"({chr(65 + i)}) {o}" for i, o in enumerate(record.options))


def _video(record: QRARecord, videos_dir: str | None) -> str:
    path = record.video or record.video_id
    if videos_dir is not None:
        return str(Path(videos_dir) / Path(path).name)
    return path


def samples(record: QRARecord, *, combined: bool = False, with_options: bool = False) -> list[dict[str, Any]]:
    """The training samples of one record: ``{id, kind, instruction, question, response}``."""
    question = record.question
    if with_options and record.options:
        question = f"{question}\nOptions: {option_text(record)}"
    final = record.answer_sentence or f"The answer is {record.answer}."
    if combined:
        return [{"id": f"{record.id}-combined", "kind": "combined", "instruction": record.rationale_instruction,
                 "question": question, "response": f"{record.rationale_text}\nAnswer: {record.answer}"}]
    return [
        {"id": f"{record.id}-answer", "kind": "answer", "instruction": record.answer_instruction,
         "question": question, "response": final},
        {"id": f"{record.id}-rationale", "kind": "rationale", "instruction": record.rationale_instruction,
         "question": question, "response": record.rationale_text},
    ]


def to_llava(record: QRARecord, videos_dir: str | None = None, **kw: Any) -> list[dict[str, Any]]:
    """LLaVA-style items: ``{"id", "video", "conversations": [{"from": "human", "value": "<video>\\n…"}, …]}``."""
    out = []
    for s in samples(record, **kw):
        out.append({
            "id": s["id"], "video": _video(record, videos_dir), "kind": s["kind"],
            "steps": record.steps, "type": record.type,
            "conversations": [
                {"from": "human", "value": f"{VIDEO_TOKEN}\n{s['instruction']}\n{s['question']}"},
                {"from": "gpt", "value": s["response"]},
            ],
        })
    return out


def to_chatml(record: QRARecord, videos_dir: str | None = None, **kw: Any) -> list[dict[str, Any]]:
    """ChatML items: ``{"id", "messages": [user with video + text content, assistant text]}``,
    the form ``processor.apply_chat_template`` takes."""
    out = []
    for s in samples(record, **kw):
        video: dict[str, Any] = {"type": "video", "video": _video(record, videos_dir)}
        if record.window is not None:
            video["video_start"], video["video_end"] = record.window
        out.append({
            "id": s["id"], "kind": s["kind"], "steps": record.steps, "type": record.type,
            "messages": [
                {"role": "user", "content": [video, {"type": "text", "text": f"{s['instruction']}\n{s['question']}"}]},
                {"role": "assistant", "content": [{"type": "text", "text": s["response"]}]},
            ],
        })
    return out


def to_rows(record: QRARecord, videos_dir: str | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Flat rows for a ``datasets`` table (one per sample)."""
    rows = []
    for s in samples(record, **kw):
        rows.append({
            "id": s["id"], "record_id": record.id, "kind": s["kind"], "video": _video(record, videos_dir),
            "video_id": record.video_id, "instruction": s["instruction"], "question": s["question"],
            "response": s["response"], "answer": record.answer, "options": list(record.options or []),
            "answer_index": -1 if record.answer_index is None else record.answer_index,
            "steps": record.steps, "type": record.type,
            "program": json.dumps(record.program, sort_keys=True),
        })
    return rows


def _write_stream(path: Path, items: Iterator[str], opener: str, closer: str, sep: str) -> Path:
    from stepkit.io import atomic_text_writer

    with atomic_text_writer(path) as fh:
        fh.write(opener)
        first = True
        for item in items:
            if not first:
                fh.write(sep)
            fh.write(item)
            first = False
        fh.write(closer)
    return path


def export(qa: str | os.PathLike, out_dir: str | os.PathLike, fmt: str, *, combined: bool = False,
           with_options: bool = False, videos_dir: str | os.PathLike | None = None) -> Path:
    """Export the records of ``qa`` (a qa.jsonl or its folder) to ``out_dir`` in ``fmt``; returns the path.

    ``videos_dir`` rewrites each video path to ``videos_dir/<file name>`` (records keep the graph's
    path, which is relative to the graph file's folder)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    out = Path(out_dir) / FILENAMES[fmt]
    kw = {"combined": combined, "with_options": with_options,
          "videos_dir": str(videos_dir) if videos_dir is not None else None}
    if fmt == "llava":
        items = (json.dumps(x, sort_keys=True, ensure_ascii=False) for r in iter_records(qa) for x in to_llava(r, **kw))
        return _write_stream(out, items, "[\n", "\n]\n", ",\n")
    if fmt == "chatml":
        items = (json.dumps(x, sort_keys=True, ensure_ascii=False) + "\n" for r in iter_records(qa)
                 for x in to_chatml(r, **kw))
        return _write_stream(out, items, "", "", "")
    from datasets import Dataset

    rows = [x for r in iter_records(qa) for x in to_rows(r, **kw)]
    if not rows:
        raise ConfigError(f"{qa}: no records to export")
    Dataset.from_list(rows).save_to_disk(str(out))
    return out
