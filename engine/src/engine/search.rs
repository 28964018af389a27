//! Finding cases (`GET /instances`) and the personal data behind them: the search key, the
//! search table kept with the variables events change, its backfill for cases written before
//! it (or with another key), the search itself, and the trail of unmasked reads.

use super::{Engine, InstanceView};
use crate::error::{EngineError, Result};
use crate::runtime::state::Status;
use crate::search::{CaseScope, SearchKey, Searchable};
use crate::store::Tx;
use crate::store::cases::{self, CaseQuery, CaseText, PersonalDataReadRow};
use crate::store::port::*;
use crate::store::staged::Staged;
use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::sync::Arc;

/// What `GET /instances` asks for.
#[derive(Debug, Clone)]
pub struct CaseSearch {
    /// A business key or its beginning, part of a name, or a whole ID number.
    pub q: Option<String>,
    pub process: Option<String>,
    pub status: Option<Status>,
    /// Cases with a task in this organisation unit.
    pub unit: Option<String>,
    /// Registered at or after.
    pub from: Option<DateTime<Utc>>,
    /// Registered before.
    pub to: Option<DateTime<Utc>>,
    /// From 1.
    pub page: u32,
    /// At most [`MAX_PAGE_SIZE`].
    pub page_size: u32,
}

/// The most cases one page of a search holds.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A page of found cases.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct CasePage {
    /// Newest first.
    pub cases: Vec<CaseHit>,
    /// Cases found in all pages.
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
}

/// A found case, its personal data masked.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct CaseHit {
    pub id: String,
    pub process: String,
    pub version: i64,
    pub business_key: Option<String>,
    pub status: Status,
    /// When the case was registered (started), in the calendar's zone.
    pub registered_at: DateTime<FixedOffset>,
    pub ended_at: Option<DateTime<FixedOffset>>,
    /// Its organisation units: the values of the variables that scope its process's roles.
    pub org_units: Vec<String>,
    /// Who it concerns: the variables it is found by (names, ID numbers), masked.
    pub personal: Vec<PersonalValue>,
}

/// A personal variable of a case, masked.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct PersonalValue {
    pub variable: String,
    pub label: Option<String>,
    /// `name` or `id_number`.
    pub kind: String,
    /// Masked: `张**`, `150302********1235`.
    pub value: Json,
}

/// A recorded read of a case's personal data, unmasked.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct PersonalDataRead {
    pub id: String,
    pub at: DateTime<Utc>,
    pub instance_id: String,
    /// `token` (a machine's) or `user` (a person signed in).
    pub principal_kind: String,
    /// The token's id, or the user's.
    pub principal_id: String,
    /// The token's name, or the user's.
    pub principal: String,
    /// The client's address, when known.
    pub address: Option<String>,
}

/// Who read a case's personal data unmasked, and from where.
#[derive(Debug, Clone)]
pub struct Reader {
    pub principal: crate::auth::Principal,
    pub address: Option<String>,
}

/// Instances read and indexed per transaction by the backfill.
const BACKFILL_PAGE: i64 = 500;

/// The database's search key: the one the first server stored, or a new one stored now.
pub(super) async fn database_key(store: &crate::store::Store) -> Result<SearchKey> {
    let stored = store
        .setting_or_insert(cases::SEARCH_KEY, &SearchKey::generate_hex())
        .await?;
    SearchKey::from_hex(&stored).map_err(|e| {
        EngineError::Storage(format!(
            "the search key in the database (settings `{}`) does not read: {e}",
            cases::SEARCH_KEY
        ))
    })
}

impl Engine {
    /// Hashes ID numbers with `key` from now on instead of the database's (`yimen serve
    /// --search-key`). Run [`Engine::index_cases`] after it: cases indexed with another key are
    /// not found by their ID number until then.
    pub fn set_search_key(&self, key: SearchKey) {
        *self
            .inner
            .search_key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
    }

