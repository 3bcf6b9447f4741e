"""Dense perception targets from scene graphs: the stage that teaches a Video-LLM to look.

A model trained from scratch on multi-step questions learns what the *wording* makes likely, not
what the video shows (see docs/replication-notes.md). This module turns each graph into many
one-step records whose answers can only come from the pixels of a short window, so that most of
the loss of a perception stage flows through the vision tower:

- ``describe``: a clip's description (objects, colours, actions, in the clip's window);
- ``objects``: the objects in view at a moment, left to right, each named with its colour or
  material (a window of ``moment`` seconds around a random time inside a clip);
- ``colour``: the colour of one object at a moment, with options drawn from the colours that
  label takes across the whole set (so the label alone gives the answer away less);
- ``exists``: whether a label is in the video, with as many "no" as "yes" answers *per label*
  over the set (the text of the question alone gives nothing away);
- ``left-right``: which of two objects in view is further left at a moment (option order random);
- ``contents`` / ``colours``: what kinds of objects / which colours the whole video shows, as a
  sorted list: captions whose every word follows from the frames alone, for a first language stage
  on a pretrained vision tower (``stepkit pretrain-vision``), as LLaVA's first stage trains on captions;
- ``object-colours``: each kind of object with its colour(s), in label order ("book: red. cup: blue
  and green."): a caption in which every colour comes *after* the object it belongs to, so that
  predicting it binds a colour to a named object, as "What colour is the book?" needs (in
  ``contents`` and ``colours`` nothing ties the two);
- ``actions``: every action of the video in time order, phrased as the generated questions phrase
  them ("walk to the table, pick up the pillow, ..."): the dense target for "which action came
  second?" (each action lasts about a second, so it is seen only with frames a second or so apart);
- ``relation``: a relation that holds at a moment between two objects in view, asked for its object
  ("What is the book on?"), its subject ("Which object is on the table?") or its predicate, with
  the other objects in view (or the other predicates) as options: the dense target for the
  relation questions, as ``colour`` is for the attribute ones.

Records are ordinary :class:`~stepkit.data.record.QRARecord` lines (``steps`` 1, ``type``
``perception-*``), trained with ``stepkit train --samples answer``; ``stepkit perception`` writes
them (``qa.jsonl`` + ``summary.json``). Same graphs and seed give byte-identical output.
"""

from __future__ import annotations

import os
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from stepkit.data.record import QRARecord, load_records
from stepkit.errors import ConfigError, StepkitError

KINDS = ("describe", "objects", "colour", "exists", "left-right", "contents", "colours", "object-colours",
         "actions", "relation")
DEFAULT_MIX = {"describe": 1.0, "objects": 3.0, "colour": 3.0, "exists": 2.0, "left-right": 2.0}
ANSWER_INSTRUCTION = "Answer the question with a short phrase."
GENERATOR = "stepkit perception/1"


def parse_mix(text: str) -> dict[str, float]:
    """``describe:1,objects:3,...`` as weights (unknown kinds and bad numbers raise ConfigError)."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, w = part.partition(":")
        if name not in KINDS:
            raise ConfigError(f"--mix {text!r}: unknown kind {name!r}; kinds: {', '.join(KINDS)}")
        try:
            out[name] = float(w) if w else 1.0
        except ValueError:
            raise ConfigError(f"--mix {text!r}: weight of {name!r} is not a number: {w!r}") from None
        if out[name] < 0:
            raise ConfigError(f"--mix {text!r}: weight of {name!r} must be >= 0")
    if not out or not any(out.values()):
        raise ConfigError(f"--mix {text!r}: give at least one kind with a weight > 0")
    return out


def object_phrase(obj: Any) -> str:
    """How a description names an object: colour (or material) and label; a person by shirt colour."""
    colour = obj.attribute("color")
    if obj.label == "person":
        return f"the person in the {colour} shirt" if colour else "the person"
    adj = colour or obj.attribute("material")
    return f"the {adj} {obj.label}" if adj else f"the {obj.label}"


def box_at(obj: Any, t: float) -> tuple[float, float, float, float] | None:
    """The object's box at the track sample nearest ``t`` (None when not tracked within 0.3 s)."""
    best, gap = None, 0.3 + 1e-9
    for b in obj.track:
        d = abs(b.t - t)
        if d <= gap:
            best, gap = b.xyxy, d
    return best


