-- Finding a case and the trail of its personal data read unmasked (docs/api.md, "Finding a
-- case"; docs/security.md, "Personal data").

-- The searchable variables of each case, as its process model marks them: a variable declared
-- `personal(name)` by its text (trimmed, lower-cased), one declared `personal(id_number)` only
-- by a keyed hash (`<key id>:<hex HMAC-SHA256>` under the search key), never in clear. One row
-- per case and variable, written in the transaction that sets the variable.
CREATE TABLE case_search (
    instance_id TEXT NOT NULL,
    var         TEXT NOT NULL,
    -- name | id_number
    kind        TEXT NOT NULL,
    value       TEXT,
    value_hash  TEXT,
    PRIMARY KEY (instance_id, var)
);
CREATE INDEX case_search_hash ON case_search (value_hash) WHERE value_hash IS NOT NULL;

-- Server settings shared by every server on the database: the search key when none is given
-- outside it (`search_key`), and the key the search table was last filled with
-- (`search_indexed`).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Every read of a case's personal data unmasked: who (a token or a person: its kind, id and
-- name), when, which case, from which address.
CREATE TABLE personal_data_reads (
    id             TEXT   PRIMARY KEY,
    at             BIGINT NOT NULL,
    instance_id    TEXT   NOT NULL,
    -- token | user
    principal_kind TEXT   NOT NULL,
    -- the token's id, or the user's
    principal_id   TEXT   NOT NULL,
    principal      TEXT   NOT NULL,
    address        TEXT
);
CREATE INDEX personal_data_reads_instance ON personal_data_reads (instance_id, at);
CREATE INDEX personal_data_reads_at ON personal_data_reads (at);
