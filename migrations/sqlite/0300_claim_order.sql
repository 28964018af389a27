-- Claims walk a queue's open tasks oldest first and stop at the limit (see claim_tasks); the
-- old (queue, state, available_at) index made the planner sort every open task of the queue.
DROP INDEX tasks_claim;
CREATE INDEX tasks_queue_order ON tasks (queue, state, created_at, id);
