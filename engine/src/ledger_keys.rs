//! What makes the ledger tamper-evident against someone who can write the database: a keyed
//! chain and signed checkpoints, with keys kept outside the database (see docs/security.md,
//! "The ledger").
//!
//! - The chain key: each entry's hash is an HMAC-SHA256 ([`crate::ledger::entry_mac`]) under a
//!   key the database never holds, so an entry changed and its chain recomputed (with SHA-256,
//!   as entries without a key are chained) no longer verifies with the key.
//! - Checkpoints: every case's id, entry count and head, and the count of cases, signed with
//!   Ed25519 and written outside the database ([`Checkpoint`]). Verifying against them (with the
//!   public key only) finds a case deleted, entries removed from the end of a case (the last
//!   pack deleted and the head on the instance row rewound), and a head that differs for the
//!   same count.
//!
//! Both keys are in one key file (`yimen ledger keygen`), JSON:
//! `{"format", "keyed_since", "chain_keys": [hex, …], "signing_key": hex, "retired_public_keys":
//! [hex, …]}`. The first chain key writes; earlier ones (after a rotation) still verify the
//! entries they wrote, named by the key id before the `:` of each keyed hash. The public key
//! file (`FILE.pub`) holds the signing key's public key, then those of earlier signing keys,
//! one per line.

use crate::store::{HistoryRow, InstanceRow};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const KEY_FORMAT: &str = "yimen-ledger-key-1";
const CHECKPOINT_FORMAT: &str = "yimen-ledger-checkpoint-1";

/// Why a key, a key file, a public key file or a checkpoint does not read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a chain key is 32 bytes (64 hex digits), this one is {0}")]
    ChainKeyLength(usize),
    #[error("{0}")]
    Hmac(hmac::digest::InvalidLength),
    /// `what`: the field or line the key was read from.
    #[error("{what}: not hex ({source})")]
    NotHex {
        what: &'static str,
        source: hex::FromHexError,
    },
    #[error("{what}: 32 bytes (64 hex digits) expected")]
    NotThirtyTwoBytes { what: &'static str },
    #[error("the key file has no chain key")]
    NoChainKey,
    #[error("not a ledger key file (made by `yimen ledger keygen`): {0}")]
    NotAKeyFile(#[source] serde_json::Error),
    #[error("format `{0}` is not `{KEY_FORMAT}`: not a ledger key file")]
    Format(String),
    #[error("cannot read the ledger key {}: {source}", path.display())]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the public key {}: {source}", path.display())]
    ReadPublicKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("public key: {0}")]
    PublicKey(#[source] ed25519_dalek::SignatureError),
    #[error("{}: no public key in it", path.display())]
    NoPublicKey { path: PathBuf },
    /// What is wrong inside the key file or public key file at `path`.
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<KeyError>,
    },
    #[error("cannot read the checkpoints folder {}: {source}", dir.display())]
    ReadCheckpoints {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    ReadCheckpoint {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a ledger checkpoint: {source}", path.display())]
    NotACheckpoint {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl KeyError {
    fn in_file(path: &Path) -> impl FnOnce(KeyError) -> KeyError + '_ {
        move |e| KeyError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        }
    }
}

/// A key the chain is written with: its id (8 hex digits, from the key) and the HMAC ready
/// to be cloned for each entry.
#[derive(Clone)]
pub struct ChainKey {
    pub id: String,
    pub(crate) mac: Hmac<Sha256>,
}

impl ChainKey {
    /// The chain key of a 32-byte secret.
    pub fn from_secret(secret: &[u8]) -> Result<ChainKey, KeyError> {
        if secret.len() != 32 {
            return Err(KeyError::ChainKeyLength(secret.len()));
        }
        let mut d = Sha256::new();
        d.update(b"yimen ledger chain key id\0");
        d.update(secret);
        let id = hex::encode(&d.finalize()[..4]);
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(KeyError::Hmac)?;
        Ok(ChainKey { id, mac })
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainKey({})", self.id)
    }
}

/// The stored key file.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    format: String,
    keyed_since: DateTime<Utc>,
    chain_keys: Vec<String>,
    signing_key: String,
    #[serde(default)]
    retired_public_keys: Vec<String>,
}

/// The ledger's keys, read from the key file.
pub struct LedgerKeys {
    /// The secrets of the chain keys, the one that writes first.
    secrets: Vec<[u8; 32]>,
    chain: Vec<ChainKey>,
    signing: SigningKey,
    retired_public: Vec<String>,
    /// When the first chain key was made: an unkeyed entry written after it was not written
    /// by an engine that had the key.
    pub keyed_since: DateTime<Utc>,
}

impl std::fmt::Debug for LedgerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerKeys({:?})", self.chain)
    }
}

