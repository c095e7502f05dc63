"""The offline rating CLI: frame directories and an MCAP bag, rated with a local checkpoint, then
replayed from the rating log it wrote."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ros2_erl_vlm
from ros2_erl_vlm.core.record_log import scan
from ros2_erl_vlm.raters.cli import main
from ros2_erl_vlm.raters.random_weight_vlms import BUILDERS, save_vlm
from ros2_erl_vlm.raters.recorded_episodes import read_episodes

pytestmark = pytest.mark.integration
REPO = Path(ros2_erl_vlm.__file__).resolve().parent.parent


def write_frames(directory: Path, n: int, seed: int) -> np.ndarray:
    directory.mkdir(parents=True)
    frames = np.random.default_rng(seed).integers(0, 256, (n, 24, 24, 3), dtype=np.uint8)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(directory / f"frame_{i:04d}.png")
    return frames


def write_bag(path: Path, frames: np.ndarray) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    img_t, header_t, time_t = (ts.types[n] for n in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                      "builtin_interfaces/msg/Time"))
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/camera/image_raw", img_t.__msgtype__, typestore=ts)
        for i, f in enumerate(frames):
            bgr = np.ascontiguousarray(f[..., ::-1])
            msg = img_t(header=header_t(stamp=time_t(sec=i, nanosec=0), frame_id="cam"), height=f.shape[0],
                        width=f.shape[1], encoding="bgr8", is_bigendian=0, step=f.shape[1] * 3,
                        data=bgr.ravel())
            w.write(conn, i * 10**9, ts.serialize_cdr(msg, img_t.__msgtype__))


def test_episode_reader_of_a_directory_of_frame_directories(tmp_path):
    a = write_frames(tmp_path / "eps" / "ep_a", 3, 0)
    write_frames(tmp_path / "eps" / "ep_b", 2, 1)
    eps = read_episodes(tmp_path / "eps")
    assert [(e.name, len(e)) for e in eps] == [("ep_a", 3), ("ep_b", 2)]
    np.testing.assert_array_equal(eps[0].frames, a)


def test_episode_reader_of_an_mcap_bag(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    write_bag(tmp_path / "bag", a)
    [bag] = read_episodes(tmp_path / "bag")
    np.testing.assert_array_equal(bag.frames, a)  # bgr8 decoded to RGB
    assert bag.stamps_s.tolist() == [0.0, 1.0, 2.0]


def test_episode_reader_of_an_npy_array(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    np.save(tmp_path / "arr.npy", a)
    np.testing.assert_array_equal(read_episodes(tmp_path / "arr.npy")[0].frames, a)


def test_episode_reader_of_a_directory_without_images_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        read_episodes(tmp_path / "empty")


def test_cli_rates_frames_and_bag_then_replays(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, proc = BUILDERS["idefics3"]()
    ckpt = save_vlm(model, proc, tmp_path / "smol")
    frames = write_frames(tmp_path / "eps" / "ep_a", 4, 0)
    write_bag(tmp_path / "run", frames[:3])
    out = tmp_path / "out"
    code = main([str(tmp_path / "eps" / "ep_a"), str(tmp_path / "run"), "--out", str(out),
                 "--backend", "transformers", "--set", f"model={ckpt}", "--set", "batch_size=4",
                 "--set", "min_class_mass=0",
                 "--instruction", "open the drawer", "--num-classes", "3", "--segment-length", "2"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["queries"] == 3 + 2
    assert sum(summary["classes"].values()) == 5
    rows = list(csv.DictReader(open(out / "ratings.csv", encoding="utf-8")))
    assert [r["query_id"] for r in rows] == ["ep_a:0", "ep_a:1", "ep_a:2", "run:0", "run:1"]
    assert {r["class_name"] for r in rows} <= {"Bad", "Average", "Good"}
    not_normalised = [r["probabilities"] for r in rows
                      if not abs(sum(map(float, r["probabilities"].split())) - 1) < 1e-5]
    assert not_normalised == []
    assert len(scan(out / "ratings.log").records) == 5
    # the bag shows the same first frames as the directory: same content, same answer
    assert rows[3]["label"] == rows[0]["label"]
    assert rows[3]["probabilities"] == rows[0]["probabilities"]

    # replay the run from its log, in a fresh process, through the module entry point
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "ros2_erl_vlm.raters.cli", str(tmp_path / "eps" / "ep_a"), "--out",
         str(tmp_path / "replayed"), "--backend", "replay", "--set", f"paths={out / 'ratings.log'}",
         "--instruction", "open the drawer", "--classes", "Bad,Average,Good", "--segment-length", "2"],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    replayed = list(csv.DictReader(open(tmp_path / "replayed" / "ratings.csv", encoding="utf-8")))
    assert [r["label"] for r in replayed] == [r["label"] for r in rows[:3]]


@pytest.mark.parametrize(("args", "needle"), [
    (["--backend", "transformers", "--instruction", "open the drawer"], "'model'"),  # no model
    (["--backend", "replay", "--set", "paths=/nonexistent.log"], "--task or --instruction"),
], ids=["without_a_model", "without_a_task_or_instruction"])
def test_cli_with_missing_settings_exits_2(tmp_path, capsys, args, needle):
    write_frames(tmp_path / "ep", 1, 0)
    code = main([str(tmp_path / "ep"), "--out", str(tmp_path / "o"), *args])
    assert code == 2
    assert needle in capsys.readouterr().err
