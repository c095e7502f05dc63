"""One MetaWorld v3 task with the paper's fixed task camera, as a Gymnasium environment.

The split follows dm_control: MetaWorld owns the physics and the reward (``self.metaworld``), the
:class:`~ros2_erl_vlm.envs.tasks.TaskSpec` owns the task's words, camera and oracle thresholds,
and :class:`MetaWorldTaskEnv` is the Gymnasium shell (episode bookkeeping, action checks, frames).
"""

from __future__ import annotations

import atexit
import contextlib
import math
import weakref
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ros2_erl_vlm.core.rating.rater import SimTruth
from ros2_erl_vlm.envs.tasks import (
    GRASP_LIFT_PROGRESS,
    METAWORLD_MAX_PATH_LENGTH,
    PROGRESS_DRAWER_OPENING,
    PROGRESS_GRASP_LIFT,
    LayoutSpec,
    TaskSpec,
    load_task,
)

#: MetaWorld's dense rewards lie in [0, 10]; progress is reward / 10, clipped to [0, 1].
MAX_DENSE_REWARD = 10.0
OBS_DIM = 39
ACTION_DIM = 4
#: A reset that draws MetaWorld's random vector this often never ends (a layout pinned object and
#: goal to positions MetaWorld rejects, e.g. closer than its 0.15 m minimum).
_MAX_RESET_DRAWS = 1000

#: What :meth:`MetaWorldTaskEnv.sim_state` holds, in order (``mujoco.mjtState`` members).
SIM_STATE_PARTS = ("qpos", "qvel", "act", "mocap_pos", "mocap_quat")

_LIVE_ENVS: weakref.WeakSet[MetaWorldTaskEnv] = weakref.WeakSet()
_ATEXIT_REGISTERED = False


_SAFE_RENDERER: type | None = None


def _safe_renderer_class() -> type:
    """``mujoco.Renderer`` whose close (and ``__del__``) also works on an instance whose
    construction was interrupted (e.g. Ctrl-C while the GL context was being made), instead of
    printing an ``AttributeError`` traceback at exit. Built on first use: mujoco is imported
    lazily, after ``MUJOCO_GL`` is settled."""
    global _SAFE_RENDERER
    if _SAFE_RENDERER is None:
        import mujoco

        class SafeRenderer(mujoco.Renderer):
            def close(self) -> None:
                for name in ("_gl_context", "_mjr_context"):
                    if not hasattr(self, name):
                        setattr(self, name, None)
                super().close()

        _SAFE_RENDERER = SafeRenderer
    return _SAFE_RENDERER


_SIM_STATE_SPEC: int | None = None


def _sim_state_spec() -> int:
    """The ``mujoco.mjtState`` bit mask of :data:`SIM_STATE_PARTS` (computed once)."""
    global _SIM_STATE_SPEC
    if _SIM_STATE_SPEC is None:
        import mujoco

        spec = 0
        for part in SIM_STATE_PARTS:
            spec |= int(getattr(mujoco.mjtState, f"mjSTATE_{part.upper()}"))
        _SIM_STATE_SPEC = spec
    return _SIM_STATE_SPEC


def _close_live_renderers() -> None:
    # Runs before mujoco's EGL atexit hook (registered earlier, so run later): freeing a GL
    # context after eglTerminate raises noisy errors from Renderer.__del__.
    for env in list(_LIVE_ENVS):
        env._free_renderer()


