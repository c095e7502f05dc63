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
    assert [n.name for n in g.nodes if n.ends_graph] == ["sac_agent"]
    assert [n.name for n in g.layer("bottom_sim")] == ["sim_bridge"]
    values = g.resolve({"run_dir": "/tmp/x"})
    check_params(g, values)
    assert values["params_file"] == str((config_dir() / "train_sim.yaml").resolve())


def test_shipped_params_file_sets_every_declared_parameter() -> None:
    """config/train_sim.yaml is the documented default: it names every parameter of every node."""
    sections = read_params_file(config_dir() / "train_sim.yaml")
    for node, specs in NODE_PARAMS.items():
        given = node_params_from_file(sections, f"/{node}")
        missing = sorted({s.name for s in specs} - set(given))
        assert not missing, (node, missing)


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
