"""The perception gate end to end on a real learner: a tiny Qwen2.5-VL trained by ``stepkit train`` on
a question only the pixels answer ("What colour is the square?") passes the gate, and the same
model before training fails it. This guards the whole train -> eval -> gate path against anything
that would make every model blind (frames dropped by the collator, the wrong clip decoded, a
shuffle that shows the own video)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stepkit.cli import app

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30),
           "white": (250, 250, 250), "black": (10, 10, 10), "orange": (240, 140, 20), "purple": (140, 30, 160)}
SIDE = 50  # pixels of a 320x180 frame; about 2x2 patches of the 112 px tiny model


def _square_video(path: Path, colour: str, x: int, y: int) -> None:
    import av

    with av.open(str(path), "w") as box:
        st = box.add_stream("mpeg4", rate=10)
        st.width, st.height, st.pix_fmt = 320, 180, "yuv420p"
        frame = np.full((180, 320, 3), 128, np.uint8)
        frame[y:y + SIDE, x:x + SIDE] = COLOURS[colour]
        for _ in range(20):
            for pkt in st.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                box.mux(pkt)
        for pkt in st.encode():
            box.mux(pkt)


def _square_set(root: Path, first: int, n: int, per_video: int) -> Path:
    """``n`` videos of one coloured square at a random place on grey, and ``per_video`` records each
    (the same question, options shuffled): the wording and options never tell the colour."""
    names = sorted(COLOURS)
    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(first, first + n):
        rng = random.Random(i)
        colour = names[rng.randrange(len(names))]
        path = videos / f"square{i:03d}.mp4"
        _square_video(path, colour, rng.randrange(0, 320 - SIDE), rng.randrange(0, 180 - SIDE))
        for k in range(per_video):
            opts = [colour, *rng.sample([c for c in names if c != colour], 3)]
            rng.shuffle(opts)
            lines.append(json.dumps({"id": f"square{i:03d}-q{k}", "video_id": f"square{i:03d}",
                                     "question": "What colour is the square?", "answer": colour, "steps": 1,
                                     "type": "attribute", "options": opts, "answer_index": opts.index(colour),
                                     "video": str(path.resolve())}))
    qa = root / "qa"
    qa.mkdir(parents=True, exist_ok=True)
    (qa / "qa.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return qa / "qa.jsonl"


def _gate(runner: CliRunner, model: Path, test: Path, out: Path) -> dict:
    for control in ("own", "shuffle"):
        res = runner.invoke(app, ["eval", "--backend", "hf", "--model", str(model), "--benchmark", "stepkit",
                                  "--data", str(test), "--mode", "mc-loglik", "--show-options", "--frames", "4",
                                  "--videos-from", control, "--seed", "0", "--bootstrap", "50", "--threads", "1",
                                  "--out", str(out / control)])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["eval", "gate", str(out / "own"), str(out / "shuffle"), "--bootstrap", "500",
                              "--out", str(out / "gate")])
    assert res.exit_code in (0, 1), res.output
    return json.loads((out / "gate" / "gate.json").read_text())


@pytest.mark.slow
def test_a_tiny_model_that_learned_to_look_passes_the_gate(tmp_path: Path) -> None:
    runner = CliRunner()
    train = _square_set(tmp_path / "train", 0, 48, 4)
    test = _square_set(tmp_path / "test", 1000, 24, 2)
    init = tmp_path / "init"
    res = runner.invoke(app, ["models", "tiny", "--family", "qwen2.5-vl", "--out", str(init), "--image-size", "112",
                              "--vision-hidden-size", "64", "--vision-layers", "2", "--num-frames", "4"])
    assert res.exit_code == 0, res.output
    before = _gate(runner, init, test, tmp_path / "before")
    assert before["passed"] is False

    res = runner.invoke(app, ["train", str(train), "--model", str(init), "--out", str(tmp_path / "run"),
                              "--samples", "answer", "--max-steps", "200", "--save-steps", "200", "--lr", "1e-3",
                              "--batch-size", "8", "--num-frames", "4", "--full", "--train-vision", "--threads", "1",
                              "--seed", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    after = _gate(runner, tmp_path / "run", test, tmp_path / "after")
    assert after["passed"] is True, after
    assert after["acc_frames"] >= 0.55 and after["acc_wrong_video"] <= 0.45, after
