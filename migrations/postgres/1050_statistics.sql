-- The cases a period registered, read by the statistics (`store::stats`): a range of one
-- process's registrations instead of the whole table.
CREATE INDEX instances_registered ON instances (process_key, created_at);
