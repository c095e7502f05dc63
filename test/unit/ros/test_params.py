"""Parameter specs: types, ranges, choices; every node's table; LoopConfig from parameters."""

from __future__ import annotations

import pytest

from ros2_erl_vlm.ros.node_params import NODE_PARAMS, loop_config
from ros2_erl_vlm.ros.params import ParamError, ParamSpec, check_values


def test_check_coerces_and_rejects() -> None:
    f = ParamSpec("lr", 0.1, "x", 0.0, 1.0)
    assert f.check(1) == 1.0 and isinstance(f.check(1), float)
    for bad, msg in ((2.0, "out of range"), ("a", "must be a number"), (True, "must be a number"),
                     (float("nan"), "finite")):
        with pytest.raises(ParamError, match=f"parameter 'lr': .*{msg}"):
            f.check(bad)
    i = ParamSpec("n", 3, "x", 1, 5)
    assert i.check(5) == 5
    with pytest.raises(ParamError, match="integer"):
        i.check(2.5)
    c = ParamSpec("mode", "a", "x", choices=("a", "b"))
    with pytest.raises(ParamError, match="'c' is not allowed"):
        c.check("c")
    lst = ParamSpec("crop", [0, 0, 0, 0], "x", 0, 10, length=4)
    assert lst.check((1, 2, 3, 4)) == [1, 2, 3, 4]
    with pytest.raises(ParamError, match="4 values"):
        lst.check([1, 2])
    with pytest.raises(ParamError, match="true or false"):
        ParamSpec("b", True, "x").check(1)


def test_check_values_defaults_and_unknown() -> None:
    specs = [ParamSpec("a", 1, "x"), ParamSpec("b", "s", "x")]
    assert check_values(specs, {"a": 2}) == {"a": 2, "b": "s"}
    with pytest.raises(ParamError, match="unknown parameter 'c'"):
        check_values(specs, {"c": 1})


def test_every_node_table_is_valid() -> None:
    for node, specs in NODE_PARAMS.items():
        names = [s.name for s in specs]
        assert len(names) == len(set(names)), node
        for s in specs:
            assert s.description, (node, s.name)
            s.check(s.default)  # defaults are within their own ranges
            assert s.kind


def test_loop_config_from_parameters() -> None:
    cfg = loop_config({"sac.batch_size": 64, "reward.hidden_dim": 8, "num_seed_steps": 100, "task": "x",
                       "total_steps": 50}, num_classes=2)
    assert (cfg.sac.batch_size, cfg.reward.hidden_dim, cfg.num_seed_steps, cfg.num_classes) == (64, 8, 100, 2)
    with pytest.raises(ParamError, match="num_seed_steps is too small"):
        loop_config({"num_seed_steps": 1})


# -- one statement of each range: the dataclass field; the node parameter reads it --------------
def _dataclass_accepts(owner: type, field_name: str, value: object) -> bool:
    """Whether ``owner``'s validate() takes ``value`` for the field (the in-process path)."""
    from ros2_erl_vlm.core.config import LoopConfig
    from ros2_erl_vlm.core.rl.sac import SACConfig

    try:
        if owner is LoopConfig:  # a tiny SAC batch, so num_seed_steps=0 passes the cross-check
            LoopConfig(sac=SACConfig(batch_size=1), **{field_name: value}).validate()
        else:
            owner(**{field_name: value}).validate()
    except ValueError:
        return False
    return True


def _param_accepts(spec: ParamSpec, value: object) -> bool:
    try:
        spec.check(value)
    except ParamError:
        return False
    return True


def _edge_values(spec: ParamSpec) -> list[object]:
    import math

    out: list[object] = []
    integer = spec.kind == "int"
    for edge in (spec.low, spec.high):
        if edge is None:
            continue
        if integer:
            out += [int(edge) - 1, int(edge), int(edge) + 1]
        else:
            out += [math.nextafter(edge, -math.inf), float(edge), math.nextafter(edge, math.inf)]
    if spec.high is None:  # open-ended: a very large value
        out.append(10**15 if integer else 1e15)
    if spec.low is None:
        out.append(-(10**15) if integer else -1e15)
    return out


