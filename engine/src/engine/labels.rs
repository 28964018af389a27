//! What people read instead of keys: the labels a process file gives its variables, enum
//! values, roles (queues) and nodes, as pages show a case of that process.

use super::Engine;
use crate::error::Result;
use serde_json::Value as Json;
use std::collections::HashMap;
use yimen_dsl::model::{EnumSource, Process, Type};

/// The labels of one deployed version.
#[derive(Debug, Clone, Default)]
pub struct ProcessLabels {
    pub title: String,
    vars: HashMap<String, (String, Option<String>)>,
    order: Vec<String>,
    values: HashMap<(String, String), String>,
    /// Each enum's keys in order, with their labels (the key when it has none).
    options: HashMap<String, Vec<(String, String)>>,
    roles: HashMap<String, (String, Option<String>)>,
    nodes: HashMap<String, String>,
    /// (task node, outcome) → the outcome's label.
    outcomes: HashMap<(String, String), String>,
    clocks: HashMap<String, String>,
    /// Every clock (name, label) and every queue, in the order the process declares them.
    clock_list: Vec<(String, String)>,
    queue_list: Vec<String>,
    /// An end's result key → the end's label (the first end of that result).
    results: HashMap<String, String>,
}

impl ProcessLabels {
    /// The labels of `model`, enum values read from `config` where the enum comes from it.
    pub fn of(model: &Process, config: &Json) -> ProcessLabels {
        let mut values = HashMap::new();
        let mut options: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for decl in &model.enums {
            let name = decl.name.name.clone();
            match &decl.source {
                EnumSource::Listed(listed) => {
                    for v in listed {
                        let label = v.label.clone().unwrap_or_else(|| v.key.name.clone());
                        options
                            .entry(name.clone())
                            .or_default()
                            .push((v.key.name.clone(), label.clone()));
                        values.insert((name.clone(), v.key.name.clone()), label);
                    }
                }
                EnumSource::Config(map) => {
                    for (key, v) in config
                        .get(&map.name)
                        .and_then(Json::as_object)
                        .into_iter()
                        .flatten()
                    {
                        let label = match v {
                            Json::String(label) => Some(label.clone()),
                            other => other.get("name").and_then(Json::as_str).map(str::to_string),
                        };
                        let label = label.unwrap_or_else(|| key.clone());
                        options
                            .entry(name.clone())
                            .or_default()
                            .push((key.clone(), label.clone()));
                        values.insert((name.clone(), key.clone()), label);
                    }
                }
            }
        }
        let enum_of = |ty: &Type| match ty {
            Type::Enum(e) => Some(e.clone()),
            Type::List(item) => match item.as_ref() {
                Type::Enum(e) => Some(e.clone()),
                _ => None,
            },
            _ => None,
        };
        let clock_list = model
            .clocks
            .iter()
            .map(|c| {
                let name = c.name.name.clone();
                (name.clone(), c.label.clone().unwrap_or(name))
            })
            .collect();
        let mut queue_list = Vec::new();
        for r in &model.roles {
            match r.keyed_by.as_ref().and_then(|e| options.get(&e.name)) {
                Some(keys) => {
                    for (key, _) in keys {
                        queue_list.push(format!("{}:{key}", r.name.name));
                    }
                }
                None => queue_list.push(r.name.name.clone()),
            }
        }
        ProcessLabels {
            clock_list,
            queue_list,
            title: model.title.clone(),
            vars: model
                .vars
                .iter()
                .map(|v| {
                    let label = v.label.clone().unwrap_or_else(|| v.name.name.clone());
                    (v.name.name.clone(), (label, enum_of(&v.ty)))
                })
                .collect(),
            order: model.vars.iter().map(|v| v.name.name.clone()).collect(),
            values,
            options,
            roles: model
                .roles
                .iter()
                .map(|r| {
                    let label = r.label.clone().unwrap_or_else(|| r.name.name.clone());
                    let keyed = r.keyed_by.as_ref().map(|k| k.name.clone());
                    (r.name.name.clone(), (label, keyed))
                })
                .collect(),
            nodes: model
                .nodes
                .iter()
                .filter_map(|n| Some((n.id.name.clone(), n.label.clone()?)))
                .collect(),
            clocks: model
                .clocks
                .iter()
                .filter_map(|c| Some((c.name.name.clone(), c.label.clone()?)))
                .collect(),
            results: model
                .nodes
                .iter()
                .rev()
                .filter_map(|n| match &n.kind {
                    yimen_dsl::model::NodeKind::End { result, .. } => {
                        Some((result.name.clone(), n.label.clone()?))
                    }
                    _ => None,
                })
                .collect(),
            outcomes: model
                .nodes
                .iter()
                .filter_map(|n| match &n.kind {
                    yimen_dsl::model::NodeKind::Task(task) => Some((n, task)),
                    _ => None,
                })
                .flat_map(|(n, task)| {
                    task.outcomes.iter().filter_map(|o| {
                        let label = o.label.clone()?;
                        Some(((n.id.name.clone(), o.key.name.clone()), label))
                    })
                })
                .collect(),
        }
    }

