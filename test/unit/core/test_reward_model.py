"""Reward ensemble: learns ratings, disagreement, serialisation, image CNN path."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch

from ros2_erl_vlm.core.rating.dataset import DatasetSpec, RatingDataset
from ros2_erl_vlm.core.rating.rater import RatingResult
from ros2_erl_vlm.core.reward.reward_model import (
    INPUT_MIN_STD,
    NORM_MIN_STD,
    RewardEnsemble,
    RewardModelConfig,
)


def _synthetic(n: int, num_classes: int, rng: np.random.Generator, obs_dim: int = 6) -> RatingDataset:
    """Ratings of a hidden 'progress' = x[0] binned into classes, with heavy class imbalance."""
    ds = RatingDataset(DatasetSpec(num_classes, "state", (1, obs_dim)))
    x = rng.normal(size=(n, obs_dim)).astype(np.float32)
    x[:, 0] = rng.beta(0.7, 3.0, size=n)  # most states are "bad"
    labels = np.minimum((x[:, 0] * num_classes * 1.2).astype(int), num_classes - 1)
    for xi, yi in zip(x, labels, strict=True):
        ds.add(xi[None], RatingResult("q", int(yi), num_classes, "synthetic"))
    return ds


@pytest.mark.parametrize("loss", ["mae", "ce"])
def test_state_ensemble_learns_ordering(loss: str) -> None:
    rng = np.random.default_rng(0)
    ds = _synthetic(600, 3, rng)
    model = RewardEnsemble(RewardModelConfig(loss=loss, epochs=40, hidden_dim=64), obs_dim=6, seed=0)
    stats = model.train_on(ds, rng)
    assert stats.accuracy > 0.7, stats
    probe = np.zeros((5, 6), np.float32)
    probe[:, 0] = np.linspace(0, 1, 5)
    r = model.predict(probe).numpy()
    assert np.corrcoef(r, probe[:, 0])[0, 1] > 0.9, r
    assert model.version == 1


def test_member_rewards_shape_and_disagreement() -> None:
    model = RewardEnsemble(RewardModelConfig(hidden_dim=16), obs_dim=4, seed=0)
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    m = model.member_rewards(x)
    assert m.shape == (3, 7)
    assert torch.all(m.abs() <= 1)
    assert torch.allclose(model.predict(x), m.mean(0))
    assert torch.all(model.disagreement(x) >= 0)


def test_predict_refuses_inputs_of_the_wrong_width() -> None:
    model = RewardEnsemble(RewardModelConfig(hidden_dim=16), obs_dim=4, seed=0)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        model.predict(np.zeros((2, 5), np.float32))


def test_training_on_an_empty_dataset_is_safe() -> None:
    model = RewardEnsemble(RewardModelConfig(hidden_dim=16), obs_dim=3, seed=0)
    ds = RatingDataset(DatasetSpec(2, "state", (1, 3)))
    assert model.train_on(ds, np.random.default_rng(0)).num_ratings == 0


def test_training_on_a_single_class_is_safe() -> None:
    rng = np.random.default_rng(0)
    model = RewardEnsemble(RewardModelConfig(hidden_dim=16), obs_dim=3, seed=0)
    ds = RatingDataset(DatasetSpec(2, "state", (1, 3)))
    model.train_on(ds, rng)  # as before: an empty round first
    for _ in range(20):
        ds.add(rng.normal(size=(1, 3)), RatingResult("q", 0, 2, "t"))
    stats = model.train_on(ds, rng, epochs=2)
    assert np.isfinite(stats.loss)
    assert torch.isfinite(model.predict(np.zeros((2, 3), np.float32))).all()


def test_serialisation_roundtrip_with_checksum() -> None:
    model = RewardEnsemble(RewardModelConfig(hidden_dim=16), obs_dim=3, seed=0)
    blob = model.to_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    clone = RewardEnsemble.from_bytes(blob, sha)
    x = np.ones((2, 3), np.float32)
    assert torch.allclose(clone.predict(x), model.predict(x))


def test_a_wrong_checksum_is_rejected() -> None:
    blob = RewardEnsemble(RewardModelConfig(hidden_dim=16), obs_dim=3, seed=0).to_bytes()
    with pytest.raises(ValueError, match="sha256"):
        RewardEnsemble.from_bytes(blob, "0" * 64)


def test_garbage_bytes_are_rejected() -> None:
    with pytest.raises(ValueError, match="cannot decode"):
        RewardEnsemble.from_bytes(b"garbage")


def test_diverged_training_keeps_the_previous_model(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    ds = _synthetic(200, 3, rng)
    model = RewardEnsemble(RewardModelConfig(epochs=2, hidden_dim=16), obs_dim=6, seed=0)
    model.train_on(ds, rng)
    x = rng.normal(size=(4, 6)).astype(np.float32)
    before, version = model.predict(x), model.version
    import ros2_erl_vlm.core.reward.reward_model as rm

    real = rm.rbrl_loss
    calls = []

    def nan_on_third_step(*args, **kw):
        loss, ok = real(*args, **kw)
        calls.append(1)
        return (loss * float("nan") if len(calls) >= 3 else loss), ok

    monkeypatch.setattr(rm, "rbrl_loss", nan_on_third_step)
    stats = model.train_on(ds, rng)
    assert stats.diverged
    assert model.version == version
    assert torch.equal(model.predict(x), before)  # weights restored, not half-trained


def test_nan_weights_are_rejected() -> None:
    model = RewardEnsemble(RewardModelConfig(hidden_dim=16), obs_dim=3, seed=0)
    with torch.no_grad():
        next(model.members.parameters())[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        RewardEnsemble.from_bytes(model.to_bytes())


def test_weights_missing_a_part_are_rejected() -> None:
    fresh = RewardEnsemble(RewardModelConfig(hidden_dim=16), obs_dim=3, seed=0)
    state = torch.load(io.BytesIO(fresh.to_bytes()), weights_only=True)
    state.pop("members")
    buf = io.BytesIO()
    torch.save(state, buf)
    with pytest.raises(ValueError, match="cannot decode"):
        RewardEnsemble.from_bytes(buf.getvalue())


def test_image_cnn_trains_on_frames() -> None:
    rng = np.random.default_rng(0)
    cfg = RewardModelConfig(input_kind="image", image_size=64, ensemble_size=2, epochs=3, batch_size=16)
    model = RewardEnsemble(cfg, seed=0)
    ds = RatingDataset(DatasetSpec(2, "image", (1, 64, 64, 3)))
    for i in range(32):
        frame = np.full((1, 64, 64, 3), 40 if i % 2 == 0 else 200, np.uint8)
        ds.add(frame, RatingResult("q", i % 2, 2, "t"))
    stats = model.train_on(ds, rng)
    assert stats.steps > 0
    assert np.isfinite(stats.loss)
    r = model.predict(np.zeros((3, 64, 64, 3), np.uint8))
    assert r.shape == (3,)


def test_paper_cnn_accepts_224_frames() -> None:
    model = RewardEnsemble(RewardModelConfig(input_kind="image", ensemble_size=1), seed=0)
    assert model.predict(np.zeros((2, 224, 224, 3), np.uint8)).shape == (2,)


@pytest.mark.parametrize(("kw", "match"), [
    ({"loss": "hinge"}, "reward.loss"),
    ({"ensemble_size": 0}, "reward.ensemble_size"),
    ({"output_norm": "zscore"}, "reward.output_norm"),
])
def test_bad_config_names_field(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RewardModelConfig(**kw).validate()


def test_rated_output_norm_standardises_each_member_over_the_rated_inputs() -> None:
    """``output_norm="rated"``: after training each member has mean 0 and std 1 over the rated
    inputs (hand-checked against the raw outputs), the mean of those is the reward, the ranking is
    unchanged, and the statistics travel with the weights; ``"none"`` keeps the raw mean."""
    rng = np.random.default_rng(0)
    ds = _synthetic(300, 3, rng)
    raw = RewardEnsemble(RewardModelConfig(epochs=3, hidden_dim=32, output_norm="none"), obs_dim=6, seed=0)
    norm = RewardEnsemble(RewardModelConfig(epochs=3, hidden_dim=32, output_norm="rated"), obs_dim=6,
                          seed=0)
    assert torch.equal(norm.norm_stats, torch.tensor([[0.0, 1.0]] * 3))  # identity before training
    raw.train_on(ds, np.random.default_rng(1))
    norm.train_on(ds, np.random.default_rng(1))
    x = ds.inputs[:, 0]
    r = norm.raw_member_rewards(x)
    assert torch.allclose(r, raw.raw_member_rewards(x))  # same training: only the output differs
    mean, std = r.mean(1, keepdim=True), r.std(1, unbiased=False, keepdim=True)
    assert torch.allclose(norm.norm_stats, torch.cat([mean, std], 1))
    z = norm.member_rewards(x)
    assert torch.allclose(z, (r - mean) / std)
    assert torch.allclose(z.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std(1, unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.allclose(norm.predict(x), z.mean(0))
    assert torch.allclose(raw.predict(x), r.mean(0))  # the paper's reward: raw tanh mean
    assert float(r.std(1).mean()) < 0.5  # raw spread is arbitrary (here well below 1)
    clone = RewardEnsemble.from_bytes(norm.to_bytes())
    assert torch.allclose(clone.predict(x), norm.predict(x))


def _trained_on_one_constant_input(rng: np.random.Generator) -> RewardEnsemble:
    model = RewardEnsemble(RewardModelConfig(hidden_dim=16, output_norm="rated"), obs_dim=3, seed=0)
    ds = RatingDataset(DatasetSpec(2, "state", (1, 3)))
    for _ in range(20):
        ds.add(np.zeros((1, 3), np.float32), RatingResult("q", 0, 2, "t"))  # one input, one class
    model.train_on(ds, rng, epochs=2)
    return model


def test_rated_output_norm_floors_a_constant_member() -> None:
    rng = np.random.default_rng(0)
    model = _trained_on_one_constant_input(rng)
    assert torch.all(model.norm_stats[:, 1] == NORM_MIN_STD)  # zero spread: the floor, not a division by 0
    assert torch.isfinite(model.predict(rng.normal(size=(4, 3)).astype(np.float32))).all()


def test_rated_output_norm_rejects_bad_stats() -> None:
    model = _trained_on_one_constant_input(np.random.default_rng(0))
    state = model.state_dict()
    state["norm_stats"] = torch.tensor([[0.0, 0.0]] * 3)
    with pytest.raises(ValueError, match="norm_stats"):
        model.load_state_dict(state)


def test_weights_saved_before_output_norm_existed_load() -> None:
    model = _trained_on_one_constant_input(np.random.default_rng(0))
    state = model.state_dict()
    del state["norm_stats"]  # saved before output_norm existed: accepted, statistics unchanged
    model.load_state_dict(state)


def test_the_reward_has_a_scale_by_default() -> None:
    """Shipped defaults: members standardised over the rated inputs, state inputs standardised."""
    cfg = RewardModelConfig()
    assert cfg.output_norm == "rated"
    assert cfg.input_norm == "rated"


def _rescaled(ds: RatingDataset, dim: int, scale: float) -> RatingDataset:
    out = RatingDataset(ds.spec)
    for x, y in zip(ds.inputs, ds.labels, strict=True):
        x = x.copy()
        x[:, dim] *= scale
        out.add(x, RatingResult("q", int(y), ds.spec.num_classes, "synthetic"))
    return out


def test_input_norm_makes_the_reward_blind_to_an_input_dimension_s_units() -> None:
    """The same ratings with one observation dimension in other units (x100) give the same reward."""
    rng = np.random.default_rng(0)
    ds = _synthetic(300, 3, rng)
    big = _rescaled(ds, 0, 100.0)
    a = RewardEnsemble(RewardModelConfig(epochs=3, hidden_dim=32), obs_dim=6, seed=0)
    b = RewardEnsemble(RewardModelConfig(epochs=3, hidden_dim=32), obs_dim=6, seed=0)
    a.train_on(ds, np.random.default_rng(1))
    b.train_on(big, np.random.default_rng(1))
    assert torch.allclose(a.predict(ds.inputs[:, 0]), b.predict(big.inputs[:, 0]), atol=1e-4)


def test_input_stats_are_the_rated_steps_mean_and_floored_std() -> None:
    rng = np.random.default_rng(0)
    ds = _synthetic(200, 3, rng)
    x = ds.inputs[:, 0]
    constant = RatingDataset(ds.spec)
    for xi, y in zip(x, ds.labels, strict=True):
        xi = xi.copy()
        xi[5] = 0.3  # a dimension that never varies on the rated states (e.g. a hidden goal)
        constant.add(xi[None], RatingResult("q", int(y), 3, "synthetic"))
    model = RewardEnsemble(RewardModelConfig(epochs=2, hidden_dim=16), obs_dim=6, seed=0)
    model.train_on(constant, np.random.default_rng(1))
    steps = torch.as_tensor(constant.inputs[:, 0])
    assert torch.allclose(model.input_stats[0], steps.mean(0))
    assert torch.allclose(model.input_stats[1, :5], steps.std(0, unbiased=False)[:5])
    assert float(model.input_stats[1, 5]) == pytest.approx(INPUT_MIN_STD)


def test_input_stats_travel_with_the_weights() -> None:
    rng = np.random.default_rng(0)
    ds = _synthetic(200, 3, rng)
    model = RewardEnsemble(RewardModelConfig(epochs=2, hidden_dim=16), obs_dim=6, seed=0)
    model.train_on(ds, np.random.default_rng(1))
    clone = RewardEnsemble.from_bytes(model.to_bytes())
    assert torch.equal(clone.input_stats, model.input_stats)
    assert torch.allclose(clone.predict(ds.inputs[:, 0]), model.predict(ds.inputs[:, 0]))


def test_input_norm_none_reads_raw_observations() -> None:
    rng = np.random.default_rng(0)
    ds = _synthetic(200, 3, rng)
    model = RewardEnsemble(RewardModelConfig(epochs=2, hidden_dim=16, input_norm="none", output_norm="none"),
                           obs_dim=6, seed=0)
    model.train_on(ds, np.random.default_rng(1))
    x = torch.as_tensor(ds.inputs[:, 0])
    by_hand = torch.stack([net(x) for net in model.members]).mean(0)
    assert torch.allclose(model.predict(x), by_hand)


def test_image_size_below_what_the_cnn_takes_is_refused() -> None:
    from ros2_erl_vlm.core.reward.reward_model import MIN_IMAGE_SIZE, ImageRewardNet

    ImageRewardNet(MIN_IMAGE_SIZE)  # the smallest that builds
    with pytest.raises(ValueError, match=f"at least {MIN_IMAGE_SIZE}"):
        RewardModelConfig(input_kind="image", image_size=MIN_IMAGE_SIZE - 8).validate()
