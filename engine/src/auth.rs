//! Access tokens and what they allow. A token is shown once when created and stored only as its
//! SHA-256 hash. Its roles decide what its holder may claim, see and do; its organisation units
//! (if any) narrow that to the cases of those units. The roles are the processes' words: a
//! token's role works the queue of the same name, and what a role may do beyond its queue
//! (overseeing, reading the notices to the person a case concerns) is declared by the deployed
//! processes ([`RoleDuties`]), never named here.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Prefix of every token, so that a leaked one is recognisable in a scan.
pub const TOKEN_PREFIX: &str = "ym_";

/// A role a token holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Role {
    /// Deploys, cancels, manages tokens, sees everything.
    Admin,
    /// A role some process declares: works the queue of that name (`clerk`), or one key of a
    /// keyed role (`office:east`); what else it may do, the processes say ([`RoleDuties`]).
    Named(String),
}

/// Why a role (or a list of roles) does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error(
        "empty role name; give roles like `admin`, `clerk` or `office:east` (a role of a process, with its key)"
    )]
    Empty,
    #[error(
        "`{0}` is not a role: use `admin` or the name of a role a process \
         declares, like `clerk`, with its key if it is keyed, like `office:east`"
    )]
    NotARole(String),
    #[error("a token needs at least one role")]
    NoRole,
}

impl Role {
    /// Reads `admin` or a role name (`clerk`, `office:east`).
    pub fn parse(text: &str) -> Result<Role, RoleError> {
        let text = text.trim();
        match text {
            "admin" => Ok(Role::Admin),
            "" => Err(RoleError::Empty),
            name => {
                let valid = name.split(':').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                });
                if valid && name.split(':').count() <= 2 {
                    Ok(Role::Named(name.to_string()))
                } else {
                    Err(RoleError::NotARole(name.to_string()))
                }
            }
        }
    }

    /// Reads a comma-separated list (`clerk,office:east`).
    pub fn parse_list(text: &str) -> Result<Vec<Role>, RoleError> {
        let roles: Vec<Role> = text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Role::parse)
            .collect::<Result<_, _>>()?;
        if roles.is_empty() {
            return Err(RoleError::NoRole);
        }
        Ok(roles)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Admin => f.write_str("admin"),
            Role::Named(name) => f.write_str(name),
        }
    }
}

impl From<Role> for String {
    fn from(role: Role) -> String {
        role.to_string()
    }
}

impl TryFrom<String> for Role {
    type Error = RoleError;
    fn try_from(text: String) -> Result<Role, RoleError> {
        Role::parse(&text)
    }
}

/// What the deployed processes let roles do beyond working their queues: the roles declared
/// `oversees` (read every case, inbox, the ledger, reports and refused calls) and those declared
/// to inform the person a case concerns (they read that person's notices, the `subject` inbox).
/// Taken from the latest version of every process: a role has a duty when one of them
/// declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleDuties {
    pub overseers: BTreeSet<String>,
    pub informers: BTreeSet<String>,
    /// Role → the roles whose holders' tasks its holders may reassign (`reassigns window`).
    pub reassigners: BTreeMap<String, BTreeSet<String>>,
}

impl RoleDuties {
    /// The duties `models` declare.
    pub fn of<'a>(models: impl IntoIterator<Item = &'a yimen_dsl::model::Process>) -> RoleDuties {
        let mut duties = RoleDuties::default();
        for role in models.into_iter().flat_map(|m| &m.roles) {
            if role.oversees {
                duties.overseers.insert(role.name.name.clone());
            }
            if role.informs_subject {
                duties.informers.insert(role.name.name.clone());
            }
            if !role.reassigns.is_empty() {
                duties
                    .reassigners
                    .entry(role.name.name.clone())
                    .or_default()
                    .extend(role.reassigns.iter().map(|r| r.name.clone()));
            }
        }
        duties
    }

    /// `principal` with the duties its roles have.
    pub fn apply(&self, mut principal: Principal) -> Principal {
        let holds = |set: &BTreeSet<String>| principal.named_roles().any(|role| set.contains(role));
        let (oversees, informs) = (holds(&self.overseers), holds(&self.informers));
        let works_cases = principal
            .named_roles()
            .any(|role| !self.overseers.contains(role));
        let reassigns: BTreeSet<String> = principal
            .named_roles()
            .filter_map(|role| self.reassigners.get(role))
            .flatten()
            .cloned()
            .collect();
        principal.reassigns = reassigns.into_iter().collect();
        principal.oversees = oversees;
        principal.informs_subject = informs;
        principal.only_oversees = oversees && !works_cases;
        principal
    }
}

