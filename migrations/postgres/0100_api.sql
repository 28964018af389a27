-- Access tokens of the HTTP API (stored only as SHA-256 hashes) and the record of refused calls.
-- Same text on SQLite and PostgreSQL: timestamps BIGINT unix millis, ids TEXT, lists as JSON TEXT.

CREATE TABLE api_tokens (
    id          TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL,
    hash        TEXT   NOT NULL UNIQUE,
    roles       TEXT   NOT NULL,
    streets     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
-- A name is unique among active tokens; a revoked token's name may be given again.
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE access_refusals (
    id          TEXT    PRIMARY KEY,
    at          BIGINT  NOT NULL,
    token_id    TEXT,
    token_name  TEXT,
    method      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    reason      TEXT    NOT NULL
);
CREATE INDEX access_refusals_at ON access_refusals (at);
