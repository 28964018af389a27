-- A claim reads a queue's open tasks (tasks_queue_order) and its claimed tasks whose lease ran
-- out (tasks_lease), never the others, and its statements name the state as a literal. Indexed
-- whole, every task kept an entry in both indexes all its life, and each change of state
-- (claimed, completed) moved both: ten index writes per task. Indexing only the rows each
-- branch reads leaves four: in at creation, open to claimed, out at completion.
DROP INDEX tasks_queue_order;
DROP INDEX tasks_lease;
CREATE INDEX tasks_queue_order ON tasks (queue, created_at, id) WHERE state = 'open';
CREATE INDEX tasks_lease ON tasks (queue, lock_expires_at) WHERE state = 'claimed';
