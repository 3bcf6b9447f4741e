"""Tiny models of every family load through the Auto* classes, template a video chat, forward and generate."""

from __future__ import annotations

import json

import pytest
import torch

from stepkit.errors import ModelError
from stepkit.models.families import FAMILIES, family_of_checkpoint, get_family
from stepkit.models.tiny import TinySize, build_tiny_model, tiny_model_path


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tiny_family_loads_templates_forwards_generates(family, tiny_dir, frames):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = tiny_dir(family)
    fam = get_family(family)
    model = AutoModelForImageTextToText.from_pretrained(path)
    proc = AutoProcessor.from_pretrained(path)
    assert type(model).__name__ == fam.model_class
    assert type(proc).__name__ == fam.processor_class
    assert family_of_checkpoint(path) is fam
    n_params = sum(p.numel() for p in model.parameters())
    assert 100_000 < n_params < 2_000_000

    question = "What did the person pick up after opening the door?"
    if fam.video_input == "videos":
        content = [{"type": "video"}, {"type": "text", "text": question}]
        media = {"videos": [frames]}
    else:
        content = [{"type": "image"} for _ in frames] + [{"type": "text", "text": question}]
        media = {"images": [frames]}
    text = proc.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                    tokenize=False)
    assert question in text
    meta = [{"fps": 2.0, "total_num_frames": 4, "frames_indices": [0, 1, 2, 3]}]
    kwargs = {"video_metadata": meta} if family == "qwen3-vl" else {}
    inputs = proc(text=[text], return_tensors="pt", **media, **kwargs)
    # Household words train into whole BPE pieces: the question is far shorter in tokens than bytes.
    q_ids = proc.tokenizer(question, add_special_tokens=False)["input_ids"]
    assert len(q_ids) < len(question) / 2
    # The visual placeholder expanded into several tokens of the family's image/video token.
    if fam.video_input == "videos":
        vis_id = getattr(model.config, "video_token_id", None) or model.config.video_token_index
    else:
        vis_id = model.config.image_token_id
    assert int((inputs["input_ids"] == vis_id).sum()) >= 4
    with torch.no_grad():
        out = model(**inputs)
        assert torch.isfinite(out.logits).all()
        assert out.logits.shape[-1] >= len(proc.tokenizer) - 1
        gen = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] == inputs["input_ids"].shape[1] + 4 or proc.tokenizer.eos_token_id in gen[0].tolist()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_assistant_turn_extends_generation_prompt(family, tiny_dir):
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(tiny_dir(family))
    user = [{"role": "user", "content": [{"type": "text", "text": "Where is the cup?"}]}]
    prompt = proc.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    reply = [{"role": "assistant", "content": [{"type": "text", "text": "On the table."}]}]
    full = proc.apply_chat_template(user + reply, tokenize=False)
    assert full.startswith(prompt)
    tail = full[len(prompt):]
    assert tail.lstrip().startswith("On the table.")
    enc = proc.tokenizer.apply_chat_template(user + reply, tokenize=True, return_dict=True,
                                             return_assistant_tokens_mask=True, chat_template=proc.chat_template)
    masked = proc.tokenizer.decode([i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m])
    assert masked.strip().startswith("On the table.")
    assert masked.strip().endswith(get_family(family).eos_token)


