"""The whole node graph trains on a MetaWorld task over real DDS, and shrugs off bad inputs.

One run (module fixture): five node processes, lock-step, drawer-open-v3 with 100-step episodes,
2000 env steps, a tiny random-weight VLM (transformers backend) rating the task camera's frames. While it trains, this process injects malformed images, NaN states and actions,
requests for unknown episodes, ratings for unknown requests and a corrupt reward model. The tests
then check the run's files and every node's counters.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from ros2_erl_vlm.core.rating.dataset import read_ratings
from ros2_erl_vlm.core.record_log import scan

pytestmark = [pytest.mark.ros, pytest.mark.integration]

TOTAL_STEPS = 2000
NAMESPACE = "erl_test_robot"  # every topic lives under it (relative names)
NODES = ("sim_bridge", "camera_capture", "vlm_rater", "reward_learner", "sac_agent", "rating_viz")


def _inject(namespace: str) -> dict[str, int]:
    """Publish bad inputs on the graph's topics from this process; returns what was sent."""
    import rclpy
    from erl_vlm.msg import Action, Observation, Rating, RatingRequest, RewardModelUpdate
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from ros2_erl_vlm.ros import qos

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bad_input_injector", namespace=f"/{namespace}", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    pubs = {
        "image": node.create_publisher(Image, qos.CAMERA_IMAGE, qos.IMAGE_QOS),
        "obs": node.create_publisher(Observation, qos.OBSERVATION, qos.OBSERVATION_QOS),
        "action": node.create_publisher(Action, qos.ACTION, qos.ACTION_QOS),
        "request": node.create_publisher(RatingRequest, qos.RATING_REQUESTS, qos.RATING_QOS),
        "framed": node.create_publisher(RatingRequest, qos.RATING_REQUESTS_FRAMED, qos.RATING_QOS),
        "rating": node.create_publisher(Rating, qos.RATINGS, qos.RATING_QOS),
        "model": node.create_publisher(RewardModelUpdate, qos.REWARD_MODEL, qos.REWARD_MODEL_QOS),
    }
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(p.get_subscription_count() > 0 for p in pubs.values()):
        ex.spin_once(timeout_sec=0.1)
    nan = float("nan")
    bad_images = [
        Image(height=8, width=8, encoding="rgb8", step=8, data=bytes(8 * 8 * 3)),  # step too small
        Image(height=8, width=8, encoding="rgb8", step=24, data=bytes(100)),  # wrong data size
        Image(height=8, width=8, encoding="yuv422", step=16, data=bytes(128)),  # unsupported encoding
        Image(height=0, width=0, encoding="rgb8", step=0, data=b""),  # empty
    ]
    huge = 10**9
    sent = {"images": 0, "observations": 0, "actions": 0}
    truth = dict(has_truth=True, true_rewards=[1.0], successes=[False], progress=[0.1])
    for _ in range(3):  # best-effort images may be lost: send a few rounds
        for img in bad_images:
            pubs["image"].publish(img)
            sent["images"] += 1
        pubs["obs"].publish(Observation(episode=huge, step=3, state=[nan] * 39, action_taken=[0.0] * 4))
        pubs["obs"].publish(Observation(episode=huge, step=4, state=[0.0] * 39, action_taken=[nan] * 4))
        sent["observations"] += 2
        pubs["action"].publish(Action(episode=huge, step=1, action=[nan, 0.0, 0.0, 0.0]))
        pubs["action"].publish(Action(episode=huge, step=1, action=[0.0, 0.0, 0.0]))
        sent["actions"] += 2
        ex.spin_once(timeout_sec=0.2)
    # A request for an episode nobody has: camera_capture forwards it frameless, the oracle rates
    # it from the truth it carries, the learner drops the answer (unknown request).
    pubs["request"].publish(RatingRequest(request_id="inject-unknown-episode", episode=huge, steps=[5],
                                          states=[0.0] * 39, state_dim=39, instruction="open the drawer",
                                          class_names=["bad", "average", "good"], **truth))
    # A malformed request straight to the rater: it answers with an abstention.
    pubs["framed"].publish(RatingRequest(request_id="inject-malformed", episode=huge, steps=[5, 6],
                                         states=[0.0] * 5, state_dim=39, instruction="x",
                                         class_names=["bad", "average", "good"]))
    pubs["rating"].publish(Rating(request_id="inject-unknown-request", episode=1, steps=[1], label=1,
                                  num_classes=3, backend="test"))
    pubs["rating"].publish(Rating(request_id="inject-bad-classes", episode=1, steps=[1], label=1,
                                  num_classes=9, backend="test"))
    pubs["model"].publish(RewardModelUpdate(version=10_000, input_kind="state", sha256="0" * 64,
                                            weights=b"not a model"))
    for _ in range(10):
        ex.spin_once(timeout_sec=0.1)
    ex.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=ctx)
    return sent