    /// What a case's result (an end's `result` key) is called: the label of the end that
    /// records it (the key when none has a label).
    pub fn result(&self, key: &str) -> String {
        self.results
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    /// The label of variable `name` (its name when it has none).
    pub fn var(&self, name: &str) -> String {
        self.vars
            .get(name)
            .map_or_else(|| name.to_string(), |(label, _)| label.clone())
    }

    /// A variable's value as people read it: enum keys by their labels (a list joined with
    /// 、), yes/no in words, text as it is.
    pub fn value(&self, name: &str, value: &Json) -> String {
        let enum_name = self.vars.get(name).and_then(|(_, e)| e.as_deref());
        let one = |v: &Json| match (v, enum_name) {
            (Json::String(key), Some(e)) => self
                .values
                .get(&(e.to_string(), key.clone()))
                .cloned()
                .unwrap_or_else(|| key.clone()),
            (Json::String(text), None) => text.clone(),
            (Json::Bool(true), _) => "是".into(),
            (Json::Bool(false), _) => "否".into(),
            (Json::Null, _) => String::new(),
            (other, _) => other.to_string(),
        };
        match value {
            Json::Array(items) => items.iter().map(one).collect::<Vec<_>>().join("、"),
            other => one(other),
        }
    }

    /// A queue as people read it: `window` → 社会救助受理窗口, `department:civil_affairs` →
    /// 救助部门（民政局）.
    pub fn queue(&self, queue: &str) -> String {
        let (role, key) = match queue.split_once(':') {
            Some((role, key)) => (role, Some(key)),
            None => (queue, None),
        };
        let Some((label, keyed)) = self.roles.get(role) else {
            return queue.to_string();
        };
        match (key, keyed) {
            (Some(key), Some(e)) => {
                let key_label = self
                    .values
                    .get(&(e.clone(), key.to_string()))
                    .map_or(key, String::as_str);
                format!("{label}（{key_label}）")
            }
            (Some(key), None) => format!("{label}（{key}）"),
            (None, _) => label.clone(),
        }
    }

    /// A key of keyed role `role` as people read it: `civil_affairs` of `department` → 民政局
    /// (the key when it has no label).
    pub fn role_key(&self, role: &str, key: &str) -> String {
        self.roles
            .get(role)
            .and_then(|(_, keyed)| keyed.as_ref())
            .and_then(|e| self.values.get(&(e.clone(), key.to_string())))
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    /// The label of outcome `key` of task `node` (the key when it has none).
    pub fn outcome(&self, node: &str, key: &str) -> String {
        self.outcomes
            .get(&(node.to_string(), key.to_string()))
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    /// The label of clock `name` (its name when it has none).
    pub fn clock(&self, name: &str) -> String {
        self.clocks
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    /// Every clock of the process (name, label), in the order declared.
    pub fn clock_names(&self) -> Vec<(String, String)> {
        self.clock_list.clone()
    }

    /// Every queue of the process (a keyed role's queue per key), in the order declared.
    pub fn queue_names(&self) -> Vec<String> {
        self.queue_list.clone()
    }

    /// The keys of enum `name` in order, with their labels.
    pub fn options(&self, name: &str) -> &[(String, String)] {
        self.options.get(name).map_or(&[], Vec::as_slice)
    }

    /// The label of node `id` (its id when it has none).
    pub fn node(&self, id: &str) -> String {
        self.nodes
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// The variables' names in the order the process declares them.
    pub fn var_order(&self) -> &[String] {
        &self.order
    }
}

impl Engine {
    /// The labels of version `version` of process `key` (from the cache of loaded versions).
    pub async fn labels(&self, key: &str, version: i64) -> Result<ProcessLabels> {
        let loaded = self.loaded_by_key(key, version).await?;
        Ok(ProcessLabels::of(&loaded.model, &loaded.data.config))
    }
}
