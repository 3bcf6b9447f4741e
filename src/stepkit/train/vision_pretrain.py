"""Dense vision pretraining: teach a Video-LLM's vision tower what is where, from scene-graph boxes.

A model trained from scratch (the tiny learners of the replication study) has a vision tower that
sees nothing, and question-answer loss alone is a weak teacher for it: most of an answer's tokens
can be predicted from the text. Here every visual token gets its own target instead: which object
labels and which colours cover its patch of the frame at its frame time, read from the graph's
tracked boxes (multi-label, binary cross-entropy through a head on the normalised projector output:
learned, or the decoder's own word embeddings of the labels and colours), or, with ``head: vectors``,
one target vector per token: the sum of the decoder's word embeddings of what covers it (plus a fixed
"nothing here" vector) at a fixed norm, regressed directly, so the tokens are written in the words the
decoder reads (``oracle_tokens``: what a perfect tower would emit). With ``targets: events``
a token also learns what is happening to what covers it: the verb of each action whose agent,
object or target it covers, and the predicate of each relation whose subject or object it
covers, at that frame time (the words a "which action came second?" or "what is the cup on?"
question reads off the frames).
Only the vision tower and projector learn; the head is discarded and the result is saved as an
ordinary checkpoint that ``stepkit train --model`` loads. Real checkpoints have pretrained vision
towers and do not need this stage.

Families whose visual tokens form a spatial grid per temporal patch (Qwen2-VL, Qwen2.5-VL,
Qwen3-VL) are supported.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stepkit.errors import ConfigError, StepkitError
from stepkit.train.config import _f
from stepkit.train.perception import box_at

SUMMARY = "vision_pretrain.json"
TARGETS = ("objects", "events")
HEADS = ("linear", "words", "vectors")
VECTOR_THRESHOLD = 0.3  # head vectors: a word counts as predicted when the token's cosine with it exceeds this
FAMILIES = ("qwen2-vl", "qwen2.5-vl", "qwen3-vl")


@dataclass
class VisionPretrainConfig:
    """Everything a dense vision pretraining run depends on (saved in ``vision_pretrain.json``)."""

    graphs: str = _f("", "Folder of scene graphs with tracked object boxes (e.g. `stepkit world` ground truth).")
    model: str = _f("", "Model folder to start from (`stepkit models tiny` or any Qwen-family checkpoint).")
    out: str = _f("", "Output model folder.")
    steps: int = _f(400, "Optimizer steps.")
    batch_size: int = _f(8, "Clips per optimizer step.")
    lr: float = _f(2e-3, "Learning rate (AdamW) of the vision tower, projector and head.")
    weight_decay: float = _f(0.01, "AdamW weight decay.")
    num_frames: int = _f(4, "Frames per clip (as in training and evaluation).")
    window: float = _f(1.0, "Seconds of video per clip.")
    min_cover: float = _f(0.3, "An object covers a token when their overlap is this share of the smaller box.")
    val_graphs: str | None = _f(None, "Graphs of validation videos: per-token F1 is reported on them.")
    val_clips: int = _f(32, "Validation clips.")
    videos_dir: str | None = _f(None, "Folder of the videos when the graphs name them relative to it.")
    normalize: bool = _f(True, "The head reads RMS-normalised tokens, as the decoder's input norm does: what it teaches "
                               "lives in the tokens' direction, which the decoder sees, not in their scale, which it does not.")
    head: str = _f("linear", "linear: a learned head; words: the decoder's own input embeddings of the label and colour "
                             "words (fixed), so a bed in the frame and 'bed' in a question start as one direction; "
                             "vectors: each token regresses onto the sum of those embeddings (oracle_tokens), so it "
                             "is written in the decoder's words.")
    vector_norm: float = _f(12.0, "head vectors: the norm of every target token (about a word-head tower's token norm).")
    targets: str = _f("objects", "objects: each token's labels and colours; events: also the verbs and predicates of the "
                                 "actions and relations whose participants cover it at that time.")
    centre: bool = _f(False, "After training, fold the mean visual token (over centre_clips training clips) into the "
                             "projector's output bias: every video's tokens share most of their direction, and the "
                             "decoder's input norm would pass on mostly that shared part.")
    centre_clips: int = _f(100, "Training clips whose tokens' mean is removed by centre.")
    token_scale: float = _f(0.0, "With centre: rescale the projector's output so the visual tokens' RMS is this many "
                                 "times the text embeddings' (0: keep their scale).")
    seed: int = _f(0, "Seed of the clip sampling and the head's weights.")
    log_every: int = _f(50, "Steps between log lines (with validation F1 when val_graphs is set).")

    def validate(self) -> None:
        """ConfigError naming the first field that cannot work."""
        for name in ("steps", "batch_size", "num_frames", "val_clips", "log_every", "centre_clips"):
            if getattr(self, name) < 1:
                raise ConfigError(f"pretrain-vision: {name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.window <= 0:
            raise ConfigError("pretrain-vision: lr and window must be > 0")
        if self.head not in HEADS:
            raise ConfigError(f"pretrain-vision: head must be {', '.join(HEADS)}, got {self.head!r}")
        if self.vector_norm <= 0:
            raise ConfigError(f"pretrain-vision: vector_norm must be > 0, got {self.vector_norm}")
        if self.targets not in TARGETS:
            raise ConfigError(f"pretrain-vision: targets must be {' or '.join(TARGETS)}, got {self.targets!r}")
        if self.token_scale < 0 or (self.token_scale and not self.centre):
            raise ConfigError(f"pretrain-vision: token_scale must be >= 0 and needs centre, got {self.token_scale}")
        if not 0 < self.min_cover <= 1:
            raise ConfigError(f"pretrain-vision: min_cover must be in (0, 1], got {self.min_cover}")


def token_vocabulary(graphs: list[Any]) -> tuple[list[str], list[str]]:
    """(labels, colours) of the tracked objects of ``graphs``: the targets every visual token is taught."""
    tracked = [o for g in graphs for o in g.objects if o.track]
    labels = sorted({o.label for o in tracked})
    colours = sorted({c for o in tracked if (c := o.attribute("color"))})
    return labels, colours


def event_vocabulary(graphs: list[Any]) -> list[str]:
    """The verbs and predicates of ``graphs``' actions and relations: the event targets of a token."""
    return sorted({a.verb for g in graphs for a in g.actions} | {r.predicate for g in graphs for r in g.relations})


