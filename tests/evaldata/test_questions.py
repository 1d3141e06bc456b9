"""Reading evaluation questions: Defog's CSV layouts, the plain layout, `;` alternatives and `{}`
column alternatives."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from shared.evaldata import BUNDLED_QUESTIONS, DEFOG_DATABASES, QUESTIONS_DIR, bundled_questions, dump_path
from shared.evaldata.questions import (
    QuestionsError,
    expand_column_alternatives,
    gold_alternatives,
    is_apology,
    read_questions,
    split_statements,
)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- splitting alternatives ------------------------------------------------------------------


def test_alternatives_split_at_statement_boundaries() -> None:
    assert split_statements("SELECT 1;SELECT 2;") == ["SELECT 1", "SELECT 2"]
    assert split_statements("  SELECT 1 ;\n\n ; SELECT 2  ") == ["SELECT 1", "SELECT 2"]
    assert split_statements("") == []


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 'a;b' AS x;SELECT 2", ["SELECT 'a;b' AS x", "SELECT 2"]),
        ("SELECT 'it''s; fine';SELECT 2", ["SELECT 'it''s; fine'", "SELECT 2"]),
        ('SELECT "odd;name" FROM t;SELECT 2', ['SELECT "odd;name" FROM t', "SELECT 2"]),
        ("SELECT 1 -- a; comment\n;SELECT 2", ["SELECT 1 -- a; comment", "SELECT 2"]),
        ("SELECT /* a; /* nested; */ b; */ 1;SELECT 2", ["SELECT /* a; /* nested; */ b; */ 1", "SELECT 2"]),
        ("SELECT $$a;b$$;SELECT $tag$x;$$;y$tag$", ["SELECT $$a;b$$", "SELECT $tag$x;$$;y$tag$"]),
        ("SELECT E'a\\';b';SELECT 2", ["SELECT E'a\\';b'", "SELECT 2"]),
        ("SELECT 'unterminated;", ["SELECT 'unterminated;"]),
    ],
)
def test_semicolons_inside_literals_identifiers_and_comments_do_not_split(
    sql: str, expected: list[str]
) -> None:
    assert split_statements(sql) == expected


def test_regex_alternation_and_concatenation_are_not_separators() -> None:
    sql = "SELECT a || b FROM t WHERE s ~ '(AMZN|AAPL)'"
    assert gold_alternatives(sql) == [sql]


# --- column alternatives ---------------------------------------------------------------------


def test_braces_expand_to_every_non_empty_subset_full_list_first() -> None:
    assert expand_column_alternatives("SELECT {a.x, a.y} FROM a") == [
        "SELECT a.x, a.y FROM a",
        "SELECT a.x FROM a",
        "SELECT a.y FROM a",
    ]


def test_group_by_empty_braces_repeats_the_chosen_columns() -> None:
    sql = "SELECT {a.aid, a.name}, count(*) AS n FROM a GROUP BY {} ORDER BY n DESC"
    assert expand_column_alternatives(sql) == [
        "SELECT a.aid, a.name, count(*) AS n FROM a GROUP BY a.aid, a.name ORDER BY n DESC",
        "SELECT a.aid, count(*) AS n FROM a GROUP BY a.aid ORDER BY n DESC",
        "SELECT a.name, count(*) AS n FROM a GROUP BY a.name ORDER BY n DESC",
    ]


def test_three_columns_give_seven_variants_and_keep_column_order() -> None:
    variants = expand_column_alternatives("SELECT {c.id,c.name, c.number} FROM c")
    assert len(variants) == 7
    assert variants[0] == "SELECT c.id, c.name, c.number FROM c"
    assert "SELECT c.id, c.number FROM c" in variants and "SELECT c.number, c.id FROM c" not in variants


def test_commas_inside_parentheses_do_not_split_a_column() -> None:
    assert expand_column_alternatives("SELECT {coalesce(a, b), c} FROM t") == [
        "SELECT coalesce(a, b), c FROM t",
        "SELECT coalesce(a, b) FROM t",
        "SELECT c FROM t",
    ]


def test_braces_inside_string_literals_are_left_alone() -> None:
    sql = r"SELECT name FROM t WHERE code ~ '^\d{3}$'"
    assert expand_column_alternatives(sql) == [sql]
    assert expand_column_alternatives("SELECT {a, b} FROM t WHERE s ~ 'x{2}' GROUP BY {}") == [
        "SELECT a, b FROM t WHERE s ~ 'x{2}' GROUP BY a, b",
        "SELECT a FROM t WHERE s ~ 'x{2}' GROUP BY a",
        "SELECT b FROM t WHERE s ~ 'x{2}' GROUP BY b",
    ]


def test_gold_alternatives_expand_each_statement_and_drop_duplicates() -> None:
    gold = "SELECT {a, b} FROM t;SELECT b FROM t;SELECT c FROM u;"
    assert gold_alternatives(gold) == [
        "SELECT a, b FROM t",
        "SELECT a FROM t",
        "SELECT b FROM t",
        "SELECT c FROM u",
    ]


@pytest.mark.parametrize(
    ("sql", "apology"),
    [
        (
            "SELECT 'I''m sorry, but the data needed to respond to this is unavailable to me.' AS answer;",
            True,
        ),
        ("select 'Sorry' as answer", True),
        ("SELECT 'Sorry'", True),
        ("SELECT 'a' AS answer FROM t", False),
        ("SELECT name FROM t", False),
        ("SELECT 'a', 'b'", False),
    ],
)
def test_constant_string_gold_is_an_apology(sql: str, apology: bool) -> None:
    assert is_apology(sql) is apology


# --- CSV layouts -----------------------------------------------------------------------------


def test_defog_layout(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "q.csv",
        ["question", "query", "db_name", "query_category", "instructions"],
        [
            ["How many?", "SELECT count(*) FROM t;SELECT count(id) FROM t;", "academic", "group_by", ""],
            ["Who? ", "SELECT {a.x, a.y} FROM a", "yelp", "order_by", "Use table a."],
        ],
    )
    first, second = read_questions(path)
    assert first.question == "How many?" and first.data_source == "academic" and first.category == "group_by"
    assert first.gold == ["SELECT count(*) FROM t", "SELECT count(id) FROM t"]
    assert first.instructions == "" and not first.unanswerable and first.line == 2
    assert second.question == "Who?" and second.instructions == "Use table a." and len(second.gold) == 3


def test_instruct_advanced_layout_uses_instructions_not_full_instructions(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "q.csv",
        ["db_name", "query_category", "question", "instructions", "query", "full_instructions"],
        [
            [
                "broker",
                "keywords_ratio",
                "What is the ACP?",
                "ACP = a/b",
                "SELECT 1",
                "ACP = a/b; also X; also Y",
            ]
        ],
    )
    (question,) = read_questions(path)
    assert question.instructions == "ACP = a/b" and question.category == "keywords_ratio"


def test_plain_layout_with_default_data_source(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "q.csv",
        ["Question", "SQL", "data_source"],
        [["How many customers?", "SELECT count(*) FROM customers", ""], ["Sales?", "SELECT 1", "sales"]],
    )
    first, second = read_questions(path)
    assert first.data_source == "default" and first.category == "" and second.data_source == "sales"
    first, _ = read_questions(path, default_data_source="shop")
    assert first.data_source == "shop"


def test_plain_layout_without_data_source_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "q.csv", ["question", "sql"], [["Q?", "SELECT 1"]])
    assert read_questions(path, default_data_source="x")[0].data_source == "x"


def test_blank_rows_are_skipped_and_a_bom_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("\ufeffquestion,sql\nQ1?,SELECT 1\n,\n\nQ2?,SELECT 2\n", encoding="utf-8")
    assert [q.question for q in read_questions(path)] == ["Q1?", "Q2?"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("a,b\n1,2\n", "unknown header"),
        ("question,sql\n", "no questions"),
        ("question,sql\n,SELECT 1\n", ":2: the row has no question"),
        ("question,sql\nQ?,\n", ":2: the row has no gold SQL"),
        ("question,sql\nQ?,  ;  ;\n", "no gold SQL"),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "q.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(QuestionsError, match=message):
        read_questions(path)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(QuestionsError, match="no such file"):
        read_questions(tmp_path / "missing.csv")
    with pytest.raises(QuestionsError, match="directory"):
        read_questions(tmp_path)
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("question,sql\ncaf\xe9?,SELECT 1\n".encode("latin-1"))
    with pytest.raises(QuestionsError, match="UTF-8"):
        read_questions(bad)


# --- the bundled data ------------------------------------------------------------------------


def test_bundled_files_are_present_with_their_licenses() -> None:
    for db in DEFOG_DATABASES:
        assert dump_path(db).stat().st_size > 1000
    for name in BUNDLED_QUESTIONS:
        path = bundled_questions(name)
        assert path is not None and path == bundled_questions(name + ".csv") and path.exists()
    assert bundled_questions("nope") is None
    for folder in (QUESTIONS_DIR, dump_path("yelp").parent):
        assert "Apache License" in (folder / "LICENSE").read_text()
    with pytest.raises(ValueError, match="not a Defog database"):
        dump_path("../etc")


def test_bundled_question_sets_read_as_documented() -> None:
    main = read_questions(QUESTIONS_DIR / "questions_gen_postgres.csv")
    assert len(main) == 210 and {q.data_source for q in main} == set(DEFOG_DATABASES)
    categories = {q.category for q in main}
    assert categories == {"group_by", "order_by", "ratio", "table_join", "instruct", "date_functions"}
    assert sum(1 for q in main if q.instructions) == 35
    assert not any(q.unanswerable for q in main)
    assert not any("{" in sql and "}" in sql for q in main for sql in q.gold if "~" not in sql)
    # 46 rows carry `{}` alternatives; each expands to at least 3 variants
    assert sum(1 for q in main for sql in q.gold) > 300

    idk = read_questions(QUESTIONS_DIR / "idk.csv")
    assert len(idk) == 105 and all(q.unanswerable for q in idk) and all(q.instructions for q in idk)
    assert len(read_questions(QUESTIONS_DIR / "instruct_basic_postgres.csv")) == 40
    advanced = read_questions(QUESTIONS_DIR / "instruct_advanced_postgres.csv")
    assert len(advanced) == 64 and all(q.instructions for q in advanced)
