"""The workspace target: integration, per-step clamp, leash, box, and the servo velocity."""

import numpy as np
import pytest

from ros2_erl_vlm.core.safety.target import FACE_APPROACH_S, Box, WorkspaceTarget

BOX = Box.of([-0.2, 0.4, 0.05], [0.2, 0.8, 0.3])
HOME = np.array([0.0, 0.6, 0.2])


def make(box=BOX, step=0.01, max_step=0.01, leash=0.03):
    t = WorkspaceTarget(step, max_step, leash, box)
    t.reset(HOME)
    return t


def test_integrates_like_metaworlds_mocap():
    t = make(max_step=1.0)
    s = t.step(np.array([1.0, -0.5, 0.0]), HOME)
    np.testing.assert_allclose(s.target, HOME + np.array([0.01, -0.005, 0.0]))
    np.testing.assert_allclose(s.applied, [1.0, -0.5, 0.0], atol=1e-6)
    assert s.limited == ()


def test_per_step_clamp_keeps_direction_and_caps_length():
    t = make(max_step=0.005)
    s = t.step(np.array([1.0, 1.0, 0.0]), HOME)
    assert np.linalg.norm(s.delta) == pytest.approx(0.005)
    assert s.delta[0] == pytest.approx(s.delta[1])
    assert "speed" in s.limited


def test_box_clips_target_on_every_face():
    t = make()
    for _ in range(100):  # push through the +x face with the arm following the target exactly
        s = t.step(np.array([1.0, 0.0, 0.0]), t.target)
    assert s.target[0] == pytest.approx(0.2) and "box" in s.limited
    assert s.applied[0] == pytest.approx(0.0)  # what was really applied at the face: nothing
    for direction in np.eye(3).tolist() + (-np.eye(3)).tolist():
        for _ in range(100):
            t.step(np.array(direction), t.target)
        assert BOX.contains(t.target)


def test_reset_clips_a_measured_pose_outside_the_box():
    t = WorkspaceTarget(0.01, 0.01, 0.03, BOX)
    np.testing.assert_allclose(t.reset(np.array([0.5, 0.6, 0.0])), [0.2, 0.6, 0.05])


def test_leash_holds_the_target_near_a_blocked_arm():
    t = make()
    for _ in range(50):  # the arm never moves: blocked
        s = t.step(np.array([0.0, 1.0, 0.0]), HOME)
    assert s.target[1] - HOME[1] == pytest.approx(0.03)
    assert "leash" in s.limited and s.applied[1] == pytest.approx(0.0)


def test_without_a_box_the_target_is_free():
    t = make(box=None)
    for _ in range(100):
        s = t.step(np.array([1.0, 0.0, 0.0]), t.target)
    assert s.target[0] == pytest.approx(1.0)


def test_velocity_feeds_forward_and_stops_at_a_touched_face():
    t = make(max_step=1.0)
    t.step(np.array([1.0, 0.0, 0.0]), HOME)  # target moved 1 cm in +x
    v = t.velocity(HOME, 0.1, 1.0)
    np.testing.assert_allclose(v, [0.1, 0.0, 0.0])  # 1 cm per 0.1 s period, the arm was on target
    assert np.linalg.norm(t.velocity(HOME, 0.1, 0.05)) == pytest.approx(0.05)  # capped
    t.move_to([0.5, 0.6, 0.2])  # clipped to the +x face at 0.2
    assert t.target[0] == pytest.approx(0.2)
    v = t.velocity(np.array([0.2, 0.6, 0.2]), 0.1, 1.0)  # the arm touches the face
    assert v[0] <= 0.0
    v = t.velocity(np.array([0.199, 0.6, 0.2]), 0.1, 1.0)  # 1 mm short: at most 1 mm in a period
    assert v[0] * 0.1 <= 0.001 + 1e-12
    v = t.velocity(np.array([0.199, 0.6, 0.2]), 0.02, 1.0)  # a fast loop: slowed by FACE_APPROACH_S
    assert v[0] * FACE_APPROACH_S <= 0.001 + 1e-12


def test_bad_boxes_and_settings_refused():
    with pytest.raises(ValueError):
        Box.of([0, 0, 0], [0, 1, 1])
    with pytest.raises(ValueError):
        Box.of([0, 0, np.nan], [1, 1, 1])
    with pytest.raises(ValueError):
        WorkspaceTarget(0.0, 0.01, 0.03, BOX)


def test_random_adversarial_actions_never_leave_the_box():
    rng = np.random.default_rng(0)
    t = make()
    measured = HOME.copy()
    for _ in range(2000):
        a = rng.uniform(-50, 50, 3) if rng.random() < 0.5 else rng.choice([-1.0, 1.0], 3)
        s = t.step(np.clip(a, -1, 1), measured)
        measured = s.target + rng.normal(0, 0.002, 3)  # the arm tracks with noise
        assert BOX.contains(s.target)


def test_hold_drops_the_lead_so_a_lagging_arm_stops_where_it_is() -> None:
    t = make()
    for _ in range(5):  # the target runs ahead of an arm that lags (measured stays at HOME)
        t.step(np.array([1.0, 0.0, 0.0]), HOME)
    assert t.target[0] - HOME[0] == pytest.approx(0.03)  # the leash's lead
    lagging = HOME + np.array([0.012, 0.0, 0.0])
    s = t.hold(lagging)
    np.testing.assert_allclose(t.target, lagging)  # nothing left to chase
    np.testing.assert_array_equal(s.applied, 0.0)
    np.testing.assert_allclose(t.velocity(lagging, 0.1, 0.1), 0.0, atol=1e-12)
    # Held outside the box (an arm pushed out): the target is the box's nearest point.
    outside = np.array([0.5, 0.6, 0.2])
    assert BOX.contains(t.hold(outside).target)