def _event_words(graph: Any, t: float) -> dict[str, set[str]]:
    """Object id -> the verbs and predicates of the events it takes part in at time ``t``."""
    words: dict[str, set[str]] = {}
    for a in graph.actions:
        if a.t0 <= t <= a.t1:
            for oid in (a.agent, a.object, a.target):
                if oid is not None:
                    words.setdefault(oid, set()).add(a.verb)
    for r in graph.relations:
        if r.t0 <= t <= r.t1:
            for oid in (r.subject, r.object):
                words.setdefault(oid, set()).add(r.predicate)
    return words


def token_targets(graph: Any, times: list[float], frame_size: tuple[int, int], grid: tuple[int, int, int],
                  merge: int, labels: list[str], colours: list[str], min_cover: float = 0.3,
                  events: list[str] | None = None):
    """Multi-hot targets (tokens x (labels + colours [+ events])) of one clip's visual tokens.

    ``grid`` is the processor's (temporal, height, width) patch grid, ``merge`` its spatial merge
    size and ``times`` the time of each temporal patch; a merged token covers an equal share of the
    frame (``frame_size`` = width, height of the graph's pixel space), row by row. With ``events``,
    a token covered by an object also gets the verbs and predicates of the events the object takes
    part in at that time."""
    import torch

    T, h, w = grid
    mh, mw = h // merge, w // merge
    W, H = frame_size
    ev_base = len(labels) + len(colours)
    ev_index = {e: ev_base + i for i, e in enumerate(events or [])}
    y = torch.zeros(T * mh * mw, ev_base + len(ev_index))
    cell = (W / mw) * (H / mh)
    for ti in range(T):
        boxes = [(o, b) for o in graph.objects if (b := box_at(o, times[ti])) is not None]
        doing = _event_words(graph, times[ti]) if ev_index else {}
        for yi in range(mh):
            y0, y1 = yi * H / mh, (yi + 1) * H / mh
            for xi in range(mw):
                x0, x1 = xi * W / mw, (xi + 1) * W / mw
                k = (ti * mh + yi) * mw + xi
                for o, (bx0, by0, bx1, by1) in boxes:
                    inter = max(0.0, min(x1, bx1) - max(x0, bx0)) * max(0.0, min(y1, by1) - max(y0, by0))
                    if inter <= 0 or inter / max(1e-6, min((bx1 - bx0) * (by1 - by0), cell)) < min_cover:
                        continue
                    if o.label in labels:
                        y[k, labels.index(o.label)] = 1
                    c = o.attribute("color")
                    if c in colours:
                        y[k, len(labels) + colours.index(c)] = 1
                    for word in doing.get(o.id, ()):
                        if word in ev_index:
                            y[k, ev_index[word]] = 1
    return y