/// The inbox of the person a case concerns (a process's notices to them): read by the roles
/// that inform them, for the cases those may see.
pub const SUBJECT_INBOX: &str = "subject";

/// What kind of caller a [`Principal`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A machine's bearer token (`yimen token create`).
    #[default]
    Token,
    /// A person signed in with a password (`yimen user add`), through a session.
    User,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Token => "token",
            PrincipalKind::User => "user",
        }
    }
}

/// Who is calling: the holder of one valid token, or a person signed in. Roles, units and
/// duties mean the same for both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    #[serde(default)]
    pub kind: PrincipalKind,
    /// The token's id, or the user's.
    pub id: String,
    /// The token's name, or the user's display name.
    pub name: String,
    pub roles: Vec<Role>,
    /// Organisation units the token is limited to; empty = all.
    pub org_units: Vec<String>,
    /// One of its roles oversees ([`RoleDuties`]; set when the token is authenticated).
    #[serde(default)]
    pub oversees: bool,
    /// One of its roles informs the person a case concerns ([`RoleDuties`]).
    #[serde(default)]
    pub informs_subject: bool,
    /// Every role it holds oversees: it reads, and sends no messages ([`RoleDuties`]).
    #[serde(default)]
    pub only_oversees: bool,
    /// The roles whose holders' tasks one of its roles may reassign ([`RoleDuties`]).
    #[serde(default)]
    pub reassigns: Vec<String>,
}

impl Principal {
    /// The caller as messages name it: ``token `name` `` or ``user `name` ``.
    pub fn who(&self) -> String {
        format!("{} `{}`", self.kind.as_str(), self.name)
    }

    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// Admins and the holders of a role a process declares `oversees` read escalations, the
    /// ledger and any case (of their organisation units).
    pub fn is_overseer(&self) -> bool {
        self.is_admin() || self.oversees
    }

    /// Roles this token holds besides admin (`clerk`, `office:east`).
    pub fn named_roles(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().filter_map(|r| match r {
            Role::Named(name) => Some(name.as_str()),
            Role::Admin => None,
        })
    }

    /// May this token see a case of this organisation unit (`None`: the case has none)?
    pub fn sees_unit(&self, unit: Option<&str>) -> bool {
        self.org_units.is_empty() || unit.is_some_and(|u| self.org_units.iter().any(|s| s == u))
    }

    /// May this token claim, complete and see tasks of `queue` in organisation unit `unit`?
    /// A role also covers its keyed queues: `office` works `office:east`.
    pub fn works_queue(&self, queue: &str, unit: Option<&str>) -> bool {
        self.is_admin() || (self.holds_queue(queue) && self.sees_unit(unit))
    }

    /// Why this token may not work task `task` of `queue` (a 403's message).
    pub fn may_not_work(&self, task: &str, queue: &str) -> String {
        format!("{} may not work task {task} of queue `{queue}`", self.who())
    }

    /// Does this token hold the role of `queue` (in some organisation unit)? Admins hold all.
    pub fn holds_queue(&self, queue: &str) -> bool {
        self.is_admin() || self.named_roles().any(|role| covers(role, queue))
    }

