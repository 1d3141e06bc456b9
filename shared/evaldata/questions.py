"""Evaluation questions from CSV: Defog's sql-eval layouts or a plain `question,sql,data_source`.

Recognised by the header (names compared case-insensitively, column order free):

* Defog (`questions_gen_postgres.csv`, `instruct_basic_postgres.csv`, `instruct_advanced_postgres.csv`,
  `idk.csv`): `question`, `query`, `db_name`, optional `query_category` and `instructions`
  (`full_instructions`, which adds distractors, is ignored).
* Plain: `question`, `sql`, optional `data_source`, `category`, `instructions`.

Gold SQL follows sql-eval's conventions:

* Alternatives are separated by `;`. We split only at statement boundaries: a `;` inside a string
  literal, quoted identifier, dollar-quoted string or comment is part of the statement.
* `{a.x, a.y}` means "any non-empty subset of these columns"; a later `{}` (always `GROUP BY {}` in
  the data) repeats the chosen columns. Each alternative expands to one runnable query per subset,
  the full list first, then smaller subsets in their original column order (as sql-eval's
  `get_all_minimal_queries`, but braces inside literals are left alone and commas inside
  parentheses do not split a column).

A gold statement that is a constant string (`SELECT '<apology>' AS answer`, Defog's `idk.csv`)
marks the question unanswerable: the right answer is to decline.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import msgspec

__all__ = [
    "EvalQuestion",
    "QuestionsError",
    "expand_column_alternatives",
    "gold_alternatives",
    "is_apology",
    "read_questions",
    "split_statements",
]

DEFAULT_DATA_SOURCE = "default"


class QuestionsError(ValueError):
    """The questions file cannot be used; `str()` says where and why."""


class EvalQuestion(msgspec.Struct, frozen=True, kw_only=True):
    question: str
    gold: list[str]  # runnable gold queries: every `;` alternative with its `{}` variants expanded
    data_source: str
    category: str = ""
    instructions: str = ""
    line: int = 0  # CSV line of the row, for messages

    @property
    def unanswerable(self) -> bool:
        """Every gold alternative is a constant apology: the right answer is to decline."""
        return bool(self.gold) and all(is_apology(sql) for sql in self.gold)


# --- lexing just enough SQL ------------------------------------------------------------------

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _code_spans(sql: str) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is_code) spans covering `sql`: code, or a literal/identifier/comment whose
    characters (`;`, `{`) mean nothing to us. Unterminated quotes run to the end."""
    i, n, start = 0, len(sql), 0
    while i < n:
        ch = sql[i]
        end = -1
        if ch == "'":
            # E'...' strings take backslash escapes; '' is a quote in both kinds.
            escapes = (
                i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            )
            j = i + 1
            while j < n:
                if escapes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            end = min(j + 1, n)
        elif ch == '"':
            j = sql.find('"', i + 1)
            while j != -1 and j + 1 < n and sql[j + 1] == '"':
                j = sql.find('"', j + 2)
            end = n if j == -1 else j + 1
        elif ch == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            end = n if j == -1 else j + 1
        elif ch == "/" and sql.startswith("/*", i):
            depth, j = 1, i + 2  # PostgreSQL block comments nest
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            end = j
        elif ch == "$" and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:
                close = sql.find(tag.group(0), tag.end())
                end = n if close == -1 else close + len(tag.group(0))
        if end == -1:
            i += 1
            continue
        if i > start:
            yield start, i, True
        yield i, end, False
        start = i = end
    if start < n:
        yield start, n, True


def _code_positions(sql: str, char: str) -> list[int]:
    return [
        start + k
        for start, end, code in _code_spans(sql)
        if code
        for k, c in enumerate(sql[start:end])
        if c == char
    ]


