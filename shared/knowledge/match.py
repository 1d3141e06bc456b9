"""Finding the knowledge examples closest to a question.

Lexical similarity over content words: good enough for a curated library of a few hundred
verified questions, deterministic, and needs no embedding provider. A match that is close enough
answers the question without the LLM (SPEC), so the bar is high and numbers must agree exactly
("top 5" is not "top 10")."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from difflib import SequenceMatcher
from typing import TypeVar

# Words that carry no meaning for matching. Negations are deliberately absent.
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "by",
        "with",
        "from",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "there",
        "their",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "how",
        "many",
        "much",
        "do",
        "does",
        "did",
        "show",
        "me",
        "list",
        "give",
        "find",
        "tell",
        "please",
        "i",
        "we",
        "our",
        "my",
        "all",
        "each",
        "every",
        "per",
        "as",
        "that",
        "this",
        "these",
        "those",
        "it",
        "its",
        "have",
        "has",
        "had",
        "can",
        "could",
        "would",
        "should",
        "get",
        "return",
        "display",
    ]
)
_WORD = re.compile(r"[a-z0-9]+")

CLOSE_ENOUGH = 0.85

T = TypeVar("T")


def _stem(word: str) -> str:
    for suffix in ("ies", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def normalise(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def similarity(a: str, b: str) -> float:
    ta, tb = normalise(a), normalise(b)
    if not ta or not tb:
        return 0.0
    if {w for w in ta if w.isdigit()} != {w for w in tb if w.isdigit()}:
        return 0.0
    sa, sb = set(ta), set(tb)
    jaccard = len(sa & sb) / len(sa | sb)
    order = SequenceMatcher(None, " ".join(ta), " ".join(tb)).ratio()
    return 0.7 * jaccard + 0.3 * order


def closest(
    question: str, candidates: Sequence[T], text_of: Callable[[T], str], *, limit: int = 5
) -> list[tuple[float, T]]:
    scored = [(similarity(question, text_of(c)), c) for c in candidates]
    scored = [s for s in scored if s[0] > 0]
    scored.sort(key=lambda s: -s[0])
    return scored[:limit]
