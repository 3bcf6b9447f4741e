"""TRL's real SFTTrainer on the `trl` export: tiny Qwen2.5-VL and SmolVLM2 train with pixel values in
every batch; a batch with media placeholders but no pixel values fails loudly."""

from __future__ import annotations

import pytest

trl = pytest.importorskip("trl", reason="TRL is not installed: pip install -e '.[interop]'")


@pytest.mark.parametrize("family", ["qwen2.5-vl", "smolvlm2"])
def test_sft_trainer_sees_the_video(exports, tmp_path, family, one_torch_thread):
    from datasets import load_dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    from stepkit.data.trl import VideoSFTCollator
    from stepkit.models.tiny import tiny_model_path

    path = tiny_model_path(family)
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    ds = load_dataset(str(exports["trl"]), split="train")  # the folder's dataset card names trl.jsonl
    assert "prompt" in ds.column_names and "completion" in ds.column_names
    batches: list[dict] = []

    class Recording(VideoSFTCollator):
        def __call__(self, examples):
            batch = super().__call__(examples)
            batches.append(batch)
            return batch

    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-3,
                     remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True}, report_to=[],
                     save_strategy="no", logging_steps=1, use_cpu=True, bf16=False, gradient_checkpointing=False,
                     dataloader_num_workers=0, seed=0)
    trainer = SFTTrainer(model=model, processing_class=processor, train_dataset=ds,
                         data_collator=Recording(processor, num_frames=4, max_side=112), args=args)
    result = trainer.train()
    assert result.global_step == 3 and len(batches) >= 3
    video_key = "pixel_values_videos" if family == "qwen2.5-vl" else "pixel_values"
    token = processor.video_token if family == "qwen2.5-vl" else processor.image_token
    token_id = processor.tokenizer.convert_tokens_to_ids(token)
    for b in batches:
        assert b[video_key].numel() > 0 and b[video_key].abs().sum() > 0
        assert ((b["input_ids"] == token_id).sum(dim=1) > 0).all()  # every sample carries its clip
        assert (b["labels"] != -100).any() and (b["labels"][b["input_ids"] == token_id] == -100).all()
    if family == "qwen2.5-vl":  # temporal patches with their time step, not stills
        assert all((b["video_grid_thw"][:, 0] >= 2).all() and b["second_per_grid_ts"].numel() for b in batches)
    else:  # SmolVLM2's video path writes each frame's timestamp into the prompt
        text = processor.tokenizer.decode(batches[0]["input_ids"][0])
        assert "Frame from" in text


def test_placeholders_without_pixels_fail_loudly(exports):
    """What TRL's text-only path does to a video chat (placeholders, no pixels) is refused by the check,
    wrapped around TRL's own collator."""
    import json

    from transformers import AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from stepkit.data.trl import MissingMediaError, check_media, checked
    from stepkit.models.tiny import tiny_model_path

    processor = AutoProcessor.from_pretrained(tiny_model_path("qwen2.5-vl"))
    row = json.loads((exports["chatml"] / "chatml.jsonl").read_text().splitlines()[0])
    text = processor.apply_chat_template(row["messages"], tokenize=False)
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    collate = checked(DataCollatorForLanguageModeling(pad_token_id=processor.tokenizer.pad_token_id), processor)
    with pytest.raises(MissingMediaError, match="no pixel values"):
        collate([{"input_ids": ids}])
    plain = processor.tokenizer("no video here", add_special_tokens=False)["input_ids"]
    assert check_media(collate([{"input_ids": plain}]), processor) == 0


def test_missing_video_is_a_clear_error(exports, tmp_path):
    from transformers import AutoProcessor

    from stepkit.data.trl import VideoSFTCollator
    from stepkit.errors import StepkitError
    from stepkit.models.tiny import tiny_model_path

    processor = AutoProcessor.from_pretrained(tiny_model_path("qwen2.5-vl"))
    row = {"id": "r1", "prompt": [{"role": "user", "content": [{"type": "video", "video": str(tmp_path / "gone.mp4")},
                                                              {"type": "text", "text": "What?"}]}],
           "completion": [{"role": "assistant", "content": [{"type": "text", "text": "A cup."}]}]}
    with pytest.raises(StepkitError, match=r"trl row 'r1'.*gone\.mp4 not found"):
        VideoSFTCollator(processor)([row])


def test_relative_exports_and_chatml_rows(world, tmp_path):
    """A --paths relative trl export needs the export's folder as ``base`` (never the working
    directory); the chatml export's ``messages`` rows collate with their video too."""
    import json

    from transformers import AutoProcessor

    from interop_cli import invoke
    from stepkit.data.trl import VideoSFTCollator
    from stepkit.errors import StepkitError
    from stepkit.models.tiny import tiny_model_path

    processor = AutoProcessor.from_pretrained(tiny_model_path("qwen2.5-vl"))
    folder = tmp_path / "rel"
    invoke("qa", "export", world["qa"], "--format", "trl", "--out", folder, "--paths", "relative")
    rows = [json.loads(x) for x in (folder / "trl.jsonl").read_text().splitlines()[:2]]
    with pytest.raises(StepkitError, match="is relative; pass base="):
        VideoSFTCollator(processor, num_frames=2, max_side=56)(rows)
    batch = VideoSFTCollator(processor, num_frames=2, max_side=56, base=folder)(rows)
    assert batch["pixel_values_videos"].numel() > 0
    invoke("qa", "export", world["qa"], "--format", "chatml", "--out", tmp_path / "chat")
    chat = [json.loads(x) for x in (tmp_path / "chat" / "chatml.jsonl").read_text().splitlines()[:2]]
    batch = VideoSFTCollator(processor, num_frames=2, max_side=56)(chat)
    assert batch["pixel_values_videos"].numel() > 0 and (batch["labels"] != -100).any()
