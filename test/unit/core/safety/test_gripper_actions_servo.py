"""Action checks, gripper hysteresis and Servo's status codes and activation."""

import numpy as np
import pytest

from ros2_erl_vlm.core.safety.actions import BadActionError, checked_action
from ros2_erl_vlm.core.safety.gripper import GripperHysteresis, opening
from ros2_erl_vlm.core.safety.servo import ServoActivationError, activate_servo, servo_stop_reason


def test_checked_action_clips_and_refuses_nan_and_wrong_size():
    np.testing.assert_array_equal(checked_action([2.0, -3.0, 0.5, 0.0], 4), [1.0, -1.0, 0.5, 0.0])
    for bad in ([np.nan, 0, 0, 0], [np.inf, 0, 0, 0], [0, 0, 0]):
        with pytest.raises(BadActionError):
            checked_action(bad, 4)


def test_gripper_hysteresis_holds_between_thresholds():
    g = GripperHysteresis(0.25, -0.25)
    assert g.update(0.1) is False
    assert g.update(0.3) is True
    assert g.update(0.0) is True and g.update(-0.2) is True  # no chatter
    assert g.update(-0.3) is False
    assert g.applied == -1.0
    with pytest.raises(ValueError):
        GripperHysteresis(0.0, 0.0)


def test_opening_normalised_and_clipped():
    assert opening(0.04, 0.04, 0.0) == 1.0
    assert opening(0.02, 0.04, 0.0) == pytest.approx(0.5)
    assert opening(-1.0, 0.04, 0.0) == 0.0


def test_servo_halt_codes_stop():
    assert servo_stop_reason(0) == "" and servo_stop_reason(4) == ""
    for code in (2, 5, 6):
        assert "halted" in servo_stop_reason(code)
    assert "unknown" in servo_stop_reason(42)


class Client:
    def __init__(self, pause_ok=True, switch_ok=True):
        self.calls = []
        self.pause_ok, self.switch_ok = pause_ok, switch_ok

    def pause(self, paused):
        self.calls.append(("pause", paused))
        return self.pause_ok, "" if self.pause_ok else "not running"

    def switch_to_twist(self):
        self.calls.append(("switch",))
        return self.switch_ok, ""


def test_activation_unpauses_then_switches_to_twist():
    c = Client()
    activate_servo(c)
    assert c.calls == [("pause", False), ("switch",)]


def test_activation_failures_name_the_call():
    with pytest.raises(ServoActivationError, match="pause_servo.*not running"):
        activate_servo(Client(pause_ok=False))
    c = Client(switch_ok=False)
    with pytest.raises(ServoActivationError, match="switch_command_type"):
        activate_servo(c)
