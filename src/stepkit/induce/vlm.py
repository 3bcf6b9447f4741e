"""The paper's symbolic structure induction (STEP §3.1): a Video-LLM parses a video into an STSG.

Per video: visual splitting into clips with keyframes; per keyframe, incremental parsing by the
model itself (scene narrative → objects → static/dynamic → attributes → a relation per object
pair), each structured answer sampled ``n`` times with the frequency of an item as its
confidence (self-consistency) and a yes/no presence check per node and edge; then dynamic
merging (one node per entity and clip, motion edges named by the model between consecutive
keyframes), cross-clip bridging (reference edges from an identity question) and one event
description per clip. Answers the parser cannot read are counted in ``graph.meta["rejects"]``,
items dropped are counted by reason in ``graph.meta["filtered"]``; nothing a model says crashes it.

>>> from stepkit.models.scripted import ScriptedBackend
>>> import numpy as np
>>> be = ScriptedBackend({"rules": [], "default": "no"})
>>> clips = [(0.0, 1.0, [(0.5, np.zeros((8, 8, 3), np.uint8))])]
>>> g = induce_from_clips(be, clips, video_id="v", fps=10, duration=1.0, config=VLMInducerConfig(samples=2))
>>> len(g.objects), g.meta["rejects"]["objects/no_json"]
(0, 2)
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from stepkit.errors import ConfigError, ModelError
from stepkit.graph.types import STSG, Action, Attribute, Clip, Object, Reference, Relation
from stepkit.induce.vlm_config import EXECUTION_FIELDS, VLMInducerConfig
from stepkit.induce.vlm_parse import (
    Reject,
    clean_sentence,
    extract_json,
    is_no_motion,
    is_none_word,
    lower_keys,
    normalize_label,
    normalize_phrase,
    parse_yes_no,
)
from stepkit.induce.vlm_prompts import PromptSet
from stepkit.models.base import Prompt, SamplingParams, VideoLLM

# Backend options that change how requests travel, not what comes back (and secrets): not part of
# the resume key, never written to a summary.
_EXECUTION_OPTIONS = frozenset({"api_key", "concurrency", "timeout_s", "max_retries", "backoff_s", "max_backoff_s", "sleep"})

__all__ = ["ClipFrames", "Keyframe", "VLMInducer", "VLMInducerConfig", "induce_from_clips"]

@dataclass
class Keyframe:
    """One keyframe: its time (s), the HxWx3 uint8 image and, where known, its frame index."""

    t: float
    image: np.ndarray
    frame: int | None = None


@dataclass
class ClipFrames:
    """A clip ``[t0, t1]`` (seconds) and its keyframes in time order."""

    t0: float
    t1: float
    keyframes: list[Keyframe] = field(default_factory=list)


def as_clip_frames(clips: Iterable[Any]) -> list[ClipFrames]:
    """Accept ``ClipFrames`` or ``(t0, t1, [(t, image) | (t, image, frame) | Keyframe, ...])`` tuples."""
    out: list[ClipFrames] = []
    for i, c in enumerate(clips):
        if isinstance(c, ClipFrames):
            out.append(ClipFrames(float(c.t0), float(c.t1), sorted(c.keyframes, key=lambda k: k.t)))
            continue
        try:
            t0, t1, kfs = c
            keys = []
            for k in kfs:
                if isinstance(k, Keyframe):
                    keys.append(k)
                else:
                    keys.append(Keyframe(float(k[0]), np.asarray(k[1]), int(k[2]) if len(k) > 2 and k[2] is not None else None))
            out.append(ClipFrames(float(t0), float(t1), sorted(keys, key=lambda k: k.t)))
        except (TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"clip {i}: expected (t0, t1, [(t, image), ...]): {exc}") from None
    for i, c in enumerate(out):
        # Decoded frame times may stray a little from clip bounds computed from frame indices: clamp.
        if not c.t0 <= c.t1 or any(not c.t0 - _KEYFRAME_SLACK <= k.t <= c.t1 + _KEYFRAME_SLACK for k in c.keyframes):
            raise ConfigError(f"clip {i} [{c.t0}, {c.t1}]: ends before it starts or has keyframes outside it "
                              f"({[k.t for k in c.keyframes]})")
        c.keyframes = [Keyframe(min(max(k.t, c.t0), c.t1), k.image, k.frame) for k in c.keyframes]
    return out


_KEYFRAME_SLACK = 0.25  # seconds


def _fmt_t(t: float) -> str:
    return f"{t:.2f}"


def _article(label: str) -> str:
    return ("an " if label[:1] in "aeiou" else "a ") + label


def _r(t: float) -> float:
    return round(float(t), 6)


class _Stats:
    """Counters that end up in ``graph.meta``."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.filtered: dict[str, Counter[str]] = defaultdict(Counter)

    def reject(self, kind: str, reason: str, n: int = 1) -> None:
        self.rejects[f"{kind}/{reason}"] += n

    def drop(self, reason: str, what: str, n: int = 1) -> None:
        if n:
            self.filtered[reason][what] += n

    def meta(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "rejects": dict(sorted(self.rejects.items())),
            "rejects_total": sum(self.rejects.values()),
            "filtered": {k: dict(sorted(v.items())) for k, v in sorted(self.filtered.items())},
        }


