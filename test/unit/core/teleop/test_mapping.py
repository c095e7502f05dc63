"""Teleop mapping: the deadman, deadzone, scaling and clipping, the gripper, stale and bad input, and
every bad config refused naming the field (core.teleop.mapping; time is passed in)."""

import copy
import math

import numpy as np
import pytest

from ros2_erl_vlm.core.teleop.mapping import (
    ACTION_DIM,
    TeleopConfig,
    TeleopConfigError,
    TeleopMapper,
    apply_deadzone,
    load_teleop_config,
    teleop_config_from_mapping,
)
from ros2_erl_vlm.paths import config_dir

#: A small pad: axes 0-2 drive x, y, z; button 4 is the deadman; 0 closes, 1 opens.
PAD = {"teleop": {"name": "pad", "input": "joy", "deadman_button": 4, "deadman_label": "LB",
                  "x": {"index": 0, "sign": 1}, "y": {"index": 1, "sign": 1}, "z": {"index": 2, "sign": 1},
                  "gripper": {"mode": "buttons", "close_button": 0, "open_button": 1},
                  "deadzone": 0.0, "scale": 1.0, "input_timeout_s": 0.5}}
DEADMAN, CLOSE, OPEN, TOGGLE = 4, 0, 1, 2


def config(**changes):
    """PAD with top-level ``changes`` (mappings merged one level deep)."""
    data = copy.deepcopy(PAD)
    body = data["teleop"]
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return teleop_config_from_mapping(data, "pad.yaml")


def buttons(*pressed, n=6):
    """A button vector with ``pressed`` held."""
    return [1 if i in pressed else 0 for i in range(n)]


def mapper(armed=True, **changes):
    """A mapper; ``armed``: the operator's pad has already reported the deadman released once
    (long ago), as before every session's first press."""
    m = TeleopMapper(config(**changes))
    if armed:
        m.buttons(buttons(n=16), now=-1e6)
    return m


def drive(m, axes, *pressed, now=0.0):
    """Feed one Joy message and return the command right after it."""
    assert m.joy(axes, buttons(*pressed), now) == ""
    return m.command(now)


# -- the shipped configs ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, kind", [("xbox.yaml", "joy"), ("spacemouse.yaml", "spacemouse")])
def test_shipped_configs_load_for_their_input(name, kind):
    cfg = load_teleop_config(config_dir() / "teleop" / name, kind)
    assert cfg.input == kind and cfg.deadman_label
    assert "deadman button" in cfg.summary()


def test_defaults_are_the_xbox_config():
    """The dataclass defaults are what config/teleop/xbox.yaml says (one pad, two statements)."""
    shipped = load_teleop_config(config_dir() / "teleop" / "xbox.yaml")
    default = TeleopConfig(source=shipped.source, name="xbox", deadman_label="LB")
    assert shipped == default


def test_xbox_config_maps_the_sticks_as_documented():
    m = TeleopMapper(load_teleop_config(config_dir() / "teleop" / "xbox.yaml"))
    axes = [0.0] * 6
    axes[0], axes[1], axes[3] = -1.0, 1.0, 1.0  # left stick right and forward, right stick forward
    assert m.joy([0.0] * 6, buttons(n=15), 0.0) == ""  # the pad connects, nothing held
    b = buttons(9, n=15)
    assert m.joy(axes, b, 0.1) == ""
    np.testing.assert_allclose(m.command(0.1).action, [1.0, 1.0, 1.0, -1.0])


def test_spacemouse_config_maps_the_twist_as_documented():
    m = TeleopMapper(load_teleop_config(config_dir() / "teleop" / "spacemouse.yaml"))
    assert m.twist((1.0, -1.0, 1.0), (0.5, 0.5, 0.5), 0.0) == ""  # forward, right, up; rotation ignored
    assert m.buttons([0, 0], 0.0) == ""
    assert m.buttons([1, 0], 0.0) == ""
    cmd = m.command(0.0)
    assert cmd.engaged
    np.testing.assert_allclose(cmd.action, [1.0, 1.0, 1.0, -1.0])


