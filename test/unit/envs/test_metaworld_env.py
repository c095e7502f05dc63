"""MetaWorld task envs: every scene compiles, steps and renders upright frames; seeding,
truncation, action checks, experts. Physics-only tests never create a renderer."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest

from ros2_erl_vlm.envs import (
    MetaWorldTaskEnv,
    available_tasks,
    expert_policy,
    load_task,
    make_env,
    run_expert_episode,
)

TASKS = available_tasks()


def _camera_frame(env: MetaWorldTaskEnv) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Eye, forward, up, right of the task camera, from MuJoCo's free-camera convention."""
    cam = env.task.camera
    az, el = math.radians(cam.azimuth), math.radians(cam.elevation)
    fwd = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    up = np.array([-math.sin(el) * math.cos(az), -math.sin(el) * math.sin(az), math.cos(el)])
    return np.asarray(cam.lookat) - cam.distance * fwd, fwd, up, np.cross(fwd, up)


def _marker_centroid(env: MetaWorldTaskEnv, point: np.ndarray) -> tuple[float, float]:
    """Draw a magenta sphere at ``point`` (the MetaWorld goal site, moved and recoloured) and
    return the (column, row) centroid of the magenta pixels in the rendered frame."""
    model, data = env.metaworld.model, env.metaworld.data
    sid = model.site("goal").id
    model.site_rgba[sid] = (1.0, 0.0, 1.0, 1.0)
    model.site_size[sid, 0] = 0.01
    data.site_xpos[sid] = point  # read by the scene update; no physics step in between
    img = env.render().astype(int)
    mask = (img[..., 0] > 100) & (img[..., 2] > 100) & (img[..., 1] < 60)
    assert mask.sum() > 30, "marker not visible"
    rows, cols = np.nonzero(mask)
    return float(cols.mean()), float(rows.mean())


@pytest.mark.render
@pytest.mark.parametrize("task", TASKS)
def test_compile_step_render(task: str) -> None:
    env = make_env(task, seed=0)
    try:
        obs, info = env.reset()
        assert obs.shape == (39,)
        assert obs.dtype == np.float32
        assert env.observation_space.contains(obs)
        assert info["episode_step"] == 0
        assert 0.0 <= info["progress"] <= 1.0
        rng = np.random.default_rng(0)
        for i in range(20):
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 4))
            assert env.observation_space.contains(obs)
            assert not terminated
            assert not truncated
            assert info["episode_step"] == i + 1
            assert isinstance(info["success"], bool)
            assert info["true_reward"] == reward
            if env.task.oracle.progress == "dense_reward":
                assert info["progress"] == pytest.approx(min(max(reward / 10, 0), 1))
            elif env.task.oracle.progress == "drawer_opening":
                assert info["progress"] == pytest.approx(env.drawer_opening())
            else:  # grasp_lift: the stage
                assert info["progress"] in (0.0, 0.5, 1.0)
        truth = env.truth()
        assert (truth.reward, truth.success, truth.progress) == (
            info["true_reward"], info["success"], info["progress"])
        frame = env.render()
        assert frame.shape == (224, 224, 3)
        assert frame.dtype == np.uint8
        assert frame.std() > 10, "frame nearly uniform"

        # Upright and not mirrored: a marker placed (through our camera model) in the upper-left
        # and lower-right of the view must show up there in the rendered frame.
        eye, fwd, up, right = _camera_frame(env)
        for du, dr in ((0.06, -0.06), (-0.06, 0.06)):
            point = eye + 0.3 * fwd + du * up + dr * right
            expected = env.project(point)[0]
            col, row = _marker_centroid(env, point)
            assert (col, row) == pytest.approx(tuple(expected), abs=2.0)
            assert (row < 112) == (du > 0)
            assert (col < 112) == (dr < 0)
    finally:
        env.close()


@pytest.mark.render
def test_render_size_and_blank_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env("reach-v3", seed=1, image_size=96)
    env.reset()
    assert env.render().shape == (96, 96, 3)
    monkeypatch.setattr(env._renderer, "render", lambda: np.zeros((96, 96, 3), np.uint8))
    with pytest.raises(RuntimeError, match="blank frame"):
        env.render()
    env.close()
    env.close()  # idempotent


def test_no_render_mode_never_renders() -> None:
    quiet = make_env("reach-v3", render=False)
    quiet.reset(seed=0)
    quiet.step(np.zeros(4))
    with pytest.warns(UserWarning, match="render_mode=None"):
        assert quiet.render() is None
    assert quiet._renderer is None  # stepping never renders


def _seeded_pair() -> tuple[MetaWorldTaskEnv, MetaWorldTaskEnv]:
    """Two stock (randomised) sweep-into envs, the first seeded with 7."""
    return (make_env("sweep-into-v3", seed=7, render=False, layout="stock"),
            make_env("sweep-into-v3", render=False, layout="stock"))


