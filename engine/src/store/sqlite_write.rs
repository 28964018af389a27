//! The statements of a write transaction on SQLite that are not a batch's reads and flush
//! (`sqlite_direct`): deployments, one instance or task at a time, timers, the outbox. Each
//! has the name and the SQL of its sqlx twin in `common.rs` (`store::on_tx!` calls one or the
//! other), and runs on the writer connection of the transaction (`sqlite_tx::SqliteTx::db`).

use crate::error::EngineError;
use crate::store::sqlite::{self, by_name};
use crate::store::sqlite_direct::{self as direct, Db, Rows};
use crate::store::timers::sqlite as timers_sql;
use crate::store::{ClaimQuery, DeploymentRow, DocumentRow, HistoryRow, InstanceRow};
use crate::store::{OutboxRow, SearchRow, TaskRow, TimerRow};

type R<T> = Result<T, EngineError>;

// ---- deployments ----

pub fn deployment_by_hash(db: &mut Db<'_>, key: &str, hash: &str) -> R<Option<DeploymentRow>> {
    deployments(db, sqlite::DEPLOYMENT_BY_HASH, &[&key, &hash]).map(|d| d.into_iter().next())
}

pub fn max_version(db: &mut Db<'_>, key: &str) -> R<i64> {
    let versions = direct::rows(db, sqlite::MAX_VERSION, &[&key], |r| r.try_get("v"))?;
    Ok(versions.first().copied().unwrap_or(0))
}

pub fn insert_deployment(db: &mut Db<'_>, d: &DeploymentRow) -> R<()> {
    direct::run(
        db,
        sqlite::INSERT_DEPLOYMENT,
        &[
            &d.key,
            &d.version,
            &d.hash,
            &d.title,
            &d.source,
            &d.model,
            &d.config,
            &d.files,
            &d.created_at,
        ],
    )?;
    Ok(())
}

pub fn bump_access_generation(db: &mut Db<'_>) -> R<()> {
    direct::run(db, sqlite::BUMP_ACCESS_GENERATION, &[])?;
    Ok(())
}

pub fn deployment_tx(db: &mut Db<'_>, key: &str, version: Option<i64>) -> R<Option<DeploymentRow>> {
    deployments(db, sqlite::DEPLOYMENT, &[&key, &version]).map(|d| d.into_iter().next())
}

fn deployments(
    db: &mut Db<'_>,
    sql: &str,
    values: &[&dyn rusqlite::ToSql],
) -> R<Vec<DeploymentRow>> {
    direct::rows(db, sql, values, |r| Ok(sqlite::deployment_fields!(r)))
}

// ---- instances and tasks ----

pub fn lock_instance(db: &mut Db<'_>, id: &str) -> R<Option<InstanceRow>> {
    Ok(direct::instances_by(db, sqlite::LOCK_INSTANCE, &[&id])?
        .into_iter()
        .next())
}

pub fn instances_by_id(db: &mut Db<'_>, ids: &str) -> R<Vec<InstanceRow>> {
    direct::instances_by(db, sqlite::INSTANCES_BY_ID, &[&ids])
}

pub fn lock_instances(db: &mut Db<'_>, ids: &str) -> R<Vec<InstanceRow>> {
    direct::instances_by(db, sqlite::LOCK_INSTANCES, &[&ids])
}

pub fn instances_by_business_keys(
    db: &mut Db<'_>,
    processes: &str,
    keys: &str,
) -> R<Vec<InstanceRow>> {
    direct::instances_by(db, sqlite::BY_BUSINESS_KEYS, &[&processes, &keys])
}

pub fn instances_after(db: &mut Db<'_>, after: &str, limit: i64) -> R<Vec<InstanceRow>> {
    direct::instances_by(db, sqlite::INSTANCES_AFTER, &[&after, &limit])
}

pub fn upsert_search(db: &mut Db<'_>, rows: &[SearchRow]) -> R<()> {
    let rows: Vec<&SearchRow> = rows.iter().collect();
    direct::write(
        db,
        &Rows {
            search: &rows,
            ..Rows::default()
        },
    )
}

