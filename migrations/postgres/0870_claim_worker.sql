-- Who claimed a task is the authenticated caller (`locked_by`, `lapsed_by`: the API token's
-- name): it is what the history records and what `assignee completed_by(...)` compares. The
-- worker name a claim gives is only a label of the automated worker that holds the claim,
-- kept beside it for the history: of the current claim, and of the claim a new claim took the
-- task over from when its lease had run out.
ALTER TABLE tasks ADD COLUMN worker TEXT;
ALTER TABLE tasks ADD COLUMN lapsed_worker TEXT;
