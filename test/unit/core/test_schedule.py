"""The PEBBLE schedule shared by the in-process trainer and the nodes."""

from __future__ import annotations

from ros2_erl_vlm.core.config import LoopConfig
from ros2_erl_vlm.core.schedule import QuerySchedule, acts_randomly, can_update, sac_phase


def _cfg(**kw) -> LoopConfig:
    base = dict(num_seed_steps=100, num_unsup_steps=50, query_every=40, queries_per_round=10,
                max_feedback=25)
    base.update(kw)
    return LoopConfig(**base)


def test_rounds_start_at_learn_start_then_every_query_every_until_budget() -> None:
    c, s = _cfg(), QuerySchedule()
    assert not s.due(c, 149, 5)
    assert not s.due(c, 150, 0)  # no complete episode yet
    assert s.due(c, 150, 1)
    assert s.budget(c) == 10
    assert s.record_round(150, 10) is True
    assert not s.due(c, 189, 1)
    assert s.due(c, 190, 1)
    assert s.record_round(190, 10) is False
    assert s.budget(c) == 5
    s.record_round(230, 5)
    assert s.budget(c) == 0
    assert not s.due(c, 10_000, 1)
    assert s.rounds == 3
    assert s.queries_asked == 25


def test_state_round_trips() -> None:
    s = QuerySchedule()
    s.record_round(7, 3)
    t = QuerySchedule()
    t.load_state_dict(s.state_dict())
    assert t == s


def test_acts_randomly_only_during_the_seed_steps() -> None:
    c = _cfg()
    assert acts_randomly(c, 99)
    assert not acts_randomly(c, 100)


def test_phases_seed_then_unsup_until_a_reward_model_exists() -> None:
    c = _cfg()
    assert sac_phase(c, 99, 0) == "seed"
    assert sac_phase(c, 100, 0) == "unsup"
    assert sac_phase(c, 10_000, 0) == "unsup"  # no reward model yet: keep exploring
    assert sac_phase(c, 120, 1) == "reward"


def test_true_reward_goes_from_seed_to_reward_without_unsup() -> None:
    t = _cfg(reward_source="true", num_unsup_steps=0)
    assert sac_phase(t, 99, 0) == "seed"
    assert sac_phase(t, 100, 0) == "reward"


def test_true_reward_never_asks_for_ratings() -> None:
    t = _cfg(reward_source="true", num_unsup_steps=0)
    assert not QuerySchedule().due(t, 10_000, 5)


def test_can_update_needs_an_eighth_of_a_batch() -> None:
    assert not can_update(512, 63)
    assert can_update(512, 64)
    assert not can_update(16, 7)
    assert can_update(16, 8)
