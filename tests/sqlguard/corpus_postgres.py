"""PostgreSQL corpus for the SQL guard: attacks with the rule that must stop them, and safe but
tricky queries that must pass and run.

Every name used here exists in SCHEMA_DDL, which the integration test loads into a throwaway
database; POLICY is what schema introspection yields for it (everything but `public.secrets`
and the sequence), and the integration test checks that it does.
"""

from __future__ import annotations

from shared.sqlguard.postgres import PostgresPolicy

SCHEMA_DDL = """
CREATE SCHEMA sales;
CREATE SCHEMA "Analytics";
CREATE TABLE public.customers (
    id int PRIMARY KEY, name text NOT NULL, email text, country text,
    created_at timestamptz NOT NULL, tags text[] NOT NULL DEFAULT '{}', profile jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE public.orders (
    id int PRIMARY KEY, customer_id int NOT NULL REFERENCES public.customers (id),
    amount numeric(10, 2) NOT NULL, status text NOT NULL, ordered_at timestamptz NOT NULL,
    items jsonb NOT NULL DEFAULT '[]'
);
CREATE TABLE sales.regions (id int PRIMARY KEY, name text NOT NULL, parent_id int);
CREATE TABLE public."MixedCase" ("Id" int, "Label" text);
CREATE TABLE "Analytics"."Daily Stats" (day date, "Visits" int);
CREATE TABLE public.secrets (id int, token text);
CREATE SEQUENCE public.order_seq;
CREATE VIEW public.order_totals AS
    SELECT customer_id, sum(amount) AS total, count(*) AS n FROM public.orders GROUP BY customer_id;

INSERT INTO public.customers VALUES
    (1, 'Alice', 'alice@example.com', 'FR', '2024-01-05 10:00+00', '{vip,early}',
     '{"city": "Paris", "vip": true, "prefs": {"lang": "fr"}}'),
    (2, 'Bob', NULL, 'DE', '2024-02-11 09:30+00', '{}', '{"city": "Berlin", "prefs": {"lang": "de"}}'),
    (3, 'Chloé', 'chloe@example.com', 'FR', '2024-03-20 18:45+00', '{early}', '{}'),
    (4, 'Dmitri', 'dmitri@example.com', 'PL', '2024-05-01 07:00+00', '{}', '{"city": "Kraków"}');
INSERT INTO public.orders VALUES
    (10, 1, 120.50, 'paid', '2024-03-01 12:00+00', '[{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}]'),
    (11, 1, 15.00, 'shipped', '2024-03-15 08:00+00', '[{"sku": "C3", "qty": 1}]'),
    (12, 2, 42.00, 'paid', '2024-04-02 16:20+00', '[]'),
    (13, 3, 7.25, 'cancelled', '2024-04-03 11:11+00', '[{"sku": "A1", "qty": 5}]'),
    (14, 2, 99.99, 'paid', '2024-04-20 23:59+00', '[{"sku": "D4", "qty": 3}]');
INSERT INTO sales.regions VALUES (1, 'Europe', NULL), (2, 'France', 1), (3, 'Paris', 2), (4, 'Germany', 1);
INSERT INTO public."MixedCase" VALUES (1, 'one'), (2, 'two');
INSERT INTO "Analytics"."Daily Stats" VALUES ('2024-04-01', 10), ('2024-04-02', 12);
INSERT INTO public.secrets VALUES (1, 's3cr3t');
"""

POLICY = PostgresPolicy(
    allowed_tables=frozenset(
        {
            ("public", "customers"),
            ("public", "orders"),
            ("public", "order_totals"),
            ("public", "MixedCase"),
            ("sales", "regions"),
            ("Analytics", "Daily Stats"),
        }
    ),
    search_path=("public", "sales"),
)

# The executor sets `search_path` to the policy's schemas, then pg_catalog explicitly.
EXECUTOR_SEARCH_PATH = "public, sales, pg_catalog"

_SLEEP = "pg_sleep(10)"

