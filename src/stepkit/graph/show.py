"""A readable timeline of one graph."""

from __future__ import annotations

from stepkit.graph.types import STSG


def _name(graph_objects, oid: str | None) -> str:
    if oid is None:
        return ""
    o = graph_objects.get(oid)
    return f"{o.label}#{oid}" if o else f"?#{oid}"


def describe_object(obj) -> str:
    """``label#id (kind; attr=value …)``."""
    attrs = ", ".join(
        f"{a.name}={a.value}" + (f" [{a.t0:.1f}-{a.t1:.1f}s]" if a.t0 is not None and a.t1 is not None else "")
        for a in obj.attributes
    )
    return f"{obj.label}#{obj.id} ({obj.kind}{'; ' + attrs if attrs else ''})"


def timeline_lines(graph: STSG) -> list[str]:
    """The graph as text lines: header, objects, clips, then every timed edge in start order."""
    objs = graph.object_map()
    lines = [
        f"{graph.video_id}: {graph.duration:.2f} s at {graph.fps:g} fps"
        + (f", {graph.width}x{graph.height}" if graph.width else "")
        + f" | {len(graph.objects)} objects, {len(graph.relations)} relations, "
        f"{len(graph.actions)} actions, {len(graph.clips)} clips, {len(graph.references)} references",
        "objects:",
    ]
    lines += [f"  {describe_object(o)}" for o in graph.objects]
    if graph.clips:
        lines.append("clips:")
        lines += [f"  {c.id} [{c.t0:6.2f} - {c.t1:6.2f}] {c.description}" for c in sorted(graph.clips, key=lambda c: c.t0)]
    events = []
    for r in graph.relations:
        events.append((r.t0, r.t1, f"{_name(objs, r.subject)} {r.predicate} {_name(objs, r.object)}"))
    for a in graph.actions:
        text = f"{_name(objs, a.agent)} {a.verb}"
        if a.object:
            text += f" {_name(objs, a.object)}"
        if a.target:
            text += f" -> {_name(objs, a.target)}"
        events.append((a.t0, a.t1, "ACTION " + text))
    lines.append("timeline:")
    lines += [f"  [{t0:6.2f} - {t1:6.2f}] {text}" for t0, t1, text in sorted(events)]
    for ref in graph.references:
        lines.append(f"  same entity: {_name(objs, ref.a)} == {_name(objs, ref.b)}")
    return lines
