//! The statistics of a process for a period and its register (`crate::statistics`), read
//! through the store, labelled from the process, limited to the reader's organisation units
//! and masked as the reader requires.

use super::{Engine, ProcessLabels};
use crate::error::{EngineError, Result};
use crate::statistics::{self, Case, Register, Spec, Tables, Task};
use crate::store::port::*;
use crate::store::stats::{self as sql, StatCaseRow, StatTaskRow};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::Value as Json;
use std::collections::HashMap;
use yimen_dsl::model::PersonalKind;

/// What a statistics read asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct StatisticsQuery {
    pub process: String,
    /// First and last day of the period, both counted, in the engine's zone.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Only the cases of these organisation units (the values of the variables that scope the
    /// process's roles); `None`: every case.
    pub units: Option<Vec<String>>,
}

/// A process that declares statistics: its key and title.
#[derive(Debug, Clone, PartialEq)]
pub struct StatisticsProcess {
    pub key: String,
    pub title: String,
}

/// Who reads the register, and whether they read its personal data unmasked (the read is
/// then recorded, one row per case, as `GET /instances/{id}?unmasked=true` records it).
#[derive(Debug, Clone)]
pub enum RegisterReader {
    Masked,
    Unmasked(super::Reader),
}

impl statistics::Labels for ProcessLabels {
    fn title(&self) -> String {
        self.title.clone()
    }
    fn var(&self, name: &str) -> String {
        ProcessLabels::var(self, name)
    }
    fn value(&self, var: &str, value: &Json) -> String {
        ProcessLabels::value(self, var, value)
    }
    fn department(&self, role: &str, key: &str) -> String {
        self.role_key(role, key)
    }
}

struct Masks<'a> {
    personal: HashMap<&'a str, PersonalKind>,
    unmasked: bool,
}

impl statistics::Shown for Masks<'_> {
    fn show(&self, var: &str, value: &Json) -> Json {
        match self.personal.get(var) {
            Some(kind) if !self.unmasked => crate::documents::mask_json(*kind, value),
            _ => value.clone(),
        }
    }
}

/// Names the statistics may read from a case's JSON (a variable's name).
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// What one read of a period gives: the cases, their tasks and the process behind them.
struct Period {
    spec: Spec,
    labels: ProcessLabels,
    model: std::sync::Arc<super::deploy::Loaded>,
    cases: Vec<Case>,
    tasks: Vec<Task>,
}

