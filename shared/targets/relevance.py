"""Which tables of a schema to show the LLM for one question.

A small schema (at most `limit` tables) is shown whole. A large one is ranked lexically — no model,
no randomness, same answer every time:

1. Words: question and schema names are split on punctuation, snake_case and camelCase,
   lower-cased and stemmed (plural and -ing/-ed endings, "categories" = "category",
   "shipped" = "ship"); question stopwords are dropped. A few common business synonyms
   ("client" ~ "customer", "revenue" ~ "amount") count at half weight.
2. Score of a table: for each question word, its best match in the table (table name 3, table
   comment 1, column name 1, schema name 0.5, column comment 0.5, sample value 0.5) times the
   word's rarity across tables (IDF, so "id" or "name" barely count); plus a bonus when every
   word of a multi-word table name is in the question ("order items" -> order_items).
3. Selection: the strongest hits (score >= 15% of the best, up to two thirds of `limit`), then
   tables joined by foreign keys to two or more of them (bridges such as enrolments between
   students and courses), then each hit's foreign-key neighbours (parents first, up to 3
   children), then the remaining hits, up to `limit`. Ties break on (schema, name).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable

from shared.targets.introspect import SchemaSnapshot, TableInfo

__all__ = ["relevant_tables", "stem", "words"]

_NAME_WEIGHT = 3.0
_COMMENT_WEIGHT = 1.0
_COLUMN_WEIGHT = 1.0
_SCHEMA_WEIGHT = 0.5
_COLUMN_COMMENT_WEIGHT = 0.5
_SAMPLE_WEIGHT = 0.5
_SYNONYM_FACTOR = 0.5
_FULL_NAME_BONUS = 1.0
_SEED_THRESHOLD = 0.15
_SEED_SHARE = 2 / 3
_CHILDREN_PER_SEED = 3

_STOPWORD_TEXT = """
a an and are as at be been by can could did do does each every for from give had has have
how i in is it its list me much my of on or our per please show tell than that the their
them then there these they this those to top us was we were what when where which while who
whom whose why will with without would you your all any many most more less least number
total count find get return display
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "client": ("customer",),
    "buyer": ("customer",),
    "customer": ("client", "user"),
    "user": ("customer", "account"),
    "revenue": ("amount", "price", "total", "sale"),
    "sale": ("order", "amount"),
    "purchase": ("order",),
    "employee": ("staff", "worker"),
    "staff": ("employee",),
    "item": ("product",),
    "product": ("item",),
    "salary": ("pay", "compensation"),
    "cost": ("price", "amount"),
    "price": ("cost", "amount"),
}

_CAMEL_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_2 = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD = re.compile(r"[^A-Za-z0-9]+")
_DOUBLE_CONSONANT = re.compile(r"([b-df-hj-kmnp-rt-wyz])\1$")


