"""core/settings.py: declared ranges, dotted overrides and settings files (one implementation each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ros2_erl_vlm.core.config import LoopConfig
from ros2_erl_vlm.core.settings import (
    Bounds,
    apply_overrides,
    check_declared,
    flatten,
    leaf_fields,
    parse_assignments,
    read_settings_file,
)


class BadSettingError(ValueError):
    """The caller's error type."""


def test_bounds_text_and_edges() -> None:
    b = Bounds(0.0, 1.0, high_open=True)
    assert b.text() == "in [0, 1)" and b.in_range(0.0) and not b.in_range(1.0)
    assert Bounds(1).text() == "in [1, inf)" and Bounds(choices=("a", "b")).text() == "one of a, b"
    assert b.problem(1.0) == "must be in [0, 1), got 1.0"
    assert "finite" in b.problem(float("nan")) and "a number" in b.problem("x")
    assert Bounds(1).problem(2.5, integer=True) == "must be an integer, got 2.5"
    assert Bounds(choices=("a",)).problem("b") == "must be one of ('a',), got 'b'"


def test_validate_names_the_field_from_the_declaration() -> None:
    cfg = LoopConfig(eval_every=0)
    with pytest.raises(ValueError, match=r"^eval_every must be in \[1, inf\), got 0$"):
        cfg.validate()
    with pytest.raises(ValueError, match=r"^reward.lr must be in \(0, inf\), got 0.0$"):
        check_declared(LoopConfig().reward.__class__(lr=0.0), "reward.")
    with pytest.raises(ValueError, match="query_strategy must be one of"):
        LoopConfig(query_strategy="random").validate()


def test_apply_overrides_dotted_and_nested() -> None:
    cfg = apply_overrides(LoopConfig(), {"sac.batch_size": 64, "reward": {"lr": 1}, "eval_every": 5},
                          "here")
    assert (cfg.sac.batch_size, cfg.reward.lr, cfg.eval_every) == (64, 1.0, 5)
    assert isinstance(cfg.reward.lr, float)
    with pytest.raises(BadSettingError, match=r"here: unknown setting 'sac.gama' \(known: "):
        apply_overrides(LoopConfig(), {"sac.gama": 0.9}, "here", BadSettingError)
    with pytest.raises(BadSettingError, match="unknown setting 'reward.nope'"):
        apply_overrides(LoopConfig(), {"reward": {"nope": 1}}, "here", BadSettingError)
    with pytest.raises(BadSettingError, match="unknown setting 'eval_every.x'"):
        apply_overrides(LoopConfig(), {"eval_every.x": 1}, "here", BadSettingError)
    for key, value, msg in (("sac.batch_size", "big", "must be an integer"), ("sac.gamma", "x", "must be a number"),
                            ("reward.stratified", 1, "must be true/false"), ("query_strategy", 3, "must be a string")):
        with pytest.raises(BadSettingError, match=f"here: {key} {msg}"):
            apply_overrides(LoopConfig(), {key: value}, "here", BadSettingError)


def test_parse_assignments() -> None:
    assert parse_assignments(["a.b=3", "c= true", "d=x: [", "e="], "--set") == {
        "a.b": 3, "c": True, "d": "x: [", "e": None}
    with pytest.raises(BadSettingError, match="--set expects KEY=VALUE, got 'query_every'"):
        parse_assignments(["query_every"], "--set", BadSettingError)


def test_flatten_and_leaf_fields() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
    names = leaf_fields(LoopConfig())
    assert "sac.gamma" in names and "reward.loss" in names and "sac" not in names


def test_read_settings_file(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("a: 1\n")
    assert read_settings_file(p, "config") == {"a": 1}
    p.write_text("")
    assert read_settings_file(p, "config") == {}
    with pytest.raises(BadSettingError, match=f"params file {p}: expected a mapping of node names"):
        read_settings_file(p, "params file", BadSettingError, empty_ok=False, expected="a mapping of node names")
    p.write_text("[1, 2]\n")
    with pytest.raises(BadSettingError, match="config .*: expected a mapping"):
        read_settings_file(p, "config", BadSettingError)
    p.write_text("[1, 2\n")
    with pytest.raises(BadSettingError, match="cannot read config"):
        read_settings_file(p, "config", BadSettingError)
    with pytest.raises(BadSettingError, match="cannot read graph description .*missing.yaml"):
        read_settings_file(tmp_path / "missing.yaml", "graph description", BadSettingError)


def test_settings_diff_names_what_a_resume_changes() -> None:
    from ros2_erl_vlm.core.settings import settings_diff

    saved = {"a": 1, "b": 2, "steps": 100}
    assert settings_diff(saved, {"a": 1, "b": 2, "steps": 200}, frozenset({"steps"})) == []
    assert settings_diff(saved, {"a": 1, "b": 3, "steps": 100}) == ["b: 2 (now 3)"]
    # A setting added after the run started counts as unchanged while it keeps its default.
    assert settings_diff(saved, {**saved, "c": 0}, defaults={"c": 0}) == []
    assert settings_diff(saved, {**saved, "c": 1}, defaults={"c": 0}) == ["c: None (now 1)"]