fn random32() -> [u8; 32] {
    rand::random()
}

fn unhex32(text: &str, what: &'static str) -> Result<[u8; 32], KeyError> {
    let bytes = hex::decode(text.trim()).map_err(|source| KeyError::NotHex { what, source })?;
    bytes
        .try_into()
        .map_err(|_| KeyError::NotThirtyTwoBytes { what })
}

impl LedgerKeys {
    fn new(
        secrets: Vec<[u8; 32]>,
        signing: [u8; 32],
        retired_public: Vec<String>,
        keyed_since: DateTime<Utc>,
    ) -> Result<LedgerKeys, KeyError> {
        let chain = secrets
            .iter()
            .map(|s| ChainKey::from_secret(s))
            .collect::<Result<Vec<_>, _>>()?;
        if chain.is_empty() {
            return Err(KeyError::NoChainKey);
        }
        Ok(LedgerKeys {
            secrets,
            chain,
            signing: SigningKey::from_bytes(&signing),
            retired_public,
            keyed_since,
        })
    }

    /// New keys, made at `now`.
    pub fn generate(now: DateTime<Utc>) -> LedgerKeys {
        LedgerKeys::new(vec![random32()], random32(), Vec::new(), now).expect("one 32-byte key")
    }

    /// These keys with a new chain key and a new signing key in front. The old chain keys stay
    /// (they verify the entries they wrote); the old public key is kept with the retired ones
    /// (it verifies the checkpoints it signed).
    pub fn rotated(self) -> LedgerKeys {
        let mut secrets = self.secrets;
        secrets.insert(0, random32());
        let mut retired = vec![hex::encode(self.signing.verifying_key().as_bytes())];
        retired.extend(self.retired_public);
        LedgerKeys::new(secrets, random32(), retired, self.keyed_since).expect("32-byte keys")
    }

    /// The key new entries are chained with.
    pub fn chain_key(&self) -> &ChainKey {
        &self.chain[0]
    }

    /// The chain key of id `id` (the part of a keyed hash before its `:`).
    pub fn chain_key_of(&self, id: &str) -> Option<&ChainKey> {
        self.chain.iter().find(|k| k.id == id)
    }

    /// The public key file's text: the signing key's public key, then the retired ones.
    pub fn public_keys_text(&self) -> String {
        let mut out = hex::encode(self.signing.verifying_key().as_bytes());
        out.push('\n');
        for k in &self.retired_public {
            out.push_str(k);
            out.push('\n');
        }
        out
    }

    /// The key file's text (secret).
    pub fn to_text(&self) -> String {
        let file = KeyFile {
            format: KEY_FORMAT.into(),
            keyed_since: self.keyed_since,
            chain_keys: self.secrets.iter().map(hex::encode).collect(),
            signing_key: hex::encode(self.signing.to_bytes()),
            retired_public_keys: self.retired_public.clone(),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default() + "\n"
    }

    pub fn from_text(text: &str) -> Result<LedgerKeys, KeyError> {
        let file: KeyFile = serde_json::from_str(text).map_err(KeyError::NotAKeyFile)?;
        if file.format != KEY_FORMAT {
            return Err(KeyError::Format(file.format));
        }
        let secrets = file
            .chain_keys
            .iter()
            .map(|s| unhex32(s, "chain_keys"))
            .collect::<Result<Vec<_>, _>>()?;
        let signing = unhex32(&file.signing_key, "signing_key")?;
        LedgerKeys::new(secrets, signing, file.retired_public_keys, file.keyed_since)
    }

    /// Reads the key file at `path`.
    pub fn read(path: &Path) -> Result<LedgerKeys, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::ReadKey {
            path: path.to_path_buf(),
            source,
        })?;
        LedgerKeys::from_text(&text).map_err(KeyError::in_file(path))
    }

    /// Writes the key file at `path` (readable by its owner only) and the public key file at
    /// `path.pub`.
    pub fn write(&self, path: &Path) -> std::io::Result<PathBuf> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let tmp = path.with_extension("tmp");
        let mut f = options.open(&tmp)?;
        f.write_all(self.to_text().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        let public = public_path(path);
        std::fs::write(&public, self.public_keys_text())?;
        Ok(public)
    }

    /// Signs `cases` (every case's id, entry count and head) as a checkpoint made at `now`.
    pub fn checkpoint(&self, now: DateTime<Utc>, cases: Vec<CaseHead>) -> Checkpoint {
        let mut cp = Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            count: cases.len(),
            cases,
            public_key: hex::encode(self.signing.verifying_key().as_bytes()),
            signature: String::new(),
        };
        cp.signature = hex::encode(self.signing.sign(&cp.signed_bytes()).to_bytes());
        cp
    }
}

