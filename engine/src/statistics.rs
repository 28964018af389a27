//! Statistics of registered cases (the A2 §5 kind: 登记、汇总、分析、上报) and the register of
//! cases (电子台账), counted from what the store reads and written as XLSX and CSV.
//!
//! The engine knows no event by name. A process declares, in its YAML configuration under
//! `statistics.<process key>`, which variables the tables group by, which keyed role is the
//! department, what counts as each event (a task reached or completed with an outcome, an end's
//! result, a variable's value), the stages whose dates the register shows and the variables
//! it lists:
//!
//! ```yaml
//! statistics:
//!   social_assistance:
//!     by: [street, community, main_category]
//!     department_role: department
//!     events:
//!       - { name: accepted, label: 受理, task: street_consent }
//!       - { name: refused, label: 不予受理, result: not_accepted }
//!       - { name: approved, label: 批准, var: decision, is: approved }
//!     stages:
//!       - { label: 受理审查, task: review }
//!     register: [applicant_name, phone, street]
//! ```
//!
//! Cases are counted by the day they were registered: the tables of a period are the cases
//! registered in it, each with what became of it so far (an event counts once per case).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap, HashSet};

pub mod xlsx;

/// The configuration key of the statistics, by process key.
pub const STATISTICS_KEY: &str = "statistics";

/// What a process's statistics count (its part of `statistics:`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Variables the tables group by, a table each, in this order.
    #[serde(default)]
    pub by: Vec<String>,
    /// Keyed role whose keys are the departments (`department` for `department:civil_affairs`):
    /// a case counts for each department it had a task of.
    #[serde(default)]
    pub department_role: Option<String>,
    /// The events counted, a column each, in this order.
    #[serde(default)]
    pub events: Vec<Event>,
    /// The stages whose dates the register shows, in this order.
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// The variables the register lists (personal ones masked as the reader requires).
    #[serde(default)]
    pub register: Vec<String>,
}

/// One event: a case counts when every condition given holds.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// `[a-z0-9_]+`, the column's key (CSV consumers may rely on the order of the labels).
    pub name: String,
    /// The column's header people read.
    pub label: String,
    /// The case has a task at this node…
    #[serde(default)]
    pub task: Option<String>,
    /// …completed with this outcome.
    #[serde(default)]
    pub outcome: Option<String>,
    /// The case ended with one of these results.
    #[serde(default, deserialize_with = "one_or_many")]
    pub result: Vec<String>,
    /// The variable `var` has the value `is` (or, for a list, holds it).
    #[serde(default)]
    pub var: Option<String>,
    #[serde(default)]
    pub is: Option<Json>,
}

