//! Storage of API access tokens (hashes only) and of refused calls (table `access_refusals`).
//! The SQL is the same on both databases; [`on_pool!`] runs it on whichever the pool is.

use super::StorePool;
use super::sqlite_direct;
use super::sqlite_readers::{self, Readers};
use crate::auth::{Principal, Role, TokenValidity};
use crate::error::EngineError;
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::sync::Arc;

/// A stored token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub org_units: Vec<String>,
    pub created_at: i64,
    /// When it was revoked; in the future for a token replaced by a rotation with an overlap
    /// (it works until then).
    pub revoked_at: Option<i64>,
    /// When it stops working; `None`: it does not expire.
    pub expires_at: Option<i64>,
}

impl TokenRecord {
    /// Until when it works.
    pub fn validity(&self) -> TokenValidity {
        TokenValidity {
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// A token made by a rotation, and the one it replaces (revoked now, or at the end of the
/// overlap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub new: TokenRecord,
    pub old: TokenRecord,
}

/// A refused call as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalRecord {
    pub at: i64,
    pub token_name: Option<String>,
    pub method: String,
    pub path: String,
    pub status: i64,
    pub reason: String,
    /// The client's address, when known.
    pub address: Option<String>,
    /// Calls this row stands for: the refusals of one address, token, status and reason in
    /// one minute are one row (`at` the last of them).
    pub hits: i64,
}

/// Longest path kept of a refused call (the rest is cut, marked with `…`).
pub const REFUSAL_PATH_CHARS: usize = 256;
/// Longest reason and method kept of a refused call.
const REFUSAL_TEXT_CHARS: usize = 512;

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// What a token hash stands for: its holder, and until when it works (revoked and expired
/// tokens are found too; the caller compares [`TokenValidity`] with its clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLookup {
    pub principal: Principal,
    pub validity: TokenValidity,
}

/// Tokens and refusals, over the engine's pool.
#[derive(Clone)]
pub struct TokenStore {
    pool: StorePool,
    /// SQLite in a file: the generation is read on the caller's thread (`sqlite_readers`).
    readers: Option<Arc<Readers>>,
    /// PostgreSQL: the connection the generation is read on, kept between reads (they come one
    /// at a time, `api::access::GenerationReads`): a pooled connection is pinged by sqlx each
    /// time it goes back, a second round trip per read.
    held: Arc<tokio::sync::Mutex<crate::store::Held>>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("pool", &self.pool)
            .field("reads_directly", &self.readers.is_some())
            .finish()
    }
}

/// The access generation's one row.
pub(crate) const GENERATION_SQL: &str = "SELECT generation FROM access_generation WHERE id = 1";

/// Runs the same query text on the SQLite or the PostgreSQL pool.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            StorePool::Sqlite($p) => $body,
            StorePool::Postgres($p) => $body,
        }
    };
}

macro_rules! token_record {
    ($row:expr) => {{
        let row = $row;
        TokenRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            roles: list(&row.try_get::<String, _>("roles")?),
            org_units: list(&row.try_get::<String, _>("org_units")?),
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
            expires_at: row.try_get("expires_at")?,
        }
    }};
}

/// The columns of a [`TokenRecord`], for `concat!`.
macro_rules! record_columns {
    () => {
        "id, name, roles, org_units, created_at, revoked_at, expires_at"
    };
}

fn list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

fn to_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Bumps the access generation (with a revocation, in its transaction).
const BUMP_GENERATION: &str =
    "UPDATE access_generation SET generation = generation + 1 WHERE id = 1";

/// Inserts `record` with the hash of its secret, on either database (`conn`: a connection or
/// a transaction's).
macro_rules! insert_token {
    ($conn:expr, $record:expr, $hash:expr) => {{
        let record: &TokenRecord = $record;
        let sql = "INSERT INTO api_tokens \
                   (id, name, hash, roles, org_units, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        sqlx::query(sql)
            .bind(&record.id)
            .bind(&record.name)
            .bind($hash)
            .bind(to_json(&record.roles))
            .bind(to_json(&record.org_units))
            .bind(record.created_at)
            .bind(record.expires_at)
            .execute($conn)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => EngineError::conflict(
                    format!("an active token is already named `{}`", record.name),
                ),
                _ => e.into(),
            })
            .map(|_| ())
    }};
}