def test_a_config_for_another_input_is_refused():
    with pytest.raises(TeleopConfigError, match="config for input 'spacemouse'.*input is 'joy'"):
        load_teleop_config(config_dir() / "teleop" / "spacemouse.yaml", "joy")


# -- the deadman -----------------------------------------------------------------------------------
def test_deadman_held_moves():
    cmd = drive(mapper(), [0.5, -0.25, 1.0], DEADMAN)
    assert cmd.engaged and cmd.reason == ""
    np.testing.assert_allclose(cmd.action, [0.5, -0.25, 1.0, -1.0])
    assert cmd.action.dtype == np.float32 and cmd.action.shape == (ACTION_DIM,)


def test_deadman_released_holds_with_full_stick():
    cmd = drive(mapper(), [1.0, 1.0, 1.0])
    assert not cmd.engaged
    np.testing.assert_array_equal(cmd.action, [0.0, 0.0, 0.0, -1.0])
    assert "deadman released" in cmd.reason and "button 4 (LB)" in cmd.reason


def test_releasing_the_deadman_stops_at_once():
    m = mapper()
    assert drive(m, [1.0, 0.0, 0.0], DEADMAN, now=0.0).engaged
    cmd = drive(m, [1.0, 0.0, 0.0], now=0.05)
    assert not cmd.engaged
    np.testing.assert_array_equal(cmd.action[:3], 0.0)


def test_other_buttons_do_not_engage():
    cmd = drive(mapper(), [1.0, 0.0, 0.0], 3, 5)
    assert not cmd.engaged


def test_no_input_yet_holds():
    cmd = mapper().command(0.0)
    assert not cmd.engaged and cmd.reason.startswith("no input yet")
    np.testing.assert_array_equal(cmd.action, [0.0, 0.0, 0.0, -1.0])


# -- deadzone, scaling, clipping -------------------------------------------------------------------
def test_deadzone_zeroes_small_deflections_and_rescales_beyond():
    assert apply_deadzone(0.1, 0.2) == 0.0
    assert apply_deadzone(-0.2, 0.2) == 0.0
    assert apply_deadzone(0.6, 0.2) == pytest.approx(0.5)
    assert apply_deadzone(-0.6, 0.2) == pytest.approx(-0.5)
    assert apply_deadzone(1.0, 0.2) == pytest.approx(1.0)  # full deflection still reaches 1
    assert apply_deadzone(0.3, 0.0) == 0.3


def test_deadzone_is_continuous_at_its_edge():
    assert apply_deadzone(0.2 + 1e-9, 0.2) == pytest.approx(0.0, abs=1e-6)


def test_deadzone_applies_per_axis():
    cmd = drive(mapper(deadzone=0.2), [0.15, 0.6, -1.0], DEADMAN)
    np.testing.assert_allclose(cmd.action[:3], [0.0, 0.5, -1.0], atol=1e-6)


def test_a_resting_stick_inside_the_deadzone_is_no_motion_but_still_engaged():
    cmd = drive(mapper(deadzone=0.1), [0.05, -0.08, 0.02], DEADMAN)
    assert cmd.engaged  # the operator holds still on purpose: an intervention
    np.testing.assert_array_equal(cmd.action[:3], 0.0)


def test_scale_multiplies_then_clips_to_the_unit_range():
    cmd = drive(mapper(scale=0.5), [1.0, -0.5, 0.2], DEADMAN)
    np.testing.assert_allclose(cmd.action[:3], [0.5, -0.25, 0.1], atol=1e-6)
    cmd = drive(mapper(scale=3.0), [0.5, -0.5, 0.2], DEADMAN)
    np.testing.assert_allclose(cmd.action[:3], [1.0, -1.0, 0.6], atol=1e-6)


def test_inputs_beyond_one_are_clipped():
    """A space mouse reports more than 1 at a hard push."""
    cmd = drive(mapper(), [1.7, -2.5, 0.0], DEADMAN)
    np.testing.assert_allclose(cmd.action[:3], [1.0, -1.0, 0.0])


