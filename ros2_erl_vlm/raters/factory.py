"""``make_rater(config)``: one rater from a config dict (YAML/ROS parameters) or dataclass.

Config keys::

    backend: oracle | simulated_vlm | transformers | openai | replay      (required)
    <backend options>                                     flat, or in a section named after the backend
    cache: false          answer repeated queries from a cache (true: in memory; or give cache_path)
    cache_path: null      persistent cache file
    log_path: null        rating log: every result is appended here before it is returned
    store_frames: false   also store the frames in the rating log
    reuse_logged: false   answer a re-sent query id from the rating log (no second backend call)

Backend options: ``transformers`` -> :class:`.transformers_rater.TransformersRaterConfig` fields;
``openai`` -> :class:`.openai_rater.OpenAIRaterConfig` fields; ``replay`` -> ``paths`` (one or a
list of rating logs; ``path`` also accepted), ``match``, ``source_backend``; ``oracle`` -> ``task``
(a task name; its ``bin_truth`` bins the truth), ``noise``, ``noise_mode``, ``abstain_rate``,
``seed``; ``simulated_vlm`` -> ``task`` (its binning and thresholds), ``seed`` and the
:class:`.simulated_vlm.SimulatedVlmConfig` fields (``quality``, ``width``, ``over_rate``,
``under_rate``, ``far_rate``, ``state_decimals``). Sections of other backends are ignored, so one
file can hold all of them. Anything else is a ``ValueError`` that names the key. Backend modules
are imported only when selected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ros2_erl_vlm.core.rating.rater import Rater

BACKENDS = ("oracle", "simulated_vlm", "transformers", "openai", "replay")
WRAPPER_KEYS = ("cache", "cache_path", "log_path", "store_frames", "reuse_logged")


def _as_dict(config: Any) -> dict[str, Any]:
    if isinstance(config, dict):
        return dict(config)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        from ros2_erl_vlm.raters.openai_rater import OpenAIRaterConfig
        from ros2_erl_vlm.raters.transformers_rater import TransformersRaterConfig

        data = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        if isinstance(config, TransformersRaterConfig):
            data["backend"] = "transformers"
        elif isinstance(config, OpenAIRaterConfig):
            data["backend"] = "openai"
        return data
    raise ValueError(f"rater config must be a dict or a dataclass, got {type(config).__name__}")


def _fields(cls: type, options: dict[str, Any], backend: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(f"{backend} rater: unknown option(s) {unknown}; valid: {sorted(names)}")
    return cls(**options)


def _transformers(options: dict[str, Any]) -> Rater:
    from ros2_erl_vlm.raters.transformers_rater import TransformersRater, TransformersRaterConfig

    return TransformersRater(_fields(TransformersRaterConfig, options, "transformers").validate())


def _openai(options: dict[str, Any]) -> Rater:
    from ros2_erl_vlm.raters.openai_rater import OpenAIRater, OpenAIRaterConfig

    return OpenAIRater(_fields(OpenAIRaterConfig, options, "openai").validate())


def _replay(options: dict[str, Any]) -> Rater:
    from ros2_erl_vlm.raters.replay_rater import ReplayRater

    opts = dict(options)
    paths = opts.pop("paths", None) or opts.pop("path", None)
    if not paths:
        raise ValueError("replay rater: 'paths' (the rating log(s) to replay) is required")
    match = opts.pop("match", "content")
    source = opts.pop("source_backend", None)
    if opts:
        raise ValueError(f"replay rater: unknown option(s) {sorted(opts)}; valid: ['match', 'paths', "
                         "'source_backend']")
    return ReplayRater(paths, match=match, backend=source)


def _oracle(options: dict[str, Any]) -> Rater:
    from ros2_erl_vlm.raters.oracle import OracleConfig, OracleRater

    opts = dict(options)
    bin_truth: Callable[[float, bool, int], int] | None = opts.pop("bin_truth", None)
    task = opts.pop("task", None)
    seed = opts.pop("seed", None)
    backend_id = opts.pop("backend_id", "oracle")
    if bin_truth is None:
        if not task:
            raise ValueError("oracle rater: 'task' (whose thresholds bin the simulator truth) is required")
        from ros2_erl_vlm.envs import load_task

        bin_truth = load_task(str(task)).bin_truth  # ValueError names the known tasks
    config = _fields(OracleConfig, opts, "oracle")
    return OracleRater(bin_truth, config, seed=seed, backend_id=backend_id)


def _simulated_vlm(options: dict[str, Any]) -> Rater:
    from ros2_erl_vlm.raters.simulated_vlm import BACKEND_ID, SimulatedVlmConfig, SimulatedVlmRater

    opts = dict(options)
    task = opts.pop("task", None)
    seed = opts.pop("seed", None)
    backend_id = opts.pop("backend_id", BACKEND_ID)
    if not task:
        raise ValueError("simulated_vlm rater: 'task' (whose thresholds bin the simulator truth) is required")
    if isinstance(task, str):
        from ros2_erl_vlm.envs import load_task

        task = load_task(task)  # ValueError names the known tasks
    config = _fields(SimulatedVlmConfig, opts, "simulated_vlm")
    return SimulatedVlmRater.for_task(task, config, seed=seed, backend_id=backend_id)


_BUILDERS: dict[str, Callable[[dict[str, Any]], Rater]] = {
    "oracle": _oracle, "simulated_vlm": _simulated_vlm, "transformers": _transformers, "openai": _openai,
    "replay": _replay,
}


def _parse(config: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(backend, backend options, wrapper options)`` of a rater config (ValueError when malformed)."""
    cfg = _as_dict(config)
    backend = cfg.pop("backend", None)
    if backend not in BACKENDS:
        raise ValueError(f"rater backend must be one of {BACKENDS}, got {backend!r}")
    wrap = {k: cfg.pop(k) for k in WRAPPER_KEYS if k in cfg}
    section = cfg.pop(backend, None) or {}
    if not isinstance(section, dict):
        raise ValueError(f"rater config section {backend!r} must be a mapping, got {type(section).__name__}")
    for other in BACKENDS:
        cfg.pop(other, None)
    return backend, {**section, **cfg}, wrap


