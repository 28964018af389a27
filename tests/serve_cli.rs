//! `yimen serve` stops gracefully on SIGTERM (what systemd, docker and Kubernetes send): a
//! request in flight (a long-polling claim) is answered, then the process exits 0.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn sigterm_answers_requests_in_flight_and_exits_0() {
    let dir = std::env::temp_dir().join(format!("yimen-serve-sigterm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_yimen"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(dir.join("serve.db"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("yimen serve starts");

    // Lines of both streams, as they come.
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
    let mut seen = Vec::new();
    let next_line = |seen: &mut Vec<String>| -> Option<String> {
        let line = received.recv_timeout(Duration::from_secs(60)).ok()?;
        seen.push(line.clone());
        Some(line)
    };

    let (mut token, mut address) = (None, None);
    // The token comes on stdout, the address on stderr: in either order.
    while token.is_none() || address.is_none() {
        let Some(line) = next_line(&mut seen) else {
            let _ = child.kill();
            panic!("the server did not start: {seen:#?}");
        };
        if let Some(t) = line.trim().strip_prefix("export YIMEN_TOKEN=") {
            token = Some(t.to_string());
        }
        if let Some(rest) = line.strip_prefix("yimen serving http://") {
            address = rest.split_whitespace().next().map(str::to_string);
        }
    }
    let (token, address) = (
        token.expect("admin token printed"),
        address.expect("address"),
    );

    // A claim that would wait 30 s for work.
    let body = r#"{"queues":["window"],"worker":"t","max":1,"lease_seconds":60,"wait_seconds":30}"#;
    let mut stream = TcpStream::connect(&address).expect("connects");
    write!(
        stream,
        "POST /api/v1/tasks/claim HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("request sent");
    std::thread::sleep(Duration::from_millis(500));

    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());

    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout set");
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""tasks":[]"#), "{answer}");
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "the waiting claim was answered at once, not after its 30 s: {:?}",
        sent.elapsed()
    );

    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the server did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    while next_line(&mut seen).is_some() {}
    assert_eq!(status.code(), Some(0), "exit status {status:?}: {seen:#?}");
    assert!(
        seen.iter().any(|l| l.contains("shutting down (SIGTERM)")),
        "{seen:#?}"
    );
    assert!(seen.iter().any(|l| l == "stopped"), "{seen:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
