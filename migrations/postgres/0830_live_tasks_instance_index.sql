-- A task's instance is looked up only for its live tasks (open, claimed, failed: the tasks a
-- completion or an event locks). Indexed whole, every task kept its entry all its life, and a
-- completion (an update that is never HOT: the state is in the queue indexes' predicates)
-- wrote a new one. Now a completed or cancelled task leaves this index. PostgreSQL only: a
-- SQLite update leaves an index alone when none of its columns change, so there a partial
-- index would cost a delete at each completion instead of saving a write.
DROP INDEX tasks_instance;
CREATE INDEX tasks_instance ON tasks (instance_id) WHERE state IN ('open', 'claimed', 'failed');
