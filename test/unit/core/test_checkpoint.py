"""Atomic checkpoints and clear errors for damaged ones."""

from __future__ import annotations

import pytest

from ros2_erl_vlm.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_roundtrip_and_no_temp_left(tmp_path) -> None:
    p = save_checkpoint(tmp_path / "c.pt", {"a": 1})
    assert load_checkpoint(p)["a"] == 1
    assert [f.name for f in tmp_path.iterdir()] == ["c.pt"]


def test_truncated_checkpoint(tmp_path) -> None:
    p = save_checkpoint(tmp_path / "c.pt", {"a": list(range(1000))})
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(p)


def test_missing_and_foreign(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    import torch

    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an erl_vlm checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
