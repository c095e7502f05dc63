"""One reward round as a ``reward.csv`` row: the same columns from the in-process loop and from the
graph's ``reward_learner`` node (one source, so a run report reads both alike)."""

from __future__ import annotations

from typing import Any

from ros2_erl_vlm.core.reward.reward_learner import RewardLearner


def round_row(learner: RewardLearner) -> dict[str, Any]:
    """The trained round's metrics: its quality against the truth (simulation), the dataset size,
    the reward model's loss, accuracy, epochs, version and divergence, and the class counts.

    Call it right after :meth:`RewardLearner.train`.
    """
    tr = learner.last_train
    if tr is None:
        raise ValueError("round_row needs a trained round (call RewardLearner.train first)")
    out: dict[str, Any] = {**learner.last_round_quality, "dataset": len(learner.dataset),
                           "reward_loss": tr.loss, "reward_acc": tr.accuracy,
                           "reward_epochs": tr.epochs, "model_version": learner.version,
                           "reward_diverged": int(tr.diverged)}
    for k, cnt in enumerate(learner.dataset.class_counts()):
        out[f"class_{k}"] = int(cnt)
    return out


def round_answer_counts(learner: RewardLearner) -> dict[str, int]:
    """Answers stored during the open (or just trained) round: ``rated`` and ``abstained``."""
    labels = [label for _, label in learner.round_answers]
    rated = sum(1 for label in labels if label is not None)
    return {"rated": rated, "abstained": len(labels) - rated}
