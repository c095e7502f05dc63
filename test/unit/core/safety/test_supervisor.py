"""The safety supervisor with an injected clock: watchdog, stale state, deadman, e-stop latch."""

import pytest

from ros2_erl_vlm.core.safety.supervisor import SafetySupervisor


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def make(enable=None, zero_periods=2):
    clock = Clock()
    s = SafetySupervisor(0.1, 2.0, 0.5, enable, zero_periods, clock=clock)
    return s, clock


def running(enable=None):
    s, clock = make(enable)
    s.state_received(True, 1.0)
    s.action_received()
    if enable:
        s.enable_received(True)
    assert s.verdict().mode == "run"
    return s, clock


def test_runs_with_fresh_action_and_state():
    s, _ = running()
    assert s.reasons() == ()


def test_command_timeout_after_two_periods_then_zero_then_silence():
    s, clock = running()
    clock.t += 0.15
    assert s.verdict().mode == "run"  # within 2 periods
    clock.t += 0.1
    v = s.verdict()
    assert (v.mode, v.reason, v.new_stop) == ("zero", "command_timeout", True)
    s.state_received(True)
    clock.t += 0.1
    s.state_received(True)
    v = s.verdict()
    assert v.mode == "zero" and not v.new_stop
    assert s.verdict().mode == "silent"
    s.action_received()  # the policy is back
    assert s.verdict().mode == "run"


def test_stale_state_stops():
    s, clock = running()
    clock.t += 0.6
    s.action_received()
    assert s.verdict().reason == "stale_state"


def test_nan_state_counts_as_no_state():
    s, _ = running()
    assert "NaN" in s.state_received(False)
    assert s.verdict().reason == "stale_state"
    assert s.state_received(True) == ""
    s.action_received()
    assert s.verdict().mode == "run"


def test_a_refused_state_stops_until_a_good_one():
    s, _ = running()
    s.state_refused("a measured state with a zero stamp")
    assert s.verdict().reason == "stale_state" and "zero stamp" in s.describe(s.reasons())
    s.state_received(True, 2.0)
    s.action_received()
    assert s.verdict().mode == "run"


def test_out_of_order_stamp_refused():
    s, _ = running()
    assert "before the previous" in s.state_received(True, 0.5)
    assert "stale_state" in s.reasons()


def test_deadman_requires_fresh_true_heartbeat():
    s, clock = running(enable=0.5)
    clock.t += 0.3
    s.action_received()
    s.state_received(True)
    assert s.verdict().mode == "run"
    clock.t += 0.3  # heartbeat 0.6 s old
    s.action_received()
    s.state_received(True)
    assert s.verdict().reason == "deadman"
    s.enable_received(True)
    assert s.verdict().mode == "run"
    s.enable_received(False)  # released: stop at once
    assert s.verdict().reason == "deadman"


def test_estop_latches_until_reset():
    s, clock = running()
    s.estop_received(True)
    assert s.verdict().reason == "estop"
    s.estop_received(False)  # releasing the button does not restart the arm
    for _ in range(5):
        clock.t += 0.05
        s.action_received()
        s.state_received(True)
        assert s.verdict().mode in ("zero", "silent")
    assert s.reset_estop() is True
    assert s.verdict().mode == "run"
    assert s.reset_estop() is False


def test_estop_is_reported_first():
    s, clock = running()
    clock.t += 10
    s.estop_received(True)
    assert s.reasons()[0] == "estop" and "stale_state" in s.reasons()


def test_external_stop_and_clear():
    s, _ = running()
    s.external_stop("servo halted: collision")
    assert s.verdict().reason == "external"
    assert "collision" in s.describe(s.reasons())
    s.clear_external()
    assert s.verdict().mode == "run"


def test_a_stop_before_the_first_run_is_not_a_new_stop():
    s, _ = make()
    v = s.verdict()
    assert v.mode == "zero" and not v.new_stop


def test_non_positive_timeouts_refused():
    with pytest.raises(ValueError):
        SafetySupervisor(0.1, 0.0, 0.5, None)
    with pytest.raises(ValueError):
        SafetySupervisor(0.1, 2.0, 0.5, 0.0)