def stem(word: str) -> str:
    """A deliberately small English stemmer: enough to make plurals and verb endings meet."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses") or word.endswith(("xes", "ches", "shes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if _DOUBLE_CONSONANT.search(word):
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def words(text: str) -> list[str]:
    """Stemmed lower-case words of a name or a sentence (snake_case and camelCase split)."""
    text = _CAMEL_2.sub(r"\1 \2", _CAMEL_1.sub(r"\1 \2", text))
    return [stem(w) for w in _NON_WORD.split(text.lower()) if len(w) > 1 and not w.isdigit()]


def _question_words(question: str) -> list[str]:
    seen: dict[str, None] = {}
    for raw in _NON_WORD.split(_CAMEL_2.sub(r"\1 \2", question).lower()):
        if len(raw) > 1 and not raw.isdigit() and raw not in _STOPWORDS:
            seen.setdefault(stem(raw), None)
    return list(seen)


def _table_key(table: TableInfo) -> tuple[str, str]:
    return (table.schema, table.name)


def _table_words(table: TableInfo) -> dict[str, float]:
    weights: dict[str, float] = {}

    def add(items: Iterable[str], weight: float) -> None:
        for word in items:
            if weights.get(word, 0.0) < weight:
                weights[word] = weight

    add(words(table.name), _NAME_WEIGHT)
    add(words(table.comment or ""), _COMMENT_WEIGHT)
    add(words(table.schema), _SCHEMA_WEIGHT)
    for column in table.columns:
        add(words(column.name), _COLUMN_WEIGHT)
        add(words(column.comment or ""), _COLUMN_COMMENT_WEIGHT)
        for value in column.sample_values or ():
            add(words(value), _SAMPLE_WEIGHT)
    return weights


def _score_tables(tables: list[TableInfo], question: str) -> dict[tuple[str, str], float]:
    table_words = {_table_key(t): _table_words(t) for t in tables}
    document_frequency: dict[str, int] = defaultdict(int)
    for weights in table_words.values():
        for word in weights:
            document_frequency[word] += 1
    count = len(tables)

    def idf(word: str) -> float:
        return math.log((count + 1) / (document_frequency.get(word, 0) + 0.5))

    asked = _question_words(question)
    asked_set = set(asked)
    synonyms = {syn for word in asked for syn in _SYNONYMS.get(word, ()) if syn not in asked_set}
    scores: dict[tuple[str, str], float] = {}
    for table in tables:
        weights = table_words[_table_key(table)]
        score = sum(weights.get(w, 0.0) * idf(w) for w in asked)
        score += _SYNONYM_FACTOR * sum(weights.get(w, 0.0) * idf(w) for w in synonyms)
        name_words = words(table.name)
        if len(name_words) > 1 and all(w in asked_set for w in name_words):
            score += _FULL_NAME_BONUS * sum(idf(w) for w in name_words)
        scores[_table_key(table)] = score
    return scores


def _neighbours(tables: list[TableInfo]) -> tuple[dict[tuple[str, str], set], dict[tuple[str, str], set]]:
    """(parents, children) by table key, from foreign keys between tables of the list."""
    by_ref: dict[str, tuple[str, str]] = {}
    for table in tables:
        by_ref[f"{table.schema}.{table.name}".lower()] = _table_key(table)
        by_ref.setdefault(table.name.lower(), _table_key(table))  # SQLite refs have no schema
    parents: dict[tuple[str, str], set] = defaultdict(set)
    children: dict[tuple[str, str], set] = defaultdict(set)
    for table in tables:
        for fk in table.foreign_keys:
            ref = by_ref.get(fk.ref_table.lower())
            if ref is not None and ref != _table_key(table):
                parents[_table_key(table)].add(ref)
                children[ref].add(_table_key(table))
    return parents, children


def relevant_tables(snapshot: SchemaSnapshot, question: str, *, limit: int = 15) -> list[TableInfo]:
    """The tables to describe in the prompt, most relevant first (all of them when few)."""
    tables = snapshot.tables
    if len(tables) <= limit:
        return list(tables)
    if limit <= 0:
        return []
    by_key = {_table_key(t): t for t in tables}
    scores = _score_tables(tables, question)
    parents, children = _neighbours(tables)

    ranked = sorted((k for k, s in scores.items() if s > 0), key=lambda k: (-scores[k], k))
    if not ranked:  # nothing matched: the best-connected tables give the model a start
        hubs = sorted(by_key, key=lambda k: (-(len(parents[k]) + len(children[k])), k))
        return [by_key[k] for k in hubs[:limit]]

    best = scores[ranked[0]]
    hits = [k for k in ranked if scores[k] >= _SEED_THRESHOLD * best][:limit]
    seeds = hits[: max(1, math.ceil(limit * _SEED_SHARE))]
    chosen: dict[tuple[str, str], None] = dict.fromkeys(seeds)

    def take(keys: Iterable[tuple[str, str]]) -> None:
        for key in keys:
            if len(chosen) >= limit:
                return
            chosen.setdefault(key, None)

    links: dict[tuple[str, str], int] = defaultdict(int)
    for seed in seeds:
        for other in parents[seed] | children[seed]:
            if other not in chosen:
                links[other] += 1
    take(sorted((k for k, n in links.items() if n >= 2), key=lambda k: (-links[k], -scores[k], k)))
    for seed in seeds:
        take(sorted(parents[seed], key=lambda k: (-scores[k], k)))
        take(sorted(children[seed], key=lambda k: (-scores[k], k))[:_CHILDREN_PER_SEED])
    take(hits)
    return [by_key[k] for k in chosen]
