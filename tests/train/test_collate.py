"""Records → samples: labels on the assistant turn only, kinds per token, clip sampling, batching."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from stepkit.data.record import QRARecord, RationaleStep, load_records
from stepkit.errors import DataError, VideoError
from stepkit.train.clip import read_clip, sample_times
from stepkit.train.collate import (
    DataCollator,
    VideoChatEncoder,
    build_specs,
    rationale_target,
    record_samples,
)
from stepkit.train.loss import ANSWER, IGNORE_INDEX, IGNORE_KIND, RATIONALE


def test_sample_times_by_count_and_rate():
    assert sample_times(0, 2, num_frames=4, fps=None, max_frames=32) == [0.25, 0.75, 1.25, 1.75]
    assert len(sample_times(0, 3, num_frames=None, fps=2, max_frames=32)) == 6
    assert len(sample_times(0, 30, num_frames=None, fps=2, max_frames=16)) == 16
    assert len(sample_times(0, 1.5, num_frames=None, fps=2, max_frames=16, multiple_of=2)) == 4


def test_read_clip_window(qa_dir):
    clip = read_clip(qa_dir / "videos" / "vid0.mp4", (1.0, 2.0), num_frames=4)
    assert clip.frames.shape[0] == 4 and clip.frames.dtype.name == "uint8"
    assert all(0.9 <= t <= 2.0 for t in clip.times) and clip.times == sorted(clip.times)
    assert clip.indices == [round(t * 8) for t in clip.times] and clip.fps == pytest.approx(8)
    with pytest.raises(VideoError, match="nope.mp4"):
        read_clip(qa_dir / "nope.mp4")
    with pytest.raises(VideoError, match="empty window"):
        read_clip(qa_dir / "videos" / "vid0.mp4", (5.0, 6.0))


def _rec(**kw):
    base = dict(id="r1", video_id="v", question="What moved?", answer="the cube", steps=2, type="sequence",
                rationale=[RationaleStep("The cube moved."), RationaleStep("Nothing else did.")],
                answer_sentence="The cube moved.")
    base.update(kw)
    return QRARecord(**base)


def test_record_samples_modes():
    r = _rec()
    dual = record_samples(r, "dual")
    assert [s.kind for s in dual] == ["answer", "rationale"]
    assert dual[0].turns[0].target == "the cube" and dual[0].turns[0].kind == ANSWER
    assert dual[1].turns[0].target == "The cube moved. Nothing else did. The cube moved."
    assert r.rationale_instruction in dual[1].turns[0].user and r.question in dual[1].turns[0].user
    comb = record_samples(r, "combined")
    assert len(comb) == 1 and [t.kind for t in comb[0].turns] == [ANSWER, RATIONALE]
    assert [s.kind for s in record_samples(r, "answer")] == ["answer"]
    assert [s.kind for s in record_samples(_rec(rationale=[]), "dual")] == ["answer"]
    assert rationale_target(_rec(answer_sentence=""), True).endswith("The answer is the cube.")
    mc = record_samples(_rec(options=["the cube", "the ball"], answer_index=0), "answer")[0]
    assert "(A) the cube\n(B) the ball" in mc.turns[0].user
    with pytest.raises(DataError, match="r1"):
        record_samples(_rec(answer=" "), "dual")


@pytest.mark.parametrize("family", ["qwen2-vl", "llava-onevision", "smolvlm2"])
def test_labels_cover_assistant_turns_only(family, qa_dir, tiny_models):
    from transformers import AutoProcessor

    from stepkit.models.families import get_family

    proc = AutoProcessor.from_pretrained(tiny_models(family))
    tok = proc.tokenizer
    enc = VideoChatEncoder(proc, get_family(family), num_frames=4, max_side=112, video_base=qa_dir)
    rec = load_records(qa_dir)[0]
    a, r = (enc.encode(s) for s in record_samples(rec, "dual"))
    (c,) = (enc.encode(s) for s in record_samples(rec, "combined"))
    eos = tok.eos_token
    for feat, kinds in ((a, {ANSWER}), (r, {RATIONALE}), (c, {ANSWER, RATIONALE})):
        lab, kd, ids = feat["labels"], feat["label_kinds"], feat["input_ids"]
        sup = lab != IGNORE_INDEX
        assert torch.equal(lab[sup], ids[sup])
        assert torch.equal(sup, kd != IGNORE_KIND)
        assert set(kd[sup].tolist()) == kinds
        assert not sup[: int(sup.float().argmax())].any()  # the prompt (with the video) is unsupervised
        vis = ids == proc.tokenizer.convert_tokens_to_ids(
            "<|video_pad|>" if family == "qwen2-vl" else "<video>" if family == "llava-onevision" else "<image>")
        assert vis.sum() >= 2 and not sup[vis].any()
    assert tok.decode(a["input_ids"][a["labels"] != IGNORE_INDEX]).strip() == f"{rec.answer}{eos}"
    assert tok.decode(r["input_ids"][r["labels"] != IGNORE_INDEX]).strip() == f"{rationale_target(rec)}{eos}"
    ck = c["label_kinds"]
    assert tok.decode(c["input_ids"][ck == ANSWER]).strip() == f"{rec.answer}{eos}"
    assert tok.decode(c["input_ids"][ck == RATIONALE]).strip() == f"{rationale_target(rec)}{eos}"
    # the answer sample's prompt is exactly what generation gets
    prompt = enc.prompt_inputs(rec, "answer")
    n = prompt["input_ids"].shape[1]
    assert torch.equal(prompt["input_ids"][0], a["input_ids"][:n])
    batch = DataCollator(tok.pad_token_id)([a, r, c])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["label_kinds"].shape
    assert batch["sample_kind"].tolist() == [0, 1, 2]
    L = batch["input_ids"].shape[1]
    assert batch["attention_mask"][0, a["input_ids"].shape[0]:].sum() == 0 and L == max(
        f["input_ids"].shape[0] for f in (a, r, c))


def test_text_only_record_and_length_guard(qa_dir, tiny_models):
    from transformers import AutoProcessor

    from stepkit.models.families import get_family

    proc = AutoProcessor.from_pretrained(tiny_models("qwen2-vl"))
    enc = VideoChatEncoder(proc, get_family("qwen2-vl"), num_frames=4, video_base=qa_dir, max_length=110)
    feat = enc.encode(build_specs([_rec(video=None)], "answer")[0])
    assert "pixel_values_videos" not in feat and (feat["labels"] != IGNORE_INDEX).sum() > 0
    rec = load_records(qa_dir)[0]
    with pytest.raises(DataError, match="max_length"):
        enc.encode(record_samples(rec, "dual")[1])
