"""PEBBLE state-entropy reward."""

from __future__ import annotations

import torch

from ros2_erl_vlm.core.entropy import RunningMeanStd, knn_distance


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
