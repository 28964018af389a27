-- Oversight of deadlines: what the oversight board, the evaluation and the statistics count
-- from the record, never from a recomputation that can drift.

-- The clocks of each case as they stand: one row per started clock, written with the event
-- that started, paused, resumed, extended or stopped it (and removed when its case ends).
CREATE TABLE case_clocks (
    instance_id  TEXT    NOT NULL,
    clock        TEXT    NOT NULL,
    process_key  TEXT    NOT NULL,
    -- the case's organisation unit (the value of the variable that scopes its roles), if any
    org_unit     TEXT,
    -- running | paused | stopped
    state        TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    due_at       BIGINT,
    -- when its light turns yellow (the clock's earliest warning rung); NULL: none declared
    warn_at      BIGINT,
    stopped_at   BIGINT,
    -- the highest escalation level reached (0: none)
    level        BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (instance_id, clock)
);
CREATE INDEX case_clocks_running ON case_clocks (due_at) WHERE state = 'running';
CREATE INDEX case_clocks_stopped ON case_clocks (stopped_at) WHERE state = 'stopped';

-- Each deadline signal, recorded once when it is given: `yellow` (a warning rung before the
-- due time), `red` (the due time passed), each with the escalation level of its rung. The id
-- is the timer's that gave it (a timer fires once).
CREATE TABLE signals (
    id           TEXT    PRIMARY KEY,
    instance_id  TEXT    NOT NULL,
    node         TEXT    NOT NULL,
    task_id      TEXT,
    clock        TEXT,
    -- the late task's queue and organisation unit, if a task was late
    queue        TEXT,
    org_unit     TEXT,
    light        TEXT    NOT NULL,
    level        BIGINT  NOT NULL,
    due_at       BIGINT,
    at           BIGINT  NOT NULL
);
CREATE INDEX signals_at ON signals (at);
CREATE INDEX signals_instance ON signals (instance_id);

-- What an office that oversees did about a case: urged the department (a reminder in its
-- inbox), a notice of criticism, a referral for discipline; with its text and who acted.
CREATE TABLE oversight_actions (
    id           TEXT    PRIMARY KEY,
    instance_id  TEXT    NOT NULL,
    -- urge | criticism | referral
    kind         TEXT    NOT NULL,
    -- the queue (department) and organisation unit it is addressed to
    queue        TEXT,
    org_unit     TEXT,
    text         TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    actor_key    TEXT,
    at           BIGINT  NOT NULL
);
CREATE INDEX oversight_actions_at ON oversight_actions (at);
CREATE INDEX oversight_actions_instance ON oversight_actions (instance_id);