ATTACKS: list[tuple[str, str]] = [
    # --- not even one statement / unparsable --------------------------------------------
    ("", "empty"),
    ("   \n\t ", "empty"),
    (";", "empty"),
    ("-- only a comment", "empty"),
    ("/* c */ ; ;", "empty"),
    ("selec 1", "parse_error"),
    ("select 'unterminated", "parse_error"),
    ("select $$never closed", "parse_error"),
    ("select 1 /* unterminated comment", "parse_error"),
    ("select 1\x00; drop table orders", "parse_error"),
    ("select 1 " + " " * 100_000, "too_long"),
    # --- more than one statement ---------------------------------------------------------
    ("select 1; select 2", "single_statement"),
    ("COMMIT; SELECT 1", "single_statement"),
    ("ROLLBACK; SELECT pg_sleep(10)", "single_statement"),
    ("END; SELECT 1", "single_statement"),
    ("ABORT; SELECT 1", "single_statement"),
    ("select 1; drop table orders", "single_statement"),
    ("select 1; -- trailing comment\n delete from orders", "single_statement"),
    ("select 1 /* ; */; update orders set amount = 0", "single_statement"),
    ("select 1 /* /* nested */ */ ; delete from orders", "single_statement"),
    ("select $$;$$; delete from orders", "single_statement"),
    ("select $x$ $$ ; $x$; truncate orders", "single_statement"),
    ("select 'it''s'; begin; select 1", "single_statement"),
    ("SELECT 1;\nCOPY orders TO PROGRAM 'id'", "single_statement"),
    ("select 1; set role postgres", "single_statement"),
    ("select 1;select pg_terminate_backend(1)", "single_statement"),
    ("select E'\\''; delete from orders", "single_statement"),
    ("select * from orders; select * from secrets", "single_statement"),
    # --- not a SELECT at the top -----------------------------------------------------------
    ("insert into orders values (99, 1, 1, 'x', now())", "not_select"),
    ("update orders set amount = 0", "not_select"),
    ("delete from orders", "not_select"),
    ("merge into orders o using customers c on o.customer_id = c.id when matched then delete", "not_select"),
    ("truncate orders", "not_select"),
    ("drop table orders", "not_select"),
    ("drop database postgres", "not_select"),
    ("create table x (a int)", "not_select"),
    ("create table x as select * from secrets", "not_select"),
    ("create temp table x as select 1", "not_select"),
    ("create view v as select * from secrets", "not_select"),
    ("create function f() returns int language sql as 'select 1'", "not_select"),
    ("create extension dblink", "not_select"),
    ("create role evil superuser login", "not_select"),
    ("alter table orders add column x int", "not_select"),
    ("alter role postgres password 'x'", "not_select"),
    ("alter system set shared_buffers = '1MB'", "not_select"),
    ("grant all on secrets to public", "not_select"),
    ("revoke all on orders from public", "not_select"),
    ("copy orders to '/tmp/orders.csv'", "not_select"),
    ("copy orders from '/etc/passwd'", "not_select"),
    ("copy (select 1) to program 'touch /tmp/pwned'", "not_select"),
    ("set statement_timeout = 0", "not_select"),
    ("set role postgres", "not_select"),
    ("set session authorization postgres", "not_select"),
    ("set transaction read write", "not_select"),
    ("reset all", "not_select"),
    ("show all", "not_select"),
    ("begin", "not_select"),
    ("start transaction read write", "not_select"),
    ("commit", "not_select"),
    ("rollback", "not_select"),
    ("savepoint s", "not_select"),
    ("do $$ begin perform pg_sleep(10); end $$", "not_select"),
    ("call some_procedure()", "not_select"),
    ("prepare p as delete from orders", "not_select"),
    ("execute p", "not_select"),
    ("deallocate all", "not_select"),
    ("listen chan", "not_select"),
    ("notify chan, 'payload'", "not_select"),
    ("lock table orders in access exclusive mode", "not_select"),
    ("explain select 1", "not_select"),
    ("explain analyze delete from orders", "not_select"),
    ("declare c cursor for select * from orders", "not_select"),
    ("fetch all from c", "not_select"),
    ("vacuum full orders", "not_select"),
    ("analyze orders", "not_select"),
    ("cluster orders", "not_select"),
    ("reindex table orders", "not_select"),
    ("load '/tmp/evil.so'", "not_select"),
    ("checkpoint", "not_select"),
    ("discard all", "not_select"),
    ("comment on table orders is 'x'", "not_select"),
    ("refresh materialized view mv", "not_select"),
    ("create rule r as on select to orders do instead select 1", "not_select"),
    # --- data-modifying CTEs, at any depth --------------------------------------------------
    ("with d as (delete from orders returning *) select * from d", "data_modifying_cte"),
    (
        "with i as (insert into orders values (99, 1, 1, 'x', now()) returning id) select 1",
        "data_modifying_cte",
    ),
    ("with u as (update orders set amount = 0 returning 1) select 1", "data_modifying_cte"),
    ("with a as (select 1), b as (delete from orders returning 1) select * from a", "data_modifying_cte"),
    ("select * from (with d as (delete from orders returning *) select * from d) s", "data_modifying_cte"),
    (
        "select 1 where exists (with d as (delete from orders returning 1) select 1 from d)",
        "data_modifying_cte",
    ),
    (
        "with recursive r as (select 1 union all select 1 from r), d as (delete from orders "
        "returning 1) select 1",
        "data_modifying_cte",
    ),
    (
        "with m as (merge into orders o using customers c on true when matched then delete returning o.id) "
        "select 1",
        "data_modifying_cte",
    ),
    ("select (with d as (delete from secrets returning id) select id from d)", "data_modifying_cte"),
    # --- SELECT INTO, wherever it hides -------------------------------------------------------
    ("select * into stolen from orders", "select_into"),
    ("select * into temp t from orders", "select_into"),
    ("select * into unlogged t from orders", "select_into"),
    ("select 1 into x union select 2", "select_into"),
    ("(select 1 into x) union all select 2", "select_into"),
    ("select 1 union select 2 into x", "select_into"),
    ("with t as (select 1) select * into x from t", "select_into"),
    # --- locking clauses --------------------------------------------------------------------
    ("select * from orders for update", "locking_clause"),
    ("select * from orders for share", "locking_clause"),
    ("select * from orders for no key update", "locking_clause"),
    ("select * from orders for key share", "locking_clause"),
    ("select * from orders for update skip locked", "locking_clause"),
    ("select * from orders for update nowait", "locking_clause"),
    ("select * from orders o for update of o", "locking_clause"),
    ("select * from (select * from orders for update) s", "locking_clause"),
    ("with l as (select * from orders for update) select * from l", "locking_clause"),
    ("(select id from orders for update) union select 1", "locking_clause"),
    ("select 1 where exists (select 1 from orders for share)", "locking_clause"),
    ("select * from customers c, lateral (select * from orders for update) o", "locking_clause"),
    # --- functions: sleeps, files, large objects, settings, signals, locks, sequences, ... ---
    ("select pg_sleep(10)", "function_not_allowed"),
    ("select pg_sleep_for('10 seconds')", "function_not_allowed"),
    ("select pg_sleep_until(now() + interval '1 hour')", "function_not_allowed"),
    ("select pg_read_file('/etc/passwd')", "function_not_allowed"),
    ("select pg_read_binary_file('/etc/passwd')", "function_not_allowed"),
    ("select pg_ls_dir('.')", "function_not_allowed"),
    ("select * from pg_ls_dir('/')", "function_not_allowed"),
    ("select pg_stat_file('postgresql.conf')", "function_not_allowed"),
    ("select pg_ls_logdir()", "function_not_allowed"),
    ("select lo_import('/etc/passwd')", "function_not_allowed"),
    ("select lo_export(12345, '/tmp/x')", "function_not_allowed"),
    ("select lo_create(0)", "function_not_allowed"),
    ("select lo_unlink(12345)", "function_not_allowed"),
    ("select lo_from_bytea(0, 'x')", "function_not_allowed"),
    ("select lo_get(12345)", "function_not_allowed"),
    ("select set_config('statement_timeout', '0', false)", "function_not_allowed"),
    ("select pg_catalog.set_config('role', 'postgres', false)", "function_not_allowed"),
    ("select current_setting('data_directory')", "function_not_allowed"),
    ("select pg_terminate_backend(pid) from (values (1)) v(pid)", "function_not_allowed"),
    ("select pg_cancel_backend(1)", "function_not_allowed"),
    ("select pg_advisory_lock(1)", "function_not_allowed"),
    ("select pg_advisory_xact_lock(1)", "function_not_allowed"),
    ("select pg_try_advisory_lock(1)", "function_not_allowed"),
    ("select pg_advisory_unlock_all()", "function_not_allowed"),
    ("select pg_notify('chan', 'payload')", "function_not_allowed"),
    ("select nextval('order_seq')", "function_not_allowed"),
    ("select setval('order_seq', 1)", "function_not_allowed"),
    ("select currval('order_seq')", "function_not_allowed"),
    ("select lastval()", "function_not_allowed"),
    ("select dblink('host=evil', 'select 1')", "function_not_allowed"),
    ("select dblink_exec('dbname=postgres', 'drop table orders')", "function_not_allowed"),
    (
        "select * from dblink('dbname=postgres', 'select token from secrets') as t(x text)",
        "function_not_allowed",
    ),
    ("select query_to_xml('select * from secrets', true, true, '')", "function_not_allowed"),
    ("select table_to_xml('secrets', true, true, '')", "function_not_allowed"),
    ("select database_to_xml(true, true, '')", "function_not_allowed"),
    ("select ts_stat('select to_tsvector(token) from secrets')", "function_not_allowed"),
    ("select ts_rewrite('a'::tsquery, 'select * from secrets')", "function_not_allowed"),
    ("select txid_current()", "function_not_allowed"),
    ("select pg_current_xact_id()", "function_not_allowed"),
    ("select pg_reload_conf()", "function_not_allowed"),
    ("select pg_rotate_logfile()", "function_not_allowed"),
    ("select pg_switch_wal()", "function_not_allowed"),
    ("select pg_logical_emit_message(true, 'x', 'y')", "function_not_allowed"),
    ("select pg_create_restore_point('x')", "function_not_allowed"),
    ("select pg_promote()", "function_not_allowed"),
    ("select version()", "function_not_allowed"),
    ("select inet_server_addr()", "function_not_allowed"),
    ("select pg_backend_pid()", "function_not_allowed"),
    ("select pg_get_viewdef('order_totals')", "function_not_allowed"),
    ("select has_table_privilege('secrets', 'select')", "function_not_allowed"),
    ("select to_regclass('pg_authid')", "function_not_allowed"),
    ("select pg_typeof(1)", "function_not_allowed"),
    ("select setseed(0.5)", "function_not_allowed"),
    ("select xpath('/a', '<a/>')", "function_not_allowed"),
    ("select xmlparse(document '<a/>')", "function_not_allowed"),
    ("select xmlelement(name a, 'x')", "function_not_allowed"),
    ("select * from xmltable('/a' passing '<a><b>1</b></a>' columns b int)", "function_not_allowed"),
    ("select my_udf(1)", "function_not_allowed"),
    ("select public.lower('A')", "function_not_allowed"),
    ("select sales.anything()", "function_not_allowed"),
    # ... the same, obfuscated by case, quoting, unicode escapes and comments
    ("select PG_SLEEP(10)", "function_not_allowed"),
    ("select pG_sLeEp(10)", "function_not_allowed"),
    ('select "pg_sleep"(10)', "function_not_allowed"),
    ('select "PG_SLEEP"(10)', "function_not_allowed"),
    ('select pg_catalog."pg_sleep"(10)', "function_not_allowed"),
    ('select "pg_catalog".pg_sleep(10)', "function_not_allowed"),
    ('select U&"pg\\005fsleep"(10)', "function_not_allowed"),
    ("select U&\"pg!005fsleep\" UESCAPE '!' (10)", "function_not_allowed"),
    ("select pg_sleep/* comment */(10)", "function_not_allowed"),
    ("select pg_sleep\n(10)", "function_not_allowed"),
    ("select pg_sleep($$10$$)", "function_not_allowed"),
    # ... and hidden deep in the tree
    (f"select (select {_SLEEP})", "function_not_allowed"),
    (f"select * from orders where amount > (select {_SLEEP}::int)", "function_not_allowed"),
    (
        f"select customer_id from orders group by customer_id having count(*) > (select {_SLEEP}::int)",
        "function_not_allowed",
    ),
    (f"select * from orders order by {_SLEEP}", "function_not_allowed"),
    (f"select * from orders order by (select {_SLEEP})", "function_not_allowed"),
    (f"select status from orders group by status, {_SLEEP}", "function_not_allowed"),
    (f"select * from orders limit (select {_SLEEP}::int)", "function_not_allowed"),
    (f"select * from orders offset (select {_SLEEP}::int)", "function_not_allowed"),
    (f"select case when amount > 0 then {_SLEEP} end from orders", "function_not_allowed"),
    (f"select case {_SLEEP} when null then 1 end", "function_not_allowed"),
    (f"select coalesce(null, {_SLEEP})", "function_not_allowed"),
    (f"select greatest(1, ({_SLEEP})::int)", "function_not_allowed"),
    (f"select nullif({_SLEEP}, null)", "function_not_allowed"),
    (f"select upper({_SLEEP}::text)", "function_not_allowed"),
    (f"select (array[1, 2])[({_SLEEP})::int]", "function_not_allowed"),
    (f"select tags[({_SLEEP})::int] from customers", "function_not_allowed"),
    (f"select * from {_SLEEP}", "function_not_allowed"),
    (f"select * from customers c, lateral {_SLEEP}", "function_not_allowed"),
    (f"select * from customers c, lateral (select {_SLEEP}) s", "function_not_allowed"),
    (f"select * from rows from (generate_series(1, 2), {_SLEEP}) as t(a, b)", "function_not_allowed"),
    (f"select count(*) filter (where {_SLEEP} is null) from orders", "function_not_allowed"),
    (f"select string_agg(status, ',' order by {_SLEEP}) from orders", "function_not_allowed"),
    (f"select sum(amount) over (partition by {_SLEEP}) from orders", "function_not_allowed"),
    (
        f"select sum(amount) over (order by id rows between ({_SLEEP})::int preceding and current row) "
        "from orders",
        "function_not_allowed",
    ),
    (f"with t as (select {_SLEEP}) select * from t", "function_not_allowed"),
    (
        f"with recursive t(n) as (select 1 union all select n + 1 from t where {_SLEEP} is null) "
        f"select * from t",
        "function_not_allowed",
    ),
    (f"select 1 union all select 1 from (select {_SLEEP}) s", "function_not_allowed"),
    (f"values (1), (({_SLEEP})::int)", "function_not_allowed"),
    (
        f"select * from orders o join customers c on c.id = o.customer_id and {_SLEEP} is null",
        "function_not_allowed",
    ),
    (f"select distinct on ({_SLEEP}) id from orders", "function_not_allowed"),
    (f"select profile ->> ({_SLEEP})::text from customers", "function_not_allowed"),
    (f"select 1 where exists (select {_SLEEP})", "function_not_allowed"),
    (f"select 1 where 1 in (select {_SLEEP}::int)", "function_not_allowed"),
    (f"select 1 where 1 = any(array[({_SLEEP})::int])", "function_not_allowed"),
    (f"select row(1, {_SLEEP})", "function_not_allowed"),
    (f"select ({_SLEEP})::text", "function_not_allowed"),
    (f"select make_interval(days => ({_SLEEP})::int)", "function_not_allowed"),
    (f"select generate_series(1, ({_SLEEP})::int)", "function_not_allowed"),
    (f"select format('%s', {_SLEEP})", "function_not_allowed"),
    (f"select 'x' || {_SLEEP}", "function_not_allowed"),
    (f"select array(select {_SLEEP})", "function_not_allowed"),
    (f"select id from orders where amount between 0 and ({_SLEEP})::int", "function_not_allowed"),
    (f"select {_SLEEP} is distinct from null", "function_not_allowed"),
    (f"select (select 1 from (select 1) a join (select {_SLEEP}) b on true)", "function_not_allowed"),
    ("select count(*) over (order by nextval('order_seq')) from orders", "function_not_allowed"),
    ("select 'x'::jsonb(pg_sleep(1))", "function_not_allowed"),
    ("select 'x'::text(pg_sleep(1)::int)", "function_not_allowed"),
    # --- relations outside the data source ----------------------------------------------------
    ("select * from pg_authid", "relation_not_allowed"),
    ("select rolname, rolpassword from pg_authid", "relation_not_allowed"),
    ("select * from pg_shadow", "relation_not_allowed"),
    ("select * from pg_user", "relation_not_allowed"),
    ("select * from pg_roles", "relation_not_allowed"),
    ("select query from pg_stat_activity", "relation_not_allowed"),
    ("select * from pg_settings", "relation_not_allowed"),
    ("select * from pg_file_settings", "relation_not_allowed"),
    ("select * from pg_hba_file_rules", "relation_not_allowed"),
    ("select * from pg_largeobject", "relation_not_allowed"),
    ("select * from pg_proc", "relation_not_allowed"),
    ("select * from pg_class", "relation_not_allowed"),
    ("select * from pg_stat_statements", "relation_not_allowed"),
    ("select * from secrets", "relation_not_allowed"),
    ("select * from public.secrets", "relation_not_allowed"),
    ("select * from only secrets", "relation_not_allowed"),
    ("table secrets", "relation_not_allowed"),
    ("table pg_authid", "relation_not_allowed"),
    ("select * from tables", "relation_not_allowed"),
    ("select * from region", "relation_not_allowed"),
    ('select * from "Orders"', "relation_not_allowed"),
    ('select * from "ORDERS"', "relation_not_allowed"),
    ("select * from mixedcase", "relation_not_allowed"),
    ('select * from "PG_AUTHID"', "relation_not_allowed"),
    ('select * from U&"pg_authid"', "relation_not_allowed"),
    ('select * from U&"\\0070g_authid"', "relation_not_allowed"),
    ("select * from postgres.public.orders", "relation_not_allowed"),
    ("select * from sales.customers", "relation_not_allowed"),
    ("with pg_authid as (select * from pg_authid) select * from pg_authid", "relation_not_allowed"),
    ("with secrets as (select * from secrets) select * from secrets", "relation_not_allowed"),
    (
        "with a as (select * from secrets), secrets as (select 1 as id) select * from a",
        "relation_not_allowed",
    ),
    ("select * from (with secrets as (select 1) select 1) s, secrets", "relation_not_allowed"),
    (
        "(with secrets as (select 1 as v) select v from secrets) union all select id from secrets",
        "relation_not_allowed",
    ),
    ("select * from orders where exists (select 1 from pg_authid)", "relation_not_allowed"),
    ("select * from orders o, lateral (select * from pg_stat_activity) a", "relation_not_allowed"),
    ("select * from orders join pg_roles on true", "relation_not_allowed"),
    ("select * from orders order by (select count(*) from pg_authid)", "relation_not_allowed"),
    ("select (select token from secrets limit 1)", "relation_not_allowed"),
    ("select id from orders union select id from secrets", "relation_not_allowed"),
    ("select * from orders where id in (select id from secrets)", "relation_not_allowed"),
    ("select * from customers where id = any(array(select id from secrets))", "relation_not_allowed"),
    ("select * from pg_catalog.pg_authid", "schema_not_allowed"),
    ('select * from "pg_catalog"."pg_authid"', "schema_not_allowed"),
    ("select * from information_schema.tables", "schema_not_allowed"),
    ("select * from information_schema.role_table_grants", "schema_not_allowed"),
    ("select * from pg_temp.orders", "schema_not_allowed"),
    ("select * from pg_toast.pg_toast_1262", "schema_not_allowed"),
    ('select * from analytics."Daily Stats"', "schema_not_allowed"),
    ("select * from pg_catalog.pg_stat_activity", "schema_not_allowed"),
    # --- casts and types --------------------------------------------------------------------
    ("select 'pg_authid'::regclass", "cast_not_allowed"),
    ("select 'pg_authid'::regclass::oid", "cast_not_allowed"),
    ("select regclass 'pg_authid'", "cast_not_allowed"),
    ("select cast('pg_sleep' as regproc)", "cast_not_allowed"),
    ("select 'pg_sleep(float8)'::regprocedure", "cast_not_allowed"),
    ("select '+'::regoper", "cast_not_allowed"),
    ("select '+(int,int)'::regoperator", "cast_not_allowed"),
    ("select 'int4'::regtype", "cast_not_allowed"),
    ("select 'pg_catalog'::regnamespace", "cast_not_allowed"),
    ("select 'postgres'::regrole", "cast_not_allowed"),
    ("select 'english'::regconfig", "cast_not_allowed"),
    ("select 'simple'::regdictionary", "cast_not_allowed"),
    ("select 'C'::regcollation", "cast_not_allowed"),
    ("select 'pg_authid'::pg_catalog.regclass", "cast_not_allowed"),
    ("select array['pg_authid']::regclass[]", "cast_not_allowed"),
    ("select '<a/>'::xml", "cast_not_allowed"),
    ("select 1::oid", "cast_not_allowed"),
    ("select '0/0'::pg_lsn", "cast_not_allowed"),
    ("select 'x'::public.mytype", "cast_not_allowed"),
    ("select 'x'::my_enum", "cast_not_allowed"),
    ("select row(1)::record", "cast_not_allowed"),
    ("select 'x'::\"Text\"", "cast_not_allowed"),
    ("select * from jsonb_to_record('{}') as r(a regclass)", "cast_not_allowed"),
    ("select id::regclass from orders", "cast_not_allowed"),
    # --- system columns -----------------------------------------------------------------------
    ("select ctid from orders", "system_column"),
    ("select xmin, xmax from orders", "system_column"),
    ("select cmin from orders", "system_column"),
    ("select cmax from orders", "system_column"),
    ("select tableoid from orders", "system_column"),
    ("select o.ctid from orders o", "system_column"),
    ("select (o).xmin from orders o", "system_column"),
    ("select * from orders where xmin::text::int > 0", "system_column"),
    # --- everything else the walker refuses -------------------------------------------------
    ("select * from orders tablesample system (10)", "tablesample"),
    ("select * from orders tablesample bernoulli (50) repeatable (1)", "tablesample"),
    ("select 1 operator(public.+) 2", "operator_not_allowed"),
    ("select 1 === 2", "operator_not_allowed"),
    ("select * from orders order by id using operator(public.<)", "operator_not_allowed"),
    ("select 1 where 1 operator(public.=) any(select 1)", "operator_not_allowed"),
    ("select status collate public.evil from orders", "collation_not_allowed"),
    ("select $1", "unsupported_syntax"),
    ("values (default)", "unsupported_syntax"),
    ("select json_object('a': 1)", "unsupported_syntax"),
    ("select profile is json from customers", "unsupported_syntax"),
    ("select * from json_table('[1]', '$[*]' columns (a int path '$')) jt", "unsupported_syntax"),
    ("select " + " + ".join(["1"] * 400), "too_complex"),
]

