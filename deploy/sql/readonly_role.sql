-- A login role that can only SELECT the chosen schemas of one database: the role sqlagent should
-- connect to a target database as (deploy/README.md, "A read-only role for a target").
--
-- Run with psql as a superuser, or as a CREATEROLE role that owns the schemas (managed services'
-- admin users), connected to the target database:
--
--   psql "postgresql://admin@db.internal/sales" \
--        -v role=sqlagent_reader -v password="$READER_PASSWORD" -v schemas=public,reporting \
--        -f deploy/sql/readonly_role.sql
--
-- Variables (psql -v NAME=VALUE):
--   role                  required  the login role to create, or to reset if it exists
--   password              required  its password. A SCRAM verifier ('SCRAM-SHA-256$4096:…') is
--                                   stored as is, so the clear text never reaches the server or
--                                   its log
--   schemas               public    comma-separated schemas it may read (all their tables, views,
--                                   materialized views and foreign tables, present and future)
--   owner                 you       the role that will create tables in those schemas later: the
--                                   default privileges cover tables created by this role only
--   connection_limit      10        concurrent sessions; size it to the sqlagent workers' pools
--   statement_timeout     30s       match SQLAGENT_STATEMENT_TIMEOUT_S
--   lock_timeout          5s
--   idle_timeout          60s       idle_in_transaction_session_timeout
--   revoke_public_create  on        REVOKE CREATE ON SCHEMA public FROM PUBLIC (the default since
--                                   PostgreSQL 15; before it, any role could create objects there,
--                                   CVE-2018-1058). Set off to leave the schema's ACL alone.
--
-- Safe to run again: the role is created only when missing; every run resets it to what this file
-- says (attributes, password, settings, memberships, privileges in this database), so a write
-- privilege granted by hand since is revoked. One transaction: all of it or nothing.
--
-- What a role cannot be denied (why sqlagent's guard stays on, deploy/README.md "Security model"):
-- EXECUTE on built-in functions is granted to PUBLIC, not to roles, so it cannot be revoked for this
-- role alone. Revoking it from PUBLIC changes every role of the database and breaks tools that need
-- those functions (drivers and pg_dump call set_config). So this role can still call pg_sleep,
-- pg_advisory_lock, pg_notify, lo_create (allowed even in a READ ONLY transaction), set_config,
-- pg_cancel_backend / pg_terminate_backend on its own sessions, read the pg_catalog views PUBLIC may
-- read, and run `SET default_transaction_read_only = off` in its own session. Without write
-- privileges that last one still writes nothing but temporary tables: TEMPORARY on the database is
-- granted to PUBLIC as well (REVOKE TEMPORARY ON DATABASE … FROM PUBLIC, if no other role needs it).

\set ON_ERROR_STOP on
\set QUIET on

-- psql does not substitute variables inside dollar-quoted bodies, so statements built from
-- variables go through format() + \gexec; the checks read the role name back with current_setting().
\if :{?role}
\else
    DO $$ BEGIN RAISE EXCEPTION 'readonly_role.sql: set the role name: psql -v role=NAME'; END $$;
\endif
\if :{?password}
\else
    DO $$ BEGIN RAISE EXCEPTION 'readonly_role.sql: set a password: psql -v password=SECRET'; END $$;
\endif
\if :{?schemas}
\else
    \set schemas public
\endif
\if :{?owner}
\else
    SELECT current_user AS owner \gset
\endif
\if :{?connection_limit}
\else
    \set connection_limit 10
\endif
\if :{?statement_timeout}
\else
    \set statement_timeout 30s
\endif
\if :{?lock_timeout}
\else
    \set lock_timeout 5s
\endif
\if :{?idle_timeout}
\else
    \set idle_timeout 60s
\endif
\if :{?revoke_public_create}
\else
    \set revoke_public_create on
\endif

BEGIN;

SELECT set_config('sqlagent.readonly_role', :'role', true) AS role_setting,
       set_config('sqlagent.readonly_schemas', :'schemas', true) AS schemas_setting,
       set_config('sqlagent.readonly_connection_limit', :'connection_limit', true) AS limit_setting \gset checked_

-- Refuse what this script must not silently "fix": a privileged role named by mistake, a role that
-- owns objects here (an owner can always write to what it owns), or a schema that does not exist.
DO $$
DECLARE
    role_name text := current_setting('sqlagent.readonly_role');
    r pg_roles%ROWTYPE;
    missing text;
BEGIN
    IF role_name = '' OR role_name <> btrim(role_name) THEN
        RAISE EXCEPTION 'readonly_role.sql: role name % is empty or padded', quote_literal(role_name);
    END IF;
    IF current_setting('sqlagent.readonly_connection_limit') !~ '^([0-9]+|-1)$' THEN
        RAISE EXCEPTION 'readonly_role.sql: connection_limit must be a number (-1: no limit), got %',
            quote_literal(current_setting('sqlagent.readonly_connection_limit'));
    END IF;
    IF role_name = current_user OR role_name = session_user THEN
        RAISE EXCEPTION 'readonly_role.sql: % is the role running this script', role_name;
    END IF;
    SELECT * INTO r FROM pg_roles WHERE rolname = role_name;
    IF FOUND THEN
        IF r.rolsuper OR r.rolreplication OR r.rolbypassrls THEN
            RAISE EXCEPTION 'readonly_role.sql: role % is a superuser or has REPLICATION/BYPASSRLS; '
                'pick another name or strip those attributes by hand first', role_name;
        END IF;
        IF EXISTS (SELECT FROM pg_class WHERE relowner = r.oid)
           OR EXISTS (SELECT FROM pg_namespace WHERE nspowner = r.oid)
           OR EXISTS (SELECT FROM pg_database WHERE datdba = r.oid) THEN
            RAISE EXCEPTION 'readonly_role.sql: role % owns objects in this database; an owner can '
                'always write to them', role_name;
        END IF;
    END IF;
    SELECT string_agg(s, ', ') INTO missing
    FROM unnest(string_to_array(current_setting('sqlagent.readonly_schemas'), ',')) AS t(raw),
         btrim(t.raw) AS s
    WHERE s <> '' AND NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = s);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'readonly_role.sql: no such schema in database %: %', current_database(), missing;
    END IF;
