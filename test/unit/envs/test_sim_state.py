"""``MetaWorldTaskEnv.sim_state`` / ``set_sim_state``: the MuJoCo state a step reports re-renders that
step's frame exactly, in a fresh env reset on the episode's seed (what the run report does)."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.core import seeds
from ros2_erl_vlm.envs import make_env
from ros2_erl_vlm.envs.metaworld_env import SIM_STATE_PARTS

SIZE = 64


def test_state_holds_qpos_qvel_and_mocap_pose() -> None:
    env = make_env("pick-place-v3", seed=0, render=False)
    _, info = env.reset(seed=3)
    env.step(np.array([0.3, -0.2, 0.1, 0.5]))
    data, model = env.metaworld.data, env.metaworld.model
    state = env.sim_state()
    assert SIM_STATE_PARTS == ("qpos", "qvel", "act", "mocap_pos", "mocap_quat")
    assert state.dtype == np.float64 and state.shape == (env.sim_state_size,)
    assert env.sim_state_size == model.nq + model.nv + model.na + 7 * model.nmocap == 38
    expected = np.concatenate([data.qpos, data.qvel, data.act, data.mocap_pos.ravel(), data.mocap_quat.ravel()])
    assert np.array_equal(state, expected)
    assert np.array_equal(info["sim_state"].shape, state.shape)
    _, _, _, _, info = env.step(np.zeros(4))
    assert np.array_equal(info["sim_state"], env.sim_state())  # the info's copy is the step's state
    env.close()


def test_a_set_state_reads_back_and_continues_the_run() -> None:
    """A state set in a second env reads back bit for bit; stepping on from it follows the run to
    solver precision (not bit for bit: the solver's warm start is not part of the state)."""
    a, b = make_env("reach-v3", seed=0, render=False), make_env("reach-v3", seed=0, render=False)
    a.reset(seed=5)
    b.reset(seed=6)  # another episode: everything the state holds is overwritten
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (30, 4))
    for act in actions[:10]:
        a.step(act)
    b.set_sim_state(a.sim_state())
    assert np.array_equal(b.sim_state(), a.sim_state())
    for act in actions[10:]:
        oa, *_ = a.step(act)
        ob, *_ = b.step(act)
        np.testing.assert_allclose(oa[:18], ob[:18], atol=1e-5)  # hand, gripper, object
    a.close()
    b.close()


@pytest.mark.render
@pytest.mark.parametrize("task", ["reach-v3", "drawer-open-v3", "pick-place-v3"])
def test_set_then_render_equals_the_original_frame(task: str) -> None:
    seed = 4
    run = make_env(task, seed=seed, render=True, image_size=SIZE)
    fresh = make_env(task, seed=seed, render=True, image_size=SIZE)  # the report's re-renderer
    rng = np.random.default_rng(0)
    recorded = []
    for episode in (0, 3):
        _, info = run.reset(seed=seeds.episode_seed(seed, episode))
        recorded.append((episode, info["sim_state"], run.render()))
        for t in range(1, 31):
            _, _, _, _, info = run.step(rng.uniform(-1, 1, 4))
            if t % 10 == 0:
                recorded.append((episode, info["sim_state"], run.render()))
    moved = 0
    for episode, state, frame in reversed(recorded):  # out of order: nothing carries over
        fresh.reset(seed=seeds.episode_seed(seed, episode))
        before = fresh.render()
        fresh.set_sim_state(state)
        again = fresh.render()
        assert np.array_equal(again, frame), (task, episode)
        moved += not np.array_equal(before, frame)
    assert moved >= 4  # most recorded states show something else than the episode's start
    run.close()
    fresh.close()


def test_bad_states_are_refused() -> None:
    env = make_env("drawer-open-v3", seed=0, render=False)
    env.reset(seed=0)
    good = env.sim_state()
    assert good.size == 27  # no free object: 10 qpos, 10 qvel, mocap pose
    with pytest.raises(ValueError, match="27 values"):
        env.set_sim_state(good[:-1])
    with pytest.raises(ValueError, match="27 values"):
        env.set_sim_state(good.reshape(1, -1))
    bad = good.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        env.set_sim_state(bad)
    assert np.array_equal(env.sim_state(), good)  # nothing was set
    env.close()
