//! Storage of people's accounts (`users`), their sessions (`sessions`), the failed sign-ins of
//! logins without an account (`unknown_logins`) and the record of sign-in attempts
//! (`sign_ins`). The SQL is the same on both databases, run on whichever the pool is, as in
//! `store::tokens`. Only hashes are stored: of passwords (Argon2id) and of session secrets.

use super::StorePool;
use crate::error::EngineError;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A stored account (its password hash stays here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub login: String,
    pub name: String,
    pub roles: Vec<String>,
    pub org_units: Vec<String>,
    pub must_change_password: bool,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub failed_count: i64,
    pub locked_until: Option<i64>,
    /// Managed by the identity provider (OpenID Connect): no password here, roles and units
    /// taken from the provider at each sign-in.
    pub external: bool,
}

/// An account with its password hash, for a sign-in or a password change.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: UserRecord,
    pub password_hash: String,
}

/// A session looked up by its id, with its account and the access generation read in the
/// same statement.
#[derive(Debug, Clone)]
pub struct SessionLookup {
    pub user: UserRecord,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ended_at: Option<i64>,
    pub generation: i64,
}

/// A sign-in attempt as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInRecord {
    pub at: i64,
    pub login: String,
    pub address: Option<String>,
    pub result: String,
}

/// A sign-in begun at the identity provider: the `state` sent there, the nonce its ID token
/// must carry, the PKCE verifier of its code, and when it expires (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcLogin {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub expires_at: i64,
}

/// A new account, as the store takes it.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub login: &'a str,
    pub name: &'a str,
    pub roles: &'a [String],
    pub org_units: &'a [String],
    pub password_hash: &'a str,
}

/// Runs the same query text on the SQLite or the PostgreSQL pool.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            StorePool::Sqlite($p) => $body,
            StorePool::Postgres($p) => $body,
        }
    };
}

const USER_COLUMNS: &str = "id, login, name, roles, org_units, must_change_password, \
    disabled_at, created_at, failed_count, locked_until, external_subject";

macro_rules! user_record {
    ($row:expr) => {{
        let row = $row;
        UserRecord {
            id: row.try_get("id")?,
            login: row.try_get("login")?,
            name: row.try_get("name")?,
            roles: list(&row.try_get::<String, _>("roles")?),
            org_units: list(&row.try_get::<String, _>("org_units")?),
            must_change_password: row.try_get::<i32, _>("must_change_password")? != 0,
            disabled_at: row.try_get("disabled_at")?,
            created_at: row.try_get("created_at")?,
            failed_count: i64::from(row.try_get::<i32, _>("failed_count")?),
            locked_until: row.try_get("locked_until")?,
            external: row
                .try_get::<Option<String>, _>("external_subject")?
                .is_some(),
        }
    }};
}

fn list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

fn to_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Longest login kept in the record of sign-ins (what was typed may be anything).
const RECORDED_LOGIN_CHARS: usize = 64;

/// Accounts, sessions and sign-ins, over the engine's pool.
#[derive(Debug, Clone)]
pub struct AccountStore {
    pool: StorePool,
}

impl AccountStore {
    pub fn new(pool: StorePool) -> AccountStore {
        AccountStore { pool }
    }

    /// Stores a new account; 409 when the login is taken.
    pub async fn create(
        &self,
        new: &NewUser<'_>,
        now: DateTime<Utc>,
    ) -> Result<UserRecord, EngineError> {
        let record = UserRecord {
            id: uuid::Uuid::now_v7().to_string(),
            login: new.login.to_string(),
            name: new.name.to_string(),
            roles: new.roles.to_vec(),
            org_units: new.org_units.to_vec(),
            must_change_password: true,
            disabled_at: None,
            created_at: now.timestamp_millis(),
            failed_count: 0,
            locked_until: None,
            external: false,
        };
        let sql = "INSERT INTO users (id, login, name, roles, org_units, password_hash, \
                   must_change_password, created_at, failed_count) \
                   VALUES ($1, $2, $3, $4, $5, $6, 1, $7, 0)";
        // Failures counted while the login named no account do not carry over to it.
        let forget = "DELETE FROM unknown_logins WHERE login = $1";
        let (roles, org_units) = (to_json(&record.roles), to_json(&record.org_units));
        on_pool!(&self.pool, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(sql)
                .bind(&record.id)
                .bind(&record.login)
                .bind(&record.name)
                .bind(&roles)
                .bind(&org_units)
                .bind(new.password_hash)
                .bind(record.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(db) if db.is_unique_violation() => EngineError::conflict(
                        format!("the login `{}` is taken; pick another one", new.login),
                    ),
                    _ => e.into(),
                })?;
            sqlx::query(forget)
                .bind(&record.login)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(record)
    }

