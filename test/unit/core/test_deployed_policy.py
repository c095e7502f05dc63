"""DeployedPolicy: loads the actor of a training checkpoint, acts deterministically, refuses
checkpoints without a policy and states of another size."""

import numpy as np
import pytest
import torch

from ros2_erl_vlm.core.checkpoint import CheckpointError, save_checkpoint
from ros2_erl_vlm.core.rl.policy import DeployedPolicy
from ros2_erl_vlm.core.rl.sac import SAC, SACConfig


def _checkpoint(tmp_path, obs_dim=7):
    torch.manual_seed(0)
    sac = SAC(obs_dim, 4, SACConfig(hidden_dim=16, hidden_layers=2))
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"agent": {"sac": sac.state_dict(), "step": 1234}})
    return path, sac


def test_acts_like_the_trained_actor_mean(tmp_path):
    path, sac = _checkpoint(tmp_path)
    policy = DeployedPolicy(path)
    s = np.linspace(-1, 1, 7).astype(np.float32)
    np.testing.assert_allclose(policy.act(s), sac.act(s, deterministic=True), atol=1e-6)
    np.testing.assert_array_equal(policy.act(s), policy.act(s))  # deterministic
    assert policy.trained_steps == 1234 and policy.obs_dim == 7


def test_refuses_a_state_of_another_size_saying_why(tmp_path):
    path, _ = _checkpoint(tmp_path, obs_dim=39)
    with pytest.raises(ValueError, match="39-D simulator state.*arm does not measure"):
        DeployedPolicy(path).check_observation_dim(4, "the arm config")
    DeployedPolicy(path).check_observation_dim(39, "the simulator")


def test_refuses_a_checkpoint_without_a_policy(tmp_path):
    path = tmp_path / "other.pt"
    save_checkpoint(path, {"learner": {}})
    with pytest.raises(CheckpointError, match="no SAC policy"):
        DeployedPolicy(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        DeployedPolicy(tmp_path / "missing.pt")


def test_nan_state_refused(tmp_path):
    path, _ = _checkpoint(tmp_path)
    with pytest.raises(ValueError, match="NaN"):
        DeployedPolicy(path).act(np.full(7, np.nan))
