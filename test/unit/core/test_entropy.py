"""PEBBLE state-entropy reward."""

from __future__ import annotations

import pytest
import torch

from ros2_erl_vlm.core.rl.entropy import RunningMeanStd, StateEntropyReward, knn_distance


def test_knn_distance_hand_computed() -> None:
    memory = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    d = knn_distance(torch.tensor([[0.0]]), memory, k=2, chunk=2)  # distances 0,1,3,6 -> 2nd = 1
    assert d.item() == 1.0
    d3 = knn_distance(torch.tensor([[0.0]]), memory, k=3, chunk=3)
    assert d3.item() == 3.0


def test_running_std_matches_batch_std() -> None:
    x = torch.randn(1000) * 3 + 2
    rms = RunningMeanStd(epsilon=0.0)
    for chunk in x.split(97):
        rms.update(chunk)
    assert abs(rms.mean - x.mean().item()) < 1e-5
    assert abs(rms.std - x.std(unbiased=False).item()) < 1e-4


def test_entropy_reward_counts_k_other_states() -> None:
    """The state itself is in the memory: k = 2 means the 2nd nearest *other* state (PEBBLE's
    ``kthvalue(dists, k + 1)``)."""
    memory = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    reward = StateEntropyReward(k=2)
    r = reward(torch.tensor([[0.0]]), memory)
    assert reward.stats.mean == pytest.approx(3.0, rel=1e-3)  # distances 0, 1, 3, 6 -> 3
    assert r.item() > 0
