//! Named clocks: started, paused, resumed and stopped by actions; their due times followed.

use super::*;

impl Run<'_> {
    /// What a due time that hangs on clock `name` was computed from (timer payloads): the
    /// clock's inputs, and the process calendar the rungs are counted on.
    pub(super) fn clock_base(&self, name: &str) -> Json {
        let state = self.cs.state.clocks.get(name);
        json!({
            "clock": name,
            "basis": state.and_then(|s| s.basis.clone()),
            "calendar": self.model.calendar.as_ref().map(|c| c.name.clone()),
            "provisional": state.is_some_and(|s| s.provisional),
        })
    }

    /// Moves the task deadlines bound to clock `name` to its new due time (`None`: the clock
    /// paused or stopped, they are suspended). Entries of tasks no longer open are dropped.
    pub(super) fn follow_clock(
        &mut self,
        name: &str,
        due: Option<DateTime<Utc>>,
        why: &str,
    ) -> Result<(), RunError> {
        let Some(state) = self.cs.state.clocks.get_mut(name) else {
            return Ok(());
        };
        let bound = std::mem::take(&mut state.bound);
        if bound.is_empty() {
            return Ok(());
        }
        let open: std::collections::BTreeSet<String> = self
            .cs
            .state
            .tokens
            .iter()
            .flat_map(|t| match &t.wait {
                Wait::Tasks { pending, .. } => pending.clone(),
                _ => Vec::new(),
            })
            .chain(self.cs.new_tasks.iter().map(|t| t.id.clone()))
            .collect();
        let mut keep = Vec::new();
        for mut b in bound {
            let had = std::mem::take(&mut b.timers);
            let was_running = !had.is_empty();
            self.cs.cancel_timers.extend(had);
            if !open.contains(&b.task) {
                continue;
            }
            let spec = match self.node(&b.node).map(|n| &n.kind) {
                Some(NodeKind::Task(t)) => t.clone(),
                _ => continue,
            };
            let Some(deadline) = spec.deadline.as_ref() else {
                continue;
            };
            let due_ms = match due {
                None => {
                    self.history(
                        Some(&b.node),
                        "deadline_suspended",
                        format!("deadline of task {} suspended: clock {name} {why}", b.node),
                        json!({ "task": b.task, "clock": name, "timers_cancelled": was_running }),
                    );
                    None
                }
                Some(at) => {
                    self.item = match (&spec.for_each, &b.item) {
                        (Some(fe), Some(v)) => Some((fe.item.name.clone(), v.clone())),
                        _ => None,
                    };
                    let base = self.clock_base(name);
                    let ids = self.rungs(&b.node, Some(&b.task), deadline, at, None, base);
                    self.item = None;
                    b.timers = ids?;
                    let shown = self.readable(at);
                    self.history(
                        Some(&b.node),
                        "deadline_rescheduled",
                        format!(
                            "deadline of task {} follows clock {name} ({why}): due {shown}",
                            b.node
                        ),
                        json!({ "task": b.task, "clock": name, "due_at": millis(at) }),
                    );
                    Some(millis(at))
                }
            };
            match self.cs.new_tasks.iter_mut().find(|t| t.id == b.task) {
                Some(t) => t.due_at = due_ms,
                None => self.cs.task_due.push((b.task.clone(), due_ms)),
            }
            keep.push(b);
        }
        if let Some(state) = self.cs.state.clocks.get_mut(name) {
            state.bound = keep;
        }
        Ok(())
    }

    pub(super) fn clock(&mut self, node: &str, op: &ClockOp, name: &str) -> Result<(), RunError> {
        let decl = self
            .model
            .clocks
            .iter()
            .find(|c| c.name.name == name)
            .ok_or_else(|| RunError::NoClock(name.to_string()))?;
        let cal = decl
            .calendar
            .as_ref()
            .or(self.model.calendar.as_ref())
            .map(|c| c.name.clone());
        // The data says what the text says, for pages that explain a deadline
        // (`crate::deadlines`): the limit, the pause, the extension and its reason.
        let (text, data) = match op {
            ClockOp::Start { duration } => {
                let expr = duration
                    .as_ref()
                    .or(decl.deadline.as_ref().map(|d| &d.duration))
                    .ok_or_else(|| RunError::ClockWithoutDuration(name.to_string()))?;
                self.clock_start(node, name, cal, expr)?
            }
            ClockOp::Pause => self.clock_pause(name, cal)?,
            ClockOp::Resume => self.clock_resume(node, name, cal)?,
            ClockOp::Stop => self.clock_stop(name)?,
            ClockOp::Extend { by, reason } => self.clock_extend(node, name, cal, by, reason)?,
        };
        let mut data = data;
        data["clock"] = json!(name);
        self.history(Some(node), "clock", text, data);
        Ok(())
    }

    /// `e` after `from` in calendar `cal`, with the inputs (amount, unit) to keep.
    fn clock_add(
        &mut self,
        cal: Option<&str>,
        from: DateTime<Utc>,
        e: &Expr,
    ) -> Result<(due::Due, i64, yimen_dsl::model::DurationUnit), RunError> {
        let v = self.eval(e)?;
        let (amount, unit) = v.to_duration().map_err(RunError::Duration)?;
        let due = self.due.add(cal, from, amount, unit);
        if due.provisional {
            self.cs.provisional = true;
        }
        self.note_due(&due, unit);
        Ok((due, amount, unit))
    }

    /// Cancels the escalation timers of clock `name`.
    fn cancel_ladder(&mut self, name: &str) {
        if let Some(s) = self.cs.state.clocks.get_mut(name) {
            let ids = std::mem::take(&mut s.timers);
            self.cs.cancel_timers.extend(ids);
        }
    }

    fn clock_start(
        &mut self,
        node: &str,
        name: &str,
        cal: Option<String>,
        expr: &Expr,
    ) -> Result<(String, Json), RunError> {
        let (due, amount, unit) = self.clock_add(cal.as_deref(), self.now, expr)?;
        self.cancel_ladder(name);
        // Task deadlines already bound to it (a restart) follow the new due time.
        let bound = self
            .cs
            .state
            .clocks
            .get_mut(name)
            .map(|s| std::mem::take(&mut s.bound))
            .unwrap_or_default();
        self.cs.state.clocks.insert(
            name.to_string(),
            ClockState {
                due_at: Some(millis(due.at)),
                remaining_minutes: None,
                running: true,
                provisional: due.provisional,
                timers: Vec::new(),
                basis: Some(ClockBasis::Add {
                    from: millis(self.now),
                    amount,
                    unit,
                    calendar: cal.clone(),
                }),
                bound,
            },
        );
        self.schedule_clock(node, name, due.at)?;
        self.follow_clock(name, Some(due.at), "started")?;
        Ok((
            format!("clock {name} started, due {}", self.readable(due.at)),
            json!({ "op": "started", "amount": amount, "unit": unit, "due_at": millis(due.at) }),
        ))
    }

    fn clock_pause(&mut self, name: &str, cal: Option<String>) -> Result<(String, Json), RunError> {
        self.cancel_ladder(name);
        let s = self
            .cs
            .state
            .clocks
            .get_mut(name)
            .ok_or_else(|| RunError::ClockNotStarted(name.to_string()))?;
        let mut paused = false;
        if s.running {
            let due = s.due_at.and_then(DateTime::from_timestamp_millis);
            // Remaining working time, so a clock paused over a holiday loses nothing.
            s.remaining_minutes = due.map(|d| {
                self.due
                    .office_minutes_between(cal.as_deref(), self.now, d)
                    .max(0)
            });
            s.due_at = None;
            s.basis = None;
            s.running = false;
            paused = true;
        }
        let left = s.remaining_minutes.unwrap_or(0);
        if paused {
            self.follow_clock(name, None, "paused")?;
        }
        Ok((
            format!("clock {name} paused, {left} office minutes left"),
            json!({ "op": "paused", "remaining_minutes": left, "was_running": paused }),
        ))
    }

    fn clock_resume(
        &mut self,
        node: &str,
        name: &str,
        cal: Option<String>,
    ) -> Result<(String, Json), RunError> {
        let s = self
            .cs
            .state
            .clocks
            .get_mut(name)
            .ok_or_else(|| RunError::ClockNotStarted(name.to_string()))?;
        let mut due = None;
        let mut minutes = None;
        if !s.running {
            let left = s.remaining_minutes.take().unwrap_or(0);
            minutes = Some(left);
            let d = self.due.add_office_minutes(cal.as_deref(), self.now, left);
            s.due_at = Some(millis(d.at));
            s.running = true;
            s.provisional = d.provisional;
            s.basis = Some(ClockBasis::OfficeMinutes {
                from: millis(self.now),
                minutes: left,
                calendar: cal.clone(),
            });
            self.cs.provisional |= d.provisional;
            due = Some(d.at);
        }
        if let Some(due) = due {
            self.schedule_clock(node, name, due)?;
            self.follow_clock(name, Some(due), "resumed")?;
        }
        Ok((
            format!("clock {name} resumed"),
            json!({ "op": "resumed", "minutes": minutes, "due_at": due.map(millis) }),
        ))
    }

    fn clock_stop(&mut self, name: &str) -> Result<(String, Json), RunError> {
        self.cancel_ladder(name);
        self.follow_clock(name, None, "stopped")?;
        if let Some(s) = self.cs.state.clocks.get_mut(name) {
            s.running = false;
            s.due_at = None;
            s.remaining_minutes = None;
            s.basis = None;
            // A stopped clock no longer carries deadlines.
            s.bound.clear();
        }
        Ok((format!("clock {name} stopped"), json!({ "op": "stopped" })))
    }

    fn clock_extend(
        &mut self,
        node: &str,
        name: &str,
        cal: Option<String>,
        by: &Expr,
        reason: &str,
    ) -> Result<(String, Json), RunError> {
        let current = self
            .cs
            .state
            .clocks
            .get(name)
            .cloned()
            .ok_or_else(|| RunError::ClockNotStarted(name.to_string()))?;
        if let Some(due_ms) = current.due_at {
            let from = DateTime::from_timestamp_millis(due_ms).unwrap_or(self.now);
            let (due, amount, unit) = self.clock_add(cal.as_deref(), from, by)?;
            self.cancel_ladder(name);
            let basis = match current.basis {
                Some(b) => ClockBasis::Extended {
                    base: Box::new(b),
                    amount,
                    unit,
                    calendar: cal.clone(),
                },
                // A state written before the inputs were kept: from the due time.
                None => ClockBasis::Add {
                    from: due_ms,
                    amount,
                    unit,
                    calendar: cal.clone(),
                },
            };
            if let Some(s) = self.cs.state.clocks.get_mut(name) {
                s.due_at = Some(millis(due.at));
                s.provisional = current.provisional || due.provisional;
                s.basis = Some(basis);
            }
            self.schedule_clock(node, name, due.at)?;
            self.follow_clock(name, Some(due.at), "extended")?;
            Ok((
                format!(
                    "clock {name} extended to {}: {reason}",
                    self.readable(due.at)
                ),
                json!({
                    "op": "extended", "amount": amount, "unit": unit, "reason": reason,
                    "due_at": millis(due.at),
                }),
            ))
        } else {
            let from = self.now;
            let (until, amount, unit) = self.clock_add(cal.as_deref(), from, by)?;
            let extra = self
                .due
                .office_minutes_between(cal.as_deref(), from, until.at);
            if let Some(s) = self.cs.state.clocks.get_mut(name) {
                s.remaining_minutes = Some(s.remaining_minutes.unwrap_or(0) + extra);
            }
            Ok((
                format!("clock {name} extended (paused): {reason}"),
                json!({
                    "op": "extended", "amount": amount, "unit": unit, "reason": reason,
                    "paused": true, "minutes": extra,
                }),
            ))
        }
    }

    pub(super) fn schedule_clock(
        &mut self,
        node: &str,
        name: &str,
        due: DateTime<Utc>,
    ) -> Result<(), RunError> {
        let Some(deadline) = self
            .model
            .clocks
            .iter()
            .find(|c| c.name.name == name)
            .and_then(|c| c.deadline.as_ref())
        else {
            return Ok(());
        };
        self.ladder(node, None, deadline, Some((name, due)))?;
        Ok(())
    }
}
