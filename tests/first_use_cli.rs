//! First use of a server from the command line: its log written to a file is plain text,
//! `yimen token list` lines up names in Chinese, `yimen cases` finds a case by name or ID
//! number with personal data masked, a webhook that fails is listed by `yimen outbox failed`,
//! and people's accounts are added, listed and changed with `yimen user`.
#![cfg(unix)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::{serve, yimen};
use unicode_width::UnicodeWidthStr;

#[test]
fn a_first_server_logs_plainly_aligns_chinese_and_lists_failing_webhooks() {
    let dir = std::env::temp_dir().join(format!("yimen-first-use-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log = dir.join("serve.log");
    let server = serve(&dir, &log);

    // Token names in Chinese line up with the others (a Chinese character is two columns).
    let mut ids = Vec::new();
    for (name, roles, units) in [
        ("窗口受理员", "window", "东城街道"),
        ("supervision-office", "supervision", ""),
    ] {
        let (_, said) = yimen(
            &server,
            &[
                "token",
                "create",
                "--name",
                name,
                "--roles",
                roles,
                "--org-units",
                units,
            ],
        );
        let id = said
            .split("(id ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("the id is named: {said}"))
            .to_string();
        ids.push(id);
    }
    let (list, _) = yimen(&server, &["token", "list"]);
    let columns: Vec<usize> = ids
        .iter()
        .map(|id| {
            let line = list
                .lines()
                .find(|l| l.contains(id.as_str()))
                .unwrap_or_else(|| panic!("{id} listed: {list}"));
            line[..line.find(id.as_str()).unwrap()].width()
        })
        .collect();
    assert_eq!(columns[0], columns[1], "ids start in one column:\n{list}");
    assert!(
        list.contains("roles=window") && list.contains("org_units=东城街道"),
        "the token's organisation units are listed:\n{list}"
    );

    // The registration's ledger webhook goes to an address that does not resolve: the
    // failed delivery is listed with its URL.
    yimen(
        &server,
        &[
            "start",
            "social_assistance",
            "--business-key",
            "FIRST-USE-1",
            "--var",
            "applicant_name=张三",
            "--var",
            "id_number=150302199001011231",
            "--var",
            "phone=13800138000",
            "--var",
            "address=新华街道1号",
            "--var",
            "street=xinhua",
            "--var",
            "community=c1",
            "--var",
            "household_size=3",
            "--var",
            "reason=因病致贫",
            "--var",
            r#"categories=["minimum_living"]"#,
        ],
    );
    // The case is found by the applicant's name and by the whole ID number, masked.
    for q in ["张三", "150302199001011231"] {
        let (found, _) = yimen(&server, &["cases", "--q", q]);
        assert!(
            found.contains("FIRST-USE-1") && found.contains("张*"),
            "{q}: {found}"
        );
        assert!(found.contains("page 1 of 1 (1 case found)"), "{found}");
        assert!(!found.contains("150302199001011231"), "{found}");
    }
    let (none, _) = yimen(&server, &["cases", "--q", "1503021990"]);
    assert_eq!(
        none, "no cases found\n",
        "part of an ID number finds nothing"
    );

    let started = Instant::now();
    let failed = loop {
        let (out, _) = yimen(&server, &["outbox", "failed"]);
        if out.contains("webhook:ledger_hook") {
            break out;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no failed delivery listed: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        failed.contains("https://ledger.example.invalid/yimen/social-assistance"),
        "{failed}"
    );
    assert!(failed.contains("pending"), "{failed}");

    // The log file holds the server's warnings as plain text: no colour codes.
    drop(server);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("WARN"), "a warning was logged: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in the log file: {text:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `yimen user add` prints the one-time password once (stdout) and the next step (stderr);
/// `user list` lines up Chinese names; roles, disabling and resets go through the API.
#[test]
fn people_are_added_and_listed_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("yimen-first-users-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let server = serve(&dir, &dir.join("serve.log"));

    let (password, said) = yimen(
        &server,
        &[
            "user",
            "add",
            "--login",
            "wangfang",
            "--name",
            "王芳",
            "--roles",
            "window",
            "--units",
            "滨河街道",
        ],
    );
    let password = password.trim();
    assert_eq!(password.len(), 19, "one line, the password: {password}");
    assert!(said.contains("shown only this once"), "{said}");
    assert!(said.contains("Next: give it to 王芳"), "{said}");
    assert!(
        !said.contains(password),
        "the password is printed once: {said}"
    );
    yimen(
        &server,
        &[
            "user", "add", "--login", "li.lei", "--name", "Li Lei", "--roles", "review",
        ],
    );

    let (list, _) = yimen(&server, &["user", "list"]);
    let columns: Vec<usize> = ["roles=window", "roles=review"]
        .iter()
        .map(|cell| {
            let line = list
                .lines()
                .find(|l| l.contains(cell))
                .unwrap_or_else(|| panic!("{cell} listed: {list}"));
            line[..line.find(cell).unwrap()].width()
        })
        .collect();
    assert_eq!(columns[0], columns[1], "roles start in one column:\n{list}");
    assert!(list.contains("units=滨河街道"), "{list}");
    assert!(list.contains("(one-time password)"), "{list}");
    assert!(!list.contains(password), "{list}");

    let (roles, _) = yimen(
        &server,
        &[
            "user",
            "roles",
            "wangfang",
            "--roles",
            "window,review",
            "--units",
            "东城街道",
        ],
    );
    assert!(
        roles.contains("roles=window,review units=东城街道"),
        "{roles}"
    );
    let (again, said) = yimen(&server, &["user", "reset-password", "wangfang"]);
    assert_ne!(again.trim(), password, "a new one-time password");
    assert!(said.contains("sessions have ended"), "{said}");
    let (disabled, _) = yimen(&server, &["user", "disable", "li.lei"]);
    assert!(
        disabled.contains("disabled `li.lei` (Li Lei)"),
        "{disabled}"
    );
    let (list, _) = yimen(&server, &["user", "list"]);
    assert!(list.contains("(disabled)"), "{list}");

    // A wrong role is refused with what to fix.
    let out = Command::new(env!("CARGO_BIN_EXE_yimen"))
        .args([
            "user", "add", "--login", "x", "--name", "X", "--roles", "a b",
        ])
        .env("YIMEN_SERVER", format!("http://{}", server.address))
        .env("YIMEN_TOKEN", &server.token)
        .output()
        .expect("yimen runs");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not a role"), "{said}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A street leader's office hands a window person's cases to a stand-in with `yimen reassign`
/// (the social process declares `street_leader ... reassigns window`), lists it with
/// `yimen reassignments` and ends it with `yimen reassignment-end`; the admin, who holds no
/// such duty, is refused with why.
#[test]
fn a_leader_reassigns_a_first_responders_cases_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("yimen-first-reassign-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let server = serve(&dir, &dir.join("serve.log"));
    for (login, name) in [("wangfang", "王芳"), ("lina", "李娜")] {
        yimen(
            &server,
            &[
                "user",
                "add",
                "--login",
                login,
                "--name",
                name,
                "--roles",
                "window",
                "--units",
                "滨河街道",
            ],
        );
    }
    let (leader, _) = yimen(
        &server,
        &[
            "token",
            "create",
            "--name",
            "滨河街道分管领导",
            "--roles",
            "street_leader",
            "--org-units",
            "滨河街道",
        ],
    );
    let as_leader = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_yimen"))
            .args(args)
            .env("YIMEN_SERVER", format!("http://{}", server.address))
            .env("YIMEN_TOKEN", leader.trim())
            .output()
            .expect("yimen runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "yimen {args:?}: {stdout}{stderr}");
        (stdout, stderr)
    };

    let reassign = [
        "reassign",
        "--from",
        "wangfang",
        "--to",
        "lina",
        "--reason",
        "病假",
        "--until",
        "2099-12-31",
    ];
    let (id, said) = as_leader(&reassign);
    let id = id.trim().to_string();
    assert!(!id.is_empty(), "the id is printed");
    assert!(
        said.contains("王芳 (wangfang) in 滨河街道 go to 李娜 (lina) until 2099-12-31"),
        "{said}"
    );
    assert!(
        said.contains(&format!("yimen reassignment-end {id}")),
        "{said}"
    );
    let (list, _) = as_leader(&["reassignments"]);
    assert!(list.contains("王芳 → 李娜"), "{list}");
    assert!(list.contains("active"), "{list}");
    let (ended, _) = as_leader(&["reassignment-end", &id]);
    assert!(
        ended.contains("王芳 (wangfang) are again theirs alone"),
        "{ended}"
    );
    let (list, _) = as_leader(&["reassignments"]);
    assert!(list.contains("ended early"), "{list}");

    // The admin holds no role that reassigns.
    let out = Command::new(env!("CARGO_BIN_EXE_yimen"))
        .args(reassign)
        .env("YIMEN_SERVER", format!("http://{}", server.address))
        .env("YIMEN_TOKEN", &server.token)
        .output()
        .expect("yimen runs");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("may not reassign cases"), "{said}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
