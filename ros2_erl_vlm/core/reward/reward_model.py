"""The learned reward: an ensemble of per-step reward networks trained from ratings.

Two input kinds:

* ``state`` (default; cheap on CPU): an MLP on the policy observation after each step.
* ``image``: the paper's CNN on RGB frames (224 px): 4 convs (kernels 5/3/3/3, channels
  16/32/64/128, strides 3/2/2/2, ReLU), a linear head; works on CPU but is slow.

Every member ends in ``tanh`` so ``r_hat`` is in ``[-1, 1]``. A segment's return is the sum of its
per-step rewards. The ensemble mean is the reward used for acting and relabelling; the spread
(std over members) measures disagreement for query selection.

Output scale (``RewardModelConfig.output_norm``): the RbRL loss min-max normalises each minibatch,
so it constrains neither the offset nor the spread of ``r_hat``. With ``"none"`` (the paper) the
members' raw outputs are averaged, whatever their spread (seen: std 0.01-0.07 over a replay
buffer, drifting each round). With ``"rated"`` each member is standardised by the mean and std
of its outputs over every rated input, recomputed after each training, before averaging: the
reward has unit spread on the rated states and every member counts equally. ``"rated"`` is the
default: SAC's temperature (0.1 at the start) is then small against the reward's spread, as it
is against a hand-written reward's; with raw outputs the learned reward's spread was 0.001-0.04
in the first learning benchmark's runs, and the entropy term drowned it.

Input scale (``RewardModelConfig.input_norm``, state models): each observation dimension is
standardised by its mean and std over every rated step, recomputed at each training and saved
with the weights (``"none"``: raw observations). Positions in metres and a gripper opening in
[0, 1] then weigh alike, and a dimension that never varies on rated states (floored std) cannot
dominate.

Device (``device``, :mod:`~ros2_erl_vlm.core.device`): the members, their optimiser and the
normalisation statistics live there; inputs may come from anywhere (numpy, CPU frames) and are
moved one chunk or minibatch at a time, so a replay buffer of frames never has to fit on a GPU.
Members are initialised on the CPU and moved (the same seed, the same weights on any device);
:meth:`RewardEnsemble.state_dict` and :meth:`RewardEnsemble.to_bytes` hold CPU tensors.
"""

from __future__ import annotations

import copy
import hashlib
import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ros2_erl_vlm.core.device import resolve_device, to_cpu
from ros2_erl_vlm.core.rating.dataset import RatingDataset
from ros2_erl_vlm.core.reward.rbrl import DEFAULT_K, LOSSES, rbrl_loss
from ros2_erl_vlm.core.settings import check_declared, setting

#: The smallest frame side the paper's CNN (:class:`ImageRewardNet`) takes.
MIN_IMAGE_SIZE = 48
#: ``input_kind`` values: the policy state (an MLP) or camera frames (the paper's CNN).
INPUT_KINDS = ("state", "image")
#: ``output_norm`` values: the paper's raw outputs, or members standardised over the rated inputs.
OUTPUT_NORMS = ("none", "rated")
#: Floor of a member's output std when standardising (a member that learnt a constant stays ~0).
NORM_MIN_STD = 1e-3
#: ``input_norm`` values: raw observations, or each dimension standardised over the rated steps.
INPUT_NORMS = ("none", "rated")
#: Floor of an input dimension's std when standardising (1 cm for a position).
INPUT_MIN_STD = 1e-2


