"""Rating-based reward learning (RbRL) likelihood and the ERL-VLM losses.

For a minibatch of segments with predicted returns ``R`` and ratings ``y`` in ``0..n-1``:

1. ``R`` is min-max normalised to ``[0, 1]`` over the minibatch;
2. class boundaries ``0 = b_0 <= b_1 <= ... <= b_n = 1`` are the quantiles of the normalised
   returns matching the minibatch's label counts: ``b_i`` is the sorted return at index
   ``c_0 + ... + c_{i-1} - 1`` (no gradient flows through them);
3. the logit of class ``i`` is ``-k (R - b_i)(R - b_{i+1})`` (``k = 30``);
4. the loss is MAE between ``softmax(logits)`` and the one-hot rating (ERL-VLM) or cross-entropy
   (RbRL), optionally weighted per class.

Edge cases the reference code gets wrong are defined here: a class absent from the minibatch
gets a zero-width interval at the right place (the reference wraps index -1 to the maximum),
and a minibatch whose labels are all equal is well defined.
"""

from __future__ import annotations

import torch
from torch.nn import functional

DEFAULT_K = 30.0
LOSSES = ("mae", "ce")


def normalise_returns(returns: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Min-max normalise a minibatch of returns to ``[0, 1]`` (gradient flows through min/max)."""
    lo = returns.min()
    hi = returns.max()
    return (returns - lo) / (hi - lo + eps)


def class_boundaries(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Data-driven class boundaries ``b_0..b_n`` (length ``n + 1``), detached from the graph.

    ``pred`` are normalised returns ``(B,)``; ``labels`` are ints ``(B,)``. ``b_i`` for
    ``0 < i < n`` is the sorted prediction at index ``sum(c_0..c_{i-1}) - 1``, or 0 when no
    sample is below class ``i``.
    """
    with torch.no_grad():
        sorted_pred, _ = torch.sort(pred.detach())
        counts = torch.bincount(labels, minlength=num_classes)[:num_classes]
        cum = torch.cumsum(counts, 0)[:-1]  # samples strictly below class i, i = 1..n-1
        idx = (cum - 1).clamp(min=0)
        inner = torch.where(cum > 0, sorted_pred[idx], torch.zeros_like(idx, dtype=pred.dtype))
        zero = torch.zeros(1, dtype=pred.dtype, device=pred.device)
        one = torch.ones(1, dtype=pred.dtype, device=pred.device)
        return torch.cat([zero, inner.to(pred.dtype), one])


def rating_logits(pred: torch.Tensor, bounds: torch.Tensor, k: float = DEFAULT_K) -> torch.Tensor:
    """Class logits ``Q_i = -k (pred - b_i)(pred - b_{i+1})``, shape ``(B, n)``."""
    lower = bounds[:-1].unsqueeze(0)
    upper = bounds[1:].unsqueeze(0)
    p = pred.unsqueeze(1)
    return -k * (p - lower) * (p - upper)


def _sample_weights(labels: torch.Tensor, class_weights: torch.Tensor | None) -> torch.Tensor | None:
    if class_weights is None:
        return None
    return class_weights.to(labels.device)[labels]


def mae_loss(logits: torch.Tensor, labels: torch.Tensor,
             class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """ERL-VLM's loss: ``sum_c |softmax(Q)_c - onehot_c|`` averaged over the minibatch.

    With class weights, the average is weighted: ``sum_b w_{y_b} l_b / sum_b w_{y_b}``.
    """
    probs = torch.softmax(logits, dim=1)
    onehot = functional.one_hot(labels, logits.shape[1]).to(probs.dtype)
    per_sample = (probs - onehot).abs().sum(dim=1)
    w = _sample_weights(labels, class_weights)
    if w is None:
        return per_sample.mean()
    return (w * per_sample).sum() / w.sum()


def ce_loss(logits: torch.Tensor, labels: torch.Tensor,
            class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """RbRL's loss: (optionally class-weighted) cross-entropy of the rating logits."""
    w = None if class_weights is None else class_weights.to(logits.dtype).to(logits.device)
    return functional.cross_entropy(logits, labels, weight=w)


def rbrl_loss(returns: torch.Tensor, labels: torch.Tensor, num_classes: int, *, loss: str = "mae",
              k: float = DEFAULT_K, class_weights: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and number of correct predictions for one minibatch of segment returns.

    Returns ``(loss, correct)`` where ``correct`` counts ``argmax(Q) == label``.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    pred = normalise_returns(returns)
    bounds = class_boundaries(pred, labels, num_classes)
    logits = rating_logits(pred, bounds, k)
    fn = mae_loss if loss == "mae" else ce_loss
    value = fn(logits, labels, class_weights)
    correct = (logits.argmax(dim=1) == labels).sum()
    return value, correct
