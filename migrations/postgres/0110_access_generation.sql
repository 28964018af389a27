-- The access generation: one counter bumped, in the same transaction, by every token
-- revocation and every new deployment. Each server reads it (by primary key) on every request
-- and drops what it has cached about tokens and about who may start which process when it
-- changed, so a revocation or a new start rule counts at once on every server sharing the
-- database.
CREATE TABLE access_generation (
    id          INTEGER PRIMARY KEY,
    generation  BIGINT  NOT NULL
);
INSERT INTO access_generation (id, generation) VALUES (1, 0);
