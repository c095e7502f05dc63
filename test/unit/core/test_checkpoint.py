"""Checkpoints: atomic, plain values only (loaded with weights_only), clear errors otherwise."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from ros2_erl_vlm.core.checkpoint import FORMAT, CheckpointError, load_checkpoint, save_checkpoint


def _roundtrip(tmp_path: Path, value: object) -> object:
    return load_checkpoint(save_checkpoint(tmp_path / "c.pt", {"v": value}))["v"]


def test_roundtrip(tmp_path) -> None:
    p = save_checkpoint(tmp_path / "c.pt", {"a": 1})
    assert load_checkpoint(p)["a"] == 1


def test_format_tag_is_v2(tmp_path) -> None:
    p = save_checkpoint(tmp_path / "c.pt", {"a": 1})
    assert load_checkpoint(p)["format"] == FORMAT == "erl_vlm.checkpoint.v2"


def test_no_temp_left(tmp_path) -> None:
    save_checkpoint(tmp_path / "c.pt", {"a": 1})
    assert [f.name for f in tmp_path.iterdir()] == ["c.pt"]


def test_parent_directories_created(tmp_path) -> None:
    p = save_checkpoint(tmp_path / "a" / "b" / "c.pt", {"a": 1})
    assert load_checkpoint(p)["a"] == 1


def test_file_loads_with_weights_only(tmp_path) -> None:
    p = save_checkpoint(tmp_path / "c.pt", {"a": np.zeros(3), "rng": np.random.default_rng(1).bit_generator.state})
    assert torch.load(p, weights_only=True)["format"] == FORMAT


def test_plain_containers_roundtrip(tmp_path) -> None:
    value = {"l": [1, 2.5, None, True], "t": (1, "x"), "b": b"\x00\xff", (1, 2): "tuple key", 3: "int key"}
    assert _roundtrip(tmp_path, value) == value


def test_ordered_dict_kept(tmp_path) -> None:
    value = OrderedDict(w=torch.ones(2))
    assert type(_roundtrip(tmp_path, value)) is OrderedDict


def test_tensor_roundtrip(tmp_path) -> None:
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert torch.equal(_roundtrip(tmp_path, t), t)


def test_big_ints_survive(tmp_path) -> None:
    value = [2**200, -(2**130), 2**64 + 1]
    assert _roundtrip(tmp_path, value) == value


def test_bytes_survive(tmp_path) -> None:
    value = bytes(range(256))
    assert _roundtrip(tmp_path, value) == value


def test_numpy_rng_state_restores_the_stream(tmp_path) -> None:
    rng = np.random.default_rng(123)
    rng.random(7)
    state = _roundtrip(tmp_path, rng.bit_generator.state)
    expected = rng.random(5)
    other = np.random.default_rng(0)
    other.bit_generator.state = state
    np.testing.assert_array_equal(other.random(5), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int8", "int64", "uint8", "uint16",
                                   "uint32", "uint64", "bool", "complex64", ">f4", "<U5", "S3",
                                   "datetime64[s]", "timedelta64[ms]", "longdouble"])
def test_ndarray_dtype_kept(tmp_path, dtype) -> None:
    arr = np.arange(6).reshape(2, 3).astype(dtype)
    assert _roundtrip(tmp_path, arr).dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "uint16", ">f4", "<U5", "datetime64[s]"])
def test_ndarray_values_kept(tmp_path, dtype) -> None:
    arr = np.arange(6).reshape(2, 3).astype(dtype)
    np.testing.assert_array_equal(_roundtrip(tmp_path, arr), arr)


@pytest.mark.parametrize("shape", [(), (0,), (0, 4), (2, 3, 4)])
def test_ndarray_shape_kept(tmp_path, shape) -> None:
    arr = np.zeros(shape, dtype=np.float32)
    assert _roundtrip(tmp_path, arr).shape == shape


def test_ndarray_comes_back_as_ndarray(tmp_path) -> None:
    assert type(_roundtrip(tmp_path, np.zeros(3))) is np.ndarray


def test_non_contiguous_ndarray(tmp_path) -> None:
    arr = np.arange(12, dtype=np.int32).reshape(3, 4)[:, ::2]
    np.testing.assert_array_equal(_roundtrip(tmp_path, arr), arr)


def test_structured_ndarray(tmp_path) -> None:
    arr = np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8", (2,))])
    arr["a"] = [1, 2]
    out = _roundtrip(tmp_path, arr)
    np.testing.assert_array_equal(out["a"], [1, 2])


def test_loaded_ndarray_is_writable(tmp_path) -> None:
    out = _roundtrip(tmp_path, np.zeros(3, dtype=np.float32))
    out[0] = 1.0
    assert out[0] == 1.0


def test_numpy_scalars_become_python_numbers(tmp_path) -> None:
    out = _roundtrip(tmp_path, [np.float32(1.5), np.int64(3), np.bool_(True)])
    assert [type(v) for v in out] == [float, int, bool]


def test_numpy_scalar_values_kept(tmp_path) -> None:
    assert _roundtrip(tmp_path, [np.float32(1.5), np.int64(3)]) == [1.5, 3]


@dataclass
class Episode:
    episode_id: int

    def to_state(self) -> dict:
        return {"episode_id": self.episode_id}


def test_dataclass_refused_naming_the_key_path(tmp_path) -> None:
    state = {"episodes": [Episode(0), Episode(1), Episode(2), Episode(3)]}
    with pytest.raises(TypeError, match=r"state\['episodes'\]\[0\]: Episode is not a plain value; "
                                        r"convert it with its to_state\(\)"):
        save_checkpoint(tmp_path / "c.pt", state)


def test_refused_state_writes_nothing(tmp_path) -> None:
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "c.pt", {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_refused_state_keeps_old_file(tmp_path) -> None:
    p = save_checkpoint(tmp_path / "c.pt", {"a": 1})
    with pytest.raises(TypeError):
        save_checkpoint(p, {"a": 2, "x": object()})
    assert load_checkpoint(p)["a"] == 1


def test_nested_key_path_named(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"state\['a'\]\['b'\]\[1\]: set is not a plain value"):
        save_checkpoint(tmp_path / "c.pt", {"a": {"b": [1, {2}]}})


def test_object_ndarray_refused(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"state\['x'\]: numpy array of dtype object"):
        save_checkpoint(tmp_path / "c.pt", {"x": np.array([object()])})


def test_str_subclass_refused(tmp_path) -> None:
    class Name(str):
        pass

    with pytest.raises(TypeError, match="Name is not a plain value"):
        save_checkpoint(tmp_path / "c.pt", {"x": Name("a")})


def test_reserved_format_key_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="format"):
        save_checkpoint(tmp_path / "c.pt", {"format": "mine"})


def test_truncated_checkpoint(tmp_path) -> None:
    p = save_checkpoint(tmp_path / "c.pt", {"a": list(range(1000))})
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(p)


def test_missing(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_foreign(tmp_path) -> None:
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an erl_vlm checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


V1_MESSAGE = (r"older erl_vlm release .* format that could execute code when loaded, so it is not "
              r"loaded; start a new run directory")


def test_v1_with_numpy_refused(tmp_path) -> None:
    p = tmp_path / "old.pt"
    torch.save({"format": "erl_vlm.checkpoint.v1", "x": np.zeros(3)}, p)
    with pytest.raises(CheckpointError, match=V1_MESSAGE):
        load_checkpoint(p)


def test_v1_plain_refused(tmp_path) -> None:
    p = tmp_path / "old.pt"
    torch.save({"format": "erl_vlm.checkpoint.v1", "x": 1}, p)
    with pytest.raises(CheckpointError, match=V1_MESSAGE):
        load_checkpoint(p)


class _Evil:
    """Unpickling this calls ``open(marker, "w")``: code run by merely loading a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_torch_file_refused(tmp_path) -> None:
    p, marker = tmp_path / "evil.pt", tmp_path / "marker"
    torch.save({"format": FORMAT, "x": _Evil(marker)}, p)
    with pytest.raises(CheckpointError, match="not an erl_vlm checkpoint"):
        load_checkpoint(p)


def test_malicious_torch_file_runs_no_code(tmp_path) -> None:
    p, marker = tmp_path / "evil.pt", tmp_path / "marker"
    torch.save({"format": FORMAT, "x": _Evil(marker)}, p)
    with pytest.raises(CheckpointError):
        load_checkpoint(p)
    assert not marker.exists()


def test_malicious_plain_pickle_runs_no_code(tmp_path) -> None:
    p, marker = tmp_path / "evil.pkl", tmp_path / "marker"
    p.write_bytes(pickle.dumps({"format": FORMAT, "x": _Evil(marker)}))
    with pytest.raises(CheckpointError):
        load_checkpoint(p)
    assert not marker.exists()
