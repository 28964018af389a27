-- History in packs: one row per run of an instance's entries written together, instead of one
-- row per entry (`engine/src/store/history.rs`). An event writes several entries at once; as
-- separate rows they were more than half of a case's row writes. `seq` is the pack's first
-- entry's number; `entries` a JSON array of the entries (at, actor, node, kind, text, data,
-- prev_hash, hash), entry k numbered seq + k; `first_at` the earliest of their times, which
-- differ by at most a day (the ledger's time ranges). Hashes are unchanged: `yimen verify`
-- checks the same chain. Existing entries become packs of one.
CREATE TABLE history_packs (
    instance_id TEXT   NOT NULL,
    seq         BIGINT NOT NULL,
    first_at    BIGINT NOT NULL,
    entries     TEXT   NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
INSERT INTO history_packs (instance_id, seq, first_at, entries)
SELECT instance_id, seq, at,
       json_build_array(json_build_object(
           'at', at, 'actor', actor, 'node', node, 'kind', kind, 'text', text, 'data', data,
           'prev_hash', prev_hash, 'hash', hash))::text
FROM history;
DROP TABLE history;
ALTER TABLE history_packs RENAME TO history;
ALTER INDEX history_packs_pkey RENAME TO history_pkey;
CREATE INDEX history_first_at ON history (first_at);
-- A pack of a longer process is a few kB of JSON. Past about 2 kB PostgreSQL would compress
-- each one as it is written (CPU on the hot path, for rows that are rarely read); this keeps
-- rows up to a page as they are.
ALTER TABLE history SET (toast_tuple_target = 8160);
