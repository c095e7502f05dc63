"""The offline training loop (ROS-free): N gradient steps of IQL or BC on a fixed dataset.

One :class:`OfflineTrainer` owns the dataset's tensors (states normalised by the dataset's mean
and std, rewards relabelled by the caller), the method (:class:`~ros2_erl_vlm.core.offline.iql.IQL`
or :class:`~ros2_erl_vlm.core.offline.bc.BC`), a seeded generator for the minibatches and the run
directory: ``train.csv`` (means of the method's diagnostics over each ``log_every`` steps, steps
per second) and ``eval.csv`` through :class:`~ros2_erl_vlm.core.metrics.MetricsLogger` (also
TensorBoard under ``tb/``), and ``checkpoint.pt`` (written every ``checkpoint_every`` steps and at
the end, atomically, with :func:`~ros2_erl_vlm.core.checkpoint.save_checkpoint`).

The checkpoint holds ``policy`` (the deployable actor and its normalisation, read by
:class:`~ros2_erl_vlm.core.rl.policy.DeployedPolicy`), ``algorithm`` (every network and
optimiser) and ``trainer`` (step, minibatch generator, torch's random state for dropout, the
unfinished logging window, CSV row counts). :meth:`OfflineTrainer.load` restores all of it, so
on the CPU a run stopped and resumed from a checkpoint continues bit for bit like one that never
stopped (on CUDA up to the GPU kernels' own nondeterminism).

Evaluation is a hook: ``evaluate(policy) -> {"success_rate": ..., ...}`` called every
``eval_every`` steps and at the end with an :class:`~ros2_erl_vlm.core.offline.policy.OfflinePolicy`
rebuilt from the checkpoint's ``policy`` entry (what is evaluated is what deploys).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ros2_erl_vlm.core.checkpoint import load_checkpoint, save_checkpoint
from ros2_erl_vlm.core.device import to_cpu
from ros2_erl_vlm.core.metrics import MetricsLogger
from ros2_erl_vlm.core.offline.bc import BC
from ros2_erl_vlm.core.offline.dataset import OfflineDataset, StateNorm
from ros2_erl_vlm.core.offline.iql import IQL, Batch, IQLConfig, as_device
from ros2_erl_vlm.core.offline.policy import OfflinePolicy

#: Methods and the algorithm each trains (``iql-sparse`` is IQL on the sparse success reward).
METHODS: dict[str, type[IQL] | type[BC]] = {"iql": IQL, "iql-sparse": IQL, "bc": BC}
CHECKPOINT_FILE = "checkpoint.pt"

EvalHook = Callable[[OfflinePolicy], dict[str, float]]
ProgressHook = Callable[[int, int, dict[str, Any]], None]


class OfflineTrainer:
    """Trains one method on one dataset (see the module docstring).

    Args:
        dataset: the validated export.
        method: ``iql``, ``iql-sparse`` or ``bc``.
        config: the settings (``config.steps``: the actor lr's cosine horizon and the default
            length of :meth:`run`).
        rewards: ``(N,)`` relabelled rewards (IQL; BC needs none).
        run_dir: where logs and the checkpoint go (None: nothing written).
        seed: seeds the initial networks, the minibatches and dropout.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
        log_every, checkpoint_every, eval_every: periods in gradient steps (0: only at the end).
        evaluate: the evaluation hook.
        tensorboard: also write TensorBoard events.
        progress: called ``(step, total, postfix)`` after each logged window.
    """

    def __init__(self, dataset: OfflineDataset, method: str, config: IQLConfig,
                 rewards: np.ndarray | None = None, *, run_dir: Path | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", log_every: int = 1000,
                 checkpoint_every: int = 10_000, eval_every: int = 0,
                 evaluate: EvalHook | None = None, tensorboard: bool = True,
                 progress: ProgressHook | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
        self.config = config.validate()
        self.method = method
        if METHODS[method] is IQL:
            if rewards is None:
                raise ValueError(f"method {method} trains on rewards: pass the relabelled rewards")
            rewards = np.asarray(rewards, np.float32)
            if rewards.shape != (len(dataset),) or not np.isfinite(rewards).all():
                raise ValueError(f"rewards must be ({len(dataset)},) and finite, got {rewards.shape}")
        for name, period in (("log_every", log_every), ("checkpoint_every", checkpoint_every),
                             ("eval_every", eval_every)):
            if period < 0:
                raise ValueError(f"{name} must be >= 0, got {period}")
        self.dataset = dataset
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.seed = int(seed)
        self.device = as_device(device)
        self.log_every, self.checkpoint_every, self.eval_every = log_every, checkpoint_every, eval_every
        self.evaluate_hook = evaluate
        self.progress = progress
        self.stop_requested = False

        self.norm = (StateNorm.from_observations(dataset.observations, config.norm_eps)
                     if config.normalize_states else StateNorm.identity(dataset.obs_dim))
        dev = self.device
        self.obs = torch.as_tensor(self.norm.apply(dataset.observations), device=dev)
        self.next_obs = torch.as_tensor(self.norm.apply(dataset.next_observations), device=dev)
        self.actions = torch.as_tensor(dataset.actions, device=dev)
        r = np.zeros(len(dataset), np.float32) if rewards is None else rewards * config.reward_scale
        self.rewards = torch.as_tensor(r, device=dev)
        self.not_done = torch.as_tensor(1.0 - dataset.terminals.astype(np.float32), device=dev)

        torch.manual_seed(self.seed)  # initial weights (built on the CPU, then moved)
        self.algo = METHODS[method](dataset.obs_dim, dataset.action_dim, config, device="cpu")
        if dev.type != "cpu":
            self.algo = self._moved(self.algo)
        self.rng = np.random.default_rng(self.seed)
        self.step = 0
        self._window: dict[str, float] = {}
        self._window_n = 0
        self._window_t = time.perf_counter()
        self.last_eval: dict[str, float] = {}
        self.last_eval_step = -1
        self.logger = MetricsLogger(self.run_dir, tensorboard=tensorboard)

    def _moved(self, algo: IQL | BC) -> IQL | BC:
        """The same initial weights on the trainer's device (optimisers rebuilt there)."""
        state = algo.state_dict()
        moved = METHODS[self.method](self.dataset.obs_dim, self.dataset.action_dim, self.config,
                                     device=self.device)
        moved.load_state_dict(state)
        return moved

    # -- training ----------------------------------------------------------------------------------
    def sample(self) -> Batch:
        """A uniform minibatch of ``batch_size`` transitions (with replacement)."""
        idx = torch.as_tensor(self.rng.integers(0, len(self.dataset), self.config.batch_size),
                              device=self.device)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                     self.not_done[idx])

    def run(self, total_steps: int | None = None) -> dict[str, Any]:
        """Train until ``total_steps`` (default ``config.steps``) or :attr:`stop_requested`;
        checkpoint and evaluate at the end; returns a summary."""
        total = self.config.steps if total_steps is None else int(total_steps)
        t0 = time.perf_counter()
        start = self.step
        self._window_t = time.perf_counter()
        while self.step < total and not self.stop_requested:
            metrics = self.algo.update(self.sample())
            self.step += 1
            for k, v in metrics.items():
                self._window[k] = self._window.get(k, 0.0) + v
            self._window_n += 1
            if self.log_every and self.step % self.log_every == 0:
                self._flush_window(total)
            if self.eval_every and self.step % self.eval_every == 0:
                self.evaluate()
            if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                self.save()
        finished = self.step >= total
        if finished and self._window_n:  # a stopped run keeps its window for the resumed one
            self._flush_window(total)
        if finished and self.last_eval_step != self.step:
            self.evaluate()
        self.save()
        return {"method": self.method, "steps": self.step, "steps_this_call": self.step - start,
                "interrupted": self.step < total, "wall_s": time.perf_counter() - t0,
                "eval": dict(self.last_eval)}

    def _flush_window(self, total: int) -> None:
        n = max(1, self._window_n)
        now = time.perf_counter()
        row = {k: v / n for k, v in self._window.items()}
        row["steps_per_s"] = self._window_n / max(now - self._window_t, 1e-9)
        self.logger.log("train", self.step, row)
        self._window, self._window_n, self._window_t = {}, 0, now
        if self.progress is not None:
            post = {k: f"{row[k]:.3g}" for k in ("actor_loss", "value_loss", "critic_loss") if k in row}
            if self.last_eval:
                post["success"] = f"{self.last_eval.get('success_rate', math.nan):.2f}"
            self.progress(self.step, total, post)

    def policy(self) -> OfflinePolicy:
        """The current actor as a deployable policy (a CPU copy, via the checkpoint's entry)."""
        return OfflinePolicy.from_state(self.policy_state(), where="trainer")

    def policy_state(self) -> dict[str, Any]:
        """The checkpoint's ``policy`` entry for the current actor."""
        c = self.config
        actor = copy.deepcopy(self.algo.actor).cpu()  # no new module: the random state is untouched
        pol = OfflinePolicy(actor, self.norm, self.method, self.step)
        return pol.to_state(c.hidden_dim, c.hidden_layers, c.actor_dropout)

    def evaluate(self) -> dict[str, float]:
        """Run the evaluation hook on the current policy and log ``eval.csv`` (no hook: nothing)."""
        self.last_eval_step = self.step
        if self.evaluate_hook is None:
            return {}
        t0 = time.perf_counter()
        result = {k: float(v) for k, v in self.evaluate_hook(self.policy()).items()}
        result["eval_s"] = time.perf_counter() - t0
        self.last_eval = result
        self.logger.log("eval", self.step, result)
        return result

    # -- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (see the module docstring); CPU tensors only."""
        trainer = {"step": self.step, "method": self.method, "seed": self.seed,
                   "rng": self.rng.bit_generator.state, "torch_rng": torch.random.get_rng_state(),
                   "window": dict(self._window), "window_n": self._window_n,
                   "last_eval": dict(self.last_eval), "last_eval_step": self.last_eval_step,
                   "log_rows": self.logger.row_counts(), "config": asdict(self.config),
                   "dataset": {"path": str(self.dataset.path), "transitions": len(self.dataset),
                               "episodes": self.dataset.num_episodes}}
        if self.device.type == "cuda":
            trainer["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return {"policy": self.policy_state(), "algorithm": to_cpu(self.algo.state_dict()),
                "trainer": trainer}

    def save(self, path: str | Path | None = None) -> Path | None:
        """Atomically write :meth:`state_dict` (default ``<run_dir>/checkpoint.pt``)."""
        if path is None:
            if self.run_dir is None:
                return None
            path = self.run_dir / CHECKPOINT_FILE
        return save_checkpoint(path, self.state_dict())

    def load(self, path: str | Path) -> None:
        """Resume from :meth:`save` output: networks, optimisers, step, generators and the logs
        (rows written after the checkpoint are dropped, so none appears twice)."""
        state = load_checkpoint(path)
        tr = state.get("trainer") if isinstance(state, dict) else None
        if not isinstance(tr, dict) or "algorithm" not in state:
            raise ValueError(f"{path} is not an offline training checkpoint")
        if tr.get("method") != self.method:
            raise ValueError(f"{path} is a {tr.get('method')} run, this one is {self.method}")
        if int(tr["dataset"]["transitions"]) != len(self.dataset):
            raise ValueError(f"{path} was trained on {tr['dataset']['transitions']} transitions "
                             f"({tr['dataset']['path']}), this dataset has {len(self.dataset)}")
        self.algo.load_state_dict(state["algorithm"])
        self.step = int(tr["step"])
        self.rng.bit_generator.state = tr["rng"]
        torch.random.set_rng_state(tr["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in tr:
            torch.cuda.set_rng_state(tr["cuda_rng"], self.device)
        self._window = {k: float(v) for k, v in tr["window"].items()}
        self._window_n = int(tr["window_n"])
        self.last_eval = {k: float(v) for k, v in tr["last_eval"].items()}
        self.last_eval_step = int(tr["last_eval_step"])
        self.logger.truncate(tr["log_rows"])

    def close(self) -> None:
        """Close the logs."""
        self.logger.close()
