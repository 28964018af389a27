-- yimen engine schema. Identical on SQLite and PostgreSQL: timestamps are BIGINT unix
-- milliseconds, ids TEXT (UUID v7), JSON as TEXT, so both stores read rows the same way.

CREATE TABLE deployments (
    key         TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    hash        TEXT   NOT NULL,
    title       TEXT   NOT NULL,
    source      TEXT   NOT NULL,
    model       TEXT   NOT NULL,
    config      TEXT   NOT NULL,
    files       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (key, version)
);
CREATE UNIQUE INDEX deployments_hash ON deployments (key, hash);

CREATE TABLE instances (
    id            TEXT   PRIMARY KEY,
    process_key   TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    business_key  TEXT,
    status        TEXT   NOT NULL,
    result        TEXT,
    incident      TEXT,
    vars          TEXT   NOT NULL,
    state         TEXT   NOT NULL,
    provisional   BIGINT NOT NULL DEFAULT 0,
    parent_id     TEXT,
    parent_node   TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    ended_at      BIGINT,
    -- Per-instance hash chain of the history: number of entries and hash of the last one.
    history_count BIGINT NOT NULL DEFAULT 0,
    history_head  TEXT   NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX instances_business_key ON instances (process_key, business_key);
CREATE INDEX instances_status ON instances (status);
CREATE INDEX instances_parent ON instances (parent_id);

CREATE TABLE tasks (
    id              TEXT   PRIMARY KEY,
    instance_id     TEXT   NOT NULL,
    node            TEXT   NOT NULL,
    label           TEXT,
    queue           TEXT   NOT NULL,
    org_unit        TEXT,
    -- open | claimed | completed | cancelled | failed
    state           TEXT   NOT NULL,
    -- Fencing token: every claim increments it, so older tokens are refused.
    lock_token      BIGINT NOT NULL DEFAULT 0,
    locked_by       TEXT,
    lock_expires_at BIGINT,
    available_at    BIGINT NOT NULL,
    assignee        TEXT,
    item            TEXT,
    outcome         TEXT,
    completed_by    TEXT,
    failures        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    due_at          BIGINT,
    created_at      BIGINT NOT NULL,
    completed_at    BIGINT
);
CREATE INDEX tasks_claim ON tasks (queue, state, available_at);
CREATE INDEX tasks_instance ON tasks (instance_id);

CREATE TABLE timers (
    id          TEXT   PRIMARY KEY,
    instance_id TEXT   NOT NULL,
    -- wait | message_timeout | escalation | clock_escalation
    kind        TEXT   NOT NULL,
    node        TEXT   NOT NULL,
    task_id     TEXT,
    due_at      BIGINT NOT NULL,
    payload     TEXT   NOT NULL,
    -- pending | fired | cancelled
    state       TEXT   NOT NULL,
    fired_at    BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX timers_due ON timers (state, due_at);
CREATE INDEX timers_task ON timers (task_id);
CREATE INDEX timers_instance ON timers (instance_id);

CREATE TABLE history (
    instance_id TEXT   NOT NULL,
    seq         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    node        TEXT,
    kind        TEXT   NOT NULL,
    text        TEXT   NOT NULL,
    data        TEXT   NOT NULL,
    prev_hash   TEXT   NOT NULL,
    hash        TEXT   NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
CREATE INDEX history_at ON history (at);

CREATE TABLE outbox (
    id              TEXT   PRIMARY KEY,
    instance_id     TEXT   NOT NULL,
    channel         TEXT   NOT NULL,
    dedup_key       TEXT   NOT NULL UNIQUE,
    payload         TEXT   NOT NULL,
    -- pending | delivered | dead
    state           TEXT   NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

CREATE TABLE documents (
    id          TEXT   PRIMARY KEY,
    instance_id TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    label       TEXT,
    public      BIGINT NOT NULL,
    content     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX documents_instance ON documents (instance_id);
