//! Starting instances: the checks made before a start (deployment, business key, start
//! variables), and the start itself in a committer's transaction.

use super::{Effects, Engine, InstanceView, StartRequest, ms};
use crate::error::{EngineError, Result};
use crate::runtime::state::{ChildStart, RunState, Status};
use crate::runtime::{self, Event};
use crate::store::port::*;
use crate::store::staged::Staged;
use crate::store::{InstanceRow, Tx};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

impl Engine {
    /// Starts an instance of the latest version of `process`. A repeated business key returns
    /// the existing instance (`existing: true`).
    pub async fn start(&self, req: StartRequest) -> Result<InstanceView> {
        self.start_at(req, None).await
    }

    /// [`Engine::start`] for a request that read the access generation after it arrived
    /// (the API does, for every request): the latest version of the process is then taken from
    /// what an earlier start read under the same generation, instead of read again. Every
    /// deployment bumps the generation in the transaction that stores it, so no version
    /// deployed before the request arrived can be newer than that one.
    pub async fn start_under(&self, req: StartRequest, generation: i64) -> Result<InstanceView> {
        self.start_at(req, Some(generation)).await
    }

    async fn start_at(&self, req: StartRequest, generation: Option<i64>) -> Result<InstanceView> {
        let now = self.now();
        let (dep, vars) = self.prepare_start(&req, now, generation).await?;
        let job = crate::commit::StartJob {
            req,
            dep,
            vars,
            now,
        };
        self.committer().start(self, job).await
    }

    /// Finds the latest deployment and checks the start variables (no transaction needed).
    async fn prepare_start(
        &self,
        req: &StartRequest,
        now: DateTime<Utc>,
        generation: Option<i64>,
    ) -> Result<(ProcessVersion, Map<String, Json>)> {
        let (version, loaded) = self
            .latest_deployment(&req.process, generation)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("process {}", req.process)))?;
        let dep = ProcessVersion {
            key: req.process.clone(),
            version,
        };
        if let Some(bk) = &req.business_key
            && bk.trim().is_empty()
        {
            return Err(EngineError::invalid(
                "business_key",
                "is empty; leave it out or give a value",
            ));
        }
        if let Some(bk) = &req.business_key
            && let Some(why) = text_problem(bk, MAX_BUSINESS_KEY_CHARS)
        {
            return Err(EngineError::invalid("business_key", why));
        }
        let vars =
            runtime::start_vars(&loaded.model, &loaded.data, &req.vars, now, &self.limits())?;
        Ok((dep, vars))
    }

    /// Starts many instances in ONE transaction, each refused one rolled back alone (see
    /// [`Engine::complete_many`]). Returns, per request, `(instance id, existing)` or why not.
    pub async fn start_many(&self, reqs: &[StartRequest]) -> Vec<Result<(String, bool)>> {
        let now = self.now();
        let mut refused = Vec::with_capacity(reqs.len());
        let mut jobs = Vec::with_capacity(reqs.len());
        for req in reqs {
            match self.prepare_start(req, now, None).await {
                Ok((dep, vars)) => {
                    jobs.push(crate::commit::StartJob {
                        req: req.clone(),
                        dep,
                        vars,
                        now,
                    });
                    refused.push(None);
                }
                Err(e) => refused.push(Some(e)),
            }
        }
        let mut started = self.committer().start_each(self, jobs).await.into_iter();
        refused
            .into_iter()
            .map(|refused| match refused {
                Some(e) => Err(e),
                None => started.next().unwrap_or_else(|| {
                    Err(EngineError::Internal(
                        "a start of the batch got no answer".into(),
                    ))
                }),
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start_in(
        &self,
        tx: &mut Tx,
        st: &mut Staged,
        fx: &mut Effects,
        req: &StartRequest,
        dep: &ProcessVersion,
        vars: &Map<String, Json>,
        now: DateTime<Utc>,
    ) -> Result<(String, bool)> {
        if let Some(bk) = &req.business_key
            && let Some(found) = st.instance_by_business_key(tx, &dep.key, bk).await?
        {
            return Ok((found.id, true));
        }
        let id = new_id();
        let row = new_instance_row(
            &id,
            &dep.key,
            dep.version,
            req.business_key.clone(),
            vars,
            None,
            now,
        )?;
        st.insert_instance(&row);
        self.run_event(
            tx,
            st,
            fx,
            &id,
            Event::Start {
                actor: req.actor.clone(),
            },
        )
        .await?;
        Ok((id, false))
    }

    /// Stages the instance a `call` node of `parent` starts. `Ok(Err(why))` when it cannot
    /// start (its process is not deployed, or refuses the start variables).
    pub(super) async fn start_child(
        &self,
        tx: &mut Tx,
        st: &mut Staged,
        parent: &InstanceRow,
        child: &ChildStart,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(), String>> {
        Ok(match tx.deployment_tx(&child.process, None).await? {
            None => Err(format!(
                "linked process `{}` is not deployed; deploy it, then resolve the incident",
                child.process
            )),
            Some(dep) => {
                let cl = self.loaded(&dep)?;
                match runtime::start_vars(&cl.model, &cl.data, &child.vars, now, &self.limits()) {
                    Err(e) => Err(format!(
                        "linked process `{}` cannot start: {e}",
                        child.process
                    )),
                    Ok(vars) => {
                        let crow = new_instance_row(
                            &child.id,
                            &dep.key,
                            dep.version,
                            None,
                            &vars,
                            Some((&parent.id, &child.node)),
                            now,
                        )?;
                        st.insert_instance(&crow);
                        Ok(())
                    }
                }
            }
        })
    }
}

/// The deployed version a start runs on.
pub(crate) struct ProcessVersion {
    pub(crate) key: String,
    pub(crate) version: i64,
}

pub(super) fn new_instance_row(
    id: &str,
    key: &str,
    version: i64,
    business_key: Option<String>,
    vars: &Map<String, Json>,
    parent: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> Result<InstanceRow> {
    Ok(InstanceRow {
        id: id.to_string(),
        process_key: key.to_string(),
        version,
        business_key,
        status: Status::Running,
        result: None,
        incident: None,
        vars: crate::store::Vars::from(vars.clone()),
        state: serde_json::to_string(&RunState::default())?,
        provisional: 0,
        parent_id: parent.map(|p| p.0.to_string()),
        parent_node: parent.map(|p| p.1.to_string()),
        created_at: ms(now),
        updated_at: ms(now),
        ended_at: None,
        history_count: 0,
        history_head: String::new(),
    })
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Longest business key, in characters: it is a key of an index, which PostgreSQL limits to
/// about 2,700 bytes.
pub const MAX_BUSINESS_KEY_CHARS: usize = 256;

/// Why a short text (a key, a name) cannot be stored: longer than `max` characters, or with a
/// control character (NUL, which PostgreSQL does not store in text, and the others, which no
/// key or name needs).
pub fn text_problem(text: &str, max: usize) -> Option<String> {
    if text.chars().count() > max {
        return Some(format!("is longer than {max} characters"));
    }
    if text.chars().any(char::is_control) {
        return Some("contains a control character (such as NUL); remove it".to_string());
    }
    None
}
