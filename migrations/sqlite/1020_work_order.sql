-- A person's open work, most urgent first: by due time (tasks without one last), then by
-- creation. The my-work page reads a page of it with `state = 'open'` written out, so the
-- planner walks this index in order and stops at the page instead of sorting every open task.
CREATE INDEX tasks_open_urgency
    ON tasks (COALESCE(due_at, 9223372036854775807), created_at, id)
    WHERE state = 'open';
