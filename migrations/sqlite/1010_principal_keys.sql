-- Who a task is assigned to, who holds its claim and who held the claim whose lease ran out,
-- by identity: the principal's key (`user:<id>`, `token:<id>`, `engine:<name>`) beside the
-- name people read. Display names are not unique (two people named 王芳), so claims and
-- completions compare keys. A row written before has no key and is compared by name.
ALTER TABLE tasks ADD COLUMN assignee_key TEXT;
ALTER TABLE tasks ADD COLUMN locked_by_key TEXT;
ALTER TABLE tasks ADD COLUMN lapsed_by_key TEXT;
