//! Actions of a node (set, notify, document, start a child) and the text they fill in.

use super::*;

impl Run<'_> {
    pub(super) fn actions(
        &mut self,
        node: &str,
        actions: &[Action],
        ctx: &Json,
    ) -> Result<(), RunError> {
        for action in actions {
            match action {
                Action::Assign { var, value, .. } => {
                    let v = self.eval(value)?;
                    let json = match self.model.vars.iter().find(|d| d.name.name == var.name) {
                        Some(decl) => typed(
                            self.model,
                            self.data,
                            &self.bounds.limits,
                            &decl.ty,
                            &v.to_json(),
                        )
                        .map_err(|source| RunError::Set {
                            var: var.name.clone(),
                            source,
                        })?,
                        None => v.to_json(),
                    };
                    self.set_var(Some(node), &var.name, json);
                }
                Action::Notify {
                    target, message, ..
                } => self.notify(node, target, message, ctx)?,
                Action::Ledger { entry, .. } => {
                    let text = self.fill(entry);
                    self.history(Some(node), "ledger", text, json!({}));
                }
                Action::Issue { document, .. } => self.issue(node, &document.name)?,
                Action::Clock { op, clock, .. } => self.clock(node, op, &clock.name)?,
                Action::FollowUp {
                    id, label, queue, ..
                } => self.follow_up(node, &id.name, label, queue)?,
            }
        }
        Ok(())
    }

    /// Creates a follow-up task (`task chase ...` of an escalation): no flow waits for it.
    fn follow_up(
        &mut self,
        node: &str,
        id: &str,
        label: &Option<String>,
        queue: &QueueRef,
    ) -> Result<(), RunError> {
        let (q, org_unit) = self.queue(queue)?;
        let task_id = new_id();
        self.cs.new_tasks.push(NewTask {
            id: task_id.clone(),
            node: id.to_string(),
            label: label.clone(),
            queue: q.clone(),
            org_unit,
            assignee: None,
            assignee_key: None,
            item: None,
            due_at: None,
        });
        self.history(
            Some(node),
            "task_created",
            format!("follow-up task {id} for {q}"),
            json!({ "task": task_id, "queue": q, "follow_up": true }),
        );
        Ok(())
    }

    /// Issues document `document`, unless it is public and the case names a minor.
    fn issue(&mut self, node: &str, document: &str) -> Result<(), RunError> {
        let decl = self
            .model
            .documents
            .iter()
            .find(|d| d.name.name == document)
            .ok_or_else(|| RunError::NoDocument(document.to_string()))?;
        if decl.public
            && let Some(var) = self.minor_in_case()
        {
            let label = decl.label.clone().unwrap_or_else(|| decl.name.name.clone());
            self.history(
                Some(node),
                "document_withheld",
                format!(
                    "{label} not issued: `{var}` is the ID number of a person under 18 \
                     on the case's date, and a public document never names a minor"
                ),
                json!({ "name": decl.name.name, "var": var }),
            );
            return Ok(());
        }
        let content = match crate::documents::render(&self.context(), decl) {
            Ok(content) => content,
            Err(e) if e.over_limit => {
                let field = format!("document {}", decl.name.name);
                return Err(self.over_limit(&field, RunError::Document(e)));
            }
            Err(e) => return Err(RunError::Document(e)),
        };
        let id = new_id();
        self.cs.documents.push(NewDocument {
            id: id.clone(),
            name: decl.name.name.clone(),
            label: decl.label.clone(),
            public: decl.public,
            content,
        });
        self.history(
            Some(node),
            "document",
            format!(
                "issued {}",
                decl.label.clone().unwrap_or_else(|| decl.name.name.clone())
            ),
            json!({ "document": id, "name": decl.name.name }),
        );
        Ok(())
    }

    /// Queues a notification in the outbox and records it.
    fn notify(
        &mut self,
        node: &str,
        target: &NotifyTarget,
        message: &str,
        ctx: &Json,
    ) -> Result<(), RunError> {
        let text = self.fill(message);
        let (channel, url) = match target {
            NotifyTarget::Role(q) => (format!("role:{}", self.queue(q)?.0), None),
            NotifyTarget::Subject => (crate::auth::SUBJECT_INBOX.to_string(), None),
            NotifyTarget::Holder => ("holder".to_string(), None),
            NotifyTarget::Channel(c) => {
                let url = self
                    .model
                    .channels
                    .iter()
                    .find(|ch| ch.name.name == c.name)
                    .and_then(|ch| self.data.config.get(&ch.url_config.name))
                    .cloned();
                (format!("webhook:{}", c.name), url)
            }
        };
        // The channel's entry of the configuration travels with the row (`url`: a URL, or
        // the mapping of a WeCom, DingTalk or SMS channel, docs/channels.md); an SMS to a
        // case's number takes the number now, as the case holds it.
        let to = url.as_ref().and_then(|entry| self.sms_phones(entry));
        let id = new_id();
        let mut payload = json!({
            "instance": self.instance_id,
            "node": node,
            "message": text,
            "url": url,
            "context": ctx,
            "at": self.now.to_rfc3339(),
        });
        if let (Some(to), Json::Object(map)) = (to, &mut payload) {
            map.insert("to".into(), to);
        }
        self.cs.outbox.push(NewOutbox {
            id: id.clone(),
            channel: channel.clone(),
            dedup_key: format!("{}:{id}", self.instance_id),
            payload,
        });
        self.history(
            Some(node),
            "notification",
            format!("notify {channel}: {text}"),
            json!({ "outbox": id, "channel": channel }),
        );
        Ok(())
    }

    /// Records an action of an office that oversees the case; the queue it names (if any) is
    /// told in its inbox.
    pub(super) fn oversee(&mut self, action: NewAction) {
        let mut data = json!({ "kind": action.kind, "text": action.text, "queue": action.queue, "action": action.id });
        if let Some(queue) = &action.queue {
            let id = new_id();
            let channel = format!("role:{queue}");
            self.cs.outbox.push(NewOutbox {
                id: id.clone(),
                channel,
                dedup_key: format!("{}:{id}", self.instance_id),
                payload: json!({
                    "instance": self.instance_id,
                    "node": Json::Null,
                    "message": action.text,
                    "url": Json::Null,
                    "context": { "oversight": action.kind },
                    "at": self.now.to_rfc3339(),
                }),
            });
            data["outbox"] = json!(id);
        }
        self.history(
            None,
            "oversight",
            format!("{}: {}", action.kind, action.text),
            data,
        );
        self.cs.actions.push(action);
    }

    /// The numbers an SMS channel's entry takes from a case variable (`phones_from`): the
    /// variable's text, or its list of text; `None` for any other channel.
    fn sms_phones(&self, entry: &Json) -> Option<Json> {
        let Ok(yimen_dsl::channel::Channel::Sms {
            phones: yimen_dsl::channel::Phones::Var(var),
            ..
        }) = yimen_dsl::channel::parse("channel", entry)
        else {
            return None;
        };
        let numbers: Vec<Json> = match self.cs.vars.get(&var) {
            Some(Json::String(n)) if !n.trim().is_empty() => vec![json!(n.trim())],
            Some(Json::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str())
                .filter(|n| !n.trim().is_empty())
                .map(|n| json!(n.trim()))
                .collect(),
            _ => Vec::new(),
        };
        Some(Json::Array(numbers))
    }

    /// Fills `{{ var }}` placeholders with (masked) case data.
    pub(super) fn context(&self) -> crate::documents::Context<'_> {
        crate::documents::Context {
            model: self.model,
            data: self.data,
            vars: &self.cs.vars,
            state: &self.cs.state,
            item: self.item.as_ref().map(|(n, j)| (n.as_str(), j)),
            now: self.now,
            limits: self.bounds.limits,
        }
    }

    /// Fills `{{ var }}` placeholders of a message with masked case data. A text that does
    /// not render is kept as written (with the reason), never dropped.
    pub(super) fn fill(&self, text: &str) -> String {
        if !text.contains("{{") && !text.contains("{%") {
            return text.to_string();
        }
        crate::documents::render_text(&self.context(), "message", text, true)
            .unwrap_or_else(|e| format!("{text} [{}]", e.message))
    }
}