class _Clips:
    """Random clips of a set of graphs' videos, with their token targets."""

    def __init__(self, graphs: list[tuple[Path, Any]], cfg: VisionPretrainConfig, processor: Any,
                 labels: list[str], colours: list[str], events: list[str] | None = None) -> None:
        from stepkit.data.videos import resolve_video

        self.items = []
        for path, g in graphs:
            video = resolve_video(g.video, base=path.parent, videos_dir=cfg.videos_dir)
            if not video or not os.path.isfile(video):
                raise ConfigError(f"{path}: its video {g.video!r} is not a file (use --videos-dir)")
            self.items.append((g, video))
        self.cfg, self.processor, self.labels, self.colours, self.events = cfg, processor, labels, colours, events
        vp = processor.video_processor
        self.merge = int(getattr(vp, "merge_size", 2))
        self.temporal = int(getattr(vp, "temporal_patch_size", 2))

    def sample(self, rng: random.Random) -> tuple[dict[str, Any], Any]:
        from stepkit.train.clip import read_clip

        g, video = self.items[rng.randrange(len(self.items))]
        t0 = rng.uniform(0.0, max(0.0, g.duration - self.cfg.window))
        clip = read_clip(video, (t0, t0 + self.cfg.window), num_frames=self.cfg.num_frames, fps=None,
                         multiple_of=self.temporal)
        x = self.processor.video_processor(videos=[clip.frames], return_tensors="pt", do_sample_frames=False)
        grid = tuple(int(v) for v in x["video_grid_thw"][0].tolist())
        times = [clip.indices[min(len(clip.indices) - 1, self.temporal * ti)] / clip.fps for ti in range(grid[0])]
        size = (g.width or clip.frames.shape[2], g.height or clip.frames.shape[1])
        return dict(x), token_targets(g, times, size, grid, self.merge, self.labels, self.colours, self.cfg.min_cover,
                                      self.events)


def _visual_tokens(model: Any, x: dict[str, Any], normalize: bool = True):
    import torch

    out = model.model.get_video_features(x["pixel_values_videos"], x["video_grid_thw"])
    feats = getattr(out, "pooler_output", out)
    if isinstance(feats, (list, tuple)):
        feats = torch.cat(list(feats), 0)
    if normalize:
        feats = feats * torch.rsqrt(feats.pow(2).mean(-1, keepdim=True) + 1e-6)
    return feats


def _projector_output(model: Any):
    """The last linear layer of the vision projector (the merger), whose output the decoder reads."""
    import torch

    merger = getattr(model.model.visual, "merger", None)
    linears = [m for m in merger.modules() if isinstance(m, torch.nn.Linear)] if merger is not None else []
    if not linears or linears[-1].bias is None:
        raise ConfigError("pretrain-vision --centre: the vision projector has no output layer with a bias")
    return linears[-1]


