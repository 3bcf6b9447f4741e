"""Dense vision pretraining: token targets follow the graph boxes, the run writes a loadable model
whose vision tower (and nothing else) changed, reruns are no-ops, bad inputs are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import quick_config
from stepkit.cli import app
from stepkit.errors import ConfigError
from stepkit.graph.serialize import load_graph
from stepkit.train.vision_pretrain import (VisionPretrainConfig, event_vocabulary, pretrain_vision, token_targets,
                                           token_vocabulary)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pv") / "W"
    r = CliRunner().invoke(app, ["world", "--out", str(root), "--videos", "3", "--duration", "4", "--size", "160x96",
                                 "--workers", "1", "--seed", "3"])
    assert r.exit_code == 0, r.output
    return root


def test_targets_mark_the_tokens_under_each_box(world: Path) -> None:
    g = load_graph(sorted((world / "graphs").glob("*.json"))[0])
    labels, colours = token_vocabulary([g])
    W, H = g.width, g.height
    y = token_targets(g, [0.0], (W, H), (1, 6, 10), 2, labels, colours)  # 3 x 5 merged tokens
    assert y.shape == (15, len(labels) + len(colours))
    for o in g.objects:
        box = next(b.xyxy for b in o.track if b.t == 0.0) if any(b.t == 0.0 for b in o.track) else None
        if box is None:
            continue
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        k = min(2, int(cy / (H / 3))) * 5 + min(4, int(cx / (W / 5)))
        assert y[k, labels.index(o.label)] == 1, (o.label, box)
    # every marked label is under some box at t=0 (nothing invented)
    present = {o.label for o in g.objects if any(b.t == 0.0 for b in o.track)}
    assert {labels[i] for i in range(len(labels)) if y[:, i].any()} <= present


def test_event_targets_mark_the_participants_of_what_happens_then(world: Path) -> None:
    g = load_graph(sorted((world / "graphs").glob("*.json"))[0])
    labels, colours = token_vocabulary([g])
    events = event_vocabulary([g])
    act = g.actions[0]
    t = (act.t0 + act.t1) / 2
    y = token_targets(g, [t], (g.width, g.height), (1, 6, 10), 2, labels, colours, events=events)
    base = len(labels) + len(colours)
    assert y.shape == (15, base + len(events))
    # the verb is on some token (the agent is in view in the world), and only verbs and predicates
    # of events that hold at t are marked
    assert y[:, base + events.index(act.verb)].any()
    holding = {a.verb for a in g.actions if a.t0 <= t <= a.t1} | {r.predicate for r in g.relations if r.t0 <= t <= r.t1}
    assert {events[i] for i in range(len(events)) if y[:, base + i].any()} <= holding
    # the object targets are those of the default (events only add columns)
    assert (y[:, :base] == token_targets(g, [t], (g.width, g.height), (1, 6, 10), 2, labels, colours)).all()


def test_event_targets_run_reports_their_f1(world: Path, tiny_models, tmp_path: Path) -> None:
    cfg = VisionPretrainConfig(graphs=str(world / "graphs"), model=str(tiny_models("qwen2.5-vl")),
                               out=str(tmp_path / "pv"), steps=1, batch_size=1, val_graphs=str(world / "graphs"),
                               val_clips=2, targets="events")
    s = pretrain_vision(cfg)
    assert s["events"] and set(s["val_f1"]) == {"label", "colour", "event"}
    with pytest.raises(ConfigError, match="targets"):
        pretrain_vision(VisionPretrainConfig(graphs=cfg.graphs, model=cfg.model, out=str(tmp_path / "x"),
                                             targets="verbs"))


def test_pretraining_changes_only_the_vision_tower_and_reruns_are_no_ops(world: Path, tiny_models, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    model = tiny_models("qwen2.5-vl")
    cfg = VisionPretrainConfig(graphs=str(world / "graphs"), model=str(model), out=str(tmp_path / "pv"), steps=3,
                               batch_size=2, val_graphs=str(world / "graphs"), val_clips=4, log_every=1)
    s = pretrain_vision(cfg)
    assert s["finished"] and s["family"] == "qwen2.5-vl" and "person" in s["labels"]
    assert [line["step"] for line in s["log"]] == [0, 1, 2, 3] and set(s["val_f1"]) == {"label", "colour"}
    before = load_file(str(model / "model.safetensors"))
    after = load_file(str(tmp_path / "pv" / "model.safetensors"))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("visual" in k for k in changed)
    stamp = (tmp_path / "pv" / "model.safetensors").stat().st_mtime_ns
    assert pretrain_vision(cfg) == s and (tmp_path / "pv" / "model.safetensors").stat().st_mtime_ns == stamp
    # the result is an ordinary checkpoint for the next stage, with the same processor
    from stepkit.train.perception import visual_tokens_per_clip
    from stepkit.train.trainer import load_model

    loaded, _, fam = load_model(quick_config(tmp_path / "qa", tmp_path / "pv", tmp_path / "run"))
    key = sorted(changed)[0]
    mem = {k.split("visual.", 1)[-1]: v for k, v in loaded.state_dict().items() if "visual." in k}
    assert fam.name == "qwen2.5-vl" and torch.equal(mem[key.split("visual.", 1)[-1]], after[key])
    assert visual_tokens_per_clip(tmp_path / "pv") == visual_tokens_per_clip(model)
    other = VisionPretrainConfig(**{**cfg.__dict__, "steps": 4})
    with pytest.raises(ConfigError, match="another config"):
        pretrain_vision(other)


def test_bad_inputs_are_named(world: Path, tiny_models, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="supports"):
        pretrain_vision(VisionPretrainConfig(graphs=str(world / "graphs"), model=str(tiny_models("smolvlm2")),
                                             out=str(tmp_path / "a")))
    with pytest.raises(ConfigError, match="no graph files"):
        pretrain_vision(VisionPretrainConfig(graphs=str(tmp_path), model=str(tiny_models("qwen2.5-vl")),
                                             out=str(tmp_path / "b")))
    with pytest.raises(ConfigError, match="head"):
        pretrain_vision(VisionPretrainConfig(graphs=str(world / "graphs"), model="m", out="o", head="mlp"))
    with pytest.raises(ConfigError, match="steps"):
        pretrain_vision(VisionPretrainConfig(graphs=str(world / "graphs"), model="m", out="o", steps=0))
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in (world / "graphs").glob("*.json"):
        d = json.loads(f.read_text())
        for o in d["objects"]:
            o["track"] = []
        (bare / f.name).write_text(json.dumps(d))
    with pytest.raises(ConfigError, match="tracked box"):
        pretrain_vision(VisionPretrainConfig(graphs=str(bare), model=str(tiny_models("qwen2.5-vl")),
                                             out=str(tmp_path / "c")))
    r = CliRunner().invoke(app, ["pretrain-vision", str(world / "graphs"), "--model", str(tmp_path / "nope"),
                                 "--out", str(tmp_path / "d")])
    assert r.exit_code != 0 and "not a model folder" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen3-vl"])
def test_other_qwen_families(world: Path, tiny_models, tmp_path: Path, family: str) -> None:
    s = pretrain_vision(VisionPretrainConfig(graphs=str(world / "graphs"), model=str(tiny_models(family)),
                                             out=str(tmp_path / family), steps=1, batch_size=1))
    assert s["finished"] and (tmp_path / family / "model.safetensors").is_file()


def test_word_head_starts_from_the_decoders_embeddings(world: Path, tiny_models, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from stepkit.train.vision_pretrain import _word_head

    model_dir = tiny_models("qwen2.5-vl")
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    tok = AutoProcessor.from_pretrained(model_dir).tokenizer
    head = _word_head(model, tok, ["bed", "red"])
    emb = model.get_input_embeddings().weight
    bed = emb[tok(" bed", add_special_tokens=False)["input_ids"]].mean(0)
    assert torch.cosine_similarity(head.weight[0], bed, dim=0) > 0.5
    assert [n for n, _ in head.named_parameters()] == ["scale", "bias"]  # the rows stay the words
    s = pretrain_vision(VisionPretrainConfig(graphs=str(world / "graphs"), model=str(model_dir),
                                             out=str(tmp_path / "w"), steps=1, batch_size=1, head="words"))
    assert s["config"]["head"] == "words" and s["finished"]


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl"])
def test_centring_removes_the_shared_token_and_scales_to_the_text(world: Path, tiny_models, tmp_path: Path,
                                                                   family: str) -> None:
    import random

    import torch
    import transformers
    from transformers import AutoProcessor

    from stepkit.models.families import family_of_checkpoint
    from stepkit.train.vision_pretrain import _Clips, _load_graphs, _visual_tokens

    cfg = VisionPretrainConfig(graphs=str(world / "graphs"), model=str(tiny_models(family)), out=str(tmp_path / "c"),
                               steps=2, batch_size=2, centre=True, centre_clips=6, token_scale=4.0)
    s = pretrain_vision(cfg)
    assert s["centring"]["shared_norm"] > 0 and s["centring"]["scale"] > 0
    fam = family_of_checkpoint(cfg.out)
    model = getattr(transformers, fam.model_class).from_pretrained(cfg.out).eval()
    graphs = _load_graphs(cfg.graphs)
    labels, colours = token_vocabulary([g for _, g in graphs])
    clips = _Clips(graphs, cfg, AutoProcessor.from_pretrained(cfg.out), labels, colours)
    # the very clips the mean was taken over now average to zero, at 4x the text embeddings' RMS
    rng = random.Random(f"stepkit-pretrain-vision-centre:{cfg.seed}")
    with torch.no_grad():
        feats = torch.cat([_visual_tokens(model, clips.sample(rng)[0], normalize=False) for _ in range(6)])
    text_rms = model.get_input_embeddings().weight.pow(2).mean().sqrt().item()
    assert feats.mean(0).norm() < 1e-3 * feats.norm(dim=-1).mean()
    assert feats.pow(2).mean().sqrt().item() == pytest.approx(4.0 * text_rms, rel=1e-3)
    with pytest.raises(ConfigError, match="token_scale"):
        pretrain_vision(VisionPretrainConfig(graphs=cfg.graphs, model=cfg.model, out="o", token_scale=2.0))


def test_oracle_tokens_are_the_covered_words_at_a_fixed_norm() -> None:
    import torch

    from stepkit.train.vision_pretrain import floor_vector, oracle_tokens

    vectors = torch.nn.functional.normalize(torch.randn(5, 32, generator=torch.Generator().manual_seed(1)), dim=-1)
    y = torch.tensor([[0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 1, 1, 0, 0]], dtype=torch.float)
    floor = floor_vector(32)
    assert torch.equal(floor, floor_vector(32)) and abs(floor.norm().item() - 1) < 1e-6
    t = oracle_tokens(y, vectors, floor, 12.0)
    assert torch.allclose(t.norm(dim=-1), torch.full((3,), 12.0))
    assert torch.allclose(t[0] / 12, floor, atol=1e-6)  # an empty patch is the floor alone
    sims = torch.nn.functional.normalize(t, dim=-1) @ vectors.T
    assert sims[1, 0] > 0.5 and sims[2, 1] > 0.4 and sims[2, 2] > 0.4
    assert sims[1, 1:].abs().max() < sims[1, 0] - 0.3


def test_vector_head_regresses_the_tokens_onto_the_oracle(world: Path, tiny_models, tmp_path: Path) -> None:
    cfg = VisionPretrainConfig(graphs=str(world / "graphs"), model=str(tiny_models("qwen2.5-vl")),
                               out=str(tmp_path / "v"), steps=30, batch_size=2, lr=5e-3, head="vectors",
                               targets="events", val_graphs=str(world / "graphs"), val_clips=2, log_every=1)
    s = pretrain_vision(cfg)
    losses = [line["loss"] for line in s["log"] if "loss" in line]
    assert s["finished"] and set(s["val_f1"]) == {"label", "colour", "event"}
    assert losses[0] > 0.8 and losses[-1] < 0.5 * losses[0], losses  # from about 1 (a random tower) toward 0
    with pytest.raises(ConfigError, match="vector_norm"):
        pretrain_vision(VisionPretrainConfig(graphs=cfg.graphs, model=cfg.model, out=str(tmp_path / "x"),
                                             head="vectors", vector_norm=0))