@dataclass
class RewardModelConfig:
    """Reward-model hyperparameters (paper defaults; batch 128 for states as the reference), each
    with its valid values (:func:`~ros2_erl_vlm.core.settings.setting`; the ``reward.*`` node
    parameters use the same declaration)."""

    input_kind: str = setting("state", choices=INPUT_KINDS)
    ensemble_size: int = setting(3, low=1)
    hidden_dim: int = setting(256, low=1)
    hidden_layers: int = setting(3, low=1)
    image_size: int = setting(224, low=1)
    lr: float = setting(3e-4, low=0.0, low_open=True)
    batch_size: int = setting(128, low=1)
    epochs: int = setting(10, low=1)
    early_stop_accuracy: float = setting(0.97, low=0.0, high=1.0, low_open=True)
    loss: str = setting("mae", choices=LOSSES)
    stratified: bool = True
    class_weighting: bool = True
    k: float = DEFAULT_K
    predict_batch: int = setting(4096, low=1)
    output_norm: str = setting("rated", choices=OUTPUT_NORMS)
    input_norm: str = setting("rated", choices=INPUT_NORMS)

    def validate(self) -> RewardModelConfig:
        """Raise ``ValueError`` naming the first bad field."""
        check_declared(self, "reward.")
        if self.image_size < MIN_IMAGE_SIZE and self.input_kind == "image":
            raise ValueError(f"reward.image_size must be at least {MIN_IMAGE_SIZE} for the CNN "
                             f"(its four strided convolutions), got {self.image_size}")
        return self


def _fanin_uniform_(layer: nn.Module) -> None:
    if isinstance(layer, (nn.Conv2d, nn.Linear)):
        bound = 1.0 / math.sqrt(layer.weight[0].numel())
        nn.init.uniform_(layer.weight, -bound, bound)
        if layer.bias is not None:
            nn.init.uniform_(layer.bias, -bound, bound)


