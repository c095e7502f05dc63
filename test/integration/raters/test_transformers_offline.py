"""Checkpoints on disk, loaded by path with ``HF_HUB_OFFLINE=1`` through ``make_rater``: the same
ratings as the in-memory model, including Qwen2-VL whose stock processor needs torchvision."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES, RatingQuery
from ros2_erl_vlm.raters import make_rater
from ros2_erl_vlm.raters.hf_loading import load_processor
from ros2_erl_vlm.raters.random_weight_vlms import BUILDERS, save_vlm
from ros2_erl_vlm.raters.transformers_rater import TransformersRater, TransformersRaterConfig

pytestmark = pytest.mark.integration


def queries() -> list[RatingQuery]:
    rng = np.random.default_rng(7)
    return [RatingQuery(episode=i, steps=tuple(range(1 + i % 2)), instruction="open the drawer",
                        class_names=DEFAULT_CLASS_NAMES[3 + i % 3], query_id=f"q{i}",
                        frames=rng.integers(0, 256, (1 + i % 2, 48, 48, 3), dtype=np.uint8))
            for i in range(3)]


@pytest.mark.parametrize("arch", ("idefics3", "qwen2_vl", "qwen2_5_vl"))
def test_saved_checkpoint_rates_like_the_original(arch, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, proc = BUILDERS[arch]()
    path = save_vlm(model, proc, tmp_path / arch)
    expected = TransformersRater(TransformersRaterConfig(model=arch, min_class_mass=0.0), model=model, processor=proc).rate(queries())
    rater = make_rater({"backend": "transformers", "model": str(path), "dtype": "float32", "min_class_mass": 0.0,
                        "log_path": str(tmp_path / "ratings.log")})
    got = rater.rate(queries())
    rater.close()
    for a, b in zip(expected, got, strict=True):
        assert a.label == b.label
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
    assert got[0].backend == f"transformers:{arch}"


def test_qwen_processor_falls_back_to_image_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoProcessor, ProcessorMixin

    model, proc = BUILDERS["qwen2_vl"]()
    path = save_vlm(model, proc, tmp_path / "qwen")
    try:  # without torchvision, transformers itself gives a bare tokenizer or fails
        stock = AutoProcessor.from_pretrained(path)
    except OSError:
        stock = None
    assert not isinstance(stock, ProcessorMixin)
    loaded = load_processor(str(path))
    assert type(loaded).__name__ == "Qwen2VLProcessorImageOnly"
    assert loaded.chat_template


def test_generate_mode_and_bf16_from_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, proc = BUILDERS["idefics3"]()
    path = save_vlm(model, proc, tmp_path / "smol")
    rater = make_rater({"backend": "transformers", "model": str(path), "dtype": "bfloat16",
                        "mode": "generate", "max_new_tokens": 3})
    results = rater.rate(queries())
    # random weights: either a label or a reason for abstaining, for every query
    assert [r for r in results if r.label is None and not r.abstain_reason] == []
    assert next(rater.model.parameters()).dtype.is_floating_point
    assert str(next(rater.model.parameters()).dtype) == "torch.bfloat16"
