"""The first observation of an episode shows that episode (MetaWorld v3's drawer-open reset moves
the drawer body without ``mj_forward``), in both halves of the stacked observation, and the fix
leaves the physics bit-for-bit as MetaWorld alone makes it. No renderer."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from ros2_erl_vlm.envs import MetaWorldTaskEnv, expert_policy, make_env
from ros2_erl_vlm.envs.metaworld_env import _make_metaworld


def _env(task: str, layout: str | None = None, seed: int = 0) -> MetaWorldTaskEnv:
    return make_env(task, seed=seed, render=False, layout=layout)


def _play(env: MetaWorldTaskEnv, steps: int) -> None:
    policy = expert_policy(env.task)
    obs, _ = env.reset()
    for _ in range(steps):
        obs, *_ = env.step(policy(obs))


@pytest.mark.parametrize("layout", ["stock", "paper"])
def test_first_observation_equals_a_fresh_envs(layout: str) -> None:
    """After an episode that moved things (the drawer opened, stock: another drawer x), the next
    episode's first observation is the one a new env gives at that seed (nothing of the previous
    episode leaks into either half), and it shows the drawer where this reset put it (MetaWorld
    alone shows where the reset's first draw had put it)."""
    used = _env("drawer-open-v3", layout, seed=3)
    _play(used, 80)
    first, info = used.reset(seed=11)
    new = _env("drawer-open-v3", layout)
    fresh, fresh_info = new.reset(seed=11)
    np.testing.assert_allclose(first, fresh, atol=1e-7)
    assert info["true_reward"] == pytest.approx(fresh_info["true_reward"], abs=1e-6)
    drawer_x = new.metaworld.model.body("drawer").pos[0]
    assert fresh[4] == pytest.approx(drawer_x, abs=1e-6)
    assert fresh[22] == pytest.approx(drawer_x, abs=1e-6)


def test_first_observation_object_part_is_the_sim_state() -> None:
    env = _env("drawer-open-v3", "stock", seed=2)
    for _ in range(3):
        _play(env, 60)
        obs, _ = env.reset()
        mw = env.metaworld
        # The handle from an independent forward pass of the same state.
        data = mujoco.MjData(mw.model)
        data.qpos[:], data.qvel[:] = mw.data.qpos, mw.data.qvel
        data.mocap_pos[:], data.mocap_quat[:] = mw.data.mocap_pos, mw.data.mocap_quat
        mujoco.mj_forward(mw.model, data)
        handle = data.body("drawer_link").xpos + np.array([0.0, -0.16, 0.0])
        np.testing.assert_allclose(obs[4:7], handle, atol=1e-6)  # current half
        np.testing.assert_allclose(obs[22:25], handle, atol=1e-6)  # previous half
        assert obs[4] == pytest.approx(mw.obj_init_pos[0], abs=1e-6)  # the drawer's new x
        step_obs, *_ = env.step(np.zeros(4))
        np.testing.assert_allclose(step_obs[22:25], obs[4:7], atol=1e-6)  # stacking continues


def test_first_observation_goal_marker_is_placed() -> None:
    env = _env("reach-v3", seed=4)
    for _ in range(2):
        env.reset()
        mw = env.metaworld
        np.testing.assert_allclose(mw.data.site("goal").xpos, mw._target_pos, atol=1e-9)


@pytest.mark.parametrize("task", ["drawer-open-v3", "reach-v3", "soccer-v3"])
def test_reset_fix_leaves_physics_bit_for_bit(task: str) -> None:
    """Only the first observation changes: every step after a reset is bit-for-bit what MetaWorld
    alone gives (the fix restores the solver's warm start that ``mj_forward`` rewrites)."""
    env = _env(task, layout="stock", seed=5)
    raw = _make_metaworld(task)  # the stock env exactly as this wrapper builds it
    raw.seed(5)
    rng = np.random.default_rng(1)
    for _ in range(3):
        env.reset()
        raw.reset()
        for i in range(60):
            action = rng.uniform(-1, 1, 4)
            obs, reward, *_ = env.step(action)
            raw_obs, raw_reward, *_ = raw.step(action)
            raw_obs = env._obs(raw_obs)
            assert reward == raw_reward
            compared = slice(0, 18) if i == 0 else slice(0, 39)  # step 1: raw's previous half is stale
            np.testing.assert_array_equal(obs[compared], raw_obs[compared])
