"""One episode, one MCAP bag: written then read back identical (also by the independent ``mcap``
reader), the type hashes ROS computes, and the clear errors of damaged, unclosed, incomplete and
existing bags."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros2_erl_vlm.recording.mcap_episode import (
    FRAMES,
    METADATA_KEY,
    OBSERVATION,
    RECORDED_TOPICS,
    EpisodeBagError,
    EpisodeWriter,
    StepRecord,
    read_episode,
    typestore,
)


def _mcap_file(bag: Path) -> Path:
    [f] = list(bag.glob("*.mcap"))
    return f


def test_an_episode_reads_back_identical(tmp_path: Path, write_episode: Any) -> None:
    wrote = write_episode(tmp_path, episode=3, n_steps=6)
    rec = read_episode(wrote.path)
    assert rec.episode == 3 and rec.task == "reach-v3"
    assert rec.success and rec.marked and rec.meta["mark_source"] == "test"
    assert rec.meta["end_reason"] == "time_limit" and rec.meta["steps"] == 6
    assert (rec.meta["obs_dim"], rec.meta["action_dim"], rec.meta["frames"]) == (39, 4, 7)
    assert len(rec.steps) == 7
    for got, want in zip(rec.steps, wrote.steps, strict=True):
        assert got.step == want.step and got.stamp_ns == want.stamp_ns
        np.testing.assert_array_equal(got.state, want.state)
        np.testing.assert_array_equal(got.action_taken, want.action_taken)
        assert (got.truncated, got.truncation_reason, got.terminated) == (want.truncated,
                                                                         want.truncation_reason, False)
        assert got.has_truth and got.success == want.success
        assert got.true_reward == np.float32(want.true_reward)
        assert got.progress == np.float32(want.progress)
        assert got.sim_state.dtype == np.float64 and got.sim_state.shape == (30,)
        np.testing.assert_array_equal(got.sim_state, want.sim_state)  # float64, bit for bit
    assert len(rec.actions) == 6
    for t, a in enumerate(rec.actions):
        np.testing.assert_array_equal(a, wrote.steps[t + 1].action_taken)
    assert sorted(rec.frames) == list(range(7))
    for t, frame in rec.frames.items():
        assert frame.data == wrote.frames[t]  # the JPEG bytes as written
        assert frame.format == "jpeg" and frame.frame_id == "cam"
        assert frame.header_stamp_ns == wrote.steps[t].stamp_ns + 1000
        decoded = frame.rgb().astype(int)
        assert decoded.shape == (24, 24, 3)
    assert rec.interventions == [(t, t % 3 == 0) for t in range(7)]
    assert rec.safety_status == [(2, '{"phase": "episode", "step": 2}')]


def test_an_independent_mcap_reader_sees_the_same_episode(tmp_path: Path, write_episode: Any) -> None:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    wrote = write_episode(tmp_path, episode=5, n_steps=4)
    topics: dict[str, list[Any]] = {}
    with open(_mcap_file(wrote.path), "rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        schemas = {c.topic: s.name for s, c in
                   ((reader.get_summary().schemas[ch.schema_id], ch)
                    for ch in reader.get_summary().channels.values())}
        for _schema, channel, message, ros_msg in reader.iter_decoded_messages():
            topics.setdefault(channel.topic, []).append((message.log_time, ros_msg))
        [record] = [m for m in reader.iter_metadata() if m.name == "rosbag2"]
    assert schemas == {f"/{k}": v for k, v in RECORDED_TOPICS.items()}
    obs = topics["/observation"]
    assert [m.step for _, m in obs] == list(range(5))
    for (log_time, m), want in zip(obs, wrote.steps, strict=True):
        assert log_time == want.stamp_ns and m.episode == 5
        assert m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == want.stamp_ns
        np.testing.assert_array_equal(np.asarray(m.state, dtype=np.float32), want.state)
        np.testing.assert_array_equal(np.asarray(m.action_taken, dtype=np.float32), want.action_taken)
        assert m.truncated == want.truncated and m.has_truth
    actions = topics["/action_taken"]
    assert [m.step for _, m in actions] == list(range(4))
    for (_, m), want in zip(actions, wrote.steps[1:], strict=True):
        np.testing.assert_array_equal(np.asarray(m.action, dtype=np.float32), want.action_taken)
    frames = topics["/camera/image_raw/compressed"]
    assert [bytes(m.data) for _, m in frames] == [wrote.frames[t] for t in range(5)]
    assert {m.format for _, m in frames} == {"jpeg"}
    assert [m.data for _, m in topics["/intervention"]] == [t % 3 == 0 for t in range(5)]
    assert [json.loads(m.data)["step"] for _, m in topics["/safety_status"]] == [2]
    # the metadata record rosbag2 writes into the MCAP file carries the success mark
    meta = json.loads(_custom_data(record.metadata["serialized_metadata"])[METADATA_KEY])
    assert (meta["episode"], meta["success"], meta["marked"]) == (5, True, True)


def _custom_data(serialized: str) -> dict[str, str]:
    import yaml

    return yaml.safe_load(serialized)["custom_data"]


def test_custom_message_hashes_are_rosidls(tmp_path: Path) -> None:
    found = [Path(p) / "share" / "erl_vlm" / "msg" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
             if p and (Path(p) / "share" / "erl_vlm" / "msg" / "Observation.json").is_file()]
    venv_share = Path(__file__).resolve().parents[3] / ".venv" / "share" / "erl_vlm" / "msg"
    if venv_share.is_dir():
        found.append(venv_share)
    if not found:
        pytest.skip("no built erl_vlm messages (share/erl_vlm/msg/*.json) to compare with")
    for name in ("Observation", "Action"):
        described = json.loads((found[0] / f"{name}.json").read_text())
        want = next(h["hash_string"] for h in described["type_hashes"]
                    if h["type_name"] == f"erl_vlm/msg/{name}")
        assert typestore().hash_rihs01(f"erl_vlm/msg/{name}") == want


def test_a_truncated_bag_names_its_file_and_episode(tmp_path: Path, write_episode: Any) -> None:
    wrote = write_episode(tmp_path, episode=7, n_steps=20)
    f = _mcap_file(wrote.path)
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * 0.8)])  # the final chunk and the summary cut off
    with pytest.raises(EpisodeBagError, match=r"episode 7 .*episode_000007.*truncated or damaged"):
        read_episode(wrote.path)


def test_a_bag_never_closed_is_an_error(tmp_path: Path, write_episode: Any) -> None:
    wrote = write_episode(tmp_path, episode=2)
    (wrote.path / "metadata.yaml").unlink()
    with pytest.raises(EpisodeBagError, match=r"episode_000002.*never closed"):
        read_episode(wrote.path)


def test_a_bag_missing_a_topic_names_it(tmp_path: Path) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = typestore()
    path = tmp_path / "episode_000004"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        w.set_custom_data(METADATA_KEY, json.dumps({"format": "erl_vlm.episode/1", "episode": 4}))
        for name, msgtype in RECORDED_TOPICS.items():
            if name != FRAMES:
                w.add_connection(f"/{name}", msgtype, typestore=ts)
    with pytest.raises(EpisodeBagError, match=r"episode 4 .*episode_000004.*missing topic\(s\) "
                                              r"camera/image_raw/compressed"):
        read_episode(path)


def _foreign_bag(path: Path, with_camera: bool = True, mark: bool | None = True) -> None:
    """A bag as ``ros2 bag record -s mcap`` writes it: the graph's topics, no erl_vlm metadata,
    a re-published observation, camera stamps a little off the steps'."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from ros2_erl_vlm.core.frames import FrameCodec

    ts = typestore()
    t = ts.types
    header = t["std_msgs/msg/Header"]
    stamp = t["builtin_interfaces/msg/Time"]
    codec = FrameCodec("jpeg")
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        obs_c = w.add_connection("/robot1/observation", "erl_vlm/msg/Observation", typestore=ts)
        cam_c = w.add_connection("/robot1/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage",
                                 typestore=ts) if with_camera else None
        ok_c = w.add_connection("/robot1/success", "std_msgs/msg/Bool", typestore=ts)
        for step in (0, 1, 1, 2):
            ns = 10**9 + step * 100_000_000
            m = t["erl_vlm/msg/Observation"](
                header=header(stamp=stamp(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="base"),
                episode=9, step=step, state=np.full(7, step, np.float32),
                action_taken=np.full(3, 0.1 * step, np.float32) if step else np.zeros(0, np.float32),
                terminated=False, truncated=step == 2, truncation_reason="", has_truth=False,
                true_reward=np.nan, progress=np.nan, success=False, sim_state=np.zeros(0, np.float64))
            w.write(obs_c, ns + 5, ts.serialize_cdr(m, "erl_vlm/msg/Observation"))
            if cam_c is not None:
                cam_ns = ns + 20_000_000
                data = codec.encode(np.full((8, 8, 3), 40 * step, np.uint8))
                img = t["sensor_msgs/msg/CompressedImage"](
                    header=header(stamp=stamp(sec=cam_ns // 10**9, nanosec=cam_ns % 10**9), frame_id="cam"),
                    format="jpeg", data=np.frombuffer(data, np.uint8))
                w.write(cam_c, cam_ns + 7, ts.serialize_cdr(img, "sensor_msgs/msg/CompressedImage"))
        if mark is not None:
            w.write(ok_c, 2 * 10**9, ts.serialize_cdr(t["std_msgs/msg/Bool"](data=mark), "std_msgs/msg/Bool"))


def test_a_ros2_bag_record_bag_is_read(tmp_path: Path) -> None:
    _foreign_bag(tmp_path / "ep9")
    rec = read_episode(tmp_path / "ep9", sync_tolerance_s=0.03)
    assert rec.episode == 9 and [s.step for s in rec.steps] == [0, 1, 2]  # the re-published step once
    np.testing.assert_array_equal(np.stack(rec.actions), np.float32([[0.1] * 3, [0.2] * 3]))
    assert sorted(rec.frames) == [0, 1, 2]
    assert rec.success and rec.marked and rec.meta["mark_source"] == "topic:success"
    exact = read_episode(tmp_path / "ep9")  # tolerance 0: camera stamps 20 ms off pair with nothing
    assert exact.frames == {}


def test_a_ros2_bag_without_the_camera_is_an_error(tmp_path: Path) -> None:
    _foreign_bag(tmp_path / "ep9", with_camera=False)
    with pytest.raises(EpisodeBagError, match=r"episode ep9 .*missing topic\(s\) camera/image_raw/compressed "
                                              r"\(the bag has: /robot1/observation, /robot1/success\)"):
        read_episode(tmp_path / "ep9")


def test_writing_never_overwrites_a_bag(tmp_path: Path, write_episode: Any) -> None:
    wrote = write_episode(tmp_path, episode=1)
    before = {p.name: p.read_bytes() for p in wrote.path.iterdir()}
    with pytest.raises(EpisodeBagError, match=r"episode 1 .*exists already.*never overwritten"):
        EpisodeWriter(wrote.path, 1)
    assert {p.name: p.read_bytes() for p in wrote.path.iterdir()} == before


def test_the_writer_refuses_steps_out_of_order_and_frames_without_a_step(tmp_path: Path) -> None:
    w = EpisodeWriter(tmp_path / "e", 0)
    w.write_step(StepRecord(0, np.zeros(3), np.zeros(0), 0))
    w.write_step(StepRecord(1, np.zeros(3), np.zeros(2), 10))
    with pytest.raises(EpisodeBagError, match="step 1 after step 1"):
        w.write_step(StepRecord(1, np.zeros(3), np.zeros(2), 20))
    with pytest.raises(EpisodeBagError, match="a frame for step 5, which has no observation"):
        w.write_frame(5, b"\xff\xd8\xff\xd9")
    w.close(None)
    rec = read_episode(tmp_path / "e")
    assert not rec.success and not rec.marked and rec.meta["mark_source"] == ""


def test_an_unmarked_episode_records_failure_unmarked(tmp_path: Path, write_episode: Any) -> None:
    rec = read_episode(write_episode(tmp_path, success=None).path)
    assert (rec.success, rec.marked) == (False, False)


def test_a_bag_holding_two_episodes_is_refused(tmp_path: Path) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = typestore()
    obs_t = ts.types["erl_vlm/msg/Observation"]
    path = tmp_path / "mixed"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection("/observation", "erl_vlm/msg/Observation", typestore=ts)
        w.add_connection("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", typestore=ts)
        for i, ep in enumerate((1, 2)):
            m = obs_t(header=ts.types["std_msgs/msg/Header"](stamp=ts.types["builtin_interfaces/msg/Time"](
                sec=i, nanosec=0), frame_id=""), episode=ep, step=0, state=np.zeros(2, np.float32),
                action_taken=np.zeros(0, np.float32), terminated=False, truncated=False, truncation_reason="",
                has_truth=False, true_reward=0.0, progress=0.0, success=False,
                sim_state=np.zeros(0, np.float64))
            w.write(c, i, ts.serialize_cdr(m, "erl_vlm/msg/Observation"))
    with pytest.raises(EpisodeBagError, match=r"mixed.*several episodes \[1, 2\]: one bag per episode"):
        read_episode(path)


def test_observation_topic_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    path = tmp_path / "wrong"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        w.add_connection(f"/{OBSERVATION}", "std_msgs/msg/String", typestore=typestore())
    with pytest.raises(EpisodeBagError, match="topic /observation is std_msgs/msg/String, expected "
                                              "erl_vlm/msg/Observation"):
        read_episode(path)
