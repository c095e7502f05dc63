"""Bags outlive message definitions: a bag is decoded with the definitions stored in it, not the
package's current msg/, fields are read by name with defaults for the ones an older definition
lacks, and the writer fills every field of the current definition (``sim_state`` included).

``msg_77fc437/Observation.msg`` is ``git show 77fc437:msg/Observation.msg``: the Observation of the
recordings made before ``sim_state`` was added (commit 816c180)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros2_erl_vlm.recording.mcap_episode import (
    OBSERVATION,
    OBSERVATION_TYPE,
    EpisodeBagError,
    EpisodeWriter,
    StepRecord,
    msg_dir,
    read_episode,
    typestore,
)

OLD_OBSERVATION = Path(__file__).with_name("msg_77fc437") / "Observation.msg"


def _store_with_observation(definition: str) -> Any:
    """ROS 2 Kilted's types, the package's erl_vlm messages, and ``definition`` as Observation."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for f in sorted(msg_dir().glob("*.msg")):
        if f.stem != "Observation":
            types.update(get_types_from_msg(f.read_text(encoding="utf-8"), f"erl_vlm/msg/{f.stem}"))
    types.update(get_types_from_msg(definition, OBSERVATION_TYPE))
    store.register(types)
    return store


def _stored_observation(bag: Path) -> tuple[str, str, list[bytes]]:
    """The bag's stored Observation definition, its type hash and the raw messages."""
    from rosbags.rosbag2 import Reader

    with Reader(bag) as r:
        [conn] = [c for c in r.connections if c.topic == f"/{OBSERVATION}"]
        return conn.msgdef.data, conn.digest, [raw for _, _, raw in r.messages(connections=[conn])]


def test_a_bag_of_the_definition_before_sim_state_reads_back(tmp_path: Path, write_episode: Any) -> None:
    old = _store_with_observation(OLD_OBSERVATION.read_text(encoding="utf-8"))
    wrote = write_episode(tmp_path, episode=4, n_steps=5, types=old)
    definition, digest, raws = _stored_observation(wrote.path)
    assert "sim_state" not in definition and "float32 progress" in definition  # an old-format bag
    assert digest == old.hash_rihs01(OBSERVATION_TYPE) != typestore().hash_rihs01(OBSERVATION_TYPE)
    with pytest.raises(Exception, match="Could not deserialize"):  # what reading with msg/ did
        typestore().deserialize_cdr(raws[0], OBSERVATION_TYPE)

    rec = read_episode(wrote.path)
    assert rec.episode == 4 and rec.success and rec.meta["steps"] == 5
    assert len(rec.steps) == 6 and len(rec.actions) == 5 and sorted(rec.frames) == list(range(6))
    for got, want in zip(rec.steps, wrote.steps, strict=True):
        assert (got.step, got.stamp_ns, got.truncated, got.success) == (want.step, want.stamp_ns,
                                                                        want.truncated, want.success)
        np.testing.assert_array_equal(got.state, want.state)
        np.testing.assert_array_equal(got.action_taken, want.action_taken)
        assert got.has_truth and got.true_reward == np.float32(want.true_reward)
        assert got.sim_state.dtype == np.float64 and got.sim_state.size == 0  # the old bag has none


def test_a_bag_of_the_current_definition_carries_sim_state(tmp_path: Path, write_episode: Any) -> None:
    wrote = write_episode(tmp_path, episode=2, n_steps=3, sim_state_dim=38)
    definition, digest, _ = _stored_observation(wrote.path)
    assert "float64[] sim_state" in definition
    assert digest == typestore().hash_rihs01(OBSERVATION_TYPE)
    rec = read_episode(wrote.path)
    for got, want in zip(rec.steps, wrote.steps, strict=True):
        assert got.sim_state.shape == (38,)
        np.testing.assert_array_equal(got.sim_state, want.sim_state)


def test_old_and_new_bags_export_together(tmp_path: Path, write_episode: Any) -> None:
    from ros2_erl_vlm.recording.export import export

    old = _store_with_observation(OLD_OBSERVATION.read_text(encoding="utf-8"))
    write_episode(tmp_path / "bags", episode=0, n_steps=3, types=old)
    write_episode(tmp_path / "bags", episode=1, n_steps=4, seed=1)
    summary = export(tmp_path / "bags", tmp_path / "mixed.npz")
    assert summary["episodes"] == 2 and summary["transitions"] == 7


def test_fields_a_minimal_definition_lacks_read_as_defaults(tmp_path: Path) -> None:
    minimal = _store_with_observation("std_msgs/Header header\nuint64 episode\nuint32 step\nfloat32[] state\n")
    w = EpisodeWriter(tmp_path / "e", 0, types=minimal)
    w.write_step(StepRecord(0, np.arange(3), np.zeros(0), 5, truncated=True, has_truth=True))
    w.close(None)
    [step] = read_episode(tmp_path / "e").steps
    assert (step.truncated, step.terminated, step.has_truth, step.success, step.truncation_reason) == (
        False, False, False, False, "")
    assert math.isnan(step.true_reward) and math.isnan(step.progress)
    assert step.action_taken.size == 0 and step.sim_state.size == 0
    np.testing.assert_array_equal(step.state, np.arange(3, dtype=np.float32))


def test_a_definition_without_the_state_is_named(tmp_path: Path) -> None:
    no_state = _store_with_observation("std_msgs/Header header\nuint64 episode\nuint32 step\n")
    w = EpisodeWriter(tmp_path / "e", 6, types=no_state)
    w.write_step(StepRecord(0, np.arange(3), np.zeros(0), 5))
    w.close(None)
    with pytest.raises(EpisodeBagError, match=r"episode 6 \(.*e\): the bag's erl_vlm/msg/Observation "
                                              r"definition has no field\(s\) state"):
        read_episode(tmp_path / "e")


def test_the_writer_refuses_a_field_it_does_not_fill(tmp_path: Path) -> None:
    newer = _store_with_observation(msg_dir().joinpath("Observation.msg").read_text(encoding="utf-8")
                                    + "\nfloat32 gripper_force\n")
    w = EpisodeWriter(tmp_path / "e", 1, types=newer)
    with pytest.raises(EpisodeBagError, match=r"episode 1 .*erl_vlm/msg/Observation has field\(s\) "
                                              r"gripper_force the writer does not fill"):
        w.write_step(StepRecord(0, np.arange(3), np.zeros(0), 5))
    w.close(None)
