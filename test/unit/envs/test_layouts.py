"""Layouts in the env (the paper's fixed layouts, the stock one) and pick-place's grasp-and-lift
stages. No renderer: physics only."""

from __future__ import annotations

from dataclasses import replace

import gymnasium
import numpy as np
import pytest

from ros2_erl_vlm.envs import (
    GraspLiftSpec,
    MetaWorldTaskEnv,
    expert_policy,
    load_task,
    make_env,
    run_expert_episode,
)

PAPER_TASKS = ("drawer-open-v3", "sweep-into-v3", "soccer-v3")


def _env(task: str, layout: str | None = None, seed: int = 0) -> MetaWorldTaskEnv:
    return make_env(task, seed=seed, render=False, layout=layout)


# ---------------------------------------------------------------------------------------------
# Where things start
# ---------------------------------------------------------------------------------------------

#: Hand (end effector) at reset vs the layout's hand_init_pos (MetaWorld's mocap target), per
#: axis (m). Sweep-into's table top (the one with the hole) is at z = 0.05: the hand sent to
#: z = 0.05 stops with its fingertips on it, ~4.5 cm higher, dragged ~1.5 cm sideways.
HAND_TOLERANCE = {
    "drawer-open-v3": (0.01, 0.01, 0.01),
    "sweep-into-v3": (0.02, 0.01, 0.05),
    "soccer-v3": (0.01, 0.01, 0.01),
}


@pytest.mark.parametrize("task", PAPER_TASKS)
def test_paper_layout_hand_starts_where_the_layout_says(task: str) -> None:
    env = _env(task, "paper")
    want = np.asarray(env.task.layout_spec.hand_init_pos)
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        assert np.all(np.abs(obs[0:3] - want) <= HAND_TOLERANCE[task]), (obs[0:3], want)
    if task == "sweep-into-v3":
        assert env.metaworld.tcp_center[2] == pytest.approx(0.05, abs=0.005)  # on the table top


@pytest.mark.parametrize("task", PAPER_TASKS)
def test_paper_layout_fixes_object_and_goal_stock_randomises_them(task: str) -> None:
    paper, stock = _env(task, "paper"), _env(task, "stock")
    lay = paper.task.layout_spec
    starts: dict[str, list[np.ndarray]] = {"paper": [], "stock": []}
    for seed in (0, 1, 2):
        for name, env in (("paper", paper), ("stock", stock)):
            obs, _ = env.reset(seed=seed)
            mw = env.metaworld
            starts[name].append(np.concatenate([obs[4:7], mw._target_pos]))
            if name == "paper":
                np.testing.assert_allclose(np.asarray(mw.obj_init_pos)[:2], lay.obj_init_pos[:2])
                if lay.goal_pos is not None:
                    np.testing.assert_allclose(mw._target_pos, lay.goal_pos)
    assert all(np.array_equal(starts["paper"][0], s) for s in starts["paper"])
    assert not all(np.array_equal(starts["stock"][0], s) for s in starts["stock"])


def test_paper_drawer_is_the_reference_one() -> None:
    obs, _ = _env("drawer-open-v3", "paper").reset()
    assert tuple(np.round(obs[4:7], 3)) == (0.0, 0.73, 0.09)  # handle of the drawer at (0, 0.9, 0)


@pytest.mark.parametrize("task", PAPER_TASKS)
def test_paper_layout_hides_the_goal_stock_shows_it(task: str) -> None:
    paper, stock = _env(task, "paper"), _env(task, "stock")
    obs, _ = paper.reset()
    assert paper.metaworld._partially_observable
    np.testing.assert_array_equal(obs[36:39], 0.0)
    np.testing.assert_array_equal(paper.observation_space.low[36:39], 0.0)
    np.testing.assert_array_equal(paper.observation_space.high[36:39], 0.0)
    for _ in range(3):
        obs, *_ = paper.step(np.ones(4))
        np.testing.assert_array_equal(obs[36:39], 0.0)
    obs, _ = stock.reset()
    assert not stock.metaworld._partially_observable
    np.testing.assert_allclose(obs[36:39], stock.metaworld._target_pos, atol=1e-6)
    assert np.any(obs[36:39] != 0)


def test_sweep_into_paper_success_radius() -> None:
    paper, stock = _env("sweep-into-v3", "paper"), _env("sweep-into-v3", "stock")
    for env in (paper, stock):
        env.reset()
    for dist, in_paper, in_stock in ((0.045, True, True), (0.055, True, False), (0.065, False, False)):
        info = {"success": float(dist <= 0.05), "obj_to_target": dist}  # MetaWorld's own: 0.05
        assert paper._truth_of(1.0, info).success is in_paper, dist
        assert stock._truth_of(1.0, info).success is in_stock, dist