pub fn update_instance(db: &mut Db<'_>, i: &InstanceRow) -> R<()> {
    direct::run(
        db,
        sqlite::UPDATE_INSTANCE,
        &[
            &i.id,
            &i.status,
            &i.result,
            &i.incident,
            &i.vars,
            &i.state,
            &i.provisional,
            &i.updated_at,
            &i.ended_at,
            &i.history_count,
            &i.history_head,
        ],
    )?;
    Ok(())
}

pub fn lock_task(db: &mut Db<'_>, id: &str) -> R<Option<TaskRow>> {
    Ok(direct::tasks_by(db, sqlite::LOCK_TASK, &[&id])?
        .into_iter()
        .next())
}

pub fn update_task(db: &mut Db<'_>, t: &TaskRow) -> R<()> {
    direct::run(
        db,
        sqlite::UPDATE_TASK,
        &[
            &t.id,
            &t.state,
            &t.lock_token,
            &t.locked_by,
            &t.lock_expires_at,
            &t.available_at,
            &t.outcome,
            &t.completed_by,
            &t.failures,
            &t.last_error,
            &t.completed_at,
            &t.worker,
            &t.locked_by_key,
        ],
    )?;
    Ok(())
}

pub fn reopen_failed_tasks(db: &mut Db<'_>, instance: &str, now: i64) -> R<u64> {
    let changed = direct::run(db, sqlite::REOPEN_FAILED_TASKS, &[&instance, &now])?;
    Ok(u64::try_from(changed).unwrap_or(u64::MAX))
}

pub fn claim_tasks(db: &mut Db<'_>, q: &ClaimQuery) -> R<Vec<TaskRow>> {
    Ok(direct::claims(db, &[q])?
        .into_iter()
        .next()
        .unwrap_or_default())
}

pub fn lock_tasks_with_siblings(db: &mut Db<'_>, ids: &str) -> R<Vec<TaskRow>> {
    direct::tasks_by(db, sqlite::LOCK_TASKS_WITH_SIBLINGS, &[&ids])
}

pub fn lock_live_tasks(db: &mut Db<'_>, instances: &str) -> R<Vec<TaskRow>> {
    direct::tasks_by(db, sqlite::LOCK_LIVE_TASKS, &[&instances])
}

// ---- timers ----

pub fn pending_timers(db: &mut Db<'_>, instances: &str) -> R<Vec<TimerRow>> {
    direct::timers_by(db, sqlite::PENDING_TIMERS, &[&instances])
}

pub fn due_timers(db: &mut Db<'_>, now: i64, limit: i64) -> R<Vec<TimerRow>> {
    direct::timers_by(db, sqlite::DUE_TIMERS, &[&now, &limit])
}

pub fn fire_timers(db: &mut Db<'_>, ids: &str, now: i64) -> R<u64> {
    Ok(direct::run(db, sqlite::FIRE_TIMERS, &[&ids, &now])? as u64)
}

pub fn insert_timers(db: &mut Db<'_>, rows: &[(&TimerRow, i64)]) -> R<()> {
    direct::write(
        db,
        &Rows {
            timers: rows,
            ..Rows::default()
        },
    )
}

pub fn cancel_timers(db: &mut Db<'_>, ids: &str) -> R<()> {
    direct::run(db, sqlite::CANCEL_TIMERS, &[&ids])?;
    Ok(())
}

/// Moves a pending timer (and, for a deadline at due, its task's due time).
pub fn move_timer(
    db: &mut Db<'_>,
    id: &str,
    due_at: i64,
    payload: &str,
    task_due: Option<(&str, i64)>,
) -> R<bool> {
    let moved = direct::run(db, timers_sql::MOVE_TIMER, &[&id, &due_at, &payload])? == 1;
    if moved && let Some((task, due)) = task_due {
        direct::run(db, timers_sql::SET_TASK_DUE, &[&task, &due])?;
    }
    Ok(moved)
}

