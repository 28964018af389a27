-- Sign-in through the city's identity provider (OpenID Connect, `engine/src/oidc.rs`). The same
-- text on SQLite and PostgreSQL.

-- An account the provider manages: `issuer sub` of the person there. Such an account has no
-- password (its `password_hash` is empty, which no password matches); NULL for local accounts.
ALTER TABLE users ADD COLUMN external_subject TEXT;
CREATE UNIQUE INDEX users_external_subject ON users (external_subject);

-- A sign-in begun at the provider and not yet finished: the `state` sent there, with the nonce
-- its ID token must carry and the PKCE verifier of the code. Kept in the database so that any
-- server sharing it can finish the sign-in; taken (deleted) by the callback, or pruned 10
-- minutes after it began.
CREATE TABLE oidc_logins (
    state       TEXT    PRIMARY KEY,
    nonce       TEXT    NOT NULL,
    verifier    TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX oidc_logins_expires_at ON oidc_logins (expires_at);
