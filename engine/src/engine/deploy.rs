//! Deployments: compiling and storing a process with the files it names (a version per
//! distinct source, files and model), reading them back, and the cache of loaded models.

use super::{DeployRequest, Deployment, DeploymentDetail, Engine, deployment_view, ms};
use crate::error::{EngineError, Result};
use crate::runtime::DeploymentData;
use crate::store::port::*;
use crate::store::{DeploymentRow, Tx};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use yimen_dsl::model::Process;

impl Engine {
    /// Deploys a process. Identical source and files again return the existing version.
    pub async fn deploy(&self, req: DeployRequest) -> Result<Deployment> {
        let model = match req.model {
            Some(m) => m,
            None => compile(
                &req.file,
                &req.source,
                &req.files,
                self.inner.due.calendar_names(),
                self.inner.due.calendar_source(),
            )?,
        };
        self.deploy_imports(&model, &req.file, &req.files).await?;
        let files = deployed_files(&model, &req.files)?;
        let config = load_config(&model, &files)?;
        let model_json = stored_model(&model)?;
        let hash = deployment_hash(&req.source, &files, &model_json);
        let key = model.key.name.clone();
        let now = ms(self.now());
        let files = serde_json::to_string(&files)?;
        let config = serde_json::to_string(&config)?;
        let (row, created, latest) = transaction!(self, |tx, _fx| {
            if let Some(existing) = tx.deployment_by_hash(&key, &hash).await? {
                let latest = tx.max_version(&key).await?;
                (existing, false, latest)
            } else {
                let version = tx.max_version(&key).await? + 1;
                let row = DeploymentRow {
                    key: key.clone(),
                    version,
                    hash: hash.clone(),
                    title: model.title.clone(),
                    source: req.source.clone(),
                    model: model_json.clone(),
                    config: config.clone(),
                    files: files.clone(),
                    created_at: now,
                };
                tx.insert_deployment(&row).await?;
                // Who may start it may have changed: every server reads its rule again.
                tx.bump_access_generation().await?;
                (row, true, version)
            }
        })?;
        Ok(deployment_view(&row, created, latest))
    }

    /// Deploys the processes `model` imports that were given with it (in `files`) first
    /// (identical ones are no-ops), so that `start process` finds them.
    async fn deploy_imports(
        &self,
        model: &Process,
        file: &str,
        files: &BTreeMap<String, String>,
    ) -> Result<()> {
        for import in &model.imports {
            let path = format!("{}.flow", import.name);
            if path == file {
                continue;
            }
            if let Some(source) = files.get(&path) {
                let sub = DeployRequest {
                    file: path,
                    source: source.clone(),
                    files: files.clone(),
                    model: None,
                };
                Box::pin(self.deploy(sub)).await?;
            }
        }
        Ok(())
    }

    /// Every deployed version, by key and version.
    pub async fn definitions(&self) -> Result<Vec<Deployment>> {
        let rows = self.inner.store.deployments().await?;
        let mut latest: HashMap<&str, i64> = HashMap::new();
        for row in &rows {
            let known = latest.entry(&row.key).or_insert(row.version);
            *known = (*known).max(row.version);
        }
        Ok(rows
            .iter()
            .map(|r| deployment_view(r, false, latest[r.key.as_str()]))
            .collect())
    }