def centre_visual_tokens(model: Any, inputs: list[dict[str, Any]], token_scale: float = 0.0) -> dict[str, float]:
    """Remove the mean visual token of ``inputs`` (processor outputs of clips) from the projector's output
    bias, and with ``token_scale`` rescale the tokens to that many times the text embeddings' RMS; returns
    the norms before and after. A weight edit: the model stays an ordinary checkpoint."""
    import torch

    with torch.no_grad():
        feats = torch.cat([_visual_tokens(model, x, normalize=False) for x in inputs])
        mean = feats.mean(0)
        centred = feats - mean
        layer = _projector_output(model)
        layer.bias -= mean
        scale = 1.0
        if token_scale:
            text_rms = model.get_input_embeddings().weight.pow(2).mean().sqrt().item()
            scale = token_scale * text_rms / max(1e-12, centred.pow(2).mean().sqrt().item())
            layer.weight *= scale
            layer.bias *= scale
    return {"token_norm": round(feats.norm(dim=-1).mean().item(), 4), "shared_norm": round(mean.norm().item(), 4),
            "centred_norm": round(centred.norm(dim=-1).mean().item() * scale, 4), "scale": round(scale, 6)}


def word_vectors(model: Any, tokenizer: Any, words: list[str]):
    """(words, hidden) unit rows: the decoder's input embedding of each word (the mean of its tokens,
    with and without a leading space)."""
    import torch

    emb = model.get_input_embeddings().weight.detach()
    rows = []
    for w in words:
        ids = tokenizer(w, add_special_tokens=False)["input_ids"] + tokenizer(" " + w, add_special_tokens=False)["input_ids"]
        rows.append(emb[ids].mean(0))
    weight = torch.stack(rows).float()
    return weight / weight.norm(dim=-1, keepdim=True)


