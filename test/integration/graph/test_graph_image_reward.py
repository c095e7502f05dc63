"""The graph with an image reward model (``reward.input_kind: image``, the paper's CNN): the agent
and the learner read each step's frame from camera/frames, and train and relabel on frames.

Also: a graph that asks for an image reward without frames is refused before anything starts.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from ros2_erl_vlm.core.record_log import scan
from ros2_erl_vlm.runner import main as runner_main

pytestmark = [pytest.mark.ros, pytest.mark.integration]

TOTAL_STEPS = 800
SIZE = 48  # the CNN's smallest input; camera_capture's 64 px frames are resized to it


def test_an_image_reward_model_learns_from_camera_frames_in_the_graph(small_params: Any,
                                                                     start_graph: Any) -> None:
    params = small_params("image.yaml", {
        "/**": {"reward.input_kind": "image", "reward.image_size": SIZE, "num_unsup_steps": 100},
        "/**/reward_learner": {"reward.epochs": 2, "reward.batch_size": 16},
        "/**/sac_agent": {"total_steps": TOTAL_STEPS, "eval_episodes": 0, "replay_capacity": 2000},
    })
    g = start_graph(params, task="reach-v3", seed="3", rater="oracle")
    g.wait_for("the agent to finish", lambda: ("sac_agent", 0) in g.procs.exited(), timeout_s=240)
    codes = g.procs.stop_all()
    out = g.output()
    assert all(c == 0 for c in codes.values()), (codes, out[-4000:])

    agent, learner = g.status("sac_agent"), g.status("reward_learner")
    assert agent["step"] == TOTAL_STEPS and agent["model_version"] >= 1, agent
    # Every transition was rewarded from its own frame (reliable camera/frames, nothing lost).
    assert agent["lost_frames"] == 0 and agent["frames_missing"] == 0, agent
    assert learner["frames_missing"] == 0 and learner["version"] >= 1, learner
    # The learner rated and trained on frames: each stored rating's input is a (1, SIZE, SIZE, 3) image.
    records = scan(g.run_dir / "reward_learner" / "ratings.erlr").records
    inputs = [r.arrays["input"] for r in records if "input" in r.arrays]
    assert inputs and {a.shape for a in inputs} == {(1, SIZE, SIZE, 3)}, {a.shape for a in inputs}
    assert all(a.std() > 0 for a in inputs)  # real frames, not blanks
    with (g.run_dir / "sac_agent" / "relabel.csv").open() as fh:
        relabels = list(csv.DictReader(fh))
    assert relabels and int(relabels[0]["relabelled"]) > 0, relabels
    assert "Traceback" not in out, out[-4000:]


@pytest.mark.parametrize(("section", "values", "expect"), [
    ("/**/sim_bridge", {"camera.enabled": False}, "camera.enabled must be true"),
    ("/**/camera_capture", {"publish_frames": False}, "publish_frames must be true"),
    ("/**/sac_agent", {"reward.input_kind": "state"}, "reward.input_kind differs"),
])
def test_an_image_reward_without_frames_is_refused_by_check(small_params: Any, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             section: str, values: dict[str, Any],
                                                             expect: str) -> None:
    params = small_params(f"image-bad-{abs(hash(expect))}.yaml", {
        "/**": {"reward.input_kind": "image", "reward.image_size": SIZE}, section: values})
    assert runner_main(["--params-file", str(params), "--check"]) == 2
    assert expect in capsys.readouterr().err
