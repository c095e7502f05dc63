"""Random-weight VLMs built from configs in code: tests and benchmarks without downloading weights.

Each builder returns ``(model, processor)`` of a real transformers architecture (Idefics3 /
SmolVLM, Qwen2-VL, Qwen2.5-VL, LLaVA, PaliGemma) with a real processor (image processor + a byte-level BPE
tokenizer trained in milliseconds on a small corpus + a chat template), so the whole
``chat template -> processor -> model -> rating`` path runs as with a downloaded checkpoint.
:func:`save_vlm` writes a checkpoint directory that loads with ``HF_HUB_OFFLINE=1``.
:func:`rig_output_head` makes generation deterministic (a biased linear output layer), so
free-text parsing can be tested end to end.

The weights are random: the *answers* mean nothing, only the mechanics and the speed are real.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>",
    "<image>", "<fake_token_around_image>", "<global-img>",
    "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>",
    *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
)

_CORPUS_WORDS = (
    "Bad", "Average", "Good", "Very Bad", "Very Good", "bad", "average", "good", "very",
    "The image shows a robot arm.", "The robot is trying to open the drawer.",
    "place the green cube so that it lies on the square hole",
    "place the soccer ball so that it lies inside the goal", "open the door",
    "Focus on the target object and judge how far the task has been completed.",
    "Rate the outcome on this scale, from worst to best:", "Answer with exactly one of:",
    "analysis of camera images", "consecutive camera frames", "User: Assistant: Rating:",
)

#: ChatML (Qwen): the answer starts after "assistant\n".
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: SmolVLM/Idefics3 style: the answer starts after "Assistant:" (so with a leading space).
IDEFICS_TEMPLATE = (
    "<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}:"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)

#: LLaVA-1.5 style: "USER: <image>\n... ASSISTANT:".
LLAVA_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | upper }}: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    " {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def synthetic_tokenizer(vocab_size: int = 700, eos_token: str = "<|endoftext|>") -> Any:
    """A byte-level BPE tokenizer (``PreTrainedTokenizerFast``) trained on a tiny rating corpus.

    "Bad", "Average", "Good" (with and without a leading space) are single tokens; "Very Bad" is
    several, like in real vocabularies.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = []
    for w in _CORPUS_WORDS:
        corpus += [w, f" {w}", f"\n{w}", f"{w}."] * 40
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos_token, pad_token="<|endoftext|>")


def _text_config(tok: Any, eos: str, **overrides: Any) -> dict[str, Any]:
    cfg = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
           "num_key_value_heads": 2, "vocab_size": len(tok), "max_position_embeddings": 2048,
           "bos_token_id": tok.convert_tokens_to_ids("<|im_start|>"),
           "eos_token_id": tok.convert_tokens_to_ids(eos), "pad_token_id": tok.pad_token_id}
    cfg.update(overrides)
    return cfg


def _finish(model: Any, tok: Any, eos: str, seed: int) -> Any:
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids(eos)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = tok.convert_tokens_to_ids("<|im_start|>")
    return model.eval()


