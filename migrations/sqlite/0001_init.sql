-- sqlagent app database, SQLite (timestamps: ISO 8601 UTC text in TIMESTAMPTZ columns).

CREATE TABLE users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    username            TEXT NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL,
    role                TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    active              BOOLEAN NOT NULL DEFAULT TRUE,
    created_at          TIMESTAMPTZ NOT NULL,
    password_changed_at TIMESTAMPTZ NOT NULL
);

-- Session and API tokens are stored only as SHA-256 digests of the secret.
CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE attempts (
    id                TEXT PRIMARY KEY,
    user_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    question          TEXT NOT NULL,
    data_source       TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('queued', 'generating', 'validating', 'executing',
                          'succeeded', 'failed', 'rejected', 'timed_out', 'cancelled')),
    seq               INTEGER NOT NULL,          -- sequence number of the latest event
    sql               TEXT,
    explanation       TEXT,
    error_code        TEXT,
    error_detail      TEXT,
    row_count         INTEGER,
    truncated         BOOLEAN NOT NULL DEFAULT FALSE,
    rounds            INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    llm_ms            INTEGER,
    exec_ms           INTEGER,
    created_at        TIMESTAMPTZ NOT NULL,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    -- Outbox: NULL until the task message reached the broker; the sweeper re-publishes otherwise.
    dispatched_at     TIMESTAMPTZ,
    -- Lease of the worker running the attempt; the reaper requeues it when it expires.
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ,
    tries             INTEGER NOT NULL DEFAULT 0,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    idempotency_key   TEXT,
    request_hash      TEXT
);
CREATE INDEX attempts_user_created ON attempts (user_id, created_at DESC);
CREATE INDEX attempts_created ON attempts (created_at DESC);
CREATE INDEX attempts_active ON attempts (status)
    WHERE status IN ('queued', 'generating', 'validating', 'executing');
CREATE UNIQUE INDEX attempts_idempotency ON attempts (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE attempt_events (
    attempt_id TEXT NOT NULL REFERENCES attempts (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    status     TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    error_code TEXT,
    detail     TEXT,
    PRIMARY KEY (attempt_id, seq)
);

CREATE TABLE attempt_results (
    attempt_id TEXT PRIMARY KEY REFERENCES attempts (id) ON DELETE CASCADE,
    columns    TEXT NOT NULL,            -- JSON [{name, type}]
    row_count  INTEGER NOT NULL,
    truncated  BOOLEAN NOT NULL,
    byte_size  INTEGER NOT NULL,
    chunk_rows INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Rows in fixed-size chunks of JSON, so a page of a 10,000-row result reads one or two chunks.
CREATE TABLE result_chunks (
    attempt_id TEXT NOT NULL REFERENCES attempt_results (attempt_id) ON DELETE CASCADE,
    chunk      INTEGER NOT NULL,
    rows       BLOB NOT NULL,
    PRIMARY KEY (attempt_id, chunk)
);

CREATE TABLE knowledge_examples (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    question    TEXT NOT NULL,
    sql         TEXT NOT NULL,
    data_source TEXT NOT NULL,
    notes       TEXT,
    created_by  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX knowledge_data_source ON knowledge_examples (data_source, id);

CREATE TABLE schema_snapshots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    data_source TEXT NOT NULL,
    taken_at    TIMESTAMPTZ NOT NULL,
    snapshot    TEXT NOT NULL            -- JSON, shared.targets.introspect.SchemaSnapshot
);
CREATE INDEX schema_snapshots_latest ON schema_snapshots (data_source, taken_at DESC);