impl Engine {
    /// The deployed processes (their latest versions) whose configuration declares statistics.
    pub async fn statistics_processes(&self) -> Result<Vec<StatisticsProcess>> {
        let mut out: Vec<StatisticsProcess> = Vec::new();
        for d in self.definitions().await? {
            if d.version != d.latest_version || out.iter().any(|p| p.key == d.key) {
                continue;
            }
            let Some((_, loaded)) = self.latest_deployment(&d.key, None).await? else {
                continue;
            };
            if loaded
                .data
                .config
                .get(statistics::STATISTICS_KEY)
                .and_then(|s| s.get(&d.key))
                .is_some()
            {
                out.push(StatisticsProcess {
                    key: d.key.clone(),
                    title: loaded.model.title.clone(),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Local midnight of `day` in the engine's zone, as an instant.
    fn midnight(&self, day: NaiveDate) -> DateTime<Utc> {
        let tz = self.time_zone();
        let naive = day.and_time(chrono::NaiveTime::MIN);
        tz.from_local_datetime(&naive)
            .earliest()
            .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc))
    }

    async fn period(&self, q: &StatisticsQuery, register: bool) -> Result<Period> {
        if q.from > q.to {
            return Err(EngineError::invalid(
                "from",
                "the period's first day is after its last: give the first day, then the last",
            ));
        }
        let (_, loaded) = self
            .latest_deployment(&q.process, None)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("process {}", q.process)))?;
        let spec = Spec::of(&loaded.data.config, &q.process)
            .map_err(|e| EngineError::invalid("statistics", e))?
            .ok_or_else(|| {
                EngineError::not_found(format!(
                    "statistics of process {} (its configuration has no `statistics.{}`)",
                    q.process, q.process
                ))
            })?;
        let labels = ProcessLabels::of(&loaded.model, &loaded.data.config);
        let unit_vars: Vec<String> = loaded
            .model
            .roles
            .iter()
            .filter_map(|r| r.scope.as_ref().map(|s| s.name.clone()))
            .fold(Vec::new(), |mut v, s| {
                if !v.contains(&s) {
                    v.push(s);
                }
                v
            });
        let vars: Vec<String> = spec
            .variables(&unit_vars, register)
            .into_iter()
            .filter(|v| plain_name(v))
            .collect();
        let from = self.midnight(q.from).timestamp_millis();
        let to = self
            .midnight(q.to.succ_opt().unwrap_or(q.to))
            .timestamp_millis();
        let pool = self.pool();
        let prefix = spec.department_role.as_ref().map(|r| format!("{r}:"));
        let conditions = spec.task_conditions();
        let read = sql::StatQuery {
            process: &q.process,
            from,
            to,
            vars: &vars,
            conditions: &conditions,
            queue_prefix: prefix.as_deref(),
        };
        let rows = sql::cases(pool, &read).await?;
        let mut cases: Vec<Case> = rows
            .into_iter()
            .map(|r| case(r, &vars, prefix.as_deref()))
            .collect();
        if let Some(units) = &q.units {
            cases.retain(|c| {
                unit_vars.iter().any(|v| {
                    c.vars
                        .get(v)
                        .is_some_and(|u| units.contains(&crate::runtime::display_json(u)))
                })
            });
        }
        let tasks = if register && !spec.stages.is_empty() {
            let kept: std::collections::HashSet<&str> =
                cases.iter().map(|c| c.id.as_str()).collect();
            sql::tasks(pool, &read, &spec.stage_nodes())
                .await?
                .into_iter()
                .filter(|t| kept.contains(t.instance_id.as_str()))
                .map(task)
                .collect()
        } else {
            Vec::new()
        };
        Ok(Period {
            spec,
            labels,
            model: loaded,
            cases,
            tasks,
        })
    }

    /// The statistics of the cases of `q.process` registered in the period.
    pub async fn statistics(&self, q: &StatisticsQuery) -> Result<Tables> {
        let p = self.period(q, false).await?;
        Ok(statistics::tables(
            &p.spec,
            &p.cases,
            &p.labels,
            self.time_zone(),
            (q.from, q.to),
        ))
    }

    /// The register of the cases of `q.process` registered in the period, oldest first: the
    /// variables the statistics name under `register`, personal ones masked unless `reader`
    /// reads them unmasked (then each case's read is recorded first).
    pub async fn register(&self, q: &StatisticsQuery, reader: RegisterReader) -> Result<Register> {
        let p = self.period(q, true).await?;
        let unmasked = matches!(reader, RegisterReader::Unmasked(_));
        if let RegisterReader::Unmasked(reader) = &reader {
            let at = self.now().timestamp_millis();
            for c in &p.cases {
                let row = crate::store::cases::PersonalDataReadRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    at,
                    instance_id: c.id.clone(),
                    principal_kind: reader.principal.kind.as_str().to_string(),
                    principal_id: reader.principal.id.clone(),
                    principal: reader.principal.name.clone(),
                    address: reader.address.clone(),
                };
                self.store().record_personal_data_read(&row).await?;
            }
        }
        let masks = Masks {
            personal: p
                .model
                .model
                .vars
                .iter()
                .filter_map(|v| v.personal.map(|k| (v.name.name.as_str(), k)))
                .collect(),
            unmasked,
        };
        let labels = &p.labels;
        Ok(statistics::register(
            &p.spec,
            &p.cases,
            &p.tasks,
            labels,
            &|r| labels.result(r),
            &masks,
            self.time_zone(),
        ))
    }
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A case read, its department keys without `prefix` (`department:`).
fn case(r: StatCaseRow, names: &[String], prefix: Option<&str>) -> Case {
    let vars = names
        .iter()
        .zip(r.vars)
        .filter_map(|(n, v)| {
            let v: Json = serde_json::from_str(v.as_deref()?).ok()?;
            Some((n.clone(), v))
        })
        .collect();
    Case {
        id: r.id,
        business_key: r.business_key,
        status: r.status,
        result: r.result,
        created_at: time(r.created_at),
        ended_at: r.ended_at.map(time),
        vars,
        reached: r.reached,
        departments: match (r.queues, prefix) {
            (Some(queues), Some(prefix)) => queues
                .split(',')
                .filter_map(|q| q.strip_prefix(prefix).map(str::to_string))
                .collect(),
            _ => Vec::new(),
        },
    }
}

fn task(t: StatTaskRow) -> Task {
    Task {
        instance_id: t.instance_id,
        node: t.node,
        outcome: t.outcome,
        completed_at: t.completed_at.map(time),
    }
}