def _idefics3(seed: int, dtype: torch.dtype | None, vision: dict[str, int], text: dict[str, Any],
              scale_factor: int, image_seq_len: int, **config: Any) -> tuple[Any, Any]:
    """An Idefics3 model and processor of the given dimensions (one untiled frame per image)."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    torch.manual_seed(seed)
    eos = "<end_of_utterance>"
    tok = synthetic_tokenizer(eos_token=eos)
    cfg = Idefics3Config(vision_config=vision,
                         text_config={"model_type": "llama", **_text_config(tok, eos, **text)},
                         scale_factor=scale_factor, image_token_id=tok.convert_tokens_to_ids("<image>"),
                         **config)
    prev = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        model = Idefics3ForConditionalGeneration(cfg)
    finally:
        torch.set_default_dtype(prev)
    size = {"longest_edge": vision["image_size"]}
    ip = Idefics3ImageProcessorPil(do_image_splitting=False, size=size, max_image_size=size)
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=image_seq_len,
                             chat_template=IDEFICS_TEMPLATE)
    if dtype is not None:
        model = model.to(dtype)
    return _finish(model, tok, eos, seed), proc


def tiny_idefics3(seed: int = 0) -> tuple[Any, Any]:
    """A tiny Idefics3 (SmolVLM's architecture): 4 image tokens per frame, 32 px frames."""
    return _idefics3(seed, None, {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                  "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                     {}, scale_factor=2, image_seq_len=4)


def smolvlm_256m_like(dtype: torch.dtype = torch.bfloat16, seed: int = 0,
                      image_size: int = 512) -> tuple[Any, Any]:
    """Idefics3 with SmolVLM-256M-Instruct's dimensions (SigLIP-B/16 at 512 px, 30-layer 576-wide
    Llama text model, 49,280-token vocabulary; ~256M parameters), random weights.

    The image processor does not split frames into tiles (one 512 px tile = 64 image tokens per
    frame), which is how one would run it on 224 px camera frames.
    """
    text = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                num_key_value_heads=3, vocab_size=49280, max_position_embeddings=8192,
                rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True)
    vision = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
              "num_attention_heads": 12, "image_size": image_size, "patch_size": 16}
    return _idefics3(seed, dtype, vision, text, scale_factor=4,
                     image_seq_len=(image_size // 16) ** 2 // 16, tie_word_embeddings=True)


def tiny_qwen2_vl(seed: int = 0, version: str = "2") -> tuple[Any, Any]:
    """A tiny Qwen2-VL (``version="2"``) or Qwen2.5-VL (``"2.5"``) with an image-only processor
    (the stock processor wants a torchvision video processor). 56 px frames, 4 tokens each."""
    from transformers import Qwen2VLImageProcessorPil

    from ros2_erl_vlm.raters.hf_loading import image_only_processor_class

    torch.manual_seed(seed)
    eos = "<|im_end|>"
    tok = synthetic_tokenizer(eos_token=eos)
    text = _text_config(tok, eos, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})
    ids = {"image_token_id": tok.convert_tokens_to_ids("<|image_pad|>"),
           "video_token_id": tok.convert_tokens_to_ids("<|video_pad|>"),
           "vision_start_token_id": tok.convert_tokens_to_ids("<|vision_start|>")}
    if version == "2":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

        cfg = Qwen2VLConfig(vision_config={"depth": 2, "embed_dim": 32, "hidden_size": 32, "num_heads": 2,
                                           "mlp_ratio": 2, "patch_size": 14, "spatial_merge_size": 2,
                                           "temporal_patch_size": 2},
                            text_config=text, **ids)
        model, proc_cls = Qwen2VLForConditionalGeneration(cfg), Qwen2VLProcessor
    elif version == "2.5":
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

        cfg = Qwen2_5_VLConfig(vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64,
                                              "num_heads": 2, "out_hidden_size": 32, "patch_size": 14,
                                              "spatial_merge_size": 2, "temporal_patch_size": 2,
                                              "window_size": 56, "fullatt_block_indexes": [1]},
                               text_config=text, **ids)
        model, proc_cls = Qwen2_5_VLForConditionalGeneration(cfg), Qwen2_5_VLProcessor
    else:
        raise ValueError(f"Qwen VL version must be '2' or '2.5', got {version!r}")
    ip = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=56 * 56)
    proc = image_only_processor_class(proc_cls)(image_processor=ip, tokenizer=tok,
                                                chat_template=CHATML_TEMPLATE)
    return _finish(model, tok, eos, seed), proc


def tiny_llava(seed: int = 0) -> tuple[Any, Any]:
    """A tiny LLaVA-1.5 (CLIP vision tower, Llama text model): 28 px frames, 4 tokens each."""
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    torch.manual_seed(seed)
    eos = "<|endoftext|>"
    tok = synthetic_tokenizer(eos_token=eos)
    cfg = LlavaConfig(
        vision_config={"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 28,
                       "patch_size": 14, "projection_dim": 32},
        text_config={"model_type": "llama", **_text_config(tok, eos)},
        image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
    )
    model = LlavaForConditionalGeneration(cfg)
    ip = CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    proc = LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=14,
                          vision_feature_select_strategy="default", num_additional_image_tokens=1,
                          chat_template=LLAVA_TEMPLATE, image_token="<image>")
    return _finish(model, tok, eos, seed), proc