def test_config_parameters_take_default_type_and_range_from_their_dataclass_field() -> None:
    import typing

    from ros2_erl_vlm.core.settings import declared, field_default
    from ros2_erl_vlm.ros.node_params import CONFIG_FIELDS

    assert {"sac.gamma", "reward.lr", "total_steps", "eval_every", "rater.noise"} <= set(CONFIG_FIELDS)
    for node, specs in NODE_PARAMS.items():
        for spec in specs:
            if spec.name not in CONFIG_FIELDS:
                continue
            owner, field_name = CONFIG_FIELDS[spec.name]
            default = field_default(owner, field_name)
            assert spec.default == default and type(spec.default) is type(default), (node, spec.name)
            hint = typing.get_type_hints(owner)[field_name]
            assert spec.kind == hint.__name__, (node, spec.name, spec.kind, hint)
            bounds = declared(owner, field_name)
            if spec.kind == "bool":
                assert bounds is None and spec.bounds.text() == "", spec.name
                continue
            assert bounds is not None, f"{owner.__name__}.{field_name} declares no range or choices"
            assert (spec.low, spec.high, spec.low_open, spec.high_open, spec.choices) == (
                bounds.low, bounds.high, bounds.low_open, bounds.high_open, bounds.choices), spec.name


def test_every_numeric_config_field_declares_a_range() -> None:
    """Numeric fields without a declared range are an explicit, short list."""
    from ros2_erl_vlm.core.config import LoopConfig
    from ros2_erl_vlm.core.settings import declared, leaf_fields
    from ros2_erl_vlm.raters.oracle import OracleConfig

    unbounded = {"sac.log_std_min", "sac.log_std_max", "sac.target_entropy", "reward.k"}
    fields = {**leaf_fields(LoopConfig()), **{f"rater.{k}": v for k, v in leaf_fields(OracleConfig()).items()}}
    for name, (owner, f) in fields.items():
        value = getattr(owner, f.name)
        if isinstance(value, bool):
            continue
        if isinstance(value, str):
            assert declared(owner, f.name) is not None and declared(owner, f.name).choices, name
        elif name not in unbounded:
            assert declared(owner, f.name) is not None, name


def test_declared_ranges_and_validate_agree_at_every_edge() -> None:
    """For every numeric parameter that is a config field, a value at or just beyond each edge of
    its range is accepted or refused alike by the node parameter check and the dataclass's
    validate() (the in-process runner's path)."""
    from ros2_erl_vlm.ros.node_params import CONFIG_FIELDS

    seen = set()
    checked = 0
    for specs in NODE_PARAMS.values():
        for spec in specs:
            if spec.name not in CONFIG_FIELDS or spec.name in seen or spec.kind not in ("int", "float"):
                continue
            seen.add(spec.name)
            owner, field_name = CONFIG_FIELDS[spec.name]
            for value in _edge_values(spec):
                by_param, by_class = _param_accepts(spec, value), _dataclass_accepts(owner, field_name, value)
                assert by_param == by_class, (spec.name, value, by_param, by_class)
                checked += 1
    assert checked > 100


def test_gamma_accepts_the_dataclass_range() -> None:
    from ros2_erl_vlm.core.rl.sac import SACConfig

    gamma = {s.name: s for s in NODE_PARAMS["sac_agent"]}["sac.gamma"]
    assert gamma.check(0.0) == 0.0 and gamma.check(0.99999) == 0.99999
    with pytest.raises(ParamError, match=r"parameter 'sac.gamma': 1.0 is out of range \(in \[0, 1\)\)"):
        gamma.check(1.0)
    with pytest.raises(ValueError, match=r"sac.gamma must be in \[0, 1\), got 1.0"):
        SACConfig(gamma=1.0).validate()
    SACConfig(gamma=0.99999).validate()


def test_open_edges_in_descriptor_text() -> None:
    tau = ParamSpec("tau", 0.5, "x", 0.0, 1.0, low_open=True)
    assert tau.constraint_text() == "in (0, 1]"
    with pytest.raises(ParamError, match=r"out of range \(in \(0, 1\]\)"):
        tau.check(0.0)
    assert ParamSpec("n", 1, "x", 1).constraint_text() == "in [1, inf)"
