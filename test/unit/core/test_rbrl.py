"""RbRL likelihood and ERL-VLM losses checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from ros2_erl_vlm.core.reward.rbrl import (
    ce_loss,
    class_boundaries,
    mae_loss,
    normalise_returns,
    rating_logits,
    rbrl_loss,
)


def test_normalise_returns_min_max() -> None:
    r = torch.tensor([2.0, 4.0, 6.0])
    p = normalise_returns(r, eps=0.0)
    assert torch.allclose(p, torch.tensor([0.0, 0.5, 1.0]))


def test_boundaries_match_label_quantiles() -> None:
    # sorted preds 0, .1, .2, .6, .8, 1 ; counts (2, 3, 1) -> b1 = sorted[1] = .1, b2 = sorted[4] = .8
    pred = torch.tensor([0.6, 0.0, 1.0, 0.2, 0.8, 0.1])
    labels = torch.tensor([1, 0, 2, 1, 1, 0])
    b = class_boundaries(pred, labels, 3)
    assert torch.allclose(b, torch.tensor([0.0, 0.1, 0.8, 1.0]))
    assert not b.requires_grad


def test_boundaries_absent_middle_class_is_zero_width() -> None:
    pred = torch.tensor([0.0, 0.3, 0.7, 1.0])
    labels = torch.tensor([0, 0, 2, 2])
    b = class_boundaries(pred, labels, 3)
    assert torch.allclose(b, torch.tensor([0.0, 0.3, 0.3, 1.0]))


def test_boundaries_absent_lowest_class_starts_at_zero() -> None:
    # the reference wraps index -1 to the maximum here; ours keeps b_1 = 0
    pred = torch.tensor([0.0, 0.5, 1.0])
    labels = torch.tensor([1, 1, 2])
    b = class_boundaries(pred, labels, 3)
    assert torch.allclose(b, torch.tensor([0.0, 0.0, 0.5, 1.0]))


def test_boundaries_all_labels_equal() -> None:
    pred = torch.tensor([0.0, 0.4, 1.0])
    b = class_boundaries(pred, torch.tensor([1, 1, 1]), 3)
    assert torch.allclose(b, torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_rbrl_loss_is_finite_when_all_labels_are_equal() -> None:
    loss, _correct = rbrl_loss(torch.tensor([1.0, 2.0, 3.0], requires_grad=True), torch.tensor([1, 1, 1]), 3)
    assert torch.isfinite(loss)


def test_logits_hand_computed() -> None:
    pred = torch.tensor([0.25])
    b = torch.tensor([0.0, 0.5, 1.0])
    q = rating_logits(pred, b, k=30.0)
    # class 0: -30 (0.25)(0.25-0.5) = 1.875 ; class 1: -30 (0.25-0.5)(0.25-1) = -5.625
    assert torch.allclose(q, torch.tensor([[1.875, -5.625]]))


LOGITS = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # softmax: (.25,.75), (.5,.5)
LABELS = torch.tensor([1, 0])


def test_mae_loss_hand_computed() -> None:
    # per-sample sum |p - onehot|: (.25 + .25) = .5 ; (.5 + .5) = 1.0
    assert mae_loss(LOGITS, LABELS).item() == pytest.approx(0.75)


def test_mae_loss_weighted() -> None:
    logits, labels = LOGITS, LABELS
    w = torch.tensor([3.0, 1.0])  # sample 0 has label 1 -> weight 1, sample 1 label 0 -> weight 3
    assert mae_loss(logits, labels, w).item() == pytest.approx((1 * 0.5 + 3 * 1.0) / 4)


def test_ce_loss_weighted_matches_formula() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    labels = torch.tensor([1, 0])
    w = torch.tensor([3.0, 1.0])
    expected = (1 * -math.log(0.75) + 3 * -math.log(0.5)) / 4
    assert ce_loss(logits, labels, w).item() == pytest.approx(expected, rel=1e-5)


def test_rbrl_loss_gradient_pushes_towards_labels() -> None:
    torch.manual_seed(0)
    r = torch.randn(64, requires_grad=True)
    labels = (torch.rand(64) > 0.5).long()
    opt = torch.optim.SGD([r], lr=0.5)
    first = None
    for _ in range(200):
        opt.zero_grad()
        loss, correct = rbrl_loss(r, labels, 2, loss="ce")
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < first
    assert int(correct) >= 60


def test_rbrl_loss_rejects_unknown_loss() -> None:
    with pytest.raises(ValueError, match="loss must be one of"):
        rbrl_loss(torch.zeros(3), torch.zeros(3, dtype=torch.long), 2, loss="hinge")
