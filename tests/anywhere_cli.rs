//! The `yimen` binary outside the repository: the demo from any
//! folder, the calendars built in (never Monday to Friday in their place), a process naming a
//! calendar that is not loaded refused, and the version that runs after a restart.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn yimen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_yimen"))
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("yimen-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The demo's "MM-DD HH:MM ..." lines: what happened when.
fn steps(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.len() > 12 && l.as_bytes()[2] == b'-' && l.as_bytes()[5] == b' ')
        .map(str::to_string)
        .collect()
}

#[test]
fn demo_runs_from_any_folder_on_the_real_calendar() {
    let empty = temp_dir("demo-anywhere");
    let anywhere = yimen()
        .arg("demo")
        .current_dir(&empty)
        .output()
        .expect("runs");
    let (out, err) = (
        String::from_utf8_lossy(&anywhere.stdout),
        String::from_utf8_lossy(&anywhere.stderr),
    );
    assert!(anywhere.status.success(), "{out}\n{err}");
    assert!(out.contains("status: completed"), "{out}");
    // The same case as in the repository, with its calendars and process files: the built-in
    // ones are those, so every step falls on the same day (the publicity period ends after
    // the National Day holiday, not during it as on a Monday-Friday calendar).
    let repo = yimen()
        .arg("demo")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    assert!(repo.status.success());
    let here = steps(&String::from_utf8_lossy(&repo.stdout));
    assert!(!here.is_empty(), "the demo prints its steps");
    assert_eq!(steps(&out), here, "{out}");
    for line in &here {
        for day in 1..=7 {
            assert!(
                !line.starts_with(&format!("10-0{day}")),
                "nothing falls due in the National Day holiday: {line}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&empty);
}

/// Runs `yimen serve` in `dir` until it serves (then stops it with SIGTERM) or exits; returns
/// whether it served and every line it wrote.
fn serve_once(dir: &Path, args: &[&str]) -> (bool, Vec<String>) {
    let mut child = yimen()
        .args(["serve", "--listen", "127.0.0.1:0", "--database", "serve.db"])
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("yimen serve starts");
    let mut lines = Vec::new();
    let mut served = false;
    for line in BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .map_while(Result::ok)
    {
        let serving = line.starts_with("yimen serving");
        lines.push(line);
        if serving {
            served = true;
            let kill = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(kill.success());
        }
    }
    let status = child.wait().expect("waits");
    assert_eq!(served, status.success(), "{status:?}: {lines:#?}");
    (served, lines)
}

const TICKET: &str = r#"process ticket "工单" version 1

calendar CAL

role clerk "办事员"

start begin "开始" -> work

task work "办理" {
  queue clerk
  deadline 3 workdays
  outcome ok "办结" -> done
}

end done "完成"
"#;

#[test]
fn a_process_naming_a_calendar_not_loaded_is_refused_naming_the_folder_searched() {
    let dir = temp_dir("serve-unknown-calendar");
    std::fs::create_dir_all(dir.join("processes")).expect("folder");
    std::fs::write(
        dir.join("processes/ticket.flow"),
        TICKET.replace("CAL", "cn_hubei"),
    )
    .expect("written");
    let (served, lines) = serve_once(&dir, &[]);
    assert!(!served, "{lines:#?}");
    let all = lines.join("\n");
    assert!(all.contains("unknown calendar `cn_hubei`"), "{all}");
    let searched = std::path::absolute(dir.join("calendars")).expect("absolute");
    assert!(
        all.contains(&searched.display().to_string()),
        "the error names the folder searched, {}: {all}",
        searched.display()
    );

    // The shipped calendars are built in: without a calendars folder a process naming
    // cn_mainland deploys, on that calendar (the start says where its calendars come from).
    std::fs::write(
        dir.join("processes/ticket.flow"),
        TICKET.replace("CAL", "cn_mainland"),
    )
    .expect("written");
    let (served, lines) = serve_once(&dir, &[]);
    assert!(served, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("calendars built into yimen:") && l.contains("cn_mainland")),
        "{lines:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn after_a_restart_the_line_at_start_names_the_version_that_runs() {
    let dir = temp_dir("serve-restart-version");
    for (folder, label) in [("first", "办理"), ("second", "办理（新）")] {
        std::fs::create_dir_all(dir.join(folder)).expect("folder");
        std::fs::write(
            dir.join(folder).join("ticket.flow"),
            TICKET
                .replace("CAL", "cn_mainland")
                .replace("\"办理\"", &format!("\"{label}\"")),
        )
        .expect("written");
    }
    let line = |lines: &[String]| {
        lines
            .iter()
            .find(|l| l.starts_with("ticket: "))
            .cloned()
            .unwrap_or_else(|| panic!("a line about ticket: {lines:#?}"))
    };
    let (_, first) = serve_once(&dir, &["--processes", "first"]);
    assert!(
        line(&first).starts_with("ticket: version 1 runs"),
        "{first:#?}"
    );
    // Version 2 is deployed (as `yimen deploy` would), then the server starts again with the
    // first folder, whose file is version 1: version 2 runs, and the line says so.
    let (_, second) = serve_once(&dir, &["--processes", "second"]);
    assert!(
        line(&second).starts_with("ticket: version 2 runs"),
        "{second:#?}"
    );
    let (_, again) = serve_once(&dir, &["--processes", "first"]);
    let again = line(&again);
    assert!(again.starts_with("ticket: version 2 runs"), "{again}");
    assert!(again.contains("older version 1"), "{again}");
    let _ = std::fs::remove_dir_all(&dir);
}
