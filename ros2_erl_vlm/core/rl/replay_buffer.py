"""Replay buffer held in preallocated torch tensors, with whole-buffer reward relabelling.

The buffer stores what the learned reward needs to recompute every reward after a reward-model
update: the per-step reward input (the observation after the step for ``state`` models, the
frame after the step for ``image`` models, optional).

Device: the transitions live on the buffer's ``device`` (the agent's), so a sampled batch needs no
copy on a GPU and relabelling runs where the rewards are; frames stay in CPU memory (200k frames
of 224 px are 30 GB) and the reward model moves each chunk it reads. The sampling generator is a
CPU one whatever the device: the same seed samples the same indices on a CPU and on a GPU, and its
state is a CPU tensor in checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ros2_erl_vlm.core.device import resolve_device


class ReplayBuffer:
    """Circular transition store ``(obs, action, reward, next_obs, not_done[, frame])``.

    Args:
        obs_dim: observation size.
        action_dim: action size.
        capacity: number of transitions kept (oldest overwritten).
        frame_shape: if given, a ``uint8`` frame per transition is kept for image reward models.
        seed: seeds sampling.
        device: where the transitions (not the frames) are kept and batches come out.
    """

    def __init__(self, obs_dim: int, action_dim: int, capacity: int,
                 frame_shape: tuple[int, ...] | None = None, seed: int | None = None,
                 device: str | torch.device = "cpu") -> None:
        if capacity <= 0:
            raise ValueError(f"replay capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self.device = dev = resolve_device(device)
        self.obs = torch.zeros(capacity, obs_dim, device=dev)
        self.next_obs = torch.zeros(capacity, obs_dim, device=dev)
        self.action = torch.zeros(capacity, action_dim, device=dev)
        self.reward = torch.zeros(capacity, device=dev)
        self.not_done = torch.zeros(capacity, device=dev)
        self.frames = (torch.zeros((capacity, *frame_shape), dtype=torch.uint8)
                       if frame_shape is not None else None)
        self.size = 0
        self.pos = 0
        self.generator = torch.Generator()
        self.generator.manual_seed(0 if seed is None else int(seed))

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool, frame: np.ndarray | None = None) -> None:
        """Store one transition; rejects non-finite values with ``ValueError``."""
        o = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        a = torch.as_tensor(np.asarray(action, dtype=np.float32))
        no = torch.as_tensor(np.asarray(next_obs, dtype=np.float32))
        if not (torch.isfinite(o).all() and torch.isfinite(a).all() and torch.isfinite(no).all()
                and np.isfinite(reward)):
            raise ValueError("transition contains NaN or inf; not stored")
        i = self.pos
        self.obs[i] = o
        self.action[i] = a
        self.reward[i] = float(reward)
        self.next_obs[i] = no
        self.not_done[i] = 0.0 if terminated else 1.0
        if self.frames is not None:
            if frame is None:
                raise ValueError("this buffer stores frames: pass frame=")
            self.frames[i] = torch.as_tensor(frame)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def recent_next_obs(self, n: int) -> torch.Tensor:
        """The ``next_obs`` of the ``n`` most recently stored transitions (fewer while not full)."""
        n = min(int(n), self.size)
        idx = (torch.arange(self.pos - n, self.pos) % self.capacity) if self.size == self.capacity \
            else torch.arange(self.size - n, self.size)
        return self.next_obs[idx.to(self.device)]

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """Uniform batch ``(obs, action, reward, next_obs, not_done)`` on the buffer's device."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), generator=self.generator).to(self.device)
        return (self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx],
                self.not_done[idx])

    def reward_inputs(self) -> torch.Tensor:
        """Per-transition inputs of the learned reward (frames if stored, on the CPU; else
        next_obs, on the buffer's device)."""
        if self.frames is not None:
            return self.frames[: self.size]
        return self.next_obs[: self.size]

    @torch.no_grad()
    def relabel(self, reward_fn: Callable[[torch.Tensor], torch.Tensor], batch: int = 4096) -> int:
        """Recompute every stored reward as ``reward_fn(inputs)``; returns how many.

        All or nothing: the new rewards are checked before any is written, so a model producing
        NaN/inf (``ValueError``) leaves the buffer as it was. ``reward_fn``'s output may be on any
        device (it is copied to the buffer's).
        """
        inputs = self.reward_inputs()
        new = torch.empty(self.size, dtype=self.reward.dtype, device=self.device)
        for i in range(0, self.size, batch):
            r = reward_fn(inputs[i : i + batch])
            new[i : i + len(r)] = r
        if not torch.isfinite(new).all():  # one check (one GPU sync) for the whole buffer
            raise ValueError("reward model produced NaN/inf while relabelling")
        self.reward[: self.size] = new
        return self.size

    def state_dict(self) -> dict[str, Any]:
        """The filled part of the buffer and its cursor (for checkpoints), as CPU tensors."""
        n = self.size

        def copy(t: torch.Tensor) -> torch.Tensor:
            return t[:n].to("cpu", copy=True)

        out: dict[str, Any] = {
            "capacity": self.capacity, "size": n, "pos": self.pos,
            "obs": copy(self.obs), "next_obs": copy(self.next_obs),
            "action": copy(self.action), "reward": copy(self.reward),
            "not_done": copy(self.not_done), "generator": self.generator.get_state(),
        }
        if self.frames is not None:
            out["frames"] = self.frames[:n].clone()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (same capacity and shapes; tensors on any device)."""
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"replay checkpoint capacity {state['capacity']} != buffer capacity {self.capacity}"
            )
        n = int(state["size"])
        for name in ("obs", "next_obs", "action", "reward", "not_done"):
            getattr(self, name)[:n] = state[name]
        if self.frames is not None:
            if "frames" not in state:
                raise ValueError("replay checkpoint has no frames but this buffer stores them")
            self.frames[:n] = state["frames"]
        self.size = n
        self.pos = int(state["pos"])
        self.generator.set_state(state["generator"])