END
$$;

-- The role. CREATE's explicit NO… attributes need no superuser; ALTER leaves out NOSUPERUSER,
-- NOREPLICATION and NOBYPASSRLS (only a superuser may name those) — the check above covers them.
-- NOINHERIT: privileges of any role it is later made a member of are not used implicitly.
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS',
              :'role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec

SELECT format('ALTER ROLE %I WITH LOGIN NOCREATEDB NOCREATEROLE NOINHERIT CONNECTION LIMIT %s PASSWORD %L '
              'VALID UNTIL %L', :'role', (:'connection_limit')::integer, :'password', 'infinity') \gexec

-- Memberships would let it SET ROLE to a stronger role (pg_write_all_data, an app owner…).
SELECT format('REVOKE %I FROM %I', g.rolname, :'role')
FROM pg_auth_members m
JOIN pg_roles g ON g.oid = m.roleid
JOIN pg_roles u ON u.oid = m.member
WHERE u.rolname = :'role' \gexec

-- Session defaults: every connection starts READ ONLY and bounded in time. Per-database settings
-- win over per-role ones, so clear those first, in every database (pg_db_role_setting is shared).
SELECT format('ALTER ROLE %I IN DATABASE %I RESET ALL', :'role', d.datname)
FROM pg_db_role_setting s
JOIN pg_database d ON d.oid = s.setdatabase
JOIN pg_roles u ON u.oid = s.setrole
WHERE u.rolname = :'role' \gexec
ALTER ROLE :"role" RESET ALL;
ALTER ROLE :"role" SET default_transaction_read_only = on;
ALTER ROLE :"role" SET statement_timeout = :'statement_timeout';
ALTER ROLE :"role" SET lock_timeout = :'lock_timeout';
ALTER ROLE :"role" SET idle_in_transaction_session_timeout = :'idle_timeout';

-- This database: connect, nothing else (CONNECT is usually PUBLIC's too; explicit survives a
-- REVOKE CONNECT … FROM PUBLIC).
SELECT format('REVOKE ALL ON DATABASE %I FROM %I', current_database(), :'role') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec

-- Every other schema of this database: take back whatever was granted to the role by hand.
SELECT format('REVOKE ALL ON SCHEMA %1$I FROM %2$I; '
              'REVOKE ALL ON ALL TABLES IN SCHEMA %1$I FROM %2$I; '
              'REVOKE ALL ON ALL SEQUENCES IN SCHEMA %1$I FROM %2$I; '
              'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %1$I FROM %2$I',
              n.nspname, :'role')
FROM pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND n.nspname <> ALL (SELECT btrim(s) FROM unnest(string_to_array(:'schemas', ',')) AS s)
  AND (has_schema_privilege(:'role', n.oid, 'USAGE') OR has_schema_privilege(:'role', n.oid, 'CREATE')) \gexec

-- The chosen schemas: USAGE and SELECT on every table there, now and later; nothing else.
SELECT format('REVOKE ALL ON SCHEMA %1$I FROM %2$I; '
              'GRANT USAGE ON SCHEMA %1$I TO %2$I; '
              'REVOKE ALL ON ALL TABLES IN SCHEMA %1$I FROM %2$I; '
              'GRANT SELECT ON ALL TABLES IN SCHEMA %1$I TO %2$I; '
              'REVOKE ALL ON ALL SEQUENCES IN SCHEMA %1$I FROM %2$I; '
              'ALTER DEFAULT PRIVILEGES FOR ROLE %3$I IN SCHEMA %1$I REVOKE ALL ON TABLES FROM %2$I; '
              'ALTER DEFAULT PRIVILEGES FOR ROLE %3$I IN SCHEMA %1$I REVOKE ALL ON SEQUENCES FROM %2$I; '
              'ALTER DEFAULT PRIVILEGES FOR ROLE %3$I IN SCHEMA %1$I GRANT SELECT ON TABLES TO %2$I',
              s, :'role', :'owner')
FROM (SELECT DISTINCT btrim(raw) AS s FROM unnest(string_to_array(:'schemas', ',')) AS raw) AS chosen
WHERE s <> '' \gexec

\if :revoke_public_create
    SELECT 'REVOKE CREATE ON SCHEMA public FROM PUBLIC'
    WHERE EXISTS (SELECT FROM pg_namespace WHERE nspname = 'public') \gexec
\endif

COMMIT;

\set QUIET off
\echo
\echo 'readonly_role.sql: the role and what it may read'
SELECT r.rolname AS role, r.rolconnlimit AS connection_limit, r.rolinherit AS inherit,
       r.rolcreaterole AS createrole, r.rolcreatedb AS createdb, s.setconfig AS settings
FROM pg_roles r
LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
WHERE r.rolname = :'role';
SELECT n.nspname AS schema, count(c.oid) AS readable_relations
FROM pg_namespace n
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
     AND has_table_privilege(:'role', c.oid, 'SELECT')
WHERE has_schema_privilege(:'role', n.oid, 'USAGE')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
GROUP BY n.nspname
ORDER BY n.nspname;
