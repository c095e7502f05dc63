"""config/graph.yaml and the params file: one description for the launch file and the runner."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ros2_erl_vlm.graph import (
    GraphError,
    check_params,
    load_graph,
    node_params_from_file,
    read_params_file,
)
from ros2_erl_vlm.paths import config_dir
from ros2_erl_vlm.ros.node_params import NODE_PARAMS


def test_graph_lists_every_node_and_the_shipped_params_check() -> None:
    g = load_graph()
    assert {n.name for n in g.nodes} == set(NODE_PARAMS)
    assert [n.name for n in g.nodes if n.ends_graph] == ["sac_agent", "deploy_agent"]
    assert [n.name for n in g.layer("bottom_sim")] == ["sim_bridge"]
    values = g.resolve({"run_dir": "/tmp/x"})
    check_params(g, values)
    assert values["params_file"] == str((config_dir() / "train_sim.yaml").resolve())


#: What config/train_sim.yaml sets apart from the declared defaults and the short run: the
#: lock-step start waits for the graph's subscribers.
GRAPH_WIRING = {"sim_bridge": {"start.observation_subscribers": 3, "start.image_subscribers": 1}}


def test_shipped_params_file_is_the_declared_defaults_plus_the_short_run() -> None:
    """config/train_sim.yaml names every parameter of every node, each with its declared default
    (for config fields: the dataclass's), except the short run's changes (the same as the
    in-process runner's, core.config.SHORT_RUN) and the graph wiring."""
    from ros2_erl_vlm.core.config import SHORT_RUN

    sections = read_params_file(config_dir() / "train_sim.yaml")
    for node, specs in NODE_PARAMS.items():
        given = node_params_from_file(sections, f"/{node}")
        missing = sorted({s.name for s in specs} - set(given))
        assert not missing, (node, missing)
        expected = {s.name: s.default for s in specs}
        expected.update({k: v for k, v in SHORT_RUN.items() if k in expected})
        expected.update(GRAPH_WIRING.get(node, {}))
        for spec in specs:
            value = spec.check(given[spec.name])
            assert value == expected[spec.name] and type(value) is type(expected[spec.name]), (
                node, spec.name, value, expected[spec.name])
    agent = {s.name for s in NODE_PARAMS["sac_agent"]}
    assert set(SHORT_RUN) <= agent


def test_graph_argument_descriptions_do_not_restate_values() -> None:
    """The values come from the parameter declarations (appended when the graph is read)."""
    raw = yaml.safe_load((config_dir() / "graph.yaml").read_text())["arguments"]
    g = load_graph()
    for name, arg in raw.items():
        text = str(arg.get("description", ""))
        assert "default" not in text.lower() and "params file's," not in text, (name, text)
        if arg.get("parameter"):
            spec = {s.name: s for n in ("sac_agent", "vlm_rater", "sim_bridge", "arm_bridge",
                                        "deploy_agent")
                    for s in g.node(n).params}[arg["parameter"]]
            if spec.kind in ("int", "float") or spec.name == "task":
                assert f"{spec.default}" not in text, (name, text)
            assert g.arguments[name].description.startswith(text)
    assert g.arguments["rater"].description.endswith("one of oracle, simulated_vlm, transformers, openai, replay")
    assert g.arguments["label_noise"].description.endswith("in [0, 1]")


def test_arguments_become_typed_overrides() -> None:
    g = load_graph()
    values = g.resolve({"task": "reach-v3", "seed": "4", "total_steps": "500", "rater": "openai",
                        "run_dir": "/tmp/r", "namespace": "robot1"})
    ov = g.node_overrides(values)
    assert ov["sim_bridge"]["task"] == "reach-v3" and ov["sim_bridge"]["seed"] == 4
    assert "use_sim_time" not in ov["sim_bridge"] and ov["sac_agent"]["use_sim_time"] is True
    assert ov["sac_agent"]["total_steps"] == 500 and "total_steps" not in ov["reward_learner"]
    assert ov["vlm_rater"]["rater.backend"] == "openai"
    assert "task" not in ov["camera_capture"]  # it does not declare it
    assert values["use_sim_time"] == "true"
    rt = g.node_overrides(g.resolve({"mode": "realtime", "run_dir": "/tmp/r"}))
    assert "use_sim_time" not in rt["sac_agent"]  # no /clock in real time
    with pytest.raises(GraphError, match="argument 'seed'"):
        g.node_overrides(g.resolve({"seed": "x", "run_dir": "/tmp/r"}))
    with pytest.raises(GraphError, match="unknown argument"):
        g.resolve({"bogus": "1"})
    with pytest.raises(GraphError, match="namespace"):
        g.resolve({"namespace": "1bad ns"})


def test_default_run_dir_uses_the_params_file_task(tmp_path: Path) -> None:
    data = yaml.safe_load((config_dir() / "train_sim.yaml").read_text())
    data["/**"]["ros__parameters"].update(task="reach-v3", seed=7)
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data))
    values = load_graph().resolve({"params_file": str(p)})
    assert Path(values["run_dir"]).name.startswith("reach-v3-graph-s7-")