@pytest.fixture(scope="module")
def run(small_params: Any, start_graph: Any, vlm_config: Path) -> dict[str, Any]:
    """Train the graph for TOTAL_STEPS with a VLM rating the camera frames and bad inputs injected
    midway; collect the outcome."""
    params = small_params("train.yaml", {"/**/sac_agent": {"total_steps": TOTAL_STEPS}})
    t0 = time.monotonic()
    g = start_graph(params, task="drawer-open-v3", seed="3", namespace=NAMESPACE, rater="transformers",
                    rater_config=str(vlm_config))
    g.wait_for("the first reward model", lambda: g.status("sac_agent").get("model_version", 0) >= 1,
               timeout_s=150)
    sent = _inject(NAMESPACE)
    g.wait_for("the agent to finish", lambda: ("sac_agent", 0) in g.procs.exited(), timeout_s=200)
    time.sleep(1.0)  # last status files
    statuses = {n: g.status(n) for n in NODES}
    alive = g.procs.running()
    codes = g.procs.stop_all()
    return {"dir": g.run_dir, "status": statuses, "alive_at_end": alive, "codes": codes,
            "sent": sent, "output": g.output(), "wall_s": time.monotonic() - t0}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_observations_and_actions_flow_and_episodes_complete(run: dict[str, Any]) -> None:
    summary = json.loads((run["dir"] / "sac_agent" / "summary.json").read_text())
    assert summary["steps"] == TOTAL_STEPS
    assert summary["episodes"] == TOTAL_STEPS // 100
    assert run["status"]["sim_bridge"]["counters"]["steps"] >= TOTAL_STEPS
    rows = _csv(run["dir"] / "sac_agent" / "train.csv")
    assert len(rows) == TOTAL_STEPS // 100
    assert [r["length"] for r in rows if int(r["length"]) != 100] == []
    assert [r["true_return"] for r in rows if not math.isfinite(float(r["true_return"]))] == []
    assert len(_csv(run["dir"] / "sac_agent" / "eval.csv")) == TOTAL_STEPS // 1000
    assert run["status"]["reward_learner"]["obs_complete"] >= TOTAL_STEPS // 100 - 1
    cam = run["status"]["camera_capture"]
    # Images travel best effort (sensor-data QoS, bounded queue): on a loaded machine the sim can
    # run ahead of camera_capture and a few frames drop; those steps' requests abstain, counted
    # (96.6% stored with two 150k-step benchmark runs sharing the 2 cores).
    assert cam["counters"]["frames_stored"] >= 0.95 * TOTAL_STEPS
    assert cam["counters"]["requests_framed"] >= 80


