"""Hosted/served VLM rater over the OpenAI chat-completions API (OpenAI, Gemini's
OpenAI-compatible endpoint, vLLM, Ollama, ...), with the official ``openai`` client.

* Frames go as ``data:`` URLs (PNG by default) in one user message with the prompt.
* The answer is constrained where the server can: ``structured`` asks for a JSON object whose
  ``rating`` is an enum of the class names; ``logprobs`` reads class probabilities from the first
  answer token's top log-probabilities; ``text`` parses free text. ``auto`` (default) tries
  structured output and falls back to text once if the server rejects it (remembered).
* Failures never become a class: timeouts, connection errors, 429 and 5xx are retried with
  exponential backoff and jitter (a 429's ``Retry-After`` is honoured); a malformed response is
  retried; a refusal, an empty reply or an answer that is not one class is asked again
  ``answer_retries`` times. What still fails is an abstention whose reason says why; all of it
  is counted in ``stats``.
* Queries of a batch run concurrently, at most ``max_concurrency`` at a time.
* The API key is read from the environment variable named by ``api_key_env`` and handed to the
  client only: it is never logged, stored in a result, or put in the fingerprint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai

from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult
from ros2_erl_vlm.raters import prompts
from ros2_erl_vlm.raters.image_encoding import IMAGE_FORMATS, data_url
from ros2_erl_vlm.raters.retry import RetryPolicy, parse_retry_after
from ros2_erl_vlm.raters.stats import RaterStats, reason_kind

log = logging.getLogger(__name__)

MODES = ("auto", "structured", "logprobs", "text")
NO_KEY = "no-key"  # what local servers without authentication get as the key


def _public_url(url: str | None) -> str | None:
    """``url`` without credentials or query string (neither belongs in a persisted fingerprint)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class OpenAIRaterConfig:
    """Settings of the OpenAI-compatible rater.

    Attributes:
        model: model name on the server (``gpt-4o-mini``, ``gemini-2.0-flash``, ``Qwen/...``).
        base_url: server URL (``None``: the client's default, i.e. OpenAI or ``OPENAI_BASE_URL``).
        api_key_env: name of the environment variable holding the key (``None``: server needs none).
        mode: ``"auto"``, ``"structured"``, ``"logprobs"`` or ``"text"`` (module docstring).
        two_step: analyse the frames first, then rate the analysis text (paper's prompt).
        analysis_model: model for the analysis call (default: ``model``).
        temperature: sampling temperature (``None``: server default; reasoning models want that).
        max_tokens: answer budget (``None``: server default).
        analysis_max_tokens: analysis budget.
        max_tokens_param: request field for the budgets: ``"max_tokens"`` (most servers) or
            ``"max_completion_tokens"`` (OpenAI reasoning models).
        top_logprobs: alternatives per token requested in ``logprobs`` mode.
        timeout_s: per-request timeout.
        max_attempts, backoff_base_s, backoff_max_s, jitter, max_retry_after_s: retry policy
            (:class:`.retry.RetryPolicy`).
        answer_retries: extra asks after a refusal, empty or unparseable answer.
        max_concurrency: requests in flight at once.
        image_format: ``"png"`` or ``"jpeg"``.
        image_detail: OpenAI's image ``detail`` (``"low"``, ``"high"``, ``"auto"``) or ``None``.
        prompt: prompt-template overrides (:class:`.prompts.PromptTemplate` fields).
        extra_body: extra JSON fields for the server (e.g. vLLM sampling options).
    """

    model: str = ""
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    mode: str = "auto"
    two_step: bool = False
    analysis_model: str | None = None
    temperature: float | None = 0.0
    max_tokens: int | None = 64
    analysis_max_tokens: int | None = 512
    max_tokens_param: str = "max_tokens"
    top_logprobs: int = 10
    timeout_s: float = 60.0
    max_attempts: int = 4
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    jitter: float = 0.5
    max_retry_after_s: float = 60.0
    answer_retries: int = 1
    max_concurrency: int = 4
    image_format: str = "png"
    image_detail: str | None = None
    prompt: dict[str, str] | None = None
    extra_body: dict[str, Any] | None = None

    def validate(self) -> OpenAIRaterConfig:
        """Raise ``ValueError`` naming the first bad field (the key variable included)."""
        if not self.model:
            raise ValueError("openai rater: 'model' (the server's model name) is required")
        if self.mode not in MODES:
            raise ValueError(f"openai rater: mode must be one of {MODES}, got {self.mode!r}")
        if self.max_tokens_param not in ("max_tokens", "max_completion_tokens"):
            raise ValueError("openai rater: max_tokens_param must be 'max_tokens' or "
                             f"'max_completion_tokens', got {self.max_tokens_param!r}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"openai rater: image_format must be one of {IMAGE_FORMATS}, "
                             f"got {self.image_format!r}")
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise ValueError(f"openai rater: timeout_s must be > 0, got {self.timeout_s}")
        if self.max_concurrency < 1 or self.answer_retries < 0 or not 1 <= self.top_logprobs <= 20:
            raise ValueError("openai rater: need max_concurrency >= 1, answer_retries >= 0 and "
                             "1 <= top_logprobs <= 20")
        self.retry_policy()
        prompts.PromptTemplate.from_any(self.prompt)
        self.api_key()
        return self

    def retry_policy(self) -> RetryPolicy:
        """The transport retry policy."""
        return RetryPolicy(max_attempts=self.max_attempts, base_delay_s=self.backoff_base_s,
                           max_delay_s=self.backoff_max_s, jitter=self.jitter,
                           max_retry_after_s=self.max_retry_after_s)

    def api_key(self) -> str:
        """The key from ``api_key_env`` (``NO_KEY`` when ``api_key_env`` is ``None``)."""
        if self.api_key_env is None:
            return NO_KEY
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise ValueError(f"openai rater: environment variable {self.api_key_env} is not set or empty "
                             "(set it, or api_key_env: null for a server without keys)")
        return key


