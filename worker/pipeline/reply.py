"""Turning a model's reply into SQL (or "this data cannot answer").

The model is asked for a JSON object `{"sql": string|null, "explanation": string}` (SPEC "The LLM
protocol"), but real models wrap it in fences, add prose, or ignore the format altogether. The
rules, tried in this order on the reply with any `<think>…</think>` blocks removed:

1. **A JSON object with an `sql` key** (key matched case-insensitively) anywhere in the text: inside
   a ```json fence, alone, or with prose around it. Literal newlines inside its strings are
   accepted. `sql` null, or an empty string, means "cannot be answered" (`None`); any other
   non-string `sql` makes the reply unparseable. `explanation` defaults to "". If no object
   decodes, a lenient pass reads `"sql": "…"` / `"sql": null` and `"explanation": "…"` pairs from
   JSON-ish text (trailing commas, a missing closing brace).
2. **A fenced SQL block**: the first ``` block tagged sql/postgresql/postgres/pgsql/psql/sqlite/
   sqlite3, else the first untagged ``` block whose body starts like a query (below). The opening
   fence starts a line and the closing fence ends one, so "```" inside a string literal does not
   end the block; an unclosed fence (a truncated reply) runs to the end. The prose around the fence
   is the explanation.
3. **Bare SQL**: the reply itself starts like a query — `SELECT`, `VALUES (`, or `WITH name AS`
   / `WITH RECURSIVE name(cols) AS` (any case, after optional SQL comments), so that prose like
   "With the tables shown, …" is not SQL — or, after some prose, a line starts like a query with
   the keyword in UPPER case ("Select the …" is prose). The SQL runs to the first `;` outside
   quotes, comments and dollar quotes; what follows is explanation unless it starts with another
   statement keyword (then everything is kept as SQL and the guard rejects the second statement:
   part of what the model wrote is never silently dropped). Prose before the SQL joins the
   explanation.

In every case the SQL is stripped of surrounding whitespace and trailing semicolons, and a
code fence inside a JSON `sql` value is unwrapped. Anything else raises `ReplyUnparseable`, which is
a guard rejection (rule `unparseable_reply`): the caller answers it with a repair round.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from shared.pipeline_errors import SqlRejected

_FORMAT = '{"sql": ..., "explanation": ...}'


class Reply(msgspec.Struct):
    """One model answer. `raw` is the reply text exactly as received (it goes back into the
    conversation on a repair round)."""

    sql: str | None
    explanation: str
    raw: str
    prompt_tokens: int
    completion_tokens: int


class ReplyUnparseable(SqlRejected):
    """The reply was neither the JSON object asked for nor SQL. `reply` carries the raw text and
    token counts (its `sql` is None and means nothing), so the caller can append it to the
    conversation before the repair round."""

    RULE = "unparseable_reply"

    def __init__(self, detail: str = "", reply: Reply | None = None) -> None:
        super().__init__(
            self.RULE,
            detail or f"the reply was not SQL or JSON: answer with only a JSON object {_FORMAT}",
        )
        self.reply = reply


_THINK = re.compile(r"<think(?:ing)?>.*?(?:</think(?:ing)?>|\Z)", re.DOTALL | re.IGNORECASE)
_SQL_TAGS = frozenset({"sql", "postgresql", "postgres", "pgsql", "psql", "sqlite", "sqlite3"})
# An opening fence at a line start with an optional language tag, then the body up to a closing
# fence that itself starts a line (or the end of the text: a truncated reply).
_FENCE = re.compile(
    r"(?m)^[ \t]*```[ \t]*(?P<tag>[A-Za-z0-9_+-]*)[^\n]*\n(?P<body>.*?)(?:```[ \t]*$|\Z)",
    re.DOTALL,
)
# How a query starts. WITH must look like a CTE and VALUES like a row list, so that prose such as
# "With the tables shown, ..." or "Values are missing" is not taken for SQL.
_CTE_REST = r"""(?i:\s+(?:recursive\s+)?(?:"[^"]+"|[a-z_][\w$]*)\s*(?:\([^)]*\)\s*)?as\b)"""
_LEADING_COMMENTS = r"(?:\s*(?:--[^\n]*\n|/\*.*?\*/))*\s*"
_STARTS_SQL = re.compile(
    _LEADING_COMMENTS + r"(?i:select(?=[\s(*])|values\s*\(|with" + _CTE_REST + ")", re.DOTALL
)
# After prose, only an UPPER-case keyword at a line start counts ("Select the ..." is prose).
_LINE_STARTS_SQL = re.compile(r"(?m)^[ \t]*(?:SELECT(?=[\s(*])|VALUES\s*\(|WITH" + _CTE_REST + ")")
# Words that start a statement: text after a `;` beginning with one of these is more SQL, not prose.
_STATEMENT_WORDS = re.compile(
    r"(?:select|with|values|insert|update|delete|merge|drop|create|alter|truncate|grant|revoke|copy|"
    r"attach|detach|pragma|vacuum|analyze|explain|begin|commit|rollback|set|reset|do|call|lock|"
    r"listen|notify|load|reindex|replace|table|show|savepoint|release|prepare|execute|declare)\b",
    re.IGNORECASE,
)
_JSON_STRING = r'"(?P<str>(?:[^"\\]|\\.)*)"'
_LENIENT_SQL = re.compile(r'"sql"\s*:\s*(?:(?P<null>null)|' + _JSON_STRING + ")", re.IGNORECASE | re.DOTALL)
_LENIENT_EXPLANATION = re.compile(r'"explanation"\s*:\s*' + _JSON_STRING, re.IGNORECASE | re.DOTALL)
_TRAILING = re.compile(r"[\s;]+\Z")
_DECODER = json.JSONDecoder(strict=False)

_MISSING = object()


def parse_reply(text: str | None) -> tuple[str | None, str]:
    """(sql, explanation) from a model reply; sql None means "the data cannot answer this".
    Raises `ReplyUnparseable` when the reply holds neither. See the module docstring for the rules."""
    cleaned = _THINK.sub("", text or "").strip()
    if not cleaned:
        raise ReplyUnparseable(f"the reply was empty: answer with a JSON object {_FORMAT}")
    for parse in (_from_json, _from_lenient_json, _from_fence, _from_bare):
        found = parse(cleaned)
        if found is not None:
            return found
    raise ReplyUnparseable()


def _finish(sql: str | None, explanation: str) -> tuple[str | None, str]:
    if sql is not None:
        sql = _TRAILING.sub("", sql.strip())
        if not sql:
            sql = None
    return sql, explanation.strip()


def _sql_key(obj: dict[str, Any]) -> Any:
    for key, value in obj.items():
        if isinstance(key, str) and key.strip().lower() == "sql":
            return value
    return _MISSING


def _explanation_of(obj: dict[str, Any]) -> str:
    for key, value in obj.items():
        if isinstance(key, str) and key.strip().lower() == "explanation":
            return "" if value is None else value if isinstance(value, str) else json.dumps(value)
    return ""


def _unwrap_fence(sql: str) -> str:
    match = _FENCE.search(sql.strip())
    if match and sql.strip().startswith("```"):
        return match.group("body")
    return sql


def _from_json(text: str) -> tuple[str | None, str] | None:
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            sql = _sql_key(obj)
            if sql is not _MISSING:
                if sql is None or isinstance(sql, str):
                    return _finish(None if sql is None else _unwrap_fence(sql), _explanation_of(obj))
                raise ReplyUnparseable(
                    f'"sql" must be a string or null, not {type(sql).__name__}: answer with {_FORMAT}'
                )
        start = text.find("{", start + 1)
    return None


def _json_string(body: str) -> str:
    try:
        value = _DECODER.decode(f'"{body}"')
    except ValueError:
        return body
    return value if isinstance(value, str) else body


def _from_lenient_json(text: str) -> tuple[str | None, str] | None:
    match = _LENIENT_SQL.search(text)
    if match is None:
        return None
    sql = None if match.group("null") else _unwrap_fence(_json_string(match.group("str")))
    explanation_match = _LENIENT_EXPLANATION.search(text)
    explanation = _json_string(explanation_match.group("str")) if explanation_match else ""
    return _finish(sql, explanation)


def _from_fence(text: str) -> tuple[str | None, str] | None:
    fences = list(_FENCE.finditer(text))
    chosen = next((m for m in fences if m.group("tag").lower() in _SQL_TAGS), None)
    if chosen is None:
        chosen = next(
            (m for m in fences if not m.group("tag") and _STARTS_SQL.match(m.group("body").lstrip())), None
        )
    if chosen is None:
        return None
    prose = (text[: chosen.start()].strip() + "\n" + text[chosen.end() :].strip()).strip()
    return _finish(chosen.group("body"), prose)


def _from_bare(text: str) -> tuple[str | None, str] | None:
    if _STARTS_SQL.match(text):
        begin = 0
    else:
        match = _LINE_STARTS_SQL.search(text)
        if match is None:
            return None
        begin = match.start()
    before, rest = text[:begin].strip(), text[begin:]
    end = _statement_end(rest)
    if end is None:
        sql, after = rest, ""
    else:
        after = rest[end:].lstrip(" \t\r\n;")
        if after and _STATEMENT_WORDS.match(after):
            sql, after = rest, ""
        else:
            sql = rest[:end]
    return _finish(sql, (before + "\n" + after).strip())


def _statement_end(sql: str) -> int | None:
    """Index of the first `;` outside quotes, comments and dollar-quoted strings, or None."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            close = sql.find(ch, i + 1)
            # a doubled quote is an escaped quote: keep scanning past it
            while close != -1 and close + 1 < n and sql[close + 1] == ch:
                close = sql.find(ch, close + 2)
            if close == -1:
                return None
            i = close + 1
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            if newline == -1:
                return None
            i = newline + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            if close == -1:
                return None
            i = close + 2
        elif ch == "$":
            tag = re.match(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$", sql[i:])
            if tag is None:
                i += 1
                continue
            close = sql.find(tag.group(0), i + len(tag.group(0)))
            if close == -1:
                return None
            i = close + len(tag.group(0))
        elif ch == ";":
            return i
        else:
            i += 1
    return None
