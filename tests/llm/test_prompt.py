from __future__ import annotations

from worker.pipeline.generate import Conversation, Example, Reply

QUESTION = "How many orders did each customer place in 2024?\nOnly active customers."
SCHEMA = "public.orders(id int4 pk, customer_id int4 -> public.customers.id, placed_at timestamptz)"


def _start(**overrides: object) -> Conversation:
    fields: dict[str, object] = {
        "dialect": "postgresql",
        "schema_text": SCHEMA,
        "examples": [Example(question="How many customers?", sql="SELECT count(*) FROM public.customers")],
        "question": QUESTION,
    }
    fields.update(overrides)
    return Conversation.start(**fields)  # type: ignore[arg-type]


def test_start_is_system_then_the_bare_question() -> None:
    conversation = _start()
    assert [m["role"] for m in conversation.messages] == ["system", "user"]
    assert conversation.messages[1]["content"] == QUESTION
    assert conversation.rounds == 0


def test_system_prompt_carries_dialect_schema_examples_rules_and_format() -> None:
    system = _start().messages[0]["content"]
    assert "PostgreSQL" in system
    assert "ILIKE" in system  # a dialect quirk
    assert SCHEMA in system
    assert "Question: How many customers?\nSQL: SELECT count(*) FROM public.customers" in system
    assert "read-only" in system and "SELECT" in system
    assert "qualify table names with their schema" in system
    assert '{"sql": ' in system and '"explanation": ' in system
    assert '"sql" to null' in system
    assert QUESTION not in system  # the question travels only in user messages


def test_sqlite_dialect_and_aliases() -> None:
    system = _start(dialect="sqlite").messages[0]["content"]
    assert "SQLite" in system and "strftime" in system and "ILIKE" in system.split("SQLite notes")[1]
    assert "PostgreSQL" not in system
    assert "PostgreSQL" in _start(dialect="postgres").messages[0]["content"]


def test_no_examples_section_when_none_and_instructions_included() -> None:
    system = _start(examples=[], instructions="  TAC = total active customers  ").messages[0]["content"]
    assert "Verified examples" not in system
    assert "Instructions for this question:\nTAC = total active customers" in system
    assert "Instructions for this question" not in _start().messages[0]["content"]


def test_repair_round_layout() -> None:
    conversation = _start()
    raw = '{"sql": "SELECT nope FROM public.orders", "explanation": "x"}'
    conversation.add_reply(
        Reply(
            sql="SELECT nope FROM public.orders",
            explanation="x",
            raw=raw,
            prompt_tokens=1,
            completion_tokens=1,
        )
    )
    conversation.add_repair(QUESTION, 'column "nope" does not exist')
    roles = [m["role"] for m in conversation.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert conversation.messages[1]["content"] == QUESTION  # first user message unchanged
    assert conversation.messages[2]["content"] == raw  # the reply verbatim
    repair = conversation.messages[3]["content"]
    assert repair.startswith(QUESTION + "\n\n")  # the question verbatim again, first
    assert 'column "nope" does not exist' in repair
    assert '{"sql": ' in repair
    assert conversation.rounds == 1


def test_empty_reply_still_gets_an_assistant_message() -> None:
    conversation = _start()
    conversation.add_reply(Reply(sql=None, explanation="", raw="", prompt_tokens=0, completion_tokens=0))
    assert conversation.messages[-1] == {"role": "assistant", "content": "(empty reply)"}
