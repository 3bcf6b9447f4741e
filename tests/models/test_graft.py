"""`stepkit models graft`: one model's language model joined to another's vision tower and projector."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from stepkit.errors import ModelError
from stepkit.models.graft import graft_vision
from stepkit.models.tiny import build_tiny_model


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def test_graft_keeps_the_decoder_and_takes_the_wider_tower(tmp_path, frames):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from typer.testing import CliRunner

    from stepkit.cli import app

    dec = build_tiny_model("qwen2.5-vl", tmp_path / "dec", seed=0, hidden_size=64, vision_hidden_size=32)
    vis = build_tiny_model("qwen2.5-vl", tmp_path / "vis", seed=1, hidden_size=64, vision_hidden_size=64,
                           vision_layers=2)
    res = CliRunner().invoke(app, ["models", "graft", str(dec), str(vis), "--out", str(tmp_path / "joined")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "joined"
    d, v, j = _weights(dec), _weights(vis), _weights(out)
    assert set(j) == set(v)  # the wider tower's tensors, the decoder's own
    for k in j:
        src = v if k.startswith("visual.") else d
        assert torch.equal(j[k], src[k]), k
    assert any(d[k].shape != v[k].shape for k in d if k.startswith("visual."))
    # it loads as an ordinary checkpoint, and the video goes through the grafted tower
    model = AutoModelForImageTextToText.from_pretrained(out)
    proc = AutoProcessor.from_pretrained(out)
    assert model.config.vision_config.hidden_size == 64 and model.config.vision_config.depth == 2
    text = proc.apply_chat_template([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What?"}]}],
                                    add_generation_prompt=True, tokenize=False)
    inputs = proc(text=[text], videos=[frames], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
        ref = AutoModelForImageTextToText.from_pretrained(vis)
        feats = ref.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
        mine = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
    assert torch.isfinite(logits).all()
    assert torch.equal(torch.cat(list(mine.pooler_output)), torch.cat(list(feats.pooler_output)))
    # a second graft into the same folder needs --overwrite
    with pytest.raises(ModelError, match="is not empty"):
        graft_vision(dec, vis, out)
    graft_vision(dec, vis, out, overwrite=True)


def test_graft_refuses_models_that_do_not_fit(tmp_path):
    dec = build_tiny_model("qwen2.5-vl", tmp_path / "dec", seed=0, hidden_size=64)
    wide = build_tiny_model("qwen2.5-vl", tmp_path / "wide", seed=0, hidden_size=128)
    px = build_tiny_model("qwen2.5-vl", tmp_path / "px", seed=0, hidden_size=64, image_size=112)
    other = build_tiny_model("qwen2-vl", tmp_path / "q2", seed=0, hidden_size=64)
    with pytest.raises(ModelError, match="128-wide tokens.*64-wide"):
        graft_vision(dec, wide, tmp_path / "o1")
    with pytest.raises(ModelError, match="turn frames into pixels differently"):
        graft_vision(dec, px, tmp_path / "o2")
    with pytest.raises(ModelError, match="is qwen2.5-vl, vision model .* is qwen2-vl"):
        graft_vision(dec, other, tmp_path / "o3")
    with pytest.raises(ModelError, match="not a model folder"):
        graft_vision(tmp_path / "nothing", dec, tmp_path / "o4")
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3", "o4"))
