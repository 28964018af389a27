//! Access tokens and what they allow. A token is shown once when created and stored only as its
//! SHA-256 hash. Its roles decide what its holder may claim, see and do; its streets (if any)
//! narrow that to the cases of those organisation units.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

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

    /// Why this token may not work task `task` of `queue` (a 403's message).
    pub fn may_not_work(&self, task: &str, queue: &str) -> String {
        format!(
            "token `{}` may not work task {task} of queue `{queue}`",
            self.name
        )
    }

    /// Does this token hold the role of `queue` (in some organisation unit)? Admins hold all;
    /// a built-in role holds the queue of its own name unless it only reads
    /// (`yimen_dsl::check::READ_ONLY_ROLES`, which the checker warns about).
    pub fn holds_queue(&self, queue: &str) -> bool {
        self.is_admin()
            || self.queues().any(|q| {
                q == queue
                    || queue
                        .strip_prefix(q)
                        .is_some_and(|rest| rest.starts_with(':'))
            })
            || (!yimen_dsl::check::READ_ONLY_ROLES.contains(&queue)
                && self
                    .roles
                    .iter()
                    .any(|r| !matches!(r, Role::Queue(_)) && r.to_string() == queue))
    }

    /// May this token start cases and send messages? Admins and the queues that receive
    /// applications (any queue role) may; overseers only read.
    pub fn may_start(&self) -> bool {
        self.is_admin() || self.queues().next().is_some()
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
    /// Role names besides admin (`window`, `department:civil_affairs`, `supervision`).
    pub roles: Vec<String>,
    /// `true` when `start_roles` set them; `false` for the default.
    pub configured: bool,
    /// The variables that scope the process's queues (`role window per street`: `street`),
    /// sorted: a token limited to streets starts only cases whose values are among them.
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

    /// For a token limited to streets: why it may not start a case with `vars`, if so (a
    /// scope variable missing, or naming a unit not among the token's).
    pub fn refuses_unit(
        &self,
        principal: &Principal,
        vars: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<String> {
        if principal.streets.is_empty() || principal.is_admin() {
            return None;
        }
        let limited = format!(
            "token `{}` is limited to streets ({})",
            principal.name,
            principal.streets.join(", ")
        );
        self.scopes.iter().find_map(
            |var| match vars.get(var).map(crate::runtime::display_json) {
                Some(unit) if principal.streets.contains(&unit) => None,
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

    /// The leadership group decides the special cases referred to it (§二(三)4): its token
    /// claims from the `leadership` queue, and nothing else; supervision only reads.
    #[test]
    fn leadership_works_its_own_queue_and_supervision_none() {
        let lead = principal("leadership", &[]);
        assert!(lead.is_overseer());
        assert!(lead.works_queue("leadership", None));
        assert!(!lead.works_queue("window", Some("x")));
        assert!(!lead.works_queue("department:civil_affairs", None));
        assert!(!lead.may_start());
        let sup = principal("supervision", &[]);
        assert!(!sup.works_queue("supervision", None));
        assert!(!principal("window", &[]).works_queue("leadership", None));
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
    fn tokens_limited_to_streets_start_cases_of_their_streets() {
        let source = r#"process p "测试" version 1
var street: text required "街道"
role window "窗口" per street
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
        assert_eq!(rule.scopes, vec!["street"]);
        let vars = |street: serde_json::Value| {
            serde_json::json!({ "street": street })
                .as_object()
                .cloned()
                .unwrap()
        };
        let east = principal("window", &["东城", "北城"]);
        assert_eq!(rule.refuses_unit(&east, &vars("北城".into())), None);
        let west = rule.refuses_unit(&east, &vars("西城".into())).unwrap();
        assert!(west.contains("limited to streets (东城, 北城)"), "{west}");
        assert!(west.contains("whose `street` is `西城`"), "{west}");
        let missing = rule.refuses_unit(&east, &serde_json::Map::new()).unwrap();
        assert!(missing.contains("give `street`"), "{missing}");
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
        for no in ["boss", "supervision", "offices", "intake_x"] {
            assert!(!rule.allow(&principal(no, &[])), "{no} may not start");
        }
        assert_eq!(rule.names(), vec!["admin", "intake", "office"]);
    }

    #[test]
    fn start_roles_in_the_configuration_replace_the_default() {
        let model = first_tasks_model();
        let rule = StartRoles::of(
            &model,
            &serde_json::json!({"start_roles": ["office:east", "supervision"]}),
        );
        assert!(rule.configured);
        for yes in ["office:east", "office", "supervision", "admin"] {
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
