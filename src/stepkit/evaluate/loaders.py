"""Benchmark loaders: STAR, AGQA 2.0, NExT-QA, MVBench and stepkit's own Q/R/A, all to :class:`EvalItem`."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Callable

from stepkit.errors import DataError
from stepkit.evaluate.items import EvalItem

NEXTQA_GROUPS = {"C": "causal", "T": "temporal", "D": "descriptive"}


def _read_json(path: Path) -> Any:
    """Parse a JSON file, tolerating trailing garbage after the first value (AGQA's stray ``}``)."""
    if not path.is_file():
        raise DataError(f"{path}: no such annotation file")
    text = path.read_text(encoding="utf-8-sig")
    try:
        value, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    return value


def _need(d: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in d]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")


# --- STAR ------------------------------------------------------------------------------------

_STAR_STEP_CACHE: dict[str, int | None] = {}


def star_steps(question: str, qid: str) -> int | None:
    """Reasoning steps of a STAR question, from its template.

    The hook looks for a published table ``TEMPLATE_STEPS`` (template → steps) in
    :mod:`stepkit.evaluate.star_templates`; failing that it derives the count per question from the
    template's program (``parse_question`` → ``answer_program`` → ``stepkit.reason.ops.step_count``).
    None when the template is unknown or the STAR modules are absent.
    """
    template = "_".join(str(qid).split("_")[:2])
    try:
        from stepkit.evaluate import star_templates as st
    except ImportError:
        return None
    table = getattr(st, "TEMPLATE_STEPS", None)
    if isinstance(table, dict) and template in table:
        return int(table[template])
    key = f"{template}\0{question}"
    if key not in _STAR_STEP_CACHE:
        try:
            from stepkit.reason.ops import step_count

            _STAR_STEP_CACHE[key] = int(step_count(st.answer_program(st.parse_question(question, qid), "clip")))
        except Exception:  # noqa: BLE001 - any parse/derivation failure means "unknown"
            _STAR_STEP_CACHE[key] = None
    return _STAR_STEP_CACHE[key]


def star_steps_table(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Template → ``{"steps": [counts seen], "questions": n}`` over a STAR questions file (for docs)."""
    table: dict[str, dict[str, Any]] = {}
    for it in load_star(path):
        row = table.setdefault(it.meta["template"], {"steps": set(), "questions": 0})
        row["steps"].add(it.steps)
        row["questions"] += 1
    return {t: {"steps": sorted(r["steps"], key=lambda v: (v is None, v or 0)), "questions": r["questions"]}
            for t, r in sorted(table.items())}


def _star_sevila(rows: list[dict[str, Any]], path: Path) -> list[EvalItem]:
    items = []
    for n, q in enumerate(rows):
        where = f"{path}: question {n}"
        _need(q, ("video", "qid", "question", "answer"), where)
        k = int(q.get("num_option", 4))
        opts = [str(q[f"a{i}"]) for i in range(k) if f"a{i}" in q]
        ans = int(q["answer"])
        if not 0 <= ans < len(opts):
            raise DataError(f"{where} ({q['qid']}): answer index {ans} outside its {len(opts)} options")
        qid = str(q["qid"])
        window = (float(q["start"]), float(q["end"])) if q.get("start") is not None and q.get("end") is not None else None
        items.append(EvalItem(id=qid, video=str(q["video"]), question=str(q["question"]), answer=opts[ans],
                              options=opts, answer_index=ans, steps=star_steps(str(q["question"]), qid),
                              type=qid.split("_")[0], window=window, source="star",
                              meta={"template": "_".join(qid.split("_")[:2])}))
    return items


def _star_official(rows: list[dict[str, Any]], path: Path) -> list[EvalItem]:
    items = []
    for n, q in enumerate(rows):
        where = f"{path}: question {n}"
        _need(q, ("question_id", "video_id", "question", "choices"), where)
        qid = str(q["question_id"])
        choices = sorted(q["choices"], key=lambda c: int(c.get("choice_id", 0)))
        opts = [str(c["choice"]) for c in choices]
        ans = opts.index(q["answer"]) if q.get("answer") in opts else None
        if q.get("answer") is not None and ans is None:
            raise DataError(f"{where} ({qid}): answer {q['answer']!r} is not one of its choices")
        window = (float(q["start"]), float(q["end"])) if q.get("start") is not None and q.get("end") is not None else None
        items.append(EvalItem(id=qid, video=str(q["video_id"]), question=str(q["question"]),
                              answer=str(q.get("answer", "")), options=opts, answer_index=ans,
                              steps=star_steps(str(q["question"]), qid), type=qid.split("_")[0], window=window,
                              source="star", meta={"template": "_".join(qid.split("_")[:2]),
                                                   "program": q.get("question_program")}))
    return items


def load_star(path: str | os.PathLike) -> list[EvalItem]:
    """STAR questions: SeViLA's JSON (``qid``, ``a0``..``a3``, ``answer`` index, ``start``/``end``) or the
    official JSON (``question_id``, ``choices`` with programs, ``answer`` text); one record or a list."""
    path = Path(path)
    data = _read_json(path)
    rows = data if isinstance(data, list) else [data] if isinstance(data, dict) and "question" in data else None
    if rows is None and isinstance(data, dict):
        rows = list(data.values())
    if not rows:
        raise DataError(f"{path}: no STAR questions found")
    if not isinstance(rows[0], dict):
        raise DataError(f"{path}: expected STAR question objects, got {type(rows[0]).__name__}")
    if "choices" in rows[0]:
        return _star_official(rows, path)
    return _star_sevila(rows, path)


# --- AGQA ------------------------------------------------------------------------------------


def load_agqa(path: str | os.PathLike) -> list[EvalItem]:
    """AGQA 2.0 balanced questions (id → record with ``question``, ``answer``, ``video_id``, ``steps``,
    ``structural``, ``semantic``, ``global``); open-ended, typed by ``structural``."""
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, list):
        data = {str(r.get("question_id", r.get("id", i))): r for i, r in enumerate(data)}
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected AGQA records keyed by question id")
    items = []
    for qid, r in data.items():
        where = f"{path}: question {qid}"
        if not isinstance(r, dict):
            raise DataError(f"{where}: expected an object, got {type(r).__name__}")
        _need(r, ("question", "answer", "video_id"), where)
        steps = r.get("steps")
        items.append(EvalItem(id=str(qid), video=str(r["video_id"]), question=str(r["question"]),
                              answer=str(r["answer"]), steps=int(steps) if steps is not None else None,
                              type=str(r.get("structural") or r.get("ans_type") or "unknown"), source="agqa",
                              meta={k: r[k] for k in ("semantic", "global", "program", "ans_type", "more_steps",
                                                      "novel_comp") if k in r}))
    return items


# --- NExT-QA ---------------------------------------------------------------------------------


def load_nextqa(path: str | os.PathLike) -> list[EvalItem]:
    """NExT-QA multiple-choice CSV (``video, question, answer, qid, type, a0..a4``); typed by group
    (causal / temporal / descriptive), the fine type (CW, TN, DC, …) in ``meta['subtype']``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such NExT-QA CSV")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        need = ["video", "question", "answer", "qid", "type", "a0", "a1"]
        missing = [f for f in need if f not in fields]
        if missing:
            raise DataError(f"{path}: not a NExT-QA CSV (missing column(s) {', '.join(missing)})")
        letters = [f for f in fields if f.startswith("a") and f[1:].isdigit()]
        items = []
        for line, row in enumerate(reader, 2):
            opts = [row[f] for f in letters]
            try:
                ans = int(row["answer"])
            except ValueError:
                raise DataError(f"{path}:{line}: answer {row['answer']!r} is not an option index") from None
            if not 0 <= ans < len(opts):
                raise DataError(f"{path}:{line}: answer index {ans} outside its {len(opts)} options")
            sub = row["type"].strip()
            items.append(EvalItem(id=f"{row['video']}_{row['qid']}", video=row["video"], question=row["question"],
                                  answer=opts[ans], options=opts, answer_index=ans,
                                  type=NEXTQA_GROUPS.get(sub[:1], sub or "unknown"), source="nextqa",
                                  meta={"subtype": sub}))
    if not items:
        raise DataError(f"{path}: no questions")
    return items


# --- MVBench ---------------------------------------------------------------------------------


def load_mvbench(path: str | os.PathLike) -> list[EvalItem]:
    """MVBench task JSON (a list of ``video, question, candidates, answer``), or a folder of them; the
    task is the file stem (also the item type)."""
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no MVBench task JSON files")
    items = []
    for f in files:
        rows = _read_json(f)
        if not isinstance(rows, list):
            raise DataError(f"{f}: expected a list of MVBench questions")
        for n, q in enumerate(rows):
            where = f"{f}: question {n}"
            _need(q, ("video", "question", "candidates", "answer"), where)
            opts = [str(c) for c in q["candidates"]]
            if str(q["answer"]) not in opts:
                raise DataError(f"{where}: answer {q['answer']!r} is not one of its candidates")
            window = (float(q["start"]), float(q["end"])) if "start" in q and "end" in q else None
            items.append(EvalItem(id=f"{f.stem}_{n}", video=str(q["video"]), question=str(q["question"]),
                                  answer=str(q["answer"]), options=opts, answer_index=opts.index(str(q["answer"])),
                                  type=f.stem, window=window, source="mvbench"))
    return items


# --- stepkit Q/R/A ---------------------------------------------------------------------------


def load_stepkit(path: str | os.PathLike) -> list[EvalItem]:
    """A held-out split of stepkit's own Q/R/A (``qa.jsonl`` or its folder)."""
    from stepkit.data.record import iter_records

    items = []
    for r in iter_records(path):
        opts = list(r.options) if r.options else None
        ans_idx = r.answer_index
        if opts and ans_idx is None and r.answer in opts:
            ans_idx = opts.index(r.answer)
        items.append(EvalItem(id=r.id, video=r.video or r.video_id, question=r.question, answer=r.answer,
                              options=opts, answer_index=ans_idx, steps=r.steps, type=r.type,
                              window=tuple(r.window) if r.window else None, source="stepkit",
                              meta={"video_id": r.video_id, "answer_instruction": r.answer_instruction,
                                    "rationale_instruction": r.rationale_instruction,
                                    "grounding": sorted({g for st in r.rationale for g in st.grounding})}))
    if not items:
        raise DataError(f"{path}: no Q/R/A records")
    return items


def annotation_base(path: str | os.PathLike) -> Path:
    """The folder relative video paths of an annotation are read from."""
    p = Path(path)
    return p if p.is_dir() else p.parent


Loader = Callable[[str | os.PathLike], list[EvalItem]]
