"""Validation of STSG documents: the published JSON Schema plus the cross-references it cannot say."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from stepkit.graph.types import SUPPORTED_SCHEMA_VERSIONS

# Intervals may overshoot the duration by rounding of frame times; a frame at most.
_TIME_SLACK_FRAMES = 1.0


@lru_cache(maxsize=1)
def stsg_json_schema() -> dict[str, Any]:
    """The STSG JSON Schema (draft 2020-12) shipped with stepkit."""
    text = resources.files("stepkit.graph").joinpath("stsg.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(stsg_json_schema())


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(document)"


def graph_problems(doc: Any) -> list[str]:
    """Every problem in an STSG document, as ``field: message`` strings (empty when valid)."""
    if not isinstance(doc, dict):
        return [f"(document): expected a JSON object, got {type(doc).__name__}"]
    from stepkit.userfiles import version_problem

    bad_version = version_problem(doc.get("schema_version"), SUPPORTED_SCHEMA_VERSIONS)
    if bad_version:
        return [bad_version]
    problems = [
        f"{_path(e.absolute_path)}: {e.message if len(e.message) <= 240 else e.message[:240] + ' …'}"
        for e in sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if problems:
        return problems
    return _semantic_problems(doc)


def _semantic_problems(doc: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    duration = float(doc["duration"])
    slack = _TIME_SLACK_FRAMES / float(doc["fps"])
    ids: dict[str, str] = {}
    for section in ("objects", "relations", "actions", "references", "clips"):
        for i, item in enumerate(doc.get(section, [])):
            if item["id"] in ids:
                problems.append(f"{section}[{i}].id: duplicate id {item['id']!r} (also in {ids[item['id']]})")
            else:
                ids[item["id"]] = f"{section}[{i}]"
    objects = {o["id"] for o in doc.get("objects", [])}
    clips = {c["id"] for c in doc.get("clips", [])}

    def interval(where: str, t0: float | None, t1: float | None) -> None:
        if t0 is not None and t0 < -slack:
            problems.append(f"{where}.t0: {t0} is before the start of the video")
        if t1 is not None and t1 > duration + slack:
            problems.append(f"{where}.t1: {t1} is past the video's duration {duration}")
        if t0 is not None and t1 is not None and t1 < t0:
            problems.append(f"{where}: interval ends before it starts (t1={t1} < t0={t0})")

    def ref(where: str, value: str | None) -> None:
        if value is not None and value not in objects:
            problems.append(f"{where}: unknown object id {value!r}")

    for i, o in enumerate(doc.get("objects", [])):
        if o.get("clip") is not None and o["clip"] not in clips:
            problems.append(f"objects[{i}].clip: unknown clip id {o['clip']!r}")
        for j, a in enumerate(o.get("attributes", [])):
            interval(f"objects[{i}].attributes[{j}]", a.get("t0"), a.get("t1"))
        for j, b in enumerate(o.get("track", [])):
            interval(f"objects[{i}].track[{j}]", b["t"], b["t"])
    for i, r in enumerate(doc.get("relations", [])):
        ref(f"relations[{i}].subject", r["subject"])
        ref(f"relations[{i}].object", r["object"])
        interval(f"relations[{i}]", r["t0"], r["t1"])
    for i, a in enumerate(doc.get("actions", [])):
        ref(f"actions[{i}].agent", a["agent"])
        ref(f"actions[{i}].object", a.get("object"))
        ref(f"actions[{i}].target", a.get("target"))
        interval(f"actions[{i}]", a["t0"], a["t1"])
    for i, r in enumerate(doc.get("references", [])):
        ref(f"references[{i}].a", r["a"])
        ref(f"references[{i}].b", r["b"])
    for i, c in enumerate(doc.get("clips", [])):
        interval(f"clips[{i}]", c["t0"], c["t1"])
        for j, t in enumerate(c.get("keyframes", [])):
            if not (c["t0"] - slack <= t <= c["t1"] + slack):
                problems.append(f"clips[{i}].keyframes[{j}]: {t} lies outside the clip [{c['t0']}, {c['t1']}]")
    return problems
