//! Storage of reassignments (`reassignments`): the tasks assigned to one holder of a role
//! handed to another holder of it in one organisation unit, for a time or for good
//! (`docs/api.md`, "Reassigning a first responder's cases"). A row is written, and ended, in
//! the transaction that writes its history entries to the cases concerned; it is read by the
//! claim statements (`common.rs`, `assigned_to_claimer!`) and here. The SQL is the same on
//! both databases.

use super::{StorePool, Tx, sqlite_direct};
use crate::error::EngineError;
use sqlx::Row;

type R<T> = Result<T, EngineError>;

/// A reassignment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentRow {
    pub id: String,
    pub org_unit: String,
    /// The role (queue) whose tasks are handed over.
    pub role: String,
    /// Who is away: key (`user:<id>`), login and name.
    pub from_key: String,
    pub from_login: String,
    pub from_name: String,
    /// Who stands in.
    pub to_key: String,
    pub to_login: String,
    pub to_name: String,
    pub reason: String,
    /// The last day it holds (`2026-12-20`, as given); `None`: for good.
    pub until_day: Option<String>,
    pub starts_at: i64,
    /// The first instant it no longer holds: the end of `until_day` in the calendar's zone, or
    /// when it was ended early; `None`: for good.
    pub ends_at: Option<i64>,
    /// Who made it (key and name).
    pub by_key: String,
    pub by_name: String,
    /// Ended early: when, and by whom (name).
    pub ended_at: Option<i64>,
    pub ended_by: Option<String>,
    pub created_at: i64,
}

impl ReassignmentRow {
    /// Does it hold at `now` (unix millis)?
    pub fn holds_at(&self, now: i64) -> bool {
        self.starts_at <= now && self.ends_at.is_none_or(|end| end > now)
    }
}

/// A case a reassignment concerns: running, in its unit, started by the person away or with a
/// task of the role assigned to them.
#[derive(Debug, Clone)]
pub struct Concerned {
    pub instance_id: String,
    /// The case's state (JSON), to read who started it.
    pub state: String,
    /// It has a task of the role assigned to the person away (open, claimed or failed).
    pub assigned: bool,
}

const INSERT: &str = "INSERT INTO reassignments (id, org_unit, role, from_key, from_login, \
    from_name, to_key, to_login, to_name, reason, until_day, starts_at, ends_at, by_key, by_name, \
    ended_at, ended_by, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";

/// Ends a reassignment early at `$2` (its end moves there, unless it ended already).
const END: &str = "UPDATE reassignments SET ends_at = $2, ended_at = $2, ended_by = $3 \
    WHERE id = $1 AND ended_at IS NULL AND (ends_at IS NULL OR ends_at > $2)";

/// Does a reassignment hand the tasks of `$2` in unit `$3`, role `$4`, to `$1` at `$5`? The
/// same condition as the claim statements'.
const HOLDS: &str = "SELECT COUNT(*) AS n FROM reassignments WHERE to_key = $1 AND from_key = $2 \
    AND org_unit = $3 AND role = $4 AND starts_at <= $5 AND (ends_at IS NULL OR ends_at > $5)";

/// The running cases with a task of role `$2` in unit `$1`: with whether one of them is
/// assigned to `$3` and is live.
const CONCERNED: &str = "SELECT i.id AS instance_id, i.state AS state, \
    (SELECT COUNT(*) FROM tasks a WHERE a.instance_id = i.id AND a.assignee_key = $3 \
      AND a.queue = $2 AND a.state IN ('open', 'claimed', 'failed')) AS assigned \
    FROM instances i WHERE i.status IN ('running', 'incident') AND i.id IN \
    (SELECT t.instance_id FROM tasks t WHERE t.org_unit = $1 AND t.queue = $2) \
    ORDER BY i.created_at, i.id";

macro_rules! columns {
    () => {
        "SELECT id, org_unit, role, from_key, from_login, from_name, to_key, to_login, to_name, \
         reason, until_day, starts_at, ends_at, by_key, by_name, ended_at, ended_by, created_at \
         FROM reassignments "
    };
}

const BY_ID: &str = concat!(columns!(), "WHERE id = $1");

/// The reassignments of the units of a JSON array (`None`: all), newest first.
const LIST_SQLITE: &str = concat!(
    columns!(),
    "WHERE ($1 IS NULL OR org_unit IN (SELECT value FROM json_each($1))) \
     ORDER BY created_at DESC, id DESC LIMIT $2"
);
const LIST_POSTGRES: &str = concat!(
    columns!(),
    "WHERE ($1::text IS NULL OR org_unit IN (SELECT jsonb_array_elements_text($1::jsonb))) \
     ORDER BY created_at DESC, id DESC LIMIT $2"
);

/// Runs the same query text on the SQLite or the PostgreSQL pool.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            StorePool::Sqlite($p) => $body,
            StorePool::Postgres($p) => $body,
        }
    };
}

macro_rules! row {
    ($r:expr) => {{
        let r = $r;
        ReassignmentRow {
            id: r.try_get("id")?,
            org_unit: r.try_get("org_unit")?,
            role: r.try_get("role")?,
            from_key: r.try_get("from_key")?,
            from_login: r.try_get("from_login")?,
            from_name: r.try_get("from_name")?,
            to_key: r.try_get("to_key")?,
            to_login: r.try_get("to_login")?,
            to_name: r.try_get("to_name")?,
            reason: r.try_get("reason")?,
            until_day: r.try_get("until_day")?,
            starts_at: r.try_get("starts_at")?,
            ends_at: r.try_get("ends_at")?,
            by_key: r.try_get("by_key")?,
            by_name: r.try_get("by_name")?,
            ended_at: r.try_get("ended_at")?,
            ended_by: r.try_get("ended_by")?,
            created_at: r.try_get("created_at")?,
        }
    }};
}

