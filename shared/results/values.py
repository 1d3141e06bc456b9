"""Driver values -> the JSON values of SPEC "Result values", and result column type names.

Two halves:

* `configure_asyncpg_codecs(conn)` installs decoders on an asyncpg connection (the target pool's
  `init`) so that the values asyncpg hands back for the awkward types are already final:
  date/time/timestamp/interval arrive as ISO 8601 strings built from PostgreSQL's binary form
  (asyncpg's own decoders lose interval months, turn `infinity` into `datetime.max` and fail on
  years past 9999), json/jsonb as decoded JSON values, bytea as base64, float4 as its shortest
  decimal form. All of them use the binary/tuple wire format, so composite types that contain
  them still decode (text-format codecs make asyncpg refuse composites). `converter_for_type`
  then picks, per result column, whether values need `to_json_value` at all.
* `to_json_value(value)` turns anything else a driver returns (asyncpg or sqlite3) into a JSON
  value. It is also correct for plain Python values (datetime, timedelta, Decimal, ...), so a
  connection without the codecs still gives SPEC-conforming output, except for interval months.

Decisions (documented here because callers depend on them):

* Non-finite floats (float4/float8 NaN, Infinity) become the strings "NaN", "Infinity",
  "-Infinity" — PostgreSQL's own spelling, and unlike null they stay distinguishable from NULL.
  numeric is always a string anyway ("NaN"/"Infinity" included).
* numeric/Decimal: the exact value in plain (non-exponent) notation, scale kept ("1.50").
* Dates/timestamps `infinity`/`-infinity` become those strings; years outside 1..9999 use ISO 8601
  expanded years ("+10000-01-01", "-0043-03-15" = 44 BC, astronomical numbering).
* timestamptz: UTC with "+00:00"; timetz: its own offset. Fractional seconds without trailing zeros.
* Intervals: ISO 8601 durations exactly as PostgreSQL prints them with `intervalstyle =
  iso_8601` ("P1Y2M3DT4H5M6.5S", "PT0S", per-component signs such as "P-1DT-2H").
* Ranges: `{"empty", "lower", "upper", "lower_inc", "upper_inc"}` with bounds converted (null =
  unbounded); multiranges are lists of those. Composite values (asyncpg Records): objects keyed by
  attribute name (a list when names repeat or are missing); anonymous records: lists. Geometric
  types are asyncpg tuples: points `[x, y]`, boxes/segments lists of points, circles
  `[[x, y], r]`, paths/polygons lists of points. bit/varbit: "0101" strings. inet/cidr/macaddr,
  uuid, enum, money, xml, tsvector...: PostgreSQL's text form.
* Column type names are PostgreSQL's `pg_type.typname`: arrays are "_int4", "_text" (not
  "int4[]"); domains report their base type (that is what the server sends in RowDescription).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import math
import struct
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import msgspec

__all__ = [
    "JSON_READY_TYPES",
    "Column",
    "configure_asyncpg_codecs",
    "converter_for_type",
    "format_date",
    "format_interval",
    "format_time",
    "format_timestamp",
    "pg_type_name",
    "to_json_value",
]


class Column(msgspec.Struct, frozen=True):
    """One result column: its name and the database's type name (`int4`, `numeric`, `_text`)."""

    name: str
    type: str


# --- dates and times -------------------------------------------------------------------------

_US_PER_SECOND = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_SECOND
# PostgreSQL counts dates and timestamps from 2000-01-01.
_PG_EPOCH_ORDINAL = dt.date(2000, 1, 1).toordinal()
_DAYS_PER_400_YEARS = 146_097
_MAX_ORDINAL = dt.date.max.toordinal()
_DATE_POS_INF = 2**31 - 1
_DATE_NEG_INF = -(2**31)
_TS_POS_INF = 2**63 - 1
_TS_NEG_INF = -(2**63)