    /// May this token read (and acknowledge) the inbox of `recipient`? Overseers read every
    /// inbox; a role reads its queue's; the [`SUBJECT_INBOX`] is read by the roles that inform
    /// the person concerned; a worker's inbox (`worker:<id>`) by overseers only.
    pub fn reads_inbox(&self, recipient: &str) -> bool {
        if self.is_overseer() {
            return true;
        }
        match recipient {
            SUBJECT_INBOX => self.informs_subject,
            r if r.starts_with("worker:") => false,
            queue => self.holds_queue(queue),
        }
    }

    /// May this token send messages to cases? Admins and the tokens with a role that does not
    /// oversee (one that works cases); a token whose every role oversees only reads.
    pub fn may_start(&self) -> bool {
        self.is_admin() || (self.named_roles().next().is_some() && !self.only_oversees)
    }
}

/// Who may start instances of one deployed process. Admins always may. Otherwise the roles
/// listed under `start_roles` in the process's YAML configuration, or, when it lists none, the
/// roles of the process's first tasks: those a case can reach from its start without passing
/// another task (so the queue that receives the application starts the case).
///
/// A role matches a token role of the same name, and keys of it both ways: `department`
/// admits a `department:civil_affairs` token and `department:civil_affairs` admits a
/// `department` token (which works every key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRoles {
    /// Role names besides admin (`clerk`, `office:east`).
    pub roles: Vec<String>,
    /// `true` when `start_roles` set them; `false` for the default.
    pub configured: bool,
    /// The variables that scope the process's queues (`role clerk per district`: `district`),
    /// sorted: a token limited to organisation units starts only cases whose values are among
    /// them.
    pub scopes: Vec<String>,
}

/// The configuration key that lists who may start a process.
pub const START_ROLES_KEY: &str = "start_roles";

impl StartRoles {
    /// The rule for `model` deployed with `config` (its YAML as JSON). A `start_roles` value
    /// that is not a list of texts (the checker refuses one at deploy) admits admins only.
    pub fn of(model: &yimen_dsl::model::Process, config: &serde_json::Value) -> StartRoles {
        let mut scopes: Vec<String> = model
            .roles
            .iter()
            .filter_map(|r| r.scope.as_ref().map(|s| s.name.clone()))
            .collect();
        scopes.sort();
        scopes.dedup();
        let (roles, configured) = match config.get(START_ROLES_KEY) {
            Some(serde_json::Value::Array(items)) => (
                items
                    .iter()
                    .filter_map(|v| v.as_str())
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty() && r != "admin")
                    .collect(),
                true,
            ),
            Some(_) => (Vec::new(), true),
            None => (first_task_roles(model), false),
        };
        StartRoles {
            roles,
            configured,
            scopes,
        }
    }

    /// For a token limited to organisation units: why it may not start a case with `vars`, if
    /// so (a scope variable missing, or naming a unit not among the token's).
    pub fn refuses_unit(
        &self,
        principal: &Principal,
        vars: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<String> {
        if principal.org_units.is_empty() || principal.is_admin() {
            return None;
        }
        let limited = format!(
            "{} is limited to organisation units ({})",
            principal.who(),
            principal.org_units.join(", ")
        );
        self.scopes.iter().find_map(
            |var| match vars.get(var).map(crate::runtime::display_json) {
                Some(unit) if principal.org_units.contains(&unit) => None,
                Some(unit) => Some(format!(
                    "{limited}: it may not start a case whose `{var}` is `{unit}`"
                )),
                None => Some(format!(
                    "{limited}: give `{var}` (one of them) to start a case"
                )),
            },
        )
    }

    /// May `principal` start the process?
    pub fn allow(&self, principal: &Principal) -> bool {
        principal.is_admin()
            || principal.roles.iter().any(|held| {
                let held = held.to_string();
                self.roles
                    .iter()
                    .any(|role| covers(&held, role) || covers(role, &held))
            })
    }

    /// `admin` and the allowed roles, for messages.
    pub fn names(&self) -> Vec<String> {
        std::iter::once("admin".to_string())
            .chain(self.roles.iter().cloned())
            .collect()
    }
}

