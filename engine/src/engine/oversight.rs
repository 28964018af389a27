//! Oversight of deadlines, as recorded: the signals an event gave (yellow, red, each
//! escalation level) and the clocks it started, paused, resumed, extended or stopped, staged
//! with the event so that the board and the evaluation count from the record.

use super::Engine;
use super::deploy::Loaded;
use crate::deadlines;
use crate::error::Result;
use crate::runtime::state::{Changeset, ClockBasis, ClockState, RunState};
use crate::store::staged::Staged;
use crate::store::{ActionRow, CaseClockRow, InstanceRow, SignalRow};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

impl Engine {
    /// Stages the signals of `cs` and every clock whose state it changed (all of them, stopped,
    /// when the case ends). `old`: the clocks before the event.
    pub(crate) fn stage_oversight(
        &self,
        st: &mut Staged,
        loaded: &Loaded,
        row: &InstanceRow,
        old: &RunState,
        cs: &Changeset,
        now: DateTime<Utc>,
    ) {
        let now_ms = now.timestamp_millis();
        for s in &cs.signals {
            let task = s.task_id.as_deref().and_then(|t| st.task(t));
            let (queue, org_unit) = match task {
                Some(t) => (Some(t.queue.clone()), t.org_unit.clone()),
                None => (None, org_unit(loaded, &cs.vars)),
            };
            st.insert_signal(SignalRow {
                id: s.id.clone(),
                instance_id: row.id.clone(),
                node: s.node.clone(),
                task_id: s.task_id.clone(),
                clock: s.clock.clone(),
                queue,
                org_unit,
                light: s.light.as_str().to_string(),
                level: s.level,
                due_at: s.due_at,
                at: now_ms,
            });
        }
        for a in &cs.actions {
            st.insert_action(ActionRow {
                id: a.id.clone(),
                instance_id: row.id.clone(),
                kind: a.kind.clone(),
                queue: a.queue.clone(),
                org_unit: a.org_unit.clone(),
                text: a.text.clone(),
                actor: a.actor.clone(),
                actor_key: a.actor_key.clone(),
                at: now_ms,
            });
        }
        let ended = cs.status.is_terminal();
        for (name, clock) in &cs.state.clocks {
            let before = old.clocks.get(name);
            let state = if ended || (!clock.running && clock.remaining_minutes.is_none()) {
                "stopped"
            } else if clock.running {
                "running"
            } else {
                "paused"
            };
            let unchanged = match before {
                None => false,
                // A clock stopped earlier was recorded then.
                Some(b) if state == "stopped" => is_stopped(b),
                Some(b) => same(b, clock),
            };
            if unchanged {
                continue;
            }
            // A stopped clock keeps the due time it had, for the evaluation.
            let due_at = match state {
                "stopped" => clock.due_at.or(before.and_then(|b| b.due_at)),
                _ => clock.due_at,
            };
            let warn_at = match (state, clock.due_at) {
                ("running", Some(due)) => {
                    let warnings = deadlines::clock_warnings(&loaded.model, name);
                    let calendar = loaded.model.calendar.as_ref().map(|c| c.name.as_str());
                    deadlines::warning_from(super::time(due), &warnings, calendar, &*self.inner.due)
                        .map(|w| w.timestamp_millis())
                }
                _ => None,
            };
            st.upsert_clock(CaseClockRow {
                instance_id: row.id.clone(),
                clock: name.clone(),
                process_key: row.process_key.clone(),
                org_unit: org_unit(loaded, &cs.vars),
                state: state.to_string(),
                started_at: started_at(clock).unwrap_or(now_ms),
                due_at,
                warn_at,
                stopped_at: (state == "stopped").then_some(now_ms),
            });
        }
    }
}

/// Whether a clock's recorded state is unchanged.
fn same(a: &ClockState, b: &ClockState) -> bool {
    a.running == b.running && a.due_at == b.due_at && a.remaining_minutes == b.remaining_minutes
}

fn is_stopped(c: &ClockState) -> bool {
    !c.running && c.remaining_minutes.is_none()
}

/// When a clock was started, as its basis says (kept from the first row written: a resumed
/// clock's basis starts at the resumption).
fn started_at(clock: &ClockState) -> Option<i64> {
    let mut basis = clock.basis.as_ref()?;
    loop {
        match basis {
            ClockBasis::Add { from, .. } | ClockBasis::OfficeMinutes { from, .. } => {
                return Some(*from);
            }
            ClockBasis::Extended { base, .. } => basis = base,
        }
    }
}

/// The case's organisation unit: the value of the first variable that scopes its roles.
fn org_unit(loaded: &Loaded, vars: &Map<String, Json>) -> Option<String> {
    loaded
        .model
        .roles
        .iter()
        .filter_map(|r| r.scope.as_ref())
        .find_map(|scope| vars.get(&scope.name))
        .filter(|v| !v.is_null())
        .map(crate::runtime::display_json)
}

/// Which clocks the board shows.
#[derive(Debug, Clone, Default)]
pub struct BoardFilter {
    /// Only these organisation units; `None`: all.
    pub org_units: Option<Vec<String>>,
    /// Only cases with a live task in this queue (a department).
    pub queue: Option<String>,
    pub clock: Option<String>,
    /// `red`, `yellow`, `green` or `paused`.
    pub light: Option<String>,
    /// From 1.
    pub page: u32,
    pub page_size: u32,
}