@pytest.mark.parametrize("task", PAPER_TASKS)
def test_experts_succeed_in_the_paper_layout(task: str) -> None:
    env, policy = _env(task, "paper"), expert_policy(task)
    for seed in (0, 1):
        info = run_expert_episode(env, policy, seed=seed, max_steps=200)
        assert info["success"], f"{task} (paper layout, seed {seed}): expert failed"
        assert env.task.bin_truth(info["progress"], info["success"]) == env.task.num_classes - 1


def test_random_actions_open_the_paper_drawer_never_the_stock_one() -> None:
    """The paper layout is the easier task (reference: drawer > 5 cm open in 14.7% of random
    steps; here 10 x 300 steps at seed 0 give 4.5%, 20 x 500 give 8-9%); stock: never."""
    shares = {}
    for layout in ("paper", "stock"):
        env, rng = _env("drawer-open-v3", layout), np.random.default_rng(0)
        opened = 0
        for _ in range(10):
            obs, _ = env.reset()
            closed_y = obs[5]
            for _ in range(300):
                obs, *_ = env.step(rng.uniform(-1, 1, 4))
                opened += closed_y - obs[5] > 0.05
        shares[layout] = opened / 3000
    assert shares["paper"] > 0.02, shares
    assert shares["stock"] == 0.0, shares


@pytest.mark.filterwarnings("ignore:.*maximum and minimum values are equal")  # the hidden goal
def test_layout_through_gymnasium_make() -> None:
    env = gymnasium.make("erl_vlm/soccer-v3", render_mode=None, layout="paper")
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[36:39], 0.0)
    env.close()


def test_unknown_layout_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"task 'reach-v3' has no layout 'paper'; its layouts: stock"):
        make_env("reach-v3", render=False, layout="paper")
    with pytest.raises(ValueError, match="no layout 'papr'"):
        MetaWorldTaskEnv(load_task("soccer-v3"), render_mode=None, layout="papr")


def _with_paper(task: str, **changes) -> object:
    spec = load_task(task, layout="paper")
    layouts = tuple((k, replace(v, **changes) if k == "paper" else v) for k, v in spec.layouts)
    return replace(spec, layouts=layouts)


def test_pinned_positions_metaworld_rejects_raise_instead_of_hanging() -> None:
    # Soccer redraws until ball and goal are >= 0.15 m apart: pinned 5 cm apart it never would.
    env = MetaWorldTaskEnv(_with_paper("soccer-v3", goal_pos=(0.0, 0.7, 0.0)), render_mode=None)
    with pytest.raises(RuntimeError, match="rejected the layout's pinned positions"):
        env.reset(seed=0)


def test_pinning_a_position_metaworld_does_not_draw_is_an_error() -> None:
    with pytest.raises(ValueError, match="goal_pos cannot be pinned: .* draws only 3 random values"):
        MetaWorldTaskEnv(_with_paper("drawer-open-v3", goal_pos=(0.0, 0.5, 0.1)), render_mode=None)
    # Sweep-into draws 6 values but takes its goal (the hole) from the scene, not from them.
    env = MetaWorldTaskEnv(_with_paper("sweep-into-v3", goal_pos=(0.0, 0.9, 0.02)), render_mode=None)
    with pytest.raises(RuntimeError, match="goal_pos is .* but MetaWorld's sweep-into-v3 reset placed it"):
        env.reset(seed=0)


# ---------------------------------------------------------------------------------------------
# Pick-place: grasped and lifted
# ---------------------------------------------------------------------------------------------


def test_pick_place_progress_is_its_stage() -> None:
    env = _env("pick-place-v3", seed=0)
    spec, policy = env.task, expert_policy("pick-place-v3")
    lift = (spec.oracle.grasp_lift or GraspLiftSpec()).min_lift
    obs, info = env.reset(seed=1)
    start_z = obs[6]
    seen, classes = [info["progress"]], []
    for _ in range(200):
        obs, _, _, _, info = env.step(policy(obs))
        seen.append(info["progress"])
        classes.append(spec.bin_truth(info["progress"], info["success"]))
        if info["progress"] == 0.5:
            assert obs[6] - start_z >= lift
        if info["success"]:
            break
    assert info["success"]
    assert set(seen) <= {0.0, 0.5, 1.0}
    assert seen[0] == 0.0
    assert 1 in classes  # Average (grasped and lifted) before Good
    assert classes.index(1) < classes.index(2)
    assert classes == sorted(classes)  # the expert never drops the puck


def test_pick_place_object_lifted_away_from_the_gripper_is_not_grasped() -> None:
    env = _env("pick-place-v3", seed=0)
    obs, _ = env.reset()
    assert not env.grasped_and_lifted()
    env.metaworld._set_obj_xyz(obs[4:7] + np.array([0.0, 0.0, 0.1]))  # raised, gripper far away
    assert not env.grasped_and_lifted()
    hand = env.metaworld.tcp_center
    env.metaworld._set_obj_xyz(np.array([hand[0], hand[1], obs[6] + 0.05]))  # raised, in the gripper
    assert env.grasped_and_lifted() == (abs(hand[2] - obs[6] - 0.05) <= 0.03)
