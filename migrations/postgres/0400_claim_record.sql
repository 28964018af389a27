-- A claim is written to its instance's history when it ends (completed, failed, released), not
-- when it is made, so that a claim writes only its task row. These columns keep what that entry
-- needs: when the current claim was made, and who held the claim before it when its lease ran
-- out and the task was claimed again (recorded by that new claim).
ALTER TABLE tasks ADD COLUMN claimed_at BIGINT;
ALTER TABLE tasks ADD COLUMN lapsed_by TEXT;
ALTER TABLE tasks ADD COLUMN lapsed_at BIGINT;
