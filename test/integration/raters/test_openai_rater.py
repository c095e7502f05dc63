"""The OpenAI-compatible rater through the real ``openai`` client against a scripted server
process on loopback: normal replies, 429 + Retry-After, 5xx, timeouts, malformed JSON, non-class
answers, refusals, capability fallbacks, bounded concurrency, and the API key's secrecy."""

from __future__ import annotations

import base64
import io
import logging
import time

import numpy as np
import pytest
from PIL import Image

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES, RatingQuery
from ros2_erl_vlm.raters import make_rater
from ros2_erl_vlm.raters.openai_rater import OpenAIRater, OpenAIRaterConfig

pytestmark = pytest.mark.integration

KEY_ENV = "ERL_TEST_OPENAI_KEY"
SECRET = "sk-test-7f3a9c1e-DO-NOT-LEAK"


def query(i: int = 0, n: int = 3, frames: int = 1) -> RatingQuery:
    rng = np.random.default_rng(i)
    return RatingQuery(episode=i, steps=tuple(range(frames)), instruction="open the drawer",
                       class_names=DEFAULT_CLASS_NAMES[n], query_id=f"q{i}",
                       frames=rng.integers(0, 256, (frames, 16, 16, 3), dtype=np.uint8))


@pytest.fixture
def make(fake_openai, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    made = []

    def build(**kw) -> OpenAIRater:
        opts = {"model": "fake-vlm", "base_url": fake_openai.base_url, "api_key_env": KEY_ENV,
                "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0, **kw}
        r = OpenAIRater(OpenAIRaterConfig(**opts), seed=0)
        made.append(r)
        return r

    yield build
    for r in made:
        r.close()


def test_normal_reply_uses_structured_output_and_data_urls(fake_openai, make):
    fake_openai.script({"echo_enum": 2})
    q = query(0, frames=2)
    [res] = make().rate([q])
    assert res.label == 2
    assert res.attempts == 1
    assert res.backend == "openai:fake-vlm"
    [req] = fake_openai.requests()
    body = req["body"]
    assert req["authorization"] == f"Bearer {SECRET}"  # the key is sent, to the server only
    assert body["response_format"]["json_schema"]["schema"]["properties"]["rating"]["enum"] == [
        "Bad", "Average", "Good"]
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 64
    parts = body["messages"][0]["content"]
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(images) == 2
    assert [u.startswith("data:image/png;base64,") for u in images] == [True, True]
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(images[1].split(",", 1)[1]))))
    np.testing.assert_array_equal(decoded, q.frames[1])
    assert "open the drawer" in parts[-1]["text"]
    assert "Bad, Average or Good" in parts[-1]["text"]


def test_reasoning_model_settings(fake_openai, make):
    fake_openai.script({"echo_enum": 0})
    [res] = make(temperature=None, max_tokens_param="max_completion_tokens", max_tokens=2000).rate([query()])
    assert res.label == 0
    body = fake_openai.requests()[0]["body"]
    assert "temperature" not in body
    assert "max_tokens" not in body
    assert body["max_completion_tokens"] == 2000


def test_429_retry_after_is_honoured(fake_openai, make):
    fake_openai.script({"status": 429, "headers": {"Retry-After": "1"}}, {"echo_enum": 0})
    rater = make()
    t0 = time.perf_counter()
    [res] = rater.rate([query()])
    assert res.label == 0
    assert res.attempts == 2
    assert time.perf_counter() - t0 >= 1.0
    assert rater.stats.errors["rate_limited"] == 1
    assert rater.stats.retries == 1


def test_retry_after_beyond_cap_gives_up(fake_openai, make):
    fake_openai.script({"status": 429, "headers": {"Retry-After": "3600"}})
    [res] = make(max_retry_after_s=5).rate([query()])
    assert res.abstained
    assert res.abstain_reason.startswith("rate_limited:")
    assert res.attempts == 1


def test_server_errors_retried_then_rating(fake_openai, make):
    fake_openai.script({"status": 500}, {"status": 503}, {"echo_enum": 1})
    rater = make()
    [res] = rater.rate([query()])
    assert res.label == 1
    assert res.attempts == 3
    assert rater.stats.errors["http_error"] == 2
    assert rater.stats.retries == 2


