//! `yimen reassign`, `yimen reassignments`, `yimen reassignment-end`: handing a first
//! responder's cases to a stand-in while they are away, through the API, by a token whose role
//! a process declares `reassigns` (the street leader's).

use super::client::{Connection, encode, table, text};
use serde_json::{Value, json};
use std::process::ExitCode;
use yimen_workers::Method;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Hand the tasks of a person away to another of the same role and unit, until a day
    /// (inclusive) or for good; every running case concerned records it.
    Reassign {
        /// The login of the person away.
        #[arg(long)]
        from: String,
        /// The login of the person who stands in.
        #[arg(long)]
        to: String,
        /// Why (leave, illness, a move): recorded in each case's history.
        #[arg(long)]
        reason: String,
        /// The last day (`2026-12-20`, in the calendar's zone); none: for good.
        #[arg(long)]
        until: Option<String>,
        /// The organisation unit, when the person away works for several.
        #[arg(long)]
        unit: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the reassignments of your units, active and past, newest first.
    Reassignments {
        #[command(flatten)]
        conn: Connection,
    },
    /// End a reassignment now: the tasks are again only their assignee's.
    ReassignmentEnd {
        /// The reassignment's id (`yimen reassignments` shows it).
        id: String,
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
        Command::Reassign {
            from,
            to,
            reason,
            until,
            unit,
            conn,
        } => {
            let mut body = json!({"from": from, "to": to, "reason": reason});
            if let Some(until) = until {
                body["until"] = json!(until);
            }
            if let Some(unit) = unit {
                body["org_unit"] = json!(unit);
            }
            let made: Value = conn
                .client()?
                .call(Method::POST, "/reassignments", Some(&body))
                .await?;
            println!("{}", text(&made["id"]));
            eprintln!(
                "the tasks of {} ({}) in {} go to {} ({}) {}. To end it early: \
                 `yimen reassignment-end {}`",
                text(&made["from"]["name"]),
                text(&made["from"]["login"]),
                text(&made["org_unit"]),
                text(&made["to"]["name"]),
                text(&made["to"]["login"]),
                until_words(&made),
                text(&made["id"]),
            );
        }
        Command::Reassignments { conn } => {
            let answer: Value = conn
                .client()?
                .call::<(), _>(Method::GET, "/reassignments", None)
                .await?;
            let rows = rows(&answer);
            if rows.is_empty() {
                println!("no reassignments");
            } else {
                print!("{}", table(&rows));
            }
        }
        Command::ReassignmentEnd { id, conn } => {
            let path = format!("/reassignments/{}/end", encode(&id));
            let ended: Value = conn
                .client()?
                .call(Method::POST, &path, Some(&json!({})))
                .await?;
            println!(
                "ended: the tasks of {} ({}) are again theirs alone",
                text(&ended["from"]["name"]),
                text(&ended["from"]["login"]),
            );
        }
    }
    Ok(())
}

/// "until 2026-12-20 (inclusive)" or "for good".
fn until_words(r: &Value) -> String {
    match r["until"].as_str() {
        Some(day) => format!("until {day} (inclusive)"),
        None => "for good".to_string(),
    }
}

/// One row per reassignment of `GET /reassignments`.
fn rows(answer: &Value) -> Vec<Vec<String>> {
    answer["reassignments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let state = if r["active"] == json!(true) {
                "active"
            } else if !r["ended_at"].is_null() {
                "ended early"
            } else {
                "over"
            };
            vec![
                text(&r["id"]),
                text(&r["org_unit"]),
                format!("{} → {}", text(&r["from"]["name"]), text(&r["to"]["name"])),
                until_words(r),
                state.to_string(),
                text(&r["reason"]),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassignments_are_listed_with_their_state() {
        let answer = json!({"reassignments": [
            {"id": "r2", "org_unit": "滨河街道", "from": {"name": "王芳"}, "to": {"name": "李娜"},
             "until": "2026-12-20", "active": true, "ended_at": null, "reason": "病假"},
            {"id": "r1", "org_unit": "滨河街道", "from": {"name": "王芳"}, "to": {"name": "赵六"},
             "until": null, "active": false, "ended_at": "2026-12-01T00:00:00Z", "reason": "调岗"},
        ]});
        let rows = rows(&answer);
        assert_eq!(
            rows[0],
            [
                "r2",
                "滨河街道",
                "王芳 → 李娜",
                "until 2026-12-20 (inclusive)",
                "active",
                "病假"
            ]
        );
        assert_eq!(rows[1][3], "for good");
        assert_eq!(rows[1][4], "ended early");
    }
}