/// A stage of the register: the first time a task of the node was completed (with the outcome).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub label: String,
    pub task: String,
    #[serde(default)]
    pub outcome: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Spec {
    /// The statistics `config` (a process's YAML as JSON) declares for process `key`: `None`
    /// when it declares none, `Err` saying what to fix when they do not read.
    pub fn of(config: &Json, key: &str) -> Result<Option<Spec>, String> {
        let Some(value) = config.get(STATISTICS_KEY).and_then(|s| s.get(key)) else {
            return Ok(None);
        };
        let spec: Spec = serde_json::from_value(value.clone())
            .map_err(|e| format!("`{STATISTICS_KEY}.{key}`: {e}"))?;
        for e in &spec.events {
            if e.task.is_none() && e.result.is_empty() && e.var.is_none() {
                return Err(format!(
                    "`{STATISTICS_KEY}.{key}`: event `{}` has no condition: give `task`, `result` or `var`",
                    e.name
                ));
            }
            if e.var.is_some() != e.is.is_some() {
                return Err(format!(
                    "`{STATISTICS_KEY}.{key}`: event `{}`: `var` and `is` go together",
                    e.name
                ));
            }
        }
        Ok(Some(spec))
    }

    /// Every variable the tables read (with `register`: and the register).
    pub fn variables(&self, unit_vars: &[String], register: bool) -> Vec<String> {
        let mut vars: Vec<String> = Vec::new();
        let listed: &[String] = if register { &self.register } else { &[] };
        let wanted = self
            .by
            .iter()
            .chain(unit_vars)
            .chain(self.events.iter().filter_map(|e| e.var.as_ref()))
            .chain(listed);
        for v in wanted {
            if !vars.contains(v) {
                vars.push(v.clone());
            }
        }
        vars
    }

    /// The tasks (node, outcome) the events look at, each once: [`Case::reached`] follows
    /// this order.
    pub fn task_conditions(&self) -> Vec<(String, Option<String>)> {
        let mut out: Vec<(String, Option<String>)> = Vec::new();
        for e in &self.events {
            if let Some(task) = &e.task {
                let c = (task.clone(), e.outcome.clone());
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// The task nodes the register's stages look at.
    pub fn stage_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = Vec::new();
        for s in &self.stages {
            if !nodes.contains(&s.task) {
                nodes.push(s.task.clone());
            }
        }
        nodes
    }
}

/// A case as the statistics read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: String,
    pub business_key: Option<String>,
    /// `running`, `incident`, `completed`, `cancelled`.
    pub status: String,
    pub result: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The variables asked for, by name (absent when unset).
    pub vars: HashMap<String, Json>,
    /// Whether the case has a task of each of [`Spec::task_conditions`], in that order.
    pub reached: Vec<bool>,
    /// The keys of the departments it had a task of (`department_role`), each once.
    pub departments: Vec<String>,
}

/// A task of a case as the register reads it (only the nodes its stages look at).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub instance_id: String,
    pub node: String,
    pub outcome: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Case {
    /// Still being handled: not ended.
    pub fn open(&self) -> bool {
        self.ended_at.is_none() && matches!(self.status.as_str(), "running" | "incident")
    }
}

/// How a table's values are shown: a variable's value as people read it, and headers.
pub trait Labels {
    fn title(&self) -> String;
    fn var(&self, name: &str) -> String;
    fn value(&self, var: &str, value: &Json) -> String;
    /// A department key of `role` as people read it (`civil_affairs` → 民政局).
    fn department(&self, role: &str, key: &str) -> String;
}

/// The statistics of one period, a table per dimension, each with the same columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tables {
    pub title: String,
    /// The first and last day counted, local.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The count columns' headers: 登记, each event, 在办, 已办结.
    pub columns: Vec<String>,
    pub tables: Vec<Table>,
}

/// One table: a row per value of its dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// `total`, `by_<var>`, `department`, `month`: the name downloads ask for.
    pub name: String,
    /// 按街道（镇）统计
    pub title: String,
    /// The first column's header.
    pub dimension: String,
    pub rows: Vec<Row>,
    /// Whether one case may count in several rows (departments): then the rows do not add
    /// up to the registrations.
    pub overlapping: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub label: String,
    pub counts: Vec<u64>,
}

/// Shown for a case without a value in a dimension.
pub const NO_VALUE: &str = "（未填写）";

/// The events `case` counts for, in the spec's order.
fn events_of(spec: &Spec, conditions: &[(String, Option<String>)], case: &Case) -> Vec<bool> {
    spec.events
        .iter()
        .map(|e| {
            let task_ok = e.task.as_ref().is_none_or(|node| {
                conditions
                    .iter()
                    .position(|(n, o)| n == node && *o == e.outcome)
                    .and_then(|i| case.reached.get(i).copied())
                    .unwrap_or(false)
            });
            let result_ok = e.result.is_empty()
                || case
                    .result
                    .as_ref()
                    .is_some_and(|r| e.result.iter().any(|x| x == r));
            let var_ok = match (&e.var, &e.is) {
                (Some(var), Some(is)) => match case.vars.get(var) {
                    Some(Json::Array(items)) => items.contains(is),
                    Some(v) => v == is,
                    None => false,
                },
                _ => true,
            };
            task_ok && result_ok && var_ok
        })
        .collect()
}