def _in_view(graph: Any, t: float) -> list[tuple[Any, tuple[float, float, float, float]]]:
    out = []
    for o in graph.objects:
        box = box_at(o, t)
        if box is not None:
            out.append((o, box))
    return sorted(out, key=lambda ob: ((ob[1][0] + ob[1][2]) / 2, ob[0].id))


class PerceptionGenerator:
    """Builds the perception records of a set of graphs (two passes: set statistics, then records)."""

    def __init__(self, graphs: list[Any], *, per_video: int = 40, mix: dict[str, float] | None = None,
                 seed: int = 0, moment: float = 1.0) -> None:
        if per_video < 1:
            raise ConfigError(f"--per-video must be at least 1, got {per_video}")
        if moment <= 0:
            raise ConfigError(f"--moment must be > 0 seconds, got {moment}")
        self.graphs = graphs
        self.per_video = per_video
        self.mix = dict(mix or DEFAULT_MIX)
        self.seed = seed
        self.moment = moment
        self.colours_of: dict[str, set[str]] = defaultdict(set)
        self.all_colours: set[str] = set()
        self.labels: Counter[str] = Counter()
        # relation options only from what can play that part somewhere in the set (things a book can be
        # "on"), so that the wording does not rule the distractors out
        self.role_labels: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.pair_predicates: dict[tuple[str, str], set[str]] = defaultdict(set)
        for g in graphs:
            lab = {o.id: o.label for o in g.objects}
            for r in g.relations:
                if r.subject in lab and r.object in lab:
                    self.role_labels[(r.predicate, "object")].add(lab[r.object])
                    self.role_labels[(r.predicate, "subject")].add(lab[r.subject])
                    self.pair_predicates[(lab[r.subject], lab[r.object])].add(r.predicate)
        for g in graphs:
            for o in g.objects:
                c = o.attribute("color")
                if c:
                    self.colours_of[o.label].add(c)
                    self.all_colours.add(c)
            for lab in {o.label for o in g.objects if o.label != "person"}:
                self.labels[lab] += 1
        # exists: per label exactly as many "no" as "yes" questions over the set, so the wording of a
        # question tells nothing about its answer; which videos ask them is drawn by the seed
        plan_rng = random.Random(f"stepkit-perception-exists:{seed}")
        self.exists_plan: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for lab in sorted(self.labels):
            has = [g.video_id for g in graphs if any(o.label == lab for o in g.objects)]
            lacks = [g.video_id for g in graphs if g.video_id not in set(has)]
            k = min(len(has), len(lacks))
            for vid in plan_rng.sample(has, k):
                self.exists_plan[vid].append((lab, "yes"))
            for vid in plan_rng.sample(lacks, k):
                self.exists_plan[vid].append((lab, "no"))
        for items in self.exists_plan.values():
            plan_rng.shuffle(items)

    def _moment(self, g: Any, rng: random.Random) -> tuple[float, float, float]:
        """A random time ``t`` inside one clip, and a window of ``moment`` seconds around it."""
        clips = g.clips or []
        if clips:
            c = rng.choice(clips)
            lo, hi = c.t0, c.t1
        else:
            lo, hi = 0.0, g.duration
        t = rng.uniform(lo, hi)
        half = self.moment / 2
        t0, t1 = max(lo, t - half), min(hi, t + half)
        if t1 - t0 < 1e-3:
            t0, t1 = max(0.0, t - half), min(g.duration, t + half)
        return t, round(t0, 3), round(t1, 3)

    def _options(self, answer: str, pool: Iterable[str], rng: random.Random, k: int = 4) -> tuple[list[str], int]:
        others = sorted(set(pool) - {answer})
        rng.shuffle(others)
        opts = [answer, *others[: k - 1]]
        rng.shuffle(opts)
        return opts, opts.index(answer)

    def _make(self, kind: str, g: Any, rng: random.Random, used: set[str]) -> dict[str, Any] | None:
        if kind == "describe":
            clips = [c for c in g.clips if c.description.strip()]
            if not clips:
                return None
            c = rng.choice(clips)
            return dict(question="Describe what happens in this part of the video.", answer=c.description.strip(),
                        window=(c.t0, c.t1), key=f"describe:{c.id}")
        t, w0, w1 = self._moment(g, rng)
        view = _in_view(g, t)
        if kind == "objects":
            if not view:
                return None
            names = [object_phrase(o) for o, _ in view]
            return dict(question="Which objects are in view, from left to right?", answer=", ".join(names) + ".",
                        window=(w0, w1), key=f"objects:{t:.1f}")
        if kind == "colour":
            cands = [o for o, _ in view if o.attribute("color") and len(self.colours_of[o.label] | self.all_colours) > 1]
            if not cands:
                return None
            o = rng.choice(cands)
            same = [x for x, _ in view if x.label == o.label]
            if len(same) > 1:  # "the cup" must name one object
                return None
            colour = o.attribute("color")
            pool = self.colours_of[o.label] if len(self.colours_of[o.label]) >= 4 else self.all_colours
            opts, idx = self._options(colour, pool, rng)
            what = "shirt of the person" if o.label == "person" else o.label
            return dict(question=f"What colour is the {what} in view?", answer=colour, options=opts,
                        answer_index=idx, window=(w0, w1), key=f"colour:{o.id}:{t:.1f}")
        if kind == "exists":
            todo = [q for q in self.exists_plan.get(g.video_id, []) if f"exists:{q[0]}" not in used]
            if not todo:
                return None
            lab, ans = todo[0]
            return dict(question=f"Is there a {lab} in the video?", answer=ans, options=["yes", "no"],
                        answer_index=0 if ans == "yes" else 1, window=(0.0, g.duration), key=f"exists:{lab}")
        if kind == "left-right":
            if len(view) < 2:
                return None
            (a, ba), (b, bb) = rng.sample(view, 2)
            na, nb = object_phrase(a), object_phrase(b)
            if na == nb or abs((ba[0] + ba[2]) - (bb[0] + bb[2])) < 20:  # too close to call
                return None
            left = na if (ba[0] + ba[2]) < (bb[0] + bb[2]) else nb
            first, second = (na, nb) if rng.random() < 0.5 else (nb, na)
            opts = [first, second]
            return dict(question=f"Which is further left: {first} or {second}?", answer=left, options=opts,
                        answer_index=opts.index(left), window=(w0, w1), key=f"lr:{a.id}:{b.id}:{t:.1f}")
        if kind in ("contents", "colours"):
            if kind == "contents":
                words = sorted({o.label for o in g.objects if o.label != "person"})
                question = "Which kinds of objects are in the video?"
            else:
                words = sorted({c for o in g.objects if (c := o.attribute("color"))})
                question = "Which colours can you see in the video?"
            if not words:
                return None
            return dict(question=question, answer=", ".join(words) + ".", window=(0.0, g.duration), key=kind)
        if kind == "object-colours":
            by_label: dict[str, set[str]] = defaultdict(set)
            for o in g.objects:
                if o.label != "person" and (c := o.attribute("color")):
                    by_label[o.label].add(c)
            if not by_label:
                return None
            parts = [f"{lab}: {' and '.join(sorted(cs))}." for lab, cs in sorted(by_label.items())]
            return dict(question="What colour is each kind of object in the video?", answer=" ".join(parts),
                        window=(0.0, g.duration), key=kind)
        if kind == "actions":
            from stepkit.reason.ops import GraphContext

            if not g.actions:
                return None
            ctx = GraphContext(g, natural=True)
            steps = [ctx.action_phrase(a.id) for a in sorted(g.actions, key=lambda a: (a.t0, a.t1, a.id))]
            return dict(question="What happens in the video, in order?", answer=", ".join(steps) + ".",
                        window=(0.0, g.duration), key=kind)
        if kind == "relation":
            return self._relation(g, t, view, rng, (w0, w1))
        raise ConfigError(f"unknown perception kind {kind!r}")

    def _relation(self, g: Any, t: float, view: list[Any], rng: random.Random,
                  window: tuple[float, float]) -> dict[str, Any] | None:
        labels = Counter(o.label for o, _ in view)
        named = {o.id: o for o, _ in view if labels[o.label] == 1}  # "the cup" must name one object
        holding = [r for r in g.relations if r.t0 <= t <= r.t1 and r.subject in named and r.object in named]
        if not holding:
            return None
        r = rng.choice(sorted(holding, key=lambda x: x.id))
        subj, obj = named[r.subject], named[r.object]
        form = rng.choice(("object", "subject", "predicate"))
        if form == "predicate":
            true = {x.predicate for x in holding if (x.subject, x.object) == (r.subject, r.object)}
            pool = self.pair_predicates[(subj.label, obj.label)]
            answer, others = r.predicate, sorted(p for p in pool if p not in true)
            question = f"What is the relation between the {subj.label} and the {obj.label}?"
        elif form == "object":
            true = {x.object for x in holding if x.subject == r.subject and x.predicate == r.predicate}
            answer = obj.label
            fits = self.role_labels[(r.predicate, "object")]
            others = [o.label for o in named.values() if o.id not in true and o.id != subj.id and o.label in fits]
            question = f"What is the {subj.label} {r.predicate}?"
        else:
            if subj.label == "person":
                return None
            true = {x.subject for x in holding if x.object == r.object and x.predicate == r.predicate}
            answer = subj.label
            fits = self.role_labels[(r.predicate, "subject")]
            others = [o.label for o in named.values()
                      if o.id not in true and o.id != obj.id and o.label != "person" and o.label in fits]
            question = f"Which object is {r.predicate} the {obj.label}?"
        if not others:
            return None
        opts, idx = self._options(answer, others, rng)
        return dict(question=question, answer=answer, options=opts, answer_index=idx, window=window,
                    key=f"relation:{r.id}:{form}")

    def records(self, g: Any, video: str | None, index: int) -> list[QRARecord]:
        """``per_video`` records (fewer when the graph offers fewer) for graph ``g``."""
        rng = random.Random(f"stepkit-perception:{self.seed}:{g.video_id}")
        kinds = [k for k in KINDS if self.mix.get(k, 0) > 0]
        weights = [self.mix[k] for k in kinds]
        out: list[QRARecord] = []
        used: set[str] = set()
        tries = 0
        while len(out) < self.per_video and tries < 20 * self.per_video:
            tries += 1
            kind = rng.choices(kinds, weights)[0]
            made = self._make(kind, g, rng, used)
            if made is None or made["key"] in used:
                continue
            used.add(made["key"])
            w0, w1 = made["window"]
            out.append(QRARecord(
                id=f"{g.video_id}-p{len(out):03d}", video_id=g.video_id, question=made["question"],
                answer=made["answer"], steps=1, type=f"perception-{kind}", options=made.get("options"),
                answer_index=made.get("answer_index"), video=video, window=(float(w0), float(w1)),
                answer_sentence=made["answer"], answer_instruction=ANSWER_INSTRUCTION,
                provenance={"generator": GENERATOR, "seed": self.seed, "kind": kind}))
        return out


