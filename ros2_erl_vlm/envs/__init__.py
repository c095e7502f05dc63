"""envs layer of erl_vlm: MetaWorld tasks with the paper's cameras, as Gymnasium environments.

Every task, hand-written (``sim/tasks/<task>.yaml``) or generic (any other MetaWorld v3 name, from
``sim/generic.yaml``), is registered as the Gymnasium id ``erl_vlm/<task>``::

    env = gymnasium.make("erl_vlm/drawer-open-v3", render_mode="rgb_array", layout="paper")

or, without Gymnasium's wrappers, ``make_env("drawer-open-v3", seed=0, layout="paper")``.
"""

from __future__ import annotations

import gymnasium

from ros2_erl_vlm.envs.experts import expert_policy, run_expert_episode
from ros2_erl_vlm.envs.metaworld_env import MetaWorldTaskEnv
from ros2_erl_vlm.envs.tasks import (
    DEFAULT_LAYOUT,
    PAPER_LAYOUT,
    STOCK_LAYOUT,
    AppearanceSpec,
    CameraSpec,
    GraspLiftSpec,
    LayoutSpec,
    OracleSpec,
    TaskSpec,
    all_tasks,
    available_tasks,
    load_task,
)

__all__ = [
    "DEFAULT_LAYOUT",
    "GYM_NAMESPACE",
    "PAPER_LAYOUT",
    "STOCK_LAYOUT",
    "AppearanceSpec",
    "CameraSpec",
    "GraspLiftSpec",
    "LayoutSpec",
    "MetaWorldTaskEnv",
    "OracleSpec",
    "TaskSpec",
    "all_tasks",
    "available_tasks",
    "expert_policy",
    "load_task",
    "make_env",
    "register_envs",
    "run_expert_episode",
]

GYM_NAMESPACE = "erl_vlm"


def make_env(
    task: str | TaskSpec, seed: int | None = None, render: bool = True,
    image_size: int | None = None, layout: str | None = None,
) -> MetaWorldTaskEnv:
    """Build the environment for ``task`` (``render=False``: no renderer, cheapest stepping).

    ``layout`` selects one of the task's layouts (``None``: a name's default layout, see
    :data:`DEFAULT_LAYOUT`; a :class:`TaskSpec`'s own); an unknown one is a ``ValueError``.
    """
    return MetaWorldTaskEnv(
        task, render_mode="rgb_array" if render else None, image_size=image_size, seed=seed,
        layout=layout,
    )


def register_envs() -> list[str]:
    """Register ``erl_vlm/<task>`` for every task (:func:`all_tasks`); return the registered ids.

    Finds nothing (and registers nothing) when the share directory cannot be located.
    """
    try:
        names = all_tasks()
    except FileNotFoundError:
        return []
    ids = []
    for name in names:
        env_id = f"{GYM_NAMESPACE}/{name}"
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="ros2_erl_vlm.envs.metaworld_env:MetaWorldTaskEnv",
                kwargs={"task": name},
                disable_env_checker=False,
            )
        ids.append(env_id)
    return ids


register_envs()
