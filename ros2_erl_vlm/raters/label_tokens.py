"""Class names as token sequences in context, for rating by constrained choice.

After the chat template's generation prompt, the model's answer is one of the class names. Each
name is tokenized *in context* (the tokens of ``prompt + name`` after those of ``prompt``; a name
follows a prompt ending in ``":"`` with a space, one ending in a newline without), so "Good" is
the token the model would actually emit.

Scoring a candidate ``c = (t_0 .. t_k)`` needs ``log p(t_d | prompt, t_<d)`` for every ``d``: one
next-token distribution per distinct proper prefix of the candidates. When every name is a single
token, that is one distribution and the class probabilities are the softmax of the names' logits.
Otherwise each candidate's score is its whole-sequence log-likelihood, and the probabilities are
the softmax of those scores over the candidates. A causal model gives the distributions after
every prefix along one sequence at once, so one row per *chain* (a prefix that extends no other)
suffices: the default names of every size ("Very Bad" ... "Very Good") need one row.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TAIL_CHARS = 48


@dataclass(frozen=True)
class Candidates:
    """The class names of one query as continuations of its prompt.

    Attributes:
        tokens: token ids of each name in context.
        prefixes: the distinct proper prefixes of ``tokens`` (the empty prefix first): one
            next-token distribution is needed after each.
        prefix_texts: the text that extends the prompt by each prefix.
    """

    tokens: tuple[tuple[int, ...], ...]
    prefixes: tuple[tuple[int, ...], ...]
    prefix_texts: tuple[str, ...]

    @property
    def single_token(self) -> bool:
        """True when every name is one token."""
        return all(len(t) == 1 for t in self.tokens)

    @property
    def chains(self) -> tuple[int, ...]:
        """Indices of the prefixes that extend no other prefix: feeding ``prompt + prefix`` gives
        the next-token distributions after each of its own prefixes too."""
        return tuple(i for i, p in enumerate(self.prefixes)
                     if not any(len(q) > len(p) and q[: len(p)] == p for q in self.prefixes))


def answer_separator(prompt_text: str) -> str:
    """What separates the prompt from the answer: nothing after whitespace, else a space."""
    return "" if not prompt_text or prompt_text[-1].isspace() else " "


def label_candidates(tokenizer: Any, prompt_text: str, class_names: Sequence[str],
                     end_token_id: int | None = None) -> Candidates:
    """Tokenize ``class_names`` as continuations of ``prompt_text`` (see module docstring).

    Only the prompt's last characters matter for the boundary, so results are cached on them.

    Raises:
        ValueError: two names give the same tokens, or a name is a token-prefix of another and
            there is no end token to tell them apart.
    """
    tail = prompt_text[-TAIL_CHARS:]
    return _candidates(tokenizer, tail, tuple(class_names), end_token_id)


@functools.lru_cache(maxsize=256)
def _candidates(tokenizer: Any, tail: str, class_names: tuple[str, ...],
                end_token_id: int | None) -> Candidates:
    sep = answer_separator(tail)
    base = list(tokenizer(tail, add_special_tokens=False)["input_ids"])
    tokens: list[tuple[int, ...]] = []
    ends: list[list[int]] = []  # char end (within the name text) of each name token
    for name in class_names:
        text = tail + sep + name
        try:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            offsets = [int(e) for _, e in enc["offset_mapping"]]
        except (NotImplementedError, ValueError, TypeError, KeyError):
            enc = tokenizer(text, add_special_tokens=False)
            offsets = []
        ids = list(enc["input_ids"])
        if ids[: len(base)] != base:
            raise ValueError(f"class name {name!r} merges with the prompt's last token; "
                             "change the prompt ending or the class names")
        tokens.append(tuple(ids[len(base):]))
        ends.append([max(0, e - len(tail)) for e in offsets[len(base):]] if offsets else [])
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"class names {list(class_names)} are not distinguishable as tokens")
    if any(a != b and b[: len(a)] == a for a in tokens for b in tokens):
        if end_token_id is None:
            raise ValueError(f"a class name is a prefix of another ({list(class_names)}) and "
                             "the model has no end token")
        tokens = [(*t, int(end_token_id)) for t in tokens]
    prefixes: list[tuple[int, ...]] = []
    texts: list[str] = []
    for name, toks, char_ends in zip(class_names, tokens, ends, strict=True):
        for d in range(len(toks)):
            p = toks[:d]
            if p in prefixes:
                continue
            prefixes.append(p)
            if d == 0:
                texts.append("")
            elif char_ends and d <= len(char_ends):
                texts.append((sep + name)[: char_ends[d - 1]])
            else:
                texts.append(tokenizer.decode(list(p)))
    order = sorted(range(len(prefixes)), key=lambda i: len(prefixes[i]))
    return Candidates(tuple(tokens), tuple(prefixes[i] for i in order), tuple(texts[i] for i in order))


def candidate_scores(cands: Candidates, next_logprobs: Sequence[np.ndarray]) -> np.ndarray:
    """Log-likelihood of each candidate from the next-token log-probabilities after each prefix
    (``next_logprobs[i]`` belongs to ``cands.prefixes[i]``)."""
    index = {p: i for i, p in enumerate(cands.prefixes)}
    scores = np.zeros(len(cands.tokens), dtype=np.float64)
    for c, toks in enumerate(cands.tokens):
        for d, t in enumerate(toks):
            scores[c] += float(next_logprobs[index[toks[:d]]][t])
    return scores


def softmax(scores: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a 1-D score vector."""
    z = np.exp(scores - np.max(scores))
    return z / z.sum()