impl TokenStore {
    pub fn new(pool: StorePool) -> TokenStore {
        TokenStore {
            pool,
            readers: None,
            held: Default::default(),
        }
    }

    /// The same, reading the access generation on the store's kept read connections when it
    /// has them (SQLite in a file).
    pub fn of(store: &super::Store) -> TokenStore {
        TokenStore {
            pool: store.pool().clone(),
            readers: store.readers().cloned(),
            held: Default::default(),
        }
    }

    /// Whether [`TokenStore::generation`] reads on the caller's thread, in microseconds: then
    /// a request needs no share in another's read (`api::access::GenerationReads`).
    pub fn reads_directly(&self) -> bool {
        self.readers.is_some()
    }

    /// Tokens ever created (revoked ones included): 0 only on a fresh database.
    pub async fn count(&self) -> Result<i64, EngineError> {
        let sql = "SELECT COUNT(*) AS n FROM api_tokens";
        let n: i64 = on_pool!(&self.pool, |p| sqlx::query(sql)
            .fetch_one(p)
            .await?
            .try_get("n")?);
        Ok(n)
    }

    /// Stores a new token by its hash, working until `expires_at` (`None`: no expiry).
    pub async fn create(
        &self,
        name: &str,
        roles: &[Role],
        org_units: &[String],
        hash: &str,
        now: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<TokenRecord, EngineError> {
        let record = TokenRecord {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            roles: roles.iter().map(Role::to_string).collect(),
            org_units: org_units.to_vec(),
            created_at: now.timestamp_millis(),
            revoked_at: None,
            expires_at: expires_at.map(|t| t.timestamp_millis()),
        };
        on_pool!(&self.pool, |p| {
            insert_token!(p, &record, hash)?;
        });
        Ok(record)
    }

    /// The token with this hash, whether it works or not.
    pub async fn find(&self, hash: &str) -> Result<Option<TokenLookup>, EngineError> {
        let sql = concat!(
            "SELECT ",
            record_columns!(),
            " FROM api_tokens WHERE hash = $1"
        );
        let record: Option<TokenRecord> = on_pool!(&self.pool, |p| {
            match sqlx::query(sql).bind(hash).fetch_optional(p).await? {
                Some(row) => Some(token_record!(row)),
                None => None,
            }
        });
        Ok(record.map(|r| TokenLookup {
            validity: r.validity(),
            principal: Principal {
                kind: crate::auth::PrincipalKind::Token,
                id: r.id,
                name: r.name,
                // Roles were checked when the token was made; an unreadable one grants nothing.
                roles: r.roles.iter().filter_map(|x| Role::parse(x).ok()).collect(),
                org_units: r.org_units,
                // What its roles may do beyond their queues the deployed processes say:
                // `auth::RoleDuties::apply`.
                oversees: false,
                informs_subject: false,
                only_oversees: false,
                reassigns: Vec::new(),
            },
        }))
    }

    /// The access generation: a counter every revocation and every new deployment bumps (one
    /// row, read by primary key). A server trusts what it cached about tokens and start rules
    /// only while this has not changed.
    pub async fn generation(&self) -> Result<i64, EngineError> {
        sqlite_readers::read_or(
            self.readers.as_deref(),
            sqlite_direct::access_generation,
            || self.generation_through_sqlx(),
        )
        .await
    }

    async fn generation_through_sqlx(&self) -> Result<i64, EngineError> {
        let sql = GENERATION_SQL;
        let row = match &self.pool {
            StorePool::Sqlite(p) => sqlx::query(sql)
                .fetch_optional(p)
                .await?
                .map(|row| row.try_get("generation")),
            StorePool::Postgres(p) => {
                let mut held = self.held.lock().await;
                let mut conn = held.connection(p).await?;
                // A connection that failed goes back to the pool, which checks it.
                let row = sqlx::query(sql).fetch_optional(&mut *conn).await?;
                held.keep(conn);
                row.map(|row| row.try_get("generation"))
            }
        };
        let generation: Option<i64> = row.transpose()?;
        // The migration inserts the row; without it no cache entry can be trusted for long,
        // which a constant does not express, so report the database as broken.
        generation.ok_or_else(|| {
            EngineError::Internal(
                "the row of access_generation is missing; the schema (migrations/) inserts it"
                    .into(),
            )
        })
    }

    /// The token of this name that is not revoked (it may have expired).
    pub async fn find_by_name(&self, name: &str) -> Result<Option<TokenRecord>, EngineError> {
        let sql = concat!(
            "SELECT ",
            record_columns!(),
            " FROM api_tokens WHERE name = $1 AND revoked_at IS NULL"
        );
        Ok(on_pool!(&self.pool, |p| {
            match sqlx::query(sql).bind(name).fetch_optional(p).await? {
                Some(row) => Some(token_record!(row)),
                None => None,
            }
        }))
    }

    /// Revokes, now, the token with this name or id that works or would still work (by name
    /// during a rotation's overlap: the new token and the one it replaces); the newest of
    /// them, `None` if there is none.
    pub async fn revoke(
        &self,
        name_or_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, EngineError> {
        let sql = concat!(
            "UPDATE api_tokens SET revoked_at = $1 \
             WHERE (name = $2 OR id = $2) AND (revoked_at IS NULL OR revoked_at > $1) \
             RETURNING ",
            record_columns!()
        );
        let at = now.timestamp_millis();
        let mut revoked = Vec::new();
        on_pool!(&self.pool, |p| {
            // One transaction: no server can see the token revoked without the new generation.
            let mut tx = p.begin().await?;
            for row in sqlx::query(sql)
                .bind(at)
                .bind(name_or_id)
                .fetch_all(&mut *tx)
                .await?
            {
                revoked.push(token_record!(row));
            }
            if !revoked.is_empty() {
                sqlx::query(BUMP_GENERATION).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(revoked
            .into_iter()
            .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id))))
    }

    /// Gives the token of this name or id that is not revoked (expired or not) a new secret:
    /// a new token of the same name, roles and organisation units, working until
    /// `expires_at(old)`, replaces it; the old one is revoked at `old_until` (now, or the end
    /// of an overlap during which both work). One transaction, which bumps the access
    /// generation. `None` if there is no such token.
    pub async fn rotate(
        &self,
        name_or_id: &str,
        hash: &str,
        now: DateTime<Utc>,
        old_until: DateTime<Utc>,
        expires_at: impl FnOnce(&TokenRecord) -> Option<DateTime<Utc>>,
    ) -> Result<Option<Rotated>, EngineError> {
        // Revoked first, so that the new row may take its name (unique among rows not
        // revoked); a rotation running at the same time waits for this row, then finds it
        // revoked.
        let retire = concat!(
            "UPDATE api_tokens SET revoked_at = $1 \
             WHERE (name = $2 OR id = $2) AND revoked_at IS NULL RETURNING ",
            record_columns!()
        );
        let until = old_until.timestamp_millis();
        let rotated = on_pool!(&self.pool, |p| {
            let mut tx = p.begin().await?;
            let old = match sqlx::query(retire)
                .bind(until)
                .bind(name_or_id)
                .fetch_optional(&mut *tx)
                .await?
            {
                Some(row) => token_record!(row),
                None => return Ok(None),
            };
            let new = TokenRecord {
                id: uuid::Uuid::now_v7().to_string(),
                created_at: now.timestamp_millis(),
                revoked_at: None,
                expires_at: expires_at(&old).map(|t| t.timestamp_millis()),
                ..old.clone()
            };
            insert_token!(&mut *tx, &new, hash)?;
            sqlx::query(BUMP_GENERATION).execute(&mut *tx).await?;
            tx.commit().await?;
            Rotated { new, old }
        });
        Ok(Some(rotated))
    }

    /// Every token, oldest first.
    pub async fn list(&self) -> Result<Vec<TokenRecord>, EngineError> {
        let sql = concat!(
            "SELECT ",
            record_columns!(),
            " FROM api_tokens ORDER BY created_at, id"
        );
        let mut out = Vec::new();
        on_pool!(&self.pool, |p| {
            for row in sqlx::query(sql).fetch_all(p).await? {
                out.push(token_record!(row));
            }
        });
        Ok(out)
    }

    /// Records a refused call (from an unknown address).
    pub async fn record_refusal(
        &self,
        principal: Option<&Principal>,
        method: &str,
        path: &str,
        status: u16,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        self.record_refusal_from(principal, None, method, path, status, reason, now)
            .await
    }

    /// Records a refused call: added to the row of its address, token, status, reason and
    /// minute (the path and reason cut to a few hundred characters; the row keeps the first
    /// path), so a flood of refusals grows the table by a row a minute, not a row a call.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_refusal_from(
        &self,
        principal: Option<&Principal>,
        address: Option<&str>,
        method: &str,
        path: &str,
        status: u16,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let sql = "INSERT INTO access_refusals \
                   (id, at, token_id, token_name, method, path, status, reason, address, hits, bucket) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10) \
                   ON CONFLICT (bucket) DO UPDATE SET hits = access_refusals.hits + 1, \
                   at = CASE WHEN excluded.at > access_refusals.at THEN excluded.at ELSE access_refusals.at END";
        let id = uuid::Uuid::now_v7().to_string();
        let token_id = principal.map(|p| p.id.clone());
        let token_name = principal.map(|p| p.name.clone());
        let (method, path, reason) = (
            cut(method, 16),
            cut(path, REFUSAL_PATH_CHARS),
            cut(reason, REFUSAL_TEXT_CHARS),
        );
        let minute = now.timestamp_millis().div_euclid(60_000);
        let bucket = crate::auth::hash_token(&format!(
            "{minute}\u{1f}{}\u{1f}{}\u{1f}{status}\u{1f}{reason}",
            address.unwrap_or(""),
            token_id.as_deref().unwrap_or(""),
        ));
        on_pool!(&self.pool, |p| {
            sqlx::query(sql)
                .bind(&id)
                .bind(now.timestamp_millis())
                .bind(&token_id)
                .bind(&token_name)
                .bind(&method)
                .bind(&path)
                .bind(i32::from(status))
                .bind(&reason)
                .bind(address)
                .bind(&bucket)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Deletes the refused calls recorded before `before`; returns how many.
    pub async fn prune_refusals(&self, before: DateTime<Utc>) -> Result<u64, EngineError> {
        let sql = "DELETE FROM access_refusals WHERE at < $1";
        let at = before.timestamp_millis();
        Ok(on_pool!(&self.pool, |p| sqlx::query(sql)
            .bind(at)
            .execute(p)
            .await?
            .rows_affected()))
    }

    /// The latest refused calls, newest first.
    pub async fn refusals(&self, limit: i64) -> Result<Vec<RefusalRecord>, EngineError> {
        let sql = "SELECT at, token_name, method, path, status, reason, address, hits \
                   FROM access_refusals \
                   ORDER BY at DESC, id DESC LIMIT $1";
        let mut out = Vec::new();
        on_pool!(&self.pool, |p| {
            for row in sqlx::query(sql).bind(limit).fetch_all(p).await? {
                out.push(RefusalRecord {
                    at: row.try_get("at")?,
                    token_name: row.try_get("token_name")?,
                    method: row.try_get("method")?,
                    path: row.try_get("path")?,
                    status: i64::from(row.try_get::<i32, _>("status")?),
                    reason: row.try_get("reason")?,
                    address: row.try_get("address")?,
                    hits: row.try_get("hits")?,
                });
            }
        });
        Ok(out)
    }
}
