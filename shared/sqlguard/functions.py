"""What generated PostgreSQL may call: built-in functions, type names and operator symbols.

Everything here is an allowlist. A name that is not listed is refused, whatever it does: we
cannot vouch for user-defined functions, extensions, or built-ins that touch files, settings,
locks, other sessions, sequences or large objects (PostgreSQL's `READ ONLY` transaction stops
none of `lo_create`, `pg_notify`, session advisory locks, `set_config` or
`pg_terminate_backend`). Names are compared exactly as libpg_query hands them over, i.e. folded
to lower case unless quoted, so `"PG_SLEEP"` or `"Lower"` are simply unknown.

Deliberately absent although harmless-looking: `current_setting` (reads server settings),
`version`, `pg_typeof` and the `to_reg*` probes (catalogue probing), `ts_stat`/`ts_rewrite`
(their text argument is a query run through SPI, bypassing this guard), `query_to_xml` and the
other `*_to_xml` family (same reason), every `xml*` function, `setseed` (session state), and
`txid_*`/`pg_current_xact_id` (assign a transaction id).
"""

from __future__ import annotations

_AGGREGATES = """
    avg count sum min max bool_and bool_or every bit_and bit_or bit_xor
    string_agg array_agg json_agg jsonb_agg json_object_agg jsonb_object_agg
    json_agg_strict jsonb_agg_strict json_object_agg_strict jsonb_object_agg_strict
    json_object_agg_unique jsonb_object_agg_unique json_object_agg_unique_strict
    jsonb_object_agg_unique_strict any_value range_agg range_intersect_agg
    stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp
    regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy
    mode percentile_cont percentile_disc
"""

_WINDOW = """
    row_number rank dense_rank percent_rank cume_dist ntile lag lead
    first_value last_value nth_value
"""

_MATH = """
    abs cbrt ceil ceiling degrees div exp factorial floor gcd lcm ln log log10 min_scale mod pi
    power pow radians round scale sign sqrt trim_scale trunc width_bucket random random_normal
    acos acosd asin asind atan atand atan2 atan2d cos cosd cot cotd sin sind tan tand
    sinh cosh tanh asinh acosh atanh erf erfc gamma lgamma
"""

_STRING = """
    ascii bit_length btrim char_length character_length chr concat concat_ws format initcap
    left length lower lpad ltrim md5 normalize is_normalized octet_length overlay position
    quote_ident quote_literal quote_nullable repeat replace reverse right rpad rtrim split_part
    starts_with strpos substr substring to_ascii to_hex translate unistr upper casefold
    regexp_count regexp_instr regexp_like regexp_match regexp_matches regexp_replace
    regexp_split_to_array regexp_split_to_table regexp_substr like_escape similar_to_escape
    string_to_array string_to_table encode decode convert convert_from convert_to
    sha224 sha256 sha384 sha512 get_bit get_byte bit_count crc32 crc32c pg_collation_for
    pg_size_pretty to_number
"""

_DATETIME = """
    age clock_timestamp date_add date_bin date_part date_subtract date_trunc extract isfinite
    justify_days justify_hours justify_interval make_date make_interval make_time
    make_timestamp make_timestamptz now statement_timestamp transaction_timestamp timeofday
    to_char to_date to_timestamp timezone overlaps
"""

_JSON = """
    to_json to_jsonb array_to_json row_to_json json_build_array jsonb_build_array
    json_build_object jsonb_build_object json_object jsonb_object
    json_array_elements jsonb_array_elements json_array_elements_text jsonb_array_elements_text
    json_array_length jsonb_array_length json_each jsonb_each json_each_text jsonb_each_text
    json_extract_path jsonb_extract_path json_extract_path_text jsonb_extract_path_text
    json_object_keys jsonb_object_keys json_populate_record jsonb_populate_record
    json_populate_recordset jsonb_populate_recordset json_to_record jsonb_to_record
    json_to_recordset jsonb_to_recordset json_strip_nulls jsonb_strip_nulls
    jsonb_set jsonb_set_lax jsonb_insert jsonb_pretty json_typeof jsonb_typeof
    jsonb_path_exists jsonb_path_match jsonb_path_query jsonb_path_query_array
    jsonb_path_query_first jsonb_path_exists_tz jsonb_path_match_tz jsonb_path_query_tz
    jsonb_path_query_array_tz jsonb_path_query_first_tz
    json_object_field json_object_field_text jsonb_object_field jsonb_object_field_text
    json_array_element json_array_element_text jsonb_array_element jsonb_array_element_text
    jsonb_contains jsonb_contained jsonb_exists jsonb_exists_any jsonb_exists_all
    jsonb_concat jsonb_delete jsonb_delete_path
"""