def tiny_paligemma(seed: int = 0) -> tuple[Any, Any]:
    """A tiny PaliGemma (SigLIP vision tower, Gemma text model, no chat template): 28 px frames,
    4 tokens each."""
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
    )

    torch.manual_seed(seed)
    eos = "<|endoftext|>"
    tok = synthetic_tokenizer(eos_token=eos)
    tok.bos_token = "<|im_start|>"
    ip = SiglipImageProcessorPil(size={"height": 28, "width": 28})
    ip.image_seq_length = 4
    proc = PaliGemmaProcessor(image_processor=ip, tokenizer=tok)  # adds <image> and location tokens
    cfg = PaliGemmaConfig(
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 28, "patch_size": 14,
                       "projection_dim": 32},
        text_config={"model_type": "gemma", **_text_config(tok, eos, head_dim=16)},
        image_token_id=proc.image_token_id, projection_dim=32,
    )
    return _finish(PaliGemmaForConditionalGeneration(cfg), tok, eos, seed), proc


BUILDERS = {
    "idefics3": tiny_idefics3,
    "qwen2_vl": lambda seed=0: tiny_qwen2_vl(seed, "2"),
    "qwen2_5_vl": lambda seed=0: tiny_qwen2_vl(seed, "2.5"),
    "llava": tiny_llava,
    "paligemma": tiny_paligemma,
}


def save_vlm(model: Any, processor: Any, path: str | Path) -> Path:
    """Write a checkpoint directory (weights, config, processor, tokenizer, chat template).

    An image-only processor is saved under its stock class name, as a real checkpoint has it.
    """
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    name = type(processor).__name__.removesuffix("ImageOnly")
    for fname in ("processor_config.json", "preprocessor_config.json"):
        f = path / fname
        if f.exists():
            data = json.loads(f.read_text())
            if "processor_class" in data:
                data["processor_class"] = name
                f.write_text(json.dumps(data, indent=2))
    return path


def rig_output_head(model: Any, bias: Mapping[int, float]) -> Any:
    """Replace the output layer by a constant one: logits are ``bias`` (0 elsewhere) at every
    position, so greedy generation repeats the highest-bias token, and choice scoring is exact.
    """
    head = model.get_output_embeddings()
    vocab = head.out_features
    rigged = torch.nn.Linear(head.in_features, vocab, bias=True, dtype=head.weight.dtype)
    with torch.no_grad():
        rigged.weight.zero_()
        rigged.bias.zero_()
        for token, value in bias.items():
            rigged.bias[int(token)] = float(value)
    model.lm_head = rigged
    return model


class _SequenceHead(torch.nn.Module):
    """Output layer emitting ``tokens[i]`` on its ``i``-th call (the last one from then on)."""

    def __init__(self, vocab: int, tokens: Sequence[int], dtype: torch.dtype) -> None:
        super().__init__()
        self.vocab, self.tokens, self.dtype, self.calls = vocab, [int(t) for t in tokens], dtype, 0

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*hidden.shape[:-1], self.vocab, dtype=self.dtype)
        logits[..., self.tokens[min(self.calls, len(self.tokens) - 1)]] = 30.0
        self.calls += 1
        return logits


def rig_output_sequence(model: Any, tokens: Sequence[int]) -> Any:
    """Make greedy generation emit ``tokens`` in order (e.g. a class name, then end of turn).

    The output layer counts its calls, one per generated token, and ``model.generate`` is wrapped
    to restart the count, so every generated row (and every batch) gets the same answer.
    """
    head = model.get_output_embeddings()
    seq = _SequenceHead(head.out_features, tokens, head.weight.dtype)
    model.lm_head = seq
    generate = model.generate

    def restarting_generate(*args: Any, **kwargs: Any) -> Any:
        seq.calls = 0
        return generate(*args, **kwargs)

    model.generate = restarting_generate
    return model
