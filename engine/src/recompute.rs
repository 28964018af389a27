//! Recomputing provisional deadlines when calendar data is added.
//!
//! A due time that reached into a year the calendar did not cover was counted with weekends
//! only and marked provisional; the runtime keeps its inputs in the timer's payload (`due`:
//! from, amount, unit, calendar; for a ladder rung also its `offset`). When the calendars are
//! loaded again (at start, after an administrator added next year), each such timer is computed
//! again; a due time that moves is changed in the same transaction as a history entry saying
//! from when to when and why.
//!
//! Named clocks keep their inputs in the instance state (`ClockState::basis`: started with N
//! units from T, resumed with M office minutes from T, or extended by N units after such a due
//! time), and the rungs that hang on a clock (its own ladder, `clock_escalation`, and the task
//! deadlines bound to it, `deadline ... clock X`) carry `due: {"clock": X, "basis": ...}`. They
//! are recomputed per instance ([`Engine::recompute_provisional`] → `recompute_clocks`): the
//! clock's `due_at` and `provisional` in the state, every pending rung (from the new due time
//! and its offset), the bound tasks' due times and a `deadline_recomputed` history entry, in
//! one transaction. The instance's provisional flag is cleared only when no running clock and
//! no pending timer of it is provisional any more. States and payloads written before the inputs
//! were kept (`due: {"clock": X}` only) still load; those clocks are skipped and stay flagged.
//! The office minutes a paused clock had left are kept as counted at the pause.

use crate::engine::{Effects, Engine};
use crate::error::EngineError;
use crate::runtime::due::{Due, DueDates, ReloadingCalendars};
use crate::runtime::state::{ClockBasis, ClockState, RunState};
use crate::store::port::*;
use crate::store::timers as sql;
use crate::store::{TimerRow, Tx};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::sync::Arc;
use yimen_dsl::model::DurationUnit;

/// What [`Engine::recompute_provisional`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Recomputed {
    /// Provisional timers looked at.
    pub examined: usize,
    /// Timers whose due time moved.
    pub moved: usize,
    /// Timers now computed on full data (no longer provisional).
    pub settled: usize,
    /// Timers that could not be recomputed (clock rungs, inputs missing).
    pub skipped: usize,
}

/// `at` as people read it, in the zone of `calendar` ([`crate::clock::readable`]).
fn shown(due: &dyn DueDates, calendar: Option<&str>, at: DateTime<Utc>) -> String {
    crate::clock::readable(&at.with_timezone(&due.time_zone(calendar)))
}

/// The calendar a timer's due time was counted on.
fn payload_calendar(payload: &Json) -> Option<&str> {
    payload.get("due")?.get("calendar")?.as_str()
}

