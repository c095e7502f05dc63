"""Episode checkpoint state: what a resumed reward learner gets back of each stored episode."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ros2_erl_vlm.core.checkpoint import load_checkpoint, save_checkpoint
from ros2_erl_vlm.core.episode_store import Episode
from ros2_erl_vlm.core.rating.rater import SimTruth


def _episode(states: list[np.ndarray | None]) -> Episode:
    truth = tuple(SimTruth(float(i), i == 2, 0.1 * i, st) for i, st in enumerate(states))
    return Episode(7, np.arange(len(states) * 3, dtype=np.float32).reshape(-1, 3),
                   np.zeros((len(states), 4), np.float32), truth)


def _roundtrip(ep: Episode, tmp_path: Path) -> Episode:
    save_checkpoint(tmp_path / "ep.pt", ep.to_state())
    return Episode.from_state(load_checkpoint(tmp_path / "ep.pt"))


def test_sim_states_survive_a_checkpoint(tmp_path: Path) -> None:
    states = [np.linspace(0, 1, 38) + i for i in range(3)]
    back = _roundtrip(_episode(states), tmp_path)
    assert back.truth is not None
    for t, want in zip(back.truth, states, strict=True):
        assert t.sim_state is not None and t.sim_state.dtype == np.float64
        np.testing.assert_array_equal(t.sim_state, want)
    assert [t.reward for t in back.truth] == [0.0, 1.0, 2.0] and back.success


def test_a_missing_or_ragged_sim_state_comes_back_as_none(tmp_path: Path) -> None:
    for states in ([np.zeros(38), None, np.zeros(38)], [np.zeros(38), np.zeros(27), np.zeros(38)]):
        back = _roundtrip(_episode(states), tmp_path)
        assert back.truth is not None and all(t.sim_state is None for t in back.truth)
        assert [t.progress for t in back.truth] == [0.0, 0.1, 0.2]


def test_a_checkpoint_written_before_sim_states_were_kept_still_loads() -> None:
    state = _episode([np.zeros(38)] * 2).to_state()
    del state["truth"]["sim_state"]
    back = Episode.from_state(state)
    assert back.truth is not None and all(t.sim_state is None for t in back.truth)
