//! `yimen serve --tls-cert FILE --tls-key FILE` serves HTTPS: with a self-signed certificate
//! made here, `/api/v1/health` answers over HTTPS to a client that trusts only that
//! certificate, and a person's session cookie is `Secure`. Files that are missing, not PEM, or a key that is not the certificate's stop
//! the start with a message naming the file, and one flag without the other is refused.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A folder of its own for each test.
fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("yimen-tls-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A self-signed certificate for 127.0.0.1 and localhost, written to `name.crt` and
/// `name.key` in `dir`: their paths and the certificate's PEM.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("a certificate is made");
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let pem = made.cert.pem();
    std::fs::write(&cert, &pem).expect("certificate written");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("key written");
    (cert, key, pem)
}

fn serve(dir: &Path, tls: &[&Path]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_yimen"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(dir.join("tls.db"))
        .arg("--processes")
        .arg(dir.join("no-processes"))
        .env("RUST_LOG", "warn")
        .env_remove("YIMEN_TLS_CERT")
        .env_remove("YIMEN_TLS_KEY");
    for (flag, file) in ["--tls-cert", "--tls-key"].iter().zip(tls) {
        command.arg(flag).arg(file);
    }
    command
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn health_answers_over_https_with_the_given_certificate() {
    let dir = folder("health");
    let (cert, key, pem) = certificate(&dir, "server");
    let mut server = Server(
        serve(&dir, &[&cert, &key])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("yimen serve starts"),
    );
    // Both streams read to their end, as they come: a server whose stderr is closed fails
    // when it writes there.
    let (lines, received) = std::sync::mpsc::channel::<String>();
    let out = server.0.stdout.take().expect("stdout");
    let err = server.0.stderr.take().expect("stderr");
    for stream in [
        Box::new(out) as Box<dyn std::io::Read + Send>,
        Box::new(err),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    let mut seen = Vec::new();
    let (mut address, mut admin) = (None, None);
    while address.is_none() || admin.is_none() {
        let Ok(line) = received.recv_timeout(Duration::from_secs(60)) else {
            panic!("the server says it serves HTTPS: {seen:#?}");
        };
        if let Some(rest) = line.strip_prefix("yimen serving https://") {
            address = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(token) = line.trim().strip_prefix("export YIMEN_TOKEN=") {
            admin = Some(token.to_string());
        }
        seen.push(line);
    }
    let (address, admin) = (address.expect("address"), admin.expect("admin token"));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let trusted = reqwest::Certificate::from_pem(pem.as_bytes()).expect("certificate reads");
        let client = reqwest::Client::builder()
            .tls_certs_only([trusted])
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        let started = Instant::now();
        let answer = loop {
            match client
                .get(format!("https://{address}/api/v1/health"))
                .send()
                .await
            {
                Ok(answer) => break answer,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    eprintln!("not yet: {e:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no answer over HTTPS: {e:?}"),
            }
        };
        assert_eq!(answer.status(), 200);
        let health: serde_json::Value = answer.json().await.expect("JSON");
        assert_eq!(health["status"], "ok", "{health}");

        // Served over HTTPS, a person's session cookie goes over HTTPS only.
        let added = client
            .post(format!("https://{address}/api/v1/users"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"login": "wangfang", "name": "王芳", "roles": ["window"]}))
            .send()
            .await
            .expect("answered");
        assert_eq!(added.status(), 201);
        let added: serde_json::Value = added.json().await.expect("JSON");
        let signed_in = client
            .post(format!("https://{address}/api/v1/session"))
            .json(&serde_json::json!({"login": "wangfang", "password": added["password"]}))
            .send()
            .await
            .expect("answered");
        assert_eq!(signed_in.status(), 200);
        let cookie = signed_in
            .headers()
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            cookie.starts_with("yimen_session=") && cookie.contains("; Secure"),
            "{cookie}"
        );

        // A client that does not trust the certificate is refused by its own check: the
        // connection is TLS, not plain HTTP.
        let stranger = reqwest::Client::builder()
            .tls_certs_only(std::iter::empty::<reqwest::Certificate>())
            .build()
            .expect("client");
        let refused = stranger
            .get(format!("https://{address}/api/v1/health"))
            .send()
            .await;
        assert!(refused.is_err(), "{refused:?}");
        let plain = reqwest::get(format!("http://{address}/api/v1/health")).await;
        assert!(
            plain.map_or(true, |a| !a.status().is_success()),
            "plain HTTP is not served"
        );
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `yimen serve` with `tls` files; it must stop at once, without a panic.
fn refused(dir: &Path, tls: &[&Path]) -> String {
    let Output { status, stderr, .. } = serve(dir, tls).output().expect("yimen runs");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert!(!status.success(), "refused: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_files_stop_the_start_naming_the_file() {
    let dir = folder("bad");
    let (cert, key, _) = certificate(&dir, "server");
    let (_, other_key, _) = certificate(&dir, "other");
    let not_pem = dir.join("not-pem.key");
    std::fs::write(&not_pem, "this is not a key\n").expect("written");
    let missing = dir.join("missing.crt");

    let said = refused(&dir, &[&cert, &not_pem]);
    assert!(
        said.contains(&format!("{} holds no PEM private key", not_pem.display())),
        "{said}"
    );
    let said = refused(&dir, &[&cert, &other_key]);
    assert!(
        said.contains(&format!(
            "the private key {} does not belong to the certificate {}",
            other_key.display(),
            cert.display()
        )),
        "{said}"
    );
    let said = refused(&dir, &[&missing, &key]);
    assert!(
        said.contains(&format!(
            "cannot read the TLS certificate {}",
            missing.display()
        )),
        "{said}"
    );
    let said = refused(&dir, &[&key, &key]);
    assert!(
        said.contains(&format!("{} holds no PEM certificate", key.display())),
        "{said}"
    );
    // One of the two flags alone.
    let said = refused(&dir, &[&cert]);
    assert!(said.contains("--tls-key"), "{said}");
    assert!(
        !dir.join("tls.db").exists(),
        "nothing was opened before the files were checked"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