def test_signs_and_indices_remap_axes():
    m = mapper(x={"index": 2, "sign": -1}, y={"index": 0, "sign": 1}, z={"index": 1, "sign": -1})
    cmd = drive(m, [0.3, 0.4, 0.5], DEADMAN)
    np.testing.assert_allclose(cmd.action[:3], [-0.5, 0.3, -0.4], atol=1e-6)


def test_an_unmapped_axis_stays_zero():
    cmd = drive(mapper(z={"index": -1}), [0.3, 0.4, 0.5], DEADMAN)
    np.testing.assert_allclose(cmd.action[:3], [0.3, 0.4, 0.0], atol=1e-6)


# -- the gripper -----------------------------------------------------------------------------------
def test_gripper_starts_at_its_start_value():
    assert mapper().hold_action()[3] == -1.0
    assert mapper(gripper={"start": 1.0}).hold_action()[3] == 1.0


def test_gripper_buttons_close_and_open_and_latch():
    m = mapper()
    assert drive(m, [0, 0, 0], DEADMAN, CLOSE).action[3] == 1.0
    assert drive(m, [0, 0, 0], DEADMAN).action[3] == 1.0  # latched after the button is let go
    assert drive(m, [0, 0, 0], DEADMAN, OPEN).action[3] == -1.0


def test_both_gripper_buttons_change_nothing():
    m = mapper()
    drive(m, [0, 0, 0], DEADMAN, CLOSE)
    assert drive(m, [0, 0, 0], DEADMAN, CLOSE, OPEN).action[3] == 1.0


def test_gripper_buttons_are_ignored_without_the_deadman():
    m = mapper()
    cmd = drive(m, [0, 0, 0], CLOSE)
    assert cmd.action[3] == -1.0 and not cmd.engaged
    assert drive(m, [0, 0, 0], DEADMAN).action[3] == -1.0


def test_hold_keeps_the_gripper_where_the_operator_left_it():
    m = mapper()
    drive(m, [0, 0, 0], DEADMAN, CLOSE)
    cmd = drive(m, [1, 1, 1])
    assert not cmd.engaged
    np.testing.assert_array_equal(cmd.action, [0.0, 0.0, 0.0, 1.0])


def test_gripper_toggle_flips_once_per_press():
    m = mapper(gripper={"mode": "toggle", "toggle_button": TOGGLE})
    assert drive(m, [0, 0, 0], DEADMAN, TOGGLE).action[3] == 1.0
    assert drive(m, [0, 0, 0], DEADMAN, TOGGLE).action[3] == 1.0  # still held: no second flip
    assert drive(m, [0, 0, 0], DEADMAN).action[3] == 1.0
    assert drive(m, [0, 0, 0], DEADMAN, TOGGLE).action[3] == -1.0


def test_a_toggle_pressed_before_the_deadman_does_not_flip():
    m = mapper(gripper={"mode": "toggle", "toggle_button": TOGGLE})
    drive(m, [0, 0, 0], TOGGLE)
    assert drive(m, [0, 0, 0], DEADMAN, TOGGLE).action[3] == -1.0


def test_gripper_axis_follows_a_trigger_while_engaged():
    m = mapper(gripper={"mode": "axis", "axis": 3, "sign": -1})
    assert drive(m, [0, 0, 0, -0.5], DEADMAN).action[3] == pytest.approx(0.5)
    assert drive(m, [0, 0, 0, -1.0], DEADMAN).action[3] == pytest.approx(1.0)
    assert drive(m, [0, 0, 0, 1.0]).action[3] == pytest.approx(1.0)  # released: held, not followed


def test_gripper_mode_none_never_changes():
    m = mapper(gripper={"mode": "none", "start": 0.0})
    assert drive(m, [0, 0, 0], DEADMAN, CLOSE).action[3] == 0.0