/// `FILE` → `FILE.pub`.
pub fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Reads public keys (64 hex digits a line; empty lines and `#` comments skipped).
pub fn read_public_keys(path: &Path) -> Result<Vec<VerifyingKey>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::ReadPublicKey {
        path: path.to_path_buf(),
        source,
    })?;
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let bytes = unhex32(l, "public key")?;
            VerifyingKey::from_bytes(&bytes).map_err(KeyError::PublicKey)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(KeyError::in_file(path))?;
    if keys.is_empty() {
        return Err(KeyError::NoPublicKey {
            path: path.to_path_buf(),
        });
    }
    Ok(keys)
}

/// One case in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaseHead {
    pub id: String,
    pub entries: i64,
    pub head: String,
}

impl CaseHead {
    pub fn of(row: &InstanceRow) -> CaseHead {
        CaseHead {
            id: row.id.clone(),
            entries: row.history_count,
            head: row.history_head.clone(),
        }
    }
}

/// A signed record of every case's head at one time: what `yimen ledger verify --checkpoints`
/// compares the database with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub format: String,
    /// When it was made (RFC 3339, UTC).
    pub at: String,
    /// The number of cases.
    pub count: usize,
    pub cases: Vec<CaseHead>,
    /// The public key of the key that signed it (hex).
    pub public_key: String,
    /// Ed25519 over the checkpoint's JSON with an empty signature (hex).
    pub signature: String,
}