def floor_vector(hidden: int, seed: int = 0):
    """The fixed unit "nothing here" vector every oracle token includes (seeded, so runs agree)."""
    import torch

    v = torch.randn(hidden, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def oracle_tokens(y: Any, vectors: Any, floor: Any, norm: float):
    """Target tokens of multi-hot ``y`` (tokens x words, from ``token_targets``): the sum of the word
    ``vectors`` each token covers plus ``floor``, scaled to ``norm``: what a perfect tower emits."""
    v = y @ vectors + floor
    return norm * v / v.norm(dim=-1, keepdim=True).clamp_min(1e-6)


def _word_head(model: Any, tokenizer: Any, words: list[str]):
    """A fixed classifier whose rows are ``word_vectors`` of ``words``, with a learned scale and bias."""
    import torch

    weight = word_vectors(model, tokenizer, words)

    class WordHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("weight", weight)
            self.scale = torch.nn.Parameter(torch.tensor(10.0))
            self.bias = torch.nn.Parameter(torch.zeros(len(words)))

        def forward(self, x):
            return self.scale * x @ self.weight.T / x.shape[-1] ** 0.5 + self.bias

    return WordHead()


def _load_graphs(folder: str) -> list[tuple[Path, Any]]:
    from stepkit.graph.serialize import iter_graph_files, load_graph

    files = list(iter_graph_files(folder))
    if not files:
        raise ConfigError(f"{folder}: no graph files (*.json) found")
    return [(Path(f), load_graph(f)) for f in files]


def _finished(out: Path, cfg: VisionPretrainConfig) -> dict[str, Any] | None:
    try:
        s = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return s if s.get("config") == asdict(cfg) and s.get("finished") else None


def pretrain_vision(cfg: VisionPretrainConfig) -> dict[str, Any]:
    """Train the vision tower and projector of ``cfg.model`` on per-token label / colour targets and
    write the model to ``cfg.out`` with ``vision_pretrain.json`` (config, vocabulary, log, F1).

    ``vision_pretrain.json`` is written last: a rerun with the same config returns the finished
    run's summary, and a killed run (no summary) starts again from ``cfg.model``."""
    import torch
    import transformers
    from transformers import AutoProcessor

    from stepkit.io import atomic_write_json
    from stepkit.models.families import family_of_checkpoint

    cfg.validate()
    out = Path(cfg.out)
    done = _finished(out, cfg)
    if done is not None:
        return done
    if (out / SUMMARY).exists():
        raise ConfigError(f"{out}: holds a finished pretrain-vision run of another config; choose another --out")
    train_graphs = _load_graphs(cfg.graphs)
    labels, colours = token_vocabulary([g for _, g in train_graphs])
    events = event_vocabulary([g for _, g in train_graphs]) if cfg.targets == "events" else []
    if not labels:
        raise ConfigError(f"{cfg.graphs}: no object has a tracked box; dense targets need boxes "
                          "(ground-truth world graphs or induced graphs with tracks)")
    if not (Path(cfg.model) / "config.json").is_file():
        raise ConfigError(f"{cfg.model}: not a model folder (no config.json)")
    fam = family_of_checkpoint(cfg.model)
    if fam is None or fam.name not in FAMILIES:
        raise ConfigError(f"{cfg.model}: dense vision pretraining supports {', '.join(FAMILIES)}, "
                          f"not {fam.name if fam else 'this config.json'}")
    try:
        processor = AutoProcessor.from_pretrained(cfg.model)
        model = getattr(transformers, fam.model_class).from_pretrained(cfg.model)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{cfg.model}: cannot load a {fam.name} model ({exc})") from None
    torch.manual_seed(cfg.seed)
    clips = _Clips(train_graphs, cfg, processor, labels, colours, events)
    val = None
    if cfg.val_graphs:
        vclips = _Clips(_load_graphs(cfg.val_graphs), cfg, processor, labels, colours, events)
        vrng = random.Random(f"stepkit-pretrain-vision-val:{cfg.seed}")
        val = [vclips.sample(vrng) for _ in range(cfg.val_clips)]
    vectors = floor = None
    if cfg.head == "vectors":
        vectors = word_vectors(model, processor.tokenizer, labels + colours + events)
        floor = floor_vector(vectors.shape[1])
        head = torch.nn.Identity()
    elif cfg.head == "words":
        head = _word_head(model, processor.tokenizer, labels + colours + events)
    else:
        head = torch.nn.Linear(model.config.text_config.hidden_size, len(labels) + len(colours) + len(events))
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.model.visual.parameters())
    for p in params:
        p.requires_grad_(True)
    params += list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def loss_of(x: dict[str, Any], y: Any):
        if vectors is not None:
            target = oracle_tokens(y, vectors, floor, cfg.vector_norm)
            # mean squared error relative to the target's own per-element energy
            return (_visual_tokens(model, x, normalize=False) - target).pow(2).mean() * y.new_tensor(
                target.shape[1] / cfg.vector_norm ** 2)
        return torch.nn.functional.binary_cross_entropy_with_logits(head(_visual_tokens(model, x, cfg.normalize)), y)

    def predicted(x: dict[str, Any]):
        if vectors is not None:
            tokens = _visual_tokens(model, x, normalize=False)
            return (tokens / tokens.norm(dim=-1, keepdim=True).clamp_min(1e-6)) @ vectors.T > VECTOR_THRESHOLD
        return torch.sigmoid(head(_visual_tokens(model, x, cfg.normalize))) > 0.5

    @torch.no_grad()
    def f1() -> dict[str, float]:
        pred = torch.cat([predicted(x) for x, _ in val])
        gold = torch.cat([y for _, y in val]) > 0
        res = {}
        groups = [("label", slice(0, len(labels))), ("colour", slice(len(labels), len(labels) + len(colours)))]
        if events:
            groups.append(("event", slice(len(labels) + len(colours), None)))
        for name, sl in groups:
            tp = (pred[:, sl] & gold[:, sl]).sum().item()
            wrong = (pred[:, sl] ^ gold[:, sl]).sum().item()
            res[name] = round(2 * tp / max(1, 2 * tp + wrong), 4)
        return res

    log: list[dict[str, Any]] = []
    if val:
        log.append({"step": 0, "val_f1": f1()})
    rng = random.Random(f"stepkit-pretrain-vision:{cfg.seed}")
    start = time.time()
    model.train()
    for step in range(1, cfg.steps + 1):
        opt.zero_grad()
        total = 0.0
        for _ in range(cfg.batch_size):
            x, y = clips.sample(rng)
            loss = loss_of(x, y)
            (loss / cfg.batch_size).backward()
            total += loss.item() / cfg.batch_size
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % cfg.log_every == 0 or step == cfg.steps:
            line: dict[str, Any] = {"step": step, "loss": round(total, 5), "seconds": round(time.time() - start, 1)}
            if val:
                model.eval()
                line["val_f1"] = f1()
                model.train()
            log.append(line)
    centring = None
    if cfg.centre:
        model.eval()
        crng = random.Random(f"stepkit-pretrain-vision-centre:{cfg.seed}")
        centring = centre_visual_tokens(model, [clips.sample(crng)[0] for _ in range(cfg.centre_clips)],
                                        cfg.token_scale)
    # the model is written beside OUT and moved in file by file; the summary comes last and marks the
    # run finished, so a killed run leaves no folder that looks like a model it did not finish
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {"config": asdict(cfg), "family": fam.name, "labels": labels, "colours": colours, "events": events, "log": log,
               "centring": centring,
               "val_f1": log[-1].get("val_f1") if log else None, "finished": True,
               "seconds": round(time.time() - start, 1)}
    atomic_write_json(out / SUMMARY, summary)
    return summary