def make_rater(config: Any) -> Rater:
    """Build the configured rater, wrapped in a cache and a rating log when asked for.

    Raises:
        ValueError: unknown backend or option, a missing required option (model, API-key
            variable, replay log, oracle task), or an invalid value.
    """
    backend, options, wrap = _parse(config)
    rater = _BUILDERS[backend](options)
    cache, cache_path = wrap.get("cache", False), wrap.get("cache_path")
    if cache or cache_path:
        from ros2_erl_vlm.raters.cache import CachedRater

        rater = CachedRater(rater, cache_path)
    if wrap.get("log_path"):
        from ros2_erl_vlm.raters.rating_log import RatingLogRater

        rater = RatingLogRater(rater, wrap["log_path"], store_frames=bool(wrap.get("store_frames", False)),
                               reuse_logged=bool(wrap.get("reuse_logged", False)))
    return rater


def _hub_model_cached(model: str, revision: str | None) -> bool:
    """Whether a hub id's ``config.json`` is in the local Hugging Face cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model, "config.json", revision=revision)
    except ValueError:  # not a valid repo id
        return False
    return isinstance(found, str)


def check_rater_config(config: Any) -> None:
    """Validate a rater config as :func:`make_rater` would, without loading a model or calling a
    server: every option, the model (a local checkpoint directory with a ``config.json``, or a
    hub id already in the local Hugging Face cache when ``local_files_only``), the API-key
    variable, the replay logs. Cheap backends (oracle, simulated VLM) are built.

    Raises:
        ValueError: the first problem, naming the option, file or variable.
    """
    backend, options, _ = _parse(config)
    if backend == "transformers":
        from ros2_erl_vlm.raters.transformers_rater import TransformersRaterConfig

        cfg = _fields(TransformersRaterConfig, options, "transformers").validate()
        local = Path(cfg.model).expanduser()
        if local.is_dir():
            if not (local / "config.json").is_file():
                raise ValueError(f"transformers rater: model directory {cfg.model} has no config.json "
                                 "(not a transformers checkpoint)")
        elif cfg.local_files_only and not _hub_model_cached(cfg.model, cfg.revision):
            raise ValueError(f"transformers rater: model {cfg.model!r} is neither a local directory nor "
                             "in the Hugging Face cache (HF_HOME / HF_HUB_CACHE); download it first "
                             f"(huggingface-cli download {cfg.model}) or give a checkpoint directory")
    elif backend == "openai":
        from ros2_erl_vlm.raters.openai_rater import OpenAIRaterConfig

        _fields(OpenAIRaterConfig, options, "openai").validate()  # the API-key variable included
    elif backend == "replay":
        paths = options.get("paths") or options.get("path")
        for path in [paths] if isinstance(paths, str) else list(paths or []):
            if not Path(path).expanduser().is_file():
                raise ValueError(f"replay rater: rating log {path} not found")
        _replay(options)
    else:
        _BUILDERS[backend](options)