impl Checkpoint {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature.clear();
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    /// Whether one of `keys` signed it.
    pub fn signed_by(&self, keys: &[VerifyingKey]) -> bool {
        let Ok(sig) = hex::decode(&self.signature) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&sig) else {
            return false;
        };
        let msg = self.signed_bytes();
        keys.iter().any(|k| k.verify(&msg, &sig).is_ok())
    }

    /// Writes it to `dir` (created if missing) as `ledger-<time>.json`; gives the path.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let stamp: String = self
            .at
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let path = dir.join(format!("ledger-{stamp}.json"));
        let tmp = dir.join(format!(".ledger-{stamp}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(self).unwrap_or_default())?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

/// Reads every `*.json` checkpoint of `dir`, oldest first (by name: the time).
pub fn read_checkpoints(dir: &Path) -> Result<Vec<(PathBuf, Checkpoint)>, KeyError> {
    let read = std::fs::read_dir(dir).map_err(|source| KeyError::ReadCheckpoints {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|source| KeyError::ReadCheckpoint {
                path: p.clone(),
                source,
            })?;
            let cp: Checkpoint =
                serde_json::from_str(&text).map_err(|source| KeyError::NotACheckpoint {
                    path: p.clone(),
                    source,
                })?;
            Ok((p, cp))
        })
        .collect()
}

/// Checkpoints read from their files, and the public keys they are verified with.
pub type Against<'a> = (&'a [(PathBuf, Checkpoint)], &'a [VerifyingKey]);

/// Compares the database (`instances`, `history`) with signed checkpoints: every problem, in
/// words. A checkpoint none of `keys` signed is itself a problem (and not compared).
pub fn check_checkpoints(
    checkpoints: &[(PathBuf, Checkpoint)],
    keys: &[VerifyingKey],
    instances: &[InstanceRow],
    history: &[HistoryRow],
) -> Vec<String> {
    let rows: HashMap<&str, &InstanceRow> = instances.iter().map(|i| (i.id.as_str(), i)).collect();
    let hashes: HashMap<(&str, i64), &str> = history
        .iter()
        .map(|h| ((h.instance_id.as_str(), h.seq), h.hash.as_str()))
        .collect();
    let mut problems = Vec::new();
    for (path, cp) in checkpoints {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if cp.format != CHECKPOINT_FORMAT || !cp.signed_by(keys) || cp.count != cp.cases.len() {
            problems.push(format!(
                "checkpoint {name}: its signature does not verify with the public key (changed, forged, or signed by another key)"
            ));
            continue;
        }
        if instances.len() < cp.count {
            problems.push(format!(
                "checkpoint {name} ({}): it recorded {} cases, the database has {}",
                cp.at,
                cp.count,
                instances.len()
            ));
        }
        for case in &cp.cases {
            let Some(row) = rows.get(case.id.as_str()) else {
                problems.push(format!(
                    "instance {}: in checkpoint {name} ({}) with {} entries, missing from the database (deleted)",
                    case.id, cp.at, case.entries
                ));
                continue;
            };
            if row.history_count < case.entries {
                problems.push(format!(
                    "instance {}: {} entries, checkpoint {name} ({}) recorded {} (entries removed from its end)",
                    case.id, row.history_count, cp.at, case.entries
                ));
            } else if case.entries > 0
                && hashes.get(&(case.id.as_str(), case.entries)).copied() != Some(&case.head)
            {
                problems.push(format!(
                    "instance {}: entry {} is not the one checkpoint {name} ({}) recorded (rewritten)",
                    case.id, case.entries, cp.at
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{entry_hash, seal, verify_with};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// `count` entries of instance `id` at `at`, chained with `key` (unkeyed for `None`).
    fn chain(
        id: &str,
        from: &[HistoryRow],
        count: i64,
        at: i64,
        key: Option<&ChainKey>,
    ) -> Vec<HistoryRow> {
        let mut rows = from.to_vec();
        for _ in 0..count {
            let prev = rows.last().map(|h| h.hash.clone()).unwrap_or_default();
            let mut h = HistoryRow {
                instance_id: id.into(),
                seq: rows.len() as i64 + 1,
                at,
                actor: "w".into(),
                actor_kind: String::new(),
                actor_id: String::new(),
                node: None,
                kind: "step".into(),
                text: "金额 = 1".into(),
                data: "{}".into(),
                prev_hash: prev,
                hash: String::new(),
            };
            h.hash = seal(key, &h);
            rows.push(h);
        }
        rows
    }

    fn instance(id: &str, rows: &[HistoryRow]) -> InstanceRow {
        InstanceRow {
            id: id.into(),
            process_key: "p".into(),
            version: 1,
            business_key: None,
            status: crate::runtime::state::Status::Running,
            result: None,
            incident: None,
            vars: Default::default(),
            state: "{}".into(),
            provisional: 0,
            parent_id: None,
            parent_node: None,
            created_at: 0,
            updated_at: 0,
            ended_at: None,
            history_count: rows.len() as i64,
            history_head: rows.last().map(|h| h.hash.clone()).unwrap_or_default(),
        }
    }

    #[test]
    fn a_key_file_reads_back_and_a_rotation_keeps_what_verifies_the_past() {
        let keys = LedgerKeys::generate(t("2026-12-01T00:00:00Z"));
        let back = LedgerKeys::from_text(&keys.to_text()).unwrap();
        assert_eq!(back.chain_key().id, keys.chain_key().id);
        assert_eq!(back.public_keys_text(), keys.public_keys_text());
        assert_eq!(back.keyed_since, keys.keyed_since);

        let old = chain("a", &[], 2, 1, Some(keys.chain_key()));
        let rotated = back.rotated();
        assert_ne!(rotated.chain_key().id, keys.chain_key().id);
        assert!(rotated.chain_key_of(&keys.chain_key().id).is_some());
        assert_eq!(rotated.keyed_since, keys.keyed_since);
        // The old public key is still in the public key file, after the new one.
        let public = rotated.public_keys_text();
        assert!(public.ends_with(&keys.public_keys_text()), "{public}");
        assert_eq!(public.lines().count(), 2);

        // Entries of the old key and of the new one verify with the rotated file.
        let rows = chain("a", &old, 2, 2, Some(rotated.chain_key()));
        let report = verify_with(&[instance("a", &rows)], &rows, Some(&rotated));
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!((report.keyed, report.unkeyed), (4, 0));
        // Without the old key, its entries are named, not passed.
        let other = LedgerKeys::generate(keys.keyed_since);
        let report = verify_with(&[instance("a", &rows)], &rows, Some(&other));
        assert!(
            report.problems[0].contains("does not hold"),
            "{:?}",
            report.problems
        );

        assert!(
            LedgerKeys::from_text("{}")
                .unwrap_err()
                .to_string()
                .contains("keygen")
        );
        let wrong = keys.to_text().replace(KEY_FORMAT, "other");
        assert!(
            LedgerKeys::from_text(&wrong)
                .unwrap_err()
                .to_string()
                .contains("format")
        );
    }

    #[test]
    fn entries_before_the_key_verify_as_unkeyed_and_a_downgrade_does_not() {
        let since = t("2026-12-01T00:00:00Z").timestamp_millis();
        let keys = LedgerKeys::generate(t("2026-12-01T00:00:00Z"));
        let key = Some(keys.chain_key());
        // Two entries from before the key, two after: intact.
        let before = chain("a", &[], 2, since - 1, None);
        let rows = chain("a", &before, 2, since + 1, key);
        let report = verify_with(&[instance("a", &rows)], &rows, Some(&keys));
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!((report.keyed, report.unkeyed), (2, 2));
        // Without the key: links checked, HMACs not.
        let report = verify_with(&[instance("a", &rows)], &rows, None);
        assert!(report.ok());
        assert_eq!(report.keyed_unchecked, 2);

        // The third entry changed and the rest recomputed without the key.
        let mut forged = before.clone();
        let mut third = rows[2].clone();
        third.text = "金额 = 1000".into();
        third.hash = entry_hash(&third);
        forged.push(third);
        let forged = chain("a", &forged, 1, since + 1, None);
        let report = verify_with(&[instance("a", &forged)], &forged, Some(&keys));
        assert!(
            report.problems[0].contains("entry 3 is unkeyed but dated after"),
            "{:?}",
            report.problems
        );
        assert!(verify_with(&[instance("a", &forged)], &forged, None).ok());

        // A keyed entry changed, its hash left: the HMAC does not verify.
        let mut changed = rows.clone();
        changed[3].text = "金额 = 1000".into();
        let report = verify_with(&[instance("a", &changed)], &changed, Some(&keys));
        assert!(
            report.problems[0].contains("HMAC does not verify"),
            "{:?}",
            report.problems
        );

        // An unkeyed entry after keyed ones, even dated before the key.
        let mixed = chain("b", &chain("b", &[], 1, since + 1, key), 1, since - 5, None);
        let report = verify_with(&[instance("b", &mixed)], &mixed, Some(&keys));
        assert!(
            report.problems[0].contains("unkeyed after keyed"),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn a_checkpoint_verifies_with_its_public_key_only_and_not_once_changed() {
        let keys = LedgerKeys::generate(Utc::now());
        let rows = chain("a", &[], 3, 1, Some(keys.chain_key()));
        let cp = keys.checkpoint(Utc::now(), vec![CaseHead::of(&instance("a", &rows))]);
        let public: Vec<VerifyingKey> = keys
            .public_keys_text()
            .lines()
            .map(|l| VerifyingKey::from_bytes(&unhex32(l, "k").unwrap()).unwrap())
            .collect();
        assert!(cp.signed_by(&public));
        let other = LedgerKeys::generate(Utc::now()).signing.verifying_key();
        assert!(!cp.signed_by(&[other]));
        let mut changed = cp.clone();
        changed.cases[0].entries = 2;
        assert!(!changed.signed_by(&public));

        let dir = std::env::temp_dir().join(format!("yimen-cp-{}", uuid::Uuid::new_v4()));
        let path = cp.write(&dir).unwrap();
        let read = read_checkpoints(&dir).unwrap();
        assert_eq!(read, vec![(path, cp)]);
        let inst = instance("a", &rows);
        assert!(check_checkpoints(&read, &public, std::slice::from_ref(&inst), &rows).is_empty());
        // A later entry does not matter; the recorded one still heads the first three.
        let longer = chain("a", &rows, 1, 2, Some(keys.chain_key()));
        assert!(check_checkpoints(&read, &public, &[instance("a", &longer)], &longer).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
