"""Exports of Q/R/A records to the formats training and evaluation clients read as they are:

- ``llava``: LLaVA-NeXT / LLaVA-Video ``conversations`` JSON (``<image>`` is its media token, for
  video too), ``video`` resolvable from a ``--video_folder``;
- ``chatml``: ``messages`` JSONL with video content entries, the form ``processor.apply_chat_template`` takes;
- ``trl``: TRL ``prompt`` / ``completion`` JSONL with video entries, trained with TRL's ``SFTTrainer``
  through :class:`stepkit.data.trl.VideoSFTCollator`;
- ``hf``: a ``datasets.Dataset.save_to_disk`` folder of flat rows;
- ``video-r1``: the JSON array Video-R1's SFT and GRPO scripts read (``<think>`` process, ``<answer>`` solution).

By default each record gives two samples, as the paper trains them: an *answer* sample (answer
instruction -> short answer) and a *rationale* sample (rationale instruction -> rationale ending in
the answer). ``combined=True`` gives one sample per record: rationale, then the answer.

Video paths go through :mod:`stepkit.data.videos`: absolute by default, or relative to the folder
of the file that holds them (``paths="relative"``). Each export goes to its own folder by default
(:func:`default_out`), so ``datasets.load_dataset(folder)`` loads it as it is; a folder shared with
other files gets a dataset card (``README.md``) naming the data files (:func:`write_card`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from stepkit.data.record import QRARecord, iter_records
from stepkit.data.videos import VideoResolver, check_mode, holder_folder, video_reference
from stepkit.errors import ConfigError

MEDIA_TOKEN = "<image>"  # LLaVA-NeXT's DEFAULT_IMAGE_TOKEN: its data code uses it for videos too
VIDEO_TOKEN = MEDIA_TOKEN
FORMATS = ("llava", "chatml", "hf", "trl", "video-r1")
FILENAMES = {"llava": "llava.json", "chatml": "chatml.jsonl", "hf": "hf", "trl": "trl.jsonl",
             "video-r1": "video_r1.json"}
CARD = "README.md"
_CARD_MARK = "<!-- written by stepkit: data files of the exports in this folder -->"


def option_text(record: QRARecord) -> str:
    """Multiple-choice options as ``(A) x (B) y …`` (empty without options)."""
    if not record.options:
        return ""
    return " ".join(f"({chr(65 + i)}) {o}" for i, o in enumerate(record.options))


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


def _video_entry(record: QRARecord, video: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "video", "video": video}
    if record.window is not None:
        entry["video_start"], entry["video_end"] = record.window
    return entry


def to_llava(record: QRARecord, video: str | None = None, **kw: Any) -> list[dict[str, Any]]:
    """LLaVA-NeXT items: ``{"id", "video", "conversations": [{"from": "human", "value": "<image>\\n…"}, …]}``
    (one ``<image>`` per sample: the placeholder LLaVA-NeXT replaces with the video's features)."""
    out = []
    for s in samples(record, **kw):
        item = {"id": s["id"], "kind": s["kind"], "steps": record.steps, "type": record.type,
                "conversations": [
                    {"from": "human", "value": f"{MEDIA_TOKEN}\n{s['instruction']}\n{s['question']}"},
                    {"from": "gpt", "value": s["response"]},
                ]}
        if video is not None:
            item["video"] = video
        else:  # LLaVA-NeXT keys media by the item's "video": without one, no placeholder
            item["conversations"][0]["value"] = f"{s['instruction']}\n{s['question']}"
        out.append(item)
    return out


def to_chatml(record: QRARecord, video: str | None = None, **kw: Any) -> list[dict[str, Any]]:
    """ChatML items: ``{"id", "messages": [user with video + text content, assistant text]}``,
    the form ``processor.apply_chat_template`` takes."""
    out = []
    for s in samples(record, **kw):
        content = ([_video_entry(record, video)] if video is not None else []) + [
            {"type": "text", "text": f"{s['instruction']}\n{s['question']}"}]
        out.append({
            "id": s["id"], "kind": s["kind"], "steps": record.steps, "type": record.type,
            "messages": [
                {"role": "user", "content": content},
                {"role": "assistant", "content": [{"type": "text", "text": s["response"]}]},
            ],
        })
    return out


def to_trl(record: QRARecord, video: str | None = None, **kw: Any) -> list[dict[str, Any]]:
    """TRL conversational prompt-completion rows with a video entry in the prompt (see :mod:`stepkit.data.trl`)."""
    out = []
    for s in samples(record, **kw):
        content = ([_video_entry(record, video)] if video is not None else []) + [
            {"type": "text", "text": f"{s['instruction']}\n{s['question']}"}]
        out.append({
            "id": s["id"], "record_id": record.id, "kind": s["kind"], "steps": record.steps, "type": record.type,
            "prompt": [{"role": "user", "content": content}],
            "completion": [{"role": "assistant", "content": [{"type": "text", "text": s["response"]}]}],
        })
    return out


def to_rows(record: QRARecord, video: str | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Flat rows for a ``datasets`` table (one per sample)."""
    rows = []
    for s in samples(record, **kw):
        rows.append({
            "id": s["id"], "record_id": record.id, "kind": s["kind"], "video": video,
            "video_id": record.video_id, "instruction": s["instruction"], "question": s["question"],
            "response": s["response"], "answer": record.answer, "options": list(record.options or []),
            "answer_index": -1 if record.answer_index is None else record.answer_index,
            "window": list(record.window) if record.window is not None else None,
            "steps": record.steps, "type": record.type,
            "program": json.dumps(record.program, sort_keys=True),
        })
    return rows


_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def to_video_r1(record: QRARecord, path: str | None, problem_id: int) -> dict[str, Any]:
    """One Video-R1 row: ``problem``, ``options`` as ``"A. …"``, ``process`` in ``<think>``, ``solution``
    in ``<answer>`` (the option letter for multiple choice), ``problem_type``, ``data_type``, ``path``."""
    if record.options and record.answer_index is not None:
        ptype = "multiple choice"
        options = [f"{chr(65 + i)}. {o}" for i, o in enumerate(record.options)]
        answer = chr(65 + record.answer_index)
    else:
        ptype = "numerical" if _NUMBER.fullmatch(record.answer.strip()) else "free-form"
        options, answer = [], record.answer
    return {
        "problem_id": problem_id, "id": record.id, "problem": record.question, "data_type": "video",
        "problem_type": ptype, "options": options,
        "process": f"<think>{record.rationale_text}</think>", "solution": f"<answer>{answer}</answer>",
        "path": path, "data_source": f"stepkit/{record.type}", "steps": record.steps, "type": record.type,
        "window": list(record.window) if record.window is not None else None,
    }


def _write_stream(path: Path, items: Iterator[str], opener: str, closer: str, sep: str) -> int:
    from stepkit.io import atomic_text_writer

    n = 0
    with atomic_text_writer(path) as fh:
        fh.write(opener)
        for item in items:
            if n:
                fh.write(sep)
            fh.write(item)
            n += 1
        fh.write(closer)
    return n


def _dumps(x: Any) -> str:
    return json.dumps(x, sort_keys=True, ensure_ascii=False)


def default_out(qa: str | os.PathLike, fmt: str) -> Path:
    """Where an export goes without ``--out``: its own folder beside ``qa.jsonl`` (``QA/trl/``,
    ``QA/llava/`` …), so it loads with ``load_dataset`` on its own; ``hf`` writes ``QA/hf/``."""
    base = holder_folder(qa)
    return base if fmt == "hf" else base / Path(FILENAMES[fmt]).stem


def _card_configs(out: Path, current: str) -> list[dict[str, Any]]:
    """One ``configs`` entry per JSON export in ``out``; the one just written is the default."""
    configs = []
    for fmt in FORMATS:
        if fmt == "hf" or not (out / FILENAMES[fmt]).is_file():
            continue
        cfg = {"config_name": fmt.replace("-", "_"), "data_files": [{"split": "train", "path": [FILENAMES[fmt]]}]}
        if fmt == current:
            cfg["default"] = True
        configs.append(cfg)
    if configs and not any(c.get("default") for c in configs):
        configs[0]["default"] = True
    return configs


def _card_info(out: Path, config_name: str) -> dict[str, Any]:
    """Size and row count of one export's data file. ``datasets`` keys its cache of a carded local
    folder by folder name and card only, so these keep a re-export of other data from reusing it."""
    fmt = config_name.replace("_", "-")
    path = out / FILENAMES[fmt]
    with open(path, encoding="utf-8") as fh:
        rows = len(json.load(fh)) if path.suffix == ".json" else sum(1 for line in fh if line.strip())
    return {"config_name": config_name, "download_size": path.stat().st_size,
            "splits": [{"name": "train", "num_bytes": path.stat().st_size, "num_examples": rows}]}


def write_card(out: str | os.PathLike, current: str) -> Path | None:
    """Make ``load_dataset(out)`` read the export just written.

    A folder holding only that export needs nothing: ``datasets`` finds its data file itself (and
    caches it by the file's identity). A folder shared with other files (``qa.jsonl``,
    ``summary.json``, other exports) gets a dataset card whose YAML ``configs`` name each JSON
    export's data file (``load_dataset(out, "trl")``; the latest is the default). Returns the card,
    or None. The ``hf`` export (a ``save_to_disk`` folder) loads with ``load_from_disk``."""
    import yaml

    from stepkit.io import atomic_write_text

    out = Path(out)
    card = out / CARD
    ours = card.is_file() and _CARD_MARK in card.read_text(encoding="utf-8", errors="replace")
    if card.is_file() and not ours:
        raise ConfigError(f"{card}: a README.md not written by stepkit is in the export folder; "
                          "export to another --out folder")
    data = FILENAMES[current]
    others = [p for p in out.iterdir() if p.name not in (data, CARD) and not p.name.startswith(".")]
    if current == "hf" or not others:
        if ours and (current != "hf" or not any((out / FILENAMES[f]).is_file() for f in FORMATS if f != "hf")):
            card.unlink()  # a card left by earlier exports would now name files that are gone or hide this one
        return None
    configs = _card_configs(out, current)
    meta = yaml.safe_dump({"configs": configs, "dataset_info": [_card_info(out, c["config_name"]) for c in configs]},
                          sort_keys=False)
    names = ", ".join(f"`{FILENAMES[f]}`" for f in FORMATS if f != "hf" and (out / FILENAMES[f]).is_file())
    body = (f"---\n{meta}---\n{_CARD_MARK}\n\n# stepkit Q/R/A exports\n\nData files: {names}. "
            "Load with `datasets.load_dataset(\"<this folder>\")` (the latest export) or "
            "`load_dataset(\"<this folder>\", \"<format>\")`. `datasets` caches a folder with a card by its "
            "name and card: after exporting again into a folder of the same name, pass "
            "`download_mode=\"force_redownload\"` (or export each format to its own folder, the default). "
            "Formats: see stepkit's docs/formats-qra.md.\n")
    return atomic_write_text(card, body)


def export_report(qa: str | os.PathLike, out_dir: str | os.PathLike, fmt: str, *, combined: bool = False,
                  with_options: bool = False, videos_dir: str | os.PathLike | None = None,
                  paths: str = "absolute") -> dict[str, Any]:
    """Export the records of ``qa`` (a qa.jsonl or its folder) to ``out_dir`` in ``fmt``.

    Returns ``{"path", "format", "samples", "missing_videos", "paths"}``; ``missing_videos`` lists
    (the first 20 of) the resolved video paths that are no file."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    check_mode(paths)
    out_root = Path(out_dir)
    out = out_root / FILENAMES[fmt]
    resolve = VideoResolver(holder_folder(qa), videos_dir)
    holder = out if fmt == "hf" else out_root

    def ref(record: QRARecord) -> str | None:
        return video_reference(resolve(record.video), holder_dir=holder, mode=paths)

    kw = {"combined": combined, "with_options": with_options}
    if fmt == "llava":
        n = _write_stream(out, (_dumps(x) for r in iter_records(qa) for x in to_llava(r, ref(r), **kw)),
                          "[\n", "\n]\n", ",\n")
    elif fmt in ("chatml", "trl"):
        conv = to_chatml if fmt == "chatml" else to_trl
        n = _write_stream(out, (_dumps(x) + "\n" for r in iter_records(qa) for x in conv(r, ref(r), **kw)),
                          "", "", "")
    elif fmt == "video-r1":
        def rows() -> Iterator[str]:
            for i, r in enumerate(iter_records(qa)):
                p = video_reference(resolve(r.video), holder_dir=out_root, mode="relative")
                # Video-R1 opens os.getcwd() + "/Video-R1-data" + path[1:]: the path must start with "./"
                yield _dumps(to_video_r1(r, None if p is None else "./" + p, i))
        n = _write_stream(out, rows(), "[\n", "\n]\n", ",\n")
    else:
        from datasets import Dataset

        rows_ = [x for r in iter_records(qa) for x in to_rows(r, ref(r), **kw)]
        if not rows_:
            raise ConfigError(f"{qa}: no records to export")
        Dataset.from_list(rows_).save_to_disk(str(out))
        n = len(rows_)
    if n == 0:
        out.unlink(missing_ok=True)
        raise ConfigError(f"{qa}: no records to export")
    write_card(out_root, fmt)
    return {"path": str(out), "format": fmt, "samples": n, "paths": "relative" if fmt == "video-r1" else paths,
            "missing_videos": sorted(resolve.missing)[:20], "missing_video_count": len(resolve.missing)}


def export(qa: str | os.PathLike, out_dir: str | os.PathLike, fmt: str, *, combined: bool = False,
           with_options: bool = False, videos_dir: str | os.PathLike | None = None,
           paths: str = "absolute") -> Path:
    """Export the records of ``qa`` (a qa.jsonl or its folder) to ``out_dir`` in ``fmt``; returns the path.

    Video paths are resolved as :mod:`stepkit.data.videos` says (``videos_dir`` first, then as the
    records name them, relative to the qa.jsonl's folder) and written absolute, or relative to the
    export file's folder with ``paths="relative"`` (``video-r1`` is always relative: its scripts
    need ``./…`` paths under their data folder)."""
    return Path(export_report(qa, out_dir, fmt, combined=combined, with_options=with_options,
                              videos_dir=videos_dir, paths=paths)["path"])
