"""``deploy_agent``: runs a trained policy with no learning, in simulation or on an arm.

Loads the SAC actor of a training run's checkpoint (``checkpoint``: ``<run_dir>/sac_agent/
checkpoint.pt`` of the graph, or the in-process trainer's ``<run_dir>/checkpoint.pt``) and answers
every observation (``observation``) with its deterministic action (``action``, for the same episode
and step). Nothing is stored or trained; the robot side (sim_bridge or arm_bridge) applies its
own safety as in training. Each episode is logged to ``<run_dir>/deploy_agent/deploy.csv``
(length, and in simulation true return and success); after ``episodes`` episodes it writes
``summary.json`` and exits 0, which ends the graph. The policy must read the state the robot side
gives: a policy trained on MetaWorld's 39-D state is refused on an arm, with the reason.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
from erl_vlm.msg import Action, Observation

from ros2_erl_vlm.core.atomic_write import write_text_atomic
from ros2_erl_vlm.core.checkpoint import CheckpointError
from ros2_erl_vlm.core.metrics import MetricsLogger
from ros2_erl_vlm.core.rl.policy import DeployedPolicy
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.convert import read_observation
from ros2_erl_vlm.ros.node_base import ErlNode, run_node
from ros2_erl_vlm.ros.node_params import observation_dim
from ros2_erl_vlm.ros.params import ParamError


class DeployAgent(ErlNode):
    """The node (see module docstring)."""

    COUNTERS = ("actions", "bad_observations", "episodes")

    def __init__(self) -> None:
        super().__init__("deploy_agent")
        p = self.p
        self.dir = self.require_run_dir()
        if not p["checkpoint"]:
            raise ParamError("parameter 'checkpoint': deploy_agent needs the checkpoint of a training "
                             "run (<run_dir>/sac_agent/checkpoint.pt)")
        try:
            self.policy = DeployedPolicy(p["checkpoint"])
        except CheckpointError as exc:
            raise ParamError(f"parameter 'checkpoint': {exc}") from exc
        where = f"the arm config {p['arm_config']}" if p["arm_config"] else "the simulator (MetaWorld)"
        self.policy.check_observation_dim(observation_dim(p), where)
        self.logger = MetricsLogger(self.dir, tensorboard=False)
        self.episodes_wanted = int(p["episodes"])
        self.rows: list[dict[str, Any]] = []
        self.current: tuple[int, int, float, bool] | None = None  # episode, length, true return, success
        self.last: tuple[int, int, np.ndarray] | None = None
        self.pub_action = self.create_publisher(Action, qos.ACTION, qos.ACTION_QOS)
        self.create_subscription(Observation, qos.OBSERVATION, self.on_observation, qos.OBSERVATION_QOS)
        self.get_logger().info(f"deploying {self.policy.path} ({self.policy.trained_steps} training "
                               f"steps), no learning, {self.episodes_wanted or 'unlimited'} episodes")

    def on_observation(self, msg: Observation) -> None:
        """Answer with the policy's action; count the episode when it ends."""
        if self.done:
            return
        try:
            o = read_observation(msg)
            self.policy.check_observation_dim(o.state.size, "this observation")
        except ValueError as exc:
            self.count("bad_observations", f"dropped an observation: {exc}")
            return
        if self.current is None or self.current[0] != o.episode:
            self.current = (o.episode, 0, 0.0, False)
        ep, length, ret, success = self.current
        if o.step > length:  # a new step of the episode (re-sent observations are not counted)
            reward = o.truth.reward if o.truth is not None else math.nan
            self.current = (ep, o.step, ret + reward, success or bool(o.truth and o.truth.success))
        if o.done:
            self._episode_end(o.truncated, msg.truncation_reason)
            return
        if self.last is not None and self.last[:2] == (o.episode, o.step):
            action = self.last[2]  # the robot asks again: same answer
        else:
            action = self.policy.act(o.state)
            self.last = (o.episode, o.step, action)
            self.counters["actions"] += 1
        out = Action(episode=o.episode, step=o.step, action=action.astype(np.float32))
        out.header.stamp = msg.header.stamp
        self.pub_action.publish(out)

    def _episode_end(self, truncated: bool, reason: str) -> None:
        assert self.current is not None
        ep, length, ret, success = self.current
        if self.rows and self.rows[-1]["episode"] == ep:
            return
        row = {"episode": ep, "length": length, "true_return": ret, "success": float(success),
               "truncated": float(truncated), "reason": reason}
        self.rows.append(row)
        self.counters["episodes"] += 1
        self.logger.log("deploy", len(self.rows), {k: v for k, v in row.items() if k != "reason"})
        self.get_logger().info(f"episode {ep}: {length} steps" + (
            f", return {ret:.1f}, success {bool(success)}" if math.isfinite(ret) else "")
            + (f", ended by {reason}" if reason and reason != "time_limit" else ""))
        if self.episodes_wanted and len(self.rows) >= self.episodes_wanted:
            self.complete()

    def complete(self) -> None:
        """Write the summary and stop (exit 0)."""
        succ = [r["success"] for r in self.rows]
        summary = {"checkpoint": str(self.policy.path), "episodes": len(self.rows),
                   "success_rate": float(np.mean(succ)) if succ else math.nan, "rows": self.rows}
        write_text_atomic(self.dir / "summary.json", json.dumps(summary, indent=2))
        self.get_logger().info(f"done: {len(self.rows)} episodes, success rate "
                               f"{summary['success_rate']:.2f}")
        self.finish(0)

    def status(self) -> dict[str, Any]:
        """Episodes so far."""
        return {"episodes": len(self.rows), "checkpoint": str(self.policy.path)}

    def close(self) -> None:
        """Close the log."""
        super().close()
        self.logger.close()


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``deploy_agent`` executable."""
    return run_node(DeployAgent, args)


if __name__ == "__main__":
    sys.exit(main())
