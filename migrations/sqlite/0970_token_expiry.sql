-- Machine tokens expire: `expires_at` (unix millis) is when a token stops working; NULL never
-- (the tokens made before this keep working as they did). A token replaced by a rotation with
-- an overlap has `revoked_at` in the future: it works until then.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
