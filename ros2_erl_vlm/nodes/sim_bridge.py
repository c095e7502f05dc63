"""``sim_bridge``: a MetaWorld task behind the robot contract of the graph.

Publishes ``observation`` (erl_vlm/Observation: state, the action applied, simulator truth, the
MuJoCo state that re-renders the step; episode and step ids) after every reset and step,
``camera/image_raw`` (sensor_msgs/Image of the task camera, stamped like the observation it
shows) and, in lock-step mode, ``/clock``. Subscribes to ``action`` (erl_vlm/Action). Service
``reset`` (std_srvs/Trigger) starts a new episode.

Modes:

* ``lockstep``: the env steps when the Action for the current (episode, step) arrives; sim time
  advances by the env's control period per step (and per reset), published on ``/clock`` before
  the observation, so the graph runs on sim time as fast as it can. If no valid action arrives for
  ``action_timeout_s`` the observation is published again (lost messages, a restarted agent).
  The first episode waits until ``start.observation_subscribers`` (and, with the camera,
  ``start.image_subscribers``) are connected, at most ``start.timeout_s``: in a graph whose nodes
  start in any order, the learner and the camera capture see every step from the first.
* ``realtime``: the env steps at ``control_rate_hz`` with the newest action for the current
  episode; without a fresh one (``action_timeout_s``) it applies a zero action (hold).

Actions with the wrong size or NaN/inf, or for another (episode, step) in lock-step, are counted
and dropped; the env never sees them.

With a ``run_dir`` the bridge keeps its position (last episode id, sim time) in
``<run_dir>/sim_bridge/position.json``; started again on the same run (after a crash, or the graph
rerun to resume) it continues both, so an episode id never names two different episodes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from erl_vlm.msg import Action, Observation
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from ros2_erl_vlm.core.atomic_write import write_text_atomic
from ros2_erl_vlm.core.safety.actions import BadActionError, checked_action
from ros2_erl_vlm.core.seeds import episode_seed
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.convert import f32, sim_state_field
from ros2_erl_vlm.ros.images import rgb_to_image
from ros2_erl_vlm.ros.node_base import ErlNode, run_node

#: The bridge's run position file (under ``<run_dir>/sim_bridge/``).
POSITION_FILE = "position.json"


def _time(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class SimBridge(ErlNode):
    """The node (see module docstring)."""

    COUNTERS = ("episodes", "steps", "bad_actions", "stale_actions", "held_steps", "observations_republished")

    def __init__(self) -> None:
        super().__init__("sim_bridge")
        os.environ.setdefault("MUJOCO_GL", "egl")
        from dataclasses import replace

        from ros2_erl_vlm.envs import load_task, make_env

        p = self.p
        task = load_task(p["task"], layout=p["layout"] or None)
        if p["max_episode_steps"]:
            task = replace(task, max_episode_steps=int(p["max_episode_steps"]))
        self.camera = bool(p["camera.enabled"])
        size = int(p["camera.image_size"]) or task.image_size
        self.env = make_env(task, seed=int(p["seed"]), render=self.camera, image_size=size)
        self.close_at_exit(self.env)
        self.seed = int(p["seed"])
        self.lockstep = p["mode"] == "lockstep"
        self.dt_ns = round(float(getattr(self.env.metaworld, "dt", 0.0125)) * 1e9)
        self.action_dim = int(self.env.action_space.shape[0])
        self.pub_obs = self.create_publisher(Observation, qos.OBSERVATION, qos.OBSERVATION_QOS)
        self.pub_img = self.create_publisher(Image, qos.CAMERA_IMAGE, qos.IMAGE_QOS)
        self.pub_clock = (self.create_publisher(Clock, qos.CLOCK, qos.CLOCK_QOS)
                          if self.lockstep and p["publish_clock"] else None)
        self.create_subscription(Action, qos.ACTION, self.on_action, qos.ACTION_QOS)
        self.create_service(Trigger, qos.RESET_SERVICE, self.on_reset)
        self.sim_ns = 0
        self.episode = -1
        self._restore_run_position()
        self.step_idx = 0
        self.steps_total = 0
        self.waiting = False  # an episode is running and waits for an action
        self.last_obs: Observation | None = None
        self.last_img: Image | None = None
        self.last_progress = time.monotonic()
        self.pending_action: tuple[np.ndarray, float] | None = None
        self.started = False
        self._wait_t0 = time.monotonic()
        self._start_timer = None
        if self.lockstep and self._waiting_for_graph():
            self.get_logger().info(
                f"waiting for {self.p['start.observation_subscribers']} observation"
                + (f" and {self.p['start.image_subscribers']} image" if self.camera else "")
                + f" subscribers before the first episode (at most {self.p['start.timeout_s']:g} s)")
            self._start_timer = self.wall_timer(0.1, self.try_start)
        else:
            self._start()
        if self.lockstep:
            self.wall_timer(min(0.5, float(p["action_timeout_s"]) / 2), self.watchdog)
        else:
            self.wall_timer(1.0 / float(p["control_rate_hz"]), self.realtime_tick)

    # -- starting -------------------------------------------------------------------------------
    def _restore_run_position(self) -> None:
        """Continue a run's episode ids and sim time after a restart (a crashed bridge, or the
        graph started again on the same ``run_dir``): an episode id must never name two different
        episodes, or a re-sent rating request could be answered with another episode's frames.

        Raises:
            ValueError: the position file is unreadable (delete it to number episodes from 0).
        """
        path = self._position_path()
        if path is None or not path.exists():
            return
        try:
            data = json.loads(path.read_text())
            episode, sim_ns = int(data["episode"]), int(data["sim_ns"])
            if episode < 0 or sim_ns < 0:
                raise ValueError("negative episode or sim time")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: unreadable run position ({exc}); delete it to start the run's "
                             f"episode numbering and sim time from 0") from exc
        self.episode = episode  # the interrupted episode is abandoned; the next one is episode + 1
        # Past anything the interrupted episode may have published: the clock never goes back.
        self.sim_ns = sim_ns + (self.env.max_episode_steps + 1) * self.dt_ns
        self.get_logger().info(
            f"continuing the run: next episode {episode + 1}, sim time {self.sim_ns / 1e9:.3f} s")

    def _position_path(self) -> Path | None:
        return None if self.node_dir is None else self.node_dir / POSITION_FILE

    def _save_run_position(self) -> None:
        path = self._position_path()
        if path is None:
            return
        write_text_atomic(path, json.dumps({"episode": self.episode, "sim_ns": self.sim_ns}))

    def _waiting_for_graph(self) -> bool:
        """Lock-step start condition not met yet (too few subscribers connected)."""
        want_obs = int(self.p["start.observation_subscribers"])
        want_img = int(self.p["start.image_subscribers"]) if self.camera else 0
        return (self.pub_obs.get_subscription_count() < want_obs
                or self.pub_img.get_subscription_count() < want_img)

    def try_start(self) -> None:
        """Timer while waiting: start the first episode once the graph is connected (or timed out)."""
        waited = time.monotonic() - self._wait_t0
        if self._waiting_for_graph():
            if waited < float(self.p["start.timeout_s"]):
                return
            self.get_logger().warning(
                f"starting after {waited:.0f} s with {self.pub_obs.get_subscription_count()} observation "
                f"and {self.pub_img.get_subscription_count()} image subscribers (wanted "
                f"{self.p['start.observation_subscribers']} and {self.p['start.image_subscribers']})")
        self._start()

    def _start(self) -> None:
        if self._start_timer is not None:
            self.destroy_timer(self._start_timer)
            self._start_timer = None
        self.started = True
        self.reset_episode()

    # -- publishing -----------------------------------------------------------------------------
    def _publish(self, state: np.ndarray, info: dict[str, Any], action: np.ndarray | None,
                 truncated: bool) -> None:
        stamp = _time(self.sim_ns)
        if self.pub_clock is not None:
            self.pub_clock.publish(Clock(clock=stamp))
        msg = Observation(episode=self.episode, step=self.step_idx, state=state.astype(np.float32),
                          action_taken=(action if action is not None else np.zeros(0, np.float32)),
                          terminated=False, truncated=bool(truncated),
                          truncation_reason="time_limit" if truncated else "", has_truth=True,
                          true_reward=float(info.get("true_reward", math.nan)),
                          progress=float(info.get("progress", math.nan)),
                          success=bool(info.get("success", False)),
                          sim_state=sim_state_field(info.get("sim_state")))
        msg.header.stamp = stamp
        msg.header.frame_id = "world"
        self.pub_obs.publish(msg)
        self.last_obs = msg
        self.last_img = None
        if self.camera:  # rendered after the observation went out: overlaps with the agent's turn
            img = rgb_to_image(self.env.render(), stamp, str(self.p["camera.frame_id"]))
            self.pub_img.publish(img)
            self.last_img = img
        self.last_progress = time.monotonic()

    def reset_episode(self) -> int:
        """Start the next episode (seeded as the in-process runner: ``episode_seed``)."""
        self.episode += 1
        self.step_idx = 0
        if self.episode > 0:
            self.sim_ns += self.dt_ns
        obs, info = self.env.reset(seed=episode_seed(self.seed, self.episode))
        self._save_run_position()
        self.waiting = True
        self.pending_action = None
        self.counters["episodes"] += 1
        self._publish(obs, info, None, False)
        return self.episode

    def apply(self, action: np.ndarray) -> None:
        """Step the env with a validated action and publish the result."""
        a = action  # checked and clipped to [-1, 1] by checked_action
        obs, _r, terminated, truncated, info = self.env.step(a)
        self.sim_ns += self.dt_ns
        self.step_idx += 1
        self.steps_total += 1
        self.counters["steps"] += 1
        done = bool(terminated or truncated)
        self._publish(obs, info, a, done)
        if done:
            self.waiting = False
            if self.p["auto_reset"]:
                self.reset_episode()

    # -- callbacks ------------------------------------------------------------------------------
    def _valid(self, msg: Action) -> np.ndarray | None:
        try:
            return checked_action(f32(msg.action), self.action_dim)
        except BadActionError as exc:
            self.count("bad_actions", f"dropped {exc}")
            return None

    def on_action(self, msg: Action) -> None:
        """Lock-step: step on the action for the current step; realtime: keep the newest."""
        a = self._valid(msg)
        if a is None:
            return
        if int(msg.episode) != self.episode or not self.waiting:
            self.count("stale_actions")
            return
        if self.lockstep:
            if int(msg.step) != self.step_idx:
                self.count("stale_actions")
                return
            self.apply(a)
        else:
            self.pending_action = (a, time.monotonic())

    def watchdog(self) -> None:
        """Lock-step: publish the current observation again when the agent went quiet."""
        if (self.waiting and self.last_obs is not None
                and time.monotonic() - self.last_progress > float(self.p["action_timeout_s"])):
            self.pub_obs.publish(self.last_obs)
            if self.last_img is not None:
                self.pub_img.publish(self.last_img)
            self.last_progress = time.monotonic()
            self.count("observations_republished")

    def realtime_tick(self) -> None:
        """Realtime: one env step with the newest fresh action, or a zero action."""
        if not self.waiting:
            return
        a = np.zeros(self.action_dim, np.float32)
        if self.pending_action is not None:
            act, t = self.pending_action
            if time.monotonic() - t <= float(self.p["action_timeout_s"]):
                a = act
            else:
                self.count("held_steps")
        else:
            self.count("held_steps")
        self.sim_ns = time.time_ns()
        self.apply(a)

    def on_reset(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        """Service: abandon the current episode and start the next one (or the first one now)."""
        if not self.started:
            self._start()
            ep = self.episode
        else:
            ep = self.reset_episode()
        resp.success, resp.message = True, f"episode {ep}"
        return resp

    def status(self) -> dict[str, Any]:
        """Episode and step counters, and the task, layout and seed it runs (what a run report
        needs to re-render rated states when the params file, not an argument, set them)."""
        return {"episode": self.episode, "step": self.step_idx, "steps_total": self.steps_total,
                "mode": self.p["mode"], "started": self.started, "task": self.p["task"],
                "layout": self.p["layout"], "seed": int(self.p["seed"])}


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``sim_bridge`` executable."""
    return run_node(SimBridge, args)


if __name__ == "__main__":
    sys.exit(main())