/// The values of `var` a case is counted under (each member of a list).
fn values_of(case: &Case, var: &str, labels: &dyn Labels) -> Vec<String> {
    match case.vars.get(var) {
        None | Some(Json::Null) => vec![NO_VALUE.to_string()],
        Some(Json::Array(items)) if items.is_empty() => vec![NO_VALUE.to_string()],
        Some(Json::Array(items)) => {
            let mut v: Vec<String> = items.iter().map(|i| labels.value(var, i)).collect();
            v.dedup();
            v
        }
        Some(Json::String(s)) if s.trim().is_empty() => vec![NO_VALUE.to_string()],
        Some(value) => vec![labels.value(var, value)],
    }
}

/// Counts `cases` (registered from `from` to `to`, local days, both included) into tables:
/// the total, one per `by` variable, per department, per month of registration.
pub fn tables(
    spec: &Spec,
    cases: &[Case],
    labels: &dyn Labels,
    tz: Tz,
    (from, to): (NaiveDate, NaiveDate),
) -> Tables {
    let conditions = spec.task_conditions();
    let n = spec.events.len() + 3;
    let mut columns = vec!["登记".to_string()];
    columns.extend(spec.events.iter().map(|e| e.label.clone()));
    columns.push("在办".into());
    columns.push("已办结".into());

    let mut total = vec![0u64; n];
    let mut dims: Vec<BTreeMap<String, Vec<u64>>> = vec![BTreeMap::new(); spec.by.len()];
    let mut departments: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut months: BTreeMap<(i32, u32), Vec<u64>> = BTreeMap::new();
    for case in cases {
        let events = events_of(spec, &conditions, case);
        let mut counts = vec![0u64; n];
        counts[0] = 1;
        for (i, hit) in events.iter().enumerate() {
            counts[i + 1] = u64::from(*hit);
        }
        counts[n - 2] = u64::from(case.open());
        counts[n - 1] = u64::from(!case.open());
        let add = |into: &mut Vec<u64>| {
            for (a, b) in into.iter_mut().zip(&counts) {
                *a += b;
            }
        };
        add(&mut total);
        for (i, var) in spec.by.iter().enumerate() {
            for value in values_of(case, var, labels) {
                add(dims[i].entry(value).or_insert_with(|| vec![0; n]));
            }
        }
        if let Some(role) = &spec.department_role {
            let mut seen: HashSet<&str> = HashSet::new();
            for key in &case.departments {
                if seen.insert(key) {
                    add(departments
                        .entry(labels.department(role, key))
                        .or_insert_with(|| vec![0; n]));
                }
            }
        }
        let local = case.created_at.with_timezone(&tz);
        add(months
            .entry((local.year(), local.month()))
            .or_insert_with(|| vec![0; n]));
    }

    let rows = |m: BTreeMap<String, Vec<u64>>| -> Vec<Row> {
        let mut rows: Vec<Row> = m
            .into_iter()
            .map(|(label, counts)| Row { label, counts })
            .collect();
        // Most registrations first; the unset value last.
        rows.sort_by(|a, b| {
            (
                a.label == NO_VALUE,
                std::cmp::Reverse(a.counts[0]),
                &a.label,
            )
                .cmp(&(
                    b.label == NO_VALUE,
                    std::cmp::Reverse(b.counts[0]),
                    &b.label,
                ))
        });
        rows
    };
    let mut out = vec![Table {
        name: "total".into(),
        title: "总计".into(),
        dimension: "统计期间".into(),
        rows: vec![Row {
            label: format!("{from} 至 {to}"),
            counts: total,
        }],
        overlapping: false,
    }];
    for (var, m) in spec.by.iter().zip(dims) {
        let header = labels.var(var);
        out.push(Table {
            name: format!("by_{var}"),
            title: format!("按{header}统计"),
            dimension: header,
            rows: rows(m),
            overlapping: false,
        });
    }
    if spec.department_role.is_some() {
        out.push(Table {
            name: "department".into(),
            title: "按办理部门统计".into(),
            dimension: "办理部门".into(),
            rows: rows(departments),
            overlapping: true,
        });
    }
    out.push(Table {
        name: "month".into(),
        title: "按登记月份统计".into(),
        dimension: "登记月份".into(),
        rows: months
            .into_iter()
            .map(|((y, m), counts)| Row {
                label: format!("{y}年{m:02}月"),
                counts,
            })
            .collect(),
        overlapping: false,
    });
    Tables {
        title: labels.title(),
        from,
        to,
        columns,
        tables: out,
    }
}

