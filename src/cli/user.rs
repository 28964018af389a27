//! `yimen user add | list | disable | enable | reset-password | roles`: people's accounts, through the
//! API as an admin (like `yimen token`).

use super::client::{Connection, encode, join, split_list, table, text};
use serde_json::{Value, json};
use std::process::ExitCode;
use yimen_workers::Method;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a person's account; prints its one-time password, shown only this once.
    Add {
        /// What the person signs in with (letters, digits, `.`, `_`, `-`, `@`).
        #[arg(long)]
        login: String,
        /// The person's name as shown (`王芳`).
        #[arg(long)]
        name: String,
        /// Comma-separated: `admin`, or roles the processes declare (`window`; a keyed role
        /// with its key, `department:civil_affairs`).
        #[arg(long)]
        roles: String,
        /// Comma-separated organisation units the person works in (a case's street, ...);
        /// none: all.
        #[arg(long, alias = "org-units")]
        units: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the accounts (never their passwords).
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Disable an account: it can no longer sign in, and its sessions end at once.
    Disable {
        login: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Enable a disabled account again; a lock after failed sign-ins is lifted.
    Enable {
        login: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Give an account a new one-time password (printed once); its sessions end and a lock
    /// after failed sign-ins is lifted.
    ResetPassword {
        login: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Set an account's roles and organisation units.
    Roles {
        login: String,
        /// Comma-separated, as for `user add`.
        #[arg(long)]
        roles: String,
        /// Comma-separated; none: all units.
        #[arg(long, alias = "org-units")]
        units: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(cmd))?;
    Ok(ExitCode::SUCCESS)
}

async fn run_async(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Add {
            login,
            name,
            roles,
            units,
            conn,
        } => {
            let body = json!({
                "login": login,
                "name": name,
                "roles": split_list(&roles),
                "org_units": units.as_deref().map(split_list).unwrap_or_default(),
            });
            let answer: Value = conn
                .client()?
                .call(Method::POST, "/users", Some(&body))
                .await?;
            println!("{}", text(&answer["password"]));
            let user = &answer["user"];
            eprintln!(
                "account `{}` ({}) created; above is its one-time password, shown only this once.\n\
                 Next: give it to {} in person. At the first sign-in they must choose their own \
                 password (at least {} characters) before anything else.",
                text(&user["login"]),
                text(&user["name"]),
                text(&user["name"]),
                yimen_engine::accounts::MIN_PASSWORD_CHARS,
            );
        }
        Command::List { conn } => {
            let answer: Value = conn
                .client()?
                .call::<(), _>(Method::GET, "/users", None)
                .await?;
            print!("{}", table(&user_rows(&answer)));
        }
        Command::Disable { login, conn } => {
            let path = format!("/users/{}/disable", encode(&login));
            let user: Value = conn
                .client()?
                .call(Method::POST, &path, Some(&json!({})))
                .await?;
            println!(
                "disabled `{}` ({}); their sessions have ended",
                text(&user["login"]),
                text(&user["name"])
            );
        }
        Command::Enable { login, conn } => {
            let path = format!("/users/{}/enable", encode(&login));
            let user: Value = conn
                .client()?
                .call(Method::POST, &path, Some(&json!({})))
                .await?;
            println!(
                "enabled `{}` ({}); they can sign in again",
                text(&user["login"]),
                text(&user["name"])
            );
        }
        Command::ResetPassword { login, conn } => {
            let path = format!("/users/{}/reset-password", encode(&login));
            let answer: Value = conn
                .client()?
                .call(Method::POST, &path, Some(&json!({})))
                .await?;
            println!("{}", text(&answer["password"]));
            eprintln!(
                "`{}` has a new one-time password (above, shown only this once); their sessions \
                 have ended. Next: give it to {} in person; they choose their own at the next \
                 sign-in.",
                text(&answer["user"]["login"]),
                text(&answer["user"]["name"]),
            );
        }
        Command::Roles {
            login,
            roles,
            units,
            conn,
        } => {
            let path = format!("/users/{}/roles", encode(&login));
            let body = json!({
                "roles": split_list(&roles),
                "org_units": units.as_deref().map(split_list).unwrap_or_default(),
            });
            let user: Value = conn.client()?.call(Method::PUT, &path, Some(&body)).await?;
            println!(
                "`{}` ({}): roles={} units={}",
                text(&user["login"]),
                text(&user["name"]),
                join(&user["roles"]),
                join(&user["org_units"])
            );
        }
    }
    Ok(())
}

/// One row per account of `GET /users`.
fn user_rows(answer: &Value) -> Vec<Vec<String>> {
    answer["users"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|user| {
            let state = if !user["disabled_at"].is_null() {
                "(disabled)"
            } else if user["external"] == json!(true) {
                "(identity provider)"
            } else if user["must_change_password"] == json!(true) {
                "(one-time password)"
            } else {
                ""
            };
            vec![
                text(&user["login"]),
                text(&user["name"]),
                format!("roles={}", join(&user["roles"])),
                format!("units={}", join(&user["org_units"])),
                state.to_string(),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_listed_with_their_state() {
        let answer = json!({"users": [
            {"login": "wangfang", "name": "王芳", "roles": ["window"], "org_units": ["滨河街道"],
             "must_change_password": true, "disabled_at": null},
            {"login": "li", "name": "Li Lei", "roles": ["admin"], "org_units": [],
             "must_change_password": false, "disabled_at": "2026-12-07T00:00:00Z"},
        ]});
        let rows = user_rows(&answer);
        assert_eq!(
            rows[0],
            vec![
                "wangfang",
                "王芳",
                "roles=window",
                "units=滨河街道",
                "(one-time password)"
            ]
        );
        assert_eq!(rows[1][3], "units=-");
        assert_eq!(rows[1][4], "(disabled)");
    }
}
