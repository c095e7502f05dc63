"""Deploying a trained policy over real DDS: ``checkpoint:=<file>`` starts the robot side and
deploy_agent only; in simulation it runs the policy for the set number of episodes, on the fake arm
too (under the bridge's safety), and a policy of MetaWorld's 39-D state is refused on the arm."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from ros2_erl_vlm.core.checkpoint import save_checkpoint
from ros2_erl_vlm.core.rl.sac import SAC, SACConfig
from ros2_erl_vlm.paths import config_dir

pytestmark = [pytest.mark.ros, pytest.mark.integration, pytest.mark.render]


def _policy(path: Path, obs_dim: int) -> Path:
    torch.manual_seed(0)
    sac = SAC(obs_dim, 4, SACConfig(hidden_dim=16, hidden_layers=2))
    save_checkpoint(path, {"agent": {"sac": sac.state_dict(), "step": 100}})
    return path


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "deploy_agent" / "deploy.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_deploy_in_simulation(small_params: Any, start_graph: Any, tmp_path: Path) -> None:
    params = small_params("deploy.yaml", {"/**": {"max_episode_steps": 40},
                                          "/**/deploy_agent": {"episodes": 2}})
    g = start_graph(params, checkpoint=str(_policy(tmp_path / "p39.pt", 39)), namespace="erl_deploy_sim")
    assert sorted(g.procs.procs) == ["deploy_agent", "sim_bridge"]
    g.wait_for("two deployed episodes", lambda: ("deploy_agent", 0) in g.procs.exited(), timeout_s=180)
    rows = _rows(g.run_dir)
    assert [int(r["length"]) for r in rows] == [40, 40]
    assert all(float(r["true_return"]) > 0 for r in rows)  # simulator truth is logged
    summary = json.loads((g.run_dir / "deploy_agent" / "summary.json").read_text())
    assert summary["episodes"] == 2 and 0.0 <= summary["success_rate"] <= 1.0
    assert not (g.run_dir / "sac_agent").exists()  # nothing learns


def _fast_arm(path: Path) -> Path:
    data = yaml.safe_load((config_dir() / "arms" / "fake_sawyer.yaml").read_text())
    data["arm"]["control"].update(rate_hz=50.0, max_speed_m_s=0.25, home_speed_m_s=0.15,
                                  episode_steps=30, command_timeout_periods=5.0)
    data["arm"]["servo"]["stream_rate_hz"] = 100.0
    data["arm"]["topics"]["wait_s"] = 150.0
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_deploy_on_the_fake_arm_and_refuse_a_simulator_policy(small_params: Any, start_graph: Any,
                                                               tmp_path: Path) -> None:
    arm = _fast_arm(tmp_path / "arm.yaml")
    params = small_params("deploy_arm.yaml", {"/**/deploy_agent": {"episodes": 2},
                                              "/**/fake_arm": {"camera.rate_hz": 0.0, "rate_hz": 100.0}})
    g = start_graph(params, checkpoint=str(_policy(tmp_path / "p39.pt", 39)), use_sim="false",
                    fake="true", arm_config=str(arm), namespace="erl_deploy_refuse")
    g.killed.add("deploy_agent")  # its exit is the point here
    g.wait_for("the 39-D policy refused", lambda: any(n == "deploy_agent" for n, _c in g.procs.exited()),
               timeout_s=120)
    assert dict(g.procs.exited())["deploy_agent"] == 1
    assert "39-D simulator state" in g.output() and "arm does not measure" in g.output()
    g.procs.stop_all()
    g = start_graph(params, checkpoint=str(_policy(tmp_path / "p4.pt", 4)), use_sim="false",
                    fake="true", arm_config=str(arm), namespace="erl_deploy_arm")
    g.wait_for("two episodes on the fake arm", lambda: ("deploy_agent", 0) in g.procs.exited(),
               timeout_s=240)
    rows = _rows(g.run_dir)
    episodes = json.loads((g.run_dir / "deploy_agent" / "summary.json").read_text())["rows"]
    assert len(rows) == len(episodes) == 2
    # Each episode runs its 30 steps to the time limit, or a safety stop (on this loaded machine,
    # e.g. a late command) ended it earlier and says which.
    for ep in episodes:
        assert (ep["length"] == 30 and ep["reason"] == "time_limit") or \
            (1 <= ep["length"] < 30 and ep["reason"] not in ("", "time_limit")), episodes
    bridge = json.loads((g.run_dir / "arm_bridge" / "status.json").read_text())
    assert bridge["counters"]["bad_actions"] == 0
    assert bridge["counters"]["steps"] >= sum(ep["length"] for ep in episodes)
