"""The ``[progress]`` line of graph runs: its content, the ETA and the recent rate."""

from __future__ import annotations

import math

import pytest

from ros2_erl_vlm.core.progress import RecentRate, eta_seconds, format_duration, progress_line


def test_full_line_has_every_field_and_the_eta() -> None:
    line = progress_line(step=12_000, total_steps=30_000, steps_per_s=40.0, episodes=24,
                         success_rate=0.3, ratings=150, abstentions=3, agreement=0.814,
                         model_version=3)
    assert line == ("[progress] step 12000/30000 (40%) | 40.0 steps/s | ETA 7m30s | episodes 24 | "
                    "eval success 0.30 | ratings 150 (+3 abstained), truth agreement 81% | "
                    "reward model v3")


def test_missing_values_are_dashes() -> None:
    line = progress_line(step=0, total_steps=2000, steps_per_s=None, episodes=0, success_rate=None,
                         ratings=0, agreement=None, model_version=0)
    assert line.startswith("[progress] step 0/2000 (0%) | ")
    assert "| - steps/s |" in line and "| ETA - |" in line
    assert "| eval success - |" in line
    assert "ratings 0, truth agreement - |" in line and "abstained" not in line
    assert line.endswith("| reward model -")
    nan = progress_line(step=5, total_steps=10, steps_per_s=math.nan, episodes=0,
                        success_rate=math.nan, ratings=None, model_version=0)
    assert "- steps/s" in nan and "ETA -" in nan and "eval success -" in nan and "ratings -" in nan


def test_no_agreement_field_without_truth_and_done_run_has_zero_eta() -> None:
    line = progress_line(step=100, total_steps=100, steps_per_s=0.0, episodes=1, success_rate=1.0,
                         ratings=4, show_agreement=False, model_version=1)
    assert "agreement" not in line
    assert "step 100/100 (100%)" in line and "ETA 0s" in line and "ratings 4 |" in line


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (44.6, "45s"), (60, "1m00s"), (750, "12m30s"), (3600, "1h00m"), (11_100, "3h05m"),
    (None, "-"), (-1.0, "-"), (math.inf, "-"), (math.nan, "-")])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_eta() -> None:
    assert eta_seconds(100, 1100, 10.0) == 100.0
    assert eta_seconds(1100, 1100, None) == 0.0
    assert eta_seconds(0, 10, 0.0) is None and eta_seconds(0, 10, None) is None


def test_recent_rate_follows_the_window() -> None:
    r = RecentRate(window_s=10.0)
    assert r.rate() is None
    r.add(0.0, 0)
    assert r.rate() is None
    for t in range(1, 21):  # 100 steps/s for 10 s, then 10 steps/s
        r.add(float(t), 100 * min(t, 10) + 10 * max(t - 10, 0))
    assert r.rate() == pytest.approx(10.0)  # the first 10 s fell out of the window
    assert r.samples[0][0] == 10.0
    with pytest.raises(ValueError):
        RecentRate(0.0)
