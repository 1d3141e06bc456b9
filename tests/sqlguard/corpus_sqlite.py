"""SQLite corpus for the SQL guard: attacks with the rule that must stop them, and safe queries
that must pass and return rows. Loaded into a temporary database file by the tests.

An expected rule of EXECUTION_ERROR means SQLite itself refuses to compile the statement
(e.g. `readfile` does not exist in this build): it is never run, and the caller sees
SqlExecutionError rather than SqlRejected.
"""

from __future__ import annotations

EXECUTION_ERROR = "execution_error"

SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, country TEXT,
                        created_at TEXT NOT NULL, profile TEXT NOT NULL DEFAULT '{}');
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id),
                     amount REAL NOT NULL, status TEXT NOT NULL, ordered_at TEXT NOT NULL,
                     items TEXT NOT NULL DEFAULT '[]');
CREATE TABLE secrets (id INTEGER PRIMARY KEY, token TEXT);
CREATE TABLE counters (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER);
CREATE TABLE "Mixed Case" ("Id" INTEGER, "Label" TEXT);
CREATE VIEW order_totals AS
    SELECT customer_id, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer_id;
CREATE VIEW leaky AS SELECT token FROM secrets;

INSERT INTO customers VALUES
    (1, 'Alice', 'alice@example.com', 'FR', '2024-01-05 10:00:00', '{"city": "Paris", "vip": true}'),
    (2, 'Bob', NULL, 'DE', '2024-02-11 09:30:00', '{"city": "Berlin"}'),
    (3, 'Chloé', 'chloe@example.com', 'FR', '2024-03-20 18:45:00', '{}');
INSERT INTO orders VALUES
    (10, 1, 120.5, 'paid', '2024-03-01 12:00:00', '[{"sku": "A1", "qty": 2}]'),
    (11, 1, 15.0, 'shipped', '2024-03-15 08:00:00', '[]'),
    (12, 2, 42.0, 'paid', '2024-04-02 16:20:00', '[{"sku": "B2", "qty": 1}]'),
    (13, 3, 7.25, 'cancelled', '2024-04-03 11:11:00', '[]');