class StateRewardNet(nn.Module):
    """MLP ``obs -> r_hat in [-1, 1]``."""

    def __init__(self, obs_dim: int, hidden_dim: int = 256, hidden_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = obs_dim
        for _ in range(hidden_layers):
            layers += [nn.Linear(d, hidden_dim), nn.LeakyReLU()]
            d = hidden_dim
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rewards ``(B,)`` for observations ``(B, obs_dim)``."""
        return torch.tanh(self.net(x)).squeeze(-1)


class ImageRewardNet(nn.Module):
    """The paper's CNN: uint8 RGB frames ``(B, H, W, 3)`` -> ``r_hat in [-1, 1]``."""

    def __init__(self, image_size: int = 224) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=3), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2), nn.ReLU(),
            nn.Conv2d(64, 128, 3, stride=2), nn.ReLU(),
        )
        self.convs.apply(_fanin_uniform_)
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, 3, image_size, image_size)).numel()
        self.head = nn.Linear(flat, 1)
        nn.init.uniform_(self.head.weight, -1e-3, 1e-3)
        nn.init.uniform_(self.head.bias, -1e-3, 1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rewards ``(B,)`` for frames ``(B, H, W, 3)`` uint8 (or float in [0, 1])."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = x.permute(0, 3, 1, 2)
        return torch.tanh(self.head(self.convs(x).flatten(1))).squeeze(-1)


@dataclass
class RewardTrainStats:
    """What one call to :meth:`RewardEnsemble.train_on` did."""

    epochs: int = 0
    steps: int = 0
    loss: float = float("nan")
    accuracy: float = float("nan")
    num_ratings: int = 0
    class_counts: list[int] = field(default_factory=list)
    #: The loss became NaN/inf: the weights were restored and the version not bumped.
    diverged: bool = False


class RewardEnsemble:
    """An ensemble of reward nets with RbRL training, prediction and (de)serialisation.

    Args:
        config: hyperparameters.
        obs_dim: observation size (``state`` input).
        seed: torch seed for the initial weights (reproducible runs).
        device: where the members run (``auto``/``cpu``/``cuda``/``cuda:N`` or a torch device).
    """

    def __init__(self, config: RewardModelConfig, obs_dim: int | None = None,
                 seed: int | None = None, device: str | torch.device = "cpu") -> None:
        self.config = config.validate()
        self.device = resolve_device(device)
        if config.input_kind == "state" and (obs_dim is None or obs_dim <= 0):
            raise ValueError("a state reward model needs obs_dim > 0")
        self.obs_dim = obs_dim
        gen_state = torch.random.get_rng_state()
        if seed is not None:
            torch.manual_seed(seed)
        try:
            self.members = nn.ModuleList([self._make_member() for _ in range(config.ensemble_size)])
        finally:
            if seed is not None:
                torch.random.set_rng_state(gen_state)
        self.members.to(self.device)
        self.optimizer = torch.optim.Adam(self.members.parameters(), lr=config.lr)
        self.version = 0
        self.num_ratings_seen = 0
        #: per-member (mean, std) of the outputs over the rated inputs (identity until trained).
        self.norm_stats = torch.tensor([[0.0, 1.0]] * config.ensemble_size, device=self.device)
        #: (mean, std) per state dimension over the rated steps (identity until trained).
        self.input_stats = (torch.tensor([[0.0], [1.0]], device=self.device).repeat(1, obs_dim)
                            if config.input_kind == "state" and obs_dim else None)

    def to(self, device: str | torch.device) -> RewardEnsemble:
        """Move the members, their optimiser state and the statistics to ``device``; returns self."""
        dev = resolve_device(device)
        if dev == self.device:
            return self
        self.members.to(dev)  # in place: the optimiser keeps its parameters
        self.optimizer.load_state_dict(self.optimizer.state_dict())  # state follows its parameters
        self.norm_stats = self.norm_stats.to(dev)
        self.input_stats = None if self.input_stats is None else self.input_stats.to(dev)
        self.device = dev
        return self

    def _make_member(self) -> nn.Module:
        c = self.config
        if c.input_kind == "state":
            assert self.obs_dim is not None
            return StateRewardNet(self.obs_dim, c.hidden_dim, c.hidden_layers)
        return ImageRewardNet(c.image_size)

    # -- prediction ---------------------------------------------------------------------------
    def _as_tensor(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return x
        arr = np.asarray(x)
        if self.config.input_kind == "state":
            return torch.as_tensor(arr, dtype=torch.float32)
        return torch.as_tensor(arr)

    def _check_inputs(self, x: torch.Tensor) -> None:
        c = self.config
        if c.input_kind == "state":
            if x.ndim != 2 or x.shape[1] != self.obs_dim:
                raise ValueError(f"state inputs must be (B, {self.obs_dim}), got {tuple(x.shape)}")
        elif x.ndim != 4 or x.shape[1:] != (c.image_size, c.image_size, 3):
            raise ValueError(
                f"image inputs must be (B, {c.image_size}, {c.image_size}, 3), got {tuple(x.shape)}"
            )

    @torch.no_grad()
    def member_rewards(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Per-member rewards ``(E, B)`` for per-step inputs ``(B, ...)``, standardised per member
        when ``output_norm`` is ``"rated"``."""
        out = self.raw_member_rewards(x)
        if self.config.output_norm == "rated":
            out = (out - self.norm_stats[:, :1]) / self.norm_stats[:, 1:]
        return out

    @torch.no_grad()
    def raw_member_rewards(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The members' tanh outputs ``(E, B)`` for per-step inputs ``(B, ...)`` (on any device;
        the outputs are on the ensemble's)."""
        t = self._as_tensor(x)
        self._check_inputs(t)
        out = torch.empty(len(self.members), t.shape[0], device=self.device)
        bs = self.config.predict_batch if self.config.input_kind == "state" else 256
        for i in range(0, t.shape[0], bs):
            chunk = self._normalise_inputs(t[i : i + bs].to(self.device))
            for m, net in enumerate(self.members):
                out[m, i : i + bs] = net(chunk)
        return out

    def _normalise_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised state inputs (``input_norm == "rated"``); frames and raw states as given."""
        if self.input_stats is None or self.config.input_norm != "rated":
            return x
        return (x - self.input_stats[0]) / self.input_stats[1]

    def predict(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Ensemble-mean reward ``(B,)`` for per-step inputs."""
        return self.member_rewards(x).mean(0)

    def disagreement(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Std over members of the reward ``(B,)``: high where the ensemble is unsure."""
        return self.member_rewards(x).std(0, unbiased=False)

    # -- training -----------------------------------------------------------------------------
    def _segment_returns(self, net: nn.Module, seg: torch.Tensor) -> torch.Tensor:
        b, t = seg.shape[:2]
        steps = self._normalise_inputs(seg.reshape(b * t, *seg.shape[2:]))
        return net(steps).reshape(b, t).sum(1)

    def train_on(self, dataset: RatingDataset, rng: np.random.Generator,
                 epochs: int | None = None) -> RewardTrainStats:
        """Train every member on the whole rating dataset (paper: up to 10 passes, early stop).

        Each member draws its own (stratified) minibatch ordering; member losses are summed and
        one Adam step is taken per minibatch. Training stops early once the ensemble's
        accuracy over an epoch exceeds ``early_stop_accuracy``. If the loss turns NaN/inf, the
        weights and optimiser are restored to what they were before the call, the version stays,
        and ``stats.diverged`` is set: a broken model is never versioned or published.
        """
        c = self.config
        n = len(dataset)
        stats = RewardTrainStats(num_ratings=n, class_counts=dataset.class_counts().tolist())
        if n == 0:
            return stats
        if dataset.spec.input_kind != c.input_kind:
            raise ValueError(
                f"dataset holds {dataset.spec.input_kind} inputs, the model takes {c.input_kind}"
            )
        dev = self.device
        inputs = self._as_tensor(dataset.inputs)
        if c.input_kind == "state":
            inputs = inputs.to(dev)  # small; frames stay where they are, moved per minibatch
        labels = torch.as_tensor(dataset.labels).to(dev)
        weights = torch.as_tensor(dataset.class_weights()).to(dev) if c.class_weighting else None
        num_classes = dataset.spec.num_classes
        backup = copy.deepcopy({"members": self.members.state_dict(),
                                "optimizer": self.optimizer.state_dict(),
                                "input_stats": self.input_stats})
        if self.input_stats is not None:
            steps = inputs.reshape(-1, inputs.shape[-1])
            self.input_stats = torch.stack([steps.mean(0),
                                            steps.std(0, unbiased=False).clamp_min(INPUT_MIN_STD)])
        self.members.train()
        for epoch in range(epochs if epochs is not None else c.epochs):
            orders = [dataset.minibatches(c.batch_size, rng, stratified=c.stratified)
                      for _ in self.members]
            total_loss = 0.0
            correct = 0
            seen = 0
            for b in range(len(orders[0])):
                self.optimizer.zero_grad(set_to_none=True)
                loss_sum = torch.zeros((), device=dev)
                for net, order in zip(self.members, orders, strict=True):
                    idx = torch.as_tensor(order[b])
                    returns = self._segment_returns(net, inputs[idx.to(inputs.device)].to(dev))
                    loss, ok = rbrl_loss(returns, labels[idx.to(dev)], num_classes, loss=c.loss, k=c.k,
                                         class_weights=weights)
                    loss_sum = loss_sum + loss
                    correct += int(ok)
                    seen += len(idx)
                if not torch.isfinite(loss_sum):
                    self._restore(backup)
                    stats.diverged, stats.loss = True, float(loss_sum.item())
                    return stats
                loss_sum.backward()
                self.optimizer.step()
                total_loss += loss_sum.item() / len(self.members)
                stats.steps += 1
            stats.epochs = epoch + 1
            stats.loss = total_loss / max(1, len(orders[0]))
            stats.accuracy = correct / max(1, seen)
            if epoch >= 1 and stats.accuracy > c.early_stop_accuracy:  # at least 2 passes (reference)
                break
        if not all(torch.isfinite(p).all() for p in self.members.parameters()):
            self._restore(backup)
            stats.diverged = True
            return stats
        self.members.eval()
        self.norm_stats = self._output_stats(inputs)
        self.version += 1
        self.num_ratings_seen = n
        return stats

    def _restore(self, backup: dict[str, Any]) -> None:
        """Back to the state before a training that diverged."""
        self.members.load_state_dict(backup["members"])
        self.optimizer.load_state_dict(backup["optimizer"])
        self.input_stats = backup["input_stats"]
        self.members.eval()

    def _output_stats(self, inputs: torch.Tensor) -> torch.Tensor:
        """Per-member (mean, std) of the outputs over every step of the rated inputs."""
        steps = inputs.reshape(-1, *inputs.shape[2:])
        raw = self.raw_member_rewards(steps)
        std = raw.std(1, unbiased=False).clamp_min(NORM_MIN_STD)
        return torch.stack([raw.mean(1), std], 1)

    # -- serialisation ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the ensemble (weights, optimiser, config, version), as CPU
        tensors whatever the device."""
        return to_cpu({
            "config": asdict(self.config),
            "obs_dim": self.obs_dim,
            "members": self.members.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "version": self.version,
            "num_ratings_seen": self.num_ratings_seen,
            "norm_stats": self.norm_stats.clone(),
            "input_stats": None if self.input_stats is None else self.input_stats.clone(),
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore weights, optimiser and version (config and obs_dim must match; tensors on
        any device)."""
        if state.get("config", {}).get("input_kind") != self.config.input_kind or (
            state.get("obs_dim") != self.obs_dim
        ):
            raise ValueError(
                f"reward model state is for input_kind={state.get('config', {}).get('input_kind')} "
                f"obs_dim={state.get('obs_dim')}, this model is {self.config.input_kind} "
                f"obs_dim={self.obs_dim}"
            )
        self.members.load_state_dict(state["members"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        self.version = int(state.get("version", 0))
        self.num_ratings_seen = int(state.get("num_ratings_seen", 0))
        stats = state.get("norm_stats")  # absent in states saved before output_norm existed
        if stats is not None:
            stats = torch.as_tensor(stats, dtype=torch.float32)
            if stats.shape != self.norm_stats.shape or not torch.isfinite(stats).all() or (
                    stats[:, 1] <= 0).any():
                raise ValueError(f"reward model norm_stats must be finite ({len(self.members)}, 2) "
                                 f"with positive stds, got {tuple(stats.shape)}")
            self.norm_stats = stats.to(self.device)
        inputs = state.get("input_stats")  # absent in states saved before input_norm existed
        if inputs is not None and self.input_stats is not None:
            inputs = torch.as_tensor(inputs, dtype=torch.float32)
            if inputs.shape != self.input_stats.shape or not torch.isfinite(inputs).all() or (
                    inputs[1] <= 0).any():
                raise ValueError(f"reward model input_stats must be finite (2, {self.obs_dim}) with "
                                 f"positive stds, got {tuple(inputs.shape)}")
            self.input_stats = inputs.to(self.device)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any],
                        device: str | torch.device = "cpu") -> RewardEnsemble:
        """Build an ensemble on ``device`` from :meth:`state_dict` output."""
        model = cls(RewardModelConfig(**state["config"]), obs_dim=state.get("obs_dim"), device=device)
        model.load_state_dict(state)
        return model

    def to_bytes(self, with_optimizer: bool = False) -> bytes:
        """Serialise (weights only by default) for sending to other processes."""
        state = self.state_dict()
        if not with_optimizer:
            state.pop("optimizer")
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, expected_sha256: str | None = None,
                   device: str | torch.device = "cpu") -> RewardEnsemble:
        """Inverse of :meth:`to_bytes` (read on the CPU, then moved to ``device``); checks the
        SHA-256 when given."""
        if expected_sha256 is not None and hashlib.sha256(blob).hexdigest() != expected_sha256:
            raise ValueError("reward model bytes do not match their sha256 checksum")
        resolve_device(device)  # a bad device is the caller's error, not undecodable bytes
        try:
            state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
            model = cls.from_state_dict(state, device=device)
        except Exception as exc:  # torch raises many types for bad bytes / a wrong state layout
            raise ValueError(f"cannot decode reward model bytes: {type(exc).__name__}: {exc}") from exc
        if not all(torch.isfinite(p).all() for p in model.members.parameters()):
            raise ValueError("reward model weights contain NaN or inf")
        return model
