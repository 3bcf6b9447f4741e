"""Every knob of the Video-LLM inducer, with help text (``stepkit induce --backend vlm --config FILE``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from stepkit.errors import ConfigError

PRESENCE_MODES = ("off", "generate", "loglikelihood")
# Fields that say how a run is carried out, not what it produces: left out of the resume key.
EXECUTION_FIELDS = ("cache", "in_flight", "videos_in_flight")
PRESENCE_TARGETS = ("objects", "attributes", "relations", "motions")
SPLIT_MODES = ("scenes", "uniform")


@dataclass
class VLMInducerConfig:
    """How the Video-LLM turns a video into a scene graph (paper §3.1)."""

    prompts: str = field(default="v1", metadata={"help": "Prompt version shipped with stepkit (v1) or a folder of <kind>.txt templates."})
    split: str = field(default="scenes", metadata={"help": "Visual splitting: 'scenes' (PySceneDetect cuts + k-means keyframes) or 'uniform' (fixed-length clips, evenly spaced keyframes)."})
    scene_threshold: float | None = field(default=None, metadata={"help": "PySceneDetect content threshold (splitter default when unset)."})
    min_scene_len: float | None = field(default=None, metadata={"help": "scenes split only: shortest clip in seconds (splitter default when unset)."})
    clip_seconds: float | None = field(default=None, metadata={"help": "uniform split only: seconds per clip (splitter default when unset)."})
    keyframes_per_clip: int = field(default=3, metadata={"help": "Keyframes parsed per clip."})
    max_clips: int | None = field(default=None, metadata={"help": "Parse at most this many clips (the first ones); all when unset."})
    image_size: int | None = field(default=448, metadata={"help": "Shrink keyframes so the longer side is at most this many pixels before prompting (as decoded when unset)."})
    samples: int = field(default=5, metadata={"help": "Self-consistency: answers sampled per structured question (n)."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of the self-consistency samples."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass of the self-consistency samples."})
    threshold: float = field(default=0.5, metadata={"help": "Keep an item when at least this fraction of the n samples gave it (its confidence)."})
    max_new_tokens: int = field(default=128, metadata={"help": "Longest structured answer, in tokens."})
    text_max_new_tokens: int = field(default=96, metadata={"help": "Longest free-text answer (scene narrative, clip event), in tokens."})
    yes_no_max_new_tokens: int = field(default=8, metadata={"help": "Longest yes/no answer (presence and identity questions), in tokens."})
    max_objects: int = field(default=8, metadata={"help": "Keep at most this many objects per keyframe (most confident first); pairs grow quadratically."})
    attribute_names: list[str] = field(default_factory=lambda: ["color", "size", "shape", "material", "state"], metadata={"help": "Attribute names asked for; other names in answers are filtered."})
    narrative: bool = field(default=True, metadata={"help": "Ask for a scene narrative first and show it when asking for objects."})
    attributes: bool = field(default=True, metadata={"help": "Ask for attributes per object."})
    relations: bool = field(default=True, metadata={"help": "Ask for a relation per object pair."})
    motions: bool = field(default=True, metadata={"help": "Dynamic merging: name the motion of each dynamic object between consecutive keyframes."})
    bridging: bool = field(default=True, metadata={"help": "Cross-clip bridging: ask whether same-label objects in different clips are one entity (reference edges)."})
    events: bool = field(default=True, metadata={"help": "Ask for one event description per clip."})
    presence: str = field(default="generate", metadata={"help": "Presence check: 'off', 'generate' (ask yes/no) or 'loglikelihood' (compare log p(yes) with log p(no))."})
    presence_targets: list[str] = field(default_factory=lambda: ["objects", "relations", "motions"], metadata={"help": "What the presence check verifies: objects, attributes, relations, motions."})
    presence_margin: float = field(default=0.0, metadata={"help": "loglikelihood mode: keep when log p(yes) - log p(no) exceeds this."})
    presence_yes: str = field(default="yes", metadata={"help": "loglikelihood mode: the continuation scored as yes."})
    presence_no: str = field(default="no", metadata={"help": "loglikelihood mode: the continuation scored as no."})
    keep_unsure: bool = field(default=False, metadata={"help": "generate mode: keep an item when the yes/no answer is unreadable (dropped by default)."})
    identity_threshold: float = field(default=0.5, metadata={"help": "Bridging: keep a reference edge when at least this fraction of the n samples say yes."})
    bridge_any_label: bool = field(default=False, metadata={"help": "Bridging: also ask about pairs with different labels (default: same label only)."})
    system_prompt: bool = field(default=True, metadata={"help": "Send the prompt set's system message (turn off for models whose template rejects a system turn)."})
    batch_size: int = field(default=8, metadata={"help": "Prompts per backend call (a local model's batch; a served model gets a whole stage at once, up to in_flight)."})
    in_flight: int = field(default=64, metadata={"help": "Served models (openai backend): requests in flight at once over all videos and endpoints; enough to fill one vLLM / SGLang server's batch. Does not change the output."})
    videos_in_flight: int | None = field(default=None, metadata={"help": "Served models: at most this many videos open at once (a new one starts only while a request slot is free; default: in_flight). Does not change the output."})
    seed: int = field(default=0, metadata={"help": "Sampling seed passed to the backend."})
    cache: str | None = field(default=None, metadata={"help": "SQLite response-cache file; a rerun with the same model, prompts and settings costs no model calls."})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """ConfigError naming the first bad field."""
        def bad(name: str, why: str) -> None:
            raise ConfigError(f"vlm inducer config: {name}: {why}")

        if self.split not in SPLIT_MODES:
            bad("split", f"{self.split!r} is not one of {', '.join(SPLIT_MODES)}")
        if self.presence not in PRESENCE_MODES:
            bad("presence", f"{self.presence!r} is not one of {', '.join(PRESENCE_MODES)}")
        unknown = [t for t in self.presence_targets if t not in PRESENCE_TARGETS]
        if unknown:
            bad("presence_targets", f"unknown target(s) {unknown}; choose from {', '.join(PRESENCE_TARGETS)}")
        for name in ("keyframes_per_clip", "samples", "max_new_tokens", "text_max_new_tokens", "yes_no_max_new_tokens", "max_objects", "batch_size",
                     "in_flight"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(name, f"must be a positive integer, got {v!r}")
        if self.videos_in_flight is not None and (not isinstance(self.videos_in_flight, int) or isinstance(self.videos_in_flight, bool)
                                                  or self.videos_in_flight < 1):
            bad("videos_in_flight", f"must be a positive integer or unset, got {self.videos_in_flight!r}")
        if self.max_clips is not None and (not isinstance(self.max_clips, int) or self.max_clips < 1):
            bad("max_clips", f"must be a positive integer or unset, got {self.max_clips!r}")
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 8):
            bad("image_size", f"must be an integer >= 8 or unset, got {self.image_size!r}")
        for name in ("threshold", "identity_threshold"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 < v <= 1.0:
                bad(name, f"must be in (0, 1], got {v!r}")
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            bad("temperature", f"must be >= 0, got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            bad("top_p", f"must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.attribute_names, list) or not all(isinstance(a, str) and a for a in self.attribute_names):
            bad("attribute_names", "must be a list of non-empty names")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> "VLMInducerConfig":
        """Build from a dict (e.g. a YAML ``--config`` file), rejecting unknown keys by name."""
        options = dict(options or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(f"vlm inducer config: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        try:
            return cls(**options)
        except TypeError as exc:
            raise ConfigError(f"vlm inducer config: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (saved in graph meta and summaries)."""
        return dataclasses.asdict(self)

    @staticmethod
    def help() -> dict[str, str]:
        """Field name -> help text."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(VLMInducerConfig)}