def _format_ordinal(ordinal: int) -> str:
    """ISO date of a proleptic Gregorian day number (1 = 0001-01-01), any year."""
    if 1 <= ordinal <= _MAX_ORDINAL:
        return dt.date.fromordinal(ordinal).isoformat()
    # Shift by whole 400-year cycles (the Gregorian calendar repeats) into Python's range.
    cycles = (ordinal - 1) // _DAYS_PER_400_YEARS
    shifted = dt.date.fromordinal(ordinal - cycles * _DAYS_PER_400_YEARS)
    year = shifted.year + 400 * cycles
    if year > 9999:
        year_text = f"+{year}"
    elif year < 0:
        year_text = f"-{-year:04d}"
    else:
        year_text = f"{year:04d}"
    return f"{year_text}-{shifted.month:02d}-{shifted.day:02d}"


def _format_fraction(microseconds: int) -> str:
    return f".{microseconds:06d}".rstrip("0") if microseconds else ""


def format_time(microseconds: int) -> str:
    """'HH:MM:SS[.ffffff]' from microseconds since midnight (24:00:00 allowed, as in PostgreSQL)."""
    seconds, frac = divmod(microseconds, _US_PER_SECOND)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{sec:02d}{_format_fraction(frac)}"


def _format_offset(east_seconds: int) -> str:
    sign = "+" if east_seconds >= 0 else "-"
    minutes, sec = divmod(abs(east_seconds), 60)
    hours, minute = divmod(minutes, 60)
    text = f"{sign}{hours:02d}:{minute:02d}"
    return f"{text}:{sec:02d}" if sec else text


def format_date(pg_days: int) -> str:
    """A PostgreSQL date (days since 2000-01-01, binary form) as ISO 8601."""
    if pg_days == _DATE_POS_INF:
        return "infinity"
    if pg_days == _DATE_NEG_INF:
        return "-infinity"
    return _format_ordinal(pg_days + _PG_EPOCH_ORDINAL)


def format_timestamp(pg_microseconds: int, *, utc: bool = False) -> str:
    """A PostgreSQL timestamp (microseconds since 2000-01-01, binary form) as ISO 8601."""
    if pg_microseconds == _TS_POS_INF:
        return "infinity"
    if pg_microseconds == _TS_NEG_INF:
        return "-infinity"
    days, time_of_day = divmod(pg_microseconds, _US_PER_DAY)
    text = f"{_format_ordinal(days + _PG_EPOCH_ORDINAL)}T{format_time(time_of_day)}"
    return f"{text}+00:00" if utc else text


def format_interval(months: int, days: int, microseconds: int) -> str:
    """ISO 8601 duration, byte for byte what PostgreSQL prints with intervalstyle = iso_8601."""

    def trunc_divmod(value: int, unit: int) -> tuple[int, int]:
        quotient = abs(value) // unit * (1 if value >= 0 else -1)  # C division truncates to 0
        return quotient, value - quotient * unit

    years, mons = trunc_divmod(months, 12)
    hours, rest = trunc_divmod(microseconds, 3600 * _US_PER_SECOND)
    minutes, rest = trunc_divmod(rest, 60 * _US_PER_SECOND)
    if not (years or mons or days or hours or minutes or rest):
        return "PT0S"
    parts = ["P"]
    parts += [f"{n}{unit}" for n, unit in ((years, "Y"), (mons, "M"), (days, "D")) if n]
    if hours or minutes or rest:
        parts.append("T")
    parts += [f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n]
    if rest:
        sec, frac = divmod(abs(rest), _US_PER_SECOND)
        parts.append(f"{'-' if rest < 0 else ''}{sec}{_format_fraction(frac)}S")
    return "".join(parts)


def _timedelta_to_iso(value: dt.timedelta) -> str:
    total = (value.days * 86_400 + value.seconds) * _US_PER_SECOND + value.microseconds
    days = abs(total) // _US_PER_DAY * (1 if total >= 0 else -1)
    return format_interval(0, days, total - days * _US_PER_DAY)