/// A clock on the board.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardClock {
    pub instance_id: String,
    pub business_key: Option<String>,
    pub process: String,
    pub version: i64,
    pub clock: String,
    pub org_unit: Option<String>,
    /// `running` or `paused`.
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub warn_at: Option<DateTime<Utc>>,
    /// Its light now (a paused clock: `None`).
    pub light: Option<deadlines::Light>,
    /// The highest escalation level signalled red on it (`None`: never red).
    pub level: Option<i64>,
    /// The queue of the case's live task (the department that holds it now).
    pub queue: Option<String>,
}

impl Engine {
    /// A page of the running and paused clocks, most overdue first, with how many all pages
    /// hold. Lights as of now; levels as recorded.
    pub async fn board(&self, f: &BoardFilter) -> Result<(Vec<BoardClock>, i64)> {
        use crate::store::port::ReadOversight;
        let page_size = i64::from(f.page_size.clamp(1, 500));
        let now = self.now();
        let q = crate::store::BoardQuery {
            org_units: f.org_units.as_ref().map(crate::store::json_list),
            queue: f.queue.clone(),
            clock: f.clock.clone(),
            light: f.light.clone(),
            now: now.timestamp_millis(),
            limit: page_size,
            offset: i64::from(f.page.max(1) - 1) * page_size,
        };
        let (rows, total) = self.inner.store.board_clocks(&q).await?;
        let clocks = rows
            .into_iter()
            .map(|r| {
                let due_at = r.clock.due_at.map(super::time);
                let warn_at = r.clock.warn_at.map(super::time);
                BoardClock {
                    light: due_at.map(|d| deadlines::light(d, warn_at, now)),
                    instance_id: r.clock.instance_id,
                    business_key: r.business_key,
                    process: r.clock.process_key,
                    version: r.version,
                    clock: r.clock.clock,
                    org_unit: r.clock.org_unit,
                    state: r.clock.state,
                    started_at: super::time(r.clock.started_at),
                    due_at,
                    warn_at,
                    level: r.level,
                    queue: r.queue,
                }
            })
            .collect();
        Ok((clocks, total))
    }

    /// Signals recorded from `from` to `to`, per light and level, of these organisation units
    /// (`None`: all).
    pub async fn signal_counts(
        &self,
        org_units: Option<&[String]>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::store::SignalCount>> {
        use crate::store::port::ReadOversight;
        let units = org_units.map(crate::store::json_list);
        self.inner
            .store
            .signal_counts(
                units.as_deref(),
                from.timestamp_millis(),
                to.timestamp_millis(),
            )
            .await
    }
}

/// What an office that oversees may do about a case (A4 §7 of the mechanism the first process
/// runs names these three): urge the queue holding it, a notice of criticism, a referral.
pub const OVERSIGHT_KINDS: [&str; 3] = ["urge", "criticism", "referral"];

impl Engine {
    /// Records an action of an office that oversees on running case `id`, with its text; the
    /// queue that holds the case's live task (if any) is told in its inbox. Refused (422) for
    /// an unknown kind or an empty text, (409) for a case that has ended, and for `urge` when
    /// no task is open to urge.
    pub async fn oversee(
        &self,
        id: &str,
        kind: &str,
        text: &str,
        actor: impl Into<crate::actor::Actor>,
    ) -> Result<crate::engine::InstanceView> {
        use crate::error::EngineError;
        let actor: crate::actor::Actor = actor.into();
        if !OVERSIGHT_KINDS.contains(&kind) {
            return Err(EngineError::invalid(
                "kind",
                format!("`{kind}` is not an action: use urge, criticism or referral"),
            ));
        }
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 2000 {
            return Err(EngineError::invalid(
                "text",
                "write what is asked or decided, in 1 to 2,000 characters",
            ));
        }
        let view = self.instance(id).await?;
        if view.status.is_terminal() {
            return Err(EngineError::conflict(format!(
                "case {id} has ended: there is nothing left to act on"
            )));
        }
        let live = view.tasks.iter().min_by_key(|t| t.created_at);
        if kind == "urge" && live.is_none() {
            return Err(EngineError::conflict(format!(
                "case {id} has no open task: no queue to urge"
            )));
        }
        let action = crate::runtime::state::NewAction {
            id: crate::runtime::new_id(),
            kind: kind.to_string(),
            text: text.to_string(),
            queue: live.map(|t| t.queue.clone()),
            org_unit: live.and_then(|t| t.org_unit.clone()),
            actor: actor.name.clone(),
            actor_key: actor.key(),
        };
        transaction!(self, |tx, fx| {
            let mut st = crate::store::staged::Staged::new(self.chain_key());
            self.run_event(
                &mut tx,
                &mut st,
                &mut fx,
                id,
                crate::runtime::Event::Oversee {
                    action: action.clone(),
                    actor: actor.clone(),
                },
            )
            .await?;
            st.flush(&mut tx).await?;
        })?;
        self.instance(id).await
    }
}
