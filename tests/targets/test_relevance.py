"""Picking the tables for a question out of a synthetic 300-table schema."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from shared.targets.introspect import ColumnInfo, ForeignKey, SchemaSnapshot, TableInfo
from shared.targets.relevance import relevant_tables, stem, words


def col(name: str, pk: bool = False, comment: str | None = None) -> ColumnInfo:
    return ColumnInfo(name=name, type="text", nullable=not pk, primary_key=pk, comment=comment)


def tab(
    schema: str, name: str, columns: list[str], fks: dict[str, str] | None = None, comment=None
) -> TableInfo:
    return TableInfo(
        schema=schema,
        name=name,
        comment=comment,
        columns=[col(c, pk=(c == "id")) for c in columns],
        foreign_keys=[
            ForeignKey(columns=[c], ref_table=ref, ref_columns=["id"]) for c, ref in (fks or {}).items()
        ],
    )


DOMAIN = [
    tab(
        "sales",
        "customers",
        ["id", "first_name", "last_name", "email", "country_id", "created_at"],
        {"country_id": "sales.countries"},
    ),
    tab("sales", "countries", ["id", "name", "iso_code"]),
    tab(
        "sales",
        "orders",
        ["id", "customer_id", "ordered_at", "status", "carrier_id", "shipping_address_id"],
        {
            "customer_id": "sales.customers",
            "carrier_id": "sales.ShippingCarriers",
            "shipping_address_id": "sales.addresses",
        },
    ),
    tab(
        "sales",
        "order_items",
        ["order_id", "product_id", "quantity", "unit_price"],
        {"order_id": "sales.orders", "product_id": "sales.products"},
    ),
    tab(
        "sales",
        "products",
        ["id", "name", "category_id", "list_price"],
        {"category_id": "sales.product_categories"},
    ),
    tab("sales", "product_categories", ["id", "name"]),
    tab("sales", "addresses", ["id", "street", "city", "postal_code"]),
    tab("sales", "ShippingCarriers", ["id", "carrierName", "trackingUrl"]),
    tab(
        "hr",
        "employees",
        ["id", "full_name", "department_id", "hired_on", "salary"],
        {"department_id": "hr.departments"},
    ),
    tab("hr", "departments", ["id", "name", "manager_id"], {"manager_id": "hr.employees"}),
    tab(
        "support",
        "tickets",
        ["id", "customer_id", "opened_at", "priority"],
        {"customer_id": "sales.customers"},
        comment="Customer support requests",
    ),
    tab(
        "finance",
        "invoices",
        ["id", "order_id", "issued_on", "amount_due", "paid"],
        {"order_id": "sales.orders"},
    ),
]

_NOISE_TEXT = (
    "sensor telemetry widget batch job queue metric audit cache config device firmware session token "
    "gateway module pipeline cluster node shard replica backup snapshot alert threshold probe agent "
    "bucket blob archive schema migration feature flag experiment variant cohort funnel beacon crawler"
)
NOISE_WORDS = _NOISE_TEXT.split()


def synthetic_schema(seed: int = 7) -> SchemaSnapshot:
    rng = random.Random(seed)
    tables = list(DOMAIN)
    noise: list[TableInfo] = []
    while len(tables) + len(noise) < 300:
        a, b = rng.sample(NOISE_WORDS, 2)
        name = f"{a}_{b}_{len(noise)}"
        columns = ["id", "name", "status", "created_at", "updated_at", *rng.sample(NOISE_WORDS, 3)]
        fks = {}
        if noise and rng.random() < 0.5:
            parent = rng.choice(noise)
            fks[f"{parent.name}_id"] = f"ops.{parent.name}"
            columns.append(f"{parent.name}_id")
        noise.append(tab("ops", name, columns, fks))
    tables += noise
    return SchemaSnapshot(data_source="big", taken_at=datetime.now(UTC), tables=tables)


def picked(snapshot: SchemaSnapshot, question: str, limit: int = 15) -> list[str]:
    return [t.name for t in relevant_tables(snapshot, question, limit=limit)]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "What is the total revenue per product category?",
            {"products", "product_categories", "order_items"},
        ),
        ("Which customers have unpaid invoices?", {"customers", "invoices", "orders"}),
        ("List employees hired in 2023 with their department name", {"employees", "departments"}),
        ("Which shipping carrier delivered the most orders?", {"ShippingCarriers", "orders"}),
        (
            "How many support tickets were opened by customers from Germany?",
            {"tickets", "customers", "countries"},
        ),
        ("Top 5 products by quantity sold", {"products", "order_items"}),
        ("Show the city of the shipping address for each order", {"addresses", "orders"}),
    ],
)
def test_picks_the_right_tables_out_of_300(question, expected):
    snapshot = synthetic_schema()
    assert len(snapshot.tables) == 300
    result = picked(snapshot, question)
    assert len(result) <= 15
    assert expected <= set(result), result
    # The question's own tables come before the noise.
    domain = {t.name for t in DOMAIN}
    first_noise = next((i for i, name in enumerate(result) if name not in domain), len(result))
    assert expected <= set(result[:first_noise]), result


def test_deterministic_whatever_the_input_order():
    snapshot = synthetic_schema()
    shuffled = SchemaSnapshot(
        data_source="big", taken_at=snapshot.taken_at, tables=random.Random(1).sample(snapshot.tables, 300)
    )
    question = "revenue per customer country"
    assert picked(snapshot, question) == picked(shuffled, question) == picked(snapshot, question)


def test_small_schema_is_shown_whole():
    snapshot = SchemaSnapshot(data_source="s", taken_at=datetime.now(UTC), tables=DOMAIN)
    assert relevant_tables(snapshot, "anything at all", limit=15) == DOMAIN


def test_no_matching_word_falls_back_to_connected_tables():
    result = picked(synthetic_schema(), "zzz qqq", limit=5)
    assert len(result) == 5
    assert result == picked(synthetic_schema(), "zzz qqq", limit=5)


def test_limit_is_respected():
    snapshot = synthetic_schema()
    assert len(picked(snapshot, "orders customers products invoices tickets employees", limit=4)) == 4


def test_words_and_stems():
    assert words("ShippingCarriers") == ["ship", "carrier"]
    assert words("order_items") == ["order", "item"]
    assert words("HTTPRequestLog") == ["http", "request", "log"]
    assert words("product_categories") == words("Product category")
    assert stem("addresses") == stem("address") == "address"
    assert stem("status") == "status"
    assert stem("shipped") == stem("shipping") == stem("ships") == "ship"
    assert stem("sales") == stem("sale")