pub fn settle_provisional(db: &mut Db<'_>, instance: &str) -> R<()> {
    direct::run(db, timers_sql::SETTLE_PROVISIONAL, &[&instance])?;
    Ok(())
}

pub fn set_task_due(db: &mut Db<'_>, task: &str, due_at: Option<i64>) -> R<()> {
    direct::run(db, timers_sql::SET_TASK_DUE, &[&task, &due_at])?;
    Ok(())
}

// ---- history, outbox, documents ----

pub fn insert_history_many(db: &mut Db<'_>, rows: &[HistoryRow]) -> R<()> {
    direct::write(
        db,
        &Rows {
            history: rows,
            ..Rows::default()
        },
    )
}

pub fn set_history_head(db: &mut Db<'_>, instance: &str, count: i64, head: &str) -> R<()> {
    direct::run(db, sqlite::SET_HISTORY_HEAD, &[&instance, &count, &head])?;
    Ok(())
}

pub fn insert_outbox(db: &mut Db<'_>, o: &OutboxRow) -> R<()> {
    direct::write(
        db,
        &Rows {
            outbox: std::slice::from_ref(o),
            ..Rows::default()
        },
    )
}

pub fn claim_outbox(
    db: &mut Db<'_>,
    now: i64,
    lease_until: i64,
    max: i64,
    webhooks: Option<bool>,
) -> R<Vec<OutboxRow>> {
    direct::rows(
        db,
        sqlite::CLAIM_OUTBOX,
        &[&now, &lease_until, &max, &webhooks],
        |r| Ok(sqlite::outbox_fields!(r)),
    )
}

pub fn insert_document(db: &mut Db<'_>, d: &DocumentRow) -> R<()> {
    direct::write(
        db,
        &Rows {
            documents: std::slice::from_ref(d),
            ..Rows::default()
        },
    )
}

pub fn insert_signal(db: &mut Db<'_>, s: &crate::store::SignalRow) -> R<()> {
    direct::write(
        db,
        &Rows {
            signals: std::slice::from_ref(s),
            ..Rows::default()
        },
    )
}

pub fn insert_action(db: &mut Db<'_>, a: &crate::store::ActionRow) -> R<()> {
    direct::write(
        db,
        &Rows {
            actions: std::slice::from_ref(a),
            ..Rows::default()
        },
    )
}

