//! `yimen check` and `yimen fmt` as a user runs them: exit codes, what is printed, files
//! rewritten.

use std::path::{Path, PathBuf};
use std::process::Command;

fn yimen(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_yimen"))
        .args(args)
        .output()
        .expect("the yimen binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn processes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("processes")
}

/// A scratch copy of `processes/` for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("yimen-lang-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&processes(), &dir);
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create scratch dir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn the_real_processes_pass_check_with_warnings_denied_and_are_formatted() {
    let sa = s(&processes().join("social_assistance.flow"));
    let ta = s(&processes().join("temporary_assistance.flow"));
    let (code, stdout, stderr) = yimen(&["check", "--deny-warnings", &sa, &ta]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok: ")).count(), 2);
    let (code, stdout, stderr) = yimen(&["fmt", "--check", &sa, &ta]);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
}

#[test]
fn a_broken_yaml_fails_check_with_its_line() {
    let dir = scratch("yaml");
    let yaml = dir.join("social_assistance.yaml");
    let text = std::fs::read_to_string(&yaml).expect("yaml");
    let broken = text.replacen(
        "coordinator: civil_affairs",
        "coordinator: [civil_affairs",
        1,
    );
    assert_ne!(broken, text);
    let line = broken
        .lines()
        .position(|l| l.starts_with("coordinator: ["))
        .expect("line")
        + 1;
    std::fs::write(&yaml, broken).expect("write");
    let (code, _, stderr) = yimen(&["check", &s(&dir.join("social_assistance.flow"))]);
    assert_eq!(code, 1);
    assert!(stderr.contains("error[YM0003]"), "{stderr}");
    assert!(
        stderr.contains(&format!("social_assistance.yaml:{line}:14")),
        "line {line}: {stderr}"
    );
    assert!(stderr.contains("this bracket is never closed"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_syntax_error_is_shown_with_file_line_and_caret() {
    let dir = scratch("syntax");
    let flow = dir.join("temporary_assistance.flow");
    let text = std::fs::read_to_string(&flow).expect("flow");
    std::fs::write(&flow, text.replacen("queue window", "queu window", 1)).expect("write");
    let (code, _, stderr) = yimen(&["check", &s(&flow)]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("error[YM0001]: expected a task entry"),
        "{stderr}"
    );
    assert!(stderr.contains("temporary_assistance.flow:"), "{stderr}");
    assert!(stderr.contains("^^^^"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn warnings_fail_only_when_denied() {
    let dir = scratch("warn");
    let tpl = dir.join("templates/publicity_list.md.j2");
    let text = std::fs::read_to_string(&tpl).expect("template");
    std::fs::write(&tpl, format!("{text}\n{{{{ househld }}}}\n")).expect("write");
    let flow = s(&dir.join("social_assistance.flow"));
    let (code, _, stderr) = yimen(&["check", &flow]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning[YM0007]"), "{stderr}");
    let (code, _, stderr) = yimen(&["check", "--deny-warnings", &flow]);
    assert_eq!(code, 1, "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn fmt_check_names_unformatted_files_and_fmt_fixes_them() {
    let dir = scratch("fmt");
    let flow = dir.join("temporary_assistance.flow");
    let text = std::fs::read_to_string(&flow).expect("flow");
    std::fs::write(
        &flow,
        text.replace("\n  ", "\n      ").replace("\n\n", "\n"),
    )
    .expect("write");
    let (code, stdout, _) = yimen(&["fmt", "--check", &s(&flow)]);
    assert_eq!(code, 1);
    assert!(stdout.contains("not formatted:"), "{stdout}");
    let (code, _, stderr) = yimen(&["fmt", &s(&flow)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&flow).expect("flow"), text);
    let (code, _, _) = yimen(&["fmt", "--check", &s(&flow)]);
    assert_eq!(code, 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unreadable_file_is_an_error_not_a_crash() {
    let (code, _, stderr) = yimen(&["check", "/nonexistent/x.flow"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot read `/nonexistent/x.flow`"),
        "{stderr}"
    );
    let (code, _, stderr) = yimen(&["fmt", "--check", "/nonexistent/x.flow"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn calendars_are_the_files_of_the_nearest_calendars_folder() {
    let dir = scratch("calendars");
    let flow = dir.join("temporary_assistance.flow");
    let text = std::fs::read_to_string(&flow).expect("flow");
    std::fs::write(
        &flow,
        text.replace("calendar cn_mainland", "calendar wuhai_local"),
    )
    .expect("write");
    let (code, _, stderr) = yimen(&["check", &s(&flow)]);
    assert_eq!(code, 1, "no calendar `wuhai_local` exists yet: {stderr}");
    assert!(stderr.contains("wuhai_local"), "{stderr}");
    let calendars = dir.join("calendars");
    std::fs::create_dir_all(&calendars).expect("mkdir");
    std::fs::write(calendars.join("wuhai_local.yaml"), "# a local layer\n").expect("write");
    let (code, _, stderr) = yimen(&["check", "--calendars", &s(&calendars), &s(&flow)]);
    assert_eq!(code, 0, "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 20: an expression of thousands of terms overflowed the stack and aborted `yimen
/// check`. Each of the five chains is now refused with `YM0008`, which names the limit, by
/// `check`, `fmt` and `graph` run with a 2 MiB stack (`ulimit -s`, the size of a tokio worker's).
#[test]
fn chains_of_thousands_of_terms_are_refused_not_a_stack_overflow() {
    let dir = std::env::temp_dir().join(format!("yimen-lang-cli-{}-deep", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let chains = [
        ("sum", "n", vec!["1"; 4000].join(" + ")),
        ("not", "flag", format!("{}flag", "not ".repeat(4000))),
        ("neg", "n", format!("{}1", "- ".repeat(4000))),
        ("field", "n", format!("n{}", ".a".repeat(4000))),
        ("index", "n", format!("m{}", "[0]".repeat(4000))),
    ];
    for (kind, target, expr) in chains {
        let path = dir.join(format!("{kind}.flow"));
        let source = format!(
            "process deep \"深\" version 1\nvar n: integer\nvar flag: boolean\nvar m: list<integer>\n\
             start begin \"开始\" -> calc\nstep calc \"计算\" {{ set {target} = {expr} }} -> done\n\
             end done \"结束\" result ok\n"
        );
        std::fs::write(&path, source).expect("write");
        for command in ["check", "fmt --check", "graph"] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("ulimit -s 2048 && exec \"$0\" {command} \"$1\""))
                .arg(env!("CARGO_BIN_EXE_yimen"))
                .arg(&path)
                .output()
                .expect("sh runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{kind} {command}: {stderr}");
            assert!(
                stderr.contains("YM0008") && stderr.contains("more than 64 levels deep"),
                "{kind} {command}: {stderr}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
