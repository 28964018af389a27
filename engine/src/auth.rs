//! Access tokens and what they allow. A token is shown once when created and stored only as its
//! SHA-256 hash. Its roles decide what its holder may claim, see and do; its streets (if any)
//! narrow that to the cases of those organisation units.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Prefix of every token, so that a leaked one is recognisable in a scan.
pub const TOKEN_PREFIX: &str = "ym_";

/// A role a token holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Role {
    /// Deploys, cancels, manages tokens, sees everything.
    Admin,
    /// The supervision office: reads cases, escalations and the ledger.
    Supervision,
    /// The leadership group: reads cases, escalations and the ledger.
    Leadership,
    /// Works one queue: `window`, `department:civil_affairs`.
    Queue(String),
}

impl Role {
    /// Reads `admin`, `supervision`, `leadership` or a queue name (`window`,
    /// `department:civil_affairs`).
    pub fn parse(text: &str) -> Result<Role, String> {
        let text = text.trim();
        match text {
            "admin" => Ok(Role::Admin),
            "supervision" => Ok(Role::Supervision),
            "leadership" => Ok(Role::Leadership),
            "" => Err(
                "empty role name; give roles like `admin`, `window` or `department:civil_affairs`"
                    .into(),
            ),
            queue => {
                let valid = queue.split(':').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                });
                if valid && queue.split(':').count() <= 2 {
                    Ok(Role::Queue(queue.to_string()))
                } else {
                    Err(format!(
                        "`{queue}` is not a role: use `admin`, `supervision`, `leadership` or a queue \
                         name like `window` or `department:civil_affairs`"
                    ))
                }
            }
        }
    }

    /// Reads a comma-separated list (`window,department:civil_affairs`).
    pub fn parse_list(text: &str) -> Result<Vec<Role>, String> {
        let roles: Vec<Role> = text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Role::parse)
            .collect::<Result<_, _>>()?;
        if roles.is_empty() {
            return Err("a token needs at least one role".into());
        }
        Ok(roles)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Admin => f.write_str("admin"),
            Role::Supervision => f.write_str("supervision"),
            Role::Leadership => f.write_str("leadership"),
            Role::Queue(q) => f.write_str(q),
        }
    }
}

impl From<Role> for String {
    fn from(role: Role) -> String {
        role.to_string()
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(text: String) -> Result<Role, String> {
        Role::parse(&text)
    }
}

/// Who is calling: the holder of one valid token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub token_id: String,
    pub name: String,
    pub roles: Vec<Role>,
    /// Organisation units (streets) the token is limited to; empty = all.
    pub streets: Vec<String>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// Supervision, leadership and admins read escalations, the ledger and any case.
    pub fn is_overseer(&self) -> bool {
        self.roles
            .iter()
            .any(|r| matches!(r, Role::Admin | Role::Supervision | Role::Leadership))
    }

    /// Queues this token works.
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().filter_map(|r| match r {
            Role::Queue(q) => Some(q.as_str()),
            _ => None,
        })
    }

    /// May this token see a case of this organisation unit (`None`: the case has none)?
    pub fn sees_unit(&self, unit: Option<&str>) -> bool {
        self.streets.is_empty() || unit.is_some_and(|u| self.streets.iter().any(|s| s == u))
    }

    /// May this token claim, complete and see tasks of `queue` in organisation unit `unit`?
    /// A queue role also covers its keyed queues: `department` works `department:civil_affairs`.
    pub fn works_queue(&self, queue: &str, unit: Option<&str>) -> bool {
        self.is_admin() || (self.holds_queue(queue) && self.sees_unit(unit))
    }

    /// Does this token hold the role of `queue` (in some organisation unit)? Admins hold all.
    pub fn holds_queue(&self, queue: &str) -> bool {
        self.is_admin()
            || self.queues().any(|q| {
                q == queue
                    || queue
                        .strip_prefix(q)
                        .is_some_and(|rest| rest.starts_with(':'))
            })
    }

    /// May this token start cases and send messages? Admins and the queues that receive
    /// applications (any queue role) may; overseers only read.
    pub fn may_start(&self) -> bool {
        self.is_admin() || self.queues().next().is_some()
    }
}

/// A new token: `plain` is shown once to the person who asked for it, `hash` is stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub plain: String,
    pub hash: String,
}

/// Makes a fresh random token.
pub fn generate_token() -> NewToken {
    let bytes: [u8; 32] = rand::random();
    let plain = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash_token(&plain);
    NewToken { plain, hash }
}

/// The stored form of a token: hex SHA-256.
pub fn hash_token(plain: &str) -> String {
    hex::encode(Sha256::digest(plain.as_bytes()))
}

/// Reads `Authorization: Bearer <token>`; `Err` says what is wrong with the header.
pub fn bearer(header: Option<&str>) -> Result<&str, &'static str> {
    let header = header.ok_or(
        "this call needs a token: send `Authorization: Bearer <token>` (create one with `yimen token create`)",
    )?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("the Authorization header must read `Bearer <token>`")?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &str, streets: &[&str]) -> Principal {
        Principal {
            token_id: "t".into(),
            name: "n".into(),
            roles: Role::parse_list(roles).unwrap(),
            streets: streets.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn roles_parse_and_print_back() {
        let roles = Role::parse_list("admin, window,department:civil_affairs").unwrap();
        assert_eq!(
            roles,
            vec![
                Role::Admin,
                Role::Queue("window".into()),
                Role::Queue("department:civil_affairs".into())
            ]
        );
        let text: Vec<String> = roles.iter().map(Role::to_string).collect();
        assert_eq!(text.join(","), "admin,window,department:civil_affairs");
    }

    #[test]
    fn bad_roles_are_refused_with_the_fix() {
        assert!(
            Role::parse_list("")
                .unwrap_err()
                .contains("at least one role")
        );
        assert!(Role::parse("a b").unwrap_err().contains("not a role"));
        assert!(Role::parse("department:").is_err());
        assert!(Role::parse("a:b:c").is_err());
    }

    #[test]
    fn street_window_sees_only_its_street() {
        let window = principal("window", &["东城街道"]);
        assert!(window.works_queue("window", Some("东城街道")));
        assert!(!window.works_queue("window", Some("西城街道")));
        assert!(!window.works_queue("window", None));
        assert!(!window.works_queue("department:civil_affairs", Some("东城街道")));
        assert!(!window.is_overseer());
    }

    #[test]
    fn keyed_role_covers_its_keys_only() {
        let civil = principal("department:civil_affairs", &[]);
        assert!(civil.works_queue("department:civil_affairs", Some("any")));
        assert!(!civil.works_queue("department:health", None));
        let all = principal("department", &[]);
        assert!(all.works_queue("department:health", None));
        assert!(!all.works_queue("departments", None));
    }

    #[test]
    fn admin_and_overseers() {
        let admin = principal("admin", &[]);
        assert!(admin.works_queue("anything", Some("x")));
        assert!(admin.may_start());
        let sup = principal("supervision", &[]);
        assert!(sup.is_overseer());
        assert!(!sup.may_start());
        assert!(!sup.works_queue("window", None));
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a.plain, b.plain);
        assert!(a.plain.starts_with(TOKEN_PREFIX));
        assert_eq!(a.hash, hash_token(&a.plain));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.plain[3..]));
    }

    #[test]
    fn bearer_header_is_read_strictly() {
        assert_eq!(bearer(Some("Bearer ym_x")), Ok("ym_x"));
        assert!(bearer(None).unwrap_err().contains("yimen token create"));
        assert!(bearer(Some("Basic abc")).is_err());
        assert!(bearer(Some("Bearer ")).is_err());
    }
}