def register(app, bench) -> None:  # noqa: ARG001 - the verb-module protocol
    """Add ``stepkit pretrain-vision`` to the root app."""
    import typer

    from stepkit.cli_common import console, fail

    defaults = VisionPretrainConfig()

    def pretrain_vision_cmd(
        graphs: Path = typer.Argument(..., help="Folder of scene graphs with tracked boxes (ground truth)."),
        model: str = typer.Option(..., "--model", help="Model folder to start from (Qwen family)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output model folder."),
        steps: int = typer.Option(defaults.steps, "--steps", help="Optimizer steps."),
        batch_size: int = typer.Option(defaults.batch_size, "--batch-size", help="Clips per step."),
        lr: float = typer.Option(defaults.lr, "--lr", help="Learning rate."),
        num_frames: int = typer.Option(defaults.num_frames, "--num-frames", help="Frames per clip."),
        window: float = typer.Option(defaults.window, "--window", help="Seconds of video per clip."),
        val_graphs: Path | None = typer.Option(None, "--val-graphs", help="Validation graphs (per-token F1)."),
        videos_dir: Path | None = typer.Option(None, "--videos-dir", help="Folder of the videos."),
        head: str = typer.Option(defaults.head, "--head",
                                 help="linear (learned), words (the decoder's word embeddings) or vectors (regress "
                                      "each token onto the sum of those embeddings)."),
        vector_norm: float = typer.Option(defaults.vector_norm, "--vector-norm", help="--head vectors: target token norm."),
        targets: str = typer.Option(defaults.targets, "--targets",
                                    help="objects (labels, colours) or events (also verbs and predicates)."),
        normalize: bool = typer.Option(defaults.normalize, "--normalize/--raw",
                                       help="Head on RMS-normalised tokens (default) or on the raw projector output."),
        centre: bool = typer.Option(defaults.centre, "--centre/--no-centre",
                                    help="Fold the mean visual token into the projector's bias after training."),
        token_scale: float = typer.Option(defaults.token_scale, "--token-scale",
                                          help="With --centre: visual-token RMS as a multiple of the text embeddings' "
                                               "(0 keeps it)."),
        seed: int = typer.Option(defaults.seed, "--seed", help="Random seed."),
        threads: int | None = typer.Option(None, "--threads", help="torch intra-op threads."),
    ) -> None:
        """Dense vision pretraining: every visual token learns the labels and colours under it (from graph boxes)."""
        if threads:
            import torch

            torch.set_num_threads(threads)
        cfg = VisionPretrainConfig(graphs=str(graphs), model=model, out=str(out), steps=steps, batch_size=batch_size,
                                   lr=lr, num_frames=num_frames, window=window,
                                   val_graphs=str(val_graphs) if val_graphs else None,
                                   videos_dir=str(videos_dir) if videos_dir else None, normalize=normalize,
                                   head=head, vector_norm=vector_norm, targets=targets, centre=centre, token_scale=token_scale, seed=seed)
        try:
            s = pretrain_vision(cfg)
        except StepkitError as exc:
            fail(exc)
        f1 = s.get("val_f1")
        extra = (f"; validation per-token F1 label {f1['label']:.2f}, colour {f1['colour']:.2f}"
                 + (f", event {f1['event']:.2f}" if "event" in f1 else "")) if f1 else ""
        events = f" and {len(s['events'])} verbs / predicates" if s.get("events") else ""
        console.print(f"{cfg.steps} steps on {len(s['labels'])} labels, {len(s['colours'])} colours{events}"
                      f"{extra} -> {out}", highlight=False)

    app.command("pretrain-vision")(pretrain_vision_cmd)
