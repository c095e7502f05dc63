"""Crash-safe writes: new content or old content, never a half file or a stray temp file."""

from __future__ import annotations

import io

import pytest
import torch

from ros2_erl_vlm.core.atomic_write import atomic_open, write_bytes_atomic, write_text_atomic


def test_bytes_written(tmp_path) -> None:
    p = write_bytes_atomic(tmp_path / "f.bin", b"\x00\x01abc")
    assert p.read_bytes() == b"\x00\x01abc"


def test_text_written(tmp_path) -> None:
    p = write_text_atomic(tmp_path / "f.txt", "héllo\n")
    assert p.read_text(encoding="utf-8") == "héllo\n"


def test_replaces_existing_file(tmp_path) -> None:
    p = tmp_path / "f.txt"
    p.write_text("old")
    write_text_atomic(p, "new")
    assert p.read_text() == "new"


def test_returns_the_path(tmp_path) -> None:
    assert write_text_atomic(tmp_path / "f.txt", "x") == tmp_path / "f.txt"


def test_no_temp_files_left(tmp_path) -> None:
    write_text_atomic(tmp_path / "f.txt", "a")
    write_text_atomic(tmp_path / "f.txt", "b")
    assert [f.name for f in tmp_path.iterdir()] == ["f.txt"]


def test_directory_created(tmp_path) -> None:
    p = write_text_atomic(tmp_path / "a" / "b" / "f.txt", "x")
    assert p.read_text() == "x"


@pytest.fixture
def crashed_write(tmp_path):
    """``f.txt`` holding "old", then a rewrite that fails half-way."""
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(p, "w") as fh:
        fh.write("half of the new")
        raise RuntimeError("crash")
    return p


def test_failure_mid_write_keeps_old_file(crashed_write) -> None:
    assert crashed_write.read_text() == "old"


def test_failure_mid_write_leaves_no_temp(crashed_write) -> None:
    assert [f.name for f in crashed_write.parent.iterdir()] == ["f.txt"]


def test_failure_without_old_file_creates_nothing(tmp_path) -> None:
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "f.bin") as fh:
        fh.write(b"x")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_failed_data_keeps_old_file(tmp_path) -> None:
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(TypeError):
        write_bytes_atomic(p, "not bytes")  # type: ignore[arg-type]
    assert p.read_text() == "old"


def test_text_mode_newline(tmp_path) -> None:
    with atomic_open(tmp_path / "f.csv", "w", newline="") as fh:
        fh.write("a\r\nb\n")
    assert (tmp_path / "f.csv").read_bytes() == b"a\r\nb\n"


def test_torch_save_into_atomic_open(tmp_path) -> None:
    with atomic_open(tmp_path / "t.pt", "wb") as fh:
        torch.save({"w": torch.ones(3)}, fh)
    loaded = torch.load(io.BytesIO((tmp_path / "t.pt").read_bytes()), weights_only=True)
    assert torch.equal(loaded["w"], torch.ones(3))


def test_bad_mode_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="mode"), atomic_open(tmp_path / "f", "a"):
        pass
