"""`torchrun --nproc_per_node 2` (gloo, 127.0.0.1): DDP (and ZeRO-2 where DeepSpeed is installed) leave both
ranks with identical parameters."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["ddp", "zero2"])
def test_torchrun_two_ranks_identical(preset, qa_dir, tiny_models, tmp_path):
    import importlib.util

    from safetensors.torch import load_file

    if preset == "zero2" and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("DeepSpeed is optional and not installed (pip install --no-build-isolation deepspeed)")
    out = tmp_path / "ddp"
    model = tiny_models("qwen2-vl")
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(worker), str(qa_dir), str(model),
           str(out), preset]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")
    assert r0["world_size"] == r1["world_size"] == 2 and r0["steps"] == r1["steps"] == 6
    assert r0["params"].keys() == r1["params"].keys()
    for k in r0["params"]:
        assert torch.equal(r0["params"][k], r1["params"][k]), k
    init = load_file(str(model / "model.safetensors"))
    final = load_file(str(out / "model.safetensors"))
    assert any(not torch.equal(final[k], init[k]) for k in init if k in final)  # it did train
    assert len((out / "loss_log.jsonl").read_text().splitlines()) == 6  # rank 0 alone writes the log