def generate_perception(graphs: str | os.PathLike, out_dir: str | os.PathLike, *, per_video: int = 40,
                        mix: dict[str, float] | None = None, seed: int = 0, moment: float = 1.0,
                        videos_dir: str | os.PathLike | None = None,
                        mix_in: Sequence[str | os.PathLike] = ()) -> dict[str, Any]:
    """Write ``out_dir/qa.jsonl`` (perception records of every graph, then the records of each
    ``mix_in`` Q/R/A file, a colliding id suffixed with ``-m<file index>``) and ``summary.json``;
    returns the summary.

    A graph that cannot be read is recorded under ``failed`` and the rest go on."""
    from stepkit.data.videos import resolve_video
    from stepkit.graph.serialize import iter_graph_files, load_graph
    from stepkit.io import atomic_text_writer, atomic_write_json

    files = list(iter_graph_files(graphs))
    if not files:
        raise ConfigError(f"{graphs}: no graph files (*.json) found")
    loaded, failed = [], []
    for path in files:
        try:
            loaded.append((path, load_graph(path)))
        except StepkitError as exc:
            failed.append({"path": str(path), "error": str(exc)})
    extra: list[tuple[int, QRARecord]] = []
    for k, qa in enumerate(mix_in):
        from stepkit.data.videos import VideoResolver

        qa = Path(qa)
        qa_file = qa / "qa.jsonl" if qa.is_dir() else qa
        if not qa_file.is_file():
            raise ConfigError(f"--mix-in {qa}: no such Q/R/A file")
        resolve = VideoResolver(qa_file.parent)
        for rec in load_records(qa_file):
            rec.video = resolve(rec.video)  # written as an absolute path, like every generated record
            extra.append((k, rec))
    gen = PerceptionGenerator([g for _, g in loaded], per_video=per_video, mix=mix, seed=seed, moment=moment)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_kind: Counter[str] = Counter()
    answers: dict[str, Counter[str]] = defaultdict(Counter)
    n = renamed = 0
    ids: set[str] = set()
    with atomic_text_writer(out / "qa.jsonl") as fh:
        for i, (path, g) in enumerate(loaded):
            video = resolve_video(g.video, base=path.parent, videos_dir=videos_dir)
            for rec in gen.records(g, video, i):
                ids.add(rec.id)
                fh.write(rec.to_json() + "\n")
                by_kind[rec.type] += 1
                if rec.type == "perception-exists":
                    answers[rec.question][rec.answer] += 1
                n += 1
        for k, rec in extra:
            # another perception file's records are numbered like these ("<video>-p000"): one id, one record
            if rec.id in ids:
                rec.id, renamed = f"{rec.id}-m{k}", renamed + 1
                if rec.id in ids:
                    raise ConfigError(f"--mix-in {mix_in[k]}: record id {rec.id!r} is already taken")
            ids.add(rec.id)
            fh.write(rec.to_json() + "\n")
            by_kind[rec.type] += 1
        n += len(extra)
    yes = sum(c["yes"] for c in answers.values())
    summary = {"records": n, "videos": len(loaded), "mixed_in": len(extra), "renamed_ids": renamed,
               "by_type": dict(sorted(by_kind.items())), "failed": failed,
               "exists_yes_share": round(yes / max(1, sum(sum(c.values()) for c in answers.values())), 4),
               "config": {"per_video": per_video, "mix": gen.mix, "seed": seed, "moment": moment}}
    atomic_write_json(out / "summary.json", summary)
    return summary