pub fn upsert_clock(db: &mut Db<'_>, c: &crate::store::CaseClockRow) -> R<()> {
    direct::write(
        db,
        &Rows {
            clocks: &[c],
            ..Rows::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite_direct::tests::rows;

    /// Each statement on rusqlite, checked against what sqlx reads back.
    #[tokio::test]
    async fn each_statement_does_what_its_sqlx_twin_does() {
        let (pool, database) = sqlite::open_database("sqlite::memory:").await.unwrap();
        let conn = database.connect_writer().unwrap();
        let db = &mut Db::new(&conn);
        let (mut instance, mut task, timer, history, outbox, document) = rows();

        let deployment = DeploymentRow {
            key: "p".into(),
            version: 1,
            hash: "h".into(),
            title: "标题".into(),
            source: "s".into(),
            model: "m".into(),
            config: "c".into(),
            files: "f".into(),
            created_at: 1,
        };
        insert_deployment(db, &deployment).unwrap();
        bump_access_generation(db).unwrap();
        assert_eq!(max_version(db, "p").unwrap(), 1);
        assert_eq!(max_version(db, "other").unwrap(), 0);
        let read = sqlite::deployment(&pool, "p", Some(1)).await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", Some(&deployment)));
        let by_hash = deployment_by_hash(db, "p", "h").unwrap();
        assert_eq!(format!("{by_hash:?}"), format!("{read:?}"));
        let latest = deployment_tx(db, "p", None).unwrap();
        assert_eq!(format!("{latest:?}"), format!("{read:?}"));
        assert!(deployment_tx(db, "p", Some(2)).unwrap().is_none());

        direct::write(
            db,
            &Rows {
                instances: &[&instance],
                tasks: &[&task],
                ..Rows::default()
            },
        )
        .unwrap();
        insert_timers(db, &[(&timer, 19)]).unwrap();
        instance.status = crate::runtime::state::Status::Completed;
        instance.history_count = 9;
        update_instance(db, &instance).unwrap();
        let read = sqlite::instance(&pool, "i1").await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", Some(&instance)));
        assert_eq!(
            format!("{:?}", lock_instance(db, "i1").unwrap()),
            format!("{read:?}")
        );
        let ids = r#"["i1"]"#;
        assert_eq!(instances_by_id(db, ids).unwrap().len(), 1);
        assert_eq!(lock_instances(db, ids).unwrap().len(), 1);
        assert_eq!(
            instances_by_business_keys(db, r#"["p"]"#, r#"["bk"]"#)
                .unwrap()
                .len(),
            1
        );
        set_history_head(db, "i1", 12, "new head").unwrap();
        let read = sqlite::instance(&pool, "i1").await.unwrap().unwrap();
        assert_eq!(
            (read.history_count, read.history_head.as_str()),
            (12, "new head")
        );

        task.state = crate::TaskState::Failed;
        update_task(db, &task).unwrap();
        assert_eq!(lock_live_tasks(db, ids).unwrap().len(), 1);
        assert_eq!(reopen_failed_tasks(db, "i1", 50).unwrap(), 1);
        let read = sqlite::task(&pool, "t1").await.unwrap().unwrap();
        assert_eq!(
            (
                read.state.as_str(),
                read.available_at,
                read.locked_by.as_deref()
            ),
            ("open", 50, None)
        );
        assert_eq!(
            format!("{:?}", lock_task(db, "t1").unwrap()),
            format!("{:?}", Some(&read))
        );
        assert_eq!(lock_tasks_with_siblings(db, r#"["t1"]"#).unwrap().len(), 1);
        set_task_due(db, "t1", Some(77)).unwrap();
        let read = sqlite::task(&pool, "t1").await.unwrap().unwrap();
        assert_eq!(read.due_at, Some(77));

        assert_eq!(pending_timers(db, ids).unwrap().len(), 1);
        assert!(due_timers(db, 16, 10).unwrap().is_empty(), "due at 17");
        assert!(move_timer(db, "tm1", 15, "moved", Some(("t1", 15))).unwrap());
        let due = due_timers(db, 16, 10).unwrap().pop().unwrap();
        assert_eq!((due.id.as_str(), due.payload.as_str()), ("tm1", "moved"));
        assert_eq!(
            sqlite::task(&pool, "t1").await.unwrap().unwrap().due_at,
            Some(15)
        );
        assert_eq!(fire_timers(db, r#"["tm1"]"#, 30).unwrap(), 1);
        assert!(due_timers(db, 100, 10).unwrap().is_empty());
        assert!(!move_timer(db, "tm1", 40, "again", None).unwrap(), "fired");
        let mut second = timer.clone();
        second.id = "tm2".into();
        insert_timers(db, &[(&second, 20)]).unwrap();
        cancel_timers(db, r#"["tm2"]"#).unwrap();
        assert!(
            sqlite::instance_timers(&pool, "i1")
                .await
                .unwrap()
                .is_empty()
        );
        settle_provisional(db, "i1").unwrap();
        let read = sqlite::instance(&pool, "i1").await.unwrap().unwrap();
        assert_eq!(read.provisional, 0);

        insert_history_many(db, std::slice::from_ref(&history)).unwrap();
        let read = sqlite::history(&pool, "i1").await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", [&history]));
        insert_document(db, &document).unwrap();
        let read = sqlite::documents(&pool, "i1").await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", [&document]));
        insert_outbox(db, &outbox).unwrap();
        assert!(
            claim_outbox(db, 22, 99, 10, Some(true)).unwrap().is_empty(),
            "not a webhook"
        );
        let claimed = claim_outbox(db, 22, 99, 10, None).unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].attempts, claimed[0].next_attempt_at), (21, 99));
        let read = sqlite::outbox_of(&pool, "i1").await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{claimed:?}"));
    }
}
