"""Never lose, never invent: the rating log, the answer cache and replay from a log."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult
from ros2_erl_vlm.core.record_log import scan
from ros2_erl_vlm.raters import NOT_IN_LOG, CachedRater, RatingLogRater, ReplayRater
from ros2_erl_vlm.raters.records import RESULT_KIND, content_key


class ScriptedRater:
    """Answers ``label = episode % n``; episodes in ``fail`` abstain. Records what it was asked."""

    backend_id = "scripted"
    fingerprint = "scripted-v1"

    def __init__(self, fail: Sequence[int] = ()) -> None:
        self.fail = set(fail)
        self.asked: list[str] = []

    def rate(self, queries: Sequence[RatingQuery]) -> list[RatingResult]:
        out = []
        for q in queries:
            self.asked.append(q.query_id)
            if q.episode in self.fail:
                out.append(RatingResult.abstain(q, self.backend_id, "timeout: scripted"))
            else:
                out.append(RatingResult(q.query_id, q.episode % q.num_classes, q.num_classes, self.backend_id,
                                        probabilities=tuple(np.eye(q.num_classes)[q.episode % q.num_classes]),
                                        rationale=f"episode {q.episode}", latency_s=0.5))
        return out


def test_rating_log_persists_every_result_before_returning(tmp_path, make_query):
    path = tmp_path / "ratings.log"
    rater = RatingLogRater(ScriptedRater(fail=[1]), path, store_frames=True)
    queries = [make_query(i) for i in range(3)]
    results = rater.rate(queries)
    # another reader sees all three records as soon as rate() has returned
    recs = [r for r in scan(path).records if r.meta["kind"] == RESULT_KIND]
    assert [r.meta["label"] for r in recs] == [0, None, 2]
    assert recs[1].meta["abstain_reason"] == "timeout: scripted"
    assert recs[0].meta["content_key"] == content_key(queries[0])
    assert recs[2].meta["probabilities"] == [0.0, 0.0, 1.0]
    assert recs[2].meta["rationale"] == "episode 2"
    np.testing.assert_array_equal(recs[2].arrays["frames"], queries[2].frames)
    assert [r.label for r in results] == [0, None, 2]
    rater.close()


def test_a_reopened_rating_log_appends_after_what_is_there(tmp_path, make_query):
    path = tmp_path / "ratings.log"
    with RatingLogRater(ScriptedRater(fail=[1]), path, store_frames=True) as rater:
        rater.rate([make_query(i) for i in range(3)])
    with RatingLogRater(ScriptedRater(), path) as again:
        again.rate([make_query(5)])
        assert len(again.logged()) == 4


def test_rating_log_answers_resent_requests_from_the_log(tmp_path, make_query):
    path = tmp_path / "ratings.log"
    with RatingLogRater(ScriptedRater(fail=[1]), path, reuse_logged=True) as rater:
        rater.rate([make_query(0), make_query(1)])
    inner = ScriptedRater()
    with RatingLogRater(inner, path, reuse_logged=True) as restarted:  # e.g. after a crash
        again = restarted.rate([make_query(0), make_query(1), make_query(2)])
        assert inner.asked == ["q1", "q2"]  # q0 was rated already; q1 only abstained before
        assert again[0].label == 0
        assert again[0].extra["from_log"] == "1"
        assert again[1].label == 1
        assert len(restarted.logged()) == 4


def _cache_after_one_batch(tmp_path, make_query):
    """A cache over a rater that abstains on q1, after rating [q0, q1, q2, q2]."""
    inner = ScriptedRater(fail=[1])
    cache = CachedRater(inner, tmp_path / "cache.log")
    q0, q1, q2 = make_query(0), make_query(1), make_query(2)
    first = cache.rate([q0, q1, q2, q2])  # q2 twice in one batch: asked once
    return inner, cache, first, (q0, q1, q2)


def test_cache_asks_a_query_repeated_in_one_batch_once(tmp_path, make_query):
    inner, cache, first, _ = _cache_after_one_batch(tmp_path, make_query)
    assert [r.label for r in first] == [0, None, 2, 2]
    assert inner.asked == ["q0", "q1", "q2"]
    assert first[3].extra["cache"] == "hit"
    cache.close()


def test_cache_answers_repeats_for_free_but_asks_abstentions_again(tmp_path, make_query):
    inner, cache, _, (q0, q1, _) = _cache_after_one_batch(tmp_path, make_query)
    again = cache.rate([q0, q1])
    assert inner.asked == ["q0", "q1", "q2", "q1"]  # abstentions are not cached: asked again
    assert again[0].label == 0
    assert again[0].attempts == 0
    assert again[0].extra["cache"] == "hit"
    assert cache.stats.cache_hits == 2
    cache.close()


def test_cache_survives_a_restart(tmp_path, make_query):
    _, cache, _, (q0, _, q2) = _cache_after_one_batch(tmp_path, make_query)
    cache.close()
    inner2 = ScriptedRater()
    reopened = CachedRater(inner2, tmp_path / "cache.log")
    assert [r.label for r in reopened.rate([q2, q0])] == [2, 0]
    assert inner2.asked == []
    reopened.close()


def test_cache_key_includes_frames_prompt_and_scale(make_query):
    inner = ScriptedRater()
    cache = CachedRater(inner)
    q = make_query(0)
    cache.rate([q])
    changed = make_query(0)
    changed.frames = changed.frames.copy()
    changed.frames[0, 0, 0, 0] ^= 1
    other_task = make_query(0, instruction="open the door")
    other_scale = make_query(0, n=2)
    cache.rate([changed, other_task, other_scale])
    assert len(inner.asked) == 4


def test_cache_key_includes_the_model():
    inner = ScriptedRater()
    cache = CachedRater(inner)
    inner.fingerprint = "scripted-v2"  # another model/prompt: a new cache wrapper, new keys
    assert CachedRater(inner).fingerprint != cache.fingerprint


def _replayed_run(tmp_path, make_query):
    """Four logged ratings (q3 abstained), replayed together with q9, which is not in the log."""
    path = tmp_path / "ratings.log"
    queries = [make_query(i) for i in range(4)]
    with RatingLogRater(ScriptedRater(fail=[3]), path) as rater:
        original = rater.rate(queries)
    replay = ReplayRater(path)
    return original, replay.rate([*queries, make_query(9)])


def test_replay_reproduces_a_logged_run(tmp_path, make_query):
    original, replayed = _replayed_run(tmp_path, make_query)
    assert [r.label for r in replayed[:4]] == [r.label for r in original]
    assert replayed[0].probabilities == original[0].probabilities
    assert replayed[0].rationale == "episode 0"
    assert replayed[0].extra["replayed_backend"] == "scripted"
    assert replayed[3].abstained
    assert replayed[3].abstain_reason == "timeout: scripted"
    assert [r.backend for r in replayed] == ["replay"] * len(replayed)


def test_replay_of_a_query_not_in_the_log_abstains(tmp_path, make_query):
    _, replayed = _replayed_run(tmp_path, make_query)
    assert replayed[4].abstained
    assert replayed[4].abstain_reason == NOT_IN_LOG


def test_replay_gives_repeated_answers_in_logged_order(tmp_path, make_query):
    path = tmp_path / "ratings.log"
    q = make_query(0)

    class Flip(ScriptedRater):
        def rate(self, queries):
            self.asked += [x.query_id for x in queries]
            return [RatingResult(x.query_id, len(self.asked) % 2, x.num_classes, "flip") for x in queries]

    with RatingLogRater(Flip(), path) as rater:
        labels = [rater.rate([q])[0].label for _ in range(3)]
    replay = ReplayRater(path)
    assert [replay.rate([q])[0].label for _ in range(4)] == [*labels, labels[-1]]


def _one_logged_rating(tmp_path, make_query):
    path = tmp_path / "ratings.log"
    with RatingLogRater(ScriptedRater(), path) as rater:
        rater.rate([make_query(2)])
    return path


def test_replay_by_query_id(tmp_path, make_query):
    path = _one_logged_rating(tmp_path, make_query)
    other_frames = make_query(7)
    other_frames.query_id = "q2"
    [res] = ReplayRater(path, match="query_id").rate([other_frames])
    assert res.label == 2


def test_replay_of_a_missing_log_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ReplayRater(tmp_path / "missing.log")


def test_replay_with_an_unknown_match_is_an_error(tmp_path, make_query):
    path = _one_logged_rating(tmp_path, make_query)
    with pytest.raises(ValueError, match="match"):
        ReplayRater(path, match="frames")
