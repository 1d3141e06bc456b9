"""The conversation sent to the model: one per attempt (SPEC "The LLM protocol").

Layout: a `system` message (dialect and its quirks, the rules, the reply protocol, the schema, the
retrieved examples, optional dataset instructions), then a `user` message that is exactly the
question. Each repair round appends the model's reply as an `assistant` message and a `user`
message that starts with the question verbatim, then the error. A scripted test server can
therefore key on the first user message (always the bare question) and count rounds by the
number of assistant messages.
"""

from __future__ import annotations

import msgspec

from worker.pipeline.reply import Reply


class Example(msgspec.Struct, frozen=True):
    """A verified knowledge-base example retrieved for this question."""

    question: str
    sql: str


_DIALECTS: dict[str, tuple[str, str]] = {
    "postgresql": (
        "PostgreSQL",
        "- Unquoted identifiers fold to lower case: double-quote any name shown with upper-case letters "
        '(e.g. "CustomerId").\n'
        "- String literals use single quotes; use ILIKE for case-insensitive matching.\n"
        "- Integer division truncates: cast to numeric (x::numeric / y) for ratios and percentages, "
        "and use NULLIF(y, 0) to avoid division by zero.\n"
        "- Dates: date_trunc('month', ts), EXTRACT(YEAR FROM ts), CURRENT_DATE, now(), "
        "ts - INTERVAL '30 days'.\n"
        "- Use LIMIT n for top-n; NULLS FIRST/LAST where the order of NULLs matters.",
    ),
    "sqlite": (
        "SQLite",
        "- No ILIKE: LIKE is already case-insensitive for ASCII text.\n"
        "- Dates and times are stored as ISO-8601 TEXT: use date(), datetime(), strftime('%Y-%m', col), "
        "julianday() and date('now', '-30 days').\n"
        "- Integer division truncates: multiply by 1.0 (x * 1.0 / y) for ratios and percentages, "
        "and use NULLIF(y, 0) to avoid division by zero.\n"
        "- Booleans are integers 0/1; concatenate strings with ||; there is no schema prefix other than "
        "the table name itself.\n"
        "- Use LIMIT n for top-n.",
    ),
}
_DIALECT_ALIASES = {"postgres": "postgresql", "pg": "postgresql", "sqlite3": "sqlite"}

REPLY_FORMAT = '{"sql": "<one SELECT statement>", "explanation": "<one or two sentences>"}'


def _dialect(dialect: str) -> tuple[str, str]:
    """(display name, quirks worth stating) for a dialect name; unknown dialects get no quirks."""
    key = dialect.strip().lower()
    key = _DIALECT_ALIASES.get(key, key)
    return _DIALECTS.get(key, (dialect.strip(), ""))


def build_system_prompt(
    *, dialect: str, schema_text: str, examples: list[Example], instructions: str | None = None
) -> str:
    label, quirks = _dialect(dialect)
    parts = [
        f"You are an expert {label} analyst. You write one SQL query that answers the user's question "
        f"from the database described below. The query runs on {label}.",
        "Rules:\n"
        "- Write exactly one read-only statement: a SELECT (a WITH ... SELECT or VALUES is fine). "
        "Never INSERT, UPDATE, DELETE, DDL, transaction control, or anything that changes data or "
        "settings.\n"
        "- Use only the tables and columns shown in the schema; qualify table names with their schema "
        "where the schema shows one.\n"
        "- Return the columns the question asks for, with readable aliases; no trailing semicolon.",
    ]
    if quirks:
        parts.append(f"{label} notes:\n{quirks}")
    parts.append(
        "Reply format: answer ONLY with a JSON object, no other text:\n"
        f"{REPLY_FORMAT}\n"
        'Set "sql" to null when this database cannot answer the question, and say why in '
        '"explanation".'
    )
    parts.append(f"Database schema:\n{schema_text.strip()}")
    if examples:
        rendered = "\n\n".join(f"Question: {ex.question.strip()}\nSQL: {ex.sql.strip()}" for ex in examples)
        parts.append(f"Verified examples for this database (question -> SQL):\n\n{rendered}")
    if instructions and instructions.strip():
        parts.append(f"Instructions for this question:\n{instructions.strip()}")
    return "\n\n".join(parts)


def repair_message(question: str, error: str) -> str:
    """The user message of a repair round: the question verbatim first, then the error."""
    return (
        f"{question}\n\n"
        f"Your previous answer to this question did not work: {error.strip()}\n"
        f"Correct it and answer again with only the JSON object {REPLY_FORMAT}."
    )


class Conversation:
    """The messages of one attempt, in the shape `chat.completions.create(messages=...)` takes."""

    def __init__(self, messages: list[dict[str, str]]) -> None:
        self.messages = messages

    @classmethod
    def start(
        cls,
        *,
        dialect: str,
        schema_text: str,
        examples: list[Example],
        question: str,
        instructions: str | None = None,
    ) -> Conversation:
        system = build_system_prompt(
            dialect=dialect, schema_text=schema_text, examples=examples, instructions=instructions
        )
        return cls([{"role": "system", "content": system}, {"role": "user", "content": question}])

    @property
    def rounds(self) -> int:
        """Model answers recorded so far (assistant messages)."""
        return sum(1 for m in self.messages if m["role"] == "assistant")

    def add_reply(self, reply: Reply) -> None:
        # Some servers refuse an empty assistant message; an unparseable empty reply still needs one.
        content = reply.raw if reply.raw.strip() else "(empty reply)"
        self.messages.append({"role": "assistant", "content": content})

    def add_repair(self, question: str, error: str) -> None:
        self.messages.append({"role": "user", "content": repair_message(question, error)})