    /// The key ID numbers are hashed with.
    pub fn search_key(&self) -> Arc<SearchKey> {
        self.inner
            .search_key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stages the search rows of the variables among `searchable` an event changed on `id`
    /// (all of them when it `started` the case; `before`: its variables before the event).
    pub(super) fn stage_search(
        &self,
        st: &mut Staged,
        id: &str,
        searchable: &[Searchable],
        started: bool,
        before: &Map<String, Json>,
    ) {
        let Some(row) = st.instance(id) else {
            return;
        };
        let rows = crate::search::changed_rows(
            || self.search_key(),
            id,
            searchable,
            (!started).then_some(before),
            &row.vars,
        );
        if !rows.is_empty() {
            st.insert_search(rows);
        }
    }

    /// Fills the search table for every case, unless it was filled with the current key
    /// already (then it costs one read): the cases written before the table existed, or
    /// indexed with another key. Idempotent; `yimen serve` runs it at start. How many rows it
    /// wrote.
    pub async fn index_cases(&self) -> Result<u64> {
        let key = self.search_key();
        let store = self.store();
        if store.setting(cases::SEARCH_INDEXED).await?.as_deref() == Some(key.id()) {
            return Ok(0);
        }
        let mut after = String::new();
        let mut written = 0u64;
        loop {
            let (last, rows) = transaction!(self, |tx, _fx| {
                self.index_page(&mut tx, &key, &after).await?
            })?;
            written += rows;
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        store.set_setting(cases::SEARCH_INDEXED, key.id()).await?;
        Ok(written)
    }

    /// Indexes the instances after `after` (a page of them, locked): the last one's id, if
    /// any, and the rows written.
    async fn index_page(
        &self,
        tx: &mut Tx,
        key: &SearchKey,
        after: &str,
    ) -> Result<(Option<String>, u64)> {
        let instances = tx.instances_after(after, BACKFILL_PAGE).await?;
        let mut rows = Vec::new();
        for row in &instances {
            let loaded = self
                .loaded_version(tx, &row.process_key, row.version)
                .await?;
            for s in &loaded.searchable {
                rows.push(crate::search::row(key, &row.id, s, row.vars.get(&s.var)));
            }
        }
        tx.upsert_search(&rows).await?;
        Ok((instances.last().map(|r| r.id.clone()), rows.len() as u64))
    }

    /// The cases `search` finds among those `scope` lets its caller see, a page of them.
    pub async fn search_cases(&self, search: &CaseSearch, scope: CaseScope) -> Result<CasePage> {
        let page = search.page.max(1);
        let page_size = search.page_size.clamp(1, MAX_PAGE_SIZE);
        let text = search
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(|q| CaseText {
                key: q.to_string(),
                name: crate::search::name_text(q),
                id_hash: self.search_key().id_hash(q),
            });
        let query = CaseQuery {
            process: search.process.clone(),
            status: search.status.map(|s| s.as_str().to_string()),
            from: search.from.map(|t| t.timestamp_millis()),
            to: search.to.map(|t| t.timestamp_millis()),
            text,
            unit: search.unit.clone(),
            scope,
            limit: i64::from(page_size),
            offset: i64::from(page - 1) * i64::from(page_size),
        };
        let (rows, total) = self.store().search_cases(&query).await?;
        let tz = self.time_zone();
        let at = |ms: i64| super::time(ms).with_timezone(&tz).fixed_offset();
        let mut cases = Vec::with_capacity(rows.len());
        for row in rows {
            let loaded = self.loaded_by_key(&row.process_key, row.version).await?;
            let mut org_units: Vec<String> = Vec::new();
            for scope in loaded.model.roles.iter().filter_map(|r| r.scope.as_ref()) {
                let unit = row.vars.get(&scope.name).map(crate::runtime::display_json);
                if let Some(unit) = unit.filter(|u| !org_units.contains(u)) {
                    org_units.push(unit);
                }
            }
            let personal = loaded
                .searchable
                .iter()
                .filter_map(|s| {
                    let value = row.vars.get(&s.var)?;
                    Some(PersonalValue {
                        variable: s.var.clone(),
                        label: s.label.clone(),
                        kind: s.kind.as_str().to_string(),
                        value: crate::documents::mask_json(s.kind.personal(), value),
                    })
                })
                .collect();
            cases.push(CaseHit {
                id: row.id,
                process: row.process_key,
                version: row.version,
                business_key: row.business_key,
                status: row.status,
                registered_at: at(row.created_at),
                ended_at: row.ended_at.map(at),
                org_units,
                personal,
            });
        }
        Ok(CasePage {
            cases,
            total,
            page,
            page_size,
        })
    }

    /// The instance with its case data unmasked, the read recorded first (who, when, from
    /// where): the API lets only those who work the case, and overseers, ask.
    pub async fn instance_unmasked(&self, id: &str, reader: Reader) -> Result<InstanceView> {
        let mut view = self.instance(id).await?;
        let row = PersonalDataReadRow {
            id: uuid::Uuid::now_v7().to_string(),
            at: self.now().timestamp_millis(),
            instance_id: id.to_string(),
            principal_kind: reader.principal.kind.as_str().to_string(),
            principal_id: reader.principal.id,
            principal: reader.principal.name,
            address: reader.address,
        };
        self.store().record_personal_data_read(&row).await?;
        view.vars = self.instance_vars(id).await?;
        Ok(view)
    }

    /// The recorded unmasked reads (of one case, or of all), newest first: a page of them and
    /// how many in all.
    pub async fn personal_data_reads(
        &self,
        instance: Option<&str>,
        page: u32,
        page_size: u32,
    ) -> Result<(Vec<PersonalDataRead>, i64)> {
        let page = page.max(1);
        let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        let (rows, total) = self
            .store()
            .personal_data_reads(
                instance,
                i64::from(page_size),
                i64::from(page - 1) * i64::from(page_size),
            )
            .await?;
        let reads = rows
            .into_iter()
            .map(|r| PersonalDataRead {
                id: r.id,
                at: super::time(r.at),
                instance_id: r.instance_id,
                principal_kind: r.principal_kind,
                principal_id: r.principal_id,
                principal: r.principal,
                address: r.address,
            })
            .collect();
        Ok((reads, total))
    }
}
