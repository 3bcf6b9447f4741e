"""`stepkit induce --estimate`: the requests and tokens a Video-LLM induction will cost, before any model call.

Each video is split exactly as the real run splits it (clips and keyframes); then the real
parsing code runs against :class:`EstimateBackend`, a stand-in that answers every question the
way a model seeing ``objects`` objects per keyframe would (the first a person, who moves; the
others static; every pair related; every presence check passed; every cross-clip identity
confirmed), and counts what would have been sent. So the estimate follows the pipeline's own
logic (presence targets, bridging, samples, ``max_objects``) and changes with it; the only
assumption is the scene (``objects`` per keyframe, all pairs related), which makes it an upper
estimate for scenes of that size.

Prompt tokens: the text at ``chars_per_token`` characters per token plus, per image,
``ceil(h / 28) * ceil(w / 28)`` tokens (Qwen2-VL / Qwen2.5-VL: 14-pixel patches merged 2x2).
Completion tokens: at most ``max_new_tokens`` per sample (the bound a server can bill), and a
typical figure from answers of the stand-in's length.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from stepkit.models.base import Prompt, SamplingParams

_LABELS = ["person", "table", "chair", "cup", "book", "laptop", "sofa", "lamp", "shelf", "door", "box", "plant",
           "bed", "bag", "bottle", "phone"]


def image_tokens(shape: Sequence[int]) -> int:
    """Tokens one HxW image costs a Qwen2-VL-style model (28x28 pixels per token)."""
    h, w = int(shape[0]), int(shape[1])
    return max(1, math.ceil(h / 28)) * max(1, math.ceil(w / 28))


class EstimateBackend:
    """Answers like a model seeing ``objects`` objects per keyframe; counts requests and tokens."""

    model_id = "estimate"

    def __init__(self, objects: int = 4, *, chars_per_token: float = 4.0) -> None:
        self.labels = _LABELS[: max(1, min(objects, len(_LABELS)))]
        self.chars_per_token = chars_per_token
        self.requests = 0
        self.completions = 0
        self.prompt_tokens = 0
        self.completion_tokens_max = 0
        self.completion_tokens_typical = 0

    def _answer(self, text: str) -> str:
        if "List every distinct person and object" in text:
            return json.dumps({"objects": self.labels})
        if "static (it stays in place" in text:
            return json.dumps({"kind": "dynamic" if "Look at the person." in text else "static"})
        if "Give its visible attributes" in text:
            return json.dumps({"attributes": {"color": "red", "size": "small"}})
        if "How are they related in the image" in text:
            import re

            m = re.search(r"Look at the (.+?) and the (.+?)\.", text)
            return json.dumps({"subject": m.group(1), "predicate": "next to", "object": m.group(2)}) if m else "none"
        if "What did the" in text and "do between" in text:
            return json.dumps({"verb": "walk", "object": None})
        if "Answer yes or no" in text:
            return "Yes."
        return "A person stands in a room next to a table and looks at a cup on it."

    def _prompt_tokens(self, p: Prompt) -> int:
        text = p.text + (p.system or "")
        frames = list(p.images) + list(p.video or [])
        return int(len(text) / self.chars_per_token) + sum(image_tokens(f.shape) for f in frames)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[str]]:
        """One request per prompt (its ``n`` samples in that request)."""
        out = []
        for p in prompts:
            a = self._answer(p.text)
            self.requests += 1
            self.completions += params.n
            self.prompt_tokens += self._prompt_tokens(p)
            self.completion_tokens_max += params.n * params.max_new_tokens
            self.completion_tokens_typical += params.n * min(params.max_new_tokens, max(1, int(len(a) / self.chars_per_token)))
            out.append([a] * params.n)
        return out

    def loglikelihood(self, prompt: Prompt, continuations: Sequence[str]) -> list[float]:
        """The openai backend's cost: one request for the prompt, one per continuation."""
        self.requests += 1 + len(continuations)
        self.prompt_tokens += (1 + len(continuations)) * self._prompt_tokens(prompt)
        return [0.0 if c.strip().lower() in ("yes", "yes.") else -5.0 for c in continuations]

    def totals(self) -> dict[str, int]:
        """What was counted."""
        return {"requests": self.requests, "completions": self.completions, "prompt_tokens": self.prompt_tokens,
                "completion_tokens_max": self.completion_tokens_max,
                "completion_tokens_typical": self.completion_tokens_typical}


def estimate_induce(videos: str | Path, inducer: Any, *, objects: int = 4) -> dict[str, Any]:
    """Per-video and total requests and tokens ``inducer`` (a VLMInducer) would use on ``videos``."""
    from stepkit.errors import ConfigError, StepkitError
    from stepkit.induce.runner import list_videos, video_ids
    from stepkit.induce.vlm import induce_from_clips

    if getattr(inducer, "name", None) != "vlm":
        raise ConfigError("--estimate counts model requests: it applies to --backend vlm only")
    paths = list_videos(videos)
    ids = video_ids(paths)
    rows: list[dict[str, Any]] = []
    for p in paths:
        be = EstimateBackend(objects)
        try:
            info, clips = inducer.split(p)
            induce_from_clips(be, clips, video_id=ids[p], config=inducer.cfg, prompts=inducer.prompts, **info)
        except StepkitError as exc:
            rows.append({"video_id": ids[p], "path": str(p), "error": str(exc)})
            continue
        rows.append({"video_id": ids[p], "path": str(p), "clips": len(clips),
                     "keyframes": sum(len(c.keyframes) for c in clips), **be.totals()})
    ok = [r for r in rows if "error" not in r]
    keys = ("requests", "completions", "prompt_tokens", "completion_tokens_max", "completion_tokens_typical")
    total = {k: sum(r[k] for r in ok) for k in keys}
    return {"videos": len(rows), "estimated": len(ok), "objects_per_keyframe": objects, "total": total,
            "per_video_mean": {k: round(total[k] / len(ok), 1) if ok else 0.0 for k in keys},
            "per_video": rows}


def estimate_text(est: dict[str, Any]) -> str:
    """A short report of :func:`estimate_induce`."""
    t, m = est["total"], est["per_video_mean"]
    lines = [f"estimate for {est['estimated']} of {est['videos']} videos, assuming {est['objects_per_keyframe']} objects "
             "per keyframe (all pairs related, every check passed: an upper estimate for scenes that size)",
             f"  requests            {t['requests']:>12,}   ({m['requests']:,.1f} per video)",
             f"  completions         {t['completions']:>12,}   ({m['completions']:,.1f} per video)",
             f"  prompt tokens       {t['prompt_tokens']:>12,}   ({m['prompt_tokens']:,.0f} per video)",
             f"  completion tokens   {t['completion_tokens_typical']:>12,}   typical, at most "
             f"{t['completion_tokens_max']:,} (max_new_tokens per sample)"]
    for r in est["per_video"]:
        if "error" in r:
            lines.append(f"  {r['video_id']}: cannot estimate: {r['error']}")
    return "\n".join(lines) + "\n"