def test_persistent_server_errors_abstain(fake_openai, make):
    fake_openai.script({"status": 500})
    rater = make(max_attempts=3)
    [res] = rater.rate([query()])
    assert res.abstained
    assert res.label is None
    assert res.abstain_reason.startswith("http_error:")
    assert res.attempts == 3
    assert len(fake_openai.requests()) == 3
    assert rater.stats.abstain_reasons["http_error"] == 1
    assert rater.stats.ratings == 0


def test_client_error_is_not_retried(fake_openai, make):
    fake_openai.script({"status": 401, "message": "bad key"})
    [res] = make(mode="text").rate([query()])
    assert res.abstained
    assert "HTTP 401" in res.abstain_reason
    assert res.attempts == 1


def test_timeout_is_retried_then_rating(fake_openai, make):
    fake_openai.script({"delay": 1.5, "echo_enum": 2}, {"echo_enum": 2})
    [res] = make(timeout_s=0.4).rate([query()])
    assert res.label == 2
    assert res.attempts == 2


def test_persistent_timeout_abstains(fake_openai, make):
    fake_openai.script({"delay": 1.5, "echo_enum": 2})
    rater = make(timeout_s=0.3, max_attempts=2)
    [res] = rater.rate([query()])
    assert res.abstained
    assert res.abstain_reason.startswith("timeout:")
    assert rater.stats.abstain_reasons["timeout"] == 1


def test_malformed_json_is_retried_then_rating(fake_openai, make):
    fake_openai.script({"raw": "{not json"}, {"echo_enum": 1})
    [res] = make().rate([query()])
    assert res.label == 1
    assert res.attempts == 2


def test_persistent_malformed_json_abstains(fake_openai, make):
    fake_openai.script({"raw": "{not json"})
    rater = make(max_attempts=2)
    [res] = rater.rate([query()])
    assert res.abstained
    assert res.abstain_reason.startswith("bad_response:")


def test_non_class_reply_is_abstention_never_a_class(fake_openai, make):
    fake_openai.script({"reply": "purple"}, {"reply": "It is somewhere between bad and good"})
    rater = make(mode="text", answer_retries=1)
    [res] = rater.rate([query()])
    assert res.abstained
    assert res.abstain_reason.startswith("unparseable:")
    assert len(fake_openai.requests()) == 2  # asked once more, then gave up
    assert rater.stats.errors["unparseable"] == 2
    assert rater.stats.abstain_reasons["unparseable"] == 1


def test_hedged_reply_is_abstention(fake_openai, make):
    fake_openai.script({"reply": "I'm sorry, I can't tell whether the robot did a good job."})
    [res] = make(mode="text", answer_retries=0).rate([query()])
    assert res.abstained
    assert res.abstain_reason.startswith("refused:")


def test_cut_off_reply_is_abstention(fake_openai, make):
    fake_openai.script({"reply": "The robot is making good progress toward the", "finish_reason": "length"})
    [res] = make(mode="text", answer_retries=0).rate([query()])
    assert res.abstained
    assert res.abstain_reason.startswith("truncated:")


def test_cut_off_reply_starting_with_a_class_is_a_rating(fake_openai, make):
    fake_openai.script({"reply": "Good. The drawer is open and", "finish_reason": "length"})
    [res] = make(mode="text", answer_retries=0).rate([query()])
    assert res.label == 2


def test_refusal_is_abstention(fake_openai, make):
    fake_openai.script({"refusal": "I can't help with that."})
    [res] = make(answer_retries=0).rate([query()])
    assert res.abstained
    assert res.abstain_reason.startswith("refusal:")


def test_structured_output_rejected_falls_back_to_text(fake_openai, make):
    fake_openai.script({"reject_response_format": True, "reply": "**Average**"})
    rater = make(mode="auto")
    results = rater.rate([query(0), query(1)])
    assert [r.label for r in results] == [1, 1]
    reqs = fake_openai.requests()
    assert "response_format" in reqs[0]["body"]
    assert "response_format" not in reqs[-1]["body"]
    rejected = sum("response_format" in r["body"] for r in reqs)  # 1 or 2: the queries run concurrently
    assert rater.stats.errors["unsupported_option"] == rejected >= 1


