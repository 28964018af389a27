//! Finding a case: which variables a case is found by, and how they are kept in the search
//! table (`case_search`). The process model says it, never a name here: a variable declared
//! `personal(name)` is found by its text (substring, case-insensitive), one declared
//! `personal(id_number)` by its whole value only, through a keyed hash (HMAC-SHA256 under the
//! search key): the table holds no ID number in clear, and without the key a hash cannot be
//! checked against guessed numbers. Business keys are found on the instances themselves.
//!
//! The key comes from `yimen serve --search-key FILE`, or, without one, is generated once and
//! kept in the database's `settings`, so that every server on the database hashes alike
//! (docs/security.md, "Personal data").

use crate::auth::Principal;
use crate::store::SearchRow;
use hmac::{Hmac, Mac};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use yimen_dsl::model::{PersonalKind, Process, Type};

/// How a variable is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// A person's name: by its text.
    Name,
    /// An ID number: by the keyed hash of the whole number.
    IdNumber,
}

impl SearchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchKind::Name => "name",
            SearchKind::IdNumber => "id_number",
        }
    }

    pub fn personal(self) -> PersonalKind {
        match self {
            SearchKind::Name => PersonalKind::Name,
            SearchKind::IdNumber => PersonalKind::IdNumber,
        }
    }
}

/// A variable of a process that cases are found by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Searchable {
    pub var: String,
    pub label: Option<String>,
    pub kind: SearchKind,
}

/// The variables of `model` that cases are found by: the text variables declared
/// `personal(name)` or `personal(id_number)`, in declaration order.
pub fn searchable(model: &Process) -> Vec<Searchable> {
    model
        .vars
        .iter()
        .filter(|v| v.ty == Type::Text)
        .filter_map(|v| {
            let kind = match v.personal? {
                PersonalKind::Name => SearchKind::Name,
                PersonalKind::IdNumber => SearchKind::IdNumber,
                _ => return None,
            };
            Some(Searchable {
                var: v.name.name.clone(),
                label: v.label.clone(),
                kind,
            })
        })
        .collect()
}

/// A name as it is stored and searched: trimmed, lower-cased (Latin letters; Chinese has none).
pub fn name_text(name: &str) -> String {
    name.trim().to_lowercase()
}

/// An ID number as it is hashed: without spaces, the check character `x` upper-cased.
pub fn id_text(id: &str) -> String {
    id.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase()
}

/// The row of the search table for `var` of `instance` with `value`. A value that is not a
/// text (absent, null) leaves a row that matches nothing.
pub fn row(key: &SearchKey, instance: &str, s: &Searchable, value: Option<&Json>) -> SearchRow {
    let text = value
        .and_then(Json::as_str)
        .filter(|t| !t.trim().is_empty());
    let (value, value_hash) = match (s.kind, text) {
        (_, None) => (None, None),
        (SearchKind::Name, Some(t)) => (Some(name_text(t)), None),
        (SearchKind::IdNumber, Some(t)) => (None, Some(key.id_hash(t))),
    };
    SearchRow {
        instance_id: instance.to_string(),
        var: s.var.clone(),
        kind: s.kind.as_str().to_string(),
        value,
        value_hash,
    }
}

/// The rows of the variables among `searchable` whose value differs between `before` and
/// `after` (all of them when `before` is `None`: a case just started).
pub fn changed_rows(
    key: impl FnOnce() -> std::sync::Arc<SearchKey>,
    instance: &str,
    searchable: &[Searchable],
    before: Option<&serde_json::Map<String, Json>>,
    after: &serde_json::Map<String, Json>,
) -> Vec<SearchRow> {
    let changed: Vec<&Searchable> = searchable
        .iter()
        .filter(|s| before.is_none_or(|b| b.get(&s.var) != after.get(&s.var)))
        .collect();
    if changed.is_empty() {
        return Vec::new();
    }
    let key = key();
    changed
        .into_iter()
        .map(|s| row(&key, instance, s, after.get(&s.var)))
        .collect()
}

/// Why a search key does not read.
#[derive(Debug, thiserror::Error)]
pub enum SearchKeyError {
    #[error(
        "a search key is 32 bytes written as 64 hex digits (make one with `openssl rand -hex 32 > FILE`); this one {0}"
    )]
    Shape(String),
    #[error("cannot read the search key {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<SearchKeyError>,
    },
}

/// The key ID numbers are hashed with: its id (8 hex digits, from the key, written before the
/// `:` of every hash) and the HMAC ready to be cloned for each value.
#[derive(Clone)]
pub struct SearchKey {
    id: String,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for SearchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SearchKey({})", self.id)
    }
}