    /// The account with this login.
    pub async fn by_login(&self, login: &str) -> Result<Option<UserRecord>, EngineError> {
        Ok(self.credentials(login).await?.map(|c| c.user))
    }

    /// The account with this id.
    pub async fn by_id(&self, id: &str) -> Result<Option<UserRecord>, EngineError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let sql = sqlx::AssertSqlSafe(sql);
        Ok(on_pool!(&self.pool, |p| {
            match sqlx::query(sql).bind(id).fetch_optional(p).await? {
                Some(row) => Some(user_record!(row)),
                None => None,
            }
        }))
    }

    /// The account with this login, with its password hash.
    pub async fn credentials(&self, login: &str) -> Result<Option<UserCredentials>, EngineError> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE login = $1");
        let sql = sqlx::AssertSqlSafe(sql);
        Ok(on_pool!(&self.pool, |p| {
            match sqlx::query(sql).bind(login).fetch_optional(p).await? {
                Some(row) => Some(UserCredentials {
                    password_hash: row.try_get("password_hash")?,
                    user: user_record!(row),
                }),
                None => None,
            }
        }))
    }

    /// Every account, by login.
    pub async fn list(&self) -> Result<Vec<UserRecord>, EngineError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY login");
        let sql = sqlx::AssertSqlSafe(sql);
        let mut out = Vec::new();
        on_pool!(&self.pool, |p| {
            for row in sqlx::query(sql).fetch_all(p).await? {
                out.push(user_record!(row));
            }
        });
        Ok(out)
    }

    /// A failed sign-in of the account: its count goes up, and the `max`-th in a row locks it
    /// until `now + lockout` (the count starts again then). Returns until when it is locked,
    /// if it is.
    pub async fn sign_in_failed(
        &self,
        id: &str,
        now: DateTime<Utc>,
        max: i32,
        lockout: chrono::TimeDelta,
    ) -> Result<Option<i64>, EngineError> {
        let sql = "UPDATE users SET \
                   failed_count = CASE WHEN failed_count + 1 >= $2 THEN 0 ELSE failed_count + 1 END, \
                   locked_until = CASE WHEN failed_count + 1 >= $2 THEN $3 ELSE locked_until END \
                   WHERE id = $1 RETURNING locked_until";
        let until = (now + lockout).timestamp_millis();
        let locked: Option<i64> = on_pool!(&self.pool, |p| {
            match sqlx::query(sql)
                .bind(id)
                .bind(max)
                .bind(until)
                .fetch_optional(p)
                .await?
            {
                Some(row) => row.try_get("locked_until")?,
                None => None,
            }
        });
        Ok(locked.filter(|&t| t > now.timestamp_millis()))
    }

    /// A successful sign-in: the count of failures starts again.
    pub async fn sign_in_succeeded(&self, id: &str) -> Result<(), EngineError> {
        let sql = "UPDATE users SET failed_count = 0, locked_until = NULL WHERE id = $1";
        on_pool!(&self.pool, |p| {
            sqlx::query(sql).bind(id).execute(p).await?;
        });
        Ok(())
    }

    /// Until when a login that names no account is locked, if it is at `now`.
    pub async fn unknown_login_locked(
        &self,
        login: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, EngineError> {
        let sql = "SELECT locked_until FROM unknown_logins WHERE login = $1";
        let until: Option<i64> = on_pool!(&self.pool, |p| {
            match sqlx::query(sql).bind(login).fetch_optional(p).await? {
                Some(row) => row.try_get("locked_until")?,
                None => None,
            }
        });
        Ok(until.filter(|&t| t > now.timestamp_millis()))
    }

    /// A failed sign-in of a login that names no account, counted as an account's is
    /// ([`AccountStore::sign_in_failed`]).
    pub async fn unknown_login_failed(
        &self,
        login: &str,
        now: DateTime<Utc>,
        max: i32,
        lockout: chrono::TimeDelta,
    ) -> Result<Option<i64>, EngineError> {
        let sql = "INSERT INTO unknown_logins (login, failed_count, locked_until, last_at) \
                   VALUES ($1, CASE WHEN 1 >= $3 THEN 0 ELSE 1 END, \
                           CASE WHEN 1 >= $3 THEN $4 END, $2) \
                   ON CONFLICT (login) DO UPDATE SET \
                   failed_count = CASE WHEN unknown_logins.failed_count + 1 >= $3 THEN 0 \
                                  ELSE unknown_logins.failed_count + 1 END, \
                   locked_until = CASE WHEN unknown_logins.failed_count + 1 >= $3 THEN $4 \
                                  ELSE unknown_logins.locked_until END, \
                   last_at = $2 \
                   RETURNING locked_until";
        let at = now.timestamp_millis();
        let until = (now + lockout).timestamp_millis();
        let locked: Option<i64> = on_pool!(&self.pool, |p| {
            sqlx::query(sql)
                .bind(login)
                .bind(at)
                .bind(max)
                .bind(until)
                .fetch_one(p)
                .await?
                .try_get("locked_until")?
        });
        Ok(locked.filter(|&t| t > at))
    }

    /// Records a sign-in attempt (the login cut to a few dozen characters).
    pub async fn record_sign_in(
        &self,
        login: &str,
        address: Option<&str>,
        result: crate::accounts::SignInResult,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let sql = "INSERT INTO sign_ins (id, at, login, address, result) \
                   VALUES ($1, $2, $3, $4, $5)";
        let login: String = match login.char_indices().nth(RECORDED_LOGIN_CHARS) {
            None => login.to_string(),
            Some((end, _)) => format!("{}…", &login[..end]),
        };
        let id = uuid::Uuid::now_v7().to_string();
        on_pool!(&self.pool, |p| {
            sqlx::query(sql)
                .bind(&id)
                .bind(now.timestamp_millis())
                .bind(&login)
                .bind(address)
                .bind(result.as_str())
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Sign-in attempts, newest first: `limit` of them after skipping `offset`.
    pub async fn sign_ins(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<SignInRecord>, EngineError> {
        let sql = "SELECT at, login, address, result FROM sign_ins \
                   ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2";
        let mut out = Vec::new();
        on_pool!(&self.pool, |p| {
            for row in sqlx::query(sql)
                .bind(limit)
                .bind(offset)
                .fetch_all(p)
                .await?
            {
                out.push(SignInRecord {
                    at: row.try_get("at")?,
                    login: row.try_get("login")?,
                    address: row.try_get("address")?,
                    result: row.try_get("result")?,
                });
            }
        });
        Ok(out)
    }

    /// Opens a session of the account.
    pub async fn open_session(
        &self,
        user_id: &str,
        session: &crate::accounts::NewSession,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let sql = "INSERT INTO sessions (id, user_id, csrf_token, created_at, last_seen_at) \
                   VALUES ($1, $2, $3, $4, $4)";
        on_pool!(&self.pool, |p| {
            sqlx::query(sql)
                .bind(&session.id)
                .bind(user_id)
                .bind(&session.csrf)
                .bind(now.timestamp_millis())
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// The session with this id, its account, and the access generation: one statement, so
    /// that a request of a session costs one round trip.
    pub async fn session(&self, id: &str) -> Result<Option<SessionLookup>, EngineError> {
        let sql = "SELECT s.csrf_token, s.created_at AS session_created_at, s.last_seen_at, \
                   s.ended_at, u.id, u.login, u.name, u.roles, u.org_units, \
                   u.must_change_password, u.disabled_at, u.created_at, u.failed_count, \
                   u.locked_until, u.external_subject, \
                   (SELECT generation FROM access_generation WHERE id = 1) AS generation \
                   FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1";
        Ok(on_pool!(&self.pool, |p| {
            match sqlx::query(sql).bind(id).fetch_optional(p).await? {
                Some(row) => Some(SessionLookup {
                    csrf_token: row.try_get("csrf_token")?,
                    created_at: row.try_get("session_created_at")?,
                    last_seen_at: row.try_get("last_seen_at")?,
                    ended_at: row.try_get("ended_at")?,
                    generation: row.try_get("generation")?,
                    user: user_record!(row),
                }),
                None => None,
            }
        }))
    }

    /// Notes that the session was used at `now`.
    pub async fn touch_session(&self, id: &str, now: DateTime<Utc>) -> Result<(), EngineError> {
        let sql = "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND ended_at IS NULL";
        on_pool!(&self.pool, |p| {
            sqlx::query(sql)
                .bind(id)
                .bind(now.timestamp_millis())
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Ends the session (signing out, or found expired); `false` when it had ended already.
    pub async fn end_session(&self, id: &str, now: DateTime<Utc>) -> Result<bool, EngineError> {
        let sql = "UPDATE sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL";
        Ok(on_pool!(&self.pool, |p| sqlx::query(sql)
            .bind(id)
            .bind(now.timestamp_millis())
            .execute(p)
            .await?
            .rows_affected())
            > 0)
    }

    /// Disables the account with this login and ends its sessions; `None` when there is no
    /// such account. An account disabled already stays as it was.
    pub async fn disable(
        &self,
        login: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserRecord>, EngineError> {
        let disable = "UPDATE users SET disabled_at = $2 WHERE login = $1 AND disabled_at IS NULL";
        let at = now.timestamp_millis();
        on_pool!(&self.pool, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(disable)
                .bind(login)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(END_SESSIONS)
                .bind(login)
                .bind(at)
                .bind(None::<&str>)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        self.by_login(login).await
    }

    /// Enables a disabled account again: it may sign in (its old sessions stay ended).
    pub async fn enable(&self, login: &str) -> Result<Option<UserRecord>, EngineError> {
        let enable = "UPDATE users SET disabled_at = NULL, failed_count = 0, locked_until = NULL \
                      WHERE login = $1";
        on_pool!(&self.pool, |p| {
            sqlx::query(enable).bind(login).execute(p).await?;
        });
        self.by_login(login).await
    }

    /// Gives the account a new password hash. `one_time`: an administrator's reset (the user
    /// must set their own at the next sign-in; the lock is lifted; every session ends);
    /// otherwise the user's own change (the sessions but `keep` end). `None` when there is no
    /// such account.
    pub async fn set_password(
        &self,
        login: &str,
        hash: &str,
        one_time: bool,
        keep: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<UserRecord>, EngineError> {
        let sql = "UPDATE users SET password_hash = $2, must_change_password = $3, \
                   failed_count = CASE WHEN $3 = 1 THEN 0 ELSE failed_count END, \
                   locked_until = CASE WHEN $3 = 1 THEN NULL ELSE locked_until END \
                   WHERE login = $1";
        let at = now.timestamp_millis();
        let flag = i32::from(one_time);
        let found = on_pool!(&self.pool, |p| {
            let mut tx = p.begin().await?;
            let changed = sqlx::query(sql)
                .bind(login)
                .bind(hash)
                .bind(flag)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(END_SESSIONS)
                .bind(login)
                .bind(at)
                .bind(keep)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            changed > 0
        });
        if !found {
            return Ok(None);
        }
        self.by_login(login).await
    }

    /// Sets the account's roles and organisation units; `None` when there is no such account.
    /// Its sessions carry them from their next request on.
    pub async fn set_roles(
        &self,
        login: &str,
        roles: &[String],
        org_units: &[String],
    ) -> Result<Option<UserRecord>, EngineError> {
        let sql = "UPDATE users SET roles = $2, org_units = $3 WHERE login = $1";
        let (roles, org_units) = (to_json(roles), to_json(org_units));
        let changed = on_pool!(&self.pool, |p| sqlx::query(sql)
            .bind(login)
            .bind(&roles)
            .bind(&org_units)
            .execute(p)
            .await?
            .rows_affected());
        if changed == 0 {
            return Ok(None);
        }
        self.by_login(login).await
    }

    /// Keeps a sign-in begun at the identity provider until `expires_at`, and forgets those
    /// begun long enough ago to have expired.
    pub async fn begin_oidc_login(
        &self,
        begun: &OidcLogin,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let prune = "DELETE FROM oidc_logins WHERE expires_at <= $1";
        let sql = "INSERT INTO oidc_logins (state, nonce, verifier, expires_at) \
                   VALUES ($1, $2, $3, $4)";
        on_pool!(&self.pool, |p| {
            sqlx::query(prune)
                .bind(now.timestamp_millis())
                .execute(p)
                .await?;
            sqlx::query(sql)
                .bind(&begun.state)
                .bind(&begun.nonce)
                .bind(&begun.verifier)
                .bind(begun.expires_at)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Takes the sign-in begun with `state` (once: a second callback with it finds nothing),
    /// expired or not.
    pub async fn take_oidc_login(&self, state: &str) -> Result<Option<OidcLogin>, EngineError> {
        let sql = "DELETE FROM oidc_logins WHERE state = $1 \
                   RETURNING state, nonce, verifier, expires_at";
        Ok(on_pool!(&self.pool, |p| {
            match sqlx::query(sql).bind(state).fetch_optional(p).await? {
                Some(row) => Some(OidcLogin {
                    state: row.try_get("state")?,
                    nonce: row.try_get("nonce")?,
                    verifier: row.try_get("verifier")?,
                    expires_at: row.try_get("expires_at")?,
                }),
                None => None,
            }
        }))
    }

    /// The account the identity provider manages for `subject` (`issuer sub`), made on its
    /// first sign-in, its name, roles and units set anew from the provider's on every one.
    /// It has no password. 409 when a local account has the login.
    pub async fn upsert_external(
        &self,
        subject: &str,
        new: &NewUser<'_>,
        now: DateTime<Utc>,
    ) -> Result<UserRecord, EngineError> {
        let update = "UPDATE users SET name = $2, roles = $3, org_units = $4 \
                      WHERE external_subject = $1 RETURNING id";
        let insert = "INSERT INTO users (id, login, name, roles, org_units, password_hash, \
                      must_change_password, created_at, failed_count, external_subject) \
                      VALUES ($1, $2, $3, $4, $5, '', 0, $6, 0, $7)";
        let (roles, org_units) = (to_json(new.roles), to_json(new.org_units));
        let id = uuid::Uuid::now_v7().to_string();
        let id: String = on_pool!(&self.pool, |p| {
            let updated = sqlx::query(update)
                .bind(subject)
                .bind(new.name)
                .bind(&roles)
                .bind(&org_units)
                .fetch_optional(p)
                .await?;
            match updated {
                Some(row) => row.try_get("id")?,
                None => {
                    sqlx::query(insert)
                        .bind(&id)
                        .bind(new.login)
                        .bind(new.name)
                        .bind(&roles)
                        .bind(&org_units)
                        .bind(now.timestamp_millis())
                        .bind(subject)
                        .execute(p)
                        .await
                        .map_err(|e| match &e {
                            sqlx::Error::Database(db) if db.is_unique_violation() => {
                                EngineError::conflict(format!(
                                    "the login `{}` belongs to an account of this server",
                                    new.login
                                ))
                            }
                            _ => e.into(),
                        })?;
                    id
                }
            }
        });
        self.by_id(&id)
            .await?
            .ok_or_else(|| EngineError::conflict("the account was deleted meanwhile"))
    }

    /// Deletes the sign-in records and the counts of unknown logins last touched before
    /// `before`, and the sessions begun before `sessions_before`; returns how many rows.
    pub async fn prune(
        &self,
        before: DateTime<Utc>,
        sessions_before: DateTime<Utc>,
    ) -> Result<u64, EngineError> {
        let mut deleted = 0;
        for (sql, at) in [
            ("DELETE FROM sign_ins WHERE at < $1", before),
            ("DELETE FROM unknown_logins WHERE last_at < $1", before),
            (
                "DELETE FROM sessions WHERE created_at < $1",
                sessions_before,
            ),
        ] {
            deleted += on_pool!(&self.pool, |p| sqlx::query(sql)
                .bind(at.timestamp_millis())
                .execute(p)
                .await?
                .rows_affected());
        }
        Ok(deleted)
    }
}

/// Ends the open sessions of the account with `login` (`$1`) at `$2`, but the one `$3`.
const END_SESSIONS: &str = "UPDATE sessions SET ended_at = $2 WHERE ended_at IS NULL \
    AND user_id = (SELECT id FROM users WHERE login = $1) AND ($3 IS NULL OR id <> $3)";
