//! What the binary's tests share: a `yimen serve` of their own on a free port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `yimen serve`, stopped when dropped.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The admin token its first start printed.
    pub token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `yimen serve` on a free port with the repository's processes and a database in `dir`, its
/// stderr going to `log`.
pub fn serve(dir: &Path, log: &Path) -> Server {
    let database = dir.join("first-use.db");
    serve_with(&database.to_string_lossy(), log, &[])
}

/// `yimen serve` on a free port on `database` (a SQLite file or a PostgreSQL URL) with the
/// repository's processes and `extra` arguments (`--clock …`), its stderr going to `log`.
pub fn serve_with(database: &str, log: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_yimen"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "info")
        .env_remove("YIMEN_WEBHOOK_SECRET")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("yimen serve starts");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let token = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.trim()
                .strip_prefix("export YIMEN_TOKEN=")
                .map(str::to_string)
        })
        .expect("the first start prints the admin token");
    let started = Instant::now();
    let address = loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // Only whole lines: the server may be half-way through writing the one we want.
        let written = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        if let Some(address) = written
            .lines()
            .filter_map(|l| l.strip_prefix("yimen serving http://"))
            .filter_map(|rest| rest.split_whitespace().next())
            .find(|a| a.parse::<std::net::SocketAddr>().is_ok())
        {
            break address.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    Server {
        child,
        address,
        token,
    }
}

/// `yimen ARGS` against `server` as its admin; stdout and stderr, after checking it succeeded.
pub fn yimen(server: &Server, args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_yimen"))
        .args(args)
        .env("YIMEN_SERVER", format!("http://{}", server.address))
        .env("YIMEN_TOKEN", &server.token)
        .output()
        .expect("yimen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "yimen {args:?}: {stdout}{stderr}");
    (stdout, stderr)
}
