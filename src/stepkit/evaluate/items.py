"""The one item type every benchmark loader yields, and video resolution against a videos root."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from stepkit.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
MISSING_SHOWN = 5


class MissingVideosError(DataError):
    """Some items' videos are not under the videos root."""


@dataclass
class EvalItem:
    """One benchmark question, whatever its source.

    ``video`` is what the annotation names (a path, a file name or a bare id); ``video_path`` is
    filled by :func:`resolve_videos`. ``answer`` is the gold text; ``answer_index`` its position in
    ``options`` for multiple choice. ``steps`` is the number of reasoning steps where known.
    """

    id: str
    video: str
    question: str
    answer: str
    options: list[str] | None = None
    answer_index: int | None = None
    steps: int | None = None
    type: str | None = None
    window: tuple[float, float] | None = None
    source: str = ""
    video_path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_mc(self) -> bool:
        """Whether the item has options and a gold option index."""
        return bool(self.options) and self.answer_index is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"id": self.id, "video": self.video, "question": self.question, "answer": self.answer,
                "options": list(self.options) if self.options is not None else None,
                "answer_index": self.answer_index, "steps": self.steps, "type": self.type,
                "window": list(self.window) if self.window is not None else None, "source": self.source,
                "video_path": self.video_path, "meta": dict(self.meta)}


def _candidates(video: str, root: Path | None, base: Path | None) -> list[Path]:
    """Paths to try for ``video``: as given, under the root, under the annotation's folder, with extensions."""
    name = Path(video)
    out: list[Path] = []
    # the videos root first (as stepkit.data.videos reads --videos-dir), then the path as named
    if root is not None:
        out += [root / name, root / name.name]
    if name.is_absolute():
        out.append(name)
    if base is not None:
        out += [base / name, base / name.name]
    for p in list(out):
        if p.suffix.lower() not in VIDEO_EXTENSIONS:
            out.extend(p.with_name(p.name + ext) for ext in VIDEO_EXTENSIONS)
    seen: list[Path] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


def _stem_index(root: Path) -> dict[str, Path]:
    """Video files anywhere under ``root`` by stem (first in sorted order wins)."""
    index: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if p.suffix.lower() in VIDEO_EXTENSIONS:
                index.setdefault(p.stem, p)
    return index


def _inside(path: Path, homes: list[Path]) -> bool:
    """Whether ``path`` lies under one of ``homes`` (lexically, after making both absolute and
    normalised: ``..`` cannot climb out; symlinks placed inside a root by its owner are followed)."""
    p = os.path.normpath(os.path.abspath(path))
    for h in homes:
        root = os.path.normpath(os.path.abspath(h))
        if p == root or p.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def resolve_videos(items: Iterable[EvalItem], root: str | os.PathLike | None, *,
                   base: str | os.PathLike | None = None, confine: bool = True,
                   outside_video_files: bool = False) -> list[EvalItem]:
    """Items with ``video_path`` set; raises :class:`MissingVideosError` naming how many are missing
    and the first few, before any model runs.

    A video is looked for as given, under ``root`` and under ``base`` (the annotation file's folder),
    with each common extension, and finally by file stem anywhere under ``root`` (nested layouts such
    as NExT-QA's ``1025/4010069381.mp4``). With ``confine`` (the default) only files under ``root`` or
    ``base`` are taken: an annotation naming ``../x.mp4`` or ``/etc/shadow`` that exists only outside
    them counts as missing (never opened), and the error says where it is and how to allow it.
    ``outside_video_files`` lets a confined path outside the roots through when it names a video
    file (one of ``VIDEO_EXTENSIONS``): stepkit's own records name their videos by absolute paths.
    """
    root_p = Path(root).expanduser() if root is not None else None
    if root_p is not None and not root_p.is_dir():
        raise DataError(f"videos root {root_p}: no such folder")
    base_p = Path(base) if base is not None else None
    homes = [h for h in (root_p, base_p) if h is not None]
    items = list(items)
    found: dict[str, Path | None] = {}
    refused: dict[str, Path] = {}
    stems: dict[str, Path] | None = None
    for it in items:
        if it.video in found:
            continue
        hits = [p for p in _candidates(it.video, root_p, base_p) if p.is_file()]
        hit = next((p for p in hits if not confine or _inside(p, homes)
                    or outside_video_files and p.suffix.lower() in VIDEO_EXTENSIONS), None)
        if hit is None and hits:
            refused[it.video] = Path(os.path.normpath(os.path.abspath(hits[0])))
        if hit is None and root_p is not None:
            if stems is None:
                stems = _stem_index(root_p)
            hit = stems.get(Path(it.video).stem if Path(it.video).suffix.lower() in VIDEO_EXTENSIONS
                            else Path(it.video).name)
        if hit is not None:
            refused.pop(it.video, None)
        found[it.video] = hit
    missing = sorted(v for v, p in found.items() if p is None)
    if missing:
        shown = [str((root_p or base_p or Path(".")) / v) for v in missing[:MISSING_SHOWN]]
        n_items = sum(1 for it in items if found[it.video] is None)
        where = f"under {root_p}" if root_p is not None else "(no --videos root given)"
        raise MissingVideosError(
            f"{len(missing)} of {len(found)} videos not found {where} ({n_items} questions); first missing: "
            + ", ".join(shown) + (" ..." if len(missing) > MISSING_SHOWN else "")
            + " (each tried as named, with the common video extensions, and by name anywhere below the root)"
            + (f"; {len(refused)} of them exist outside "
               f"{' and '.join(str(h) for h in homes) or 'the declared roots'} and were not opened "
               f"(first: {refused[sorted(refused)[0]]}): give --videos their folder, or --allow-outside-videos"
               if refused else ""))
    return [replace(it, video_path=str(found[it.video])) for it in items]
