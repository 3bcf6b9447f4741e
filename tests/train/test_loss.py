"""The dual objective against a hand computation."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

# At module level: when the test body runs, `conftest` in sys.modules is whichever folder's came last.
from conftest import quick_config  # noqa: E402
from stepkit.train.loss import (
    ANSWER,
    IGNORE_INDEX,
    IGNORE_KIND,
    RATIONALE,
    dual_objective_loss,
    plain_loss,
)

A, R, I = ANSWER, RATIONALE, IGNORE_KIND


def _batch():
    """3 samples, 6 positions, vocab 5: an answer sample (2 targets), a rationale sample (4 targets)
    and a combined sample (1 answer target, 2 rationale targets)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
    labels = torch.tensor([[-100, -100, -100, -100, 3, 1],
                           [-100, -100, 2, 0, 4, 4],
                           [-100, -100, 1, -100, 2, 3]])
    kinds = torch.tensor([[I, I, I, I, A, A],
                          [I, I, R, R, R, R],
                          [I, I, A, I, R, R]])
    return logits, labels, kinds


def _hand(logits, labels, kinds, lam):
    """Plain-python reference: per-token -log softmax, averaged per sample and kind, then over samples."""
    per = {A: [], R: []}
    for b in range(labels.shape[0]):
        acc = {A: [], R: []}
        for t in range(1, labels.shape[1]):
            y = int(labels[b, t])
            if y == IGNORE_INDEX:
                continue
            row = [float(x) for x in logits[b, t - 1]]
            lse = math.log(sum(math.exp(x) for x in row))
            acc[int(kinds[b, t])].append(lse - row[y])
        for k in (A, R):
            if acc[k]:
                per[k].append(sum(acc[k]) / len(acc[k]))
    la = sum(per[A]) / len(per[A]) if per[A] else 0.0
    lr = sum(per[R]) / len(per[R]) if per[R] else 0.0
    return la + lam * lr, la, lr


@pytest.mark.parametrize("lam", [0.5, 1.0])
def test_loss_equals_hand_computation(lam):
    logits, labels, kinds = _batch()
    d = dual_objective_loss(logits, labels, kinds, lam)
    total, la, lr = _hand(logits, labels, kinds, lam)
    assert d.n_answer == 2 and d.n_rationale == 2
    assert float(d.answer) == pytest.approx(la, abs=1e-12)
    assert float(d.rationale) == pytest.approx(lr, abs=1e-12)
    assert float(d.loss) == pytest.approx(total, abs=1e-12)


def test_lambda_zero_is_exactly_the_answer_only_loss():
    logits, labels, kinds = _batch()
    x0 = logits.clone().requires_grad_(True)
    d0 = dual_objective_loss(x0, labels, kinds, 0.0)
    d0.loss.backward()
    # the same batch with rationale targets removed: nothing but the answer objective is left
    ans_labels = labels.masked_fill(kinds == R, IGNORE_INDEX)
    x1 = logits.clone().requires_grad_(True)
    d1 = dual_objective_loss(x1, ans_labels, kinds, 1.0)
    d1.loss.backward()
    assert d1.n_rationale == 0
    assert torch.equal(d0.loss.detach(), d1.loss.detach())
    assert torch.equal(x0.grad, x1.grad)
    assert float(d0.rationale) > 0  # the rationale term was there, it just has weight 0


