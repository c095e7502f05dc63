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
