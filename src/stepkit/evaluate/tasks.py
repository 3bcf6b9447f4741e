"""The task registry (lmms-eval style): each benchmark is a name, a loader, a default mode and an answer format."""

from __future__ import annotations

from dataclasses import dataclass

from stepkit.errors import ConfigError
from stepkit.evaluate import loaders
from stepkit.evaluate.loaders import Loader

MODES = ("mc-loglik", "mc-generate", "open", "reason")


@dataclass(frozen=True)
class Task:
    """A benchmark: how to load it, how it is scored by default, what its answers look like."""

    name: str
    loader: Loader
    default_mode: str
    answer_format: str  # "mc" (options + gold index) or "open" (free text)
    description: str

    def modes(self) -> tuple[str, ...]:
        """Modes this task supports (under a multiple-choice mode, yes/no questions get the options
        yes/no and other open questions are scored open-ended; ``reason``: the model explains, then
        answers, on any task)."""
        return MODES


TASKS: dict[str, Task] = {
    "star": Task("star", loaders.load_star, "mc-loglik", "mc",
                 "STAR situated reasoning (SeViLA or official JSON); steps from the template"),
    "agqa": Task("agqa", loaders.load_agqa, "open", "open", "AGQA 2.0 balanced; open answers with its steps"),
    "nextqa": Task("nextqa", loaders.load_nextqa, "mc-loglik", "mc", "NExT-QA multiple choice (CSV)"),
    "mvbench": Task("mvbench", loaders.load_mvbench, "mc-generate", "mc", "MVBench task JSON files"),
    "stepkit": Task("stepkit", loaders.load_stepkit, "mc-loglik", "mc",
                    "stepkit Q/R/A (qa.jsonl); open when records have no options"),
}


def get_task(name: str) -> Task:
    """The task registered as ``name``."""
    if name not in TASKS:
        raise ConfigError(f"unknown benchmark {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def register_task(task: Task) -> None:
    """Add or replace a task (plug-ins)."""
    TASKS[task.name] = task
