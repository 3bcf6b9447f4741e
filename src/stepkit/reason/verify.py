"""Re-executing Q/R/A records against their graphs: every program must still give its answer."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from stepkit.data.record import QRARecord, iter_records
from stepkit.errors import StepkitError
from stepkit.reason.ops import ExecError, GraphContext, ProgramError, execute, step_count


@dataclass
class Mismatch:
    """One record that failed verification, and why."""

    record_id: str
    video_id: str
    problem: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready dict."""
        return {"record": self.record_id, "video_id": self.video_id, "problem": self.problem}


@dataclass
class VerifyReport:
    """How many records were checked and which failed."""

    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every record verified."""
        return not self.mismatches


def check_record(rec: QRARecord, ctx: GraphContext) -> str | None:
    """The problem with one record on its graph, or None when it verifies."""
    try:
        run = execute(rec.program, ctx)
    except (ExecError, ProgramError) as exc:
        return f"program does not execute: {exc}"
    if run.answer != rec.answer:
        return f"program answers {run.answer!r}, record says {rec.answer!r}"
    n = step_count(rec.program)
    if n != rec.steps:
        return f"program has {n} steps, record says {rec.steps}"
    if rec.options is not None:
        if rec.answer_index is None or not 0 <= rec.answer_index < len(rec.options):
            return f"answer_index {rec.answer_index} outside the {len(rec.options)} options"
        if rec.options[rec.answer_index] != rec.answer:
            return f"option {rec.answer_index} is {rec.options[rec.answer_index]!r}, not the answer"
    if len(rec.rationale) < rec.steps:
        return f"rationale has {len(rec.rationale)} statements for {rec.steps} steps"
    if any(not s.grounding for s in rec.rationale):
        return "a rationale statement has no grounding ids"
    if rec.rationale and rec.answer.lower() not in rec.rationale[-1].text.lower():
        return "the last rationale statement does not state the answer"
    return None


class GraphLookup:
    """Finds a video's graph in a folder: by file name first, else by scanning (cached)."""

    def __init__(self, graphs: str | os.PathLike):
        from stepkit.graph.serialize import iter_graph_files

        self.files = list(iter_graph_files(graphs))
        self.by_stem = {p.stem: p for p in self.files}
        self._scanned: dict[str, Path] = {}
        self._cache: tuple[str, GraphContext] | None = None

    def get(self, video_id: str) -> GraphContext | None:
        """The context of ``video_id``'s graph, or None when no graph has that id."""
        from stepkit.graph.serialize import load_graph

        if self._cache and self._cache[0] == video_id:
            return self._cache[1]
        path = self.by_stem.get(video_id) or self._scanned.get(video_id)
        graph = None
        if path is not None:
            graph = load_graph(path)
            if graph.video_id != video_id:
                graph = None
        if graph is None:
            for p in self.files:
                if p in self._scanned.values():
                    continue
                g = load_graph(p)
                self._scanned[g.video_id] = p
                if g.video_id == video_id:
                    graph = g
                    break
        if graph is None:
            return None
        ctx = GraphContext(graph, natural=True)  # records are made with natural nouns
        self._cache = (video_id, ctx)
        return ctx


def iter_verify(qa: str | os.PathLike, graphs: str | os.PathLike) -> Iterator[tuple[QRARecord, str | None]]:
    """Each record with its problem (None when it verifies)."""
    lookup = GraphLookup(graphs)
    for rec in iter_records(qa):
        try:
            ctx = lookup.get(rec.video_id)
        except StepkitError as exc:
            yield rec, f"graph unreadable: {exc}"
            continue
        if ctx is None:
            yield rec, f"no graph for video {rec.video_id!r} in {graphs}"
            continue
        yield rec, check_record(rec, ctx)


def verify(qa: str | os.PathLike, graphs: str | os.PathLike) -> VerifyReport:
    """Re-execute every record of ``qa`` on the graphs in ``graphs``."""
    report = VerifyReport()
    for rec, problem in iter_verify(qa, graphs):
        report.checked += 1
        if problem:
            report.mismatches.append(Mismatch(rec.id, rec.video_id, problem))
    return report


def record_lines(rec: QRARecord) -> list[str]:
    """A readable rendering of one record (for ``stepkit qa show``)."""
    lines = [f"[bold]{rec.id}[/bold]  type={rec.type} steps={rec.steps} video={rec.video or rec.video_id}",
             f"  Q: {rec.question}"]
    if rec.options:
        lines.append("  options: " + " | ".join(
            f"{'*' if i == rec.answer_index else ''}{chr(65 + i)}. {o}" for i, o in enumerate(rec.options)))
    lines.append(f"  A: {rec.answer}   ({rec.answer_sentence})")
    for i, s in enumerate(rec.rationale, 1):
        lines.append(f"  {i}. {s.text}  [dim]{', '.join(s.grounding)}[/dim]")
    lines.append("  program: " + " → ".join(_node_text(n) for n in rec.program))
    return lines


def _node_text(n: dict[str, Any]) -> str:
    args = ",".join(f"{k}={v}" for k, v in sorted(n.get("args", {}).items()))
    ins = ",".join(map(str, n.get("in", [])))
    return f"{n['op']}({ins}{';' if ins and args else ''}{args})"
