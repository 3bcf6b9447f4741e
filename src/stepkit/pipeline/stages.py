"""A stage = one `stepkit` verb run in its own process, writing one folder, marked done when it exits.

Running stages as subprocesses keeps each stage exactly what a user would type, frees the
memory a model stage holds, and makes an interrupted run resumable from the done markers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from stepkit.errors import StepkitError
from stepkit.io import atomic_write_json, atomic_write_text
from stepkit.procgroup import run_group

DONE_MARKER = ".stage-done.json"


class StageFailed(StepkitError):
    """A stage's command exited with an error."""


@dataclass
class Stage:
    """One pipeline step: ``stepkit <argv>`` writing into ``out``."""

    name: str
    out: Path
    argv: list[str]
    round: int = 0
    stdout_to: Path | None = None
    ok_codes: tuple[int, ...] = (0,)
    # Decides extra argv at run time (e.g. --resume when a checkpoint exists).
    resume_argv: Callable[["Stage"], list[str]] | None = field(default=None, repr=False)
    # A process launcher that takes ``-m module`` (e.g. torchrun --nproc_per_node 8); this Python when empty.
    launcher: list[str] = field(default_factory=list)

    @property
    def marker(self) -> Path:
        """The file whose presence says the stage finished."""
        return self.out / DONE_MARKER

    def is_done(self) -> bool:
        """Whether this exact command already finished."""
        if not self.marker.is_file():
            return False
        try:
            return json.loads(self.marker.read_text())["argv"] == self.argv
        except (ValueError, KeyError):
            return False

    def command(self) -> list[str]:
        """The full command line."""
        extra = self.resume_argv(self) if self.resume_argv else []
        return [*(self.launcher or [sys.executable]), "-m", "stepkit.cli", *self.argv, *extra]

    def describe(self) -> str:
        """``round K  name  stepkit …`` for plans and logs."""
        prog = " ".join([*self.launcher, "-m", "stepkit.cli"]) if self.launcher else "stepkit"
        return f"round {self.round}  {self.name:<9} {prog} {' '.join(self.argv)}"


def run_stage(stage: Stage, log_dir: Path, env: dict[str, str] | None = None) -> float:
    """Run a stage unless already done; returns seconds spent (0 when skipped)."""
    if stage.is_done():
        return 0.0
    stage.out.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"round{stage.round}-{stage.name}.log"
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        # Its own process group, killed with this process (stepkit.procgroup): a killed run never
        # leaves a stage writing into the folder its rerun will write.
        proc = run_group(
            stage.command(),
            stdout=subprocess.PIPE if stage.stdout_to else log,
            stderr=log,
            env={**os.environ, **(env or {})},
            text=True,
        )
    if proc.returncode not in stage.ok_codes:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise StageFailed(f"stage {stage.name} (round {stage.round}) exited {proc.returncode}; log {log_path}:\n{tail}")
    if stage.stdout_to:
        atomic_write_text(stage.stdout_to, proc.stdout)
    seconds = time.perf_counter() - t0
    atomic_write_json(stage.marker, {"argv": stage.argv, "exit_code": proc.returncode, "seconds": round(seconds, 3)})
    return seconds


OnStage = Callable[[Stage, str, float], None]


def run_stages(stages: list[Stage], log_dir: Path, *, env: dict[str, str] | None = None,
               on_stage: OnStage | None = None, after: Callable[[Stage], None] | None = None) -> None:
    """Run each stage not yet done, in order; ``on_stage(stage, "start" | "done" | "skip", seconds)``
    reports progress and ``after(stage)`` runs once a stage has finished."""
    for stage in stages:
        if stage.is_done():
            if on_stage:
                on_stage(stage, "skip", 0.0)
            continue
        if on_stage:
            on_stage(stage, "start", 0.0)
        seconds = run_stage(stage, log_dir, env=env)
        if on_stage:
            on_stage(stage, "done", seconds)
        if after:
            after(stage)


def resume_if_checkpointed(stage: Stage) -> list[str]:
    """``--resume`` for a `stepkit train` stage whose folder already holds a checkpoint."""
    from stepkit.train.trainer import latest_checkpoint

    return ["--resume"] if latest_checkpoint(stage.out) is not None else []


def save_run_config(path: Path, config: dict) -> Path:
    """Write a run's config as YAML; refuse a folder that holds a run of another config."""
    import yaml

    from stepkit.errors import ConfigError

    text = yaml.safe_dump(config, sort_keys=True)
    if path.is_file() and path.read_text(encoding="utf-8") != text:
        raise ConfigError(f"{path}: this run folder holds a run of another config; give a new 'out' "
                          "or delete the folder")
    return atomic_write_text(path, text)
