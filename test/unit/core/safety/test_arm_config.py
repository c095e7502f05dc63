"""The arm config: the shipped examples load; every bad config is refused naming the field."""

import copy

import pytest
import yaml

from ros2_erl_vlm.core.safety.arm_config import (
    ArmConfigError,
    arm_config_from_mapping,
    load_arm_config,
)
from ros2_erl_vlm.paths import config_dir

GOOD = {"arm": {"name": "t", "dialect": "servo", "workspace": {"min": [0, 0, 0], "max": [1, 1, 1]},
                "home": [0.5, 0.5, 0.5], "gripper": {"joint_names": ["finger"]},
                "objects": [{"name": "cube", "topic": "cube/pose"}],
                "state": ["ee_position", "gripper", "object:cube"]}}


def with_(path, value):
    d = copy.deepcopy(GOOD)
    node = d["arm"]
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return d


DELETE = object()


@pytest.mark.parametrize("name", sorted(p.name for p in (config_dir() / "arms").glob("*.yaml")))
def test_shipped_arm_configs_load(name):
    cfg = load_arm_config(config_dir() / "arms" / name)
    assert cfg.state_dim >= 3 and cfg.workspace_min is not None
    assert "box" in cfg.summary()


def test_defaults_are_the_safety_defaults():
    cfg = arm_config_from_mapping(GOOD)
    c = cfg.control
    assert (c.rate_hz, c.step_m, c.max_speed_m_s, c.command_timeout_periods) == (10.0, 0.01, 0.1, 2.0)
    assert cfg.enable.required and cfg.enable.timeout_s == 0.5 and cfg.enable.topic == "enable"
    assert cfg.servo.stream_rate_hz == 50.0 and cfg.state_dim == 7


@pytest.mark.parametrize("path, value, match", [
    ("workspace", DELETE, "workspace is required"),
    ("workspace", {"min": [0, 0, 0]}, "exactly 'min' and 'max'"),
    ("workspace.max", [1, 0, 1], "min y .* must be below max y"),
    ("workspace.min", [0, 0], "three numbers"),
    ("workspace.min", [0, 0, float("nan")], "finite"),
    ("home", [2, 0.5, 0.5], "outside the workspace"),
    ("dialect", "joint", "dialect must be one of"),
    ("control.step_m", 0.2, "step_m must be in"),
    ("control.rate_hz", 0.0, "rate_hz must be in"),
    ("control.command_timeout_periods", 0.5, "command_timeout_periods"),
    ("control.leash_m", -1.0, "leash_m"),
    ("control.speed", 1.0, "unknown setting 'arm.control.speed'"),
    ("state", ["ee_position", "object:ball"], "object:ball"),
    ("state", [], "non-empty list"),
    ("gripper.joint_names", [], "joint_names is empty"),
    ("gripper.open_below", 0.5, "open_below"),
    ("gripper.command_open", ["x"], "list of numbers"),
    ("servo.stream_rate_hz", 5.0, "too slow"),
    ("servo.interface", "other", "interface must be one of"),
    ("enable.timeout_s", 0.0, "timeout_s must be in"),
])
def test_bad_configs_name_the_field(path, value, match):
    with pytest.raises(ArmConfigError, match=match):
        arm_config_from_mapping(with_(path, value), "x.yaml")


def test_file_errors_and_dialect_override(tmp_path):
    with pytest.raises(ArmConfigError, match="cannot read arm config"):
        load_arm_config(tmp_path / "missing.yaml")
    p = tmp_path / "a.yaml"
    p.write_text(yaml.safe_dump(GOOD))
    assert load_arm_config(p).dialect == "servo"
    assert load_arm_config(p, "pose").dialect == "pose"
    with pytest.raises(ArmConfigError, match="dialect"):
        load_arm_config(p, "joint")


def test_ee_pose_source():
    cfg = arm_config_from_mapping(GOOD)
    assert cfg.ee_pose_source == "topic" and cfg.ee_pose_name == "ee_pose"  # the old files' meaning
    tf = copy.deepcopy(GOOD)
    tf["arm"].update(ee_pose_source="tf", base_frame="base", ee_frame="tool0")
    cfg = arm_config_from_mapping(tf)
    assert (cfg.topics.tf, cfg.topics.tf_static) == ("/tf", "/tf_static")
    assert "tf base -> tool0" in cfg.summary()
    with pytest.raises(ArmConfigError, match="ee_pose_source must be one of"):
        arm_config_from_mapping(with_("ee_pose_source", "joint_states"), "x.yaml")
    for change in ({"ee_frame": "base"}, {"ee_frame": ""}):
        bad = copy.deepcopy(tf)
        bad["arm"].update(change)
        with pytest.raises(ArmConfigError, match=r"x.yaml: arm.ee_frame"):
            arm_config_from_mapping(bad, "x.yaml")
    bad = copy.deepcopy(tf)
    bad["arm"]["topics"] = {"tf_static": ""}
    with pytest.raises(ArmConfigError, match="arm.topics.tf and arm.topics.tf_static"):
        arm_config_from_mapping(bad, "x.yaml")
