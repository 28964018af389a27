//! How the rows' typed fields are stored: states and kinds as their lowercase names (TEXT),
//! variables as a JSON object (TEXT). The rows above the store hold the types; the text is
//! read and written only here, for sqlx (both databases) and rusqlite (SQLite's writer and
//! readers). A stored name the engine does not know is a storage error naming it, never a
//! panic.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde_json::{Map, Value as Json};
use sqlx::error::BoxDynError;

/// A type stored as TEXT, for sqlx on either database.
macro_rules! text_column {
    ($ty:ty) => {
        impl<DB: sqlx::Database> sqlx::Type<DB> for $ty
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }
    };
}

/// Implements the drivers' traits for a type stored as its name: `as_str(self) ->
/// &'static str` and `parse(&str) -> Option<Self>`.
macro_rules! stored_as_name {
    ($ty:ty) => {
        text_column!($ty);

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $ty
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let name = <&str as sqlx::Decode<DB>>::decode(value)?;
                <$ty>::parse(name).ok_or_else(|| unknown(stringify!($ty), name).into())
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $ty
        where
            &'static str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, BoxDynError> {
                <&'static str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let name = value.as_str()?;
                <$ty>::parse(name)
                    .ok_or_else(|| FromSqlError::Other(unknown(stringify!($ty), name).into()))
            }
        }

        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
    };
}

fn unknown(what: &str, name: &str) -> String {
    format!("the database holds a {what} `{name}` this yimen does not know")
}

stored_as_name!(crate::engine::TaskState);
stored_as_name!(crate::runtime::state::Status);
stored_as_name!(TimerState);
stored_as_name!(OutboxState);

/// A timer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerState {
    Pending,
    Fired,
    Cancelled,
}

impl TimerState {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerState::Pending => "pending",
            TimerState::Fired => "fired",
            TimerState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<TimerState> {
        Some(match s {
            "pending" => TimerState::Pending,
            "fired" => TimerState::Fired,
            "cancelled" => TimerState::Cancelled,
            _ => return None,
        })
    }
}

/// A delivery's state: still to deliver (or retried), delivered, or given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Pending,
    Delivered,
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Dead => "dead",
        }
    }
    pub fn parse(s: &str) -> Option<OutboxState> {
        Some(match s {
            "pending" => OutboxState::Pending,
            "delivered" => OutboxState::Delivered,
            "dead" => OutboxState::Dead,
            _ => return None,
        })
    }
}

/// An instance's variables: a JSON object, stored as its text. Shared: rows are copied into
/// answers and the committer's carry, and a copy must not copy every value; a change copies
/// the map only when another row still shares it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vars(std::sync::Arc<Map<String, Json>>);

impl std::ops::Deref for Vars {
    type Target = Map<String, Json>;
    fn deref(&self) -> &Map<String, Json> {
        &self.0
    }
}

impl std::ops::DerefMut for Vars {
    fn deref_mut(&mut self) -> &mut Map<String, Json> {
        std::sync::Arc::make_mut(&mut self.0)
    }
}

impl From<Map<String, Json>> for Vars {
    fn from(map: Map<String, Json>) -> Vars {
        Vars(std::sync::Arc::new(map))
    }
}

impl Vars {
    /// The stored text.
    pub fn to_text(&self) -> String {
        // A map of JSON values always serializes.
        serde_json::to_string(&*self.0).unwrap_or_else(|_| "{}".into())
    }

    /// From the stored text.
    pub fn from_text(text: &str) -> Result<Vars, serde_json::Error> {
        serde_json::from_str::<Map<String, Json>>(text).map(Vars::from)
    }

    /// The variables, copied only when shared.
    pub fn into_map(self) -> Map<String, Json> {
        std::sync::Arc::unwrap_or_clone(self.0)
    }
}

text_column!(Vars);

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for Vars
where
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Vars::from_text(<&str as sqlx::Decode<DB>>::decode(value)?)?)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for Vars
where
    String: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, BoxDynError> {
        <String as sqlx::Encode<'q, DB>>::encode(self.to_text(), buf)
    }
}

impl FromSql for Vars {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Vars::from_text(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for Vars {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TaskState;
    use crate::runtime::state::Status;

    /// Every name reads back as what wrote it, and an unknown name is an error that names it.
    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        for state in [
            TaskState::Open,
            TaskState::Claimed,
            TaskState::Completed,
            TaskState::Cancelled,
            TaskState::Failed,
        ] {
            let back: TaskState = db.query_row("SELECT ?1", [state], |r| r.get(0)).unwrap();
            assert_eq!(back, state);
        }
        let back: Status = db
            .query_row("SELECT ?1", [Status::Incident], |r| r.get(0))
            .unwrap();
        assert_eq!(back, Status::Incident);
        let err = db
            .query_row("SELECT 'paused'", [], |r| r.get::<_, TimerState>(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TimerState `paused`"), "{err}");
    }

    #[test]
    fn variables_are_a_json_object_and_anything_else_is_an_error() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        let mut vars = Vars::default();
        vars.insert("n".into(), serde_json::json!(1));
        let text: String = db.query_row("SELECT ?1", [&vars], |r| r.get(0)).unwrap();
        assert_eq!(text, r#"{"n":1}"#);
        let back: Vars = db.query_row("SELECT ?1", [&text], |r| r.get(0)).unwrap();
        assert_eq!(back, vars);
        assert!(
            db.query_row("SELECT '[1]'", [], |r| r.get::<_, Vars>(0))
                .is_err()
        );
    }
}
