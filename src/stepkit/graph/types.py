"""The Spatio-Temporal Scene Graph (STSG): the one type every stepkit stage speaks.

Times are seconds from the start of the video; frame indices ride alongside where known.
A graph is plain data: build it with the dataclasses, save it with :func:`stepkit.graph.save_graph`.

>>> g = STSG(video_id="v0", fps=10.0, duration=4.0, num_frames=40)
>>> g.objects.append(Object(id="o1", label="person", kind="dynamic"))
>>> g.objects.append(Object(id="o2", label="cup", kind="dynamic",
...                         attributes=[Attribute("color", "red")]))
>>> g.relations.append(Relation(id="r1", subject="o1", predicate="holding", object="o2", t0=1.0, t1=3.0))
>>> g.object("o2").attribute("color")
'red'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Literal

SCHEMA_VERSION = "1.0"
SUPPORTED_SCHEMA_VERSIONS = ("1.0",)

ObjectKind = Literal["static", "dynamic"]


@dataclass
class Box:
    """An object's image-space box (pixels, x0 y0 x1 y1) at one moment."""

    t: float
    xyxy: tuple[float, float, float, float]
    frame: int | None = None


@dataclass
class Attribute:
    """A property of an object; ``t0``/``t1`` bound it in time (None: holds throughout)."""

    name: str
    value: str
    t0: float | None = None
    t1: float | None = None

    def holds_at(self, t: float) -> bool:
        """Whether the attribute holds at time ``t``."""
        return (self.t0 is None or self.t0 <= t) and (self.t1 is None or t <= self.t1)


@dataclass
class Object:
    """A node: one entity. ``kind`` says whether it moves (dynamic) or stays put (static)."""

    id: str
    label: str
    kind: ObjectKind = "dynamic"
    attributes: list[Attribute] = field(default_factory=list)
    track: list[Box] = field(default_factory=list)
    clip: str | None = None
    confidence: float | None = None

    def attribute(self, name: str, t: float | None = None) -> str | None:
        """The value of attribute ``name`` (at time ``t`` when given), or None."""
        for a in self.attributes:
            if a.name == name and (t is None or a.holds_at(t)):
                return a.value
        return None


@dataclass
class Relation:
    """A directed edge ``subject --predicate--> object`` holding over ``[t0, t1]``."""

    id: str
    subject: str
    predicate: str
    object: str
    t0: float
    t1: float
    confidence: float | None = None


@dataclass
class Action:
    """Something an agent does over ``[t0, t1]``: ``verb`` with optional ``object`` and ``target``.

    ``target`` is the second argument of two-place actions ("put down the cup *on the table*",
    "give the book *to the woman*"). Motions of dynamic nodes between keyframes are actions too.
    """

    id: str
    agent: str
    verb: str
    t0: float
    t1: float
    object: str | None = None
    target: str | None = None
    confidence: float | None = None


@dataclass
class Reference:
    """An identity edge: nodes ``a`` and ``b`` (usually in different clips) are the same entity."""

    id: str
    a: str
    b: str
    confidence: float | None = None


@dataclass
class Clip:
    """A shot of the video between two cuts, with its event description and keyframe times."""

    id: str
    t0: float
    t1: float
    description: str = ""
    keyframes: list[float] = field(default_factory=list)


@dataclass
class STSG:
    """A video's spatio-temporal scene graph."""

    video_id: str
    fps: float
    duration: float
    num_frames: int | None = None
    width: int | None = None
    height: int | None = None
    video: str | None = None
    objects: list[Object] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    clips: list[Clip] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    def object(self, object_id: str) -> Object:
        """The object with id ``object_id`` (KeyError if absent)."""
        for o in self.objects:
            if o.id == object_id:
                return o
        raise KeyError(object_id)

    def object_map(self) -> dict[str, Object]:
        """Objects by id."""
        return {o.id: o for o in self.objects}

    def clip_at(self, t: float) -> Clip | None:
        """The clip that contains time ``t``."""
        for c in self.clips:
            if c.t0 <= t <= c.t1:
                return c
        return None

    def cuts(self) -> list[float]:
        """Times of the shot boundaries (start of every clip after the first)."""
        return [c.t0 for c in sorted(self.clips, key=lambda c: c.t0)[1:]]

    def labels(self) -> set[str]:
        """Object classes present."""
        return {o.label for o in self.objects}

    def iter_edges(self) -> Iterator[Relation | Action]:
        """All timed edges, relations then actions."""
        yield from self.relations
        yield from self.actions

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the on-disk form)."""
        d = asdict(self)
        for o in d["objects"]:
            for b in o["track"]:
                b["xyxy"] = list(b["xyxy"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "STSG":
        """Build from the on-disk dict; assumes it already validated."""
        objects = [
            Object(
                id=o["id"],
                label=o["label"],
                kind=o.get("kind", "dynamic"),
                attributes=[Attribute(**a) for a in o.get("attributes", [])],
                track=[Box(t=b["t"], xyxy=tuple(b["xyxy"]), frame=b.get("frame")) for b in o.get("track", [])],
                clip=o.get("clip"),
                confidence=o.get("confidence"),
            )
            for o in d.get("objects", [])
        ]
        return cls(
            video_id=d["video_id"],
            fps=d["fps"],
            duration=d["duration"],
            num_frames=d.get("num_frames"),
            width=d.get("width"),
            height=d.get("height"),
            video=d.get("video"),
            objects=objects,
            relations=[Relation(**r) for r in d.get("relations", [])],
            actions=[Action(**a) for a in d.get("actions", [])],
            references=[Reference(**r) for r in d.get("references", [])],
            clips=[Clip(**c) for c in d.get("clips", [])],
            meta=dict(d.get("meta", {})),
            schema_version=d.get("schema_version", SCHEMA_VERSION),
        )