# -- stale and bad input ---------------------------------------------------------------------------
def test_stale_input_holds():
    m = mapper(input_timeout_s=0.5)
    m.joy([1.0, 0.0, 0.0], buttons(DEADMAN), 10.0)
    assert m.command(10.5).engaged  # exactly the timeout: still fresh
    cmd = m.command(10.51)
    assert not cmd.engaged and "old" in cmd.reason and "timeout 0.5 s" in cmd.reason
    np.testing.assert_array_equal(cmd.action[:3], 0.0)


def test_fresh_input_after_stale_input_moves_again_after_a_new_press():
    m = mapper()
    m.joy([1.0, 0.0, 0.0], buttons(DEADMAN), 0.0)
    assert not m.command(5.0).engaged
    assert not drive(m, [1.0, 0.0, 0.0], DEADMAN, now=5.0).engaged
    drive(m, [1.0, 0.0, 0.0], now=5.1)
    assert drive(m, [1.0, 0.0, 0.0], DEADMAN, now=5.2).engaged


def test_stale_buttons_hold_even_with_fresh_axes():
    """A space mouse: the puck keeps publishing, its buttons' topic went quiet."""
    m = mapper()
    m.buttons(buttons(DEADMAN), 0.0)
    m.twist((1.0, 0.0, 0.0), (0.0, 0.0, 0.0), 2.0)
    cmd = m.command(2.0)
    assert not cmd.engaged and "(buttons" in cmd.reason


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_in_a_used_axis_holds(bad):
    m = mapper()
    problem = m.joy([0.5, bad, 0.0], buttons(DEADMAN), 0.0)
    assert "NaN/inf in axis 1 (y)" in problem
    cmd = m.command(0.0)
    assert not cmd.engaged and "NaN/inf" in cmd.reason
    np.testing.assert_array_equal(cmd.action, [0.0, 0.0, 0.0, -1.0])
    assert np.all(np.isfinite(cmd.action))


def test_nan_in_an_unused_axis_is_ignored():
    cmd = drive(mapper(), [0.5, 0.0, 0.0, math.nan], DEADMAN)
    assert cmd.engaged and np.all(np.isfinite(cmd.action))


def test_a_good_message_after_a_nan_one_moves_again_once_the_deadman_is_pressed_anew():
    m = mapper()
    m.joy([math.nan, 0.0, 0.0], buttons(DEADMAN), 0.0)
    assert not m.command(0.0).engaged
    cmd = drive(m, [0.5, 0.0, 0.0], DEADMAN, now=0.1)
    assert not cmd.engaged and "press it again" in cmd.reason
    drive(m, [0.5, 0.0, 0.0], now=0.2)
    assert drive(m, [0.5, 0.0, 0.0], DEADMAN, now=0.3).engaged


def test_a_deadman_held_at_start_up_or_when_input_comes_back_does_not_move():
    """A stuck button, or a pad driver that reconnects reporting its old button state."""
    m = mapper(armed=False)
    cmd = drive(m, [1.0, 0.0, 0.0], DEADMAN, now=0.0)
    assert not cmd.engaged and "release button 4" in cmd.reason
    drive(m, [1.0, 0.0, 0.0], now=0.1)  # released once: armed
    assert drive(m, [1.0, 0.0, 0.0], DEADMAN, now=0.2).engaged
    # The pad drops out with the button held, then reports it held again: no motion.
    assert not m.command(5.0).engaged
    assert not drive(m, [1.0, 0.0, 0.0], DEADMAN, now=5.1).engaged
    drive(m, [1.0, 0.0, 0.0], now=5.2)
    assert drive(m, [1.0, 0.0, 0.0], DEADMAN, now=5.3).engaged


def test_a_nan_message_does_not_move_the_gripper():
    m = mapper(gripper={"mode": "axis", "axis": 3, "sign": 1})
    m.joy([0.0, 0.0, 0.0, math.nan], buttons(DEADMAN), 0.0)
    cmd = m.command(0.0)
    assert not cmd.engaged and cmd.action[3] == -1.0


