//! Message events: a message correlated to a waiting node.

use super::*;

impl Run<'_> {
    pub(super) fn message(
        &mut self,
        name: String,
        payload: Map<String, Json>,
    ) -> Result<(), EngineError> {
        let pos = self
            .cs
            .state
            .tokens
            .iter()
            .position(|t| matches!(&t.wait, Wait::Message { name: n, .. } if *n == name));
        let Some(pos) = pos else {
            return Err(EngineError::conflict(format!(
                "the case is not waiting for message `{name}`"
            )));
        };
        let node_id = self.cs.state.tokens[pos].node.clone();
        let Some(NodeKind::WaitMessage { sets, .. }) = self.node(&node_id).map(|n| &n.kind) else {
            return Err(EngineError::Internal(format!(
                "{node_id} is not a message wait"
            )));
        };
        let mut problems = Vec::new();
        let mut accepted = Map::new();
        for (k, v) in &payload {
            let Some(decl) = sets
                .iter()
                .any(|s| &s.var.name == k)
                .then(|| self.model.vars.iter().find(|d| &d.name.name == k))
                .flatten()
            else {
                problems.push(Problem::new(k, format!("is not set by message `{name}`")));
                continue;
            };
            match input(
                self.model,
                self.data,
                &self.bounds.limits,
                decl,
                v,
                self.now,
            ) {
                Ok(v) => {
                    accepted.insert(k.clone(), v);
                }
                Err(e) => problems.push(Problem::new(k, e.to_string())),
            }
        }
        for s in sets {
            if s.required && payload.get(&s.var.name).is_none_or(Json::is_null) {
                problems.push(Problem::new(&s.var.name, "is required"));
            }
        }
        if !problems.is_empty() {
            return Err(EngineError::Invalid { problems });
        }
        let token = self.cs.state.tokens.remove(pos);
        if let Wait::Message {
            timer: Some(timer), ..
        } = &token.wait
        {
            self.cs.cancel_timers.push(timer.clone());
        }
        self.history(
            Some(&node_id),
            "message",
            format!("message {name} received"),
            json!({ "message": name }),
        );
        for (k, v) in accepted {
            self.set_var(Some(&node_id), &k, v);
        }
        self.go_next(&node_id);
        Ok(())
    }
}
