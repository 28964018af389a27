//! Timers and escalations: deadlines of task nodes, the ladders of escalation rungs.

use super::*;

impl Run<'_> {
    pub(super) fn timer(&mut self, timer: TimerRef) {
        let kind = match TimerKind::parse(&timer.kind) {
            Ok(kind) => kind,
            Err(UnknownTimerKind(other)) => {
                self.history(
                    Some(&timer.node),
                    "timer",
                    format!("timer of unknown kind {other} ignored"),
                    json!({ "timer": timer.id }),
                );
                return;
            }
        };
        match kind {
            TimerKind::Wait => {
                let pos =
                    self.cs.state.tokens.iter().position(
                        |t| matches!(&t.wait, Wait::Timer { timer: id } if *id == timer.id),
                    );
                if let Some(pos) = pos {
                    let token = self.cs.state.tokens.remove(pos);
                    self.history(
                        Some(&token.node),
                        "timer",
                        format!("wait at {} over", token.node),
                        json!({ "timer": timer.id }),
                    );
                    self.go_next(&token.node);
                }
            }
            TimerKind::MessageTimeout => {
                let pos = self.cs.state.tokens.iter().position(
                    |t| matches!(&t.wait, Wait::Message { timer: Some(id), .. } if *id == timer.id),
                );
                if let Some(pos) = pos {
                    let token = self.cs.state.tokens.remove(pos);
                    let target = match self.node(&token.node).map(|n| &n.kind) {
                        Some(NodeKind::WaitMessage {
                            timeout: Some((_, target)),
                            message,
                            ..
                        }) => {
                            self.history(
                                Some(&token.node),
                                "timeout",
                                format!("no message {} in time", message.name),
                                json!({ "timer": timer.id }),
                            );
                            Some(target.name.clone())
                        }
                        _ => None,
                    };
                    if let Some(t) = target {
                        self.ready.push_back((t, Some(token.node)));
                    }
                }
            }
            TimerKind::Escalation | TimerKind::ClockEscalation => self.escalate(timer, kind),
        }
    }

    /// Runs one rung of an escalation ladder (the timer's payload names it): of a named
    /// clock's ladder for a `clock_escalation`, of its task's deadline otherwise.
    pub(super) fn escalate(&mut self, timer: TimerRef, kind: TimerKind) {
        let due_at = timer.payload.get("due_at").and_then(Json::as_i64);
        let clock_name = timer
            .payload
            .get("clock")
            .and_then(Json::as_str)
            .map(str::to_string);
        let signal = |light: Light, level: i64| NewSignal {
            id: timer.id.clone(),
            node: timer.node.clone(),
            task_id: timer.task.as_ref().map(|t| t.id.clone()),
            clock: clock_name.clone(),
            light,
            level,
            due_at,
        };
        if timer.payload.get("signal").and_then(Json::as_str) == Some("due") {
            // The due time passed on a ladder without an `at due` rung: only the red signal.
            self.cs.signals.push(signal(Light::Red, 0));
            self.history(
                Some(&timer.node),
                "signal",
                format!("due time passed at {}", timer.node),
                json!({ "timer": timer.id, "light": "red", "level": 0, "clock": clock_name, "task": timer.task.as_ref().map(|t| &t.id) }),
            );
            return;
        }
        let rung = timer
            .payload
            .get("rung")
            .and_then(Json::as_u64)
            .unwrap_or(0) as usize;
        let ladder = if kind == TimerKind::ClockEscalation {
            let clock = timer
                .payload
                .get("clock")
                .and_then(Json::as_str)
                .unwrap_or("");
            self.model
                .clocks
                .iter()
                .find(|c| c.name.name == clock)
                .and_then(|c| c.deadline.as_ref())
        } else {
            match self.node(&timer.node).map(|n| &n.kind) {
                Some(NodeKind::Task(t)) => t.deadline.as_ref(),
                _ => None,
            }
        };
        let Some(esc) = ladder.and_then(|d| d.ladder.get(rung)) else {
            return;
        };
        let light = match esc.when {
            EscalationWhen::Before(_) => Light::Yellow,
            EscalationWhen::AtDue | EscalationWhen::After(_) => Light::Red,
        };
        self.cs.signals.push(signal(light, i64::from(esc.level)));
        self.history(
            Some(&timer.node),
            "escalation",
            format!("escalation level {} at {}", esc.level, timer.node),
            json!({ "timer": timer.id, "level": esc.level, "rung": rung, "light": light.as_str(), "task": timer.task.as_ref().map(|t| &t.id) }),
        );
        let holder = timer
            .task
            .as_ref()
            .and_then(|t| t.locked_by.clone().or_else(|| t.assignee.clone()));
        if let Some(item) = timer.task.as_ref().and_then(|t| t.item.clone())
            && let Some(NodeKind::Task(Task {
                for_each: Some(fe), ..
            })) = self.node(&timer.node).map(|n| &n.kind)
        {
            self.item = Some((fe.item.name.clone(), item));
        }
        let actions = esc.actions.clone();
        let node = timer.node.clone();
        let ctx = json!({ "level": esc.level, "task": timer.task.as_ref().map(|t| &t.id), "holder": holder, "timer": timer.id });
        if let Err(e) = self.actions(&node, &actions, &ctx) {
            self.history(
                Some(&node),
                "incident",
                format!("escalation failed: {e}"),
                json!({}),
            );
        }
        self.item = None;
    }

    pub(super) fn note_due(&mut self, due: &due::Due, unit: yimen_dsl::model::DurationUnit) {
        if matches!(
            unit,
            yimen_dsl::model::DurationUnit::WorkDays
                | yimen_dsl::model::DurationUnit::WorkHours
                | yimen_dsl::model::DurationUnit::Days
        ) {
            // Every calendar-based due time explains itself in the timeline (ledger).
            let mut text = format!("due {}", self.readable(due.at));
            if due.provisional {
                text.push_str(
                    " — provisional: the calendar lacks a year it reaches into; \
                     recomputed when that year's data is added",
                );
            }
            self.history(
                None,
                "due_computed",
                text,
                json!({
                    "due_at": due.at.to_rfc3339(),
                    "provisional": due.provisional,
                    "explanation": due.explanation,
                }),
            );
        }
    }

    pub(super) fn due_from_expr(
        &mut self,
        expr: &Expr,
        from: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, RunError> {
        let v = self.eval(expr)?;
        let (amount, unit) = v.to_duration().map_err(RunError::Duration)?;
        let calendar = self.model.calendar.as_ref().map(|c| c.name.clone());
        let due = self.due.add(calendar.as_deref(), from, amount, unit);
        if due.provisional {
            self.cs.provisional = true;
        }
        self.note_due(&due, unit);
        // The inputs, so that a due time can be recomputed when the calendar data changes.
        self.last_due = json!({
            "from": millis(from),
            "amount": amount,
            "unit": unit,
            "calendar": calendar,
            "provisional": due.provisional,
            "explanation": due.explanation,
        });
        Ok(due.at)
    }

    /// Schedules a deadline's ladder; returns the due time (millis). `clock`: the ladder of
    /// that named clock, due at the given time. A task deadline bound to a started clock
    /// (`deadline ... clock NAME`) is due when the clock is and is recorded on the clock, so
    /// that pausing, resuming and extending the clock move it; while the clock is paused it is
    /// suspended (`None`: no due time, no timers).
    pub(super) fn ladder(
        &mut self,
        node: &str,
        task: Option<&str>,
        deadline: &Deadline,
        clock: Option<(&str, DateTime<Utc>)>,
    ) -> Result<Option<i64>, RunError> {
        if let Some((name, due)) = clock {
            let base = self.clock_base(name);
            let ids = self.rungs(node, task, deadline, due, Some(name), base)?;
            if let Some(state) = self.cs.state.clocks.get_mut(name) {
                state.timers = ids;
            }
            return Ok(Some(millis(due)));
        }
        if let (Some(task), Some(c)) = (task, &deadline.clock)
            && let Some(state) = self.cs.state.clocks.get(&c.name)
            // Started and not stopped: running, or paused with time left.
            && (state.running || state.remaining_minutes.is_some())
        {
            let name = c.name.clone();
            let running_due = state.due_at.filter(|_| state.running);
            let mut bound = BoundDeadline {
                task: task.to_string(),
                node: node.to_string(),
                item: self.item.as_ref().map(|(_, v)| v.clone()),
                timers: Vec::new(),
            };
            let due = match running_due {
                Some(ms) => {
                    let at = DateTime::from_timestamp_millis(ms).unwrap_or(self.now);
                    let base = self.clock_base(&name);
                    bound.timers = self.rungs(node, Some(task), deadline, at, None, base)?;
                    Some(ms)
                }
                None => {
                    self.history(
                        Some(node),
                        "deadline_suspended",
                        format!(
                            "deadline of task {node} suspended: clock {name} is paused; it \
                             follows the clock when the clock resumes"
                        ),
                        json!({ "task": task, "clock": name }),
                    );
                    None
                }
            };
            if let Some(s) = self.cs.state.clocks.get_mut(&name) {
                s.bound.push(bound);
            }
            return Ok(due);
        }
        let due = self.due_from_expr(&deadline.duration, self.now)?;
        let base = self.last_due.clone();
        self.rungs(node, task, deadline, due, None, base)?;
        Ok(Some(millis(due)))
    }

    /// Schedules the rungs of `deadline` due at `due`; `clock`: they are that clock's own
    /// (`clock_escalation`). `base`: the inputs of `due`, kept in each payload.
    pub(super) fn rungs(
        &mut self,
        node: &str,
        task: Option<&str>,
        deadline: &Deadline,
        due: DateTime<Utc>,
        clock: Option<&str>,
        base: Json,
    ) -> Result<Vec<String>, RunError> {
        let calendar = self.model.calendar.as_ref().map(|c| c.name.clone());
        let base_provisional = base.get("provisional").and_then(Json::as_bool) == Some(true);
        let mut ids = Vec::new();
        for (rung, esc) in deadline.ladder.iter().enumerate() {
            let (at, offset, provisional) = match &esc.when {
                EscalationWhen::AtDue => (due, json!({ "when": "at" }), false),
                EscalationWhen::Before(d) => {
                    let v = self.eval(d)?;
                    let (amount, unit) = v.to_duration().map_err(RunError::Duration)?;
                    let before = self.due.before(calendar.as_deref(), due, amount, unit);
                    if before.provisional {
                        self.cs.provisional = true;
                    }
                    (
                        before.at,
                        json!({ "when": "before", "amount": amount, "unit": unit }),
                        before.provisional,
                    )
                }
                EscalationWhen::After(d) => {
                    let at = self.due_from_expr(d, due)?;
                    let provisional =
                        self.last_due.get("provisional").and_then(Json::as_bool) == Some(true);
                    let v = self.eval(d)?;
                    let (amount, unit) = v.to_duration().map_err(RunError::Duration)?;
                    (
                        at,
                        json!({ "when": "after", "amount": amount, "unit": unit }),
                        provisional,
                    )
                }
            };
            let mut inputs = base.clone();
            if provisional
                && !base_provisional
                && let Some(obj) = inputs.as_object_mut()
            {
                obj.insert("provisional".into(), json!(true));
            }
            let payload = json!({
                "rung": rung,
                "level": esc.level,
                "clock": clock,
                "due": inputs,
                "offset": offset,
                "due_at": millis(due),
            });
            ids.push(self.rung_timer(node, task, clock, at, payload));
        }
        // A ladder without an `at due` rung still records the red signal when the due time
        // passes (a timer without actions); a deadline without a ladder records none.
        if !deadline.ladder.is_empty()
            && !deadline
                .ladder
                .iter()
                .any(|e| matches!(e.when, EscalationWhen::AtDue))
        {
            let payload = json!({
                "signal": "due",
                "clock": clock,
                "due": base,
                "offset": { "when": "at" },
                "due_at": millis(due),
            });
            ids.push(self.rung_timer(node, task, clock, due, payload));
        }
        Ok(ids)
    }

    /// Schedules one timer of an escalation ladder at `at` (not before now); its id.
    fn rung_timer(
        &mut self,
        node: &str,
        task: Option<&str>,
        clock: Option<&str>,
        at: DateTime<Utc>,
        payload: Json,
    ) -> String {
        let id = new_id();
        self.cs.new_timers.push(NewTimer {
            id: id.clone(),
            kind: if clock.is_some() {
                TimerKind::ClockEscalation
            } else {
                TimerKind::Escalation
            },
            node: node.to_string(),
            task_id: task.map(str::to_string),
            due_at: millis(at.max(self.now)),
            payload,
        });
        id
    }

    /// Records a calendar-based due time in the timeline, with its explanation (which calendar
    /// and data version, holidays skipped, make-up days counted) and whether it is provisional.
    /// `at` as people read it: in the zone of the process's calendar, with the offset.
    pub(super) fn readable(&self, at: DateTime<Utc>) -> String {
        let calendar = self.model.calendar.as_ref().map(|c| c.name.as_str());
        crate::clock::readable(&at.with_timezone(&self.due.time_zone(calendar)))
    }
}