/// The calendar a clock's due time is counted on.
fn basis_calendar(basis: &ClockBasis) -> Option<&str> {
    match basis {
        ClockBasis::Add { calendar, .. }
        | ClockBasis::OfficeMinutes { calendar, .. }
        | ClockBasis::Extended { calendar, .. } => calendar.as_deref(),
    }
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn unit_of(v: &Json) -> Option<DurationUnit> {
    serde_json::from_value(v.clone()).ok()
}

/// The recomputed due time of a payload, with its new `provisional` flag and explanation.
/// `None` for a due time that hangs on a named clock (recomputed with the clock, see
/// [`Engine::recompute_clocks`]) or whose inputs are missing.
fn recompute(payload: &Json, due: &dyn DueDates) -> Option<(DateTime<Utc>, bool, String)> {
    let inputs = payload.get("due")?;
    if inputs.get("clock").is_some() {
        return None;
    }
    let from = time(inputs.get("from")?.as_i64()?);
    let amount = inputs.get("amount")?.as_i64()?;
    let unit = unit_of(inputs.get("unit")?)?;
    let calendar = inputs.get("calendar").and_then(Json::as_str);
    let base = due.add(calendar, from, amount, unit);
    rung(payload, &base, calendar, due)
}

/// The due time of a ladder rung (the payload's `offset`) whose deadline is `base`.
fn rung(
    payload: &Json,
    base: &Due,
    calendar: Option<&str>,
    due: &dyn DueDates,
) -> Option<(DateTime<Utc>, bool, String)> {
    let Some(offset) = payload.get("offset") else {
        return Some((base.at, base.provisional, base.explanation.clone()));
    };
    let when = offset.get("when").and_then(Json::as_str)?;
    if when == "at" {
        return Some((base.at, base.provisional, base.explanation.clone()));
    }
    let amount = offset.get("amount")?.as_i64()?;
    let unit = unit_of(offset.get("unit")?)?;
    let rung = match when {
        "before" => due.before(calendar, base.at, amount, unit),
        "after" => due.add(calendar, base.at, amount, unit),
        _ => return None,
    };
    Some((
        rung.at,
        base.provisional || rung.provisional,
        format!("{}; {}", base.explanation, rung.explanation),
    ))
}

/// Writes a recomputed due time into a timer payload (its `due` inputs' flag and
/// explanation; `due_at`, the deadline the rung hangs on, when given).
fn update_payload(payload: &mut Json, provisional: bool, explanation: &str, deadline: Option<i64>) {
    if let Some(inputs) = payload.get_mut("due").and_then(Json::as_object_mut) {
        inputs.insert("provisional".into(), json!(provisional));
        inputs.insert("explanation".into(), json!(explanation));
    }
    if let (Some(obj), Some(ms)) = (payload.as_object_mut(), deadline) {
        obj.insert("due_at".into(), json!(ms));
    }
}

impl Engine {
    /// Computes every pending provisional due time again with `due` (the calendars as loaded
    /// now). Call it at start, after the calendars are loaded.
    pub async fn recompute_provisional(
        &self,
        due: &dyn DueDates,
    ) -> Result<Recomputed, EngineError> {
        let mut report = Recomputed::default();
        let now = self.clock().now();
        for (id, instance, kind, task, node, old_ms, payload) in
            sql::provisional_timers(self.pool()).await?
        {
            report.examined += 1;
            let mut payload: Json = match serde_json::from_str(&payload) {
                Ok(p) => p,
                Err(_) => {
                    report.skipped += 1;
                    continue;
                }
            };
            if payload.get("due").and_then(|d| d.get("clock")).is_some() {
                // Hangs on a named clock: recomputed with the clock below.
                report.examined -= 1;
                continue;
            }
            let Some((at, provisional, explanation)) = recompute(&payload, due) else {
                report.skipped += 1;
                continue;
            };
            // A due time the new data moves into the past fires at once, not never.
            let new_ms = at.max(now).timestamp_millis();
            update_payload(&mut payload, provisional, &explanation, None);
            if let Some(obj) = payload.as_object_mut()
                && obj.contains_key("due_at")
                && payload_is_at(obj)
            {
                obj.insert("due_at".into(), json!(at.timestamp_millis()));
            }
            let task_due = match (&task, payload.get("offset")) {
                (Some(t), Some(o)) if o.get("when").and_then(Json::as_str) == Some("at") => {
                    Some((t.as_str(), at.timestamp_millis()))
                }
                _ => None,
            };
            let _gate = self.write_gate().await;
            let mut tx = self.begin_write(&mut Default::default()).await?;
            let moved =
                sql::move_timer(&mut tx, &id, new_ms, &payload.to_string(), task_due).await?;
            if !moved {
                // Fired or cancelled meanwhile.
                drop(tx);
                continue;
            }
            tx.notify_timers(self.timer_channel(), new_ms).await?;
            if new_ms != old_ms {
                let recomputed = self.entry_now(
                    &crate::actor::Actor::engine("calendar"),
                    &node,
                    "deadline_recomputed",
                    format!(
                        "{kind} due {} recomputed with new calendar data: {}{}",
                        shown(due, payload_calendar(&payload), time(old_ms)),
                        shown(due, payload_calendar(&payload), at),
                        if provisional { " (still provisional)" } else { "" }
                    ),
                    json!({ "timer": id, "from": old_ms, "to": at.timestamp_millis(), "provisional": provisional, "explanation": explanation }),
                );
                self.note(&mut tx, &instance, vec![recomputed]).await?;
            }
            // A running clock computed on weekends only keeps the instance flagged.
            let clock_provisional = sql::instance_state(self.pool(), &instance)
                .await?
                .and_then(|(_, state)| serde_json::from_str::<Json>(&state).ok())
                .and_then(|state| {
                    state.get("clocks").and_then(Json::as_object).map(|clocks| {
                        clocks.values().any(|c| {
                            c.get("running").and_then(Json::as_bool) == Some(true)
                                && c.get("provisional").and_then(Json::as_bool) == Some(true)
                        })
                    })
                })
                .unwrap_or(false);
            if !clock_provisional {
                sql::settle_provisional(&mut tx, &instance).await?;
            }
            tx.commit().await?;
            self.publish(Effects {
                queues: Vec::new(),
                timers: vec![new_ms],
            });
            report.moved += usize::from(new_ms != old_ms);
            report.settled += usize::from(!provisional);
        }
        for instance in sql::provisional_instances(self.pool()).await? {
            self.recompute_clocks(&instance, due, &mut report).await?;
        }
        Ok(report)
    }

    /// Recomputes the running provisional clocks of one instance from their inputs
    /// ([`crate::runtime::state::ClockBasis`]), in one transaction: the clock's due time in the instance state, the
    /// rungs of its ladder and of the task deadlines bound to it, those tasks' due times, a
    /// history entry per clock that moved, and the instance's provisional flag (cleared when
    /// nothing of it is provisional any more). Clocks without inputs (states written before
    /// they were kept) are skipped and stay flagged.
    async fn recompute_clocks(
        &self,
        instance: &str,
        due: &dyn DueDates,
        report: &mut Recomputed,
    ) -> Result<(), EngineError> {
        let now = self.clock().now();
        let pending: HashMap<String, TimerRow> = self
            .store()
            .instance_timers(instance)
            .await?
            .into_iter()
            .map(|t| (t.id.clone(), t))
            .collect();
        let Some((_, text)) = sql::instance_state(self.pool(), instance).await? else {
            return Ok(());
        };
        let Ok(mut state) = serde_json::from_str::<RunState>(&text) else {
            return Ok(());
        };
        let before = state.clocks.clone();
        let mut pass = ClockPass {
            due,
            now,
            pending,
            done: Recomputed::default(),
            entries: Vec::new(),
            woken: Vec::new(),
        };
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write(&mut Default::default()).await?;
        for (name, clock) in &mut state.clocks {
            self.recompute_clock(&mut tx, &mut pass, name, clock)
                .await?;
        }
        // Lock order task/timer → instance: the instance is locked last. An event that changed
        // its clocks meanwhile wins; nothing is written (the next recompute sees the new state).
        let Some(mut row) = tx.lock_instance(instance).await? else {
            return Ok(());
        };
        let Ok(mut current) = serde_json::from_str::<RunState>(&row.state) else {
            return Ok(());
        };
        if current.clocks != before {
            return Ok(());
        }
        current.clocks = state.clocks;
        let still = current.clocks.values().any(|c| c.running && c.provisional);
        row.state = serde_json::to_string(&current)?;
        self.append_history(&mut tx, &mut row, pass.entries, now.timestamp_millis())
            .await?;
        tx.update_instance(&row).await?;
        if !still {
            sql::settle_provisional(&mut tx, instance).await?;
        }
        if let Some(first) = pass.woken.iter().min() {
            tx.notify_timers(self.timer_channel(), *first).await?;
        }
        tx.commit().await?;
        self.publish(Effects {
            queues: Vec::new(),
            timers: pass.woken,
        });
        let done = pass.done;
        report.examined += done.examined;
        report.moved += done.moved;
        report.settled += done.settled;
        report.skipped += done.skipped;
        Ok(())
    }

    /// Recomputes clock `name` of an instance in `tx` when it is running and provisional: its
    /// due time and provisional flag (in `clock`), its rungs and those of the task deadlines
    /// bound to it, those tasks' due times; a history entry when its due time moved.
    async fn recompute_clock(
        &self,
        tx: &mut Tx,
        pass: &mut ClockPass<'_>,
        name: &str,
        clock: &mut ClockState,
    ) -> Result<(), EngineError> {
        if !clock.running || !clock.provisional {
            return Ok(());
        }
        pass.done.examined += 1;
        let Some(basis) = &clock.basis else {
            pass.done.skipped += 1;
            return Ok(());
        };
        let new = basis.compute(pass.due);
        let old_ms = clock.due_at;
        let new_ms = new.at.timestamp_millis();
        clock.due_at = Some(new_ms);
        clock.provisional = new.provisional;
        let rungs = clock
            .timers
            .iter()
            .chain(clock.bound.iter().flat_map(|b| &b.timers));
        let mut moved = 0usize;
        for id in rungs {
            if self.move_rung(tx, pass, id, &new).await? {
                moved += 1;
            }
        }
        for b in &clock.bound {
            sql::set_task_due(tx, &b.task, Some(new_ms)).await?;
        }
        pass.done.settled += usize::from(!new.provisional);
        if old_ms == Some(new_ms) {
            return Ok(());
        }
        pass.done.moved += 1;
        let due = pass.due;
        pass.entries.push((
            crate::actor::Actor::engine("calendar"),
            None,
            "deadline_recomputed".to_string(),
            format!(
                "clock {name} due {} recomputed with new calendar data: {}{}; {moved} timer(s) moved",
                old_ms.map_or_else(|| "-".into(), |ms| shown(due, basis_calendar(basis), time(ms))),
                shown(due, basis_calendar(basis), new.at),
                if new.provisional { " (still provisional)" } else { "" }
            ),
            json!({ "clock": name, "from": old_ms, "to": new_ms, "provisional": new.provisional, "explanation": new.explanation, "timers_moved": moved })
                .to_string(),
        ));
        Ok(())
    }

    /// Moves pending rung `id` of a clock whose due time is now `new`; `true` when its due
    /// time changed.
    async fn move_rung(
        &self,
        tx: &mut Tx,
        pass: &mut ClockPass<'_>,
        id: &str,
        new: &Due,
    ) -> Result<bool, EngineError> {
        let Some(timer) = pass.pending.get(id) else {
            return Ok(false); // fired or cancelled
        };
        let Ok(mut payload) = serde_json::from_str::<Json>(&timer.payload) else {
            return Ok(false);
        };
        let calendar = payload
            .get("due")
            .and_then(|d| d.get("calendar"))
            .and_then(Json::as_str)
            .map(str::to_string);
        let Some((at, provisional, explanation)) =
            rung(&payload, new, calendar.as_deref(), pass.due)
        else {
            return Ok(false);
        };
        update_payload(
            &mut payload,
            provisional,
            &explanation,
            Some(new.at.timestamp_millis()),
        );
        // A due time the new data moves into the past fires at once, not never.
        let at_ms = at.max(pass.now).timestamp_millis();
        if sql::move_timer(tx, id, at_ms, &payload.to_string(), None).await?
            && at_ms != timer.due_at
        {
            pass.woken.push(at_ms);
            return Ok(true);
        }
        Ok(false)
    }
}

/// One instance's clocks being recomputed: what the pass reads and what it collects.
struct ClockPass<'a> {
    due: &'a dyn DueDates,
    now: DateTime<Utc>,
    /// The instance's pending timers by id.
    pending: HashMap<String, TimerRow>,
    done: Recomputed,
    /// A history entry per clock whose due time moved.
    entries: Vec<crate::engine::Entry>,
    /// The new due times of the timers moved (to wake the timer loop).
    woken: Vec<i64>,
}

