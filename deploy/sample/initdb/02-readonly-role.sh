#!/bin/sh
# The role sqlagent connects as: SELECT on schema `shop` only, read-only sessions, bounded time.
set -eu
psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role=sqlagent_reader -v password="$SAMPLE_READER_PASSWORD" -v schemas=shop \
    -v connection_limit=40 \
    -f /sqlagent-sql/readonly_role.sql
