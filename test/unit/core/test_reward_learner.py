"""The reward learner's core: episodes from a stream, rounds, persistence, dedupe, restart."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.core.config import LoopConfig, TaskInfo
from ros2_erl_vlm.core.rating.dataset import read_ratings
from ros2_erl_vlm.core.rating.rater import RatingResult, SimTruth
from ros2_erl_vlm.core.reward.reward_learner import EpisodeAssembler, RewardLearner
from ros2_erl_vlm.core.reward.reward_model import RewardModelConfig
from ros2_erl_vlm.core.reward.round_log import round_answer_counts, round_row
from ros2_erl_vlm.core.rl.sac import SACConfig

OBS = 5
TASK = TaskInfo("t", "do it", ("bad", "average", "good"))


def _cfg(**kw) -> LoopConfig:
    base = dict(num_seed_steps=8, num_unsup_steps=12, query_every=10, queries_per_round=4,
                max_feedback=12, sac=SACConfig(batch_size=16),
                reward=RewardModelConfig(hidden_dim=8, hidden_layers=1, epochs=2))
    base.update(kw)
    return LoopConfig(**base)


def _feed(learner: RewardLearner, episode: int, length: int = 10) -> None:
    rng = np.random.default_rng(episode)
    learner.observe(episode, 0, rng.normal(size=OBS), [], None, False)
    for t in range(1, length + 1):
        truth = SimTruth(float(t), t == length, t / length)
        learner.observe(episode, t, rng.normal(size=OBS), rng.uniform(-1, 1, 4), truth, t == length)


def test_assembler_keeps_only_gap_free_episodes() -> None:
    a = EpisodeAssembler()
    s, z = np.zeros(3, np.float32), np.zeros(2, np.float32)
    assert a.add(0, 0, s, z, None, False) == ("start", None)
    assert a.add(0, 1, s, z, None, False)[0] == "step"
    assert a.add(0, 1, s, z, None, False)[0] == "duplicate"
    status, ep = a.add(0, 2, s, z, None, True)
    assert status == "complete" and len(ep) == 2 and ep.episode_id == 0
    a.add(1, 0, s, z, None, False)
    assert a.add(1, 2, s, z, None, False)[0] == "gap"  # step 1 was lost
    assert a.add(1, 3, s, z, None, True) == ("gap", None) and a.dropped == 1
    assert a.add(7, 5, s, z, None, False)[0] == "gap"  # joined mid-episode
    short = EpisodeAssembler(max_steps=3)  # an episode that never ends does not grow forever
    short.add(2, 0, s, z, None, False)
    assert [short.add(2, t, s, z, None, False)[0] for t in (1, 2, 3, 4)] == ["step", "step", "step", "too_long"]
    assert short.dropped == 1


def test_rounds_persist_dedupe_and_resume(tmp_path) -> None:
    cfg = _cfg()
    lr = RewardLearner(cfg, OBS, TASK, tmp_path, checkpoint_path=tmp_path / "checkpoint.pt")
    _feed(lr, 0)
    _feed(lr, 1)
    assert lr.env_steps == 20 and len(lr.episodes) == 2 and lr.round_due()
    reqs = lr.start_round(now=0.0)
    assert len(reqs) == 4 and lr.round_open and not lr.round_due()
    sent = lr.due_for_sending(now=0.0, retry_s=5.0)
    assert len(sent) == 4 and lr.due_for_sending(now=1.0, retry_s=5.0) == []
    r0 = reqs[0]
    assert lr.on_rating(r0.request_id, RatingResult(r0.request_id, 2, 3, "test")) == "rated"
    assert lr.on_rating(r0.request_id, RatingResult(r0.request_id, 1, 3, "test")) == "duplicate"
    assert lr.on_rating("nope", RatingResult("nope", 1, 3, "test")) == "unknown"
    r1 = reqs[1]
    assert lr.on_rating(r1.request_id, RatingResult(r1.request_id, None, 3, "t", abstain_reason="x")) \
        == "abstained"
    with pytest.raises(ValueError, match="classes"):
        lr.on_rating(reqs[2].request_id, RatingResult(reqs[2].request_id, 1, 2, "test"))
    assert not lr.round_ready(now=1.0, timeout_s=10.0)
    assert lr.round_ready(now=11.0, timeout_s=10.0)
    model = lr.train()
    assert model is not None and model.version == 1 and model.path.exists()
    assert not lr.round_open and len(lr.pending) == 2
    lr.close()

    # A restarted learner: same model version, the two unanswered requests pending, no duplicates.
    lr2 = RewardLearner(cfg, OBS, TASK, tmp_path, checkpoint_path=tmp_path / "checkpoint.pt")
    assert lr2.resumed and lr2.version == 1 and lr2.env_steps == 20
    assert set(lr2.pending) == {reqs[2].request_id, reqs[3].request_id}
    assert lr2.schedule.queries_asked == 4
    assert lr2.on_rating(r0.request_id, RatingResult(r0.request_id, 0, 3, "test")) == "duplicate"
    again = lr2.due_for_sending(now=100.0, retry_s=5.0)
    assert {r.request_id for r in again} == set(lr2.pending)
    assert again[0].truth is not None and again[0].inputs.shape == (1, OBS)
    r2 = reqs[2]
    assert lr2.on_rating(r2.request_id, RatingResult(r2.request_id, 0, 3, "test")) == "rated"
    records = read_ratings(tmp_path / "ratings.erlr")
    ids = [m["query_id"] for m in records]
    assert len(ids) == len(set(ids)) == 3
    # Every record carries the rated step's simulator truth (what _feed sent for that step).
    for m in records:
        t = m["steps"][-1] + 1  # the segment's state is the observation after step t
        assert m["truth_success"] == (t == 10)
        assert m["truth_reward"] == pytest.approx(t) and m["truth_progress"] == pytest.approx(t / 10)
    lr2.close()


def test_requests_are_given_up_after_max_attempts(tmp_path) -> None:
    lr = RewardLearner(_cfg(), OBS, TASK, tmp_path,
                       checkpoint_path=tmp_path / "checkpoint.pt", max_attempts=2)
    _feed(lr, 0, length=20)
    lr.start_round(now=0.0)
    for t in (0.0, 10.0, 20.0):
        lr.due_for_sending(now=t, retry_s=5.0)
    assert not lr.pending and lr.counters["requests_given_up"] == 4
    metas = read_ratings(tmp_path / "ratings.erlr")
    assert all(m["label"] is None and "no answer" in m["abstain_reason"] for m in metas)
    assert lr.train() is None  # nothing to learn from abstentions
    lr.close()


def test_a_late_rating_after_giving_up_is_stored_and_used_once(tmp_path) -> None:
    lr = RewardLearner(_cfg(), OBS, TASK, tmp_path,
                       checkpoint_path=tmp_path / "checkpoint.pt", max_attempts=1)
    _feed(lr, 0, length=20)
    reqs = lr.start_round(now=0.0)
    lr.due_for_sending(now=0.0, retry_s=5.0)
    lr.due_for_sending(now=10.0, retry_s=5.0)  # all four given up
    assert lr.counters["requests_given_up"] == 4 and len(lr.dataset) == 0
    a, b, c = reqs[0].request_id, reqs[1].request_id, reqs[2].request_id
    assert lr.on_rating(a, RatingResult(a, 2, 3, "slow-vlm")) == "late"
    assert len(lr.dataset) == 1
    assert lr.on_rating(a, RatingResult(a, 2, 3, "slow-vlm")) == "duplicate"  # once only
    assert lr.on_rating(b, RatingResult.abstain(_q(b), "slow-vlm", "timeout: x")) == "duplicate"
    lr.close()
    # A restarted learner still accepts a late rating for a request given up before the restart.
    lr2 = RewardLearner(_cfg(), OBS, TASK, tmp_path,
                        checkpoint_path=tmp_path / "checkpoint.pt", max_attempts=1)
    assert not lr2.pending and set(lr2.late_ok) == {b, c, reqs[3].request_id}
    assert lr2.on_rating(c, RatingResult(c, 0, 3, "slow-vlm")) == "late"
    assert lr2.on_rating(a, RatingResult(a, 1, 3, "slow-vlm")) == "duplicate"
    assert len(lr2.dataset) == 2
    metas = read_ratings(tmp_path / "ratings.erlr")
    real = [m["query_id"] for m in metas if m["label"] is not None]
    assert sorted(real) == sorted([a, c]) and all(m.get("late") for m in metas if m["label"] is not None)
    lr2.close()


def _q(query_id: str):
    from ros2_erl_vlm.core.rating.rater import RatingQuery

    return RatingQuery(0, (1,), "do it", TASK.class_names, query_id=query_id)


def test_round_row_needs_a_trained_round(tmp_path) -> None:
    lr = RewardLearner(_cfg(), OBS, TASK, tmp_path)
    with pytest.raises(ValueError, match="trained round"):
        round_row(lr)
    lr.close()


def test_rejects_bad_observations(tmp_path) -> None:
    lr = RewardLearner(_cfg(), OBS, TASK, tmp_path, checkpoint_path=tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError):
        lr.observe(0, 0, [np.nan] * OBS, [], None, False)
    with pytest.raises(ValueError):
        lr.observe(0, 1, [0.0] * OBS, [], None, False)
    lr.close()


def test_each_round_is_scored_against_simulator_truth(tmp_path) -> None:
    def bin_truth(progress: float, success: bool, n: int) -> int:
        return n - 1 if success else int(progress >= 0.5)

    lr = RewardLearner(_cfg(), OBS, TASK, tmp_path,
                       checkpoint_path=tmp_path / "checkpoint.pt", bin_truth=bin_truth)
    _feed(lr, 0)
    _feed(lr, 1)
    reqs = lr.start_round(now=0.0)
    truth = [bin_truth(r.truth[-1].progress, r.truth[-1].success, 3) for r in reqs]
    # three answers (one of them wrong), one abstention
    labels = [truth[0], (truth[1] + 1) % 3, truth[2], None]
    for r, label in zip(reqs, labels, strict=True):
        result = (RatingResult.abstain(_q(r.request_id), "t", "x") if label is None
                  else RatingResult(r.request_id, label, 3, "t"))
        lr.on_rating(r.request_id, result)
    assert lr.train() is not None
    assert lr.last_round_quality == {"truth_agreement": pytest.approx(2 / 3),
                                     "truth_above_bottom": pytest.approx(np.mean(np.array(truth) > 0))}
    assert lr.status()["last_round_quality"] == lr.last_round_quality
    # The round's reward.csv row (the loop and the graph's learner node write the same columns).
    assert round_answer_counts(lr) == {"rated": 3, "abstained": 1}
    row = round_row(lr)
    assert row["truth_agreement"] == pytest.approx(2 / 3) and row["dataset"] == 3
    assert row["model_version"] == lr.version == 1 and row["reward_diverged"] == 0
    assert [row[f"class_{k}"] for k in range(3)] == list(lr.dataset.class_counts())
    assert row["reward_acc"] == lr.last_train.accuracy
    # A round without simulator truth on its observations is not scored.
    lr2 = RewardLearner(_cfg(), OBS, TASK, tmp_path / "robot",
                        checkpoint_path=tmp_path / "robot" / "checkpoint.pt", bin_truth=bin_truth)
    rng = np.random.default_rng(5)
    for ep in (0, 1):
        for t in range(11):
            lr2.observe(ep, t, rng.normal(size=OBS), [] if t == 0 else rng.uniform(-1, 1, 4), None, t == 10)
    for r in lr2.start_round(now=0.0):
        lr2.on_rating(r.request_id, RatingResult(r.request_id, 1, 3, "t"))
    lr2.train()
    assert lr2.last_round_quality == {}
    lr.close()
    lr2.close()


def _sim_state(episode: int, t: int) -> np.ndarray:
    """A made-up simulator state for (episode, step) (27 float64 values, as door/drawer tasks')."""
    return np.linspace(0.0, 1.0, 27) * (episode + 1) + t * 1e-3


def test_requests_carry_each_steps_sim_state(tmp_path) -> None:
    """With simulator states in the truth, every request keeps its segment's states, ``(T, n)``
    float64, exactly as observed; a state takes no part in comparing truths."""
    from ros2_erl_vlm.core.record_log import scan

    lr = RewardLearner(_cfg(segment_length=2), OBS, TASK, tmp_path)
    rng = np.random.default_rng(0)
    for ep in (0, 1):
        lr.observe(ep, 0, rng.normal(size=OBS), [], None, False)
        for t in range(1, 11):
            lr.observe(ep, t, rng.normal(size=OBS), rng.uniform(-1, 1, 4),
                       SimTruth(float(t), t == 10, t / 10, _sim_state(ep, t)), t == 10)
    reqs = lr.start_round(now=0.0)
    lr.close()
    records = {r.meta["request_id"]: r for r in scan(tmp_path / "requests.erlr").records
               if r.meta.get("kind") == "request"}
    assert len(reqs) == len(records) == 4
    for req in reqs:
        state = records[req.request_id].arrays["sim_state"]
        assert state.dtype == np.float64 and state.shape == (2, 27)
        for row, index in zip(state, req.steps, strict=True):  # index i: the state after step i + 1
            assert np.array_equal(row, _sim_state(req.episode, index + 1))
        assert req.truth is not None and req.truth[0] == SimTruth(req.truth[0].reward, req.truth[0].success,
                                                                  req.truth[0].progress)
    assert records[reqs[0].request_id].arrays["sim_state"].nbytes == 2 * 27 * 8  # 216 bytes a step


def test_requests_without_sim_states_have_none(tmp_path) -> None:
    """A real arm (no truth) or a simulator that reports no state: the request has no sim_state,
    nor when only some of the segment's steps have one."""
    from ros2_erl_vlm.core.record_log import scan

    lr = RewardLearner(_cfg(segment_length=3), OBS, TASK, tmp_path)
    _feed(lr, 0)
    lr.observe(1, 0, np.zeros(OBS), [], None, False)
    for t in range(1, 11):  # every other step without a state
        lr.observe(1, t, np.full(OBS, t), np.zeros(4),
                   SimTruth(1.0, False, 0.1, _sim_state(1, t) if t % 2 else None), t == 10)
    assert lr.start_round(now=0.0)
    lr.close()
    recs = [r for r in scan(tmp_path / "requests.erlr").records if r.meta.get("kind") == "request"]
    assert recs and all("sim_state" not in r.arrays and "true_rewards" in r.arrays for r in recs)


def test_an_image_learner_keeps_the_steps_before_a_lost_frame(tmp_path) -> None:
    cfg = _cfg(reward=RewardModelConfig(input_kind="image", image_size=48, hidden_dim=8,
                                        hidden_layers=1, epochs=2))
    lr = RewardLearner(cfg, OBS, TASK, tmp_path, frame_shape=(48, 48, 3))
    rng = np.random.default_rng(0)
    frame = lambda: rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)  # noqa: E731
    lr.observe(0, 0, rng.normal(size=OBS), [], None, False)
    for t in (1, 2, 3):
        assert lr.observe(0, t, rng.normal(size=OBS), rng.uniform(-1, 1, 4), None, False, frame()) == "step"
    assert lr.observe(0, 4, rng.normal(size=OBS), rng.uniform(-1, 1, 4), None, False) == "frame_lost"
    assert lr.observe(0, 5, rng.normal(size=OBS), rng.uniform(-1, 1, 4), None, True, frame()) == "gap"
    (ep,) = lr.episodes.episodes
    assert ep.episode_id == 0 and len(ep.next_obs) == 3 and ep.frames is not None and len(ep.frames) == 3
    assert lr.env_steps == 4 and lr.status()["obs_frame_lost"] == 1
    lr.close()