@pytest.mark.parametrize(("key", "fqn", "match"), [
    ("/**", "/a/b/node", True), ("/**/node", "/node", True), ("/**/node", "/ns/node", True),
    ("node", "/node", True), ("node", "/ns/node", False), ("/ns/*", "/ns/x", True),
    ("/**/node", "/ns/other", False),
])
def test_params_file_node_keys(key: str, fqn: str, match: bool) -> None:
    assert bool(node_params_from_file({key: {"x": 1}}, fqn)) is match


def test_overrides_file_is_keyed_by_the_node_fqn(tmp_path: Path) -> None:
    """Argument overrides go into a params file under the node's own name, which beats every
    section of the main params file (`-p` would lose to a node-specific section)."""
    from ros2_erl_vlm.graph import node_command, write_overrides

    g = load_graph()
    values = g.resolve({"rater": "openai", "namespace": "r1", "run_dir": str(tmp_path)})
    node = g.node("vlm_rater")
    path = write_overrides(node, values, g.node_overrides(values)["vlm_rater"], tmp_path / "params")
    data = yaml.safe_load(path.read_text())
    assert data["/r1/vlm_rater"]["ros__parameters"]["rater.backend"] == "openai"
    cmd = node_command(node, values, path)
    assert cmd[cmd.index(str(path)) - 1] == "--params-file"
    assert cmd.index(values["params_file"]) < cmd.index(str(path))


def test_default_run_dir_falls_back_to_the_declared_task(tmp_path: Path) -> None:
    """A params file that sets no task names the run after the task the nodes will run."""
    p = tmp_path / "p.yaml"
    p.write_text("/**:\n  ros__parameters:\n    seed: 3\n")
    values = load_graph().resolve({"params_file": str(p)})
    assert Path(values["run_dir"]).name.startswith("drawer-open-v3-graph-s3-")
    assert values["use_sim_time"] == "true"


