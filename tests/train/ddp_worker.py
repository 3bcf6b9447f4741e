"""Run under torchrun by test_ddp.py: train a tiny model with a preset (argv[4]) and dump this rank's parameters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from stepkit.train.config import StepTrainConfig
from stepkit.train.trainer import train

qa, model, out, preset = sys.argv[1:5]
cfg = StepTrainConfig(qa=qa, model=model, out=out, preset=preset, max_steps=6, num_frames=4, max_side=112,
                      per_device_batch_size=2, learning_rate=3e-3, lr_scheduler="constant", warmup_steps=0,
                      progress=False, save_steps=1000, freeze_vision=False)
res = train(cfg)
unwrapped = res.trainer.accelerator.unwrap_model(res.trainer.model)
params = {n: p.detach().cpu().clone() for n, p in unwrapped.named_parameters()}
rank = int(os.environ.get("RANK", "0"))
torch.save({"params": params, "world_size": res.trainer.args.world_size, "steps": res.global_step},
           Path(out) / f"rank{rank}.pt")
