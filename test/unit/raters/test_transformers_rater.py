"""The local-VLM rater on tiny random-weight models: the real chat template -> processor -> model
-> rating path of Idefics3 (SmolVLM), Qwen2-VL, Qwen2.5-VL and LLaVA."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.raters.random_weight_vlms import BUILDERS, rig_output_head, rig_output_sequence
from ros2_erl_vlm.raters.transformers_rater import TransformersRater, TransformersRaterConfig

ARCHS = ("idefics3", "qwen2_vl", "qwen2_5_vl", "llava")


def rater(model, processor, **kw) -> TransformersRater:
    # Random weights spread the answer over the whole vocabulary: no class-mass floor by default.
    kw.setdefault("min_class_mass", 0.0)
    return TransformersRater(TransformersRaterConfig(model="tiny", **kw), model=model, processor=processor)


def token(processor, prompt_end: str, word: str) -> int:
    """Id of ``word`` as the model would emit it after a prompt ending in ``prompt_end``."""
    sep = "" if prompt_end[-1].isspace() else " "
    ids = processor.tokenizer(sep + word, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1
    return ids[0]


def answer_prefix(processor) -> str:
    msgs = [{"role": "user", "content": [{"type": "text", "text": "x"}]}]
    return processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


@pytest.mark.parametrize("arch", ARCHS)
def test_choice_gives_valid_labels_and_probabilities(arch, tiny_vlms, make_query):
    model, proc = tiny_vlms(arch)
    r = rater(model, proc, batch_size=3)
    queries = [make_query(0, n=3), make_query(1, n=5, frames=2), make_query(2, n=2, frames=3),
               make_query(3, n=4)]
    results = r.rate(queries)
    assert [x.query_id for x in results] == ["q0", "q1", "q2", "q3"]
    for q, res in zip(queries, results, strict=True):
        assert not res.abstained, res.abstain_reason
        assert 0 <= res.label < q.num_classes
        p = np.asarray(res.probabilities)
        assert p.shape == (q.num_classes,)
        assert p.sum() == pytest.approx(1.0, abs=1e-6)
        assert (p >= 0).all()
        assert res.label == int(p.argmax())
    assert results[0].extra["scoring"] == "single_token"
    assert results[1].extra["scoring"] == "full"
    assert r.stats.ratings == 4
    assert r.stats.abstentions == 0


@pytest.mark.parametrize("arch", ("idefics3", "qwen2_vl"))
def test_batching_does_not_change_probabilities(arch, tiny_vlms, make_query):
    model, proc = tiny_vlms(arch)
    queries = [make_query(i, n=3 + i % 3, frames=1 + i % 2) for i in range(5)]
    one = rater(model, proc, batch_size=1).rate(queries)
    many = rater(model, proc, batch_size=8).rate(queries)
    for a, b in zip(one, many, strict=True):
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=2e-4)


@pytest.mark.parametrize("arch", ("idefics3", "qwen2_vl"))
def test_multi_token_names_match_whole_sequence_likelihoods(arch, tiny_vlms, make_query):
    """Reference: each "prompt + class name" run on its own, its tokens' log-probs summed."""
    import torch

    from ros2_erl_vlm.raters import prompts
    from ros2_erl_vlm.raters.image_encoding import to_pil
    from ros2_erl_vlm.raters.label_tokens import answer_separator, label_candidates

    model, proc = tiny_vlms(arch)
    q = make_query(4, n=5, frames=2)
    [res] = rater(model, proc).rate([q])
    assert res.extra["scoring"] == "full"
    prompt = prompts.single_prompt(prompts.PromptTemplate(), q.instruction, q.class_names, 2)
    content = [{"type": "image"}, {"type": "image"}, {"type": "text", "text": prompt}]
    text = proc.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                    tokenize=False)
    cands = label_candidates(proc.tokenizer, text, q.class_names)
    scores = []
    for name, toks in zip(q.class_names, cands.tokens, strict=True):
        enc = proc(text=[text + answer_separator(text) + name], images=[to_pil(q.frames)], return_tensors="pt")
        assert enc["input_ids"][0, -len(toks):].tolist() == list(toks)
        with torch.no_grad():
            lp = torch.log_softmax(model(**enc).logits[0].float(), dim=-1)
        scores.append(sum(float(lp[-len(toks) - 1 + j, t]) for j, t in enumerate(toks)))
    log_expected = np.array(scores) - np.logaddexp.reduce(scores)
    # in log space: the two-token names have tiny probabilities under random weights
    np.testing.assert_allclose(np.log(res.probabilities), log_expected, atol=2e-3)


