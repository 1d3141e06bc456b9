"""`sqlagent eval` as a user runs it: a real subprocess on the 11 loaded Defog databases, a SQLite
app database it migrates itself, and the LLM test server (answering gold SQL, or deliberately
wrong answers of every kind)."""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from support.llm_server import LlmServer
from support.pg import PG_ADMIN_URL
from support.stack import base_env, cli

from shared.evaldata import QUESTIONS_DIR
from shared.evaldata.load import drop_defog_databases, load_defog_databases, targets_toml
from shared.evaldata.questions import EvalQuestion, read_questions

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("defog_eval")]

DEFOG_COLUMNS = ["question", "query", "db_name", "query_category", "instructions"]


def raw_rows(name: str) -> list[dict[str, str]]:
    with (QUESTIONS_DIR / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


MAIN_ROWS = raw_rows("questions_gen_postgres")
IDK_ROWS = raw_rows("idk")
# Every 5th question (42: all six categories, all 11 databases) and every 10th idk one (11).
SUBSET_ROWS = MAIN_ROWS[::5]
IDK_SUBSET_ROWS = IDK_ROWS[::10]


def parsed(rows: list[dict[str, str]], tmp: Path) -> list[EvalQuestion]:
    return read_questions(write_defog_csv(tmp / f"parsed-{uuid.uuid4().hex[:6]}.csv", rows))


def write_defog_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=DEFOG_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in DEFOG_COLUMNS})
    return path