def test_logprobs_give_class_probabilities(fake_openai, make):
    fake_openai.script({"reply": "Good", "logprobs": [["Good", -0.2], [" Average", -1.8], ["Bad", -3.0],
                                                     ["The", -4.0]]})
    [res] = make(mode="logprobs").rate([query()])
    assert res.label == 2
    p = np.asarray(res.probabilities)
    assert p.shape == (3,)
    assert abs(p.sum() - 1) < 1e-9
    assert p.argmax() == 2
    body = fake_openai.requests()[0]["body"]
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 10
    assert "response_format" not in body


def test_two_step_analysis_then_text_only_rating(fake_openai, make):
    fake_openai.script({"reply": "The drawer is half open."}, {"echo_enum": 1})
    [res] = make(two_step=True).rate([query()])
    assert res.label == 1
    assert res.rationale == "The drawer is half open."
    first, second = (r["body"] for r in fake_openai.requests())
    assert "response_format" not in first
    assert any(p["type"] == "image_url" for p in first["messages"][0]["content"])
    assert [p["type"] for p in second["messages"][0]["content"] if p["type"] != "text"] == []
    assert "The drawer is half open." in second["messages"][0]["content"][0]["text"]


def test_concurrency_is_bounded(fake_openai, make):
    fake_openai.script({"delay": 0.25, "echo_enum": 2})
    results = make(max_concurrency=2).rate([query(i) for i in range(6)])
    assert [r.query_id for r in results] == [f"q{i}" for i in range(6)]
    assert [r.label for r in results] == [2] * 6
    assert fake_openai.log()["max_in_flight"] == 2


def test_api_key_never_logged_or_persisted(fake_openai, make, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    caplog.set_level(logging.DEBUG)
    # the 401 body echoes the key, as some servers and proxies do
    fake_openai.script({"status": 500}, {"status": 401, "message": f"Incorrect API key provided: {SECRET}"},
                       {"reply": "purple"}, {"reply": "purple"}, {"echo_enum": 2})
    rater = make_rater({"backend": "openai", "model": "fake-vlm", "base_url": fake_openai.base_url,
                        "api_key_env": KEY_ENV, "backoff_base_s": 0.01, "max_attempts": 2,
                        "log_path": str(tmp_path / "ratings.log"), "cache_path": str(tmp_path / "cache.log")})
    try:
        results = rater.rate([query(0)]) + rater.rate([query(1)]) + rater.rate([query(2)])
    finally:
        rater.close()
    assert [r.abstained for r in results] == [True, True, False]
    assert SECRET not in caplog.text
    for f in tmp_path.iterdir():
        assert SECRET.encode() not in f.read_bytes(), f
    assert [i for i, r in enumerate(results) if SECRET in repr(r)] == [], "results whose repr leaks the key"
    assert SECRET not in rater.fingerprint
    assert SECRET not in repr(rater.inner.inner.config)


def test_fingerprint_url_drops_credentials_and_query():
    from ros2_erl_vlm.raters.openai_rater import _public_url

    assert _public_url("https://user:s3cret@proxy.example:8443/v1?key=abc#x") == "https://proxy.example:8443/v1"
    assert _public_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    assert _public_url(None) is None


def test_missing_key_variable_is_a_config_error(monkeypatch):
    monkeypatch.delenv("ERL_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(ValueError, match="ERL_TEST_NO_SUCH_KEY is not set or empty"):
        make_rater({"backend": "openai", "model": "m", "api_key_env": "ERL_TEST_NO_SUCH_KEY"})


def test_empty_key_variable_is_a_config_error(monkeypatch):
    monkeypatch.setenv("ERL_TEST_NO_SUCH_KEY", "  ")
    with pytest.raises(ValueError, match="not set or empty"):
        make_rater({"backend": "openai", "model": "m", "api_key_env": "ERL_TEST_NO_SUCH_KEY"})
