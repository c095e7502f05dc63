"""A short camera-off oracle graph run (reach-v3), one run for two users' views of it:

- live progress: the agent's ``[progress]`` lines (periodic, after each evaluation and each new
  reward model, and at the end) carry steps, rate, ETA, episodes, the eval success, the ratings
  with their truth agreement and the reward model's version (content and counts, not timing);
- the run report: the learner's requests keep each rated step's MuJoCo state, so the report's
  contact sheet is drawn from re-rendered frames though no camera ran; the seed comes from the
  params file, as the shipped run sets it (not an argument: the report must still find it, from
  sim_bridge's status).
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.integration, pytest.mark.render]

TOTAL_STEPS = 600
LINE = re.compile(r"^\[sac_agent\] .*?(\[progress\] step (\d+)/(\d+) .*)$", re.MULTILINE)


def _rows(path: Path) -> int:
    with path.open() as fh:
        return len(list(csv.DictReader(fh)))


@pytest.fixture(scope="module")
def run(small_params: Any, start_graph: Any) -> dict[str, Any]:
    """The run, to its end; its directory, exit codes, output and wall time."""
    params = small_params("progress.yaml", {
        "/**": {"num_unsup_steps": 100, "seed": 2},  # the first reward model at step 300
        "/**/sac_agent": {"total_steps": TOTAL_STEPS, "eval_every": 300, "checkpoint_every": 300,
                          "progress_period_s": 0.5},
        "/**/sim_bridge": {"camera.enabled": False},  # the oracle rates from simulator truth
    })
    t0 = time.monotonic()
    g = start_graph(params, task="reach-v3", rater="oracle")
    g.wait_for("the agent to finish", lambda: ("sac_agent", 0) in g.procs.exited(), timeout_s=150)
    time.sleep(0.5)
    codes = g.procs.stop_all()
    return {"dir": g.run_dir, "codes": codes, "output": g.output(), "wall_s": time.monotonic() - t0}


def test_progress_lines_show_the_run(run: dict[str, Any]) -> None:
    codes, out, wall_s, run_dir = run["codes"], run["output"], run["wall_s"], run["dir"]
    assert all(c == 0 for c in codes.values()), (codes, out[-4000:])

    found = LINE.findall(out)
    lines = [text for text, _, _ in found]
    steps = [int(s) for _, s, _ in found]
    assert len(lines) >= 3, out[-4000:]
    assert {int(t) for _, _, t in found} == {TOTAL_STEPS}
    assert steps == sorted(steps) and len(set(steps)) >= 3, steps
    last = lines[-1]
    assert steps[-1] == TOTAL_STEPS and "(100%)" in last and "ETA 0s" in last, last
    assert re.search(r"\| \d+\.\d steps/s \|", last) and "episodes 6 |" in last, last
    assert re.search(r"\| eval success \d\.\d\d \|", last), last

    # One line right after each evaluation and each new model and one at the end, which the
    # evaluation at the last step already is (plus the timer's).
    evals = _rows(run_dir / "sac_agent" / "eval.csv")
    models = _rows(run_dir / "sac_agent" / "relabel.csv")
    assert evals == 2 and models >= 1
    # The learner logs each trained round as the in-process loop does; TensorBoard for both nodes
    # under the one run directory.
    with (run_dir / "reward_learner" / "reward.csv").open() as fh:
        rounds = list(csv.DictReader(fh))
    assert len(rounds) >= models and int(rounds[0]["asked"]) == 20, rounds
    assert {"rated", "abstained", "truth_agreement", "reward_acc", "model_version"} <= set(rounds[0])
    for node in ("sac_agent", "reward_learner"):
        assert list((run_dir / node / "tb").glob("events.out.tfevents.*")), node
    assert len(lines) >= evals + models and steps.count(TOTAL_STEPS) == 1, lines
    assert sum(1 for line in lines if re.search(r"eval success \d", line)) >= 1

    # Before the first model: no version, no eval; from it on: the ratings and the version.
    with_model = [i for i, line in enumerate(lines) if "reward model v1" in line]
    assert with_model, lines
    first_model = with_model[0]
    assert all(line.endswith("reward model -") for line in lines[:first_model])
    assert "eval success -" in lines[0] and "ratings 0, truth agreement -" in lines[0], lines[0]
    counts = []
    for line in lines[first_model:]:
        m = re.search(r"\| ratings (\d+)(?: \(\+\d+ abstained\))?, truth agreement (-|\d+%) \| "
                      r"reward model v(\d+)$", line)
        assert m and int(m.group(3)) >= 1, line
        counts.append(int(m.group(1)))
    # The counts arrive over the ratings topic, apart from the model: on a loaded machine a line
    # right after the first model can still show none or part of its ratings, never fewer later.
    assert counts == sorted(counts) and counts[-1] >= 1, lines[first_model:]
    assert re.search(r"truth agreement \d+%", last), last  # the learner's round score, noiseless-ish
    print(f"progress test: {len(lines)} lines, {wall_s:.1f} s wall")


def test_camera_off_oracle_run_has_a_rerendered_contact_sheet(run: dict[str, Any]) -> None:
    from ros2_erl_vlm.core.record_log import scan
    from ros2_erl_vlm.report import make_report

    requests = [r for r in scan(run["dir"] / "reward_learner" / "requests.erlr").records
                if r.meta.get("kind") == "request"]
    assert len(requests) >= 10
    for rec in requests:
        state = rec.arrays["sim_state"]
        assert state.dtype == np.float64 and state.shape == (len(rec.meta["steps"]), 38)
    files = make_report(run["dir"], max_cells=12)
    summary = json.loads(files.summary_json.read_text())
    assert summary["ratings"]["rated"] >= 10
    assert files.frames == f"{min(12, summary['ratings']['records'])} re-rendered", files.frames
