"""STEP's dual-objective fine-tuning: collation, the loss, the Trainer, presets, checkpoints and resume.

Heavy dependencies (torch, transformers, peft) are imported inside functions, so importing this
package stays cheap.
"""

from __future__ import annotations

from stepkit.train.config import StepTrainConfig

__all__ = ["StepTrainConfig", "dual_objective_loss", "load_trained", "resume_config", "train"]


def __getattr__(name: str):
    if name in ("train", "resume_config", "load_trained", "latest_checkpoint"):
        from stepkit.train import trainer

        return getattr(trainer, name)
    if name == "dual_objective_loss":
        from stepkit.train.loss import dual_objective_loss

        return dual_objective_loss
    raise AttributeError(name)
