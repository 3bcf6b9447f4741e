"""Graphs an earlier config left in an induce folder are moved aside, so none looks current.

After a re-induce with a new config, a video that failed this time would otherwise keep the old
config's graph beside the new summary, and `stepkit generate` would read it as if it were new.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

STALE_DIR = ".stale"


def set_aside_stale(out: Path, config_hash: str, failed: set[str] = frozenset()) -> list[dict[str, Any]]:
    """Move every graph in ``out`` that the manifest says this runner wrote, but not with the
    config ``config_hash`` (or whose bytes changed since, or whose video failed this run: ids in
    ``failed``), to ``out/.stale/<its config>/``; returns ``[{"graph", "moved_to", "config_sha256"}]``.
    Files the manifest does not know are left alone."""
    from stepkit.induce.runner import MANIFEST, SUMMARY, read_manifest
    from stepkit.io import sha256_file

    manifest = read_manifest(out)
    moved: list[dict[str, Any]] = []
    for path in sorted(out.glob("*.json")):
        if path.name in (SUMMARY, MANIFEST) or path.name.startswith("."):
            continue
        row = manifest.get(path.stem)
        if row is None or row.get("graph") != path.name:
            continue
        if (path.stem not in failed and row.get("config_sha256") == config_hash
                and row.get("graph_sha256") == sha256_file(path)):
            continue
        old = str(row.get("config_sha256") or "unknown")[:12]
        dest = out / STALE_DIR / old / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        moved.append({"graph": path.name, "moved_to": str(dest.relative_to(out)), "config_sha256": row.get("config_sha256")})
    return moved
