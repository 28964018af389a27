-- The engine names no kind of organisation unit: what limits a token is its organisation units
-- (the process says which variable names a case's unit, as `per <variable>` on a role).
-- Existing tokens keep their units under the new name.
ALTER TABLE api_tokens RENAME COLUMN streets TO org_units;

-- Notices to the person a case concerns are routed to the `subject` inbox (the process
-- language writes `notify applicant`). Rows written before under the old name keep their
-- meaning: pending notices are delivered there, delivered ones are read there.
UPDATE outbox SET channel = 'subject' WHERE channel = 'applicant';
UPDATE inbox SET recipient = 'subject' WHERE recipient = 'applicant';