def test_ratings_arrive_and_are_on_disk(run: dict[str, Any]) -> None:
    rater = [m for m in (r.meta for r in scan(run["dir"] / "vlm_rater" / "ratings.erlr").records)]
    learner = read_ratings(run["dir"] / "reward_learner" / "ratings.erlr")
    rater_ids = {m["query_id"] for m in rater if not m["query_id"].startswith("inject-")}
    learner_ids = [m["query_id"] for m in learner]
    assert len(learner_ids) == len(set(learner_ids)) >= 100  # 20 per round, rounds every 300 steps
    assert set(learner_ids) <= rater_ids
    pending = run["status"]["reward_learner"]["pending"]
    assert len(rater_ids - set(learner_ids)) <= pending
    labels = [m["label"] for m in learner]
    assert set(labels) <= {0, 1, 2, None}
    # The VLM rated every request camera_capture could frame; the only abstentions allowed are
    # requests it forwarded without frames (e.g. an episode whose images it never received while
    # starting up under load), each counted there and never turned into a class.
    abstained = [m for m in learner if m["label"] is None]
    cam = run["status"]["camera_capture"]["counters"]
    assert all(m["abstain_reason"].startswith("no_frames") for m in abstained), abstained
    assert len(abstained) <= cam["requests_missing_frames"] + cam["requests_unknown_episode"]
    assert len(abstained) <= len(learner) // 10  # 9 of 120 seen with two benchmark runs on the 2 cores
    rated = [m for m in rater if m["query_id"] in learner_ids]
    assert all(m["backend"] == "transformers:tiny-idefics3" for m in rated), rated[0]
    # rating_viz drew every answer the learner got (the same requests and ratings topics)
    viz = run["status"]["rating_viz"]
    assert viz["points"] >= len(learner_ids) - pending
    assert viz["counters"]["markers_published"] >= 2
    assert sum(viz["classes"].values()) == viz["points"]


def test_reward_model_versions_increase_and_agent_relabels(run: dict[str, Any]) -> None:
    learner = run["status"]["reward_learner"]
    assert learner["version"] >= 5
    assert len(list((run["dir"] / "reward_learner" / "models").glob("*.pt"))) == learner["version"]
    relabels = _csv(run["dir"] / "sac_agent" / "relabel.csv")
    versions = [int(r["version"]) for r in relabels]
    assert versions == sorted(set(versions))
    assert versions[0] == 1
    assert len(versions) >= 4
    assert relabels[0]["first"] == "True"
    assert [r for r in relabels if not int(r["relabelled"]) > 0] == []
    agent = run["status"]["sac_agent"]
    assert agent["model_version"] >= 4
    assert agent["phase"] == "reward"


def test_bad_inputs_are_counted_and_dropped(run: dict[str, Any]) -> None:
    st = {n: run["status"][n].get("counters", {}) for n in NODES}
    assert st["camera_capture"].get("bad_images", 0) >= 1
    assert st["camera_capture"].get("requests_unknown_episode", 0) >= 1
    assert st["sac_agent"].get("bad_observations", 0) >= 2
    assert st["reward_learner"].get("bad_observations", 0) >= 2
    assert st["sim_bridge"].get("bad_actions", 0) >= 2
    assert st["vlm_rater"].get("bad_requests", 0) >= 1
    # The learner's own counters (one per rating status) sit beside its sizes in status.json.
    assert run["status"]["reward_learner"].get("ratings_unknown", 0) >= 2  # injected + the rater's
    assert st["reward_learner"].get("bad_ratings", 0) >= 1
    assert st["sac_agent"].get("bad_models", 0) >= 1
    # the rater answered the malformed request with an abstention and the reason, on disk
    rater = {r.meta["query_id"]: r.meta for r in scan(run["dir"] / "vlm_rater" / "ratings.erlr").records}
    assert rater["inject-malformed"]["label"] is None
    assert rater["inject-malformed"]["abstain_reason"].startswith("malformed")
    # no frames for an unknown episode: the VLM abstains, with the reason
    assert rater["inject-unknown-episode"]["label"] is None
    assert rater["inject-unknown-episode"]["abstain_reason"].startswith("no_frames")


def test_no_node_died_and_shutdown_is_clean(run: dict[str, Any]) -> None:
    assert sorted(run["alive_at_end"]) == sorted(n for n in NODES if n != "sac_agent")
    assert run["codes"] == {n: 0 for n in NODES}, run["output"][-4000:]
    assert "Traceback" not in run["output"], run["output"][-4000:]
    assert f"[{NAMESPACE}.sac_agent]" in run["output"]  # the namespace reached every node
