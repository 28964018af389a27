//! Who acted: the principal as authenticated (a person, a machine token) or the engine itself
//! (timers, linked cases). Every history entry records one (kind, id and name); nothing a
//! client sends chooses it: the API builds it from the authenticated [`Principal`].

use crate::auth::{Principal, PrincipalKind};
use serde::{Deserialize, Serialize};

/// What kind of actor made a history entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person signed in (`yimen user add`).
    User,
    /// A machine's bearer token.
    Token,
    /// The engine's own steps (timers, linked cases), and the callers of the library that
    /// authenticate nobody (the local CLI, tests).
    #[default]
    Engine,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Token => "token",
            ActorKind::Engine => "engine",
        }
    }
}

impl From<PrincipalKind> for ActorKind {
    fn from(kind: PrincipalKind) -> Self {
        match kind {
            PrincipalKind::User => ActorKind::User,
            PrincipalKind::Token => ActorKind::Token,
        }
    }
}

/// The acting principal: kind, id (a user's or a token's id; the step's name for the engine)
/// and name (what people read). Who a principal IS is its [`Actor::key`]: display names are
/// not unique (two people named 王芳, a token named like a person), so a task's assignee and a
/// claim's holder are compared by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    pub name: String,
}

impl Actor {
    /// One of the engine's own steps, `name` (`engine`, `timer`).
    pub fn engine(name: &str) -> Self {
        Actor {
            kind: ActorKind::Engine,
            id: name.to_string(),
            name: name.to_string(),
        }
    }

    /// Someone known by name only (the holder of a claim whose end it did not make itself,
    /// as the task row keeps it): recorded with neither kind nor id.
    pub fn named(name: &str) -> Self {
        Actor {
            kind: ActorKind::default(),
            id: String::new(),
            name: name.to_string(),
        }
    }

    /// Who the actor is, as tasks record an assignee or a claim's holder: `user:<id>`,
    /// `token:<id>`, `engine:<name>`. `None` for an actor known by name only.
    pub fn key(&self) -> Option<String> {
        (!self.id.is_empty()).then(|| format!("{}:{}", self.kind.as_str(), self.id))
    }

    /// The actor a task row records by `name` and `key` ([`Actor::key`]); known by name only
    /// when the row has no key (written before keys were recorded) or one this engine does
    /// not read.
    pub fn keyed(name: &str, key: Option<&str>) -> Self {
        let parsed = key.and_then(|key| {
            let (kind, id) = key.split_once(':')?;
            let kind = match kind {
                "user" => ActorKind::User,
                "token" => ActorKind::Token,
                "engine" => ActorKind::Engine,
                _ => return None,
            };
            (!id.is_empty()).then(|| (kind, id.to_string()))
        });
        match parsed {
            Some((kind, id)) => Actor {
                kind,
                id,
                name: name.to_string(),
            },
            None => Actor::named(name),
        }
    }

    /// Is this actor the one a task row records as `name` with `key`? By key when the row has
    /// one; by name only for a row written before keys were recorded.
    pub fn is(&self, name: &str, key: Option<&str>) -> bool {
        match key {
            Some(key) => self.key().as_deref() == Some(key),
            None => self.name == name,
        }
    }

    /// The kind as recorded: empty for an actor known by name only.
    pub fn recorded_kind(&self) -> &'static str {
        if self.id.is_empty() {
            ""
        } else {
            self.kind.as_str()
        }
    }

    /// The actor as people read it: `王芳 (user)`, `worker-1 (token)`.
    pub fn shown(&self) -> String {
        format!("{} ({})", self.name, self.kind.as_str())
    }
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Actor {
            kind: p.kind.into(),
            id: p.id.clone(),
            name: p.name.clone(),
        }
    }
}

/// A name given by a caller of the library that authenticated nobody: the engine acts under
/// that name.
impl From<&str> for Actor {
    fn from(name: &str) -> Self {
        Actor::engine(name)
    }
}

impl From<String> for Actor {
    fn from(name: String) -> Self {
        Actor::from(name.as_str())
    }
}

impl From<&String> for Actor {
    fn from(name: &String) -> Self {
        Actor::from(name.as_str())
    }
}

/// How an entry's actor is shown: `name (kind)`, or the bare name for an entry written before
/// actors had kinds.
pub fn shown(name: &str, kind: &str) -> String {
    if kind.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({kind})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_name_and_kind() {
        let a = Actor {
            kind: ActorKind::User,
            id: "u1".into(),
            name: "王芳".into(),
        };
        assert_eq!(a.shown(), "王芳 (user)");
        assert_eq!(shown("worker-1", "token"), "worker-1 (token)");
        assert_eq!(shown("old", ""), "old");
        assert_eq!(Actor::from("x").kind, ActorKind::Engine);
    }

    #[test]
    fn keys_tell_apart_principals_of_one_name() {
        let one = Actor {
            kind: ActorKind::User,
            id: "u1".into(),
            name: "王芳".into(),
        };
        let other = Actor {
            id: "u2".into(),
            ..one.clone()
        };
        let token = Actor {
            kind: ActorKind::Token,
            ..one.clone()
        };
        assert_eq!(one.key().as_deref(), Some("user:u1"));
        assert_eq!(token.key().as_deref(), Some("token:u1"));
        assert!(one.is("王芳", Some("user:u1")));
        assert!(!other.is("王芳", Some("user:u1")));
        assert!(!token.is("王芳", Some("user:u1")));
        // A row without a key (written before keys) compares names.
        assert!(other.is("王芳", None));
        assert_eq!(Actor::keyed("王芳", Some("user:u1")), one);
        assert_eq!(Actor::keyed("王芳", None), Actor::named("王芳"));
        assert_eq!(Actor::keyed("王芳", Some("nonsense")), Actor::named("王芳"));
        assert_eq!(Actor::named("x").key(), None);
    }
}
