"""PEBBLE's unsupervised pre-training reward: k-NN state entropy.

The intrinsic reward of a state is its distance to the k-th nearest *other* neighbour among the
states stored so far (``k = 5``; the state itself is in the memory, so this is the ``k + 1``-th
smallest distance, as PEBBLE's ``kthvalue(dists, k + 1)``), divided by a running standard
deviation of that quantity.
"""

from __future__ import annotations

import torch


def knn_distance(batch: torch.Tensor, memory: torch.Tensor, k: int = 5, chunk: int = 10_000) -> torch.Tensor:
    """Distance from each row of ``batch`` to its ``k``-th nearest row of ``memory``.

    The row itself counts when it is in ``memory`` (as in PEBBLE), so ``k`` should be > 1.
    """
    if memory.shape[0] < k:
        raise ValueError(f"need at least k={k} stored states, have {memory.shape[0]}")
    best = None
    for i in range(0, memory.shape[0], chunk):
        d = torch.cdist(batch, memory[i : i + chunk])
        cand = d if best is None else torch.cat([best, d], dim=1)
        best = torch.topk(cand, min(k, cand.shape[1]), dim=1, largest=False).values
    assert best is not None
    return best[:, k - 1]


class RunningMeanStd:
    """Streaming mean/variance (parallel algorithm) of a scalar quantity."""

    def __init__(self, epsilon: float = 1e-4) -> None:
        self.mean = 0.0
        self.var = 1.0
        self.count = epsilon

    def update(self, x: torch.Tensor) -> None:
        """Fold a batch of values in."""
        x = x.detach().double().flatten()
        b_mean = float(x.mean())
        b_var = float(x.var(unbiased=False))
        b_count = x.numel()
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean += delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    @property
    def std(self) -> float:
        """Running standard deviation."""
        return self.var**0.5


class StateEntropyReward:
    """Intrinsic reward ``knn_distance / running_std`` over a replay's stored observations."""

    def __init__(self, k: int = 5) -> None:
        self.k = k
        self.stats = RunningMeanStd()

    def __call__(self, next_obs: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Rewards for ``next_obs`` given all stored observations ``memory`` (which holds them)."""
        d = knn_distance(next_obs, memory, self.k + 1)
        self.stats.update(d)
        return d / max(self.stats.std, 1e-8)