def test_seeding_is_reproducible() -> None:
    a, b = _seeded_pair()
    first_a, _ = a.reset()
    first_b, _ = b.reset(seed=7)
    np.testing.assert_array_equal(first_a, first_b)
    second_a, _ = a.reset()
    second_b, _ = b.reset()
    np.testing.assert_array_equal(second_a, second_b)


def test_each_reset_re_randomises_the_object() -> None:
    a, _ = _seeded_pair()
    first_a, _ = a.reset()
    second_a, _ = a.reset()
    assert not np.array_equal(first_a[4:7], second_a[4:7]), "object not re-randomised on reset"


def test_another_seed_gives_another_start() -> None:
    a, b = _seeded_pair()
    first_a, _ = a.reset()
    other, _ = b.reset(seed=8)
    assert not np.array_equal(first_a, other)


def test_stepping_is_reproducible() -> None:
    a, b = _seeded_pair()
    actions = np.random.default_rng(3).uniform(-1, 1, (30, 4))
    a.reset(seed=11)
    b.reset(seed=11)
    for act in actions:
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
    np.testing.assert_array_equal(oa, ob)
    assert ra == rb


def test_step_before_reset_is_an_error() -> None:
    env = make_env("reach-v3", seed=0, render=False)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4))


def _run_500_steps(env: MetaWorldTaskEnv) -> tuple[bool, bool, dict]:
    env.reset()
    zero = np.zeros(4)
    for _ in range(499):
        _, _, terminated, truncated, _ = env.step(zero)
        assert not terminated
        assert not truncated
    _, _, terminated, truncated, info = env.step(zero)
    return terminated, truncated, info


def test_truncation_at_500() -> None:
    terminated, truncated, info = _run_500_steps(make_env("reach-v3", seed=0, render=False))
    assert truncated
    assert not terminated
    assert info["episode_step"] == 500


def test_step_after_truncation_is_an_error_until_reset() -> None:
    env = make_env("reach-v3", seed=0, render=False)
    _run_500_steps(env)
    zero = np.zeros(4)
    with pytest.raises(RuntimeError, match="truncated after 500 steps"):
        env.step(zero)
    env.reset()
    assert not env.step(zero)[3]


def test_bad_actions_are_rejected_before_mujoco() -> None:
    env = make_env("reach-v3", seed=0, render=False)
    env.reset()
    for bad in ([np.nan, 0, 0, 0], [0, 0, np.inf, 0]):
        with pytest.raises(ValueError, match="NaN or inf"):
            env.step(np.array(bad))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
    assert env.episode_step == 0  # rejected actions never reached MuJoCo


def test_actions_are_clipped_to_the_unit_box() -> None:
    env = make_env("reach-v3", seed=0, render=False)
    env.reset()
    other = make_env("reach-v3", seed=0, render=False)
    other.reset()
    big = env.step(np.array([5.0, -9.0, 3.0, 2.0]))[0]
    unit = other.step(np.array([1.0, -1.0, 1.0, 1.0]))[0]
    np.testing.assert_array_equal(big, unit)


@pytest.mark.parametrize("task", ["drawer-open-v3", "reach-v3"])
def test_expert_reaches_success(task: str) -> None:
    env = make_env(task, seed=0, render=False)
    info = run_expert_episode(env, expert_policy(task))
    assert info["success"], f"scripted expert failed {task}"
    assert env.task.bin_truth(info["progress"], info["success"]) == env.task.num_classes - 1


def test_gymnasium_make_passes_the_env_checker() -> None:
    env = gymnasium.make("erl_vlm/reach-v3")  # includes Gymnasium's passive env checker
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    env.close()


def test_every_task_is_registered_with_gymnasium() -> None:
    assert {f"erl_vlm/{t}" for t in TASKS} <= set(gymnasium.registry)


def test_unknown_task_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        make_env("no-such-task", render=False)


def test_unknown_metaworld_env_is_an_error() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="unknown MetaWorld v3 environment"):
        MetaWorldTaskEnv(replace(load_task("reach-v3"), metaworld_env="reach-v9"), render_mode=None)


def test_unknown_render_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="render_mode"):
        MetaWorldTaskEnv(load_task("reach-v3"), render_mode="human")


def test_drawer_opening_follows_the_handle() -> None:
    """drawer-open's progress is the opening over the full 20 cm travel: 0 closed at reset, about
    0.85 or more at success (the scripted expert pulls it open)."""
    spec = load_task("drawer-open-v3")
    env = make_env(spec, seed=0, render=False)
    _, info = env.reset(seed=1)
    assert info["progress"] == pytest.approx(0.0, abs=0.01)
    info = run_expert_episode(env, expert_policy(spec), seed=1, max_steps=200)
    assert info["success"]
    assert info["progress"] >= 0.8
    assert spec.bin_truth(info["progress"], info["success"]) == spec.num_classes - 1
    env.close()