def visual_tokens_per_clip(model_dir: str | os.PathLike, *, num_frames: int = 4,
                           size: tuple[int, int] = (320, 180)) -> int:
    """How many visual tokens the model's own processor makes of one ``num_frames``-frame clip of
    ``size`` (width, height) frames: what the language model gets to see of a question's video."""
    import numpy as np
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(str(model_dir))
    w, h = size
    video = np.zeros((num_frames, h, w, 3), dtype=np.uint8)
    token = getattr(proc, "video_token", None) or getattr(proc, "image_token", None)
    text = f"{getattr(proc, 'vision_start_token', '') or ''}{token}{getattr(proc, 'vision_end_token', '') or ''}"
    try:
        enc = proc(text=[text], videos=[video], return_tensors="np")
    except (TypeError, ValueError):  # frames-as-images families (SmolVLM)
        enc = proc(text=[text * 0 + (token or "") * num_frames], images=[[f for f in video]], return_tensors="np")
    ids = enc["input_ids"][0].tolist()
    vid = proc.tokenizer.convert_tokens_to_ids(token)
    return int(sum(1 for i in ids if i == vid))


def register(app, bench) -> None:  # noqa: ARG001 - the verb-module protocol
    """Add ``stepkit perception`` to the root app."""
    import typer

    from stepkit.cli_common import console, fail

    def perception_cmd(
        graphs: Path = typer.Argument(..., help="Folder of scene graphs (ground truth or induced)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder for qa.jsonl and summary.json."),
        per_video: int = typer.Option(40, "--per-video", "-k", help="Perception records per video."),
        mix: str = typer.Option(",".join(f"{k}:{v:g}" for k, v in DEFAULT_MIX.items()), "--mix",
                                help=f"Kinds and weights ({', '.join(KINDS)})."),
        moment: float = typer.Option(1.0, "--moment", help="Seconds of video around each 'moment' question."),
        seed: int = typer.Option(0, "--seed", help="Random seed; same seed and graphs give identical qa.jsonl."),
        videos_dir: Path | None = typer.Option(None, "--videos-dir", help="Folder of the videos (default: as the graphs name them)."),
        mix_in: list[Path] = typer.Option([], "--mix-in", help="Also copy this Q/R/A file's records in (repeatable), e.g. one-step `stepkit generate` questions."),
    ) -> None:
        """Dense one-step perception records (descriptions, objects in view, colours, existence, left/right)."""
        try:
            s = generate_perception(graphs, out, per_video=per_video, mix=parse_mix(mix), seed=seed, moment=moment,
                                    videos_dir=videos_dir, mix_in=mix_in)
        except StepkitError as exc:
            fail(exc)
        kinds = ", ".join(f"{k.removeprefix('perception-')} {v}" for k, v in s["by_type"].items())
        console.print(f"{s['records']} perception records from {s['videos']} graphs ({kinds}); "
                      f"failed {len(s['failed'])} -> {out}", highlight=False)
        if s["failed"] and not s["records"]:
            raise typer.Exit(2)

    app.command("perception")(perception_cmd)
