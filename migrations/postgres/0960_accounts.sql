-- People's accounts beside the machines' tokens: users who sign in with a password, their
-- server-side sessions, and the record of every sign-in attempt. The same text on SQLite and
-- PostgreSQL: timestamps BIGINT unix milliseconds, ids TEXT (UUID v7), lists as JSON TEXT,
-- flags INTEGER 0/1.

-- A person: a login (lower case, unique), a display name, roles and organisation units as a
-- token has them, the Argon2id hash of the password (PHC string).
CREATE TABLE users (
    id                    TEXT    PRIMARY KEY,
    login                 TEXT    NOT NULL UNIQUE,
    name                  TEXT    NOT NULL,
    roles                 TEXT    NOT NULL,
    org_units             TEXT    NOT NULL,
    password_hash         TEXT    NOT NULL,
    -- 1 while the password is a one-time one an administrator had made: the user's sessions
    -- may only change it
    must_change_password  INTEGER NOT NULL,
    disabled_at           BIGINT,
    created_at            BIGINT  NOT NULL,
    -- failed sign-ins in a row; the fifth locks the login until `locked_until`
    failed_count          INTEGER NOT NULL DEFAULT 0,
    locked_until          BIGINT
);

-- Failed sign-ins of logins that name no account, counted and locked as an account's are, so
-- that the answers do not tell whether a login exists.
CREATE TABLE unknown_logins (
    login         TEXT    PRIMARY KEY,
    failed_count  INTEGER NOT NULL,
    locked_until  BIGINT,
    last_at       BIGINT  NOT NULL
);
CREATE INDEX unknown_logins_last_at ON unknown_logins (last_at);

-- A signed-in session: its id is the SHA-256 of the cookie's secret (the secret itself is
-- never stored), with the token its state-changing requests must carry (X-CSRF-Token).
-- Ended by signing out, by a disabled account or a password reset: read on every request of
-- every server, so an ended session is refused everywhere at once.
CREATE TABLE sessions (
    id            TEXT   PRIMARY KEY,
    user_id       TEXT   NOT NULL,
    csrf_token    TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    ended_at      BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_created_at ON sessions (created_at);

-- Every sign-in attempt: when, the login given, the client's address, and the result (`ok`,
-- `bad_password`, `locked`, `disabled`, `unknown_login`).
CREATE TABLE sign_ins (
    id       TEXT   PRIMARY KEY,
    at       BIGINT NOT NULL,
    login    TEXT   NOT NULL,
    address  TEXT,
    result   TEXT   NOT NULL
);
CREATE INDEX sign_ins_at ON sign_ins (at);
