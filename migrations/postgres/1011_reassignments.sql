-- Reassignments: the tasks assigned to one holder of a role (a first responder away) handed
-- to another holder of it in one organisation unit, from `starts_at` until `ends_at` (the end
-- of the day given, in the calendar's zone; NULL: for good) or until ended early (`ended_at`,
-- `ended_by`, and `ends_at` moved to then). People are named by key (`user:<id>`) for the
-- claims, and by login and name for people. A claim of a task assigned to `from_key` by
-- `to_key` looks here (`reassignments_to`); time ends a reassignment without any timer.
CREATE TABLE reassignments (
    id          TEXT   PRIMARY KEY,
    org_unit    TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    from_key    TEXT   NOT NULL,
    from_login  TEXT   NOT NULL,
    from_name   TEXT   NOT NULL,
    to_key      TEXT   NOT NULL,
    to_login    TEXT   NOT NULL,
    to_name     TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    until_day   TEXT,
    starts_at   BIGINT NOT NULL,
    ends_at     BIGINT,
    by_key      TEXT   NOT NULL,
    by_name     TEXT   NOT NULL,
    ended_at    BIGINT,
    ended_by    TEXT,
    created_at  BIGINT NOT NULL
);
-- The claims' lookup, whole in the index (the list by unit reads the few rows there are).
CREATE INDEX reassignments_to ON reassignments (to_key, from_key, org_unit, role);
