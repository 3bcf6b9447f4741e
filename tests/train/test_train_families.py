"""Every supported family: a tiny model trains 30 steps on Q/R/A, saves, reloads from disk and generates."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import FAMILIES, quick_config


def _mean(xs):
    return sum(xs) / len(xs)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_saves_reloads_generates(family, world_qa, tiny_models, tmp_path):
    import torch

    from stepkit.data.record import load_records
    from stepkit.models.families import get_family
    from stepkit.train.collate import VideoChatEncoder
    from stepkit.train.trainer import load_trained, train

    qa_dir, graphs = world_qa
    out = tmp_path / "run"
    cfg = quick_config(qa_dir, tiny_models(family), out, max_steps=30, save_steps=15, videos_dir=str(graphs))
    res = train(cfg)
    assert res.finished and res.global_step == 30
    hist = [h for h in res.log_history if "loss" in h]
    assert len(hist) == 30
    ans = [h["loss_answer"] for h in hist if "loss_answer" in h]
    rat = [h["loss_rationale"] for h in hist if "loss_rationale" in h]
    assert _mean(ans[-4:]) < 0.8 * _mean(ans[:4]), ans
    assert _mean(rat[-4:]) < 0.8 * _mean(rat[:4]), rat
    # both terms are in the Trainer's own state file and in the loss log
    state = json.loads((out / "trainer_state.json").read_text())
    assert any("loss_answer" in h and "loss_rationale" in h for h in state["log_history"])
    assert len((out / "loss_log.jsonl").read_text().splitlines()) == 30
    ck = out / "checkpoint-30"
    man = json.loads((ck / "data_manifest.json").read_text())
    n = len(load_records(qa_dir))
    assert n >= 3 and man["records"] == n and man["samples"] == 2 * n and len(man["qa_sha256"]) == 64
    assert json.loads((ck / "step_config.json").read_text())["max_steps"] == 30

    model, processor = load_trained(out)
    trained = dict(res.trainer.model.named_parameters())
    for name, p in model.named_parameters():
        assert torch.equal(p, trained[name].detach()), name
    enc = VideoChatEncoder(processor, get_family(family), num_frames=4, max_side=112, video_base=qa_dir,
                           videos_dir=graphs)
    rec = load_records(qa_dir)[0]
    inputs = enc.prompt_inputs(rec, "answer")
    with torch.no_grad():
        gen = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new = gen[0, inputs["input_ids"].shape[1]:]
    assert new.numel() >= 1
    # what the reloaded model generates is what the trained model in memory generates
    with torch.no_grad():
        again = res.trainer.model.eval().generate(**inputs, max_new_tokens=6, do_sample=False)
    assert torch.equal(gen, again)
