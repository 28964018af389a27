-- Claims also take tasks whose lease ran out (see claim_statement). Through tasks_queue_order
-- that branch read every claimed task of the queue to test lock_expires_at: a claim cost
-- 2.0 ms with 10,000 tasks held in the queue, 0.3 ms with this index (SQLite).
CREATE INDEX tasks_lease ON tasks (queue, state, lock_expires_at);