class MetaWorldTaskEnv(gym.Env[np.ndarray, np.ndarray]):
    """A MetaWorld v3 task (Sawyer arm, mocap end-effector control) with a fixed task camera.

    The task's selected layout (:attr:`TaskSpec.layout`) says where things start. ``stock``:
    object and goal positions are randomised at every reset (MetaWorld's ``_freeze_rand_vec`` is
    off) from the env's own seeded generator, so the same seed gives the same initial state, and
    the goal position is observable. ``paper`` (the paper's tasks): the reference code's fixed
    object/goal, hand next to the object, goal hidden (zeros in the observation), as in the
    paper's runs. See ``sim/README.md``.

    ## Action Space
    ``Box(-1, 1, (4,), float32)``: end-effector position delta (x, y, z; scaled by 1/100 m) and
    gripper effort (-1 open, +1 close). Actions are clipped to [-1, 1]; NaN or inf raises
    ``ValueError`` (nothing non-finite reaches MuJoCo).

    ## Observation Space
    ``Box((39,), float32)``: hand position (3), gripper opening (1), up to two objects'
    position + quaternion (14, zero-padded), the same 18 values from the previous step, and the
    goal position (3; zeros when the layout hides the goal). Bounds are MetaWorld's. The first
    observation of an episode shows the new episode's state in both halves (MetaWorld v3 moves
    e.g. the drawer body without updating the derived positions; this env runs ``mj_forward``
    after MetaWorld's reset and rebuilds the observation).

    ## Rewards
    MetaWorld's dense "v2" reward in [0, 10] (the task's shaped progress; 10 at success for most
    tasks). ERL-VLM does not train on it: it is for evaluation and for the oracle rater.

    ## Info
    ``success`` (bool, MetaWorld's success flag, or ``obj_to_target <= success_radius`` when the
    layout sets one), ``true_reward`` (float, the dense reward), ``progress`` (float in [0, 1]:
    dense reward / 10, or the grasp-and-lift stage for ``oracle.progress: grasp_lift``),
    ``episode_step`` (int, steps taken), ``sim_state`` (float64 array, :meth:`sim_state`: the
    MuJoCo state that, set after a reset on the same seed, renders this step's frame exactly).

    ## Episode End
    Never terminates (as in the paper). Truncates after ``max_episode_steps`` steps (500, which
    is also MetaWorld's hard limit); stepping a finished episode raises ``RuntimeError`` until
    ``reset()``.

    ## Rendering
    ``render_mode="rgb_array"``: ``render()`` returns the task camera's ``(S, S, 3)`` uint8 RGB
    frame, upright, with ``S = image_size``. One ``mujoco.Renderer`` per env, created with the env
    (again after ``close()`` if rendered), shadows and multisampling off for speed; a blank
    (single-colour) frame raises ``RuntimeError``. ``step()`` never renders.

    ## Arguments
    - ``task``: task name (a ``sim/tasks/<name>.yaml`` or any MetaWorld v3 name) or a
      :class:`TaskSpec`.
    - ``render_mode``: ``"rgb_array"`` or ``None`` (no rendering).
    - ``image_size``: frame side in pixels; default the task's (224).
    - ``seed``: seeds the first episode (``reset(seed=...)`` reseeds).
    - ``layout``: the task's layout to use (``None``: a name's default layout, a spec's own).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}  # noqa: RUF012

    def __init__(
        self,
        task: str | TaskSpec,
        render_mode: str | None = "rgb_array",
        image_size: int | None = None,
        seed: int | None = None,
        layout: str | None = None,
    ) -> None:
        if isinstance(task, str):
            task = load_task(task, layout=layout)
        elif layout is not None:
            task = task.with_layout(layout)
        self.task: TaskSpec = task
        self.layout: LayoutSpec = task.layout_spec
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        self.render_mode = render_mode
        size = self.task.image_size if image_size is None else image_size
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= size <= 2048:
            raise ValueError(f"image_size must be an integer in [16, 2048], got {size!r}")
        self.image_size = int(size)
        if not 1 <= self.task.max_episode_steps <= METAWORLD_MAX_PATH_LENGTH:
            raise ValueError(
                f"max_episode_steps must be in [1, {METAWORLD_MAX_PATH_LENGTH}] "
                f"(MetaWorld's limit), got {self.task.max_episode_steps}"
            )
        self.max_episode_steps = self.task.max_episode_steps

        self.metaworld = _make_metaworld(self.task.metaworld_env, self.layout,
                                         f"task {self.task.name!r}, layout {self.task.layout!r}")
        self._apply_appearance()

        mw_space = self.metaworld.sawyer_observation_space
        self._obs_low = np.asarray(mw_space.low, dtype=np.float64)
        self._obs_high = np.asarray(mw_space.high, dtype=np.float64)
        self.observation_space = spaces.Box(
            self._obs_low.astype(np.float32), self._obs_high.astype(np.float32), dtype=np.float32
        )
        self.action_space = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)

        self._renderer: Any = None
        self._camera: Any = None
        self._sim_state_size: int | None = None
        self._elapsed = 0
        self._needs_reset = True
        self._truth = SimTruth(reward=0.0, success=False, progress=0.0)
        self._obj_init_height = 0.0
        self._handle_closed_y = 0.0
        if seed is not None:
            self._seed(seed)
        if self.render_mode == "rgb_array":
            # The GL context is made here, not at the first render(): a Ctrl-C that lands while it
            # is being built then interrupts construction, not a running episode (noisy at exit).
            self._make_renderer()

    # ---------------------------------------------------------------- gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode (stock layout: newly randomised object/goal positions)."""
        super().reset(seed=seed)
        if seed is not None:
            self._seed(seed)
        self.metaworld._erl_reset_draws = 0
        self.metaworld.reset()
        obs = self._first_observation()
        self._check_layout()
        self._obj_init_height = float(obs[6])
        self._handle_closed_y = float(obs[5])  # drawer tasks: the drawer starts closed
        self._elapsed = 0
        self._needs_reset = False
        # Truth of the initial state (the reward terms that use the action see a zero action).
        reward, info = self.metaworld.evaluate_state(obs, np.zeros(ACTION_DIM))
        self._truth = self._truth_of(reward, info)
        return self._obs(obs), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one action (clipped to [-1, 1]) for MetaWorld's 5 physics substeps."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains NaN or inf: {a.tolist()}")
        if self._needs_reset:
            if self._elapsed >= self.max_episode_steps:
                raise RuntimeError(
                    f"episode is over (truncated after {self._elapsed} steps): call reset() "
                    "before stepping again"
                )
            raise RuntimeError("call reset() before step()")
        a = np.clip(a, -1.0, 1.0)
        obs, reward, _, _, info = self.metaworld.step(a)
        self._elapsed += 1
        self._truth = self._truth_of(reward, info)
        truncated = self._elapsed >= self.max_episode_steps
        if truncated:
            self._needs_reset = True
        return self._obs(obs), float(self._truth.reward), False, truncated, self._info()

    def render(self) -> np.ndarray | None:
        """The task camera's current frame: ``(S, S, 3)`` uint8 RGB, upright."""
        if self.render_mode is None:
            gym.logger.warn(
                "render() called with render_mode=None; create the env with "
                "render_mode='rgb_array' to get frames"
            )
            return None
        if self._renderer is None:
            self._make_renderer()
        self._renderer.update_scene(self.metaworld.data, self._camera)
        frame = self._renderer.render()
        # A software-GL failure (lost context, freed buffers) shows up as a single-colour frame.
        if np.all(frame == frame[0, 0]):
            raise RuntimeError(
                f"rendered a blank frame (all pixels {frame[0, 0].tolist()}) for task "
                f"{self.task.name!r}: the GL context is broken (check MUJOCO_GL=egl and that no "
                "other renderer in this process was freed while this one was in use)"
            )
        return frame

    def close(self) -> None:
        """Free the renderer and MetaWorld's resources. Safe to call twice."""
        self._free_renderer()
        if getattr(self, "metaworld", None) is not None:
            self.metaworld.close()

    # ---------------------------------------------------------------- extras

    def truth(self) -> SimTruth:
        """Simulator truth for the current state: dense reward, success flag, progress."""
        return self._truth

    def sim_state(self) -> np.ndarray:
        """The MuJoCo state now, as float64 values in ``mujoco.mj_getState`` order: joint
        positions (``qpos``), velocities (``qvel``), actuator activations (none in MetaWorld) and
        the mocap body's position and quaternion (:data:`SIM_STATE_PARTS`): 27 values for
        door/drawer tasks, 38 for tasks with a free object. With :meth:`set_sim_state` after a
        ``reset`` on the episode's seed (which places what the state does not hold: the goal,
        bodies a reset moves) it renders exactly the frame of the step it was taken at."""
        import mujoco

        mw = getattr(self.metaworld, "unwrapped", self.metaworld)
        out = np.empty(self.sim_state_size, dtype=np.float64)
        mujoco.mj_getState(mw.model, mw.data, out, _sim_state_spec())
        return out

    @property
    def sim_state_size(self) -> int:
        """Values in :meth:`sim_state` for this task."""
        if self._sim_state_size is None:
            import mujoco

            mw = getattr(self.metaworld, "unwrapped", self.metaworld)
            self._sim_state_size = int(mujoco.mj_stateSize(mw.model, _sim_state_spec()))
        return self._sim_state_size

    def set_sim_state(self, state: np.ndarray) -> None:
        """Put the simulator in ``state`` (:meth:`sim_state` output) and recompute what a render
        reads from it (``mj_forward``, as MetaWorld's ``step`` ends). For re-rendering a recorded
        step: call ``reset(seed=...)`` with the episode's seed first. The episode's bookkeeping
        (step count, truth) is not changed.

        Raises:
            ValueError: ``state`` is not a flat array of :attr:`sim_state_size` finite values.
        """
        import mujoco

        s = np.asarray(state, dtype=np.float64)
        size = self.sim_state_size
        if s.shape != (size,):
            raise ValueError(f"task {self.task.name!r}: a MuJoCo state has {size} values "
                             f"({', '.join(SIM_STATE_PARTS)}), got shape {s.shape}")
        if not np.all(np.isfinite(s)):
            raise ValueError(f"task {self.task.name!r}: the MuJoCo state has NaN or inf values")
        mw = getattr(self.metaworld, "unwrapped", self.metaworld)
        mujoco.mj_setState(mw.model, mw.data, np.ascontiguousarray(s), _sim_state_spec())
        mujoco.mj_forward(mw.model, mw.data)

    @property
    def episode_step(self) -> int:
        """Steps taken in the current episode."""
        return self._elapsed

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``(N, 2)`` as (column, row), row 0 at the top, of world points
        ``(N, 3)`` in the task camera's frame (pinhole model of MuJoCo's free camera)."""
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        cam = self.task.camera
        az, el = math.radians(cam.azimuth), math.radians(cam.elevation)
        forward = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        up = np.array([-math.sin(el) * math.cos(az), -math.sin(el) * math.sin(az), math.cos(el)])
        right = np.cross(forward, up)
        eye = np.asarray(cam.lookat) - cam.distance * forward
        d = p - eye
        depth = d @ forward
        if np.any(depth <= 0):
            raise ValueError("a point lies behind the camera")
        f = 0.5 * self.image_size / math.tan(math.radians(cam.fovy) / 2)
        col = 0.5 * self.image_size + f * (d @ right) / depth - 0.5
        row = 0.5 * self.image_size - f * (d @ up) / depth - 0.5
        return np.stack([col, row], axis=1)

    # ---------------------------------------------------------------- internals

    def _seed(self, seed: int) -> None:
        self.metaworld.seed(int(seed))
        self.action_space.seed(int(seed))

    def _first_observation(self) -> np.ndarray:
        """The reset's observation computed after ``mj_forward``, both halves the new state.

        MetaWorld v3's ``reset_model`` may move bodies (drawer-open: ``model.body("drawer").pos``)
        after its last physics step, so ``data``'s derived positions, and the observation built
        from them, show the previous placement (MetaWorld's ``reset`` runs ``reset_model`` twice:
        the drawer is seen where the first run put it). ``mj_forward`` recomputes them from the
        new model/``qpos``; MetaWorld's frame stacking is reset to the same values. Physics stays
        bit-for-bit what it was without this: ``mj_forward`` also rewrites the solver's warm start
        (``qacc_warmstart``), which is restored, and the target sites, which MetaWorld places by
        hand (as its ``step`` does after simulating), are placed again.
        """
        import mujoco

        mw = getattr(self.metaworld, "unwrapped", self.metaworld)
        warmstart = mw.data.qacc_warmstart.copy()
        mujoco.mj_forward(mw.model, mw.data)
        mw.data.qacc_warmstart[:] = warmstart
        for site in mw._target_site_config:
            mw._set_pos_site(*site)
        current = mw._get_curr_obs_combined_no_goal()
        mw._prev_obs = current.copy()
        goal = np.zeros(3) if mw._partially_observable else mw._get_pos_goal()
        return np.hstack((current, current, goal)).astype(np.float64)

    def _check_layout(self) -> None:
        """Fail loudly if MetaWorld did not put object/goal where the layout pins them (a layout
        written for an environment whose reset uses its random vector differently). The object's
        height is not compared: several v3 envs take it from the scene, not the random vector."""
        lay, mw = self.layout, self.metaworld
        checks = (("obj_init_pos", lay.obj_init_pos, getattr(mw, "obj_init_pos", None), 2),
                  ("goal_pos", lay.goal_pos, getattr(mw, "_target_pos", None), 3))
        for what, want, got, dims in checks:
            if want is not None and (got is None or not np.allclose(
                    np.asarray(got)[:dims], want[:dims], atol=1e-6)):
                raise RuntimeError(
                    f"task {self.task.name!r}, layout {self.task.layout!r}: {what} is {want} but "
                    f"MetaWorld's {self.task.metaworld_env} reset placed it at "
                    f"{None if got is None else np.asarray(got).tolist()}"
                )

    def _truth_of(self, reward: float, info: dict[str, Any]) -> SimTruth:
        r = float(reward)
        success = bool(info.get("success", False))
        radius = self.layout.success_radius
        if radius is not None:
            if "obj_to_target" not in info:
                raise RuntimeError(f"task {self.task.name!r}: layout {self.task.layout!r} sets "
                                   "success_radius but MetaWorld reports no obj_to_target")
            success = float(info["obj_to_target"]) <= radius
        if self.task.oracle.progress == PROGRESS_GRASP_LIFT:
            progress = 1.0 if success else GRASP_LIFT_PROGRESS if self.grasped_and_lifted() else 0.0
        elif self.task.oracle.progress == PROGRESS_DRAWER_OPENING:
            progress = self.drawer_opening()
        else:
            progress = min(max(r / MAX_DENSE_REWARD, 0.0), 1.0)
        return SimTruth(reward=r, success=success, progress=progress)

    def drawer_opening(self) -> float:
        """How far the drawer is open, as a fraction of its full travel (0: closed, 1: fully
        open), from the handle's position: what a camera sees of a drawer, unlike the dense reward,
        which already pays for a gripper on a closed drawer's handle."""
        mw = getattr(self.metaworld, "unwrapped", self.metaworld)
        travel = float(mw.maxDist)  # MetaWorld's drawer: 20 cm, pulled towards -y
        handle_y = float(mw._get_pos_objects()[1])
        return min(max((self._handle_closed_y - handle_y) / travel, 0.0), 1.0)

    def grasped_and_lifted(self) -> bool:
        """Whether the main object is grasped and lifted, from the sim state (see
        :class:`~ros2_erl_vlm.envs.tasks.GraspLiftSpec`; the task's ``oracle.grasp_lift`` or its
        defaults): its centre at least ``min_lift`` above its height at reset, and both gripper
        pads touching it or the gripper centre within ``max_gripper_distance`` of it."""
        from ros2_erl_vlm.envs.tasks import GraspLiftSpec

        spec = self.task.oracle.grasp_lift or GraspLiftSpec()
        mw = getattr(self.metaworld, "unwrapped", self.metaworld)
        obj = np.asarray(mw._get_pos_objects()[:3], dtype=np.float64)
        if obj[2] - self._obj_init_height < spec.min_lift:
            return False
        near = float(np.linalg.norm(obj - mw.tcp_center)) <= spec.max_gripper_distance
        return near or bool(mw.touching_main_object)

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        return np.clip(obs, self._obs_low, self._obs_high).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        t = self._truth
        return {
            "success": t.success,
            "true_reward": t.reward,
            "progress": t.progress,
            "episode_step": self._elapsed,
            "sim_state": self.sim_state(),
        }

    def _apply_appearance(self) -> None:
        import mujoco

        model = self.metaworld.model
        for site in self.task.appearance.hide_sites:
            sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
            if sid < 0:
                raise ValueError(f"task {self.task.name!r}: appearance.hide_sites: no site {site!r}")
            model.site_rgba[sid, 3] = 0.0
        for geom, rgba in self.task.appearance.geom_rgba:
            gid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, geom)
            if gid < 0:
                raise ValueError(f"task {self.task.name!r}: appearance.geom_rgba: no geom {geom!r}")
            model.geom_rgba[gid] = rgba
            model.geom_matid[gid] = -1

    def _make_renderer(self) -> None:
        import mujoco

        global _ATEXIT_REGISTERED
        model = self.metaworld.model
        cam = self.task.camera
        # Offscreen buffer must hold the frame; multisampling off (~5x faster in software GL).
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), self.image_size)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), self.image_size)
        model.vis.quality.offsamples = 0
        model.vis.global_.fovy = cam.fovy  # the free camera's field of view
        self._renderer = _safe_renderer_class()(model, self.image_size, self.image_size)
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        camera.lookat[:] = cam.lookat
        camera.distance = cam.distance
        camera.azimuth = cam.azimuth
        camera.elevation = cam.elevation
        self._camera = camera
        _LIVE_ENVS.add(self)
        if not _ATEXIT_REGISTERED:
            atexit.register(_close_live_renderers)
            _ATEXIT_REGISTERED = True

    def _free_renderer(self) -> None:
        renderer, self._renderer = getattr(self, "_renderer", None), None
        if renderer is not None:
            renderer.close()
        _LIVE_ENVS.discard(self)

    def __del__(self) -> None:
        self._free_renderer()


