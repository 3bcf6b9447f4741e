"""Helpers shared by the importers: node ids and writing a folder of graphs with its summary."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterable

from stepkit.graph.types import STSG
from stepkit.graph.validate import graph_problems
from stepkit.io import atomic_write_json, atomic_write_many, dumps_json

PERSON_ID = "person"


def object_id(label: str) -> str:
    """A stable node id for a labelled object (``closet/cabinet`` → ``obj_closet_cabinet``)."""
    return "obj_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def write_items(items: Iterable[tuple[str, STSG | None, str | None, list[str]]], out: Path
                ) -> tuple[int, dict[str, str], dict[str, list[str]]]:
    """Validate and write ``(id, graph|None, why, warnings)`` items under ``out``.

    Returns (number written, failed id → why, id → warnings). A graph that fails validation is
    recorded as failed with its first problem, never written. Files are written as one batch with a
    single disk sync (:func:`stepkit.io.atomic_write_many`).
    """
    failed: dict[str, str] = {}
    warned: dict[str, list[str]] = {}
    staged: list[tuple[Path, str]] = []
    for item_id, graph, why, warnings in items:
        if graph is None:
            failed[item_id] = why or "unknown reason"
            continue
        doc = graph.to_dict()
        problems = graph_problems(doc)
        if problems:
            failed[item_id] = f"invalid graph: {problems[0]}"
            continue
        staged.append((Path(out) / f"{safe_name(graph.video_id)}.json", dumps_json(doc, indent=1)))
        if warnings:
            warned[item_id] = warnings
    atomic_write_many(staged)
    return len(staged), failed, warned


def write_summary(out: Path, *, source: str, src: Path, written: int, failed: dict[str, str],
                  warnings: dict[str, list[str]], seconds: float, config: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """Write and return ``summary.json`` for an import."""
    summary = {
        "source": source,
        "input": str(src),
        "written": written,
        "n_failed": len(failed),
        "failed": dict(sorted(failed.items())),
        "n_warned": len(warnings),
        "warnings": dict(sorted(warnings.items())),
        "seconds": round(seconds, 3),
        "config": config or {},
    }
    atomic_write_json(Path(out) / "summary.json", summary)
    return summary


def write_graphs(items: Iterable[tuple[str, STSG | None, str | None, list[str]]], out: str | Path, *,
                 source: str, src: str | Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate and write every item under ``out`` and the ``summary.json`` beside them."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    written, failed, warned = write_items(items, out)
    return write_summary(out, source=source, src=Path(src), written=written, failed=failed, warnings=warned,
                         seconds=time.perf_counter() - started, config=config)


def safe_name(video_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", video_id) or "video"