impl Tables {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The CSV of one table (`Some`) or of all of them, each row led by its table's title.
    pub fn csv(&self, only: Option<&Table>) -> String {
        let mut header = vec!["统计表".to_string(), "分组".to_string()];
        header.extend(self.columns.iter().cloned());
        let mut text = crate::csv::header(&header);
        for t in only.map_or_else(|| self.tables.iter().collect(), |t| vec![t]) {
            for r in &t.rows {
                let mut line = vec![t.title.clone(), r.label.clone()];
                line.extend(r.counts.iter().map(u64::to_string));
                text.push_str(&crate::csv::line(&line));
            }
        }
        text
    }
}

/// The register (电子台账): a row per case, its fields and the dates of its stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// A cell of the register.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(f64),
    /// A local time.
    Time(chrono::NaiveDateTime),
    Empty,
}

/// How a personal variable's value is shown to this reader (masked or as it is).
pub trait Shown {
    /// `value` of variable `var` as the register shows it.
    fn show(&self, var: &str, value: &Json) -> Json;
}

/// The register of `cases` (oldest first): business key, registration time, status, result,
/// the `register` variables (through `shown`), each stage's date, the end.
pub fn register(
    spec: &Spec,
    cases: &[Case],
    tasks: &[Task],
    labels: &dyn Labels,
    result_label: &dyn Fn(&str) -> String,
    shown: &dyn Shown,
    tz: Tz,
) -> Register {
    let mut by_case: HashMap<&str, Vec<&Task>> = HashMap::new();
    for t in tasks {
        by_case.entry(t.instance_id.as_str()).or_default().push(t);
    }
    let mut headers = vec![
        "序号".to_string(),
        "案件编号".into(),
        "登记时间".into(),
        "状态".into(),
        "办结情况".into(),
    ];
    headers.extend(spec.register.iter().map(|v| labels.var(v)));
    headers.extend(spec.stages.iter().map(|s| format!("{}时间", s.label)));
    headers.push("办结时间".into());
    let local = |t: DateTime<Utc>| Cell::Time(t.with_timezone(&tz).naive_local());
    let empty = Vec::new();
    let mut ordered: Vec<&Case> = cases.iter().collect();
    ordered.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let rows = ordered
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let tasks = by_case.get(c.id.as_str()).unwrap_or(&empty);
            let mut row = vec![
                Cell::Number((i + 1) as f64),
                c.business_key
                    .clone()
                    .map_or(Cell::Text(c.id.clone()), Cell::Text),
                local(c.created_at),
                Cell::Text(if c.open() { "在办" } else { "已办结" }.into()),
                c.result
                    .as_deref()
                    .map_or(Cell::Empty, |r| Cell::Text(result_label(r))),
            ];
            for var in &spec.register {
                row.push(match c.vars.get(var) {
                    None | Some(Json::Null) => Cell::Empty,
                    Some(v) => match shown.show(var, v) {
                        Json::Number(n) => n.as_f64().map_or(Cell::Empty, Cell::Number),
                        other => Cell::Text(labels.value(var, &other)),
                    },
                });
            }
            for stage in &spec.stages {
                let first = tasks
                    .iter()
                    .filter(|t| {
                        t.node == stage.task
                            && stage
                                .outcome
                                .as_ref()
                                .is_none_or(|o| t.outcome.as_ref() == Some(o))
                    })
                    .filter_map(|t| t.completed_at)
                    .min();
                row.push(first.map_or(Cell::Empty, local));
            }
            row.push(c.ended_at.map_or(Cell::Empty, local));
            row
        })
        .collect();
    Register {
        title: labels.title(),
        headers,
        rows,
    }
}

#[cfg(test)]
mod tests;