/// Why [`Engine::reload_calendars`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The folder does not load (bad YAML, a file unreadable): the loaded calendars stay.
    #[error("the calendars in {dir} do not load, keeping the loaded ones: {source}")]
    Calendars {
        dir: std::path::PathBuf,
        source: crate::calendar::CalendarError,
    },
    /// The calendars were swapped in, but recomputing the deadlines failed (the watch tries
    /// again at its next check).
    #[error("new calendars loaded, but recomputing provisional deadlines failed: {0}")]
    Recompute(#[from] EngineError),
}

impl Engine {
    /// One check of the calendar folder: when a calendar's version changed, swaps the new
    /// calendars in and recomputes the provisional deadlines with them (`Ok(Some(..))`);
    /// `Ok(None)`: nothing changed. Use the same `calendars` the engine was opened with.
    pub async fn reload_calendars(
        &self,
        calendars: &ReloadingCalendars,
    ) -> Result<Option<Recomputed>, ReloadError> {
        let changed = calendars
            .reload()
            .map_err(|source| ReloadError::Calendars {
                dir: calendars.dir().to_path_buf(),
                source,
            })?;
        let Some((before, after)) = changed else {
            return Ok(None);
        };
        for (name, version) in &after {
            match before.get(name) {
                Some(old) if old == version => {}
                old => tracing::info!(
                    calendar = %name,
                    from = old.map_or("(new)", String::as_str),
                    to = %version,
                    "calendar data changed"
                ),
            }
        }
        let done = self.recompute_provisional(calendars).await?;
        tracing::info!(
            examined = done.examined,
            moved = done.moved,
            settled = done.settled,
            skipped = done.skipped,
            "provisional deadlines recomputed with the new calendars"
        );
        Ok(Some(done))
    }
}