/// `department` covers `department` and `department:<key>`.
fn covers(role: &str, other: &str) -> bool {
    other == role
        || other
            .strip_prefix(role)
            .is_some_and(|rest| rest.starts_with(':'))
}

/// Roles of the tasks reachable from the start without passing another task, sorted.
fn first_task_roles(model: &yimen_dsl::model::Process) -> Vec<String> {
    use yimen_dsl::model::NodeKind;
    let by_id: HashMap<&str, &NodeKind> = model
        .nodes
        .iter()
        .map(|n| (n.id.name.as_str(), &n.kind))
        .collect();
    let mut todo: Vec<&str> = model
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::Start { next } => Some(next.name.as_str()),
            _ => None,
        })
        .collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut roles: Vec<String> = Vec::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(kind) = by_id.get(id) else {
            continue;
        };
        match kind {
            NodeKind::Task(task) => {
                let role = task.queue.role.name.clone();
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
            NodeKind::Start { next }
            | NodeKind::Step { next, .. }
            | NodeKind::Join { next }
            | NodeKind::WaitTimer { next, .. }
            | NodeKind::StartProcess { next, .. } => todo.push(&next.name),
            NodeKind::WaitMessage { next, timeout, .. } => {
                todo.push(&next.name);
                if let Some((_, after)) = timeout {
                    todo.push(&after.name);
                }
            }
            NodeKind::Choice { branches, default } => {
                todo.extend(branches.iter().map(|b| b.next.name.as_str()));
                todo.extend(default.iter().map(|d| d.name.as_str()));
            }
            NodeKind::Split { branches } => todo.extend(branches.iter().map(|b| b.name.as_str())),
            NodeKind::End { .. } => {}
        }
    }
    roles.sort();
    roles
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

/// Until when a token works, in unix milliseconds (`None`: no limit). `expires_at` is its
/// expiry, set when it was made (`--expires 90d`); `revoked_at` when it was revoked, which is in
/// the future for a token replaced by a rotation with an overlap (it works until then). A
/// server keeps this with the token it caches and looks at it on every request, so a token
/// stops at its moment without a read of the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenValidity {
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Why a token no longer works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lapsed {
    /// Revoked at this moment (unix millis), or replaced by a rotation whose overlap ended.
    Revoked { at: i64 },
    /// Its lifetime ended at this moment (unix millis).
    Expired { at: i64 },
}

impl TokenValidity {
    /// Why the token does not work at `now` (unix millis); `None` while it does.
    pub fn lapsed(&self, now: i64) -> Option<Lapsed> {
        match (self.revoked_at, self.expires_at) {
            (Some(at), _) if at <= now => Some(Lapsed::Revoked { at }),
            (_, Some(at)) if at <= now => Some(Lapsed::Expired { at }),
            _ => None,
        }
    }
}

/// Why a time span (`90d`, `12h`, `30m`, `90s`) does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error(
        "`{0}` does not read as a time span: write a whole number and `d` (days), `h` (hours), \
         `m` (minutes) or `s` (seconds), e.g. `90d`, `12h` or `30m`"
    )]
    Unreadable(String),
    #[error("`{text}` is longer than {max}")]
    TooLong { text: String, max: &'static str },
}

