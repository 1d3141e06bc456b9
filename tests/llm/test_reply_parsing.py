from __future__ import annotations

import json

import pytest

from shared.pipeline_errors import SqlRejected
from worker.pipeline.generate import ReplyUnparseable, parse_reply

FENCE = "```"

PARSED: list[tuple[str, str, str | None, str | None]] = [
    # (id, reply text, expected sql, expected explanation or None to skip)
    ("json", '{"sql": "SELECT 1", "explanation": "one"}', "SELECT 1", "one"),
    ("json_null", '{"sql": null, "explanation": "no salary data"}', None, "no salary data"),
    ("json_null_no_explanation", '{"sql": null}', None, ""),
    ("json_empty_sql_is_null", '{"sql": "  ", "explanation": "cannot"}', None, "cannot"),
    ("json_missing_explanation", '{"sql": "SELECT 2"}', "SELECT 2", ""),
    ("json_trailing_semicolons", '{"sql": "SELECT 1 ;; \\n", "explanation": ""}', "SELECT 1", ""),
    (
        "json_in_json_fence",
        f'{FENCE}json\n{{"sql": "SELECT a FROM t", "explanation": "all a"}}\n{FENCE}',
        "SELECT a FROM t",
        "all a",
    ),
    (
        "json_in_bare_fence",
        f'{FENCE}\n{{"sql": "SELECT 3", "explanation": "x"}}\n{FENCE}',
        "SELECT 3",
        "x",
    ),
    (
        "json_with_prose",
        'Sure! Here is the answer:\n{"sql": "SELECT 4", "explanation": "four"}\nHope it helps.',
        "SELECT 4",
        "four",
    ),
    (
        "json_escaped_newlines_and_quotes",
        json.dumps({"sql": "SELECT \"Name\"\nFROM t\nWHERE x = 'a'", "explanation": 'says "hi"'}),
        "SELECT \"Name\"\nFROM t\nWHERE x = 'a'",
        'says "hi"',
    ),
    (
        "json_literal_newlines_in_string",
        '{"sql": "SELECT a\n  FROM t\n  WHERE b > 1", "explanation": "multi\nline"}',
        "SELECT a\n  FROM t\n  WHERE b > 1",
        "multi\nline",
    ),
    (
        "json_key_case_insensitive",
        '{"SQL": "SELECT 5", "Explanation": "five"}',
        "SELECT 5",
        "five",
    ),
    (
        "json_sql_value_wrapped_in_fence",
        json.dumps({"sql": f"{FENCE}sql\nSELECT 6\n{FENCE}", "explanation": "six"}),
        "SELECT 6",
        "six",
    ),
    (
        "json_after_braces_in_prose",
        'The set {a, b} is not JSON. {"sql": "SELECT 7", "explanation": "seven"}',
        "SELECT 7",
        "seven",
    ),
    (
        "json_array_literal_in_sql",
        json.dumps({"sql": "SELECT '{1,2}'::int[] AS a", "explanation": "array"}),
        "SELECT '{1,2}'::int[] AS a",
        "array",
    ),
    (
        "lenient_trailing_comma",
        '{"sql": "SELECT 8", "explanation": "eight",}',
        "SELECT 8",
        "eight",
    ),
    (
        "lenient_missing_closing_brace",
        '{"sql": "SELECT 9 FROM t", "explanation": "nine"',
        "SELECT 9 FROM t",
        "nine",
    ),
    ("lenient_null_missing_brace", '{"sql": null, "explanation": "none"', None, "none"),
    (
        "think_block_removed",
        '<think>maybe {"sql": "SELECT bad"}</think>\n{"sql": "SELECT good", "explanation": "ok"}',
        "SELECT good",
        "ok",
    ),
    (
        "sql_fence",
        f"Here you go:\n{FENCE}sql\nSELECT name FROM users;\n{FENCE}\nIt lists the names.",
        "SELECT name FROM users",
        "Here you go:\nIt lists the names.",
    ),
    ("postgresql_fence", f"{FENCE}postgresql\nSELECT 1\n{FENCE}", "SELECT 1", ""),
    ("sqlite_fence_upper_tag", f"{FENCE}SQLite\nselect 1;\n{FENCE}", "select 1", ""),
    (
        "first_sql_fence_wins",
        f"{FENCE}sql\nSELECT 1\n{FENCE}\nor\n{FENCE}sql\nSELECT 2\n{FENCE}",
        "SELECT 1",
        None,
    ),
    (
        "untagged_fence_with_sql",
        f"{FENCE}\nWITH a AS (SELECT 1) SELECT * FROM a\n{FENCE}",
        "WITH a AS (SELECT 1) SELECT * FROM a",
        "",
    ),
    (
        "fence_with_backticks_inside_string",
        f"{FENCE}sql\nSELECT '{FENCE}' AS fence, 1 AS n\n{FENCE}",
        f"SELECT '{FENCE}' AS fence, 1 AS n",
        "",
    ),
    ("unclosed_fence", f"{FENCE}sql\nSELECT a FROM t WHERE", "SELECT a FROM t WHERE", ""),
    ("bare_select", "SELECT count(*) FROM orders;", "SELECT count(*) FROM orders", ""),
    ("bare_lowercase_select", "select 1", "select 1", ""),
    (
        "bare_with",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "",
    ),
    (
        "bare_with_recursive_columns",
        "with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) select n from r",
        "with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) select n from r",
        "",
    ),
    ("bare_values", "VALUES (1, 'a'), (2, 'b');", "VALUES (1, 'a'), (2, 'b')", ""),
    (
        "bare_with_trailing_prose",
        "SELECT a FROM t;\nThis returns every a.",
        "SELECT a FROM t",
        "This returns every a.",
    ),
    (
        "bare_after_prose",
        "Here is the query you need:\nSELECT a\nFROM t\nWHERE b = 'x;y';\nDone.",
        "SELECT a\nFROM t\nWHERE b = 'x;y'",
        "Here is the query you need:\nDone.",
    ),
    (
        "bare_semicolon_in_comment_and_dollar_quote",
        "SELECT $$a;b$$ AS s -- not; the end\n, 1 AS n; trailing words",
        "SELECT $$a;b$$ AS s -- not; the end\n, 1 AS n",
        "trailing words",
    ),
    (
        "bare_second_statement_kept_for_the_guard",
        "SELECT 1; DROP TABLE users",
        "SELECT 1; DROP TABLE users",
        "",
    ),
    ("bare_after_leading_comment", "-- total\nselect sum(x) from t", "-- total\nselect sum(x) from t", ""),
    ("bare_many_semicolons_and_space", "SELECT 1 ;;;  \n\n", "SELECT 1", ""),
    (
        "json_wins_over_fence",
        f'{FENCE}sql\nSELECT 1\n{FENCE}\n{{"sql": "SELECT 2", "explanation": "json"}}',
        "SELECT 2",
        "json",
    ),
]


