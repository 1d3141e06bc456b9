"""to_json_value and the formatters behind the asyncpg codecs, without a database."""

from __future__ import annotations

import datetime as dt
import ipaddress
import struct
import uuid
from decimal import Decimal

import asyncpg
import msgspec
import pytest

from shared.results.values import (
    _float4_from_binary,
    format_date,
    format_interval,
    format_time,
    format_timestamp,
    pg_type_name,
    to_json_value,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (7, 7),
        ("x", "x"),
        (1.25, 1.25),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (Decimal("1.50"), "1.50"),
        (Decimal("1E-8"), "0.00000001"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-0.000"), "-0.000"),
        (Decimal("NaN"), "NaN"),
        (Decimal("-Infinity"), "-Infinity"),
        (dt.date(2024, 2, 29), "2024-02-29"),
        (dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 500000), "2024-01-02T03:04:05.5"),
        (
            dt.datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
            "2024-01-02T03:04:05.12-03:30",
        ),
        (dt.time(13, 14, 15, 10), "13:14:15.00001"),
        (dt.time(1, 2, tzinfo=dt.UTC), "01:02:00+00:00"),
        (dt.timedelta(days=1, hours=2, minutes=3, seconds=4.5), "P1DT2H3M4.5S"),
        (dt.timedelta(hours=-1), "PT-1H"),
        (-dt.timedelta(days=1, hours=2), "P-1DT-2H"),
        (dt.timedelta(0), "PT0S"),
        (dt.timedelta(microseconds=-1), "PT-0.000001S"),
        (b"\x00\xff", "AP8="),
        (memoryview(b"abc"), "YWJj"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (ipaddress.ip_interface("10.1.2.3/8"), "10.1.2.3/8"),
        (ipaddress.ip_network("10.0.0.0/8"), "10.0.0.0/8"),
        (ipaddress.ip_address("::1"), "::1"),
        ([1, [Decimal("2.0"), None]], [1, ["2.0", None]]),
        ((1, 2), [1, 2]),
        ({"a": float("nan")}, {"a": "NaN"}),
        (
            asyncpg.Range(1, 5),
            {"empty": False, "lower": 1, "upper": 5, "lower_inc": True, "upper_inc": False},
        ),
        (
            asyncpg.Range(None, Decimal("2"), upper_inc=True),
            {"empty": False, "lower": None, "upper": "2", "lower_inc": False, "upper_inc": True},
        ),
        (asyncpg.BitString("1010"), "1010"),
        (asyncpg.Point(1, 2), [1.0, 2.0]),
        (asyncpg.Path(asyncpg.Point(0, 0), asyncpg.Point(1, 1)), [[0.0, 0.0], [1.0, 1.0]]),
    ],
)
def test_to_json_value(value, expected):
    converted = to_json_value(value)
    assert converted == expected
    msgspec.json.encode(converted)  # always encodable


def test_pg_formatters():
    assert format_date(0) == "2000-01-01"
    assert format_date(2**31 - 1) == "infinity"
    assert format_date(-(2**31)) == "-infinity"
    # Beyond Python's calendar: ISO 8601 expanded years.
    assert format_date((dt.date(9999, 12, 31) - dt.date(2000, 1, 1)).days + 1) == "+10000-01-01"
    assert format_date((dt.date(1, 1, 1) - dt.date(2000, 1, 1)).days - 1) == "0000-12-31"  # 1 BC
    assert format_timestamp(0) == "2000-01-01T00:00:00"
    assert format_timestamp(-1) == "1999-12-31T23:59:59.999999"
    assert format_timestamp(86_400_000_000 + 1_500_000, utc=True) == "2000-01-02T00:00:01.5+00:00"
    assert format_timestamp(2**63 - 1, utc=True) == "infinity"
    assert format_time(0) == "00:00:00"
    assert format_time(86_400_000_000) == "24:00:00"
    assert format_interval(0, 0, 0) == "PT0S"
    assert format_interval(14, 3, 14_706_789_000) == "P1Y2M3DT4H5M6.789S"
    assert format_interval(-12, -2, 3 * 3_600_000_000) == "P-1Y-2DT3H"
    assert format_interval(-1, 0, 0) == "P-1M"
    assert format_interval(0, 0, -500_000) == "PT-0.5S"


def test_float4_shortest_form():
    for text in ("1.1", "0.1", "3.4028235e38", "1e-45", "123456.7", "-2.5"):
        data = struct.pack(">f", float(text))
        assert _float4_from_binary(data) == float(text)
    assert _float4_from_binary(struct.pack(">f", float("nan"))) == "NaN"


def test_pg_type_names():
    assert pg_type_name(asyncpg.types.Type(23, "int4", "scalar", "pg_catalog")) == "int4"
    assert pg_type_name(asyncpg.types.Type(1007, "int4[]", "array", "pg_catalog")) == "_int4"
    assert pg_type_name(asyncpg.types.Type(1, "mood[]", "array", "public")) == "_mood"