/// Reads a time span as `yimen token`, `yimen serve --session-idle` and the API take it: a
/// whole number and a unit, `d` (days), `h` (hours), `m` (minutes) or `s` (seconds): `90d`,
/// `12h`, `30m`. `0` of any unit is nothing (an overlap of `0h` revokes at once). At most ten
/// years.
pub fn parse_span(text: &str) -> Result<chrono::Duration, SpanError> {
    let t = text.trim();
    let unreadable = || SpanError::Unreadable(text.to_string());
    let split = t.len().checked_sub(1).ok_or_else(unreadable)?;
    let (digits, unit) = (t.get(..split).ok_or_else(unreadable)?, &t[split..]);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unreadable());
    }
    let too_long = || SpanError::TooLong {
        text: text.to_string(),
        max: "ten years (3650d)",
    };
    let amount: i64 = digits.parse().map_err(|_| too_long())?;
    let span = match unit {
        "d" => chrono::Duration::try_days(amount),
        "h" => chrono::Duration::try_hours(amount),
        "m" => chrono::Duration::try_minutes(amount),
        "s" => chrono::Duration::try_seconds(amount),
        _ => return Err(unreadable()),
    }
    .ok_or_else(too_long)?;
    if span > chrono::Duration::days(3650) {
        return Err(too_long());
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &str, org_units: &[&str]) -> Principal {
        Principal {
            kind: PrincipalKind::Token,
            id: "t".into(),
            name: "n".into(),
            roles: Role::parse_list(roles).unwrap(),
            org_units: org_units.iter().map(|s| s.to_string()).collect(),
            oversees: false,
            informs_subject: false,
            only_oversees: false,
            reassigns: Vec::new(),
        }
    }

    #[test]
    fn spans_read_days_hours_minutes_and_seconds() {
        assert_eq!(parse_span("90d"), Ok(chrono::Duration::days(90)));
        assert_eq!(parse_span(" 12h "), Ok(chrono::Duration::hours(12)));
        assert_eq!(parse_span("30m"), Ok(chrono::Duration::minutes(30)));
        assert_eq!(parse_span("0h"), Ok(chrono::Duration::zero()));
        assert_eq!(parse_span("90s"), Ok(chrono::Duration::seconds(90)));
        for bad in ["", "d", "90", "90 d", "-1d", "1.5d", "90w", "9０d", "十d"] {
            assert_eq!(
                parse_span(bad),
                Err(SpanError::Unreadable(bad.to_string())),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_span("3651d"),
            Err(SpanError::TooLong { .. })
        ));
        assert!(matches!(
            parse_span("99999999999999999999d"),
            Err(SpanError::TooLong { .. })
        ));
    }

    #[test]
    fn a_token_lapses_at_its_expiry_or_revocation() {
        let never = TokenValidity::default();
        assert_eq!(never.lapsed(i64::MAX), None);
        let expiring = TokenValidity {
            expires_at: Some(100),
            revoked_at: None,
        };
        assert_eq!(expiring.lapsed(99), None);
        assert_eq!(expiring.lapsed(100), Some(Lapsed::Expired { at: 100 }));
        let retiring = TokenValidity {
            expires_at: Some(100),
            revoked_at: Some(50),
        };
        assert_eq!(retiring.lapsed(49), None);
        assert_eq!(retiring.lapsed(200), Some(Lapsed::Revoked { at: 50 }));
    }

    #[test]
    fn roles_parse_and_print_back() {
        let roles = Role::parse_list("admin, window,department:civil_affairs").unwrap();
        assert_eq!(
            roles,
            vec![
                Role::Admin,
                Role::Named("window".into()),
                Role::Named("department:civil_affairs".into())
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
                .to_string()
                .contains("at least one role")
        );
        assert!(
            Role::parse("a b")
                .unwrap_err()
                .to_string()
                .contains("not a role")
        );
        assert!(Role::parse("department:").is_err());
        assert!(Role::parse("a:b:c").is_err());
    }

    #[test]
    fn a_unit_window_sees_only_its_unit() {
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

    /// Duties as a process declares them: `auditor` and `board` oversee, `desk` informs, `board`
    /// reassigns the desk's tasks.
    fn duties() -> RoleDuties {
        let source = r#"process p "测试" version 1
var district: text required "区域"
role desk "受理台" per district
role board "委员会" oversees reassigns desk
role auditor "审计" oversees
start begin "开始" -> check
task check "审查" {
  queue desk
  outcome ok "好" -> decide
}
task decide "决定" {
  queue board
  outcome ok "好" -> done
}
end done "结束" result done
"#;
        let compiled = yimen_dsl::compile("p.flow", source, &|_| None);
        let mut model = compiled
            .process
            .unwrap_or_else(|| panic!("test process checks: {:?}", compiled.diagnostics));
        // The desk informs the person concerned (its clause, written here as the model holds it).
        for role in &mut model.roles {
            role.informs_subject = role.name.name == "desk";
        }
        RoleDuties::of([&model])
    }

    #[test]
    fn duties_come_from_the_role_declarations() {
        let duties = duties();
        assert_eq!(
            duties.overseers.iter().collect::<Vec<_>>(),
            vec!["auditor", "board"]
        );
        assert_eq!(duties.informers.iter().collect::<Vec<_>>(), vec!["desk"]);
        assert_eq!(duties.apply(principal("board", &[])).reassigns, ["desk"]);
        assert!(duties.apply(principal("desk", &[])).reassigns.is_empty());
        let auditor = duties.apply(principal("auditor", &[]));
        assert!(auditor.is_overseer());
        assert!(auditor.reads_inbox("desk") && auditor.reads_inbox(SUBJECT_INBOX));
        assert!(auditor.reads_inbox("worker:w1"));
        // Overseeing is reading: it works no queue but its own, and sends no messages.
        assert!(!auditor.works_queue("desk", None));
        assert!(!auditor.may_start());
        // A role no process declares `oversees` reads only its queue's inbox.
        let desk = duties.apply(principal("desk", &["东城"]));
        assert!(!desk.is_overseer());
        assert!(desk.reads_inbox("desk") && desk.reads_inbox(SUBJECT_INBOX));
        assert!(!desk.reads_inbox("board") && !desk.reads_inbox("worker:w1"));
        assert!(desk.may_start());
        // A token that also works cases still sends messages; it oversees all the same.
        let both = duties.apply(principal("desk,auditor", &[]));
        assert!(both.is_overseer() && both.may_start());
        let clerk = duties.apply(principal("clerk", &[]));
        assert!(!clerk.is_overseer() && !clerk.reads_inbox(SUBJECT_INBOX));
        // Without the declarations (no process deployed), nobody but admins oversees.
        assert!(
            !RoleDuties::default()
                .apply(principal("auditor", &[]))
                .is_overseer()
        );
    }

    #[test]
    fn admin_sees_and_works_everything() {
        let admin = principal("admin", &[]);
        assert!(admin.works_queue("anything", Some("x")));
        assert!(admin.may_start());
        assert!(admin.is_overseer() && admin.reads_inbox(SUBJECT_INBOX));
    }

    /// An overseeing role that is also a queue (a board deciding the cases referred to it)
    /// claims from its queue and from nothing else.
    #[test]
    fn an_overseeing_role_works_its_own_queue() {
        let board = duties().apply(principal("board", &[]));
        assert!(board.is_overseer());
        assert!(board.works_queue("board", None));
        assert!(!board.works_queue("desk", Some("x")));
        assert!(!principal("desk", &[]).works_queue("board", None));
    }

    /// A choice leads to `intake`, or through a wait to a keyed `office` task; `boss` comes
    /// only after them.
    const FIRST_TASKS: &str = r#"process p "测试" version 1
enum unit { east "东", west "西" }
var amount: integer required "金额"
var u: unit required "科室"
role intake "受理"
role office[unit] "科室"
role boss "领导"
start begin "开始" -> route
choice route "分流" {
  when amount > 10 -> big
  else -> small
}
wait big "等待" 1 days -> office_task
task small "受理" {
  queue intake
  outcome ok "好" -> later
}
task office_task "科室" {
  queue office[u]
  outcome ok "好" -> later
}
task later "领导" {
  queue boss
  outcome ok "好" -> done
}
end done "结束" result done
"#;

    fn first_tasks_model() -> yimen_dsl::model::Process {
        let compiled = yimen_dsl::compile("p.flow", FIRST_TASKS, &|_| None);
        compiled
            .process
            .unwrap_or_else(|| panic!("test process checks: {:?}", compiled.diagnostics))
    }

    #[test]
    fn tokens_limited_to_units_start_cases_of_their_units() {
        let source = r#"process p "测试" version 1
var district: text required "区域"
role window "窗口" per district
start begin "开始" -> intake
task intake "受理" {
  queue window
  outcome ok "好" -> done
}
end done "结束" result done
"#;
        let compiled = yimen_dsl::compile("p.flow", source, &|_| None);
        let model = compiled
            .process
            .unwrap_or_else(|| panic!("test process checks: {:?}", compiled.diagnostics));
        let rule = StartRoles::of(&model, &serde_json::json!({}));
        assert_eq!(rule.scopes, vec!["district"]);
        let vars = |district: serde_json::Value| {
            serde_json::json!({ "district": district })
                .as_object()
                .cloned()
                .unwrap()
        };
        let east = principal("window", &["东城", "北城"]);
        assert_eq!(rule.refuses_unit(&east, &vars("北城".into())), None);
        let west = rule.refuses_unit(&east, &vars("西城".into())).unwrap();
        assert!(
            west.contains("limited to organisation units (东城, 北城)"),
            "{west}"
        );
        assert!(west.contains("whose `district` is `西城`"), "{west}");
        let missing = rule.refuses_unit(&east, &serde_json::Map::new()).unwrap();
        assert!(missing.contains("give `district`"), "{missing}");
        // A number names the unit as its JSON text, as it does for tasks.
        let numbered = principal("window", &["7"]);
        assert_eq!(rule.refuses_unit(&numbered, &vars(7.into())), None);
        // Not limited, or an admin: no check. A process without scoped roles: none either.
        for free in [principal("window", &[]), principal("admin", &["东城"])] {
            assert_eq!(rule.refuses_unit(&free, &vars("西城".into())), None);
        }
        let unscoped = StartRoles::of(&first_tasks_model(), &serde_json::json!({}));
        assert!(unscoped.scopes.is_empty());
        assert_eq!(unscoped.refuses_unit(&east, &vars("西城".into())), None);
    }

    #[test]
    fn by_default_the_roles_of_the_first_tasks_may_start() {
        let rule = StartRoles::of(&first_tasks_model(), &serde_json::json!({}));
        assert_eq!(rule.roles, vec!["intake", "office"]);
        assert!(!rule.configured);
        for yes in ["intake", "office", "office:east", "admin", "boss,intake"] {
            assert!(rule.allow(&principal(yes, &[])), "{yes} may start");
        }
        for no in ["boss", "auditor", "offices", "intake_x"] {
            assert!(!rule.allow(&principal(no, &[])), "{no} may not start");
        }
        assert_eq!(rule.names(), vec!["admin", "intake", "office"]);
    }

    #[test]
    fn start_roles_in_the_configuration_replace_the_default() {
        let model = first_tasks_model();
        let rule = StartRoles::of(
            &model,
            &serde_json::json!({"start_roles": ["office:east", "auditor"]}),
        );
        assert!(rule.configured);
        for yes in ["office:east", "office", "auditor", "admin"] {
            assert!(rule.allow(&principal(yes, &[])), "{yes} may start");
        }
        for no in ["office:west", "intake", "boss"] {
            assert!(!rule.allow(&principal(no, &[])), "{no} may not start");
        }
        // Not a list (the checker refuses it at deploy): admins only.
        let broken = StartRoles::of(&model, &serde_json::json!({"start_roles": "intake"}));
        assert!(!broken.allow(&principal("intake", &[])));
        assert!(broken.allow(&principal("admin", &[])));
        let empty = StartRoles::of(&model, &serde_json::json!({"start_roles": []}));
        assert_eq!(empty.names(), vec!["admin"]);
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