/// Checks the calendar folder every `every` until `shutdown` turns true (started by
/// `yimen serve`): see [`Engine::reload_calendars`]. Problems are logged, never fatal.
pub async fn watch_calendars(
    engine: Engine,
    calendars: Arc<ReloadingCalendars>,
    every: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last_error: Option<String> = None;
    // Calendars swapped in but the recompute failed: try the recompute again.
    let mut recompute_owed = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        let result = if recompute_owed {
            engine
                .recompute_provisional(&*calendars)
                .await
                .map(Some)
                .map_err(ReloadError::from)
        } else {
            engine.reload_calendars(&calendars).await
        };
        recompute_owed = matches!(result, Err(ReloadError::Recompute(_)));
        match result {
            Ok(_) => last_error = None,
            Err(e) => {
                // Once per distinct problem, not every check.
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "calendar reload");
                    last_error = Some(text);
                }
            }
        }
    }
}

fn payload_is_at(obj: &serde_json::Map<String, Json>) -> bool {
    obj.get("offset")
        .and_then(|o| o.get("when"))
        .and_then(Json::as_str)
        == Some("at")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::due::WeekdaysOnly;

    #[test]
    fn a_rung_is_recomputed_from_its_base_and_offset() {
        let from: DateTime<Utc> = "2026-12-28T02:00:00Z".parse().unwrap();
        let base = json!({"from": from.timestamp_millis(), "amount": 5, "unit": "WorkDays", "calendar": null, "provisional": true});
        let at = recompute(
            &json!({"due": base, "offset": {"when": "at"}}),
            &WeekdaysOnly,
        )
        .unwrap();
        let plain = WeekdaysOnly.add(None, from, 5, DurationUnit::WorkDays);
        assert_eq!(at.0, plain.at);
        let after = recompute(
            &json!({"due": base, "offset": {"when": "after", "amount": 2, "unit": "WorkDays"}}),
            &WeekdaysOnly,
        )
        .unwrap();
        assert_eq!(
            after.0,
            WeekdaysOnly
                .add(None, plain.at, 2, DurationUnit::WorkDays)
                .at
        );
        // A clock rung names only its clock: not recomputed.
        assert!(
            recompute(
                &json!({"due": {"clock": "statutory"}, "offset": {"when": "at"}}),
                &WeekdaysOnly
            )
            .is_none()
        );
        assert!(recompute(&json!({}), &WeekdaysOnly).is_none());
        // A new clock rung (with the clock's inputs) is recomputed with its clock, not here.
        assert!(
            recompute(
                &json!({"due": {"clock": "statutory", "basis": {"kind": "add", "from": 0, "amount": 1, "unit": "WorkDays", "calendar": null}}, "offset": {"when": "at"}}),
                &WeekdaysOnly
            )
            .is_none()
        );
    }

    #[test]
    fn a_clock_state_without_inputs_still_loads() {
        use crate::runtime::state::{ClockBasis, ClockState};
        let old: ClockState = serde_json::from_value(json!({
            "due_at": 1, "remaining_minutes": null, "running": true, "provisional": true, "timers": ["t1"]
        }))
        .unwrap();
        assert_eq!(old.basis, None);
        assert!(old.bound.is_empty());
        // Written back without the new keys while they are empty.
        let back = serde_json::to_value(&old).unwrap();
        assert!(
            back.get("basis").is_none() && back.get("bound").is_none(),
            "{back}"
        );
        // An extension is computed after the due time of what it extends.
        let from: DateTime<Utc> = "2026-12-28T02:00:00Z".parse().unwrap();
        let start = ClockBasis::Add {
            from: from.timestamp_millis(),
            amount: 2,
            unit: DurationUnit::WorkDays,
            calendar: None,
        };
        let extended = ClockBasis::Extended {
            base: Box::new(start.clone()),
            amount: 3,
            unit: DurationUnit::WorkDays,
            calendar: None,
        };
        let first = start.compute(&WeekdaysOnly).at;
        assert_eq!(
            extended.compute(&WeekdaysOnly).at,
            WeekdaysOnly.add(None, first, 3, DurationUnit::WorkDays).at
        );
        let json = serde_json::to_value(&extended).unwrap();
        assert_eq!(json["kind"], "extended");
        assert_eq!(
            serde_json::from_value::<ClockBasis>(json).unwrap(),
            extended
        );
    }
}
