"""Rating prompts shared by every VLM backend, and the parser for free-text answers.

Two prompt styles (paper §1.3, paraphrased):

* **one call** (default): frames + instruction + the rating scale, answer with one class name;
* **analyse then rate**: a first call (frames + instruction) asks for an analysis of the frames in
  terms of completing the task; a second, *text-only* call gets that analysis and the scale and
  answers with one class name.

Templates are plain ``str.format`` strings with the fields ``{scene}`` (what the images are),
``{instruction}``, ``{scale}`` ("Bad, Average, Good"), ``{choices}`` ("Bad, Average or Good") and,
for the second step, ``{analysis}``. Class names always come from the query (worst first).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

SINGLE_CALL = (
    "{scene} The robot is trying to {instruction}.\n"
    "Focus on the target object and judge how far the task has been completed.\n"
    "Rate the outcome on this scale, from worst to best: {scale}.\n"
    "Answer with exactly one of: {choices}."
)

ANALYSIS = (
    "{scene} The robot is trying to {instruction}.\n"
    "Focus on the target object and analyse the image in terms of completing the task: describe "
    "where the object is and what still has to happen. Do not give a rating yet."
)

RATE_FROM_ANALYSIS = (
    "A robot arm is trying to {instruction}. Here is an analysis of camera images of what it did:\n"
    "{analysis}\n\n"
    "Based on this analysis, how well has the task been completed? Rate it on this scale, from "
    "worst to best: {scale}.\n"
    "Answer with exactly one of: {choices}."
)

_FIELDS = {"scene", "instruction", "scale", "choices", "analysis"}


@dataclass(frozen=True)
class PromptTemplate:
    """The prompt texts of a rater (override any of them per run)."""

    single: str = SINGLE_CALL
    analysis: str = ANALYSIS
    rate_from_analysis: str = RATE_FROM_ANALYSIS

    def __post_init__(self) -> None:
        for f in fields(self):
            text = getattr(self, f.name)
            names = {m.group(1) for m in re.finditer(r"\{(\w*)\}", text)}
            unknown = names - _FIELDS
            if unknown:
                raise ValueError(f"prompt template {f.name!r} uses unknown fields {sorted(unknown)}; "
                                 f"allowed: {sorted(_FIELDS)}")

    @classmethod
    def from_any(cls, value: PromptTemplate | dict[str, Any] | None) -> PromptTemplate:
        """Build from ``None`` (defaults), a template, or a dict of overrides."""
        if value is None:
            return cls()
        if isinstance(value, PromptTemplate):
            return value
        if isinstance(value, dict):
            allowed = {f.name for f in fields(cls)}
            bad = set(value) - allowed
            if bad:
                raise ValueError(f"unknown prompt keys {sorted(bad)}; allowed: {sorted(allowed)}")
            return replace(cls(), **value)
        raise ValueError(f"prompt must be a dict or PromptTemplate, got {type(value).__name__}")


def describe_scene(num_frames: int) -> str:
    """What the images are, in words."""
    if num_frames <= 1:
        return "The image shows a robot arm."
    return f"The {num_frames} images are consecutive camera frames of a robot arm, oldest first."


def format_scale(class_names: Sequence[str]) -> tuple[str, str]:
    """``("Bad, Average, Good", "Bad, Average or Good")`` for the given class names."""
    names = list(class_names)
    scale = ", ".join(names)
    choices = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return scale, choices


def _instruction(instruction: str) -> str:
    text = instruction.strip().rstrip(".")
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def single_prompt(template: PromptTemplate, instruction: str, class_names: Sequence[str],
                  num_frames: int) -> str:
    """The one-call rating prompt."""
    scale, choices = format_scale(class_names)
    return template.single.format(scene=describe_scene(num_frames), instruction=_instruction(instruction),
                                  scale=scale, choices=choices, analysis="")


def analysis_prompt(template: PromptTemplate, instruction: str, num_frames: int) -> str:
    """Step 1 of analyse-then-rate (sent with the frames)."""
    return template.analysis.format(scene=describe_scene(num_frames), instruction=_instruction(instruction),
                                    scale="", choices="", analysis="")


def rate_from_analysis_prompt(template: PromptTemplate, instruction: str, class_names: Sequence[str],
                              analysis: str) -> str:
    """Step 2 of analyse-then-rate (text only)."""
    scale, choices = format_scale(class_names)
    return template.rate_from_analysis.format(scene="", instruction=_instruction(instruction),
                                              scale=scale, choices=choices, analysis=analysis.strip())


# ---------------------------------------------------------------------------------------------
# Parsing free-text answers
# ---------------------------------------------------------------------------------------------

_JSON_KEYS = ("rating", "label", "class", "answer", "choice")
#: A negation up to three words before a class name ("not good", "would not say it is good").
_NEGATION = re.compile(r"(?:\bnot|\bno|n't|\bneither|\bnor|\bnever)\s+(?:[\w']+\s+){0,3}$", re.IGNORECASE)
#: Refusal / uncertainty phrases: an answer containing one is not read as a rating by mention
#: ("I'm sorry, I can't tell whether this is good" must not become "good").
_REFUSAL = re.compile(
    r"\b(?:sorry|apologi[sz]e|unable|can ?not|can't|cannot|couldn't|could not|won't|unsure|not sure|"
    r"uncertain|unclear|don't know|do not know|hard to (?:say|tell|determine)|"
    r"difficult to (?:say|tell|determine)|impossible to|as an ai|i'm an ai|no way to)\b",
    re.IGNORECASE)
#: Characters around an answer that carry no meaning (quotes, markdown, punctuation).
STRIP_CHARS = " \t\r\n\"'`*_.,;:!?()[]{}<>"


@dataclass(frozen=True)
class ParsedAnswer:
    """A parsed answer: a class index, or ``None`` with why not."""

    label: int | None
    reason: str = ""


def _norm(text: str) -> str:
    return " ".join(text.strip(STRIP_CHARS).split()).lower()


def _exact(text: str, class_names: Sequence[str]) -> int | None:
    t = _norm(text)
    for i, name in enumerate(class_names):
        if t == _norm(name):
            return i
    return None


def parse_rating(text: str | None, class_names: Sequence[str], truncated: bool = False) -> ParsedAnswer:
    """Map a model's free-text answer to a class, or explain why it cannot.

    Accepted, strictest first: the bare class name (any case, punctuation, markdown); a JSON
    object with a ``rating``/``label``/``answer`` field; "Rating: <name>" / "rating is <name>"
    (the last one wins); an answer that starts with a class name ("Good. The drawer is open.");
    and, loosest, text that mentions exactly one class name, not negated, with no refusal or
    uncertainty in it. Everything else (empty, no class, several classes, "not good", "sorry, I
    can't tell if it is good") is ``label=None``: a failed answer is never guessed into a class.

    ``truncated``: the reply was cut off by the token budget; only the strict forms (bare name,
    JSON, tagged, leading name) count, since the rest of the sentence could have changed it.
    """
    if text is None or not text.strip():
        return ParsedAnswer(None, "empty_reply: no answer text")
    raw = text.strip()
    hit = _exact(raw, class_names)
    if hit is not None:
        return ParsedAnswer(hit)
    # JSON object (possibly in a ```json fence)
    m = re.search(r"\{.*\}", raw, re.DOTALL)
    if m:
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            for key in _JSON_KEYS:
                val = obj.get(key)
                if isinstance(val, str) and (hit := _exact(val, class_names)) is not None:
                    return ParsedAnswer(hit)
    # "Rating: X" / "Answer: X" / "the rating is X": last occurrence
    order = sorted(range(len(class_names)), key=lambda i: -len(class_names[i]))
    alternation = "|".join(re.escape(class_names[i]) for i in order)
    tagged = re.findall(rf"\b(?:rating|answer|label|class)\b(?:\W{{0,5}}|\s+(?:is|was|=)\W{{0,5}})"
                        rf"({alternation})(?![\w-])", raw, re.IGNORECASE)
    if tagged:
        hit = _exact(tagged[-1], class_names)
        if hit is not None:
            return ParsedAnswer(hit)
    # the answer leads with a class name: "Good. The drawer is fully open."
    lead = re.match(rf"[\W_]*({alternation})(?:[\s]*[.,;:!\n-]|\s*$)", raw, re.IGNORECASE)
    if lead and not _REFUSAL.search(raw):
        hit = _exact(lead.group(1), class_names)
        if hit is not None:
            return ParsedAnswer(hit)
    if truncated:
        if not re.search(rf"(?<![\w-])(?:{alternation})(?![\w-])", raw, re.IGNORECASE):
            return ParsedAnswer(None, f"unparseable: no class name in {_clip(raw)!r}")
        return ParsedAnswer(None, f"truncated: answer cut off before a clear rating in {_clip(raw)!r}")
    if _REFUSAL.search(raw):
        return ParsedAnswer(None, f"refused: refusal or uncertainty in {_clip(raw)!r}")
    # exactly one class mentioned (longest names first, so "Very Bad" is not also "Bad")
    found: set[int] = set()
    masked = raw
    for i in order:
        pattern = re.compile(rf"(?<![\w-]){re.escape(class_names[i])}(?![\w-])", re.IGNORECASE)
        for mm in pattern.finditer(masked):
            if _NEGATION.search(masked[: mm.start()]):
                return ParsedAnswer(None, f"unparseable: negated class in {_clip(raw)!r}")
            found.add(i)
        masked = pattern.sub(lambda mm: " " * len(mm.group(0)), masked)
    if len(found) == 1:
        return ParsedAnswer(found.pop())
    if not found:
        return ParsedAnswer(None, f"unparseable: no class name in {_clip(raw)!r}")
    names = ", ".join(class_names[i] for i in sorted(found))
    return ParsedAnswer(None, f"unparseable: several classes ({names}) in {_clip(raw)!r}")


def _clip(text: str, n: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."
