//! Reassignments: the tasks assigned to one holder of a role (a first responder away) handed
//! to another holder of it in one organisation unit, until a day or for good, and ended early.
//! Each running case concerned gets a history entry (so a ledger row) naming who reassigned,
//! from whom, to whom, until when and why. The claim statements read the table at claim time
//! (`store::reassignments`), so a reassignment holds for tasks created after it too, and the
//! clock ends it without a timer. Who may reassign, and whom, the API decides from the
//! processes' `reassigns` duties (`api::reassignments`).

use super::{Engine, ms, time};
use crate::actor::Actor;
use crate::error::{EngineError, Result};
use crate::runtime::state::RunState;
use crate::store::reassignments::{self, ReassignmentRow, ReassignmentStore};
use chrono::{NaiveDate, NaiveTime, TimeZone};
use serde_json::json;

/// A person a reassignment names: who they are (`user:<id>`), their login and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub key: String,
    pub login: String,
    pub name: String,
}

/// A reassignment to make. The caller has checked who may make it and whom it names.
#[derive(Debug, Clone)]
pub struct ReassignRequest {
    /// The role (queue) whose tasks are handed over.
    pub role: String,
    pub org_unit: String,
    pub from: Person,
    pub to: Person,
    pub reason: String,
    /// The last day it holds, in the calendar's zone (inclusive); `None`: for good.
    pub until: Option<NaiveDate>,
    /// Who reassigns, as authenticated.
    pub by: Actor,
}

impl Engine {
    /// Makes a reassignment, and writes a `reassigned` entry in the history of every running
    /// case it concerns (started by `from` in its unit, or with a task of the role assigned
    /// to them), in one transaction. 422 (`until`) for a day already past.
    pub async fn reassign(&self, req: ReassignRequest) -> Result<ReassignmentRow> {
        let now = self.now();
        let tz = self.time_zone();
        let ends_at = match req.until {
            None => None,
            Some(day) => {
                let today = now.with_timezone(&tz).date_naive();
                if day < today {
                    return Err(EngineError::invalid(
                        "until",
                        format!(
                            "{day} is past (today is {today} in {tz}): give today or a later day, \
                             or none for good"
                        ),
                    ));
                }
                let next = day.succ_opt().ok_or_else(|| {
                    EngineError::invalid("until", "is out of range: give a day like 2026-12-20")
                })?;
                let midnight = tz
                    .from_local_datetime(&next.and_time(NaiveTime::MIN))
                    .earliest()
                    .ok_or_else(|| EngineError::invalid("until", "has no midnight in this zone"))?;
                Some(ms(midnight.with_timezone(&chrono::Utc)))
            }
        };
        let row = ReassignmentRow {
            id: uuid::Uuid::now_v7().to_string(),
            org_unit: req.org_unit.clone(),
            role: req.role.clone(),
            from_key: req.from.key.clone(),
            from_login: req.from.login.clone(),
            from_name: req.from.name.clone(),
            to_key: req.to.key.clone(),
            to_login: req.to.login.clone(),
            to_name: req.to.name.clone(),
            reason: req.reason.clone(),
            until_day: req.until.map(|d| d.to_string()),
            starts_at: ms(now),
            ends_at,
            by_key: req.by.key().unwrap_or_default(),
            by_name: req.by.name.clone(),
            ended_at: None,
            ended_by: None,
            created_at: ms(now),
        };
        let cases = self.concerned(&row).await?;
        let text = format!(
            "tasks of {} ({}) in {} reassigned to {} ({}) {} by {}: {}",
            row.from_name,
            row.from_login,
            row.org_unit,
            row.to_name,
            row.to_login,
            match &row.until_day {
                Some(day) => format!("until {day} (inclusive)"),
                None => "for good".to_string(),
            },
            req.by.name,
            row.reason
        );
        let data = json!({
            "reassignment": row.id,
            "role": row.role,
            "org_unit": row.org_unit,
            "from": row.from_key,
            "to": row.to_key,
            "until": row.until_day,
            "reason": row.reason,
        });
        transaction!(self, |tx, _fx| {
            reassignments::insert(&mut tx, &row).await?;
            for case in &cases {
                let entry = (
                    req.by.clone(),
                    None,
                    "reassigned".to_string(),
                    text.clone(),
                    data.to_string(),
                );
                self.note(&mut tx, case, vec![(entry, ms(now))]).await?;
            }
        })?;
        Ok(row)
    }

    /// Ends reassignment `id` now, by `by`: its tasks are again only their assignee's. Each
    /// running case it concerns gets a `reassignment_ended` entry. 404 for an unknown id; 409
    /// when it has ended already.
    pub async fn end_reassignment(&self, id: &str, by: &Actor) -> Result<ReassignmentRow> {
        let store = self.reassignments();
        let mut row = store
            .by_id(id)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("reassignment {id}")))?;
        let now = ms(self.now());
        if !row.holds_at(now) && row.starts_at <= now {
            return Err(EngineError::conflict(format!(
                "reassignment {id} has ended already ({}): nothing to end",
                time(row.ends_at.unwrap_or(now)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        let cases = self.concerned(&row).await?;
        let text = format!(
            "reassignment of the tasks of {} ({}) to {} ({}) ended by {}",
            row.from_name, row.from_login, row.to_name, row.to_login, by.name
        );
        let data = json!({ "reassignment": row.id, "from": row.from_key, "to": row.to_key });
        let ended = transaction!(self, |tx, _fx| {
            let ended = reassignments::end(&mut tx, id, now, &by.name).await?;
            if ended {
                for case in &cases {
                    let entry = (
                        by.clone(),
                        None,
                        "reassignment_ended".to_string(),
                        text.clone(),
                        data.to_string(),
                    );
                    self.note(&mut tx, case, vec![(entry, now)]).await?;
                }
            }
            ended
        })?;
        if !ended {
            return Err(EngineError::conflict(format!(
                "reassignment {id} has ended already: nothing to end"
            )));
        }
        row.ends_at = Some(now);
        row.ended_at = Some(now);
        row.ended_by = Some(by.name.clone());
        Ok(row)
    }

    /// The reassignments of these units (`None`: all), newest first, at most `limit`.
    pub async fn reassignments_of(
        &self,
        units: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<ReassignmentRow>> {
        self.reassignments().list(units, limit).await
    }

    /// One reassignment by id.
    pub async fn reassignment(&self, id: &str) -> Result<Option<ReassignmentRow>> {
        self.reassignments().by_id(id).await
    }

    pub(crate) fn reassignments(&self) -> ReassignmentStore {
        ReassignmentStore::new(self.pool().clone())
    }

    /// The running cases `row` concerns: of its unit, with a task of its role, started by the
    /// person away or with such a task assigned to them.
    async fn concerned(&self, row: &ReassignmentRow) -> Result<Vec<String>> {
        let candidates = self
            .reassignments()
            .concerned(&row.org_unit, &row.role, &row.from_key)
            .await?;
        Ok(candidates
            .into_iter()
            .filter(|c| {
                c.assigned
                    || serde_json::from_str::<RunState>(&c.state)
                        .ok()
                        .and_then(|s| s.started_by)
                        .and_then(|a| a.key())
                        .is_some_and(|key| key == row.from_key)
            })
            .map(|c| c.instance_id)
            .collect())
    }
}