@dataclass
class EvalEnv:
    env: dict[str, str]
    targets: Path
    tmp: Path
    llm: LlmServer
    urls: dict[str, str]

    def run(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return cli("eval", *args, env=env or self.env, timeout=120)


@pytest.fixture(scope="module")
async def eval_urls() -> AsyncIterator[dict[str, str]]:
    prefix = f"evalcmd_{uuid.uuid4().hex[:8]}"
    urls = await load_defog_databases(PG_ADMIN_URL, prefix=prefix)
    yield urls
    await drop_defog_databases(PG_ADMIN_URL, prefix=prefix)


@pytest.fixture(scope="module")
def ev(tmp_path_factory, eval_urls) -> Iterator[EvalEnv]:  # type: ignore[no-untyped-def]
    tmp: Path = tmp_path_factory.mktemp("eval-command")
    targets = tmp / "defog.toml"
    targets.write_text(targets_toml(eval_urls))
    with LlmServer() as llm:
        env = base_env(
            SQLAGENT_DATABASE_URL=f"sqlite:///{tmp}/app.db",
            SQLAGENT_LLM_BASE_URL=llm.base_url,
            SQLAGENT_LLM_MODEL="test-model",
        )
        yield EvalEnv(env=env, targets=targets, tmp=tmp, llm=llm, urls=eval_urls)


def test_gold_answers_score_full_accuracy(ev: EvalEnv) -> None:
    questions = parsed(SUBSET_ROWS, ev.tmp)
    idk = parsed(IDK_SUBSET_ROWS, ev.tmp)
    assert {q.category for q in questions} == {
        "group_by",
        "order_by",
        "ratio",
        "table_join",
        "instruct",
        "date_functions",
    }
    assert len({q.data_source for q in questions}) == 11 and all(q.unanswerable for q in idk)
    # Answer with the LAST expansion of each gold (a smaller column subset, or the last `;`
    # alternative): those count as right too.
    ev.llm.add_gold({q.question: q.gold[-1] for q in questions})
    assert any(len(q.gold) > 1 for q in questions)
    for q in idk:
        ev.llm.add(q.question, {"sql": None, "explanation": "no such data"})

    path = write_defog_csv(ev.tmp / "subset.csv", SUBSET_ROWS + IDK_SUBSET_ROWS)
    out = ev.tmp / "report.json"
    result = ev.run(
        "--questions",
        str(path),
        "--targets",
        str(ev.targets),
        "--concurrency",
        "8",
        "--out",
        str(out),
        "--min-accuracy",
        "1.0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    total = len(questions) + len(idk)
    assert (report["total"], report["correct"], report["accuracy"]) == (total, total, 1.0), report["failures"]
    assert report["failures"] == [] and report["reasons"] == {}
    assert set(report["by_category"]) == {q.category for q in questions + idk}
    ordered = sum(q.category == "order_by" for q in questions)
    assert report["by_category"]["order_by"] == {"total": ordered, "correct": ordered, "accuracy": 1.0}
    assert sum(s["total"] for s in report["by_database"].values()) == total
    assert report["latency"]["p95_ms"] >= report["latency"]["p50_ms"] > 0
    assert report["tokens"]["prompt"] > 0 and report["tokens"]["completion"] > 0
    assert "Execution accuracy" in result.stdout and "100.0%" in result.stdout

    # Instructions reach the system prompt; idk's "answer with the apology SELECT" ones do not.
    instructed = next(q for q in questions if q.instructions)
    system = ev.llm.calls(instructed.question)[0]["messages"][0]
    assert system["role"] == "system"
    assert system["content"].endswith(f"Instructions for this question:\n{instructed.instructions}")
    for q in idk:
        assert "Instructions for this question" not in ev.llm.calls(q.question)[0]["messages"][0]["content"]


def _limit_plus_one(sql: str) -> str:
    return re.sub(r"LIMIT (\d+)", lambda m: f"LIMIT {int(m.group(1)) + 1}", sql)


async def _rows(url: str, sql: str) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def test_wrong_answers_score_zero_and_each_failure_is_classified(ev: EvalEnv) -> None:
    main = read_questions(QUESTIONS_DIR / "questions_gen_postgres.csv")
    idk = read_questions(QUESTIONS_DIR / "idk.csv")
    by_db = {q.data_source: q for q in reversed(main)}  # the first question of each database

    # A LIMIT that lets one more row in (checked to really change the rows).
    limited = None
    for q in main:
        wrong = _limit_plus_one(q.gold[0])
        if wrong != q.gold[0] and await _rows(ev.urls[q.data_source], wrong) != await _rows(
            ev.urls[q.data_source], q.gold[0]
        ):
            limited = (q, wrong)
            break
    assert limited is not None
    # the cases below write SQL for the academic schema
    other = [q for q in main if q.data_source == "academic" and q is not limited[0]]
    cases: list[tuple[EvalQuestion, Any, str]] = [
        (limited[0], {"sql": limited[1]}, "wrong_rows"),
        # a different column: the year instead of the title
        (by_db["scholar"], {"sql": "SELECT paper.year FROM paper"}, "wrong_rows"),
        (other[1], {"sql": "SELECT author.no_such_column FROM author"}, "sql_error"),
        (other[2], {"sql": "DELETE FROM author"}, "rejected"),
        (other[3], {"sql": None, "explanation": "I cannot tell"}, "unanswerable"),
        (other[4], {"delay_s": 5, "then": {"sql": other[4].gold[0]}}, "timeout"),
        (other[5], {"status": 503, "message": "overloaded"}, "llm_unavailable"),
        (idk[0], {"sql": idk[0].gold[0]}, "answered_unanswerable"),
    ]
    assert len({q.question for q, _, _ in cases}) == len(cases)
    rows = []
    for question, response, _ in cases:
        ev.llm.add(question.question, response)
        source = next(r for r in MAIN_ROWS + IDK_ROWS if r["question"].strip() == question.question)
        rows.append(source)
    path = write_defog_csv(ev.tmp / "wrong.csv", rows)
    out = ev.tmp / "wrong.json"
    env = {**ev.env, "SQLAGENT_ATTEMPT_DEADLINE_S": "1.5"}
    result = ev.run(
        "--questions",
        str(path),
        "--targets",
        str(ev.targets),
        "--concurrency",
        "8",
        "--out",
        str(out),
        "--min-accuracy",
        "0.5",
        env=env,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # below --min-accuracy
    assert "below --min-accuracy" in result.stderr
    report = json.loads(out.read_text())
    assert (report["total"], report["correct"], report["accuracy"]) == (len(cases), 0, 0.0)
    reasons = {f["question"]: f for f in report["failures"]}
    for question, _, reason in cases:
        failure = reasons[question.question]
        assert failure["reason"] == reason, failure
        assert failure["data_source"] == question.data_source
    assert reasons[limited[0].question]["status"] == "succeeded" and reasons[limited[0].question]["detail"]
    assert reasons[other[1].question]["error_code"] == "SQL_EXECUTION_ERROR"
    assert reasons[other[2].question]["status"] == "rejected"
    assert reasons[other[4].question]["status"] == "timed_out"
    assert reasons[other[5].question]["error_code"] == "LLM_SERVICE_UNAVAILABLE"
    assert report["reasons"] == {
        "rejected": 1,
        "sql_error": 1,
        "wrong_rows": 2,
        "unanswerable": 1,
        "answered_unanswerable": 1,
        "timeout": 1,
        "llm_unavailable": 1,
    }
    assert "Failures (8)" in result.stdout


def test_bundled_set_filtered_to_one_data_source(ev: EvalEnv) -> None:
    # The server's default answer is {"sql": null}: every idk question declined is right.
    result = ev.run("--questions", "idk", "--targets", str(ev.targets), "--data-source", "yelp")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"all\s+│\s+│\s+15 │\s+15 │\s+100\.0%", result.stdout), result.stdout
    assert "restaurants" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--questions", "missing.csv", "--targets", "{targets}"], "no such file"),
        (["--questions", "idk"], "give --data-source NAME"),
        (["--questions", "{tmp}/bad.csv", "--targets", "{targets}"], "unknown header"),
        (
            ["--questions", "{tmp}/unknown_source.csv", "--targets", "{targets}"],
            "unknown data source(s) 'pagila'",
        ),
        (
            ["--questions", "idk", "--targets", "{targets}", "--data-source", "broker"],
            "no question for data source",
        ),
        (["--questions", "idk", "--targets", "{tmp}/missing.toml"], "--targets: cannot read"),
        (["--questions", "idk", "--data-source", "academic"], "unknown data source(s) 'academic'"),
        (["--questions", "idk", "--targets", "{targets}", "--concurrency", "0"], "--concurrency"),
        (["--questions", "idk", "--targets", "{targets}", "--min-accuracy", "2"], "--min-accuracy"),
        (["--questions", "idk", "--targets", "{targets}", "--out", "{tmp}/no/dir/x.json"], "does not exist"),
    ],
)
def test_cannot_run_exits_2(ev: EvalEnv, args: list[str], message: str) -> None:
    (ev.tmp / "bad.csv").write_text("a,b\n1,2\n")
    (ev.tmp / "unknown_source.csv").write_text("question,sql,data_source\nQ?,SELECT 1,pagila\n")
    result = ev.run(*[a.format(targets=ev.targets, tmp=ev.tmp) for a in args])
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_no_llm_and_no_knowledge_base_exits_2(ev: EvalEnv) -> None:
    env = {k: v for k, v in ev.env.items() if not k.startswith("SQLAGENT_LLM_")}
    result = ev.run("--questions", "idk", "--targets", str(ev.targets), "--data-source", "atis", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "SQLAGENT_LLM_BASE_URL" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_data_source_exits_2(ev: EvalEnv) -> None:
    targets = ev.tmp / "down.toml"
    targets.write_text(targets_toml({"atis": "postgresql://postgres@127.0.0.1:1/atis"}))
    result = ev.run("--questions", "idk", "--targets", str(targets), "--data-source", "atis")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "data source 'atis' cannot be read" in result.stderr and "Traceback" not in result.stderr
