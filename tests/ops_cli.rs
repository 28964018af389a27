//! Running yimen as an operator does: JSON logs with request ids, the metrics listener, the
//! config file's precedence, shell completions and the man page, and the files of `deploy/`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("yimen-ops-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn yimen() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_yimen"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("YIMEN_") {
            command.env_remove(name);
        }
    }
    command
}

/// A started `yimen serve`, killed when dropped, with its stderr lines as they come.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(mut command: Command) -> Running {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("yimen serve starts");
        let (send, lines) = mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (within 60 s) for which `find` gives something.
    fn wait_for<T>(&mut self, find: impl Fn(&str) -> Option<T>) -> T {
        loop {
            let Ok(line) = self.lines.recv_timeout(Duration::from_secs(60)) else {
                panic!("not found in the server's output: {:#?}", self.seen);
            };
            self.seen.push(line.clone());
            if let Some(found) = find(&line) {
                return found;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `address`: the status line, headers and body.
fn get(address: &str, path: &str, headers: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connects");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Connection: close\r\n\r\n"
    )
    .expect("sent");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// The address after `prefix` in `line` (plain text or a JSON log line).
fn after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || ".:[]".contains(c)))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[test]
fn json_logs_carry_the_request_id_and_metrics_are_served_apart() {
    let dir = folder("json");
    let mut command = yimen();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--metrics-listen", "127.0.0.1:0", "--database"])
        .arg(dir.join("ops.db"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "info,yimen::http=debug");
    let mut server = Running::start(command);
    let address = server.wait_for(|l| after(l, "yimen serving http://").map(str::to_string));
    let metrics = server.wait_for(|l| after(l, "metrics at http://").map(str::to_string));
    assert!(server.seen.len() >= 3, "{:#?}", server.seen);
    for line in &server.seen {
        let json: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(json.is_ok(), "every line of a JSON log is JSON: {line}");
    }
    let metrics = metrics.as_str();

    let answer = get(&address, "/api/v1/ready", "X-Request-Id: ops-test-1\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-request-id: ops-test-1"),
        "{answer}"
    );
    let line = server.wait_for(|l| {
        let json: serde_json::Value = serde_json::from_str(l).ok()?;
        (json["span"]["request_id"] == "ops-test-1").then_some(json)
    });
    assert_eq!(line["span"]["route"], "/api/v1/ready");
    assert_eq!(line["fields"]["status"], 200);

    let scrape = get(metrics, "/metrics", "");
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    let body = &scrape[scrape.find("\r\n\r\n").expect("a body") + 4..];
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus reads it");
    assert!(
        parsed
            .samples
            .iter()
            .any(|s| s.metric == "yimen_http_requests_total"
                && s.labels.get("route") == Some("/api/v1/ready")),
        "{body}"
    );
    // Not on the API's address: metrics are for the monitoring network.
    assert!(get(&address, "/metrics", "").starts_with("HTTP/1.1 404"));

    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The database a started server names in its serving line.
fn database_of(mut command: Command) -> String {
    command.args(["--listen", "127.0.0.1:0"]);
    let mut server = Running::start(command);
    server.wait_for(|l| {
        let rest = l.strip_prefix("yimen serving http://")?;
        let database = &rest[rest.find("(database ")? + "(database ".len()..];
        database.split(',').next().map(str::to_string)
    })
}

#[test]
fn the_command_line_wins_over_the_environment_over_the_file() {
    let dir = folder("config");
    std::fs::write(
        dir.join("yimen.toml"),
        "database = \"from-file.db\"\ncalendars-check = 0\n",
    )
    .expect("config written");
    // ./yimen.toml is read without --config.
    let mut file = yimen();
    file.arg("serve").current_dir(&dir);
    assert_eq!(database_of(file), "sqlite:from-file.db");
    let mut env = yimen();
    env.arg("serve")
        .current_dir(&dir)
        .env("YIMEN_DATABASE", "from-env.db");
    assert_eq!(database_of(env), "sqlite:from-env.db");
    let mut cli = yimen();
    cli.args(["serve", "--database", "from-cli.db"])
        .current_dir(&dir)
        .env("YIMEN_DATABASE", "from-env.db");
    assert_eq!(database_of(cli), "sqlite:from-cli.db");

    std::fs::write(
        dir.join("bad.toml"),
        "listen = \"127.0.0.1:0\"\nlisten-on = 1\n",
    )
    .expect("written");
    let out = yimen()
        .args(["serve", "--config"])
        .arg(dir.join("bad.toml"))
        .current_dir(&dir)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown key `listen-on`"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn output(args: &[&str]) -> String {
    let out = yimen().args(args).output().expect("runs");
    assert!(out.status.success(), "yimen {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn completions_and_man_pages_are_printed() {
    assert!(output(&["completions", "bash"]).contains("_yimen()"));
    let zsh = output(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef yimen"), "{zsh}");
    assert!(
        zsh.contains("--metrics-listen"),
        "serve's flags are completed"
    );
    assert!(output(&["completions", "fish"]).contains("complete -c yimen"));
    let man = output(&["man"]);
    assert!(
        man.contains(".TH yimen 1"),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains("serve"), "the page lists the commands");
    let serve = output(&["man", "serve"]);
    let title = serve
        .lines()
        .find(|l| l.starts_with(".TH"))
        .unwrap_or_default();
    assert!(
        title.starts_with(".TH yimen") && title.contains("serve"),
        "{title}"
    );
    assert!(serve.contains(r"\-\-metrics\-listen"), "with serve's flags");
    let out = yimen().args(["man", "nothing"]).output().expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no command `nothing`"));
}

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(which) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(which.status.success());
    // Its ExecStart pointed at the binary under test, which is where `verify` looks.
    let unit = std::fs::read_to_string(deploy("yimen.service")).expect("unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/yimen serve --config /etc/yimen/yimen.toml"));
    let dir = folder("unit");
    let copy = dir.join("yimen.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/yimen", env!("CARGO_BIN_EXE_yimen")),
    )
    .expect("copied");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    // Outside a booted systemd (containers, CI) it may not reach the manager: then only the
    // unit's own lines are judged.
    let about_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("yimen.service"))
        .collect();
    assert!(about_unit.is_empty(), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_container_file_builds_in_two_stages_and_runs_as_a_user() {
    let text = std::fs::read_to_string(deploy("Containerfile")).expect("Containerfile");
    // Instructions, continuation lines joined.
    let joined = text.replace("\\\n", " ");
    let instructions: Vec<(&str, &str)> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .collect();
    let known = [
        "FROM",
        "RUN",
        "COPY",
        "ENV",
        "USER",
        "WORKDIR",
        "VOLUME",
        "EXPOSE",
        "ENTRYPOINT",
        "CMD",
    ];
    for (word, _) in &instructions {
        assert!(known.contains(word), "unknown instruction {word}");
    }
    let froms: Vec<&str> = instructions
        .iter()
        .filter(|(w, _)| *w == "FROM")
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    assert!(froms[0].ends_with(" AS build"));
    assert!(froms[1].contains("debian") && froms[1].contains("slim"));
    assert!(joined.contains("cargo build --release --locked --bin yimen"));
    assert!(joined.contains("COPY --from=build /src/target/release/yimen"));
    let user = instructions
        .iter()
        .rev()
        .find(|(w, _)| *w == "USER")
        .map(|(_, a)| *a);
    assert!(user.is_some_and(|u| u != "root" && u != "0"), "not root");
    assert!(instructions.contains(&("VOLUME", "/var/lib/yimen")));
    // Every variable it sets is one `yimen serve` reads.
    let help = output(&["serve", "--help"]);
    for name in joined
        .split_whitespace()
        .filter_map(|w| w.split_once('=').map(|(n, _)| n))
        .filter(|n| n.starts_with("YIMEN_"))
    {
        assert!(help.contains(name), "{name} is no variable of yimen serve");
    }
}