    /// What the latest version of every deployed process lets roles do beyond working their
    /// queues (`oversees`, informing the person a case concerns): see [`crate::auth::RoleDuties`].
    pub async fn role_duties(&self) -> Result<crate::auth::RoleDuties> {
        let rows = self.inner.store.deployments().await?;
        let mut latest: HashMap<&str, &DeploymentRow> = HashMap::new();
        for row in &rows {
            let newer = latest
                .get(row.key.as_str())
                .is_none_or(|known| known.version < row.version);
            if newer {
                latest.insert(&row.key, row);
            }
        }
        let loaded = latest
            .values()
            .map(|row| self.loaded(row))
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::auth::RoleDuties::of(loaded.iter().map(|l| &l.model)))
    }

    /// One version (`None`: the latest) with its source and model.
    pub async fn definition(&self, key: &str, version: Option<i64>) -> Result<DeploymentDetail> {
        let row = self
            .inner
            .store
            .deployment(key, version)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("process {key}")))?;
        let loaded = self.loaded(&row)?;
        let latest = match version {
            None => row.version,
            Some(_) => self
                .inner
                .store
                .deployment(key, None)
                .await?
                .map_or(row.version, |l| l.version),
        };
        Ok(DeploymentDetail {
            deployment: deployment_view(&row, false, latest),
            source: row.source.clone(),
            model: loaded.model.clone(),
        })
    }

    pub(super) fn loaded(&self, row: &DeploymentRow) -> Result<Arc<Loaded>> {
        let k = (row.key.clone(), row.version);
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = cache.get(&k) {
            return Ok(l.clone());
        }
        let model = read_model(&row.model)?;
        let l = Arc::new(Loaded {
            searchable: crate::search::searchable(&model),
            model,
            data: DeploymentData {
                config: serde_json::from_str(&row.config)?,
                files: serde_json::from_str(&row.files)?,
            },
        });
        cache.insert(k, l.clone());
        Ok(l)
    }

    /// The latest version of `key` with its model and configuration (`None`: not deployed).
    /// One small read, none under an access generation it was read under already (see
    /// [`Engine::start_under`]); the deployment itself comes from the cache.
    pub(crate) async fn latest_deployment(
        &self,
        key: &str,
        generation: Option<i64>,
    ) -> Result<Option<(i64, Arc<Loaded>)>> {
        let known = generation.and_then(|g| {
            let latest = self.inner.latest.lock().unwrap_or_else(|e| e.into_inner());
            latest
                .get(key)
                .filter(|(read_under, _)| *read_under == g)
                .map(|(_, version)| *version)
        });
        let version = match known {
            Some(version) => version,
            None => {
                let Some(version) = self.inner.store.latest_version(key).await? else {
                    return Ok(None);
                };
                if let Some(g) = generation {
                    let mut latest = self.inner.latest.lock().unwrap_or_else(|e| e.into_inner());
                    if latest.len() > 1_000 {
                        latest.clear();
                    }
                    latest.insert(key.to_string(), (g, version));
                }
                version
            }
        };
        Ok(Some((version, self.loaded_by_key(key, version).await?)))
    }

    /// The cached deployment, read from the pool on a miss.
    /// `f` of the checked model of version `version` of process `key`, from the cache of
    /// loaded versions (no copy of the model, no read of the deployment once loaded).
    pub async fn with_model<T>(
        &self,
        key: &str,
        version: i64,
        f: impl FnOnce(&Process) -> T,
    ) -> Result<T> {
        Ok(f(&self.loaded_by_key(key, version).await?.model))
    }

    pub(super) async fn loaded_by_key(&self, key: &str, version: i64) -> Result<Arc<Loaded>> {
        {
            let cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(l) = cache.get(&(key.to_string(), version)) {
                return Ok(l.clone());
            }
        }
        let row = self
            .inner
            .store
            .deployment(key, Some(version))
            .await?
            .ok_or_else(|| {
                EngineError::Internal(format!("deployment {key} v{version} is missing"))
            })?;
        self.loaded(&row)
    }

    pub(crate) async fn loaded_version(
        &self,
        tx: &mut Tx,
        key: &str,
        version: i64,
    ) -> Result<Arc<Loaded>> {
        {
            let cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(l) = cache.get(&(key.to_string(), version)) {
                return Ok(l.clone());
            }
        }
        let row = tx.deployment_tx(key, Some(version)).await?.ok_or_else(|| {
            EngineError::Internal(format!("deployment {key} v{version} is missing"))
        })?;
        self.loaded(&row)
    }
}

/// A deployment's model and data, as cached.
pub(crate) struct Loaded {
    pub(crate) model: Process,
    pub(crate) data: DeploymentData,
    /// The variables its cases are found by (`crate::search`).
    pub(crate) searchable: Vec<crate::search::Searchable>,
}

/// Parses the configuration YAML the model declares (if it was deployed with it).
fn load_config(model: &Process, files: &BTreeMap<String, String>) -> Result<Json> {
    let Some(decl) = &model.config else {
        return Ok(Json::Object(Map::new()));
    };
    let Some(text) = files.get(&decl.file) else {
        return Err(EngineError::invalid(
            "files",
            format!(
                "the configuration file {} the process declares was not deployed with it",
                decl.file
            ),
        ));
    };
    serde_saphyr::from_str::<Json>(text)
        .map_err(|e| EngineError::invalid(decl.file.clone(), format!("not valid YAML: {e}")))
}