INSERT INTO secrets VALUES (1, 's3cr3t');
INSERT INTO counters (n) VALUES (1);
INSERT INTO "Mixed Case" VALUES (1, 'one'), (2, 'two');
"""

# `leaky` is listed on purpose: a view is only readable if the tables it reads are allowed too.
ALLOWED_TABLES = frozenset({"customers", "orders", "order_totals", "mixed case", "leaky"})

ATTACKS: list[tuple[str, str]] = [
    # --- nothing, or more than one statement -------------------------------------------------
    ("", "empty"),
    (";", "empty"),
    ("-- nothing here", "empty"),
    ("/* unterminated comment runs to the end", "empty"),
    ("select 1\x00; drop table orders", "parse_error"),
    ("select 1 " + " " * 100_000, "too_long"),
    ("select 1; select 2", "single_statement"),
    ("select 1; attach database 'evil.db' as evil", "single_statement"),
    ("select ';'; drop table orders", "single_statement"),
    ("select 1 /* ; */; pragma writable_schema = 1", "single_statement"),
    ("select 1; -- comment\n delete from orders", "single_statement"),
    ('select "a;b" from (select 1 as "a;b"); delete from orders', "single_statement"),
    ("select [x;y] from (select 1 as [x;y]); delete from orders", "single_statement"),
    ("select 'it''s'; delete from orders", "single_statement"),
    ("commit; select 1", "single_statement"),
    ("begin; select 1", "single_statement"),
    ("create trigger t after insert on orders begin delete from orders; end", "single_statement"),
    # --- statements that are not queries (refused before SQLite sees them) --------------------
    (
        "insert into orders (id, customer_id, amount, status, ordered_at) values (99, 1, 1, 'x', 'y')",
        "not_select",
    ),
    ("replace into orders (id) values (10)", "not_select"),
    ("update orders set amount = 0", "not_select"),
    ("delete from orders", "not_select"),
    ("create table x (a)", "not_select"),
    ("create temp table x as select * from secrets", "not_select"),
    ("create view v2 as select * from secrets", "not_select"),
    ("create index i on orders (amount)", "not_select"),
    ("create virtual table v using fts5(body)", "not_select"),
    ("drop table orders", "not_select"),
    ("alter table orders add column x", "not_select"),
    ("attach database 'evil.db' as evil", "not_select"),
    ("attach ':memory:' as m", "not_select"),
    ("detach database main", "not_select"),
    ("pragma writable_schema = 1", "not_select"),
    ("pragma query_only = 0", "not_select"),
    ("pragma journal_mode = delete", "not_select"),
    ("pragma table_info(secrets)", "not_select"),
    ("vacuum", "not_select"),
    ("vacuum into 'stolen.db'", "not_select"),
    ("reindex", "not_select"),
    ("analyze", "not_select"),
    ("begin immediate", "not_select"),
    ("commit", "not_select"),
    ("rollback", "not_select"),
    ("savepoint s", "not_select"),
    ("release s", "not_select"),
    ("explain select * from secrets", "not_select"),
    ("explain query plan select 1", "not_select"),
    ("(select 1)", "not_select"),
    # --- writes behind a WITH (the authorizer's job) -----------------------------------------
    ("with x as (select 1) insert into orders (id) select * from x", "not_select"),
    ("with x as (select 1) delete from orders", "not_select"),
    ("with x as (select 1) update orders set amount = 0", "not_select"),
    ("with x as (select 1) replace into orders (id) values (10)", "not_select"),
    # --- functions -------------------------------------------------------------------------
    ("select load_extension('/tmp/evil.so')", "function_not_allowed"),
    ("select load_extension('/tmp/evil.so', 'sqlite3_evil_init')", "function_not_allowed"),
    ("select fts3_tokenizer('simple')", "function_not_allowed"),
    ("select fts3_tokenizer('evil', x'4141414141414141')", "function_not_allowed"),
    ("select sqlite_version()", "function_not_allowed"),
    ("select sqlite_source_id()", "function_not_allowed"),
    ("select sqlite_compileoption_get(0)", "function_not_allowed"),
    ("select sqlite_compileoption_used('ENABLE_LOAD_EXTENSION')", "function_not_allowed"),
    ("select zeroblob(1000000000)", "function_not_allowed"),
    ("select randomblob(1000000000)", "function_not_allowed"),
    ("select changes(), total_changes(), last_insert_rowid()", "function_not_allowed"),
    ("select rtreenode(2, x'00')", "function_not_allowed"),
    ("select sqlite_log(1, 'x')", "function_not_allowed"),
    ("select * from orders where status match 'x'", "function_not_allowed"),
    ("select LOAD_EXTENSION('/tmp/evil.so')", "function_not_allowed"),
    ("select \"load_extension\"('/tmp/evil.so')", "function_not_allowed"),
    (
        "select * from orders where amount > (select length(load_extension('/tmp/evil.so')))",
        "function_not_allowed",
    ),
    ("select * from orders order by load_extension('/tmp/evil.so')", "function_not_allowed"),
    ("select case when 1 then fts3_tokenizer('simple') end", "function_not_allowed"),
    ("with t as (select load_extension('/tmp/evil.so')) select * from t", "function_not_allowed"),
    ("select 1 union all select sqlite_version()", "function_not_allowed"),
    ("select j.value from orders, json_each(orders.items) j", "function_not_allowed"),
    ("select * from json_tree('{}')", "function_not_allowed"),
    ("select * from pragma_table_info('secrets')", "function_not_allowed"),
    ("select * from pragma_database_list", "function_not_allowed"),
    ("select * from dbstat", "function_not_allowed"),
    ("select * from sqlite_stmt", "function_not_allowed"),
    ("select readfile('/etc/passwd')", EXECUTION_ERROR),
    ("select writefile('written.txt', 'y')", EXECUTION_ERROR),
    ("select edit('x')", EXECUTION_ERROR),
    # --- tables outside the data source -------------------------------------------------------
    ("select * from secrets", "relation_not_allowed"),
    ("select token from secrets", "relation_not_allowed"),
    ("select count(*) from secrets", "relation_not_allowed"),
    ("SELECT * FROM SECRETS", "relation_not_allowed"),
    ('select * from "Secrets"', "relation_not_allowed"),
    ("select * from main.secrets", "relation_not_allowed"),
    ("select * from [secrets]", "relation_not_allowed"),
    ("select * from sqlite_master", "relation_not_allowed"),
    ("select * from sqlite_schema", "relation_not_allowed"),
    ("select sql from sqlite_master where name = 'secrets'", "relation_not_allowed"),
    ("select * from sqlite_temp_master", "relation_not_allowed"),
    ("select * from sqlite_sequence", "relation_not_allowed"),
    ("select * from counters", "relation_not_allowed"),
    ("select * from leaky", "relation_not_allowed"),
    ("with orders as (select * from secrets) select * from orders", "relation_not_allowed"),
    ("select * from (select token from secrets) as orders", "relation_not_allowed"),
    ("select 1 limit (select count(*) from secrets)", "relation_not_allowed"),
    ("select * from orders where exists (select 1 from secrets)", "relation_not_allowed"),
    ("select id from orders union select id from secrets", "relation_not_allowed"),
    ("select * from orders o join secrets s on s.id = o.id", "relation_not_allowed"),
    (
        "with recursive r(n) as (select 1 union all select n + 1 from r, secrets where n < 3) select "
        "* from r",
        "relation_not_allowed",
    ),
]

SAFE: list[str] = [
    "select * from orders",
    "SELECT id, amount FROM orders WHERE status = 'paid' ORDER BY amount DESC LIMIT 10",
    "select customer_id, sum(amount), count(*) from orders group by customer_id having sum(amount) > 10",
    "select c.name, o.amount from customers c join orders o on o.customer_id = c.id",
    "select c.name, o.amount from customers c left join orders o on o.customer_id = c.id",
    "select * from customers where id in (select customer_id from orders)",
    "select * from customers c where exists (select 1 from orders o where o.customer_id = c.id)",
    "with t as (select customer_id, sum(amount) as s from orders group by 1) select * from t",
    "with recursive r(n) as (select 1 union all select n + 1 from r where n < 10) select n from r",
    "with orders as (select 1 as id) select * from orders",
    "select id, row_number() over (partition by customer_id order by ordered_at), "
    "sum(amount) over (order by id rows between unbounded preceding and current row), "
    "lag(amount) over (order by id), rank() over (order by amount) from orders",
    "select case when amount > 100 then 'big' else 'small' end, iif(status = 'paid', 1, 0) from orders",
    "select name from customers where name like 'A%' or name glob 'B*'",
    "select date(ordered_at), strftime('%Y-%m', ordered_at), julianday('now') - julianday(ordered_at), "
    "datetime(ordered_at, '+1 day'), unixepoch(ordered_at) from orders",
    "select json_extract(profile, '$.city'), profile ->> '$.city', json_array_length(items) from "
    "customers, orders "
    "where orders.customer_id = customers.id",
    "select json_group_array(id), json_object('n', count(*)) from orders",
    "select upper(name), lower(name), length(name), substr(name, 1, 2), replace(name, 'A', 'a'), "
    "trim(' x '), instr(name, 'o'), printf('%05.1f', 1.5), coalesce(email, 'n/a') from customers",
    "select round(avg(amount), 2), max(amount), min(amount), total(amount), abs(-1), "
    "group_concat(status, ',') from orders",
    "select sqrt(16), pow(2, 10), floor(1.5), ceil(1.5), pi(), ln(10), log10(100)",
    "select id from customers union select customer_id from orders order by 1",
    "select id from customers except select customer_id from orders where status = 'cancelled'",
    "values (1, 'a'), (2, 'b')",
    "select * from order_totals",
    'select "Id", "Label" from "Mixed Case"',
    'select "Id" from "MIXED CASE"',
    "SELECT COUNT(*) FROM ORDERS",
    "select rowid, id from orders",
    "select 'DELETE FROM x; DROP TABLE y' as s",
    "select 'it''s; attach' as s, \"amount\" from orders",
    "select 1 -- ; delete from orders",
    "select 1 /* ; pragma writable_schema = 1 */",
    "select 1;",
    "  select 1 ;  -- done\n",
    "select cast(amount as integer), cast(id as text), typeof(amount) from orders",
    "select count(distinct customer_id) from orders",
    "select * from orders order by amount limit 2 offset 1",
    "select random() is not null",
    "select hex('a'), quote('x'), char(65), unicode('A'), nullif(1, 1), ifnull(null, 2)",
]
