"""Loading a Hugging Face image-text-to-text model and its processor, offline by default.

Two traps handled here:

* ``AutoProcessor.from_pretrained`` silently returns a bare tokenizer when it cannot build the
  processor (e.g. Qwen2-VL's wants a torchvision video processor). We check for a real
  ``ProcessorMixin`` and otherwise build an *image-only* variant of the model's processor class:
  the same class without its video processor (ratings never send video).
* A missing model must fail fast with a readable error, not try the network: ``local_files_only``
  is on unless the caller switches it off.
"""

from __future__ import annotations

import functools
import inspect
import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype | str] = {
    "auto": "auto", "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
    "fp16": torch.float16, "half": torch.float16, "float32": torch.float32, "fp32": torch.float32,
    "float": torch.float32,
}


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX). Without it, torch's
    bfloat16 matrix products fall back to a slow path: 35-120x slower than float32 measured on an
    AVX2-only EPYC (``bench/results/rater_throughput.json``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(name: str | torch.dtype, device: str = "cpu") -> torch.dtype | str:
    """``"bfloat16"`` (etc.) to a torch dtype. ``"auto"``: the checkpoint's dtype, except on a
    CPU without native bfloat16, where it is float32."""
    if isinstance(name, torch.dtype):
        return name
    try:
        dtype = DTYPES[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use one of {sorted(DTYPES)}") from None
    if dtype == "auto" and str(device).startswith("cpu") and not cpu_has_fast_bf16():
        return torch.float32
    return dtype


@functools.cache
def image_only_processor_class(cls: type) -> type:
    """``cls`` without its video processor: ``__init__(image_processor, tokenizer, **kwargs)``.

    Processor classes list their sub-processors from their ``__init__`` signature, so a subclass
    whose signature omits ``video_processor`` neither needs nor processes one.
    """
    params = inspect.signature(cls.__init__).parameters
    if "video_processor" not in params:
        return cls

    def init(self: Any, image_processor: Any = None, tokenizer: Any = None, **kwargs: Any) -> None:
        cls.__init__(self, image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                     **kwargs)

    return type(f"{cls.__name__}ImageOnly", (cls,), {"__init__": init, "__module__": __name__})


def _is_processor(obj: Any) -> bool:
    from transformers import ProcessorMixin

    return isinstance(obj, ProcessorMixin) and hasattr(obj, "image_processor")


def load_processor(model: str, *, local_files_only: bool = True, revision: str | None = None,
                   trust_remote_code: bool = False) -> Any:
    """The multimodal processor of ``model`` (a directory or a hub id in the local cache).

    Raises:
        ValueError: the model cannot be found, or has no image processor.
    """
    from transformers import AutoConfig, AutoProcessor
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    kw: dict[str, Any] = {"local_files_only": local_files_only, "trust_remote_code": trust_remote_code}
    if revision:
        kw["revision"] = revision
    try:
        config = AutoConfig.from_pretrained(model, **kw)
    except (OSError, ValueError) as exc:
        where = "locally (directory or Hugging Face cache)" if local_files_only else "locally or on the hub"
        raise ValueError(f"cannot load VLM {model!r}: not found {where} ({exc})") from exc
    first_error: Exception | None = None
    try:
        proc = AutoProcessor.from_pretrained(model, **kw)
        if _is_processor(proc):
            return proc
    except (ImportError, ValueError, OSError, TypeError, KeyError) as exc:
        first_error = exc
    cls = PROCESSOR_MAPPING.get(type(config), None)
    if cls is None:
        why = first_error or "AutoProcessor gave a tokenizer only"
        raise ValueError(f"{model!r}: no multimodal processor could be built ({why})")
    image_only = image_only_processor_class(cls)
    try:
        proc = _build_from_parts(image_only, cls, model, kw)
    except (ImportError, ValueError, OSError, TypeError, KeyError) as exc:
        raise ValueError(f"{model!r}: cannot build processor {cls.__name__} ({exc})") from exc
    log.info("%s: using %s (image-only processor)", model, image_only.__name__)
    return proc


def _build_from_parts(image_only: type, cls: type, model: str, kw: dict[str, Any]) -> Any:
    """Image processor + tokenizer + the saved processor settings (chat template, ...)."""
    from transformers import AutoImageProcessor, AutoTokenizer

    processor_dict, _ = cls.get_processor_dict(model, **kw)
    skip = {"self", "image_processor", "tokenizer", "video_processor"}
    named = {n for n, p in inspect.signature(cls.__init__).parameters.items()
             if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    settings = {k: v for k, v in processor_dict.items() if k in named}
    return image_only(image_processor=AutoImageProcessor.from_pretrained(model, **kw),
                      tokenizer=AutoTokenizer.from_pretrained(model, **kw), **settings)


def prepare_tokenizer(processor: Any) -> Any:
    """Left padding (so a batch's last position is every row's next token) and a pad token."""
    tok = processor.tokenizer
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(model: str, *, dtype: str | torch.dtype = "auto", device: str = "cpu",
               local_files_only: bool = True, revision: str | None = None,
               trust_remote_code: bool = False) -> Any:
    """``AutoModelForImageTextToText`` for ``model``, in eval mode on ``device``."""
    from transformers import AutoModelForImageTextToText

    kw: dict[str, Any] = {"local_files_only": local_files_only, "trust_remote_code": trust_remote_code,
                          "dtype": resolve_dtype(dtype, device)}
    if revision:
        kw["revision"] = revision
    try:
        net = AutoModelForImageTextToText.from_pretrained(model, **kw)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load VLM {model!r} as an image-text-to-text model ({exc})") from exc
    return net.to(device).eval()