/// Writes a new reassignment in `tx`.
pub(crate) async fn insert(tx: &mut Tx, r: &ReassignmentRow) -> R<()> {
    match tx {
        Tx::Sqlite(t) => {
            let mut db = t.db()?;
            sqlite_direct::run(
                &mut db,
                INSERT,
                &[
                    &r.id,
                    &r.org_unit,
                    &r.role,
                    &r.from_key,
                    &r.from_login,
                    &r.from_name,
                    &r.to_key,
                    &r.to_login,
                    &r.to_name,
                    &r.reason,
                    &r.until_day,
                    &r.starts_at,
                    &r.ends_at,
                    &r.by_key,
                    &r.by_name,
                    &r.ended_at,
                    &r.ended_by,
                    &r.created_at,
                ],
            )?;
        }
        Tx::Postgres(t) => {
            sqlx::query(INSERT)
                .bind(&r.id)
                .bind(&r.org_unit)
                .bind(&r.role)
                .bind(&r.from_key)
                .bind(&r.from_login)
                .bind(&r.from_name)
                .bind(&r.to_key)
                .bind(&r.to_login)
                .bind(&r.to_name)
                .bind(&r.reason)
                .bind(&r.until_day)
                .bind(r.starts_at)
                .bind(r.ends_at)
                .bind(&r.by_key)
                .bind(&r.by_name)
                .bind(r.ended_at)
                .bind(&r.ended_by)
                .bind(r.created_at)
                .execute(&mut **t)
                .await?;
        }
    }
    Ok(())
}

/// Ends reassignment `id` at `at`, by `by` (a name), in `tx`: `false` when it had ended
/// already (early, or its last day passed).
pub(crate) async fn end(tx: &mut Tx, id: &str, at: i64, by: &str) -> R<bool> {
    let changed = match tx {
        Tx::Sqlite(t) => {
            let mut db = t.db()?;
            sqlite_direct::run(&mut db, END, &[&id, &at, &by])? as u64
        }
        Tx::Postgres(t) => sqlx::query(END)
            .bind(id)
            .bind(at)
            .bind(by)
            .execute(&mut **t)
            .await?
            .rows_affected(),
    };
    Ok(changed == 1)
}

/// Reassignments, over the engine's pool.
#[derive(Debug, Clone)]
pub struct ReassignmentStore {
    pool: StorePool,
}

impl ReassignmentStore {
    pub fn new(pool: StorePool) -> ReassignmentStore {
        ReassignmentStore { pool }
    }

    /// One reassignment by id.
    pub async fn by_id(&self, id: &str) -> R<Option<ReassignmentRow>> {
        on_pool!(&self.pool, |p| {
            match sqlx::query(BY_ID).bind(id).fetch_optional(p).await? {
                Some(r) => Ok(Some(row!(&r))),
                None => Ok(None),
            }
        })
    }

    /// The reassignments of these units (`None`: all), newest first, at most `limit`.
    pub async fn list(&self, units: Option<&[String]>, limit: i64) -> R<Vec<ReassignmentRow>> {
        let units = units.map(|u| serde_json::to_string(u).unwrap_or_else(|_| "[]".into()));
        let rows = match &self.pool {
            StorePool::Sqlite(p) => {
                let rows = sqlx::query(LIST_SQLITE)
                    .bind(&units)
                    .bind(limit)
                    .fetch_all(p)
                    .await?;
                rows.iter()
                    .map(|r| Ok(row!(r)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
            StorePool::Postgres(p) => {
                let rows = sqlx::query(LIST_POSTGRES)
                    .bind(&units)
                    .bind(limit)
                    .fetch_all(p)
                    .await?;
                rows.iter()
                    .map(|r| Ok(row!(r)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
        };
        Ok(rows)
    }

    /// Does a reassignment hand the tasks of `from_key` (role `role`, unit `unit`) to
    /// `to_key` at `now`?
    pub async fn holds(
        &self,
        to_key: &str,
        from_key: &str,
        unit: &str,
        role: &str,
        now: i64,
    ) -> R<bool> {
        let n: i64 = on_pool!(&self.pool, |p| {
            sqlx::query(HOLDS)
                .bind(to_key)
                .bind(from_key)
                .bind(unit)
                .bind(role)
                .bind(now)
                .fetch_one(p)
                .await?
                .try_get("n")?
        });
        Ok(n > 0)
    }

    /// The running cases of `unit` with a task of `role`, and whether one of those is
    /// assigned to `from_key` (the engine reads who started each from its state).
    pub async fn concerned(&self, unit: &str, role: &str, from_key: &str) -> R<Vec<Concerned>> {
        on_pool!(&self.pool, |p| {
            let rows = sqlx::query(CONCERNED)
                .bind(unit)
                .bind(role)
                .bind(from_key)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(Concerned {
                        instance_id: r.try_get("instance_id")?,
                        state: r.try_get("state")?,
                        assigned: r.try_get::<i64, _>("assigned")? > 0,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(EngineError::from)
        })
    }
}
