-- The tokens generation: one counter that every revocation bumps in the same transaction.
-- Each server reads it (by primary key) on every request and drops its cache of looked-up
-- tokens when it changed, so a revocation counts at once on every server sharing the database.
CREATE TABLE api_tokens_generation (
    id          INTEGER PRIMARY KEY,
    generation  BIGINT  NOT NULL
);
INSERT INTO api_tokens_generation (id, generation) VALUES (1, 0);