/// The files of `files` that `model` names (its configuration, templates and imports). Only
/// these are kept (and hashed): deploying a folder with unrelated changes gives the same
/// version.
fn deployed_files(
    model: &Process,
    files: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let mut used = BTreeMap::new();
    let named = model
        .config
        .iter()
        .map(|c| c.file.clone())
        .chain(model.documents.iter().map(|d| d.template.clone()))
        .chain(model.imports.iter().map(|i| format!("{}.flow", i.name)));
    for path in named {
        if let Some(text) = files.get(&path) {
            if text.len() > crate::limits::MAX_DEPLOYED_FILE_BYTES {
                return Err(EngineError::invalid(
                    format!("files.{path}"),
                    format!(
                        "has {} bytes; a file deployed with a process may have at most {}",
                        text.len(),
                        crate::limits::MAX_DEPLOYED_FILE_BYTES
                    ),
                ));
            }
            used.insert(path, text.clone());
        }
    }
    Ok(used)
}

/// The model as stored (JSON). What is stored must load: the same bound as [`read_model`].
fn stored_model(model: &Process) -> Result<String> {
    let model_json = serde_json::to_string(model)?;
    let depth = json_depth(&model_json);
    if depth > MAX_MODEL_DEPTH {
        return Err(EngineError::invalid(
            "source",
            format!(
                "the model nests {depth} levels deep, more than the {MAX_MODEL_DEPTH} the engine reads back; split deep expressions or types"
            ),
        ));
    }
    Ok(model_json)
}

/// What tells one version from another: the SHA-256 of the source, the files kept with it
/// and the model.
fn deployment_hash(source: &str, files: &BTreeMap<String, String>, model_json: &str) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    for (path, content) in files {
        h.update(b"\0file\0");
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(content.as_bytes());
    }
    h.update(b"\0model\0");
    h.update(model_json.as_bytes());
    hex::encode(h.finalize())
}

/// Deepest JSON nesting of a stored model the engine reads back (and so deploys). A checked
/// model nests about 3 JSON levels per expression level (`{"kind":{"Binary":[op, {…}, {…}]}}`),
/// so [`yimen_dsl::parser::MAX_DEPTH`] (64) needs some 210, beyond serde_json's default
/// limit of 128; types nest one level per `list<…>` ([`yimen_dsl::parser::MAX_NESTING`],
/// 200). Reading this deep recurses once per level: the bound keeps that within a tokio
/// worker's 2 MiB stack (tested in `tests/deep_models.rs`).
pub const MAX_MODEL_DEPTH: usize = 512;

/// Levels of `[`/`{` nesting of a JSON text (strings skipped), without recursion.
pub fn json_depth(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Reads a stored model: serde_json's recursion limit (128) lifted, ours
/// ([`MAX_MODEL_DEPTH`]) checked first, so a model that deployed reads back and none can
/// overflow the stack.
pub fn read_model(json: &str) -> Result<Process> {
    let depth = json_depth(json);
    if depth > MAX_MODEL_DEPTH {
        return Err(EngineError::Internal(format!(
            "the stored model nests {depth} levels deep, more than the {MAX_MODEL_DEPTH} the engine reads"
        )));
    }
    let mut de = serde_json::Deserializer::from_str(json);
    de.disable_recursion_limit();
    let model = <Process as serde::Deserialize>::deserialize(&mut de)?;
    de.end()?;
    Ok(model)
}

/// Compiles and checks process source; `files` holds its configuration, templates and the
/// `<key>.flow` of each import. Any error: every diagnostic, as [`EngineError::Diagnostics`].
fn compile(
    file: &str,
    source: &str,
    files: &BTreeMap<String, String>,
    calendars: Option<Vec<String>>,
    calendar_source: Option<String>,
) -> Result<Process> {
    let mut options = yimen_dsl::check::Options::default();
    if let Some(names) = calendars {
        options.calendars = names;
    }
    options.calendars_from = calendar_source;
    let compiled =
        yimen_dsl::compile_with(file, source, &|path| files.get(path).cloned(), &options);
    match compiled.process {
        Some(p) if !compiled.has_errors() => Ok(p),
        _ => Err(EngineError::Diagnostics(compiled.diagnostics)),
    }
}
