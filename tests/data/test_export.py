"""Exports: LLaVA JSON, ChatML through a real (tiny) Qwen2.5-VL processor, HF datasets folder."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from typer.testing import CliRunner

from stepkit.cli import app
from stepkit.data.export import export, samples
from stepkit.data.record import QRARecord, load_records
from stepkit.errors import ConfigError


def test_record_to_dict_matches_asdict_and_roundtrips(qa_dir):
    recs = load_records(qa_dir)
    assert recs
    for r in recs:
        d = asdict(r)
        d["window"] = list(d["window"]) if d["window"] is not None else None
        assert r.to_dict() == d
        assert QRARecord.from_dict(json.loads(r.to_json())) == r


def test_record_line_is_compact_sorted_utf8(qa_dir):
    """The qa.jsonl line format: what json.dumps writes with sorted keys, compact separators and
    UTF-8 left unescaped (pinned so that a JSON library upgrade cannot change files silently)."""
    r = load_records(qa_dir)[0]
    r.question = "Qu'a fait la personne après avoir ouvert la porte ? 门"
    line = r.to_json()
    assert "\n" not in line and line == json.dumps(r.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_llava_two_samples_per_record(qa_dir, tmp_path):
    recs = load_records(qa_dir)
    path = export(qa_dir, tmp_path, "llava")
    items = json.loads(path.read_text())
    assert len(items) == 2 * len(recs)
    for it in items:
        human, gpt = it["conversations"]
        assert human["from"] == "human" and human["value"].startswith("<image>\n")  # LLaVA-NeXT's media token
        assert gpt["from"] == "gpt" and gpt["value"]
    by_id = {it["id"]: it for it in items}
    r = recs[0]
    ans, rat = by_id[f"{r.id}-answer"], by_id[f"{r.id}-rationale"]
    assert r.answer_instruction in ans["conversations"][0]["value"]
    assert r.rationale_instruction in rat["conversations"][0]["value"]
    assert rat["conversations"][1]["value"] == r.rationale_text and r.answer in rat["conversations"][1]["value"]


def test_combined_and_options(qa_dir, tmp_path):
    recs = load_records(qa_dir)
    path = export(qa_dir, tmp_path, "llava", combined=True, with_options=True)
    items = json.loads(path.read_text())
    assert len(items) == len(recs)
    for it, r in zip(items, recs):
        out = it["conversations"][1]["value"]
        assert out.endswith(f"Answer: {r.answer}") and out.startswith(r.rationale[0].text)
        if r.options:
            assert "(A) " in it["conversations"][0]["value"]
    path = export(qa_dir, tmp_path / "v", "llava", videos_dir="/data/videos")
    assert all(it["video"].startswith("/data/videos/") and it["video"].endswith(".mp4")
               for it in json.loads(path.read_text()))
    with pytest.raises(ConfigError, match="unknown export format 'csv'"):
        export(qa_dir, tmp_path, "csv")


def test_chatml_goes_through_qwen25vl_chat_template(qa_dir, tmp_path):
    from transformers import AutoProcessor

    from stepkit.models.tiny import tiny_model_path

    path = export(qa_dir, tmp_path, "chatml")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 2 * len(load_records(qa_dir))
    proc = AutoProcessor.from_pretrained(tiny_model_path("qwen2.5-vl"))
    for row in rows[:6]:
        user, assistant = row["messages"]
        assert user["content"][0]["type"] == "video"
        text = proc.apply_chat_template(row["messages"], tokenize=False)
        assert "<|video_pad|>" in text
        assert user["content"][1]["text"].split("\n")[-1] in text
        assert assistant["content"][0]["text"] in text
    # the prompt part alone (generation prompt) is what the trainer masks out
    prompt = proc.apply_chat_template(rows[0]["messages"][:1], tokenize=False, add_generation_prompt=True)
    assert prompt.rstrip().endswith("assistant")


def test_hf_datasets_folder_loads(qa_dir, tmp_path):
    from datasets import load_from_disk

    recs = load_records(qa_dir)
    res = CliRunner().invoke(app, ["qa", "export", str(qa_dir), "--format", "hf", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    ds = load_from_disk(str(tmp_path / "hf"))
    assert len(ds) == 2 * len(recs)
    assert {"question", "response", "instruction", "steps", "type", "program", "kind"} <= set(ds.column_names)
    assert sorted(set(ds["kind"])) == ["answer", "rationale"]
    row = ds[0]
    assert json.loads(row["program"])[-1]["op"] and row["steps"] == recs[0].steps


def test_samples_use_the_two_instructions():
    r = QRARecord(id="x", video_id="v", question="What is held?", answer="cup", steps=1, type="relation",
                  answer_sentence="The man holds the cup.", answer_instruction="A-instr", rationale_instruction="R-instr")
    a, b = samples(r)
    assert (a["instruction"], a["response"]) == ("A-instr", "The man holds the cup.")
    assert b["instruction"] == "R-instr"


@pytest.mark.parametrize("fmt", ["llava", "chatml", "trl", "video-r1"])
def test_exports_are_byte_identical_across_runs(qa_dir, tmp_path, fmt):
    a = export(qa_dir, tmp_path / "a", fmt)
    b = export(qa_dir, tmp_path / "b", fmt)
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 0