@pytest.mark.parametrize("arch", ("idefics3", "qwen2_5_vl"))
def test_rigged_head_choice_is_exact(arch, make_query):
    model, proc = BUILDERS[arch]()
    good = token(proc, answer_prefix(proc), "Good")
    rig_output_head(model, {good: 30.0})
    res = rater(model, proc).rate([make_query(0, n=3)])[0]
    assert res.label == 2
    assert res.probabilities[2] > 0.999999


@pytest.mark.parametrize("arch", ("idefics3", "qwen2_5_vl"))
def test_equal_logits_give_uniform_probabilities(arch, make_query):
    model, proc = BUILDERS[arch]()
    rig_output_head(model, {})  # all logits equal: uniform over single-token names
    res = rater(model, proc).rate([make_query(0, n=3)])[0]
    np.testing.assert_allclose(res.probabilities, [1 / 3] * 3, atol=1e-6)


@pytest.mark.parametrize("arch", ["idefics3", "qwen2_vl"])
def test_a_model_answering_with_a_class_passes_the_class_mass_floor(arch, make_query):
    model, proc = BUILDERS[arch]()
    good = token(proc, answer_prefix(proc), "Good")
    rig_output_head(model, {good: 30.0})
    res = rater(model, proc, min_class_mass=0.01).rate([make_query(0, n=3)])[0]
    assert res.label == 2
    assert res.extra["class_mass"] > 0.99


@pytest.mark.parametrize("arch", ["idefics3", "qwen2_vl"])
def test_a_model_that_would_not_answer_with_a_class_abstains(arch, make_query):
    model, proc = BUILDERS[arch]()
    # the model's answer would start with another token ("I ..."): not forced into a class
    other = proc.tokenizer(" I", add_special_tokens=False)["input_ids"][0]
    rig_output_head(model, {other: 30.0})
    res = rater(model, proc, min_class_mass=0.01).rate([make_query(0, n=3)])[0]
    assert res.abstained, res.abstain_reason
    assert res.abstain_reason.startswith("low_class_mass"), res.abstain_reason


def end_token(model, proc) -> int:
    """The model's end-of-answer token id."""
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, (list, tuple)) else eos
    return int(eos if eos is not None else proc.tokenizer.eos_token_id)


@pytest.mark.parametrize("arch", ARCHS)
def test_generation_is_parsed_end_to_end(arch, make_query):
    model, proc = BUILDERS[arch]()
    # the rigged head answers " Average" and then ends the turn
    rig_output_sequence(model, [token(proc, ":", "Average"), end_token(model, proc)])
    r = rater(model, proc, mode="generate", max_new_tokens=8, batch_size=2)
    results = r.rate([make_query(0), make_query(1, frames=2), make_query(2)])
    assert [x.label for x in results] == [1, 1, 1]
    assert results[0].extra["answer"] == "Average"
    assert results[0].probabilities is None
    assert results[0].extra["truncated"] is False


@pytest.mark.parametrize("arch", ARCHS)
def test_generation_cut_off_by_the_budget_is_not_read_loosely(arch, make_query):
    model, proc = BUILDERS[arch]()
    # " Average Average Average" with no end token: cut off, and not a strict answer form
    rig_output_head(model, {token(proc, ":", "Average"): 30.0})
    [res] = rater(model, proc, mode="generate", max_new_tokens=3).rate([make_query(0)])
    assert res.abstained, res.abstain_reason
    assert res.abstain_reason.startswith("truncated"), res.abstain_reason


def test_generation_stopping_at_once_is_an_empty_reply(make_query):
    model, proc = BUILDERS["qwen2_vl"]()
    rig_output_head(model, {proc.tokenizer.convert_tokens_to_ids("<|im_end|>"): 30.0})
    [res] = rater(model, proc, mode="generate").rate([make_query(0)])
    assert res.abstained
    assert res.abstain_reason.startswith("empty_reply")