def _make_metaworld(env_name: str, layout: LayoutSpec | None = None, what: str = "") -> Any:
    """A MetaWorld v3 env set up for ``layout`` (default: stock), re-randomising whatever the
    layout leaves free at every reset from its own (seedable) generator, like the paper's
    ``_freeze_rand_vec = False`` setting.

    MetaWorld 3.1.1's mechanisms used: ``_partially_observable`` (the class default is ``True``,
    goal hidden; the stock layout makes it observable), ``hand_init_pos`` (read by
    ``_reset_hand``), and ``_random_reset_space``, the box the reset's random vector (object
    position, then goal position for most tasks) is drawn from: a pinned position is a
    zero-width interval, so the other values are drawn as before.
    """
    from gymnasium.spaces import Box
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    layout = layout or LayoutSpec()
    try:
        cls = ALL_V3_ENVIRONMENTS[env_name]
    except KeyError:
        raise ValueError(
            f"unknown MetaWorld v3 environment {env_name!r}; known: "
            f"{', '.join(sorted(ALL_V3_ENVIRONMENTS))}"
        ) from None
    env = cls(render_mode=None)
    # Explicit either way: MetaWorld's own default is partially observable (goal zeroed).
    env._partially_observable = not layout.goal_observable
    # The cached observation space was built for the class default.
    with contextlib.suppress(AttributeError):
        del env.sawyer_observation_space
    env._freeze_rand_vec = False  # new object/goal positions every reset ...
    env.seeded_rand_vec = True  # ... drawn from env.np_random, not the global numpy RNG
    env._set_task_called = True
    env.max_path_length = METAWORLD_MAX_PATH_LENGTH
    where = what or f"MetaWorld {env_name}"
    if layout.hand_init_pos is not None:
        hand = np.asarray(layout.hand_init_pos, dtype=np.float64)
        env.hand_init_pos = hand
        env.init_config["hand_init_pos"] = hand
    if layout.pins_positions:
        space = env._random_reset_space
        low, high = np.array(space.low, dtype=np.float64), np.array(space.high, dtype=np.float64)
        for name, value, start in (("obj_init_pos", layout.obj_init_pos, 0),
                                   ("goal_pos", layout.goal_pos, 3)):
            if value is None:
                continue
            if low.size < start + 3:
                raise ValueError(f"{where}: {name} cannot be pinned: MetaWorld's {env_name} draws "
                                 f"only {low.size} random values at reset")
            low[start:start + 3] = high[start:start + 3] = value
        env._random_reset_space = Box(low, high, dtype=np.float64)
        _guard_reset_draws(env, where)
    return env


def _guard_reset_draws(env: Any, where: str) -> None:
    """Make a reset that keeps redrawing (MetaWorld redraws until object and goal are far enough
    apart, forever when both are pinned too close) raise instead of hanging."""
    draw = env._get_state_rand_vec
    env._erl_reset_draws = 0

    def guarded() -> np.ndarray:
        env._erl_reset_draws += 1
        if env._erl_reset_draws > _MAX_RESET_DRAWS:
            raise RuntimeError(f"{where}: MetaWorld rejected the layout's pinned positions "
                               f"{_MAX_RESET_DRAWS} times in one reset (object and goal too close?)")
        return draw()

    env._get_state_rand_vec = guarded
