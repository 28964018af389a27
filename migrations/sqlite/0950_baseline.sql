-- The yimen schema, whole, in one file: the tables and indexes the migrations before it built
-- (a database they built is adopted at this version as it is: `store::migrate`).
-- The same text as on PostgreSQL but for PostgreSQL's storage settings: timestamps are BIGINT
-- unix milliseconds, ids TEXT (UUID v7), JSON as TEXT, so both stores read rows alike.

-- Deployed process versions: the source, the checked model (JSON) and the files beside it.
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

-- Cases: one row per running or ended instance of a process, with its variables and state.
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
    -- 1 while a due date waits for a calendar year that is missing
    provisional   BIGINT NOT NULL DEFAULT 0,
    parent_id     TEXT,
    parent_node   TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    ended_at      BIGINT,
    -- the instance's hash chain of history: number of entries and hash of the last one
    history_count BIGINT NOT NULL DEFAULT 0,
    history_head  TEXT   NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX instances_business_key ON instances (process_key, business_key);
-- Only the children a call started have a parent.
CREATE INDEX instances_parent ON instances (parent_id) WHERE parent_id IS NOT NULL;
-- The instances whose due dates are recomputed when their calendar year arrives.
CREATE INDEX instances_provisional ON instances (id)
    WHERE provisional = 1 AND status IN ('running', 'incident');

-- Tasks waiting for, held by or done by a role's queue, with the claim that holds each.
CREATE TABLE tasks (
    id              TEXT   PRIMARY KEY,
    instance_id     TEXT   NOT NULL,
    node            TEXT   NOT NULL,
    label           TEXT,
    queue           TEXT   NOT NULL,
    org_unit        TEXT,
    -- open | claimed | completed | cancelled | failed
    state           TEXT   NOT NULL,
    -- fencing token: every claim increments it, so older tokens are refused
    lock_token      BIGINT NOT NULL DEFAULT 0,
    -- who holds the claim: the authenticated caller (an API token's name)
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
    completed_at    BIGINT,
    -- when the current claim was made, and who held the claim before it when its lease ran
    -- out: the history records a claim when it ends
    claimed_at      BIGINT,
    lapsed_by       TEXT,
    lapsed_at       BIGINT,
    -- the label of the automated worker that holds the claim, and of the one before it
    worker          TEXT,
    lapsed_worker   TEXT
);
-- Indexes are created in this order on purpose: where two serve a query equally, SQLite's
-- planner takes the one created first, and this is the order the engine was tuned with.
-- Every task (PostgreSQL indexes only the live ones: an SQLite update leaves an index alone
-- when none of its columns change, so a partial index would cost a delete at each completion).
CREATE INDEX tasks_instance ON tasks (instance_id);
-- A claim walks a queue's open tasks oldest first, and its claimed tasks whose lease ran out.
CREATE INDEX tasks_queue_order ON tasks (queue, created_at, id) WHERE state = 'open';
CREATE INDEX tasks_lease ON tasks (queue, lock_expires_at) WHERE state = 'claimed';

-- Timers: waits, message timeouts and escalations, each fired once when due.
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
CREATE INDEX timers_task ON timers (task_id);
CREATE INDEX timers_instance ON timers (instance_id);
-- Due timers are read in (due_at, id) order; fired and cancelled ones are not in it.
CREATE INDEX timers_pending ON timers (due_at, id) WHERE state = 'pending';

-- The history of each instance, hash-chained, in packs: one row per run of entries written
-- together. `seq` is the pack's first entry's number; `entries` a JSON array of the entries
-- (at, actor, node, kind, text, data, prev_hash, hash), entry k numbered seq + k; `first_at`
-- the earliest of their times (`engine/src/store/history.rs`).
CREATE TABLE history (
    instance_id TEXT   NOT NULL,
    seq         BIGINT NOT NULL,
    first_at    BIGINT NOT NULL,
    entries     TEXT   NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
CREATE INDEX history_first_at ON history (first_at);

-- Messages to deliver (webhooks, notices), written with the change that makes them and
-- delivered at least once.
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

-- Documents an instance issued, rendered.
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

-- Access tokens of the HTTP API, stored only as SHA-256 hashes, with their roles and the
-- organisation units they are limited to (JSON lists).
CREATE TABLE api_tokens (
    id          TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL,
    hash        TEXT   NOT NULL UNIQUE,
    roles       TEXT   NOT NULL,
    org_units   TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
-- A name is unique among active tokens; a revoked token's name may be given again.
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- Refused calls, one row per client address, token, status, reason and minute (`bucket`),
-- with how many calls it stands for (`hits`).
CREATE TABLE access_refusals (
    id          TEXT    PRIMARY KEY,
    at          BIGINT  NOT NULL,
    token_id    TEXT,
    token_name  TEXT,
    method      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    address     TEXT,
    hits        BIGINT  NOT NULL DEFAULT 1,
    bucket      TEXT
);
CREATE INDEX access_refusals_at ON access_refusals (at);
CREATE UNIQUE INDEX access_refusals_bucket ON access_refusals (bucket);

-- The access generation: one counter bumped, in the same transaction, by every token
-- revocation and every new deployment. Each server reads it on every request and drops what
-- it cached about tokens and start rules when it changed.
CREATE TABLE access_generation (
    id          INTEGER PRIMARY KEY,
    generation  BIGINT  NOT NULL
);
INSERT INTO access_generation (id, generation) VALUES (1, 0);

-- Notices to read: one item per delivered notice, its id the outbox row's, so a repeated
-- delivery never makes a second item.
CREATE TABLE inbox (
    id          TEXT   PRIMARY KEY,
    -- a role's queue name, `subject` (the person a case concerns) or `worker:<id>`
    recipient   TEXT   NOT NULL,
    instance_id TEXT   NOT NULL,
    node        TEXT,
    -- the late task of an escalation: the item closes itself when that task is finished
    task_id     TEXT,
    -- the clock of a clock escalation: the item closes itself when that clock stops
    clock       TEXT,
    -- escalation level (0 = reminder); NULL for a plain notice
    level       BIGINT,
    message     TEXT   NOT NULL,
    -- open | acked | closed
    state       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    acked_by    TEXT,
    acked_at    BIGINT,
    closed_at   BIGINT
);
CREATE INDEX inbox_recipient ON inbox (recipient, state, created_at);
CREATE INDEX inbox_task ON inbox (task_id, state);
CREATE INDEX inbox_instance ON inbox (instance_id);

-- Scheduled report runs, one row per (job, scheduled time): inserting it is how a server
-- takes the run, so with several servers each run happens once.
CREATE TABLE report_runs (
    job          TEXT   NOT NULL,
    scheduled_at BIGINT NOT NULL,
    -- running | done | failed | baseline (first start: marks where the schedule begins)
    state        TEXT   NOT NULL,
    server       TEXT   NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    rows         BIGINT,
    file         TEXT,
    csv          TEXT,
    error        TEXT,
    PRIMARY KEY (job, scheduled_at)
);