SAFE: list[str] = [
    "select * from orders",
    "SELECT id, amount FROM public.orders WHERE status = 'paid' ORDER BY amount DESC LIMIT 10",
    "select customer_id, sum(amount), count(*) from orders group by customer_id having sum(amount) > 10",
    "select id, amount, row_number() over (partition by customer_id order by ordered_at) as rn, "
    "sum(amount) over w, lag(amount) over w, lead(amount, 1, 0) over w from orders "
    "window w as (partition by customer_id order by ordered_at)",
    "select id, rank() over (order by amount), dense_rank() over (order by amount), ntile(2) over "
    "(order by id), "
    "percent_rank() over (order by amount), cume_dist() over (order by amount), "
    "first_value(id) over (order by amount rows between unbounded preceding and unbounded following), "
    "last_value(id) over (order by amount rows between unbounded preceding and unbounded following), "
    "nth_value(id, 2) over (order by amount rows between unbounded preceding and unbounded following) "
    "from orders",
    "select id, sum(amount) over (order by ordered_at range between interval '30 days' preceding "
    "and current row) from orders",
    "with t as (select customer_id, sum(amount) as s from orders group by 1) "
    "select c.name, t.s from t join customers c on c.id = t.customer_id",
    "with recursive tree as (select id, name, parent_id, 1 as depth from sales.regions where "
    "parent_id is null "
    "union all select r.id, r.name, r.parent_id, t.depth + 1 from sales.regions r join tree t "
    "on r.parent_id = t.id) select * from tree",
    "with recursive t(n) as (values (1) union all select n + 1 from t where n < 10) "
    "search depth first by n set ord select n from t order by ord",
    "with recursive a as (select * from b), b as (select 1 as x) select * from a",
    "with a as (select 1 as x), b as (select x + 1 as y from a) select * from b",
    "with t as materialized (select * from orders) select count(*) from t",
    "with orders as (select 1 as id) select * from orders",
    "with x as (select 1 as v) select v from x union all select v from x",
    "with c as (select id from customers) select * from orders where customer_id in "
    "(select id from c where id in (select id from c))",
    "select c.name, o.amount from customers c cross join lateral "
    "(select amount from orders where customer_id = c.id order by amount desc limit 1) o",
    "select c.id, t.tag from customers c, lateral unnest(c.tags) as t(tag)",
    "select * from unnest(array['a', 'b']) with ordinality as t(v, n)",
    "select status, date_trunc('month', ordered_at) as m, grouping(status), sum(amount) from orders "
    "group by rollup (status, date_trunc('month', ordered_at))",
    "select status, customer_id, sum(amount) from orders group by cube (status, customer_id)",
    "select status, customer_id, count(*) from orders group by grouping sets ((status), (customer_id), ())",
    "select count(*) filter (where status = 'paid') as paid, avg(amount) filter (where amount > 5) "
    "from orders",
    "select profile ->> 'city', profile -> 'prefs' ->> 'lang', profile @> '{\"vip\": true}', profile "
    "? 'city', "
    "profile #>> '{prefs,lang}' from customers",
    "select o.id, i ->> 'sku' as sku, (i ->> 'qty')::int as qty from orders o, "
    "jsonb_array_elements(o.items) i",
    "select jsonb_build_object('id', id, 'name', name), to_jsonb(c), row_to_json(c) from customers c",
    "select jsonb_agg(o order by o.id), json_agg(status), jsonb_object_agg(id, amount) from orders o",
    "select key, value from customers, jsonb_each_text(profile) where jsonb_typeof(profile) = 'object'",
    'select * from jsonb_to_recordset(\'[{"a": 1, "b": "x"}]\') as r(a int, b text)',
    "select profile @? '$.prefs.lang', jsonb_path_query_first(profile, '$.city') from customers",
    "select tags[1], array_length(tags, 1), 'vip' = any(tags), tags && array['vip'], tags @> array['early'], "
    "cardinality(tags), array_to_string(tags, ',') from customers",
    "select customer_id, array_agg(id order by id) from orders group by 1",
    "select array(select id from orders order by id)",
    "select 'DELETE FROM x; DROP TABLE y' as s",
    "select * from orders where status <> 'DROP TABLE orders; --'",
    "select E'\\'; delete from orders; --' as s",
    "select $$; delete from orders; $$ as s",
    "select $tag$ it's $$ ; drop table orders $$ $tag$ as s",
    "select 'pg_sleep(10)', 'select * from pg_authid' as pg_authid",
    'select 1 as "pg_sleep", 2 as pg_authid, 3 as ctid_like',
    "select 1 -- ; delete from orders",
    "select 1 /* /* nested */ ; delete from orders */",
    "select 1;",
    "select 1; -- done",
    "select now() - interval '7 days', current_date - 30, ordered_at + interval '1 hour' * 3, "
    "age(now(), ordered_at), extract(dow from ordered_at), date_part('year', ordered_at), "
    "make_date(2024, 1, 31), to_char(ordered_at, 'YYYY-MM'), date_trunc('week', ordered_at) from orders",
    "select to_date('2024-05-01', 'YYYY-MM-DD'), to_timestamp(0), justify_interval(interval '40 days'), "
    "make_interval(days => 3), date_bin('15 minutes', ordered_at, timestamptz '2024-01-01') from orders",
    "select * from orders where ordered_at > now() - interval '30 days' or ordered_at >= date '2024-04-01'",
    "select now() at time zone 'UTC', current_timestamp, current_date, localtime, extract(epoch from now())",
    "select d::date, count(o.id) from generate_series(date '2024-04-01', date '2024-04-07', interval "
    "'1 day') d "
    "left join orders o on o.ordered_at::date = d::date group by d order by d",
    "select case when amount > 100 then 'big' when amount > 10 then 'mid' else 'small' end, "
    "case status when 'paid' then 1 else 0 end from orders",
    "select * from customers c where exists (select 1 from orders o where o.customer_id = c.id)",
    "select * from customers c where not exists (select 1 from orders o where o.customer_id = c.id)",
    "select * from customers where id in (select customer_id from orders) and id <> all(array[99])",
    "select distinct on (customer_id) customer_id, amount from orders order by customer_id, amount desc",
    "select id from customers union select customer_id from orders",
    "select id from customers intersect select customer_id from orders",
    "select id from customers except all select customer_id from orders order by 1 limit 5",
    "(select id from orders order by id limit 2) union all (select id from orders order by id desc limit 2)",
    "select * from sales.regions",
    "select * from regions where parent_id is not null",
    'select "Id", "Label" from "MixedCase"',
    'select m."Label" from public."MixedCase" as m order by m."Id"',
    'select day, "Visits" from "Analytics"."Daily Stats"',
    "SELECT COUNT(*) FROM ORDERS",
    'select count(*) from U&"\\006Frders"',
    "select * from order_totals",
    "select coalesce(email, 'n/a'), nullif(country, ''), greatest(id, 2), least(id, 2) from customers",
    "select upper(name), lower(name), initcap(name), length(name), substring(name from 1 for 3), "
    "position('l' in name), trim(both ' ' from name), replace(name, 'A', 'a'), split_part(email, '@', 2), "
    "concat_ws('-', name, country), format('%s (%s)', name, country), left(name, 2), right(name, 2), "
    "lpad(id::text, 4, '0'), regexp_replace(name, '[aeiou]', '', 'g') from customers",
    "select string_agg(name, ', ' order by name) from customers",
    "select name from customers where name ilike '%a%' or name similar to '%(b|c)%' or name ~* '^a' "
    "or email like 'a!%%' escape '!'",
    "select round(avg(amount), 2), abs(min(amount) - max(amount)), ceil(sum(amount)), floor(sum(amount)), "
    "power(2, 3), sqrt(16), mod(7, 3), div(7, 2), trunc(1.567, 1), ln(10), exp(1), pi() from orders",
    "select width_bucket(amount, 0, 200, 4), count(*) from orders group by 1",
    "select percentile_cont(0.5) within group (order by amount), percentile_disc(0.9) within group "
    "(order by amount), mode() within group (order by status) from orders",
    "select stddev(amount), variance(amount), corr(amount, id), regr_slope(amount, id) from orders",
    "values (1, 'a'), (2, 'b')",
    "select * from (values (1), (2)) v(x)",
    "table orders",
    "select amount::int, id::text, '2024-01-01'::date, cast(amount as numeric(12, 2)), '{1,2}'::int[], "
    "'{\"a\": 1}'::jsonb, ordered_at::date, text(id), date(ordered_at), 'x'::varchar(3) from orders",
    "select * from orders where status is distinct from null or amount between 10 and 50 or amount "
    "not between "
    "symmetric 100 and 50 or status is null or (amount > 10) is true",
    "select * from orders where (customer_id, amount) > (1, 5)",
    "select id, (select count(*) from orders o where o.customer_id = c.id) as n from customers c "
    "order by (select max(amount) from orders o where o.customer_id = c.id) nulls last",
    "select customer_id from orders group by customer_id having count(*) > (select count(*) / 10 "
    "from orders)",
    "select * from orders order by amount fetch first 2 rows with ties",
    "select * from orders order by id offset 1 limit 2",
    "select count(distinct customer_id), bool_and(amount > 0), bool_or(status = 'paid'), "
    "every(amount < 1000) "
    "from orders",
    "select c.name, o.id from customers c full outer join orders o on o.customer_id = c.id",
    "select * from customers join orders on orders.customer_id = customers.id where customers.country = 'FR'",
    "select * from sales.regions r1 join sales.regions r2 using (id)",
    "select 'a' || 'b' || id::text as label from orders",
    "select to_tsvector('english', name) @@ plainto_tsquery('english', 'alice') from customers",
    "select regexp_split_to_table('a,b,c', ',')",
    "select \"lower\"('ABC'), LOWER('ABC'), pg_catalog.upper('abc')",
    "select x from (select generate_series(1, 3) as x) s where x % 2 = 1",
    "select md5(name), encode(sha256(convert_to(name, 'UTF8')), 'hex') from customers",
    "select id, status from orders o where o.amount > (select avg(amount) from orders)",
]