class _Asker:
    """Sends prompts to the backend in batches, counting calls; all answers come back as text."""

    def __init__(self, backend: VideoLLM, cfg: VLMInducerConfig, prompts: PromptSet, stats: _Stats):
        self.backend, self.cfg, self.ps, self.stats = backend, cfg, prompts, stats
        self.system = prompts.render("system") if cfg.system_prompt else None
        self.sample = SamplingParams(n=cfg.samples, temperature=float(cfg.temperature), top_p=float(cfg.top_p),
                                     max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
        self.text = SamplingParams(n=1, temperature=0.0, max_new_tokens=cfg.text_max_new_tokens, seed=cfg.seed)
        self.yes_no = SamplingParams(n=1, temperature=0.0, max_new_tokens=cfg.yes_no_max_new_tokens, seed=cfg.seed)
        self.yes_no_samples = SamplingParams(n=cfg.samples, temperature=float(cfg.temperature), top_p=float(cfg.top_p),
                                             max_new_tokens=cfg.yes_no_max_new_tokens, seed=cfg.seed)

    def prompt(self, text: str, images: Sequence[np.ndarray]) -> Prompt:
        return Prompt(text=text, images=list(images), system=self.system)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[str]]:
        out: list[list[str]] = []
        # A served model runs many requests at once: hand it the whole stage (up to its request
        # pool) rather than batch_size prompts at a time. "generate" still counts batch_size
        # batches, so graph metadata does not depend on the backend's concurrency.
        bs = self.cfg.batch_size
        step = bs * max(1, -(-int(getattr(self.backend, "concurrency", 1) or 1) // bs))  # a multiple of bs
        for i in range(0, len(prompts), step):
            chunk = list(prompts[i : i + step])
            got = self.backend.generate(chunk, params)
            self.stats.calls["generate"] += -(-len(chunk) // self.cfg.batch_size)
            self.stats.calls["prompts"] += len(chunk)
            if not isinstance(got, list) or len(got) != len(chunk):
                raise ModelError(f"model {getattr(self.backend, 'model_id', '?')}: generate returned "
                                 f"{len(got) if isinstance(got, list) else type(got).__name__} answers for {len(chunk)} prompts")
            for answers in got:
                answers = list(answers)[: params.n]
                self.stats.calls["completions"] += len(answers)
                out.append([a if isinstance(a, str) else "" for a in answers] + [""] * (params.n - len(answers)))
        return out

    def samples(self, prompts: Sequence[Prompt]) -> list[list[str]]:
        """``n`` sampled answers per prompt (self-consistency)."""
        return self.generate(prompts, self.sample)

    def texts(self, prompts: Sequence[Prompt]) -> list[str]:
        """One greedy free-text answer per prompt."""
        return [a[0] for a in self.generate(prompts, self.text)]

    def presence(self, kind: str, prompts: Sequence[Prompt]) -> list[bool]:
        """The presence check: keep (True) or drop per prompt, by the configured mode."""
        if not prompts:
            return []
        keep: list[bool] = []
        if self.cfg.presence == "loglikelihood":
            for p in prompts:
                yes, no = self.backend.loglikelihood(p, [self.cfg.presence_yes, self.cfg.presence_no])
                self.stats.calls["loglikelihood"] += 1
                if not (math.isfinite(yes) and math.isfinite(no)):
                    self.stats.reject(kind, "non_finite_loglikelihood")
                    keep.append(self.cfg.keep_unsure)
                else:
                    keep.append(yes - no > self.cfg.presence_margin)
            return keep
        for (answer,) in self.generate(prompts, self.yes_no):
            try:
                keep.append(parse_yes_no(answer))
            except Reject as r:
                self.stats.reject(kind, r.reason)
                keep.append(self.cfg.keep_unsure)
        return keep


# --- answer readers: text -> value, or Reject ----------------------------------------------------

def _read_objects(text: str) -> list[str]:
    value = extract_json(text)
    if isinstance(value, dict):
        d = lower_keys(value)
        if set(d) != {"objects"}:
            raise Reject("wrong_keys", ",".join(map(str, d)))
        value = d["objects"]
    if not isinstance(value, list):
        raise Reject("wrong_type", type(value).__name__)
    labels: list[str] = []
    for item in value:
        if isinstance(item, dict):
            item = lower_keys(item).get("name", lower_keys(item).get("label"))
        lab = normalize_label(item)
        if lab not in labels:
            labels.append(lab)
    return labels


def _read_kind(text: str) -> str:
    d = extract_json(text, dict)
    d = lower_keys(d)
    if set(d) != {"kind"}:
        raise Reject("wrong_keys", ",".join(map(str, d)))
    v = normalize_phrase(d["kind"])
    if v not in ("static", "dynamic"):
        raise Reject("bad_value", v)
    return v


def _read_attributes(text: str, names: Sequence[str], stats: _Stats) -> dict[str, str]:
    d = lower_keys(extract_json(text, dict))
    if set(d) == {"attributes"}:
        d = d["attributes"]
        if not isinstance(d, dict):
            raise Reject("wrong_type", type(d).__name__)
        d = lower_keys(d)
    elif not d or not set(d) <= set(names):
        raise Reject("wrong_keys", ",".join(map(str, d)))
    out: dict[str, str] = {}
    for name, value in d.items():
        if name not in names:
            stats.drop("unknown_attribute", "attributes")
            continue
        if value is None:
            continue
        v = normalize_phrase(value, max_words=3)
        if not is_none_word(v):
            out[name] = v
    return out


def _read_relation(text: str, a: str, b: str) -> list[tuple[str, str, str]]:
    """Triples (subject, predicate, object) over {a, b}; [] for "not related"."""
    value = extract_json(text)
    items: list[Any]
    if isinstance(value, dict) and set(lower_keys(value)) == {"relations"}:
        items = lower_keys(value)["relations"]
        if not isinstance(items, list):
            raise Reject("wrong_type", type(items).__name__)
    elif isinstance(value, list):
        items = value
    else:
        items = [value]
    out: list[tuple[str, str, str]] = []
    for item in items:
        if not isinstance(item, dict):
            raise Reject("wrong_type", type(item).__name__)
        d = lower_keys(item)
        if set(d) == {"predicate"}:
            if is_none_word(normalize_phrase(d["predicate"]) if d["predicate"] is not None else None):
                continue
            raise Reject("wrong_keys", "predicate")
        if set(d) != {"subject", "predicate", "object"}:
            raise Reject("wrong_keys", ",".join(map(str, d)))
        pred = normalize_phrase(d["predicate"]) if d["predicate"] is not None else None
        if is_none_word(pred):
            continue
        s, o = normalize_label(d["subject"]), normalize_label(d["object"])
        if {s, o} != {a, b}:
            raise Reject("wrong_objects", f"{s}/{o}")
        triple = (s, pred, o)
        if triple not in out:
            out.append(triple)
    return out


def _read_motion(text: str) -> tuple[str, str | None] | None:
    """(verb, object label or None), or None for "did not move"."""
    d = lower_keys(extract_json(text, dict))
    if not d or not set(d) <= {"verb", "object"} or "verb" not in d:
        raise Reject("wrong_keys", ",".join(map(str, d)))
    verb = normalize_phrase(d["verb"]) if d["verb"] is not None else None
    if is_no_motion(verb):
        return None
    obj = d.get("object")
    if obj is None or (isinstance(obj, str) and is_none_word(obj.strip().lower())):
        return verb, None
    return verb, normalize_label(obj)


# --- the per-video run ----------------------------------------------------------------------------

@dataclass
class _KF:
    """Parse state of one keyframe."""

    clip: int
    index: int  # position in its clip
    t: float
    image: np.ndarray
    narrative: str = ""
    objects: dict[str, float] = field(default_factory=dict)  # label -> confidence, kept order
    kinds: dict[str, Counter] = field(default_factory=dict)
    attributes: dict[str, dict[str, tuple[str, float]]] = field(default_factory=dict)  # label -> name -> (value, conf)
    relations: dict[tuple[str, str, str], float] = field(default_factory=dict)


class _Run:
    def __init__(self, backend: VideoLLM, cfg: VLMInducerConfig, prompts: PromptSet):
        self.cfg, self.ps = cfg, prompts
        self.stats = _Stats()
        self.ask = _Asker(backend, cfg, prompts, self.stats)
        self.check = set(cfg.presence_targets) if cfg.presence != "off" else set()

    # consistency: count each item once per sample; confidence = count / n
    def _vote(self, answers: list[str], read, kind: str) -> tuple[Counter, list, int]:
        counts: Counter = Counter()
        order: list = []
        for a in answers:
            try:
                items = read(a)
            except Reject as r:
                self.stats.reject(kind, r.reason)
                continue
            for it in dict.fromkeys(items):
                counts[it] += 1
                if it not in order:
                    order.append(it)
        return counts, order, len(answers)

    def run(self, clips: list[ClipFrames]) -> tuple[list[Clip], list[Object], list[Relation], list[Action], list[Reference]]:
        cfg = self.cfg
        kfs: list[list[_KF]] = [
            [_KF(ci, ki, float(k.t), self._image(k.image)) for ki, k in enumerate(c.keyframes)] for ci, c in enumerate(clips)
        ]
        flat = [k for ks in kfs for k in ks]
        self._narratives(flat)
        self._objects(flat)
        self._kinds(flat)
        if cfg.attributes:
            self._attributes(flat)
        if cfg.relations:
            self._relations(flat)
        clip_objs = [Clip(id=f"c{ci + 1}", t0=_r(c.t0), t1=_r(c.t1), keyframes=[_r(k.t) for k in c.keyframes])
                     for ci, c in enumerate(clips)]
        if cfg.events:
            self._events(clips, kfs, clip_objs)
        return self._merge(clips, kfs, clip_objs)

    def _image(self, img: np.ndarray) -> np.ndarray:
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise ConfigError(f"keyframe image must be HxWx3, got shape {img.shape}")
        img = np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)
        size = self.cfg.image_size
        if size and max(img.shape[:2]) > size:
            from PIL import Image

            h, w = img.shape[:2]
            scale = size / max(h, w)
            img = np.asarray(Image.fromarray(img).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR))
        return img

    # --- incremental parsing, one step for all keyframes at a time (batches across keyframes) ---
    def _narratives(self, flat: list[_KF]) -> None:
        if not self.cfg.narrative:
            return
        answers = self.ask.texts([self.ask.prompt(self.ps.render("narrative", time=_fmt_t(k.t)), [k.image]) for k in flat])
        for k, a in zip(flat, answers):
            try:
                k.narrative = clean_sentence(a)
            except Reject as r:
                self.stats.reject("narrative", r.reason)

    def _objects(self, flat: list[_KF]) -> None:
        cfg = self.cfg
        prompts = [self.ask.prompt(self.ps.render("objects", time=_fmt_t(k.t), narrative=k.narrative or "(none)"), [k.image])
                   for k in flat]
        for k, answers in zip(flat, self.ask.samples(prompts)):
            counts, order, n = self._vote(answers, _read_objects, "objects")
            kept = [lab for lab in order if counts[lab] / n >= cfg.threshold]
            self.stats.drop("consistency", "objects", len(order) - len(kept))
            kept.sort(key=lambda lab: -counts[lab])  # stable: ties keep first-seen order
            self.stats.drop("max_objects", "objects", max(0, len(kept) - cfg.max_objects))
            k.objects = {lab: counts[lab] / n for lab in kept[: cfg.max_objects]}
        if "objects" in self.check:
            items = [(k, lab) for k in flat for lab in k.objects]
            keep = self.ask.presence("presence_object", [
                self.ask.prompt(self.ps.render("presence_object", time=_fmt_t(k.t), phrase=_article(lab)), [k.image]) for k, lab in items])
            for (k, lab), ok in zip(items, keep):
                if not ok:
                    del k.objects[lab]
                    self.stats.drop("presence", "objects")

    def _kinds(self, flat: list[_KF]) -> None:
        items = [(k, lab) for k in flat for lab in k.objects]
        prompts = [self.ask.prompt(self.ps.render("kind", time=_fmt_t(k.t), object=lab), [k.image]) for k, lab in items]
        for (k, lab), answers in zip(items, self.ask.samples(prompts)):
            counts, _, _ = self._vote(answers, lambda a: [_read_kind(a)], "kind")
            k.kinds[lab] = counts

    def _attributes(self, flat: list[_KF]) -> None:
        cfg = self.cfg
        names = ", ".join(cfg.attribute_names)
        items = [(k, lab) for k in flat for lab in k.objects]
        prompts = [self.ask.prompt(self.ps.render("attributes", time=_fmt_t(k.t), object=lab, attribute_names=names), [k.image])
                   for k, lab in items]
        for (k, lab), answers in zip(items, self.ask.samples(prompts)):
            counts, order, n = self._vote(
                answers, lambda a: list(_read_attributes(a, cfg.attribute_names, self.stats).items()), "attributes")
            best: dict[str, tuple[str, float]] = {}
            for name, value in order:
                conf = counts[(name, value)] / n
                if conf < cfg.threshold:
                    self.stats.drop("consistency", "attributes")
                elif name in best:
                    self.stats.drop("conflict", "attributes")
                    if conf > best[name][1]:
                        best[name] = (value, conf)
                else:
                    best[name] = (value, conf)
            k.attributes[lab] = best
        if "attributes" in self.check:
            checks = [(k, lab, name, v) for k in flat for lab, attrs in k.attributes.items() for name, (v, _) in attrs.items()]
            keep = self.ask.presence("presence_attribute", [
                self.ask.prompt(self.ps.render("presence_attribute", time=_fmt_t(k.t), name=name, object=lab, value=v), [k.image])
                for k, lab, name, v in checks])
            for (k, lab, name, _), ok in zip(checks, keep):
                if not ok:
                    del k.attributes[lab][name]
                    self.stats.drop("presence", "attributes")

    def _relations(self, flat: list[_KF]) -> None:
        cfg = self.cfg
        items = []
        for k in flat:
            labels = list(k.objects)
            items += [(k, labels[i], labels[j]) for i in range(len(labels)) for j in range(i + 1, len(labels))]
        prompts = [self.ask.prompt(self.ps.render("relation", time=_fmt_t(k.t), a=a, b=b), [k.image]) for k, a, b in items]
        for (k, a, b), answers in zip(items, self.ask.samples(prompts)):
            counts, order, n = self._vote(answers, lambda text: _read_relation(text, a, b), "relation")
            for triple in order:
                conf = counts[triple] / n
                if conf >= cfg.threshold:
                    k.relations[triple] = conf
                else:
                    self.stats.drop("consistency", "relations")
        if "relations" in self.check:
            checks = [(k, tr) for k in flat for tr in k.relations]
            keep = self.ask.presence("presence_relation", [
                self.ask.prompt(self.ps.render("presence_relation", time=_fmt_t(k.t), subject=s, predicate=p, object=o), [k.image])
                for k, (s, p, o) in checks])
            for (k, tr), ok in zip(checks, keep):
                if not ok:
                    del k.relations[tr]
                    self.stats.drop("presence", "relations")

    def _events(self, clips: list[ClipFrames], kfs: list[list[_KF]], out: list[Clip]) -> None:
        idx = [ci for ci, ks in enumerate(kfs) if ks]
        prompts = [self.ask.prompt(self.ps.render("event", count=len(kfs[ci]), t0=_fmt_t(clips[ci].t0), t1=_fmt_t(clips[ci].t1)),
                                   [k.image for k in kfs[ci]]) for ci in idx]
        for ci, a in zip(idx, self.ask.texts(prompts)):
            try:
                out[ci].description = clean_sentence(a)
            except Reject as r:
                self.stats.reject("event", r.reason)

    # --- dynamic merging and cross-clip bridging -------------------------------------------
    def _merge(self, clips: list[ClipFrames], kfs: list[list[_KF]], clip_objs: list[Clip]):
        cfg = self.cfg
        objects: list[Object] = []
        relations: list[Relation] = []
        actions: list[Action] = []
        node: dict[tuple[int, str], Object] = {}
        seen_at: dict[tuple[int, str], list[int]] = {}

        def seg(ci: int, i: int, j: int) -> tuple[float, float]:
            ks, c = kfs[ci], clips[ci]
            t0 = c.t0 if i == 0 else (ks[i - 1].t + ks[i].t) / 2
            t1 = c.t1 if j == len(ks) - 1 else (ks[j].t + ks[j + 1].t) / 2
            return _r(t0), _r(t1)

        def runs(indices: list[int]) -> list[tuple[int, int]]:
            out: list[tuple[int, int]] = []
            for i in sorted(indices):
                if out and out[-1][1] == i - 1:
                    out[-1] = (out[-1][0], i)
                else:
                    out.append((i, i))
            return out

        for ci, ks in enumerate(kfs):
            labels: list[str] = []
            for k in ks:
                labels += [lab for lab in k.objects if lab not in labels]
            for lab in labels:
                at = [k.index for k in ks if lab in k.objects]
                votes: Counter = Counter()
                for k in ks:
                    votes.update(k.kinds.get(lab, Counter()))
                kind = "static" if votes["static"] > votes["dynamic"] else "dynamic"
                conf = sum(ks[i].objects[lab] for i in at) / len(at)
                o = Object(id=f"o{len(objects) + 1}", label=lab, kind=kind, clip=clip_objs[ci].id, confidence=_r(conf))
                attr_at: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
                for i in at:
                    for name, (v, c) in ks[i].attributes.get(lab, {}).items():
                        attr_at[(name, v)][i] = c
                for (name, v), where in attr_at.items():
                    for i, j in runs(list(where)):
                        t0, t1 = seg(ci, i, j)
                        o.attributes.append(Attribute(name=name, value=v, t0=t0, t1=t1))
                objects.append(o)
                node[(ci, lab)] = o
                seen_at[(ci, lab)] = at
            rel_at: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
            for k in ks:
                for tr, c in k.relations.items():
                    rel_at[tr][k.index] = c
            for (s, p, o_), where in rel_at.items():
                for i, j in runs(list(where)):
                    t0, t1 = seg(ci, i, j)
                    conf = sum(where[x] for x in range(i, j + 1)) / (j - i + 1)
                    relations.append(Relation(id=f"r{len(relations) + 1}", subject=node[(ci, s)].id, predicate=p,
                                              object=node[(ci, o_)].id, t0=t0, t1=t1, confidence=_r(conf)))
        if cfg.motions:
            actions = self._motions(kfs, node, seen_at)
        references = self._bridge(kfs, node, seen_at) if cfg.bridging else []
        return clip_objs, objects, relations, actions, references

    def _motions(self, kfs: list[list[_KF]], node: dict, seen_at: dict) -> list[Action]:
        cfg = self.cfg
        items = []  # (clip, label, i) for a dynamic node seen at keyframes i and i + 1
        for (ci, lab), o in node.items():
            if o.kind != "dynamic":
                continue
            at = set(seen_at[(ci, lab)])
            items += [(ci, lab, i) for i in sorted(at) if i + 1 in at]
        prompts = []
        for ci, lab, i in items:
            a, b = kfs[ci][i], kfs[ci][i + 1]
            others = [x for x in dict.fromkeys([*a.objects, *b.objects]) if x != lab]
            prompts.append(self.ask.prompt(
                self.ps.render("motion", t0=_fmt_t(a.t), t1=_fmt_t(b.t), object=lab, others=", ".join(others) or "(none)"),
                [a.image, b.image]))
        found: list[tuple[int, str, int, str, str | None, float]] = []
        for (ci, lab, i), answers in zip(items, self.ask.samples(prompts)):
            a, b = kfs[ci][i], kfs[ci][i + 1]
            present = set(a.objects) | set(b.objects)

            def read(text: str):
                m = _read_motion(text)
                if m is None:
                    return [None]
                verb, obj = m
                if obj is not None and (obj not in present or obj == lab):
                    self.stats.drop("unknown_object", "motions")
                    obj = None
                return [(verb, obj)]

            counts, order, n = self._vote(answers, read, "motion")
            best = max((x for x in order if x is not None), key=lambda x: counts[x], default=None)
            for x in order:
                if x is not None and x != best:
                    self.stats.drop("consistency", "motions")
            if best is None:
                continue
            if counts[best] / n < cfg.threshold or counts[best] < counts[None]:
                self.stats.drop("consistency", "motions")
                continue
            found.append((ci, lab, i, best[0], best[1], counts[best] / n))
        if "motions" in self.check:
            keep = self.ask.presence("presence_motion", [
                self.ask.prompt(self.ps.render("presence_motion", t0=_fmt_t(kfs[ci][i].t), t1=_fmt_t(kfs[ci][i + 1].t), agent=lab,
                                               verb=verb, object_phrase=f" the {obj}" if obj else ""),
                                [kfs[ci][i].image, kfs[ci][i + 1].image])
                for ci, lab, i, verb, obj, _ in found])
            self.stats.drop("presence", "motions", keep.count(False))
            found = [f for f, ok in zip(found, keep) if ok]
        # Consecutive keyframe steps with the same motion become one action.
        actions: list[Action] = []
        last: dict[tuple[int, str], tuple[int, Action, list[float]]] = {}
        for ci, lab, i, verb, obj, conf in found:
            key = (ci, lab)
            obj_id = node[(ci, obj)].id if obj else None
            prev = last.get(key)
            if prev and prev[0] == i - 1 and prev[1].verb == verb and prev[1].object == obj_id:
                prev[1].t1 = _r(kfs[ci][i + 1].t)
                prev[2].append(conf)
                prev[1].confidence = _r(sum(prev[2]) / len(prev[2]))
                last[key] = (i, prev[1], prev[2])
                continue
            act = Action(id=f"a{len(actions) + 1}", agent=node[key].id, verb=verb, t0=_r(kfs[ci][i].t),
                         t1=_r(kfs[ci][i + 1].t), object=obj_id, confidence=_r(conf))
            actions.append(act)
            last[key] = (i, act, [conf])
        return actions

    def _bridge(self, kfs: list[list[_KF]], node: dict, seen_at: dict) -> list[Reference]:
        cfg = self.cfg
        keys = list(node)
        pairs = [(u, v) for x, u in enumerate(keys) for v in keys[x + 1:]
                 if u[0] < v[0] and (cfg.bridge_any_label or u[1] == v[1])]
        prompts = []
        for (cu, lu), (cv, lv) in pairs:
            a = kfs[cu][seen_at[(cu, lu)][-1]]  # the last sighting in the earlier clip ...
            b = kfs[cv][seen_at[(cv, lv)][0]]  # ... and the first in the later one
            label = lu if lu == lv else f"{lu} / {lv}"
            prompts.append(self.ask.prompt(self.ps.render("identity", t0=_fmt_t(a.t), t1=_fmt_t(b.t), label=label),
                                           [a.image, b.image]))
        refs: list[Reference] = []
        for (u, v), answers in zip(pairs, self.ask.generate(prompts, self.ask.yes_no_samples)):
            yes = 0
            for ans in answers:
                try:
                    yes += parse_yes_no(ans)
                except Reject as r:
                    self.stats.reject("identity", r.reason)
            conf = yes / len(answers)
            if conf >= cfg.identity_threshold:
                refs.append(Reference(id=f"x{len(refs) + 1}", a=node[u].id, b=node[v].id, confidence=_r(conf)))
            elif yes:
                self.stats.drop("consistency", "references")
        return refs


def induce_from_clips(backend: VideoLLM, clips: Iterable[Any], *, video_id: str, fps: float, duration: float,
                      config: VLMInducerConfig | None = None, prompts: PromptSet | None = None,
                      num_frames: int | None = None, width: int | None = None, height: int | None = None,
                      video: str | None = None) -> STSG:
    """The STSG a Video-LLM ``backend`` parses from already split ``clips`` (the core of the inducer)."""
    cfg = config or VLMInducerConfig()
    ps = prompts or PromptSet.load(cfg.prompts)
    clip_list = as_clip_frames(clips)
    if cfg.max_clips is not None:
        clip_list = clip_list[: cfg.max_clips]
    from stepkit.models.usage import metering

    run = _Run(backend, cfg, ps)
    with metering() as meter:  # this video's own calls, even while other videos share the backend
        clip_objs, objects, relations, actions, references = run.run(clip_list)
    if hasattr(backend, "hits") and hasattr(backend, "misses"):  # a response cache: what it answered itself
        run.stats.calls["cache_hits"] = meter.cache_hits
        run.stats.calls["cache_misses"] = meter.cache_misses
    meta = {
        "inducer": "vlm",
        "model": str(getattr(backend, "model_id", type(backend).__name__)),
        "prompts": ps.version,
        "prompts_digest": ps.digest(),
        "config": {k: v for k, v in cfg.to_dict().items() if k not in EXECUTION_FIELDS},
        **run.stats.meta(),
    }
    return STSG(video_id=video_id, fps=float(fps), duration=float(duration), num_frames=num_frames, width=width,
                height=height, video=video, objects=objects, relations=relations, actions=actions,
                references=references, clips=clip_objs, meta=meta)


class VLMInducer:
    """Raw video → STSG with a Video-LLM (``stepkit induce --backend vlm``).

    ``backend`` is a model backend name of :mod:`stepkit.models` (``hf``, ``openai``, ``tiny``,
    ``scripted``) or a ready :class:`VideoLLM`; when unset it is ``openai`` with ``endpoint`` and
    ``hf`` with ``model``. ``config`` is a :class:`VLMInducerConfig`, a mapping or a YAML file;
    further keyword options override its fields. ``backend_options`` go to the backend factory.
    """

    name = "vlm"

    def __init__(self, backend: str | VideoLLM | None = None, model: str | None = None, endpoint: str | None = None,
                 config: VLMInducerConfig | Mapping[str, Any] | str | os.PathLike | None = None,
                 backend_options: Mapping[str, Any] | None = None, **options: Any):
        self.cfg = self._config(config, options)
        self.prompts = PromptSet.load(self.cfg.prompts)
        self.model, self.endpoint = model, endpoint
        self.backend_options = dict(backend_options or {})
        if backend is None:
            if endpoint:
                backend = "openai"
            elif model:
                backend = "hf"
            else:
                raise ConfigError("vlm inducer: give --model PATH_OR_ID (local checkpoint) or --endpoint URL (served model)")
        self._backend_error: Exception | None = None
        self._build_lock = threading.Lock()
        if isinstance(endpoint, (list, tuple)):
            self.endpoint = list(endpoint) if len(endpoint) > 1 else (endpoint[0] if endpoint else None)
        if backend == "openai" or (backend is None and endpoint):
            from stepkit.models.openai_compat import endpoint_list

            # An endpoint that cannot be a server URL (ftp://x) fails here, once, before any video.
            endpoint_list(self.endpoint if self.endpoint else self.backend_options.get("endpoint") or [])
        if isinstance(backend, str):
            self.backend_name, self._backend = backend, None
            if backend == "hf" and model and str(model).startswith(("/", ".", "~")) and not Path(model).expanduser().exists():
                raise ModelError(f"--model {model}: no such checkpoint folder")
        elif isinstance(backend, VideoLLM):
            self.backend_name, self._backend = type(backend).__name__, backend
            self.model = self.model or str(backend.model_id)
            if self.cfg.cache and not hasattr(backend, "cache"):
                from stepkit.models.cache import CachedBackend

                self._backend = CachedBackend(backend, self.cfg.cache)
        else:
            raise ConfigError(f"vlm inducer: backend must be a name or a VideoLLM, got {type(backend).__name__}")

    @staticmethod
    def _config(config: Any, options: Mapping[str, Any]) -> VLMInducerConfig:
        if isinstance(config, VLMInducerConfig):
            base = config.to_dict()
        elif config is None:
            base = {}
        elif isinstance(config, Mapping):
            base = dict(config)
        elif isinstance(config, (str, os.PathLike)):
            import yaml

            path = Path(config)
            try:
                base = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read vlm config: {exc}") from None
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: invalid YAML: {exc}") from None
            if not isinstance(base, dict):
                raise ConfigError(f"{path}: expected a mapping of vlm options")
        else:
            raise ConfigError(f"vlm inducer: config must be a VLMInducerConfig, mapping or file, got {type(config).__name__}")
        base.update(options)
        return VLMInducerConfig.from_mapping(base)

    @property
    def backend(self) -> VideoLLM:
        """The model backend (built on first use; wrapped in the response cache when configured)."""
        if self._backend_error is not None:  # fail every later video at once, not by reloading
            raise self._backend_error
        if self._backend is None:
            with self._build_lock:
                if self._backend_error is not None:
                    raise self._backend_error
                if self._backend is None:
                    try:
                        self._backend = self._build_backend()
                    except TypeError as exc:  # a backend factory refusing an option name
                        self._backend_error = ConfigError(
                            f"model backend {self.backend_name!r} rejects its options "
                            f"{sorted(self.backend_options) + [k for k in ('model', 'endpoint') if getattr(self, k)]}: {exc}")
                        raise self._backend_error from None
                    except Exception as exc:
                        self._backend_error = exc
                        raise
        return self._backend

    def prepare(self) -> None:
        """Build the backend now (the runner calls this once before the first video to induce)."""
        self.backend  # noqa: B018 - builds it, raising a StepkitError for a bad model or endpoint

    @property
    def parallel_videos(self) -> int:
        """How many videos may be induced at once: ``videos_in_flight`` for a served model, else 1."""
        be = self._backend
        if be is None or int(getattr(be, "concurrency", 1) or 1) <= 1:
            return 1
        return self.cfg.videos_in_flight or self.cfg.in_flight

    def saturated(self) -> bool:
        """Whether every request slot of the backend is busy (then the runner opens no new video)."""
        fn = getattr(self._backend, "saturated", None)
        return bool(fn()) if callable(fn) else False

    def _build_backend(self) -> VideoLLM:
        """The backend by name through the models registry, in the response cache when configured."""
        from stepkit.models import available_backends, get_backend

        opts = dict(self.backend_options)
        if self.model is not None:
            opts.setdefault("model", self.model)
        if self.endpoint is not None:
            opts.setdefault("endpoint", self.endpoint)
        if self.backend_name == "openai":
            opts.setdefault("concurrency", self.cfg.in_flight)
        if self.backend_name == "scripted" and "scripted" not in available_backends():
            from stepkit.models.scripted import scripted_backend

            be: VideoLLM = scripted_backend(**opts)
            if self.cfg.cache:
                from stepkit.models.cache import CachedBackend

                be = CachedBackend(be, self.cfg.cache)
            return be
        return get_backend(self.backend_name, cache=self.cfg.cache, **opts)

    def config(self) -> dict[str, Any]:
        """Settings that shape the output (saved in summaries; part of the resume key)."""
        cfg = self.cfg.to_dict()
        for name in EXECUTION_FIELDS:  # where answers are cached, how many run at once: same answers
            cfg.pop(name)
        return {"backend": self.backend_name, "model": self.model, "endpoint": self.endpoint,
                "backend_options": {k: v for k, v in sorted(self.backend_options.items())
                                    if k not in _EXECUTION_OPTIONS},
                "prompts_digest": self.prompts.digest(), **cfg}

    def split(self, video: Path) -> tuple[dict[str, Any], list[ClipFrames]]:
        """Visual splitting: video facts (fps, duration, frames, size) and clips with keyframes."""
        from stepkit.induce.vlm_video import split_video

        return split_video(video, self.cfg)

    def induce(self, video: Path, video_id: str) -> STSG:
        """The STSG of ``video``; raises a StepkitError for unreadable input."""
        info, clips = self.split(Path(video))
        return induce_from_clips(self.backend, clips, video_id=video_id, config=self.cfg, prompts=self.prompts,
                                 video=str(video), **info)
