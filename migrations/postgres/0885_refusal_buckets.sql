-- Refused calls are aggregated: one row per client address, token, status, reason and minute,
-- with how many calls it stands for (`hits`), so a flood of refused calls adds rows per minute,
-- not per call. Existing rows keep their meaning: each is one call (hits 1, no bucket).
ALTER TABLE access_refusals ADD COLUMN address TEXT;
ALTER TABLE access_refusals ADD COLUMN hits BIGINT NOT NULL DEFAULT 1;
ALTER TABLE access_refusals ADD COLUMN bucket TEXT;
CREATE UNIQUE INDEX access_refusals_bucket ON access_refusals (bucket);