@pytest.mark.parametrize(("text", "sql", "explanation"), [c[1:] for c in PARSED], ids=[c[0] for c in PARSED])
def test_parse_reply(text: str, sql: str | None, explanation: str | None) -> None:
    got_sql, got_explanation = parse_reply(text)
    assert got_sql == sql
    if explanation is not None:
        assert got_explanation == explanation


UNPARSEABLE: list[tuple[str, str | None]] = [
    ("empty", ""),
    ("none", None),
    ("whitespace", "  \n\t "),
    ("plain_prose", "I am not sure what you mean."),
    ("prose_starting_with_with", "With the tables shown I cannot answer that."),
    ("prose_starting_with_values", "Values for 2023 are missing."),
    ("json_without_sql_key", '{"query": "SELECT 1"}'),
    ("json_sql_not_a_string", '{"sql": ["SELECT 1", "SELECT 2"], "explanation": ""}'),
    ("only_thinking", "<think>SELECT 1 maybe</think>"),
    ("unclosed_thinking", "<think>let me consider SELECT 1 FROM t"),
    ("non_sql_fence", f"{FENCE}python\nprint('hi')\n{FENCE}"),
    ("untagged_fence_without_sql", f"{FENCE}\nhello world\n{FENCE}"),
    ("data_modifying_bare_text", "DELETE FROM users"),
]


@pytest.mark.parametrize("text", [c[1] for c in UNPARSEABLE], ids=[c[0] for c in UNPARSEABLE])
def test_unparseable(text: str | None) -> None:
    with pytest.raises(ReplyUnparseable) as caught:
        parse_reply(text)  # type: ignore[arg-type]
    error = caught.value
    assert isinstance(error, SqlRejected)
    assert error.rule == "unparseable_reply"
    assert error.status == "rejected" and error.error_code == "SQL_REJECTED"
    assert error.detail.startswith("unparseable_reply: ")


def test_lowercase_keyword_after_prose_is_prose() -> None:
    # After prose, only an upper-case keyword at a line start counts as SQL.
    with pytest.raises(ReplyUnparseable):
        parse_reply("I would do this:\nselect the orders table and count them")
    assert parse_reply("I would do this:\nSELECT count(*) FROM orders") == (
        "SELECT count(*) FROM orders",
        "I would do this:",
    )
