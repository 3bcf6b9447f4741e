"""LLaVA-NeXT's placeholder rule and Video-R1's dataset mapping applied to the exports, and every
export folder loading with `datasets.load_dataset(folder)`.

LLaVA-NeXT and Video-R1 are not installable packages (LLaVA-NeXT's repository pins its own torch /
transformers; Video-R1 is a set of scripts), so the few lines of their data code that decide whether
the video reaches the model are re-implemented here from their sources, and nothing else:
LLaVA-NeXT (github.com/LLaVA-VL/LLaVA-NeXT, llava/train/train.py at df17966: LazySupervisedDataset
joins ``video_folder`` and ``item["video"]``; ``preprocess_multimodal`` counts ``DEFAULT_IMAGE_TOKEN``
("<image>", llava/constants.py) per sentence and moves a single one to the front;
llava/mm_utils.py ``tokenizer_image_token`` splits the prompt on "<image>" and inserts
IMAGE_TOKEN_INDEX (-200) per placeholder, which the model replaces with the video's features), and
Video-R1 (github.com/tulerfeng/Video-R1 at 59d65c3: src/r1-v/src/open_r1/grpo.py
``make_conversation_image_and_video``, ``accuracy_reward``'s ``<answer>`` extraction and
``format_reward``; src/r1-v/src/open_r1/sft_video.py ``prepare_dataset``, which opens
``os.getcwd() + "/Video-R1-data" + example["path"][1:]``).
"""

from __future__ import annotations

import json
import os
import re

import pytest
from interop_cli import invoke

DEFAULT_IMAGE_TOKEN = "<image>"
IMAGE_TOKEN_INDEX = -200


def _llava_preprocess_multimodal(conversations: list[dict]) -> list[dict]:
    """LLaVA-NeXT's preprocess_multimodal for one source (mm_use_im_start_end off, no mmtag)."""
    out = []
    for sentence in conversations:
        value = sentence["value"]
        num_im = len(re.findall(DEFAULT_IMAGE_TOKEN, value))
        if num_im == 1 and DEFAULT_IMAGE_TOKEN in value and not value.startswith(DEFAULT_IMAGE_TOKEN):
            value = (DEFAULT_IMAGE_TOKEN + "\n" + value.replace(DEFAULT_IMAGE_TOKEN, "").strip()).strip()
        out.append({**sentence, "value": value})
    return out


def _llava_tokenizer_image_token(prompt: str, tokenize) -> list[int]:
    """LLaVA-NeXT's tokenizer_image_token (no BOS offset): text chunks joined by IMAGE_TOKEN_INDEX."""
    chunks = [tokenize(c) for c in prompt.split("<image>")]
    ids: list[int] = []
    for i, c in enumerate(chunks):
        if i:
            ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(c)
    return ids


@pytest.mark.parametrize("paths", ["absolute", "relative"])
def test_llava_export_has_one_placeholder_per_sample(world, tmp_path, monkeypatch, paths):
    from transformers import AutoTokenizer

    from stepkit.models.tiny import tiny_model_path

    folder = tmp_path / "llava"
    invoke("qa", "export", world["qa"], "--format", "llava", "--out", folder, "--paths", paths)
    tok = AutoTokenizer.from_pretrained(tiny_model_path("qwen2.5-vl"))  # LLaVA-Video-7B-Qwen2 is a Qwen2 LLM
    items = json.loads((folder / "llava.json").read_text())
    monkeypatch.chdir(tmp_path)  # LLaVA-NeXT's training runs from its own checkout
    for it in items:
        assert "video" in it  # the key LazySupervisedDataset branches on
        assert os.path.exists(os.path.join(str(folder), it["video"]))  # --video_folder = the export folder
        conv = _llava_preprocess_multimodal(it["conversations"])
        assert [s["from"] for s in conv] == ["human", "gpt"]
        assert sum(len(re.findall(DEFAULT_IMAGE_TOKEN, s["value"])) for s in conv) == 1
        assert conv[0]["value"].startswith(DEFAULT_IMAGE_TOKEN + "\n")
        ids = _llava_tokenizer_image_token(conv[0]["value"] + conv[1]["value"],
                                           lambda t: tok(t, add_special_tokens=False)["input_ids"])
        assert ids.count(IMAGE_TOKEN_INDEX) == 1  # one video -> one placeholder -> its features are used