def test_real_arm_mode_starts_the_arm_side_with_its_rules(tmp_path) -> None:
    """use_sim:=false: arm_bridge (+ fake_arm with fake:=true), system clock, the fake's arm
    config by default, the real-arm parameter replacements, and training only when allowed."""
    g = load_graph()
    sim = g.resolve({"run_dir": str(tmp_path)})
    assert [n.name for n in g.started(sim) if n.layer != "top"] == ["sim_bridge"]
    base = {"run_dir": str(tmp_path), "use_sim": "false"}
    with pytest.raises(GraphError, match="needs arm_config"):
        g.resolve(base)
    with pytest.raises(GraphError, match="refuses use_sim_time"):
        g.resolve({**base, "fake": "true", "use_sim_time": "true"})
    fake = g.resolve({**base, "fake": "true"})
    assert fake["use_sim_time"] == "false" and fake["arm_config"].endswith("arms/fake_sawyer.yaml")
    assert [n.name for n in g.started(fake) if n.layer != "top"] == ["arm_bridge", "fake_arm"]
    with pytest.raises(GraphError, match="allow_real_training:=true"):
        check_params(g, fake)
    truth = g.resolve({**base, "fake": "true", "allow_real_training": "true"})
    with pytest.raises(GraphError, match="simulated_vlm rater rates from simulator truth"):
        check_params(g, truth)
    no_model = g.resolve({**base, "fake": "true", "allow_real_training": "true", "rater": "transformers"})
    with pytest.raises(GraphError, match="vlm_rater: rater: transformers rater: 'model'"):
        check_params(g, no_model)  # --check finds it before anything starts
    (tmp_path / "vlm").mkdir()
    (tmp_path / "vlm" / "config.json").write_text("{}")
    (tmp_path / "vlm.yaml").write_text(f"backend: transformers\nmodel: {tmp_path / 'vlm'}\n")
    allowed = g.resolve({**base, "fake": "true", "allow_real_training": "true", "arm": "pose",
                         "rater": "transformers", "rater_config": str(tmp_path / "vlm.yaml")})
    check_params(g, allowed)
    ov = g.node_overrides(allowed)
    assert ov["sac_agent"]["eval_episodes"] == 0 and ov["camera_capture"]["sync_tolerance_s"] == 0.05
    assert ov["arm_bridge"]["arm_dialect"] == "pose" and ov["fake_arm"]["arm_dialect"] == "pose"
    assert "use_sim_time" not in ov["sac_agent"]
    real = g.resolve({**base, "arm_config": str(config_dir() / "arms" / "fake_sawyer.yaml"),
                      "allow_real_training": "true", "rater": "transformers"})
    assert [n.name for n in g.started(real) if n.layer != "top"] == ["arm_bridge"]
    bad = tmp_path / "arm.yaml"
    bad.write_text("arm: {dialect: servo}\n")
    with pytest.raises(GraphError, match="workspace is required"):
        check_params(g, g.resolve({**base, "arm_config": str(bad), "allow_real_training": "true",
                                   "rater": "transformers", "rater_config": str(tmp_path / "vlm.yaml")}))


def test_real_arm_runs_default_to_localhost_discovery(tmp_path) -> None:
    """Anything on the DDS domain can publish `action`: on an arm the runner's nodes discover on
    this host only unless the user set ROS_AUTOMATIC_DISCOVERY_RANGE."""
    from ros2_erl_vlm.runner import DISCOVERY_RANGE, GraphProcesses

    g = load_graph()
    arm = g.resolve({"run_dir": str(tmp_path), "use_sim": "false", "fake": "true"})
    assert GraphProcesses(g, arm, out=None, env={}).env[DISCOVERY_RANGE] == "LOCALHOST"
    chosen = GraphProcesses(g, arm, out=None, env={DISCOVERY_RANGE: "SUBNET"})
    assert chosen.env[DISCOVERY_RANGE] == "SUBNET"
    sim = g.resolve({"run_dir": str(tmp_path)})
    assert DISCOVERY_RANGE not in GraphProcesses(g, sim, out=None, env={}).env


def test_deploying_starts_the_robot_side_and_deploy_agent_only(tmp_path) -> None:
    """checkpoint:=<file>: no learning nodes, the lock-step start waits for the agent alone, an
    arm needs neither allow_real_training nor a VLM rater, a missing checkpoint is an error."""
    g = load_graph()
    with pytest.raises(GraphError, match="checkpoint.*does not exist"):
        g.resolve({"run_dir": str(tmp_path), "checkpoint": str(tmp_path / "missing.pt")})
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"x")
    sim = g.resolve({"run_dir": str(tmp_path), "checkpoint": str(ckpt)})
    check_params(g, sim)
    assert sorted(n.name for n in g.started(sim)) == ["deploy_agent", "sim_bridge"]
    ov = g.node_overrides(sim)
    assert ov["sim_bridge"]["start.observation_subscribers"] == 1
    assert ov["sim_bridge"]["start.image_subscribers"] == 0
    assert ov["deploy_agent"]["checkpoint"] == str(ckpt)
    arm = g.resolve({"run_dir": str(tmp_path), "checkpoint": str(ckpt), "use_sim": "false",
                     "fake": "true"})
    check_params(g, arm)  # deploying: no allow_real_training, the default (truth) rater unused
    assert sorted(n.name for n in g.started(arm)) == ["arm_bridge", "deploy_agent", "fake_arm"]
