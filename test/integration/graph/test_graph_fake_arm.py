"""The whole graph on the real-arm path: ``use_sim:=false fake:=true allow_real_training:=true``.

arm_bridge commands fake_arm (MetaWorld's Sawyer behind MoveIt Servo's rules) in real time; no
observation carries simulator truth; a tiny random-weight VLM (the transformers backend) rates
the fake arm's camera frames; the reward model learns from those ratings on the same camera frames
(``reward.input_kind: image``, the paper's CNN: a real arm has no object state) and the agent trains
for a few thousand steps. The camera frames travel as JPEG (sensor_msgs/CompressedImage),
as from a real camera driver. The fake runs at 50 Hz control (a real arm: 10 Hz) to keep
the suite short.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ros2_erl_vlm.core.rating.dataset import read_ratings
from ros2_erl_vlm.core.record_log import scan
from ros2_erl_vlm.paths import config_dir

pytestmark = [pytest.mark.ros, pytest.mark.integration, pytest.mark.render]

TOTAL_STEPS = 1500
NAMESPACE = "erl_test_fake_arm"
ARM_NODES = ("camera_capture", "vlm_rater", "reward_learner", "sac_agent", "rating_viz", "arm_bridge",
             "fake_arm")


def _arm_config(path: Path) -> Path:
    data = yaml.safe_load((config_dir() / "arms" / "fake_sawyer.yaml").read_text())
    arm = data["arm"]
    arm["control"].update(rate_hz=50.0, max_speed_m_s=0.25, home_speed_m_s=0.15, episode_steps=100,
                          # 0.5 s: the agent's image-model relabelling on a loaded CPU must not
                          # end most episodes early (the stops themselves: test/integration/arm)
                          command_timeout_periods=25.0, state_timeout_s=2.0)
    arm["servo"]["stream_rate_hz"] = 100.0
    arm["topics"]["wait_s"] = 150.0
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def run(small_params: Any, start_graph: Any, vlm_config: Path,
        tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train the graph on the fake arm for TOTAL_STEPS; collect the outcome."""
    arm = _arm_config(tmp_path_factory.mktemp("arm") / "arm.yaml")
    params = small_params("fake_arm.yaml", {
        "/**": {"reward.input_kind": "image", "reward.image_size": 48},
        "/**/sac_agent": {"total_steps": TOTAL_STEPS, "checkpoint_every": 500},
        "/**/fake_arm": {"camera.rate_hz": 50.0, "camera.image_size": 64, "rate_hz": 100.0,
                         "camera.compressed": True},
        "/**/camera_capture": {"transport": "compressed"}})
    t0 = time.monotonic()
    g = start_graph(params, use_sim="false", fake="true", allow_real_training="true",
                    arm_config=str(arm), seed="2", namespace=NAMESPACE, rater="transformers",
                    rater_config=str(vlm_config))
    g.wait_for("the agent to finish", lambda: ("sac_agent", 0) in g.procs.exited(), timeout_s=400)
    time.sleep(1.0)
    statuses = {n: g.status(n) for n in ARM_NODES}
    codes = g.procs.stop_all()
    return {"dir": g.run_dir, "status": statuses, "codes": codes, "output": g.output(),
            "wall_s": time.monotonic() - t0, "nodes": sorted(g.procs.procs)}


def test_the_real_arm_side_runs_in_place_of_the_simulator(run: dict[str, Any]) -> None:
    assert run["nodes"] == sorted(ARM_NODES)  # no sim_bridge
    assert run["codes"]["sac_agent"] == 0
    assert all(c in (0, None) for c in run["codes"].values()), (run["codes"], run["output"][-4000:])
    summary = json.loads((run["dir"] / "sac_agent" / "summary.json").read_text())
    assert summary["steps"] == TOTAL_STEPS
    bridge = run["status"]["arm_bridge"]
    assert bridge["counters"]["steps"] >= TOTAL_STEPS
    assert bridge["counters"]["bad_actions"] == 0
    with (run["dir"] / "sac_agent" / "train.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # Every episode the bridge ended (time limit or a safety stop; under load the agent's
    # relabelling can outlast the command timeout, and each such stop truncates) ended for the agent
    # too: its episode ids run without gaps (an end lost under load tolerated twice). The bridge
    # goes on after the agent exits (each command timeout ends one more episode), so its own count
    # is only an upper bound.
    ids = [int(r["episode"]) for r in rows]
    assert ids == sorted(set(ids)), ids
    assert len(set(range(ids[-1] + 1)) - set(ids)) <= 2, ids
    assert bridge["counters"]["episodes"] >= ids[-1] + 1
    assert sum(int(r["length"]) for r in rows) >= TOTAL_STEPS - 200
    assert not (run["dir"] / "sac_agent" / "eval.csv").exists() or \
        len((run["dir"] / "sac_agent" / "eval.csv").read_text().splitlines()) <= 1  # no simulator


def test_ratings_come_from_camera_frames_without_truth(run: dict[str, Any]) -> None:
    learner = read_ratings(run["dir"] / "reward_learner" / "ratings.erlr")
    rated = [m for m in learner if m["label"] is not None]
    # (the tiny VLM rates on the CPU; on a loaded machine part of the last round is still pending
    # when the agent finishes)
    assert len(rated) >= 20, f"{len(rated)} of {len(learner)} rated"
    cam = run["status"]["camera_capture"]["counters"]
    assert cam["frames_stored"] >= 0.8 * TOTAL_STEPS
    assert cam["requests_framed"] >= 40
    assert run["status"]["reward_learner"]["version"] >= 2
    assert run["status"]["sac_agent"]["model_version"] >= 2
    # The reward model read the camera: rated inputs are frames, and (nearly) every agent step had
    # its frame (the camera runs at the control rate; a frame camera_capture could not pair within
    # its tolerance is a skipped transition, counted).
    shapes = {r.arrays["input"].shape for r in scan(run["dir"] / "reward_learner" / "ratings.erlr").records
              if "input" in r.arrays}
    assert shapes == {(1, 48, 48, 3)}, shapes
    agent = run["status"]["sac_agent"]
    assert agent["lost_frames"] <= 0.05 * TOTAL_STEPS, agent
