//! Task nodes: creating their tasks (one, or one per item) and completing them.

use super::*;

impl Run<'_> {
    pub(super) fn complete_task(
        &mut self,
        task: TaskRef,
        outcome: Option<String>,
        vars: Map<String, Json>,
    ) -> Result<(), EngineError> {
        let Some(node) = self
            .node(&task.node)
            .filter(|n| matches!(n.kind, NodeKind::Task(_)))
        else {
            return self.complete_follow_up(&task, outcome, &vars);
        };
        let NodeKind::Task(spec) = &node.kind else {
            return Err(EngineError::Internal(format!(
                "{} is not a task",
                task.node
            )));
        };
        let (chosen, accepted) = self.completion_inputs(&task, spec, outcome.as_deref(), &vars)?;
        let pos = self.cs.state.tokens.iter().position(|t| {
            t.node == task.node
                && matches!(&t.wait, Wait::Tasks { pending, .. } if pending.contains(&task.id))
        });
        let Some(pos) = pos else {
            return Err(EngineError::conflict(format!(
                "task {} is no longer awaited by its case",
                task.id
            )));
        };
        self.history(
            Some(&task.node),
            "task_completed",
            format!("{} completed: {}", task.node, chosen.key.name),
            json!({ "task": task.id, "outcome": chosen.key.name }),
        );
        for (name, value) in accepted {
            self.set_var(Some(&task.node), &name, value);
        }
        let token = &mut self.cs.state.tokens[pos];
        let Wait::Tasks { pending, done } = &mut token.wait else {
            return Err(EngineError::Internal(
                "token is not waiting for tasks".into(),
            ));
        };
        pending.retain(|p| p != &task.id);
        done.push(Done {
            task: task.id.clone(),
            outcome: chosen.key.name.clone(),
            completed_by: self.actor.name.clone(),
            completed_by_key: self.actor.key(),
        });
        if pending.is_empty() {
            let done = std::mem::take(done);
            self.cs.state.tokens.remove(pos);
            self.finish_task_node(&task.node, spec, &done);
        }
        Ok(())
    }

    /// A follow-up task of an escalation (`task chase ...`): no flow waits for it, and it sets
    /// no variables.
    fn complete_follow_up(
        &mut self,
        task: &TaskRef,
        outcome: Option<String>,
        vars: &Map<String, Json>,
    ) -> Result<(), EngineError> {
        if let Some(name) = vars.keys().next() {
            return Err(EngineError::Invalid {
                problems: vec![Problem::new(name, "a follow-up task sets no variables")],
            });
        }
        let outcome = outcome.unwrap_or_else(|| "done".into());
        self.history(
            Some(&task.node),
            "task_completed",
            format!("follow-up {} completed: {outcome}", task.node),
            json!({ "task": task.id, "outcome": outcome, "follow_up": true }),
        );
        Ok(())
    }

    /// The outcome chosen and the variables given to complete `task`, checked against its
    /// node: every problem at once, as 422 details.
    fn completion_inputs<'s>(
        &self,
        task: &TaskRef,
        spec: &'s Task,
        outcome: Option<&str>,
        vars: &Map<String, Json>,
    ) -> Result<(&'s yimen_dsl::model::Outcome, Map<String, Json>), EngineError> {
        let mut problems = Vec::new();
        let chosen = match (outcome, spec.outcomes.as_slice()) {
            (Some(o), outs) => match outs.iter().find(|x| x.key.name == o) {
                Some(x) => Some(x),
                None => {
                    problems.push(Problem::new(
                        "outcome",
                        format!(
                            "`{o}` is not an outcome of {}; expected one of: {}",
                            task.node,
                            outs.iter()
                                .map(|x| x.key.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                    None
                }
            },
            (None, [only]) => Some(only),
            (None, outs) => {
                problems.push(Problem::new(
                    "outcome",
                    format!(
                        "is required; expected one of: {}",
                        outs.iter()
                            .map(|x| x.key.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                None
            }
        };
        let mut accepted = Map::new();
        for (name, value) in vars {
            let field = spec.fields.iter().find(|f| &f.var.name == name);
            let in_requires = chosen.is_some_and(|c| c.requires.iter().any(|r| &r.name == name));
            if field.is_none() && !in_requires {
                problems.push(Problem::new(name, "is not a field of this task"));
                continue;
            }
            let Some(decl) = self.model.vars.iter().find(|v| &v.name.name == name) else {
                problems.push(Problem::new(name, "is not a variable of this process"));
                continue;
            };
            match input(
                self.model,
                self.data,
                &self.bounds.limits,
                decl,
                value,
                self.now,
            ) {
                Ok(v) => {
                    accepted.insert(name.clone(), v);
                }
                Err(e) => problems.push(Problem::new(name, e.to_string())),
            }
        }
        let given = |name: &str| vars.get(name).is_some_and(|v| !v.is_null());
        for f in &spec.fields {
            if f.required && !given(&f.var.name) {
                problems.push(Problem::new(&f.var.name, "is required"));
            }
        }
        if let Some(c) = chosen {
            for r in &c.requires {
                if !given(&r.name)
                    && !spec
                        .fields
                        .iter()
                        .any(|f| f.required && f.var.name == r.name)
                {
                    problems.push(Problem::new(
                        &r.name,
                        format!("is required for outcome `{}`", c.key.name),
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(EngineError::Invalid { problems });
        }
        let Some(chosen) = chosen else {
            return Err(EngineError::Internal("no outcome chosen".into()));
        };
        Ok((chosen, accepted))
    }

    pub(super) fn finish_task_node(&mut self, node: &str, spec: &Task, done: &[Done]) {
        let mut r = Map::new();
        if let Some(last) = done.last() {
            r.insert("completed_by".into(), json!(last.completed_by));
            if let Some(key) = &last.completed_by_key {
                r.insert("completed_by_key".into(), json!(key));
            }
            r.insert("outcome".into(), json!(last.outcome));
        }
        r.insert(
            "outcomes".into(),
            Json::Array(done.iter().map(|d| json!(d.outcome)).collect()),
        );
        r.insert("completed_at".into(), json!(self.now.to_rfc3339()));
        self.cs.state.results.insert(node.to_string(), r);
        let next = spec
            .outcomes
            .iter()
            .find(|o| done.iter().any(|d| d.outcome == o.key.name))
            .or_else(|| spec.outcomes.first())
            .map(|o| o.next.name.clone());
        match next {
            Some(next) => self.ready.push_back((next, Some(node.to_string()))),
            None => self.incident(node, None, "the task has no outcome to follow".into()),
        }
    }

    pub(super) fn queue(&self, q: &QueueRef) -> Result<(String, Option<String>), RunError> {
        let mut name = q.role.name.clone();
        if let Some(key) = &q.key {
            name = format!("{name}:{}", self.eval(key)?.display());
        }
        let org_unit = self
            .model
            .roles
            .iter()
            .find(|r| r.name.name == q.role.name)
            .and_then(|r| r.scope.as_ref())
            .and_then(|s| self.cs.vars.get(&s.name))
            .map(display_json);
        Ok((name, org_unit))
    }

    pub(super) fn create_tasks(
        &mut self,
        node: &yimen_dsl::model::Node,
        task: &Task,
    ) -> Result<(), RunError> {
        let id = node.id.name.as_str();
        let items: Vec<Option<Json>> = match &task.for_each {
            None => vec![None],
            Some(fe) => match self.eval(&fe.list)? {
                Value::List(items) => items.into_iter().map(|v| Some(v.to_json())).collect(),
                Value::Null => Vec::new(),
                other => return Err(RunError::NotAList { kind: other.kind() }),
            },
        };
        if items.len() > self.bounds.limits.fan_out {
            let fan_out = RunError::FanOut {
                items: items.len(),
                max: self.bounds.limits.fan_out,
            };
            return Err(self.over_limit(id, fan_out));
        }
        if items.is_empty() {
            self.history(Some(id), "skipped", format!("{id}: no items"), json!({}));
            self.finish_task_node(id, task, &[]);
            return Ok(());
        }
        let mut pending = Vec::new();
        for item in items {
            self.item = match (&task.for_each, &item) {
                (Some(fe), Some(v)) => Some((fe.item.name.clone(), v.clone())),
                _ => None,
            };
            let result = self.create_task(node, task, item);
            self.item = None;
            pending.push(result?);
        }
        self.cs.state.tokens.push(Token {
            node: id.to_string(),
            wait: Wait::Tasks {
                pending,
                done: Vec::new(),
            },
        });
        Ok(())
    }

    pub(super) fn create_task(
        &mut self,
        node: &yimen_dsl::model::Node,
        task: &Task,
        item: Option<Json>,
    ) -> Result<String, RunError> {
        let id = node.id.name.as_str();
        let (queue, org_unit) = self.queue(&task.queue)?;
        // Who, by name (for people) and key (who it is: what a claim is compared with).
        let (assignee, assignee_key) = match &task.assignee {
            None => (None, None),
            Some(Assignee::CompletedBy(n)) => {
                let result = self.cs.state.results.get(&n.name);
                let field = |name: &str| {
                    result
                        .and_then(|r| r.get(name))
                        .and_then(Json::as_str)
                        .map(str::to_string)
                };
                (field("completed_by"), field("completed_by_key"))
            }
            Some(Assignee::StartedBy) => match &self.cs.state.started_by {
                Some(a) => (Some(a.name.clone()), a.key()),
                None => (None, None),
            },
            Some(Assignee::Expr(e)) => (Some(self.eval(e)?.display()), None),
        };
        let task_id = new_id();
        let mut due_at = None;
        if let Some(deadline) = &task.deadline {
            due_at = self.ladder(id, Some(&task_id), deadline, None)?;
        }
        self.cs.new_tasks.push(NewTask {
            id: task_id.clone(),
            node: id.to_string(),
            label: node.label.clone(),
            queue: queue.clone(),
            org_unit,
            assignee,
            assignee_key,
            item: item.clone(),
            due_at,
        });
        let shown_item = item
            .as_ref()
            .map(|i| format!(" [{}]", display_json(i)))
            .unwrap_or_default();
        self.history(
            Some(id),
            "task_created",
            format!("task {id}{shown_item} for {queue}"),
            json!({ "task": task_id, "queue": queue, "due_at": due_at }),
        );
        self.actions(id, &task.on_enter, &json!({}))?;
        Ok(task_id)
    }
}