@dataclass
class _Reply:
    """What one successful HTTP exchange gave: text, refusal and first-token alternatives."""

    text: str
    refusal: str
    finish_reason: str
    top_logprobs: list[tuple[str, float]] | None


class _CallFailedError(Exception):
    """A request failed for good (retries used up, or not retryable)."""


class OpenAIRater:
    """Rates queries through an OpenAI-compatible chat-completions server (module docstring)."""

    def __init__(self, config: OpenAIRaterConfig, *, client: Any = None,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None) -> None:
        self.config = config.validate()
        self.template = prompts.PromptTemplate.from_any(config.prompt)
        self.policy = config.retry_policy()
        self.stats = RaterStats()
        self.backend_id = f"openai:{config.model}"
        self.fingerprint = json.dumps({
            "backend": "openai", "base_url": _public_url(config.base_url), "model": config.model,
            "analysis_model": config.analysis_model, "mode": config.mode, "two_step": config.two_step,
            "temperature": config.temperature, "image_format": config.image_format,
            "image_detail": config.image_detail, "prompt": asdict(self.template)}, sort_keys=True)
        if client is None:
            client = openai.OpenAI(api_key=config.api_key(), base_url=config.base_url, max_retries=0,
                                   timeout=config.timeout_s)
        self.client = client
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._structured_ok = config.mode != "text"
        self._logprobs_ok = config.mode == "logprobs"
        self._pool = ThreadPoolExecutor(max_workers=config.max_concurrency, thread_name_prefix="vlm-rater")

    # -- public ----------------------------------------------------------------------------
    def rate(self, queries: Sequence[RatingQuery]) -> list[RatingResult]:
        """One result per query (concurrently, order kept)."""
        results = list(self._pool.map(self._rate_one, queries))
        for r in results:
            self.stats.count_result(r)
        return results

    def close(self) -> None:
        """Stop the worker threads and close the HTTP client."""
        self._pool.shutdown(wait=True)
        close = getattr(self.client, "close", None)
        if callable(close):
            close()

    # -- one query -------------------------------------------------------------------------
    def _rate_one(self, q: RatingQuery) -> RatingResult:
        t0 = time.perf_counter()
        attempts = [0]

        def abstain(reason: str, rationale: str = "") -> RatingResult:
            return RatingResult.abstain(q, self.backend_id, reason, latency_s=time.perf_counter() - t0,
                                        attempts=attempts[0], rationale=rationale)

        if q.frames is None:
            return abstain("no_frames: query carries no frames")
        analysis = ""
        try:
            if self.config.two_step:
                prompt = prompts.analysis_prompt(self.template, q.instruction, len(q.steps))
                content = [*self._image_parts(q), {"type": "text", "text": prompt}]
                reply = self._call(content, attempts, analysis=True)
                analysis = reply.text.strip()
                if not analysis:
                    return abstain(self._no_answer_reason(reply, "analysis"))
                content = [{"type": "text", "text": prompts.rate_from_analysis_prompt(
                    self.template, q.instruction, q.class_names, analysis)}]
            else:
                prompt = prompts.single_prompt(self.template, q.instruction, q.class_names, len(q.steps))
                content = [*self._image_parts(q), {"type": "text", "text": prompt}]
            reason = ""
            for ask in range(self.config.answer_retries + 1):
                reply = self._call(content, attempts, class_names=q.class_names)
                if reply.refusal or reply.finish_reason == "content_filter" or not reply.text.strip():
                    reason = self._no_answer_reason(reply, "answer")
                else:
                    parsed = prompts.parse_rating(reply.text, q.class_names,
                                            truncated=reply.finish_reason == "length")
                    if parsed.label is not None:
                        return RatingResult(
                            query_id=q.query_id, label=parsed.label, num_classes=q.num_classes,
                            backend=self.backend_id, rationale=analysis,
                            probabilities=_class_probabilities(reply.top_logprobs, q.class_names),
                            latency_s=time.perf_counter() - t0, attempts=attempts[0],
                            extra={"answer": reply.text.strip()[:500]})
                    reason = parsed.reason
                self.stats.count_error(reason_kind(reason), retried=ask < self.config.answer_retries)
            return abstain(reason, analysis)
        except _CallFailedError as exc:
            return abstain(str(exc), analysis)
        except Exception as exc:
            log.exception("%s: query %s failed", self.backend_id, q.query_id)
            self.stats.count_error("internal_error", retried=False)
            return abstain(f"internal_error: {type(exc).__name__}: {exc}"[:300], analysis)

    def _image_parts(self, q: RatingQuery) -> list[dict[str, Any]]:
        parts = []
        for frame in q.frames if q.frames is not None else ():
            image: dict[str, Any] = {"url": data_url(frame, self.config.image_format)}
            if self.config.image_detail:
                image["detail"] = self.config.image_detail
            parts.append({"type": "image_url", "image_url": image})
        return parts

    @staticmethod
    def _no_answer_reason(reply: _Reply, what: str) -> str:
        if reply.refusal:
            return f"refusal: {reply.refusal.strip()[:200]}"
        if reply.finish_reason == "content_filter":
            return f"refusal: {what} blocked by the server's content filter"
        return f"empty_reply: no {what} text (finish_reason={reply.finish_reason})"

    # -- one request, with transport retries -----------------------------------------------
    def _request_kwargs(self, analysis: bool, class_names: Sequence[str]) -> dict[str, Any]:
        cfg = self.config
        kw: dict[str, Any] = {"model": (cfg.analysis_model or cfg.model) if analysis else cfg.model}
        if cfg.temperature is not None:
            kw["temperature"] = cfg.temperature
        budget = cfg.analysis_max_tokens if analysis else cfg.max_tokens
        if budget is not None:
            kw[cfg.max_tokens_param] = budget
        if cfg.extra_body:
            kw["extra_body"] = cfg.extra_body
        if analysis:
            return kw
        with self._lock:
            structured = self._structured_ok and cfg.mode in ("auto", "structured")
            logprobs = self._logprobs_ok
        if structured:
            enum = {"type": "string", "enum": list(class_names)}
            schema = {"type": "object", "properties": {"rating": enum}, "required": ["rating"],
                      "additionalProperties": False}
            kw["response_format"] = {"type": "json_schema",
                                     "json_schema": {"name": "rating", "strict": True, "schema": schema}}
        elif logprobs:
            kw["logprobs"] = True
            kw["top_logprobs"] = cfg.top_logprobs
        return kw

    def _call(self, content: list[dict[str, Any]], attempts: list[int], *, analysis: bool = False,
              class_names: Sequence[str] = ()) -> _Reply:
        """One chat completion with retries; raises :class:`_CallFailedError` with the final reason."""
        messages = [{"role": "user", "content": content}]
        attempt = 0
        while True:
            attempt += 1
            attempts[0] += 1
            kw = self._request_kwargs(analysis, class_names)
            retry_after: float | None = None
            try:
                resp = self.client.chat.completions.create(messages=messages, **kw)
                return _reply(resp)
            except openai.APITimeoutError:
                kind, detail = "timeout", f"no reply within {self.config.timeout_s:g} s"
            except openai.APIConnectionError as exc:
                kind, detail = "connection_error", type(exc).__name__
            except openai.RateLimitError as exc:
                retry_after = parse_retry_after(dict(exc.response.headers))
                kind, detail = "rate_limited", "HTTP 429"
                if retry_after is not None:
                    detail += f", Retry-After {retry_after:g} s"
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status in (400, 422) and self._drop_capability(kw):
                    self.stats.count_error("unsupported_option", retried=True)
                    attempts[0] -= 1
                    attempt -= 1
                    continue
                kind, detail = "http_error", f"HTTP {status}"
                if status < 500 and status not in (408, 409):
                    self.stats.count_error(kind, retried=False)
                    # Authentication errors echo (parts of) the key in their body: never keep it.
                    body = ("check the API key variable" if status in (401, 403, 407)
                            else _short(exc))
                    raise _CallFailedError(f"{kind}: {detail} (not retried): {body}") from None
            except (openai.APIResponseValidationError, ValueError, KeyError, IndexError, TypeError,
                    AttributeError) as exc:
                kind, detail = "bad_response", f"{type(exc).__name__}: {_short(exc)}"
            delay = self.policy.delay(attempt, retry_after, self._rng)
            self.stats.count_error(kind, retried=delay is not None)
            if delay is None:
                raise _CallFailedError(f"{kind}: {detail}; gave up after {attempt} attempt(s)")
            log.info("%s: %s (%s), retrying in %.2f s", self.backend_id, kind, detail, delay)
            self._sleep(delay)

    def _drop_capability(self, kw: dict[str, Any]) -> bool:
        """After a 400 in ``auto``/``logprobs`` mode: stop asking for structured output/logprobs.
        Returns True when the rejected request asked for one (it is then repeated without)."""
        with self._lock:
            if "response_format" in kw and self.config.mode == "auto":
                if self._structured_ok:
                    self._structured_ok = False
                    log.warning("%s: server rejected structured output; parsing free text from now on",
                                self.backend_id)
                return True
            if "logprobs" in kw and self.config.mode == "logprobs":
                if self._logprobs_ok:
                    self._logprobs_ok = False
                    log.warning("%s: server rejected logprobs; parsing free text from now on",
                                self.backend_id)
                return True
        return False


