"""Local VLM rater: any ``AutoModelForImageTextToText`` checkpoint (Qwen2-VL/2.5-VL, SmolVLM,
Idefics3, LLaVA, PaliGemma, ...) from a directory or the Hugging Face cache, offline.

Modes:

* ``choice`` (default): constrained choice. The class names are scored as continuations of the
  prompt in one batched forward pass (see :mod:`.label_tokens`); the answer is always a valid
  class and the class probabilities are kept. Deterministic.
* ``generate``: greedy free generation, then :func:`.prompts.parse_rating`; an answer that is not
  exactly one class is an abstention.

Either can follow the paper's analyse-then-rate step (``two_step``): a generated analysis of the
frames, then a text-only rating of that analysis. Several queries are rated per forward pass
(``batch_size`` rows, left-padded).
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ros2_erl_vlm.core.device import resolve_device
from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult
from ros2_erl_vlm.raters import prompts
from ros2_erl_vlm.raters.hf_loading import load_model, load_processor, prepare_tokenizer, resolve_dtype
from ros2_erl_vlm.raters.image_encoding import to_pil
from ros2_erl_vlm.raters.label_tokens import Candidates, candidate_scores, label_candidates, softmax
from ros2_erl_vlm.raters.stats import RaterStats

log = logging.getLogger(__name__)

MODES = ("choice", "generate")
#: Processors that append text after the prompt themselves (and need images in every call).
APPENDS_AFTER_PROMPT = {"PaliGemmaProcessor": "\n"}
CHOICE_SCORING = ("auto", "single_token")


@dataclass
class TransformersRaterConfig:
    """Settings of the local VLM rater.

    Attributes:
        model: checkpoint directory or hub id already in the local Hugging Face cache.
        mode: ``"choice"`` (constrained choice, default) or ``"generate"`` (free text + parsing).
        choice_scoring: ``"auto"`` (whole-candidate likelihoods; one pass when every class name
            is a single token) or ``"single_token"`` (abstain unless every name is one token).
        two_step: analyse the frames first, then rate the analysis (paper's two-call prompt).
        dtype: ``"auto"`` (the checkpoint's; float32 on a CPU without native bfloat16, where
            bfloat16 is far slower), ``"bfloat16"``, ``"float16"`` or ``"float32"``.
        device: ``auto`` (a CUDA GPU when torch sees one, else the CPU), ``cpu``, ``cuda`` or
            ``cuda:N``; CUDA where torch has none is refused (:mod:`ros2_erl_vlm.core.device`).
        threads: torch intra-op threads (``None``: leave as is). Process-wide.
        batch_size: rows per forward pass.
        max_new_tokens: generation budget of an answer (``generate`` mode).
        analysis_max_new_tokens: generation budget of the analysis (``two_step``).
        min_class_mass: ``choice`` mode abstains (``low_class_mass``) when the model gives the class
            names together less than this probability as its answer (it would rather refuse or
            say something else); 0 always picks a class.
        processor_kwargs: extra processor arguments, e.g. ``{"do_image_splitting": false}``.
        prompt: prompt-template overrides (:class:`.prompts.PromptTemplate` fields).
        local_files_only: never touch the network (default); set False to allow a download.
        revision: checkpoint revision.
        trust_remote_code: allow checkpoint-provided code.
    """

    model: str = ""
    mode: str = "choice"
    choice_scoring: str = "auto"
    two_step: bool = False
    dtype: str = "auto"
    device: str = "auto"
    threads: int | None = None
    batch_size: int = 4
    max_new_tokens: int = 16
    analysis_max_new_tokens: int = 192
    min_class_mass: float = 0.01
    processor_kwargs: dict[str, Any] = field(default_factory=dict)
    prompt: dict[str, str] | None = None
    local_files_only: bool = True
    revision: str | None = None
    trust_remote_code: bool = False

    def validate(self) -> TransformersRaterConfig:
        """Raise ``ValueError`` naming the first bad field."""
        if not self.model:
            raise ValueError("transformers rater: 'model' (a checkpoint directory or cached hub id) "
                             "is required")
        if self.model.startswith(("/", "./", "../", "~")) and not Path(self.model).expanduser().is_dir():
            raise ValueError(f"transformers rater: model directory {self.model} not found locally")
        if self.mode not in MODES:
            raise ValueError(f"transformers rater: mode must be one of {MODES}, got {self.mode!r}")
        if self.choice_scoring not in CHOICE_SCORING:
            raise ValueError(f"transformers rater: choice_scoring must be one of {CHOICE_SCORING}, "
                             f"got {self.choice_scoring!r}")
        resolve_dtype(self.dtype)
        try:
            resolve_device(self.device)
        except ValueError as exc:
            raise ValueError(f"transformers rater: {exc}") from None
        for name in ("batch_size", "max_new_tokens", "analysis_max_new_tokens"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"transformers rater: {name} must be >= 1, got {getattr(self, name)}")
        if self.threads is not None and int(self.threads) < 1:
            raise ValueError(f"transformers rater: threads must be >= 1, got {self.threads}")
        if not 0.0 <= float(self.min_class_mass) <= 1.0:
            raise ValueError("transformers rater: min_class_mass must be in [0, 1], "
                             f"got {self.min_class_mass}")
        prompts.PromptTemplate.from_any(self.prompt)
        return self


@dataclass
class _Row:
    """One forward-pass input: chat-templated text and its images."""

    text: str
    images: list[Any] | None


class TransformersRater:
    """Rates queries with a local VLM (see module docstring)."""

    def __init__(self, config: TransformersRaterConfig, *, model: Any = None, processor: Any = None) -> None:
        self.config = config.validate()
        if config.threads:
            torch.set_num_threads(int(config.threads))
        if (model is None) != (processor is None):
            raise ValueError("pass both model and processor, or neither")
        kw = {"local_files_only": config.local_files_only, "revision": config.revision,
              "trust_remote_code": config.trust_remote_code}
        #: Where the model runs (``config.device`` resolved).
        self.device = resolve_device(config.device)
        if processor is None:
            processor = load_processor(config.model, **kw)
            model = load_model(config.model, dtype=config.dtype, device=str(self.device), **kw)
        else:
            if config.dtype != "auto":
                model = model.to(dtype=resolve_dtype(config.dtype, str(self.device)))
            model = model.to(self.device)
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = prepare_tokenizer(processor)
        self.template = prompts.PromptTemplate.from_any(config.prompt)
        self.stats = RaterStats()
        name = Path(config.model.rstrip("/")).name or config.model
        self.backend_id = f"transformers:{name}"
        self.fingerprint = json.dumps({"backend": "transformers", "model": config.model, "mode": config.mode,
                                       "choice_scoring": config.choice_scoring, "two_step": config.two_step,
                                       "dtype": config.dtype, "max_new_tokens": config.max_new_tokens,
                                       "analysis_max_new_tokens": config.analysis_max_new_tokens,
                                       "processor_kwargs": config.processor_kwargs,
                                       "prompt": asdict(self.template)}, sort_keys=True)
        self._has_logits_to_keep = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
        self._end_token = eos if eos is not None else self.tokenizer.eos_token_id
        self._float_dtype = next(self.model.parameters()).dtype
        self._appended = APPENDS_AFTER_PROMPT.get(type(processor).__name__, "")

    # -- public ----------------------------------------------------------------------------
    def rate(self, queries: Sequence[RatingQuery]) -> list[RatingResult]:
        """One result per query: a class (with probabilities in choice mode) or an abstention."""
        out: list[RatingResult | None] = [None] * len(queries)
        todo = []
        for i, q in enumerate(queries):
            if q.frames is None:
                out[i] = RatingResult.abstain(q, self.backend_id, "no_frames: query carries no frames")
            else:
                todo.append(i)
        for start in range(0, len(todo), self.config.batch_size):
            idx = todo[start : start + self.config.batch_size]
            for i, r in zip(idx, self._rate_batch([queries[i] for i in idx]), strict=True):
                out[i] = r
        results = [r for r in out if r is not None]
        for r in results:
            self.stats.count_result(r)
        return results

    def close(self) -> None:
        """Nothing to release (the model is freed with the rater)."""

    # -- one batch -------------------------------------------------------------------------
    def _rate_batch(self, queries: list[RatingQuery]) -> list[RatingResult]:
        t0 = time.perf_counter()
        try:
            if self.config.two_step:
                results = self._two_step(queries)
            else:
                rows = [self._row(prompts.single_prompt(self.template, q.instruction, q.class_names,
                                                        len(q.steps)), q.frames) for q in queries]
                results = self._answer(queries, rows, [""] * len(queries))
        except Exception as exc:
            log.exception("%s: batch of %d failed", self.backend_id, len(queries))
            self.stats.count_error("model_error", retried=False)
            reason = f"model_error: {type(exc).__name__}: {exc}"[:300]
            results = [RatingResult.abstain(q, self.backend_id, reason) for q in queries]
        elapsed = time.perf_counter() - t0
        for r in results:
            r.latency_s = elapsed
        return results

    def _answer(self, queries: list[RatingQuery], rows: list[_Row],
                analyses: list[str]) -> list[RatingResult]:
        """Rate prepared rows by constrained choice or by generation + parsing."""
        if self.config.mode == "choice":
            return self._choose(queries, rows, analyses)
        texts, cut = self._generate(rows, self.config.max_new_tokens)
        return [self._parsed(q, t, a, c) for q, t, a, c in zip(queries, texts, analyses, cut, strict=True)]

    def _two_step(self, queries: list[RatingQuery]) -> list[RatingResult]:
        """Analyse the frames, then rate the analysis text (an empty analysis is an abstention)."""
        rows = [self._row(prompts.analysis_prompt(self.template, q.instruction, len(q.steps)), q.frames)
                for q in queries]
        analyses = [a.strip() for a in self._generate(rows, self.config.analysis_max_new_tokens)[0]]
        results: list[RatingResult | None] = [
            None if a else RatingResult.abstain(q, self.backend_id, "empty_reply: no analysis text")
            for q, a in zip(queries, analyses, strict=True)]
        idx = [i for i, r in enumerate(results) if r is None]
        if idx:
            # text only, as in the paper, unless the processor cannot do without images
            rows = [self._row(prompts.rate_from_analysis_prompt(self.template, queries[i].instruction,
                                                          queries[i].class_names, analyses[i]),
                              queries[i].frames if self._appended else None)
                    for i in idx]
            answered = self._answer([queries[i] for i in idx], rows, [analyses[i] for i in idx])
            for i, r in zip(idx, answered, strict=True):
                results[i] = r
        return [r for r in results if r is not None]

    def _row(self, prompt: str, frames: np.ndarray | None) -> _Row:
        images = to_pil(frames) if frames is not None else None
        n = 0 if images is None else len(images)
        content = [{"type": "image"} for _ in range(n)] + [{"type": "text", "text": prompt}]
        if getattr(self.processor, "chat_template", None):
            text = self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                      add_generation_prompt=True, tokenize=False)
        else:  # no chat template (e.g. PaliGemma): image tokens, the prompt, a newline
            image_token = getattr(self.processor, "image_token", "<image>")
            text = image_token * n + prompt + ("" if self._appended else "\n")
        return _Row(text, images)

    def _inputs(self, rows: Sequence[_Row]) -> dict[str, Any]:
        texts = [r.text for r in rows]
        if rows[0].images is None:
            enc = self.processor(text=texts, padding=True, return_tensors="pt")
        else:
            enc = self.processor(text=texts, images=[r.images for r in rows], padding=True,
                                 return_tensors="pt", **self.config.processor_kwargs)
        out = {}
        for k, v in enc.items():
            if k == "labels":  # PaliGemma's processor adds training labels: no loss wanted here
                continue
            if isinstance(v, torch.Tensor):
                v = v.to(self.device)
                if v.is_floating_point():
                    v = v.to(self._float_dtype)
            out[k] = v
        return out

    @torch.inference_mode()
    def _next_logprobs(self, rows: Sequence[_Row], keep: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-token log-probabilities at each row's last ``keep`` positions ``(B, keep, V)``, and
        the rows' input ids."""
        enc = self._inputs(rows)
        kw = {"logits_to_keep": keep} if self._has_logits_to_keep else {}
        logits = self.model(**enc, **kw, use_cache=False).logits[:, -keep:, :]
        return torch.log_softmax(logits.float(), dim=-1), enc["input_ids"]

    def _stop_ids(self) -> set[int]:
        """Token ids that end an answer (end-of-turn / end-of-sequence, and the padding id)."""
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.tokenizer):
            for name in ("eos_token_id", "pad_token_id"):
                val = getattr(source, name, None)
                if isinstance(val, int):
                    ids.add(val)
                elif isinstance(val, (list, tuple)):
                    ids.update(int(v) for v in val if isinstance(v, int))
        return ids

    @torch.inference_mode()
    def _generate(self, rows: Sequence[_Row], max_new_tokens: int) -> tuple[list[str], list[bool]]:
        """Greedy answers and, per row, whether the token budget cut it off (no end token)."""
        texts: list[str] = []
        cut: list[bool] = []
        stop = torch.tensor(sorted(self._stop_ids()), dtype=torch.long, device=self.device)
        for start in range(0, len(rows), self.config.batch_size):
            enc = self._inputs(rows[start : start + self.config.batch_size])
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
            new = out[:, enc["input_ids"].shape[1] :]
            texts += self.tokenizer.batch_decode(new, skip_special_tokens=True)
            ended = torch.isin(new, stop).any(dim=1) if len(stop) else torch.zeros(len(new), dtype=torch.bool)
            cut += [bool(new.shape[1] >= max_new_tokens and not e) for e in ended.tolist()]
        return texts, cut

    def _parsed(self, q: RatingQuery, text: str, analysis: str, truncated: bool = False) -> RatingResult:
        parsed = prompts.parse_rating(text, q.class_names, truncated=truncated)
        rationale = analysis or text.strip()
        extra = {"mode": "generate", "answer": text.strip()[:500], "truncated": truncated}
        if parsed.label is None:
            return RatingResult.abstain(q, self.backend_id, parsed.reason, rationale=rationale)
        return RatingResult(query_id=q.query_id, label=parsed.label, num_classes=q.num_classes,
                            backend=self.backend_id, rationale=rationale, extra=extra)

    def _choose(self, queries: list[RatingQuery], rows: list[_Row],
                analyses: list[str]) -> list[RatingResult]:
        """Constrained choice: score every query's candidates in batched forward passes."""
        results: list[RatingResult | None] = [None] * len(queries)
        cands: dict[int, Candidates] = {}
        chain_rows: list[tuple[int, int, _Row]] = []  # (query, prefix index of a chain, row)
        for i, (q, row) in enumerate(zip(queries, rows, strict=True)):
            try:
                context = row.text + self._appended
                c = label_candidates(self.tokenizer, context, q.class_names, self._end_token)
            except ValueError as exc:
                results[i] = RatingResult.abstain(q, self.backend_id, f"label_tokens: {exc}")
                continue
            if not c.single_token and (self.config.choice_scoring == "single_token" or self._appended):
                why = ("choice_scoring='single_token'" if not self._appended else
                       f"{type(self.processor).__name__} appends text after the prompt; use single-token "
                       "class names or mode='generate'")
                results[i] = RatingResult.abstain(
                    q, self.backend_id, f"label_tokens: class names {list(q.class_names)} are not single "
                    f"tokens for this tokenizer ({why})")
                continue
            cands[i] = c
            for k in c.chains:
                chain_rows.append((i, k, _Row(row.text + c.prefix_texts[k], row.images)))
        logprobs: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}  # (query, prefix) -> next-token lp
        bad: set[int] = set()
        for start in range(0, len(chain_rows), self.config.batch_size):
            chunk = chain_rows[start : start + self.config.batch_size]
            keep = 1 + max(len(cands[i].prefixes[k]) for i, k, _ in chunk)
            lp, ids = self._next_logprobs([r for _, _, r in chunk], keep)
            for row_i, (i, k, _) in enumerate(chunk):
                chain = cands[i].prefixes[k]
                if chain and tuple(ids[row_i, -len(chain):].tolist()) != chain:
                    bad.add(i)
                for d in range(len(chain) + 1):  # after chain[:d]: position len(chain) - d from the end
                    logprobs[(i, chain[:d])] = lp[row_i, keep - 1 - len(chain) + d].cpu().numpy()
        for i, c in cands.items():
            q = queries[i]
            if i in bad:
                results[i] = RatingResult.abstain(q, self.backend_id, "label_tokens: a class name does not "
                                                  "tokenize the same way after the prompt")
                continue
            scores = candidate_scores(c, [logprobs[(i, p)] for p in c.prefixes])
            if np.any(np.isnan(scores)) or not np.any(np.isfinite(scores)):
                results[i] = RatingResult.abstain(q, self.backend_id, "nan_probabilities: the model's "
                                                  "class scores are not finite", rationale=analyses[i])
                continue
            # Probability that the model would answer with any class name at all: a model that
            # would rather refuse or say something else is not forced into a class.
            class_mass = float(np.exp(scores).sum())
            scoring = "single_token" if c.single_token else "full"
            if class_mass < self.config.min_class_mass:
                results[i] = RatingResult.abstain(
                    q, self.backend_id, f"low_class_mass: the class names get {class_mass:.3g} of the "
                    f"answer probability (min_class_mass {self.config.min_class_mass:g})",
                    rationale=analyses[i])
                continue
            probs = softmax(scores)
            results[i] = RatingResult(
                query_id=q.query_id, label=int(np.argmax(probs)), num_classes=q.num_classes,
                backend=self.backend_id, probabilities=tuple(float(p) for p in probs), rationale=analyses[i],
                extra={"mode": "choice", "scoring": scoring, "class_mass": class_mass})
        return [r for r in results if r is not None]
