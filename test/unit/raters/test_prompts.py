"""Prompt building and free-text answer parsing (a failed answer is never guessed into a class)."""

from __future__ import annotations

import pytest

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES
from ros2_erl_vlm.raters import prompts

THREE = DEFAULT_CLASS_NAMES[3]
FIVE = DEFAULT_CLASS_NAMES[5]


def test_single_prompt_names_task_and_scale():
    t = prompts.PromptTemplate()
    text = prompts.single_prompt(t, "Open the drawer.", THREE, 1)
    assert "trying to open the drawer." in text
    assert "Bad, Average, Good" in text
    assert "Bad, Average or Good" in text
    assert text.startswith("The image shows a robot arm.")


def test_single_prompt_over_several_frames_says_so():
    t = prompts.PromptTemplate()
    multi = prompts.single_prompt(t, "open the drawer", DEFAULT_CLASS_NAMES[2], 4)
    assert "The 4 images are consecutive camera frames" in multi
    assert "Bad or Good" in multi


def test_analysis_prompt_asks_for_an_analysis_without_the_scale():
    a = prompts.analysis_prompt(prompts.PromptTemplate(), "open the drawer", 1)
    assert "analyse" in a
    assert "Bad" not in a


def test_rate_from_analysis_prompt_quotes_the_analysis_and_the_scale():
    t = prompts.PromptTemplate()
    r = prompts.rate_from_analysis_prompt(t, "open the drawer", THREE, "  The drawer is shut.\n")
    assert "The drawer is shut." in r
    assert "Bad, Average or Good" in r


def test_template_override_is_used():
    t = prompts.PromptTemplate.from_any({"single": "Task: {instruction}. Pick {choices}."})
    assert prompts.single_prompt(t, "open the drawer", THREE, 1) == "Task: open the drawer. Pick Bad, Average or Good."


def test_template_override_with_unknown_fields_is_an_error():
    with pytest.raises(ValueError, match="unknown fields"):
        prompts.PromptTemplate.from_any({"single": "{instrution}"})


def test_template_override_with_unknown_keys_is_an_error():
    with pytest.raises(ValueError, match="unknown prompt keys"):
        prompts.PromptTemplate.from_any({"singel": "x"})


@pytest.mark.parametrize("text, names, label", [
    ("Good", THREE, 2),
    ("  good.\n", THREE, 2),
    ("**Average**", THREE, 1),
    ('{"rating": "Bad"}', THREE, 0),
    ('```json\n{"rating": "Good"}\n```', THREE, 2),
    ("Rating: Average", THREE, 1),
    ("The drawer is open, so the rating is: Good", THREE, 2),
    ("Very Bad", FIVE, 0),
    ("very good!", FIVE, 4),
    ("I would say Bad.", FIVE, 1),
    ("Analysis: the arm is far from the drawer, which is bad... Final answer: Very Bad", FIVE, 0),
    ("The drawer is fully open, so the rating is Good.", THREE, 2),
    ("Good. The drawer is open, it is not bad at all.", THREE, 2),
    ("- Average: the gripper is at the handle", THREE, 1),
])
def test_parse_accepts(text, names, label):
    assert prompts.parse_rating(text, names).label == label


@pytest.mark.parametrize("text, names, kind", [
    ("", THREE, "empty_reply"),
    (None, THREE, "empty_reply"),
    ("purple", THREE, "unparseable"),
    ("between Bad and Good", THREE, "unparseable"),
    ("not good", THREE, "unparseable"),
    ("It isn't Good", THREE, "unparseable"),
    ("Goodness knows", THREE, "unparseable"),
    ('{"rating": "Excellent"}', THREE, "unparseable"),
    # refusals and hedges that mention one class name are not ratings
    ("I'm sorry, I can't tell whether the robot did a good job.", THREE, "refused"),
    ("I cannot determine if this is good.", THREE, "refused"),
    ("As an AI I can't rate images. Bad image quality.", THREE, "refused"),
    ("It is hard to tell, maybe good?", THREE, "refused"),
    ("I would not say it is good", THREE, "unparseable"),
])
def test_parse_rejects(text, names, kind):
    parsed = prompts.parse_rating(text, names)
    assert parsed.label is None
    assert parsed.reason.startswith(kind)


def test_truncated_reply_counts_only_strict_forms():
    cut = "The robot is making good progress toward the"
    assert prompts.parse_rating(cut, THREE).label == 2  # a complete reply would be read by mention
    parsed = prompts.parse_rating(cut, THREE, truncated=True)
    assert parsed.label is None
    assert parsed.reason.startswith("truncated")
    assert prompts.parse_rating("Rating: Good. Because the drawer", THREE, truncated=True).label == 2
    assert prompts.parse_rating("Average, since the gripper", THREE, truncated=True).label == 1