def _iso_datetime(value: dt.datetime | dt.time) -> str:
    text = value.isoformat()
    if value.microsecond:  # trim trailing zeros of the fraction, like PostgreSQL
        head, _, tail = text.partition(".")
        digits, offset = tail[:6], tail[6:]
        text = f"{head}.{digits.rstrip('0')}{offset}"
    return text


# --- floats ----------------------------------------------------------------------------------

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _float_value(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else _NON_FINITE[value]


def _float4_from_binary(data: bytes) -> float | str:
    """float4 as the shortest decimal that reads back as the same float4 (PostgreSQL prints
    1.1, asyncpg's float would be 1.100000023841858)."""
    (value,) = struct.unpack(">f", data)
    if not math.isfinite(value):
        return _float_value(value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        try:
            if struct.unpack(">f", struct.pack(">f", candidate))[0] == value:
                return candidate
        except OverflowError:  # rounded past the float4 range (near 3.4e38)
            continue
    return value


# --- the generic conversion ------------------------------------------------------------------


def _record_to_json(value: Any) -> object:
    keys = list(value.keys())
    values = [to_json_value(v) for v in value.values()]
    if all(keys) and len(set(keys)) == len(keys):
        return dict(zip(keys, values, strict=True))
    return values


def _range_to_json(value: Any) -> object:
    if value.isempty:
        return {"empty": True, "lower": None, "upper": None, "lower_inc": False, "upper_inc": False}
    return {
        "empty": False,
        "lower": to_json_value(value.lower),
        "upper": to_json_value(value.upper),
        "lower_inc": bool(value.lower_inc),
        "upper_inc": bool(value.upper_inc),
    }


def _bytes_to_json(value: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(value).decode("ascii")


def _identity(value: object) -> object:
    return value


def _list_to_json(value: list[Any] | tuple[Any, ...]) -> list[object]:
    return [to_json_value(item) for item in value]


def _dict_to_json(value: Mapping[Any, Any]) -> dict[str, object]:
    return {str(k): to_json_value(v) for k, v in value.items()}


_BY_TYPE: dict[type, Callable[[Any], object]] = {
    str: _identity,
    int: _identity,
    bool: _identity,
    type(None): _identity,
    float: _float_value,
    Decimal: lambda v: format(v, "f"),
    list: _list_to_json,
    tuple: _list_to_json,
    dict: _dict_to_json,
    bytes: _bytes_to_json,
    bytearray: _bytes_to_json,
    memoryview: _bytes_to_json,
    dt.datetime: _iso_datetime,
    dt.time: _iso_datetime,
    dt.date: lambda v: v.isoformat(),
    dt.timedelta: _timedelta_to_iso,
}


def _fallback(value: object) -> object:
    if isinstance(value, bool | int | str):  # subclasses (enums, IntFlag...)
        return value if type(value) in (bool, int, str) else _subclass_value(value)
    if isinstance(value, float):
        return _float_value(float(value))
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, uuid.UUID):  # asyncpg's own UUID subclasses uuid.UUID
        return str(value)
    if isinstance(value, dt.datetime | dt.time):
        return _iso_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _timedelta_to_iso(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes_to_json(value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return str(value)
    if hasattr(value, "as_string") and type(value).__name__ == "BitString":
        return value.as_string()  # type: ignore[attr-defined]
    if hasattr(value, "isempty") and hasattr(value, "lower_inc"):  # asyncpg.Range
        return _range_to_json(value)
    if hasattr(value, "keys") and hasattr(value, "values") and not isinstance(value, Mapping):
        return _record_to_json(value)  # asyncpg.Record (composite types)
    if isinstance(value, Mapping):
        return _dict_to_json(value)
    if hasattr(value, "points") and hasattr(value, "is_closed"):  # asyncpg Path / Polygon
        return [to_json_value(p) for p in value.points]  # type: ignore[attr-defined]
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(item) for item in value]
    return str(value)


def _subclass_value(value: bool | int | str) -> object:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    return str.__str__(value)  # str() of a (str, Enum) member would give "Class.MEMBER"


def to_json_value(value: object) -> object:
    """One driver value as a JSON-encodable value, per SPEC "Result values"."""
    convert = _BY_TYPE.get(type(value))
    if convert is not None:
        return convert(value)
    return _fallback(value)


# --- asyncpg codecs --------------------------------------------------------------------------


def _jsonb_from_binary(data: bytes) -> object:
    # jsonb's binary form is a version byte (1) followed by the JSON text.
    return msgspec.json.decode(data[1:])


def _json_to_binary(value: object) -> bytes:
    return msgspec.json.encode(value)


def _unsupported_encoder(value: object) -> Any:
    # The executor never sends parameters; refuse rather than guess an encoding.
    raise TypeError("parameters of this type are not supported by the sqlagent executor")


def _timetz_from_tuple(value: tuple[int, int]) -> str:
    microseconds, west_seconds = value  # PostgreSQL stores the zone as seconds WEST of UTC
    return f"{format_time(microseconds)}{_format_offset(-west_seconds)}"


def _jsonb_to_binary(value: object) -> bytes:
    return b"\x01" + msgspec.json.encode(value)


# (typname, wire format, decoder, encoder)
_CODECS: tuple[tuple[str, str, Callable[[Any], object], Callable[[Any], Any]], ...] = (
    ("json", "binary", msgspec.json.decode, _json_to_binary),
    ("jsonb", "binary", _jsonb_from_binary, _jsonb_to_binary),
    ("date", "tuple", lambda t: format_date(t[0]), _unsupported_encoder),
    ("timestamp", "tuple", lambda t: format_timestamp(t[0]), _unsupported_encoder),
    ("timestamptz", "tuple", lambda t: format_timestamp(t[0], utc=True), _unsupported_encoder),
    ("time", "tuple", lambda t: format_time(t[0]), _unsupported_encoder),
    ("timetz", "tuple", _timetz_from_tuple, _unsupported_encoder),
    ("interval", "tuple", lambda t: format_interval(t[0], t[1], t[2]), _unsupported_encoder),
    ("bytea", "binary", _bytes_to_json, _unsupported_encoder),
    ("float4", "binary", _float4_from_binary, _unsupported_encoder),
)

# Types whose decoded values (with the codecs above) are already JSON values: no per-value work.
JSON_READY_TYPES = frozenset(
    {"int2", "int4", "int8", "oid", "text", "varchar", "bpchar", "name", "bool", "json", "jsonb"}
    | {typname for typname, *_ in _CODECS}
)


def _char_to_json(value: object) -> object:
    # PostgreSQL's one-byte "char" type (pg_class.relkind...) arrives as bytes; asyncpg's builtin
    # name map sends "char" to bpchar, so no codec can target it without a server round trip.
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return to_json_value(value)


def converter_for_type(type_name: str) -> Callable[[Any], object] | None:
    """The per-column conversion for a result column of this pg_type name (codecs installed);
    None when the decoded values are already JSON values."""
    if type_name in JSON_READY_TYPES:
        return None
    if type_name == "char":
        return _char_to_json
    return to_json_value


async def configure_asyncpg_codecs(conn: Any) -> None:
    """Install the decoders above on an asyncpg connection (use as the pool's `init`).

    Builtin pg_catalog types need no server round trip to register."""
    for typname, fmt, decoder, encoder in _CODECS:
        await conn.set_type_codec(typname, schema="pg_catalog", encoder=encoder, decoder=decoder, format=fmt)


def pg_type_name(asyncpg_type: Any) -> str:
    """pg_type.typname of an asyncpg `Type` (from `PreparedStatement.get_attributes()`).

    asyncpg spells arrays "int4[]"; PostgreSQL's typname is "_int4"."""
    name: str = asyncpg_type.name
    if name.endswith("[]"):
        return "_" + name[:-2]
    return name
