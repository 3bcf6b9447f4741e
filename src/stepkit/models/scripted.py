"""A replay backend: answers prompts from a recorded script instead of a network.

It speaks the :class:`~stepkit.models.base.VideoLLM` protocol, so any stage that takes a model
can run on recorded answers: for tests that must know the exact output, and for demos without
weights. A script (YAML or JSON) is a list of rules; the first rule whose conditions all hold for
a prompt answers it::

    model_id: scripted/demo
    kinds:                      # optional: named regexes for the kinds of prompt
      objects: "List every distinct person and object"
    rules:
      - kind: objects           # the prompt text matches kinds["objects"] ...
        contains: ["at 0.50 s"] # ... and contains each of these strings ...
        images: 1               # ... and shows this many images (optional)
        answers:                # sample i of n gets answers[i % len(answers)]
          - '```json\\n{"objects": ["person", "cup"]}\\n```'
          - 'Here you go: {"objects": ["person", "cup",]}'
        loglikelihood: {"yes": -0.1, "no": -2.5}   # for loglikelihood(); keys are stripped, lower-cased
    default: "no"               # answer to prompts no rule matches (absent: ModelError)

Answers are returned verbatim, in the shapes real models produce them (fences, prose, trailing
commas, garbage), so the consumer's parsing is exercised for real. Every call is logged in
``calls``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from stepkit.errors import ModelError
from stepkit.models.base import Prompt, SamplingParams


@dataclass
class ScriptRule:
    """One matching rule of a script."""

    answers: list[str]
    kind: str | None = None
    pattern: re.Pattern | None = None
    contains: list[str] = field(default_factory=list)
    regex: re.Pattern | None = None
    images: int | None = None
    loglikelihood: dict[str, float] | None = None

    def matches(self, prompt: Prompt) -> bool:
        """Whether every condition holds for ``prompt``."""
        text = prompt.text
        if self.pattern is not None and not self.pattern.search(text):
            return False
        if any(c not in text for c in self.contains):
            return False
        if self.regex is not None and not self.regex.search(text):
            return False
        if self.images is not None and len(prompt.images) != self.images:
            return False
        return True


def _compile(where: str, pattern: Any) -> re.Pattern:
    if not isinstance(pattern, str):
        raise ModelError(f"{where}: expected a regular expression string, got {type(pattern).__name__}")
    try:
        return re.compile(pattern, re.S)
    except re.error as exc:
        raise ModelError(f"{where}: bad regular expression {pattern!r}: {exc}") from None


class ScriptedBackend:
    """A :class:`VideoLLM` that replays a script of recorded answers."""

    def __init__(self, script: Mapping[str, Any] | str | os.PathLike, *, model_id: str | None = None):
        source = "script"
        if isinstance(script, (str, os.PathLike)):
            source = str(script)
            script = self._read(Path(script))
        if not isinstance(script, Mapping):
            raise ModelError(f"{source}: a script must be a mapping with 'rules', got {type(script).__name__}")
        self.source = source
        self.model_id: str = model_id or str(script.get("model_id", "scripted"))
        kinds = script.get("kinds", {}) or {}
        if not isinstance(kinds, Mapping):
            raise ModelError(f"{source}: 'kinds' must map names to regular expressions")
        self.kinds = {str(k): _compile(f"{source}: kinds.{k}", v) for k, v in kinds.items()}
        raw_rules = script.get("rules")
        if not isinstance(raw_rules, list):
            raise ModelError(f"{source}: 'rules' must be a list")
        self.rules = [self._rule(i, r) for i, r in enumerate(raw_rules)]
        default = script.get("default")
        if default is not None and not isinstance(default, str):
            raise ModelError(f"{source}: 'default' must be a string answer")
        self.default: str | None = default
        dll = script.get("default_loglikelihood")
        if dll is not None and not isinstance(dll, Mapping):
            raise ModelError(f"{source}: 'default_loglikelihood' must map continuations to numbers")
        self.default_loglikelihood = {str(k).strip().lower(): float(v) for k, v in (dll or {}).items()}
        self.calls: list[dict[str, Any]] = []

    @staticmethod
    def _read(path: Path) -> Any:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"{path}: cannot read script: {exc}") from None
        try:
            if path.suffix.lower() == ".json":
                return json.loads(text)
            import yaml

            return yaml.safe_load(text)
        except Exception as exc:  # yaml and json raise different types
            raise ModelError(f"{path}: not a valid script file: {exc}") from None

    def _rule(self, i: int, r: Any) -> ScriptRule:
        where = f"{self.source}: rules[{i}]"
        if not isinstance(r, Mapping):
            raise ModelError(f"{where}: expected a mapping")
        unknown = set(r) - {"kind", "contains", "regex", "images", "answers", "loglikelihood"}
        if unknown:
            raise ModelError(f"{where}: unknown key(s) {sorted(unknown)}")
        answers = r.get("answers", [])
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise ModelError(f"{where}.answers: expected a list of strings")
        if not answers and r.get("loglikelihood") is None:
            raise ModelError(f"{where}: needs 'answers' or 'loglikelihood'")
        kind = r.get("kind")
        if kind is not None and kind not in self.kinds:
            raise ModelError(f"{where}.kind: {kind!r} is not defined under 'kinds'")
        contains = r.get("contains", [])
        if isinstance(contains, str):
            contains = [contains]
        ll = r.get("loglikelihood")
        if ll is not None and not isinstance(ll, Mapping):
            raise ModelError(f"{where}.loglikelihood: expected a mapping of continuation -> number")
        return ScriptRule(
            answers=list(answers),
            kind=kind,
            pattern=self.kinds[kind] if kind else None,
            contains=[str(c) for c in contains],
            regex=_compile(f"{where}.regex", r["regex"]) if r.get("regex") is not None else None,
            images=int(r["images"]) if r.get("images") is not None else None,
            loglikelihood={str(k).strip().lower(): float(v) for k, v in ll.items()} if ll is not None else None,
        )

    def match(self, prompt: Prompt) -> ScriptRule | None:
        """The first rule that answers ``prompt``."""
        for rule in self.rules:
            if rule.matches(prompt):
                return rule
        return None

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[str]]:
        """``params.n`` recorded answers per prompt (cycling through the rule's answers)."""
        out: list[list[str]] = []
        for p in prompts:
            rule = self.match(p)
            if rule is not None and rule.answers:
                answers = [rule.answers[i % len(rule.answers)] for i in range(params.n)]
            elif self.default is not None:
                answers = [self.default] * params.n
            else:
                raise ModelError(f"{self.source}: no rule answers the prompt {p.text[:200]!r}")
            out.append(answers)
        self.calls.append({"op": "generate", "prompts": len(prompts), "n": params.n})
        return out

    def loglikelihood(self, prompt: Prompt, continuations: Sequence[str]) -> list[float]:
        """Recorded log-probabilities of ``continuations`` (by stripped, lower-cased text)."""
        rule = self.match(prompt)
        table = rule.loglikelihood if rule is not None and rule.loglikelihood is not None else self.default_loglikelihood
        out = []
        for c in continuations:
            key = c.strip().lower()
            if key not in table:
                raise ModelError(f"{self.source}: no recorded log-likelihood of {c!r} for the prompt {prompt.text[:200]!r}")
            out.append(table[key])
        self.calls.append({"op": "loglikelihood", "continuations": len(continuations)})
        return out


def scripted_backend(model: str | os.PathLike | None = None, *, script: Mapping[str, Any] | None = None,
                     model_id: str | None = None) -> ScriptedBackend:
    """Registry factory: ``get_backend("scripted", model="answers.yaml")`` (``model`` is the script file)."""
    if (model is None) == (script is None):
        raise ModelError("the scripted backend needs exactly one of model=SCRIPT_FILE or script={...}")
    return ScriptedBackend(script if script is not None else model, model_id=model_id)
