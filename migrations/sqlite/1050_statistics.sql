-- The cases a period registered, read by the statistics (`store::stats`): a range of one
-- process's registrations instead of the whole table.
-- Registration time first: with the process first, PostgreSQL's generic plan for the
-- business-key lookup of every start would walk this index and filter, instead of looking
-- the key up in `instances_business_key`.
CREATE INDEX instances_registered ON instances (created_at, process_key);
