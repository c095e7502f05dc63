"""Class names as in-context token sequences, and whole-candidate scoring."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES
from ros2_erl_vlm.raters.label_tokens import answer_separator, candidate_scores, label_candidates, softmax
from ros2_erl_vlm.raters.random_weight_vlms import synthetic_tokenizer


@pytest.fixture(scope="module")
def tok():
    return synthetic_tokenizer()


def test_separator_follows_the_prompt_ending():
    assert answer_separator("Assistant:") == " "
    assert answer_separator("<|im_start|>assistant\n") == ""


def test_single_token_names_after_both_endings(tok):
    for prompt, prefix in (("...Assistant:", "Ġ"), ("<|im_start|>assistant\n", "")):
        c = label_candidates(tok, prompt, DEFAULT_CLASS_NAMES[3])
        assert c.single_token
        assert c.prefixes == ((),)
        assert c.prefix_texts == ("",)
        assert [tok.convert_ids_to_tokens(list(t))[0] for t in c.tokens] == [
            f"{prefix}Bad", f"{prefix}Average", f"{prefix}Good"]


def test_multi_token_names_need_their_prefixes(tok):
    c = label_candidates(tok, "Assistant:", DEFAULT_CLASS_NAMES[5])
    assert not c.single_token
    very = tok(" Very", add_special_tokens=False)["input_ids"]
    assert c.prefixes[0] == ()
    assert tuple(very) in c.prefixes
    assert c.prefix_texts[c.prefixes.index(tuple(very))] == " Very"


def test_prefix_names_without_an_end_token_are_an_error(tok):
    with pytest.raises(ValueError, match="prefix"):
        label_candidates(tok, "Assistant:", ("Good", "Good Good"))


def test_prefix_names_get_an_end_token(tok):
    c = label_candidates(tok, "Assistant:", ("Good", "Good Good"), end_token_id=7)
    assert [t[-1] for t in c.tokens] == [7] * len(c.tokens)


def test_indistinguishable_names(tok):
    with pytest.raises(ValueError, match="not distinguishable"):
        label_candidates(tok, "Assistant:", ("Good", "Good"))


def test_candidate_scores_sum_token_logprobs(tok):
    c = label_candidates(tok, "Assistant:", DEFAULT_CLASS_NAMES[5])
    v = len(tok)
    uniform = [np.full(v, -np.log(v)) for _ in c.prefixes]
    scores = candidate_scores(c, uniform)
    np.testing.assert_allclose(scores, [-len(t) * np.log(v) for t in c.tokens])
    p = softmax(scores)
    assert p.sum() == pytest.approx(1.0)