def _paligemma_choices(make_query):
    model, proc = BUILDERS["paligemma"]()
    r = rater(model, proc, batch_size=4)
    return r.rate([make_query(0, n=3), make_query(1, n=2, frames=2), make_query(2, n=5)])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside transformers' PaliGemma processor
def test_paligemma_without_chat_template_rates_single_token_names(make_query):
    three, two, _ = _paligemma_choices(make_query)
    assert three.label is not None
    assert sum(three.probabilities) == pytest.approx(1.0)
    assert two.label is not None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside transformers' PaliGemma processor
def test_paligemma_abstains_on_multi_token_names(make_query):
    _, _, five = _paligemma_choices(make_query)
    # the processor appends "\n" after the prompt itself: multi-token names cannot be scored
    assert five.abstained
    assert five.abstain_reason.startswith("label_tokens:")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside transformers' PaliGemma processor
def test_paligemma_generation_is_parsed(make_query):
    model, proc = BUILDERS["paligemma"]()
    rig_output_head(model, {token(proc, "\n", "Good"): 30.0})
    [gen] = rater(model, proc, mode="generate", max_new_tokens=1).rate([make_query(0)])
    assert gen.label == 2
    assert gen.extra["answer"] == "Good"


def test_generated_garbage_is_an_abstention(make_query):
    model, proc = BUILDERS["qwen2_vl"]()
    rig_output_head(model, {proc.tokenizer(" drawer", add_special_tokens=False)["input_ids"][0]: 30.0})
    r = rater(model, proc, mode="generate", max_new_tokens=4)
    [res] = r.rate([make_query(0)])
    assert res.abstained
    assert res.label is None
    assert res.abstain_reason.startswith("unparseable:")
    assert r.stats.abstain_reasons["unparseable"] == 1


def test_two_step_analysis_then_text_only_choice(make_query):
    model, proc = BUILDERS["idefics3"]()
    end = answer_prefix(proc)
    rig_output_head(model, {token(proc, end, "Bad"): 30.0})
    r = rater(model, proc, two_step=True, analysis_max_new_tokens=4)
    [res] = r.rate([make_query(0, frames=2)])
    assert res.label == 0
    assert "Bad" in res.rationale  # the (rigged) analysis is kept as rationale


def test_two_step_with_empty_analysis_abstains(make_query):
    model, proc = BUILDERS["qwen2_vl"]()
    rig_output_head(model, {proc.tokenizer.convert_tokens_to_ids("<|im_end|>"): 30.0})
    [res] = rater(model, proc, two_step=True).rate([make_query(0)])
    assert res.abstained
    assert res.abstain_reason.startswith("empty_reply")


def test_single_token_scoring_abstains_on_multi_token_names(tiny_vlms, make_query):
    model, proc = tiny_vlms("idefics3")
    r = rater(model, proc, choice_scoring="single_token")
    ok, multi = r.rate([make_query(0, n=3), make_query(1, n=5)])
    assert ok.label is not None
    assert multi.abstained
    assert multi.abstain_reason.startswith("label_tokens:")


def test_query_without_frames_abstains(tiny_vlms, make_query):
    model, proc = tiny_vlms("idefics3")
    q = make_query(0)
    q.frames = None
    [res] = rater(model, proc).rate([q])
    assert res.abstained
    assert res.abstain_reason.startswith("no_frames")


def test_bfloat16_runs(make_query):
    model, proc = BUILDERS["idefics3"]()
    [res] = rater(model, proc, dtype="bfloat16").rate([make_query(0)])
    assert res.label is not None
    assert sum(res.probabilities) == pytest.approx(1.0)


@pytest.mark.parametrize("kw, match", [
    ({"model": ""}, "'model'"), ({"model": "m", "mode": "sample"}, "mode"),
    ({"model": "m", "dtype": "int3"}, "dtype"), ({"model": "m", "batch_size": 0}, "batch_size"),
    ({"model": "m", "choice_scoring": "first"}, "choice_scoring"),
])
def test_config_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        TransformersRaterConfig(**kw).validate()
