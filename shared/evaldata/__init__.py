"""The Defog text-to-SQL evaluation set, shipped as package data (see README.md here).

`databases/<db>.sql` are the 11 PostgreSQL dumps, `questions/*.csv` the question files with gold
SQL; both unmodified copies under the Apache License 2.0 (the LICENSE file in each folder)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
DATABASES_DIR = DATA_DIR / "databases"
QUESTIONS_DIR = DATA_DIR / "questions"

DEFOG_DATABASES: tuple[str, ...] = (
    "academic",
    "advising",
    "atis",
    "broker",
    "car_dealership",
    "derm_treatment",
    "ewallet",
    "geography",
    "restaurants",
    "scholar",
    "yelp",
)

# The bundled question sets, by the name `sqlagent eval --questions` also accepts.
BUNDLED_QUESTIONS: tuple[str, ...] = (
    "questions_gen_postgres",
    "instruct_basic_postgres",
    "instruct_advanced_postgres",
    "idk",
)


def dump_path(database: str) -> Path:
    if database not in DEFOG_DATABASES:
        raise ValueError(f"not a Defog database: {database!r}")
    return DATABASES_DIR / f"{database}.sql"


def bundled_questions(name: str) -> Path | None:
    """The bundled CSV called `name` (with or without `.csv`), or None."""
    stem = name.removesuffix(".csv")
    return QUESTIONS_DIR / f"{stem}.csv" if stem in BUNDLED_QUESTIONS else None
