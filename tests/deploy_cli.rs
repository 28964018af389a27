//! `yimen deploy` against a running server says which version new cases run: a file identical
//! to an older version deploys nothing, and the line names the newer version that keeps
//! running, not the older one alone.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn yimen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_yimen"))
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("yimen-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const TICKET: &str = r#"process ticket "工单" version 1

role clerk "办事员"

start begin "开始" -> work

task work "LABEL" {
  queue clerk
  outcome ok "办结" -> done
}

end done "完成"
"#;

/// A server on `dir`'s database until dropped (stopped by its own id).
struct Server {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Server {
    let mut child = yimen()
        .args(["serve", "--listen", "127.0.0.1:0", "--database", "serve.db"])
        .args(["--processes", "none"])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("yimen serve starts");
    let (lines, received) = mpsc::channel::<String>();
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    drop(lines);
    let (mut token, mut url, mut seen) = (None, None, Vec::new());
    // The token comes on stdout, the address on stderr: in either order.
    while token.is_none() || url.is_none() {
        let Ok(line) = received.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("the server did not start: {seen:#?}");
        };
        if let Some(t) = line.trim().strip_prefix("export YIMEN_TOKEN=") {
            token = Some(t.to_string());
        }
        if let Some(rest) = line.strip_prefix("yimen serving ") {
            url = rest.split_whitespace().next().map(str::to_string);
        }
        seen.push(line);
    }
    Server {
        child,
        url: url.expect("address"),
        token: token.expect("admin token printed"),
    }
}

/// `yimen deploy FILE` against `server`: its one line on stdout.
fn deploy(server: &Server, file: &Path) -> String {
    let out = yimen()
        .arg("deploy")
        .arg(file)
        .args(["--server", &server.url])
        .env("YIMEN_TOKEN", &server.token)
        .output()
        .expect("yimen deploy runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout.trim().to_string()
}

#[test]
fn deploying_an_older_file_again_names_the_version_new_cases_run() {
    let dir = temp_dir("deploy-names-latest");
    for (folder, label) in [("first", "办理"), ("second", "办理（新）")] {
        std::fs::create_dir_all(dir.join(folder)).expect("folder");
        std::fs::write(
            dir.join(folder).join("ticket.flow"),
            TICKET.replace("LABEL", label),
        )
        .expect("written");
    }
    let server = serve(&dir);
    let first = deploy(&server, &dir.join("first/ticket.flow"));
    assert!(
        first.starts_with("deployed ticket version 1 (")
            && first.ends_with("new cases run version 1"),
        "{first}"
    );
    let second = deploy(&server, &dir.join("second/ticket.flow"));
    assert!(
        second.starts_with("deployed ticket version 2 (")
            && second.ends_with("new cases run version 2"),
        "{second}"
    );
    let same = deploy(&server, &dir.join("second/ticket.flow"));
    assert!(
        same.starts_with("unchanged: ticket is version 2 as before (")
            && same.ends_with("new cases run version 2, the latest"),
        "{same}"
    );
    // The first file again: it is version 1, but version 2 is what runs, and the line says so.
    let older = deploy(&server, &dir.join("first/ticket.flow"));
    assert!(
        older.starts_with("unchanged: ticket is version 1 as before ("),
        "{older}"
    );
    assert!(
        older.contains("new cases run version 2 (the latest), not this file's version 1"),
        "{older}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