def test_build_is_deterministic_and_seed_matters(tmp_path):
    from stepkit.io import sha256_file

    a = build_tiny_model("qwen2.5-vl", tmp_path / "a", seed=3)
    b = build_tiny_model("qwen2.5-vl", tmp_path / "b", seed=3)
    c = build_tiny_model("qwen2.5-vl", tmp_path / "c", seed=4)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert sha256_file(a / name) == sha256_file(b / name)
    assert sha256_file(a / "model.safetensors") != sha256_file(c / "model.safetensors")
    # Same folder, same spec: reused without rewriting.
    mtime = (a / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model("qwen2.5-vl", a, seed=3) == a
    assert (a / "model.safetensors").stat().st_mtime_ns == mtime


def test_size_is_configurable(tmp_path):
    from transformers import AutoConfig

    path = build_tiny_model("qwen2-vl", tmp_path / "m", hidden_size=96, num_layers=3, image_size=84)
    cfg = AutoConfig.from_pretrained(path)
    assert cfg.text_config.hidden_size == 96 and cfg.text_config.num_hidden_layers == 3
    spec = json.loads((path / "stepkit_tiny.json").read_text())
    assert spec["size"]["image_size"] == 84 and spec["family"] == "qwen2-vl"


def test_cache_reuses_the_built_model(tmp_path):
    first = tiny_model_path("smolvlm2", seed=1, cache_dir=tmp_path)
    again = tiny_model_path("smolvlm2", seed=1, cache_dir=tmp_path)
    other = tiny_model_path("smolvlm2", seed=1, cache_dir=tmp_path, num_layers=1)
    assert first == again != other
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ModelError, match="known families: qwen2-vl"):
        build_tiny_model("gpt-17-vision", tmp_path / "x")
    with pytest.raises(ModelError, match="hidden_size"):
        build_tiny_model("qwen2-vl", tmp_path / "x", hidden_size=50)
    with pytest.raises(ModelError, match="unknown tiny model size option"):
        build_tiny_model("qwen2-vl", tmp_path / "x", hiden_size=64)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="not a stepkit tiny model"):
        build_tiny_model("qwen2-vl", tmp_path / "busy")
    assert TinySize().image_size == 56


def test_cli_tiny_and_list(tmp_path):
    from typer.testing import CliRunner

    from stepkit.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["models", "list", "--json"])
    assert res.exit_code == 0, res.output
    listed = json.loads(res.output)
    assert [f["name"] for f in listed["families"]] == list(FAMILIES)
    assert {"hf", "openai", "tiny"} <= set(listed["backends"])
    res = runner.invoke(app, ["models", "tiny", "--family", "llava-onevision", "--out", str(tmp_path / "m"),
                              "--layers", "1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m" / "model.safetensors").is_file()
    res = runner.invoke(app, ["models", "tiny", "--family", "nope", "--out", str(tmp_path / "n")])
    assert res.exit_code == 1 and "unknown model family 'nope'" in res.output


def test_an_interrupted_build_is_redone(tmp_path):
    from transformers import AutoModelForImageTextToText

    path = build_tiny_model("qwen2-vl", tmp_path / "m", num_layers=1)
    (path / "stepkit_tiny.json").unlink()  # as if killed before the marker was written ...
    (path / ".stepkit_tiny_building").write_text("")  # ... while the build sentinel was still there
    (path / "model.safetensors").write_bytes(b"truncated")
    assert build_tiny_model("qwen2-vl", path, num_layers=1) == path
    assert not (path / ".stepkit_tiny_building").exists()
    AutoModelForImageTextToText.from_pretrained(path)


def test_cli_ask_with_a_video_and_an_image(tmp_path, monkeypatch, frames):
    import av
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from stepkit.cli import app

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 56, 56, "yuv420p"
        for i in range(12):
            for pkt in s.encode(av.VideoFrame.from_ndarray(frames[i % 4], format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    Image.fromarray(np.asarray(frames[0])).save(tmp_path / "f.png")
    monkeypatch.setenv("STEPKIT_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    res = runner.invoke(app, ["models", "ask", "What moves?", "--model", "tiny:qwen2.5-vl", "--video", str(clip),
                              "--frames", "4", "--image", str(tmp_path / "f.png"), "--n", "3", "--temperature", "1",
                              "--max-new-tokens", "4", "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)) == 3
    (tmp_path / "notes.mp4").write_text("not a video")
    res = runner.invoke(app, ["models", "ask", "x", "--model", "tiny:qwen2.5-vl", "--video", str(tmp_path / "notes.mp4")])
    assert res.exit_code == 1 and "cannot decode video" in res.output


def test_rebuilding_another_family_into_a_tiny_folder_leaves_no_stale_files(tmp_path):
    from transformers import AutoModelForImageTextToText

    path = build_tiny_model("llava-next-video", tmp_path / "m", num_layers=1)
    (path / "extra.txt").write_text("stale")
    build_tiny_model("smolvlm2", path, num_layers=1)
    assert not (path / "extra.txt").exists()
    assert type(AutoModelForImageTextToText.from_pretrained(path)).__name__ == "SmolVLMForConditionalGeneration"
