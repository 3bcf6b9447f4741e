"""benchmarks/oracle_vision.py: the visual tokens a model receives are the oracle's for the video whose
frames it was shown (so the wrong-video control stays honest), through the real processor and model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from stepkit.cli import app

ROOT = Path(__file__).resolve().parents[2]

CHECK = r"""
import sys, torch, transformers
sys.path.insert(0, {bench!r})
import oracle_vision
oracle_vision.install({model!r}, {graphs!r})
import stepkit.video as video
from stepkit.graph.serialize import load_graph
from stepkit.train.vision_pretrain import oracle_tokens, token_targets
S = oracle_vision._STATE
proc = transformers.AutoProcessor.from_pretrained({model!r})
model = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained({model!r})
outs = []
for name in {videos!r}:
    s = video.sample_frames({world!r} + "/videos/" + name + ".mp4", n=4)
    out = proc.video_processor(videos=[list(s.frames)], return_tensors="pt")
    got = model.model.get_video_features(out["pixel_values_videos"], out["video_grid_thw"]).pooler_output[0]
    g = load_graph({world!r} + "/graphs/" + name + ".json")
    grid = tuple(out["video_grid_thw"][0].tolist())
    y = token_targets(g, [s.times[2 * t] for t in range(grid[0])], (g.width, g.height), grid, 2,
                      S["labels"], S["colours"], 0.3, S["events"])
    want = oracle_tokens(y, S["vectors"], S["floor"], S["norm"])
    assert torch.allclose(got, want, atol=1e-5), (name, (got - want).abs().max())
    outs.append(got)
    words = S["labels"] + S["colours"] + S["events"]
    seen = {{words[i] for i in (y[:, :len(S["labels"])] > 0).nonzero()[:, 1].tolist()}}
    assert seen, name
    print(name, "ok", sorted(seen))
assert outs[0].shape == outs[1].shape and not torch.allclose(outs[0], outs[1])  # each clip, its own video's
print("distinct")
"""


def test_the_model_receives_the_oracle_of_the_video_it_was_shown(tmp_path: Path, tiny_models) -> None:
    world = tmp_path / "W"
    r = CliRunner().invoke(app, ["world", "--out", str(world), "--videos", "2", "--duration", "4", "--size", "160x96",
                                 "--workers", "1", "--seed", "5"])
    assert r.exit_code == 0, r.output
    names = sorted(p.stem for p in (world / "videos").glob("*.mp4"))
    code = CHECK.format(bench=str(ROOT / "benchmarks"), model=str(tiny_models("qwen2.5-vl")),
                        graphs=str(world / "graphs"), world=str(world), videos=names)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [line for line in res.stdout.splitlines() if line.endswith("]") and " ok " in line]
    assert len(lines) == 2 and res.stdout.rstrip().endswith("distinct")