def _video_r1_sft_messages(example: dict) -> list[dict]:
    """Video-R1's sft_video.py prepare_dataset (templates shortened: only their structure matters here)."""
    if example["problem_type"] == "multiple choice":
        question = example["problem"] + "Options:\n" + "".join(op + "\n" for op in example["options"])
    else:
        question = example["problem"]
    return [
        {"role": "user", "content": [
            {"type": example["data_type"],
             example["data_type"]: os.getcwd() + "/Video-R1-data" + example["path"][1:]},
            {"type": "text", "text": question}]},
        {"role": "assistant", "content": [{"type": "text", "text": example["process"] + "\n" + example["solution"]}]},
    ]


def _video_r1_extract_answer(text: str) -> str:
    m = re.search(r"<answer>\s*(.*?)\s*</answer>", text, re.DOTALL)
    return m.group(1).strip() if m else ""


def test_video_r1_export_passes_its_dataset_mapping(world, exports, tmp_path, monkeypatch):
    from datasets import Dataset

    from stepkit.data.record import load_records

    recs = {r.id: r for r in load_records(world["qa"])}
    # Video-R1's README: the data sits in src/r1-v/Video-R1-data, the scripts run from src/r1-v
    run_dir = tmp_path / "r1-v"
    run_dir.mkdir()
    (run_dir / "Video-R1-data").symlink_to(exports["video-r1"], target_is_directory=True)
    ds = Dataset.from_json(str(exports["video-r1"] / "video_r1.json"))  # as grpo.py / sft_video.py load it
    assert len(ds) == len(recs)
    monkeypatch.chdir(run_dir)
    for ex in ds:
        rec = recs[ex["id"]]
        assert ex["data_type"] == "video" and ex["path"].startswith("./")
        assert re.fullmatch(r"<think>.+</think>", ex["process"], re.S)
        assert re.fullmatch(r"<answer>.+</answer>", ex["solution"], re.S)
        answer = _video_r1_extract_answer(ex["solution"])
        if rec.options:
            assert ex["problem_type"] == "multiple choice"
            assert ex["options"] == [f"{chr(65 + i)}. {o}" for i, o in enumerate(rec.options)]
            assert answer == chr(65 + rec.answer_index)
        else:
            assert ex["problem_type"] in ("numerical", "free-form") and answer == rec.answer
        messages = _video_r1_sft_messages(ex)
        assert os.path.isfile(messages[0]["content"][0]["video"])
        # format_reward: the SFT target is exactly what the GRPO format reward accepts
        assert re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", messages[1]["content"][0]["text"], re.S)


def test_every_export_folder_loads_with_load_dataset(world, exports, tmp_path):
    from datasets import load_dataset, load_from_disk

    n_records = len((world["qa"] / "qa.jsonl").read_text().splitlines())
    expect = {"llava": 2 * n_records, "chatml": 2 * n_records, "trl": 2 * n_records, "hf": 2 * n_records,
              "video-r1": n_records}
    for fmt, folder in exports.items():
        ds = load_dataset(str(folder), split="train")
        assert len(ds) == expect[fmt], fmt
    assert len(load_from_disk(str(exports["hf"] / "hf"))) == expect["hf"]
    assert not (exports["trl"] / "README.md").exists()  # one export alone: datasets finds its file itself
    # without --out each export gets its own folder beside qa.jsonl and summary.json
    for fmt, sub in (("llava", "llava"), ("trl", "trl"), ("video-r1", "video_r1")):
        invoke("qa", "export", world["qa"], "--format", fmt)
        assert len(load_dataset(str(world["qa"] / sub), split="train")) == expect[fmt]
    invoke("qa", "export", world["qa"], "--format", "hf")
    assert len(load_from_disk(str(world["qa"] / "hf"))) == expect["hf"]
    # several exports in one folder: a dataset card names each; the latest is the default
    shared = tmp_path / "shared"
    for fmt in ("llava", "trl", "chatml"):
        invoke("qa", "export", world["qa"], "--format", fmt, "--out", shared)
    assert (shared / "README.md").is_file()
    assert "messages" in load_dataset(str(shared), split="train").column_names
    for name, column in (("llava", "conversations"), ("trl", "prompt")):
        ds = load_dataset(str(shared), name, split="train")
        assert len(ds) == 2 * n_records and column in ds.column_names