_ARRAYS = """
    array_append array_cat array_dims array_fill array_length array_lower array_ndims
    array_position array_positions array_prepend array_remove array_replace array_to_string
    array_upper array_reverse array_sort array_sample array_shuffle cardinality trim_array
    unnest generate_subscripts generate_series
"""

_RANGES = """
    lower_inc upper_inc lower_inf upper_inf isempty range_merge multirange
    int4range int8range numrange tsrange tstzrange daterange
    int4multirange int8multirange nummultirange tsmultirange tstzmultirange datemultirange
"""

_TEXT_SEARCH = """
    to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery
    ts_rank ts_rank_cd ts_headline setweight strip tsvector_to_array array_to_tsvector
    numnode querytree ts_delete ts_filter
"""

_MISC = """
    num_nulls num_nonnulls gen_random_uuid uuidv4 uuidv7 uuid_extract_timestamp
    uuid_extract_version
"""

# Functional-cast spellings such as `date(x)` or `text(x)`: PostgreSQL turns a call of a type
# name with one argument into a cast, so these are exactly as safe as the casts allowed below.
_TYPE_CALLS = """
    bool int2 int4 int8 float4 float8 numeric text varchar bpchar date time timetz timestamp
    timestamptz interval json jsonb uuid bytea
"""


def _words(*texts: str) -> frozenset[str]:
    return frozenset(word for text in texts for word in text.split())


ALLOWED_FUNCTIONS: frozenset[str] = _words(
    _AGGREGATES, _WINDOW, _MATH, _STRING, _DATETIME, _JSON, _ARRAYS, _RANGES, _TEXT_SEARCH, _MISC, _TYPE_CALLS
)

# Type names as libpg_query spells them after its own keyword mapping (`integer` -> int4,
# `character varying` -> varchar, ...). No reg* types (they turn strings into catalogue
# lookups), no pseudo-types, no xml, no user-defined types or domains.
ALLOWED_TYPES: frozenset[str] = _words(
    """
    bool int2 int4 int8 float4 float8 numeric text varchar bpchar char name date time timetz
    timestamp timestamptz interval json jsonb jsonpath uuid bytea bit varbit money inet cidr
    macaddr macaddr8 point line lseg box path polygon circle tsvector tsquery
    int4range int8range numrange tsrange tstzrange daterange
    int4multirange int8multirange nummultirange tsmultirange tstzmultirange datemultirange
    """
)

# Every operator symbol defined in pg_catalog (PostgreSQL 15, `SELECT DISTINCT oprname FROM
# pg_operator`), plus `!=` which the parser rewrites to `<>`. A symbol outside this set can only
# be a user-defined operator, i.e. a user-defined function in disguise.
ALLOWED_OPERATORS: frozenset[str] = _words(
    """
    !! !~ !~* !~~ !~~* # ## #- #> #>> % & && &< &<| &> * *< *<= *<> *= *> *>= + - -> ->> -|- /
    < <-> << <<= <<| <= <> <@ <^ = > >= >> >>= >^ ? ?# ?& ?- ?-| ?| ?|| @ @-@ @> @? @@ @@@ ^ ^@
    | |&> |/ |>> || ||/ ~ ~* ~<=~ ~<~ ~= ~>=~ ~>~ ~~ ~~* !=
    """
)

# Hidden columns every table has; not needed to answer questions, and they expose physical
# row identity and transaction ids.
SYSTEM_COLUMNS: frozenset[str] = frozenset({"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"})