impl SearchKey {
    /// The key of a 32-byte secret.
    pub fn from_secret(secret: &[u8]) -> Result<SearchKey, SearchKeyError> {
        if secret.len() != 32 {
            return Err(SearchKeyError::Shape(format!("has {} bytes", secret.len())));
        }
        let mut d = Sha256::new();
        d.update(b"yimen search key id\0");
        d.update(secret);
        let id = hex::encode(&d.finalize()[..4]);
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|e| SearchKeyError::Shape(e.to_string()))?;
        Ok(SearchKey { id, mac })
    }

    /// The key written as 64 hex digits (surrounding blanks ignored).
    pub fn from_hex(text: &str) -> Result<SearchKey, SearchKeyError> {
        let text = text.trim();
        let secret =
            hex::decode(text).map_err(|e| SearchKeyError::Shape(format!("is not hex ({e})")))?;
        SearchKey::from_secret(&secret)
    }

    /// Reads the key file at `path` (64 hex digits).
    pub fn read(path: &Path) -> Result<SearchKey, SearchKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| SearchKeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        SearchKey::from_hex(&text).map_err(|e| SearchKeyError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// A new random secret, as 64 hex digits.
    pub fn generate_hex() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    /// The key's id (not secret): written before the `:` of each hash.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The stored hash of an ID number: `<key id>:<hex HMAC-SHA256>` of its [`id_text`].
    pub fn id_hash(&self, id_number: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(b"id_number\0");
        mac.update(id_text(id_number).as_bytes());
        format!("{}:{}", self.id, hex::encode(mac.finalize().into_bytes()))
    }
}

/// Which cases a caller finds: what `api::instances::check_sees` lets it read, as a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseScope {
    /// Admins and overseers limited to no organisation unit: every case.
    All,
    /// Overseers limited to organisation units: the cases with a task in one of them.
    Units(Vec<String>),
    /// Everyone else: the cases with a task in a queue its roles work (`office` works
    /// `office:east`), in its organisation units if it is limited to some.
    Queues {
        roles: Vec<String>,
        units: Option<Vec<String>>,
    },
}

impl CaseScope {
    /// The cases `principal` may find.
    pub fn of(principal: &Principal) -> CaseScope {
        let units = principal.org_units.clone();
        if principal.is_overseer() {
            if units.is_empty() {
                CaseScope::All
            } else {
                CaseScope::Units(units)
            }
        } else {
            CaseScope::Queues {
                roles: principal.named_roles().map(str::to_string).collect(),
                units: (!units.is_empty()).then_some(units),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> SearchKey {
        SearchKey::from_secret(&[7u8; 32]).unwrap()
    }

    #[test]
    fn an_id_number_is_hashed_whole_and_never_kept() {
        let k = key();
        let hash = k.id_hash("15030219800101123x");
        assert!(hash.starts_with(&format!("{}:", k.id())));
        assert!(!hash.contains("150302"), "{hash}");
        assert_eq!(
            hash,
            k.id_hash(" 150302 19800101123X "),
            "spaces and case do not matter"
        );
        assert_ne!(
            hash,
            k.id_hash("150302198001011"),
            "a part is another value"
        );
        let other = SearchKey::from_secret(&[8u8; 32]).unwrap();
        assert_ne!(
            hash.split(':').nth(1),
            other.id_hash("15030219800101123X").split(':').nth(1),
            "another key, another hash"
        );
    }

    #[test]
    fn keys_are_64_hex_digits() {
        assert!(SearchKey::from_hex(&SearchKey::generate_hex()).is_ok());
        let short = SearchKey::from_hex("abcd").unwrap_err().to_string();
        assert!(short.contains("64 hex digits"), "{short}");
        assert!(SearchKey::from_hex("zz").is_err());
    }

    #[test]
    fn only_changed_values_make_rows() {
        let searchable = vec![
            Searchable {
                var: "who".into(),
                label: None,
                kind: SearchKind::Name,
            },
            Searchable {
                var: "id".into(),
                label: None,
                kind: SearchKind::IdNumber,
            },
        ];
        let before = json!({"who": "Zhang San", "id": "11010519491231002X", "n": 1});
        let after = json!({"who": "Zhang San", "id": "11010519491231002X", "n": 2});
        let (before, after) = (before.as_object().unwrap(), after.as_object().unwrap());
        let k = std::sync::Arc::new(key());
        let none = changed_rows(|| k.clone(), "i", &searchable, Some(before), after);
        assert!(none.is_empty());
        let all = changed_rows(|| k.clone(), "i", &searchable, None, after);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].value.as_deref(), Some("zhang san"));
        assert_eq!(all[1].value, None);
        assert!(
            all[1]
                .value_hash
                .as_deref()
                .is_some_and(|h| !h.contains("110105"))
        );
    }
}