def test_missing_term_contributes_zero_and_terms_do_not_depend_on_length():
    logits, labels, kinds = _batch()
    only_answer = labels.clone()
    only_answer[1:] = IGNORE_INDEX
    x = logits.clone().requires_grad_(True)
    d = dual_objective_loss(x, only_answer, kinds, 1.0)
    assert d.n_rationale == 0 and float(d.rationale) == 0.0
    assert float(d.loss.detach()) == pytest.approx(_hand(logits, only_answer, kinds, 1.0)[0], abs=1e-12)
    d.loss.backward()
    assert x.grad[1:].abs().sum() == 0 and x.grad[0].abs().sum() > 0
    # a rationale sample's weight is one sample, however many tokens it has: repeating its tokens
    # (same per-token losses) leaves L_rationale unchanged, whereas plain CE shifts toward it
    lg = torch.zeros(2, 9, 3, dtype=torch.float64)
    lg[:, :, 0] = 2.0
    lab = torch.tensor([[-100, 0, -100, -100, -100, -100, -100, -100, -100],
                        [-100, 1, -100, -100, -100, -100, -100, -100, -100]])
    kd = torch.tensor([[I, A] + [I] * 7, [I, R] + [I] * 7])
    long_lab = lab.clone()
    long_lab[1, 1:] = 1
    long_kd = kd.clone()
    long_kd[1, 1:] = R
    short, long = dual_objective_loss(lg, lab, kd), dual_objective_loss(lg, long_lab, long_kd)
    assert float(short.rationale) == pytest.approx(float(long.rationale), abs=1e-12)
    assert float(short.loss) == pytest.approx(float(long.loss), abs=1e-12)
    assert float(plain_loss(lg, lab)) != pytest.approx(float(plain_loss(lg, long_lab)), abs=1e-6)


def test_plain_loss_is_token_mean_cross_entropy():
    logits, labels, kinds = _batch()
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 5), labels[:, 1:].reshape(-1),
                                            ignore_index=IGNORE_INDEX)
    assert torch.allclose(plain_loss(logits, labels), ref)


# --- logits only where supervised (issue 16) -------------------------------------------------

def test_kept_targets_give_the_full_loss_on_a_hand_batch():
    from stepkit.train.loss import kept_targets, supervised_positions

    logits, labels, kinds = _batch()
    keep = supervised_positions(labels)
    assert keep.tolist() == [1, 2, 3, 4]  # positions t whose logits predict a target at t + 1
    lab, kin = kept_targets(labels, kinds, keep)
    full = dual_objective_loss(logits, labels, kinds, 0.7)
    kept = dual_objective_loss(logits[:, keep], lab, kin, 0.7)
    assert torch.equal(full.loss, kept.loss) and torch.equal(full.answer, kept.answer)
    assert (full.n_answer, full.n_rationale) == (kept.n_answer, kept.n_rationale)
    none = supervised_positions(torch.full((2, 5), IGNORE_INDEX))
    assert none.tolist() == [0]


def _family_batch(family, qa_dir, tiny_models, tmp_path):
    from stepkit.data.record import load_records
    from stepkit.train.collate import DataCollator, VideoChatEncoder, build_specs
    from stepkit.train.trainer import load_model

    cfg = quick_config(qa_dir, tiny_models(family), tmp_path / family)
    model, processor, fam = load_model(cfg)
    enc = VideoChatEncoder.from_config(processor, fam, cfg)
    specs = build_specs(load_records(qa_dir), "dual")
    batch = DataCollator(processor.tokenizer.pad_token_id)([enc.encode(s) for s in specs[:3]])
    return model, batch


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "llava-onevision", "llava-next-video",
                                    "smolvlm2"])
def test_logits_only_where_supervised_give_the_same_loss_and_gradients(family, qa_dir, tiny_models, tmp_path):
    from stepkit.train.loss import model_dual_loss, takes_logits_to_keep

    model, batch = _family_batch(family, qa_dir, tiny_models, tmp_path)
    model.train()
    assert takes_logits_to_keep(model)
    labels, kinds = batch.pop("labels"), batch.pop("label_kinds")
    batch.pop("sample_kind", None)
    results = {}
    for only in (False, True):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        d, out = model_dual_loss(model, dict(batch), labels, kinds, 1.0, supervised_only=only)
        d.loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        results[only] = (d, out.logits.shape, grads)
    (full, full_shape, g_full), (kept, kept_shape, g_kept) = results[False], results[True]
    assert kept_shape[1] < full_shape[1]  # the head ran on fewer positions
    assert int((labels[:, 1:] != IGNORE_INDEX).any(0).sum()) == kept_shape[1]
    for a, b in ((full.loss, kept.loss), (full.answer, kept.answer), (full.rationale, kept.rationale)):
        assert abs(float(a.detach()) - float(b.detach())) <= 1e-6
    assert (full.n_answer, full.n_rationale) == (kept.n_answer, kept.n_rationale)
    assert set(g_full) == set(g_kept)
    for n in g_full:
        assert torch.allclose(g_full[n], g_kept[n], rtol=1e-4, atol=1e-6), n
