-- Inbox items and scheduled report runs (owned by the timers/reports side of the engine).
-- Same conventions as 0001: BIGINT unix millis, TEXT ids, JSON as TEXT.

-- One item per delivered role/applicant/holder notification; id = the outbox row's id, so a
-- repeated delivery (at least once) never makes a second item.
CREATE TABLE inbox (
    id          TEXT   PRIMARY KEY,
    -- queue name (`supervision_office`, `department:civil_affairs`), `applicant`, `worker:<id>`
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

-- One row per (job, scheduled time): inserting it is how a server takes the run, so with
-- several servers each run happens once.
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