def _short(exc: BaseException, n: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _reply(resp: Any) -> _Reply:
    """Extract what we need from a ChatCompletion (raises on a malformed one)."""
    if isinstance(resp, (str, bytes)) or not getattr(resp, "choices", None):
        raise ValueError(f"response without choices: {str(resp)[:120]!r}")
    choice = resp.choices[0]
    msg = choice.message
    top: list[tuple[str, float]] | None = None
    lp = getattr(choice, "logprobs", None)
    if lp is not None and lp.content:
        for tok in lp.content:  # first token that carries a word
            if tok.token.strip(prompts.STRIP_CHARS):
                alternatives = tok.top_logprobs or [tok]
                top = [(t.token, float(t.logprob)) for t in alternatives]
                break
    return _Reply(text=msg.content or "", refusal=getattr(msg, "refusal", None) or "",
                  finish_reason=str(choice.finish_reason or ""), top_logprobs=top)


def _class_probabilities(top: list[tuple[str, float]] | None,
                         class_names: Sequence[str]) -> tuple[float, ...] | None:
    """Class probabilities from the first answer token's alternatives, or ``None`` when the
    classes cannot be told apart by their first token (e.g. "Very Bad" / "Very Good")."""
    if not top:
        return None
    firsts = [name.split()[0].lower() for name in class_names]
    if len(set(firsts)) != len(firsts):
        return None
    mass = [0.0] * len(class_names)
    for token, logprob in top:
        t = token.strip(prompts.STRIP_CHARS).lower()
        if not t:
            continue
        hits = [i for i, f in enumerate(firsts) if f == t or (len(t) >= 2 and f.startswith(t))]
        if len(hits) == 1 and math.isfinite(logprob):
            mass[hits[0]] += math.exp(logprob)
    total = sum(mass)
    if total <= 0.0:
        return None
    return tuple(m / total for m in mass)
