"""Reading and writing STSG JSON files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from stepkit.errors import GraphError
from stepkit.graph.types import STSG
from stepkit.graph.validate import graph_problems
from stepkit.io import atomic_write_json


def graph_to_json(graph: STSG) -> str:
    """The canonical on-disk text of a graph (sorted keys, stable floats)."""
    return json.dumps(graph.to_dict(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def save_graph(graph: STSG, path: str | os.PathLike, *, validate: bool = True) -> Path:
    """Write ``graph`` to ``path`` atomically; refuses to write an invalid graph."""
    doc = graph.to_dict()
    if validate:
        problems = graph_problems(doc)
        if problems:
            raise GraphError(f"{path}: refusing to write an invalid graph: {problems[0]}")
    return atomic_write_json(path, doc, indent=1)


def read_graph_doc(path: str | os.PathLike) -> dict:
    """Parse a graph file's JSON, raising :class:`GraphError` naming the file when it is unreadable."""
    from stepkit.userfiles import load_json

    return load_json(path, what="graph file", error=GraphError)  # the type is graph_problems' to check


def load_graph(path: str | os.PathLike, *, validate: bool = True) -> STSG:
    """Load and (by default) validate a graph file."""
    doc = read_graph_doc(path)
    if validate:
        problems = graph_problems(doc)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise GraphError(f"{path}: {problems[0]}{more}")
    return STSG.from_dict(doc)


def iter_graph_files(path: str | os.PathLike) -> Iterator[Path]:
    """Graph files under ``path`` (a file, or a folder searched for ``*.json`` except summaries), sorted."""
    path = Path(path)
    if path.is_file():
        yield path
        return
    if not path.is_dir():
        raise GraphError(f"{path}: no such graph file or folder")
    for p in sorted(path.glob("*.json")):
        if p.name != "summary.json" and not p.name.startswith("."):
            yield p


def load_graphs(path: str | os.PathLike) -> Iterator[STSG]:
    """Load every graph under ``path`` lazily, one at a time."""
    for p in iter_graph_files(path):
        yield load_graph(p)