def split_statements(sql: str) -> list[str]:
    """The non-empty statements of `sql`, split at `;` outside literals and comments."""
    statements, last = [], 0
    for pos in [*_code_positions(sql, ";"), len(sql)]:
        statement = sql[last:pos].strip()
        if statement:
            statements.append(statement)
        last = pos + 1
    return statements


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside parentheses and literals."""
    parts, depth, last = [], 0, 0
    for start, end, code in _code_spans(text):
        if not code:
            continue
        for k in range(start, end):
            c = text[k]
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif c == "," and depth == 0:
                parts.append(text[last:k])
                last = k + 1
    parts.append(text[last:])
    return [p.strip() for p in parts if p.strip()]


def expand_column_alternatives(statement: str) -> list[str]:
    """`SELECT {a, b} … GROUP BY {}` → the query for every non-empty subset of the columns, the
    full list first. A statement without a non-empty `{…}` comes back as it is."""
    opens = _code_positions(statement, "{")
    for open_at in opens:
        close_at = statement.find("}", open_at + 1)
        if close_at == -1:
            break
        inner = statement[open_at + 1 : close_at]
        if not inner.strip():
            continue
        columns = _split_top_level(inner)
        head, tail = statement[:open_at], statement[close_at + 1 :]
        variants = []
        for size in range(len(columns), 0, -1):
            for chosen in itertools.combinations(columns, size):
                listed = ", ".join(chosen)
                variants.append(head + listed + _fill_empty_braces(tail, listed))
        return variants
    return [statement]


def _fill_empty_braces(sql: str, listed: str) -> str:
    out, last = [], 0
    for pos in _code_positions(sql, "{"):
        if sql.startswith("{}", pos):
            out.append(sql[last:pos] + listed)
            last = pos + 2
    out.append(sql[last:])
    return "".join(out)


def gold_alternatives(gold: str) -> list[str]:
    """Every runnable gold query of one CSV cell, duplicates removed (first kept)."""
    seen: dict[str, None] = {}
    for statement in split_statements(gold):
        for variant in expand_column_alternatives(statement):
            seen.setdefault(variant, None)
    return list(seen)


_APOLOGY = re.compile(r"""^\s*SELECT\s+'(?:[^']|'')*'\s*(?:AS\s+(?:\w+|"[^"]+"))?\s*;?\s*$""", re.I | re.S)


def is_apology(sql: str) -> bool:
    """A constant-string SELECT: Defog's way of writing "this cannot be answered"."""
    return bool(_APOLOGY.match(sql))


# --- CSV layouts -----------------------------------------------------------------------------

_DEFOG = {"question": "question", "sql": "query", "data_source": "db_name", "category": "query_category"}
_PLAIN = {"question": "question", "sql": "sql", "data_source": "data_source", "category": "category"}


def read_questions(path: str | Path, *, default_data_source: str | None = None) -> list[EvalQuestion]:
    """Every row of the file. A row without a data source gets `default_data_source` (else
    `default`). Raises `QuestionsError` for a missing or unreadable file, an unknown header, or a
    row without question or SQL."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _read(handle, path, default_data_source or DEFAULT_DATA_SOURCE)
    except FileNotFoundError:
        raise QuestionsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise QuestionsError(f"{path}: is a directory, not a CSV file") from None
    except UnicodeDecodeError as exc:
        raise QuestionsError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise QuestionsError(f"{path}: not a valid CSV file ({exc})") from None
    except OSError as exc:
        raise QuestionsError(f"{path}: cannot read it ({exc.strerror})") from None


def _read(handle: object, path: Path, default_source: str) -> list[EvalQuestion]:
    reader = csv.reader(handle)  # type: ignore[arg-type]
    header = next(reader, None)
    if header is None:
        raise QuestionsError(f"{path}: the file is empty")
    index = {name.strip().lower(): i for i, name in enumerate(header)}
    if {"question", "query", "db_name"} <= index.keys():
        names = _DEFOG
    elif {"question", "sql"} <= index.keys():
        names = _PLAIN
    else:
        raise QuestionsError(
            f"{path}: unknown header {header!r}; expected Defog's (question, query, db_name, "
            "query_category, instructions) or question,sql[,data_source]"
        )

    def cell(row: list[str], key: str) -> str:
        column = index.get(names.get(key, key))
        return row[column].strip() if column is not None and column < len(row) else ""

    questions = []
    for row in reader:
        line = reader.line_num
        if not any(value.strip() for value in row):
            continue
        question, sql = cell(row, "question"), cell(row, "sql")
        if not question:
            raise QuestionsError(f"{path}:{line}: the row has no question")
        gold = gold_alternatives(sql)
        if not gold:
            raise QuestionsError(f"{path}:{line}: the row has no gold SQL")
        questions.append(
            EvalQuestion(
                question=question,
                gold=gold,
                data_source=cell(row, "data_source") or default_source,
                category=cell(row, "category"),
                instructions=cell(row, "instructions"),
                line=line,
            )
        )
    if not questions:
        raise QuestionsError(f"{path}: no questions in the file")
    return questions