def test_too_few_axes_or_buttons_hold_with_the_reason():
    m = mapper()
    problem = m.joy([0.5, 0.5], buttons(DEADMAN), 0.0)
    assert "2 axes" in problem and "axis 2 (z)" in problem
    assert not m.command(0.0).engaged
    # Buttons beyond the message read as not pressed (spacenav grows its list as buttons are
    # first pressed): said, and the deadman is released.
    m = mapper()
    problem = m.joy([0.5, 0.5, 0.5], [0, 0, 0], 0.0)
    assert "3 buttons" in problem and "button 4 (deadman) read as not pressed" in problem
    cmd = m.command(0.0)
    assert not cmd.engaged and "deadman released" in cmd.reason


# -- bad configs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, match", [
    ({"input": "keyboard"}, "teleop.input must be one of"),
    ({"deadman_button": -1}, r"teleop.deadman_button must be in \[0, 63\]"),
    ({"deadman_button": 2.5}, "deadman_button must be an integer"),
    ({"deadzone": 1.0}, r"teleop.deadzone must be in \[0, 0.95\]"),
    ({"scale": 0.0}, r"teleop.scale must be in \(0, 10\]"),
    ({"input_timeout_s": 0.0}, "teleop.input_timeout_s must be in"),
    ({"x": {"sign": 2}}, "teleop.x.sign must be 1 or -1"),
    ({"x": {"index": 99}}, r"teleop.x.index must be in \[-1, 63\]"),
    ({"x": 3}, "teleop.x must be a mapping"),
    ({"y": {"index": 0}}, "teleop.y.index 0 is already teleop.x.index"),
    ({"x": {"index": -1}, "y": {"index": -1}, "z": {"index": -1}}, "nothing would move"),
    ({"gripper": {"mode": "pinch"}}, "teleop.gripper.mode must be one of"),
    ({"gripper": {"open_button": -1}}, "gripper.open_button is needed with mode buttons"),
    ({"gripper": {"open_button": 0}}, "close_button and open_button are both 0"),
    ({"gripper": {"close_button": 4}}, "gripper.close_button is the deadman button"),
    ({"gripper": {"mode": "toggle"}}, "gripper.toggle_button is needed with mode toggle"),
    ({"gripper": {"mode": "toggle", "toggle_button": 4}}, "toggle_button is the deadman button"),
    ({"gripper": {"mode": "axis"}}, "gripper.axis is needed with mode axis"),
    ({"gripper": {"mode": "axis", "axis": 1}}, "gripper.axis 1 is already teleop.y.index"),
    ({"gripper": {"mode": "axis", "axis": 5, "sign": 0.5}}, "gripper.sign must be 1 or -1"),
    ({"gripper": {"start": 2.0}}, r"teleop.gripper.start must be in \[-1, 1\]"),
    ({"input": "spacemouse", "z": {"index": 7}}, "z reads axis 7, but a space mouse's twist has 6"),
    ({"speed": 3}, "unknown setting 'teleop.speed'"),
    ({"source": "x"}, "unknown setting 'teleop.source'"),
])
def test_bad_configs_are_refused_naming_the_field(changes, match):
    with pytest.raises(TeleopConfigError, match=match) as info:
        config(**changes)
    assert str(info.value).startswith("pad.yaml: ")


def test_bad_files_are_refused_naming_the_file(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(TeleopConfigError, match=f"cannot read teleop config {missing}"):
        load_teleop_config(missing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(TeleopConfigError, match=f"teleop config {empty}: expected a mapping"):
        load_teleop_config(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("teleop: [1, 2\n")
    with pytest.raises(TeleopConfigError, match="cannot read teleop config"):
        load_teleop_config(broken)
    bad = tmp_path / "bad.yaml"
    bad.write_text("teleop:\n  deadzone: 2.0\n")
    with pytest.raises(TeleopConfigError, match=f"{bad}: teleop.deadzone must be in"):
        load_teleop_config(bad)
    listed = tmp_path / "listed.yaml"
    listed.write_text("teleop: [1, 2]\n")
    with pytest.raises(TeleopConfigError, match="expected a mapping under 'teleop'"):
        load_teleop_config(listed)
