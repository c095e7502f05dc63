"""Every MetaWorld v3 task of the installed MetaWorld (50 in 3.1.1) can be trained on: its env
builds, renders a frame that shows the hand and the object, random play rarely reaches the top
class and MetaWorld's scripted expert reaches it.

Kept to CI time (about 0.5-1 s a task on 2 cores): one env and one small renderer per task, made
and closed in turn (never two renderers alive at once), 2 x 100 random steps, one expert episode
stopped at the first top-class step. Most of the time goes to the renderer (MuJoCo uploading
MetaWorld's textures).
"""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.envs import expert_policy, load_task, make_env
from ros2_erl_vlm.envs.tasks import METAWORLD_V3_TASKS

SIZE = 64
RANDOM_EPISODES = 2
RANDOM_STEPS = 100
#: At most this share of random steps may be in the top class ("rarely").
RANDOM_TOP_MAX = 0.02
#: Tasks whose MetaWorld success uniformly random actions reach often: the tasks are that easy,
#: the definitions are not at fault (measured: share of steps in the top class over 5 x 200
#: random steps, seed 0).
RANDOM_SUCCEEDS = {
    "drawer-close-v3": 0.5,  # 12.7%: the drawer starts open and any push on its front closes it
    "handle-press-v3": 0.5,  # 6.8%: the handle starts right under the hand; dropping presses it
    # 47.5% in its default (paper) layout, the reference's coordinates: the ball lies 20 cm in
    # front of the goal with the hand right behind it, and random pushes roll it in (stock: <2%).
    "soccer-v3": 0.7,
}
#: The expert episode's seed. MetaWorld 3.1.1's scripted experts are not perfect: over seeds 0-9
#: (500 steps each) they miss success at box-close-v3 seed 7, soccer-v3 seed 0, sweep-into-v3
#: seed 4 and stick-pull-v3 seeds 0 and 5 (the stick slips out of the gripper); every task
#: succeeds at this seed.
EXPERT_SEED = 1


@pytest.mark.render
@pytest.mark.parametrize("name", METAWORLD_V3_TASKS)
def test_every_v3_task_builds_renders_and_rates(name: str) -> None:
    spec = load_task(name)
    env = make_env(spec, seed=0, image_size=SIZE)
    try:
        obs, _ = env.reset()
        frame = env.render()
        assert frame.shape == (SIZE, SIZE, 3)
        assert frame.std() > 10, f"{name}: frame nearly uniform"
        pixels = env.project(np.stack([obs[0:3], obs[4:7]]))  # hand, main object
        assert np.all((pixels >= 0) & (pixels < SIZE)), f"{name}: hand or object out of view: {pixels}"

        top = spec.num_classes - 1
        rng = np.random.default_rng(0)
        hits = 0
        for _ in range(RANDOM_EPISODES):
            env.reset()
            for _ in range(RANDOM_STEPS):
                *_, info = env.step(rng.uniform(-1.0, 1.0, 4))
                hits += spec.bin_truth(info["progress"], info["success"]) == top
        share = hits / (RANDOM_EPISODES * RANDOM_STEPS)
        assert share <= RANDOM_SUCCEEDS.get(name, RANDOM_TOP_MAX), (
            f"{name}: random play in the top class in {share:.1%} of steps")

        policy = expert_policy(spec)  # every v3 task has one in MetaWorld 3.1.1
        obs, info = env.reset(seed=EXPERT_SEED)
        for _ in range(env.max_episode_steps):
            obs, _, _, _, info = env.step(policy(obs))
            if spec.bin_truth(info["progress"], info["success"]) == top:
                break
        else:
            pytest.fail(f"{name}: MetaWorld's scripted expert never reached the top class "
                        f"(last progress {info['progress']:.2f})")
    finally:
        env.close()
