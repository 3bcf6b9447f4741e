"""Versioned prompt templates of the Video-LLM inducer.

A prompt set is a folder of ``<kind>.txt`` files written as :class:`string.Template` text
(``$name`` placeholders, so JSON braces need no escaping). The shipped sets live in
``stepkit/induce/prompts/<version>/``; a user can point ``prompts`` at any folder holding the same
files. Changing a shipped template means a new version folder, so old graphs stay reproducible.

>>> ps = PromptSet.load("v1")
>>> ps.render("presence_object", time="1.50", phrase="a red cup")
'This image is a keyframe at 1.50 s of a video. Is there a red cup in the image? Answer yes or no.'
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from stepkit.errors import ConfigError

# kind -> the placeholders its template must use (and the only ones it may use).
PROMPT_KINDS: dict[str, tuple[str, ...]] = {
    "system": (),
    "narrative": ("time",),
    "objects": ("time", "narrative"),
    "kind": ("time", "object"),
    "attributes": ("time", "object", "attribute_names"),
    "relation": ("time", "a", "b"),
    "presence_object": ("time", "phrase"),
    "presence_attribute": ("time", "name", "object", "value"),
    "presence_relation": ("time", "subject", "predicate", "object"),
    "motion": ("t0", "t1", "object", "others"),
    "presence_motion": ("t0", "t1", "agent", "verb", "object_phrase"),
    "identity": ("t0", "t1", "label"),
    "event": ("count", "t0", "t1"),
}


def shipped_versions() -> list[str]:
    """Prompt versions shipped with stepkit."""
    root = resources.files("stepkit.induce").joinpath("prompts")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


@dataclass(frozen=True)
class PromptSet:
    """The templates of one prompt version, checked for missing files and unknown placeholders."""

    version: str
    templates: dict[str, str]

    @classmethod
    def load(cls, version_or_dir: str) -> "PromptSet":
        """Load a shipped version (``"v1"``) or a folder of ``<kind>.txt`` files."""
        path = Path(version_or_dir)
        if path.is_dir():
            read = {k: (path / f"{k}.txt") for k in PROMPT_KINDS}
            missing = [k for k, p in read.items() if not p.is_file()]
            texts = {k: p.read_text(encoding="utf-8") for k, p in read.items() if p.is_file()}
            label = str(path)
        else:
            if version_or_dir not in shipped_versions():
                raise ConfigError(
                    f"prompts: {version_or_dir!r} is neither a folder nor a shipped prompt version "
                    f"({', '.join(shipped_versions())})"
                )
            root = resources.files("stepkit.induce").joinpath("prompts", version_or_dir)
            texts, missing = {}, []
            for k in PROMPT_KINDS:
                f = root.joinpath(f"{k}.txt")
                if f.is_file():
                    texts[k] = f.read_text(encoding="utf-8")
                else:
                    missing.append(k)
            label = version_or_dir
        if missing:
            raise ConfigError(f"prompts {label}: missing template files {', '.join(m + '.txt' for m in missing)}")
        for kind, text in texts.items():
            used = {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(text)} - {None}
            if used != set(PROMPT_KINDS[kind]):
                raise ConfigError(
                    f"prompts {label}: {kind}.txt must use exactly the placeholders "
                    f"{sorted(PROMPT_KINDS[kind])}, found {sorted(used)}"
                )
        return cls(version=label, templates={k: texts[k].strip() for k in PROMPT_KINDS})

    def render(self, kind: str, **fields: object) -> str:
        """The text of prompt ``kind`` with ``fields`` filled in."""
        try:
            return string.Template(self.templates[kind]).substitute({k: str(v) for k, v in fields.items()})
        except KeyError as exc:
            raise ConfigError(f"prompt {kind!r} needs field {exc}") from None

    def digest(self) -> str:
        """A short hash of all templates (part of the inducer's config)."""
        h = hashlib.sha256()
        for k in sorted(self.templates):
            h.update(f"{k}\0{self.templates[k]}\0".encode())
        return h.hexdigest()[:12]
