"""STEP's dual objective: L = L_answer + λ·L_rationale over per-sample token-averaged cross-entropy.

Every supervised token carries a *kind* (``ANSWER`` = 0, ``RATIONALE`` = 1; ``IGNORE`` = -1 for the
prompt and padding). For each sample and each kind present in it, the tokens of that kind are
averaged into one per-sample loss; a term is the mean of those per-sample losses over the batch
(the paper's 1/N Σ form). A term with no samples in the batch contributes 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

IGNORE_INDEX = -100
ANSWER, RATIONALE, IGNORE_KIND = 0, 1, -1
KIND_NAMES = {ANSWER: "answer", RATIONALE: "rationale"}


@dataclass
class DualLoss:
    """The total loss and its two terms (terms detached), with how many samples fed each term."""

    loss: torch.Tensor
    answer: torch.Tensor
    rationale: torch.Tensor
    n_answer: int
    n_rationale: int


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits go to float32 for the softmax; float32/float64 stay as they are."""
    import torch

    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def dual_objective_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    label_kinds: torch.Tensor,
    lambda_rationale: float = 1.0,
) -> DualLoss:
    """L = L_answer + λ·L_rationale for a batch.

    ``logits`` (B, T, V) are the model's outputs, ``labels`` (B, T) the targets aligned with the inputs
    (``-100`` where not supervised; shifted here), ``label_kinds`` (B, T) the kind of each label token.
    Only supervised positions go through the softmax, so the cost scales with the target tokens.
    """
    import torch
    import torch.nn.functional as F

    shift_labels = labels[:, 1:].to(logits.device)
    kinds = label_kinds[:, 1:].to(logits.device)
    rows, cols = (shift_labels != IGNORE_INDEX).nonzero(as_tuple=True)
    ce = F.cross_entropy(_upcast(logits[rows, cols]), shift_labels[rows, cols], reduction="none")  # (N,)
    tok_kind = kinds[rows, cols]
    batch = labels.shape[0]
    terms: list[torch.Tensor] = []
    counts: list[int] = []
    for kind in (ANSWER, RATIONALE):
        m = tok_kind == kind
        r = rows[m]
        tok_sum = ce.new_zeros(batch).index_add(0, r, ce[m])
        n_tok = torch.bincount(r, minlength=batch)
        has = n_tok > 0
        n_samples = int(has.sum())
        if n_samples == 0:
            terms.append(ce.sum() * 0.0)  # keeps the graph connected; contributes exactly 0
        else:
            terms.append((tok_sum[has] / n_tok[has]).sum() / n_samples)
        counts.append(n_samples)
    answer, rationale = terms
    loss = answer + lambda_rationale * rationale if lambda_rationale != 0 else answer + 0.0 * rationale
    return DualLoss(loss, answer.detach(), rationale.detach(), counts[0], counts[1])


def plain_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Ordinary token-averaged cross-entropy over every supervised token of the batch (the baseline)."""
    import torch.nn.functional as F

    shift_logits = logits[:, :-1, :]
    shift_labels = labels[:, 1:]
    return F.cross_entropy(
        _upcast(shift_logits.reshape(-1, shift_logits.size(-1))),
        shift_labels.reshape(-1).to(shift_logits.device),
        ignore_index=IGNORE_INDEX,
    )


# --- logits only where supervised --------------------------------------------------------------
#
# A Video-LLM's LM head turns every position's hidden state into V logits (V = 151,936 for Qwen):
# at 4k tokens that is 2.5 GB in float32, and its gradient as much again, although answers and
# rationales are a few percent of the tokens. The model's own ``logits_to_keep`` argument (every
# supported family takes it) applies the head to chosen positions only; the loss then sees the
# same logits at those positions as before, so its value is unchanged.

def supervised_positions(labels: torch.Tensor) -> torch.Tensor:
    """Ascending positions whose logits predict a supervised token (the union over the batch)."""
    import torch

    keep = (labels[:, 1:] != IGNORE_INDEX).any(0).nonzero(as_tuple=True)[0]
    if keep.numel() == 0:  # nothing supervised: one position keeps the graph (and the loss is 0)
        keep = torch.zeros(1, dtype=torch.long, device=labels.device)
    return keep


def kept_targets(labels: torch.Tensor, label_kinds: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and kinds aligned, as :func:`dual_objective_loss` expects, with logits computed at ``keep`` only."""
    import torch

    keep = keep.to(labels.device)
    b = labels.shape[0]
    lab = torch.cat([labels.new_full((b, 1), IGNORE_INDEX), labels[:, keep + 1]], dim=1)
    kinds = label_kinds.to(labels.device)
    kin = torch.cat([kinds.new_full((b, 1), IGNORE_KIND), kinds[:, keep + 1]], dim=1)
    return lab, kin


def takes_logits_to_keep(model) -> bool:
    """Whether ``model`` (or the model inside a PEFT / DDP wrapper) accepts ``logits_to_keep``."""
    import inspect

    inner = model
    for _ in range(4):
        if hasattr(inner, "module") and not hasattr(inner, "lm_head"):  # DDP / accelerate wrappers
            inner = inner.module
        elif hasattr(inner, "get_base_model"):  # PEFT
            inner = inner.get_base_model()
        else:
            break
    try:
        return "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return False


def model_dual_loss(model, inputs: dict, labels: torch.Tensor, label_kinds: torch.Tensor,
                    lambda_rationale: float = 1.0, *, supervised_only: bool = True):
    """Run ``model`` on ``inputs`` and return ``(DualLoss, outputs)``.

    With ``supervised_only`` (and a model that takes ``logits_to_keep``) the LM head runs on the
    supervised positions only and ``outputs.logits`` holds just those; otherwise on every position.
    """
    if supervised_only and takes_logits_to_keep(model):
        keep = supervised_positions(labels).to(labels.device)
        dev = next((v.device for v in inputs.values() if hasattr(v, "device")), labels.device)
        outputs = model(**inputs, logits_to_keep=keep.to(dev))
        lab, kin = kept_targets(labels, label_kinds, keep)
        return dual_objective_loss(outputs.logits, lab, kin, lambda_rationale), outputs
    outputs = model(**inputs)
    return dual_objective_loss(outputs.logits, labels, label_kinds, lambda_rationale), outputs
