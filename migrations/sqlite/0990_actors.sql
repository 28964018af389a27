-- The record names who acted as authenticated: an inbox acknowledgement keeps the principal's
-- id (a user's or a token's) beside its name. Empty for acknowledgements made before.
ALTER TABLE inbox ADD COLUMN acked_by_id TEXT;
