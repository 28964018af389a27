//! `yimen calendar ...` run as a script would: exact output formats and exit statuses.

use std::path::PathBuf;
use std::process::{Command, Output};

fn calendars() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("calendars")
}

fn yimen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yimen"))
        .arg("calendar")
        .args(args)
        .arg("--calendars")
        .arg(calendars())
        .output()
        .expect("run yimen")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn days_prints_one_line_per_date() {
    let out = yimen(&["days", "2026-09-30", "2026-10-11"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out), @r"
    2026-09-30 workday
    2026-10-01 rest 国庆节
    2026-10-02 rest 国庆节
    2026-10-03 rest 国庆节
    2026-10-04 rest 国庆节
    2026-10-05 rest 国庆节
    2026-10-06 rest 国庆节
    2026-10-07 rest 国庆节
    2026-10-08 workday
    2026-10-09 workday
    2026-10-10 workday 国庆节补班
    2026-10-11 rest
    ");
}

#[test]
fn days_shows_the_2005_make_up_saturday() {
    let out = yimen(&["days", "2005-12-30", "2006-01-04"]);
    assert_eq!(
        stdout(&out),
        "2005-12-30 workday\n2005-12-31 workday 元旦补班\n2006-01-01 rest 元旦\n\
         2006-01-02 rest 元旦\n2006-01-03 rest 元旦\n2006-01-04 workday\n"
    );
}

#[test]
fn add_prints_the_close_of_office_hours_of_the_due_day() {
    let out = yimen(&["add", "2026-09-30", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "2026-10-08 17:30\n");
    let out = yimen(&["add", "2026-09-30T15:00:00+08:00", "3"]);
    assert_eq!(stdout(&out), "2026-10-10 17:30\n");
    let out = yimen(&["add", "2026-11-27 19:00", "2", "--unit", "workhours"]);
    assert_eq!(stdout(&out), "2026-11-30 10:30\n");
}

#[test]
fn add_explain_prints_the_explanation_after_the_date() {
    let out = yimen(&["add", "2026-09-30 15:00", "3", "--explain"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "2026-10-10 17:30");
    assert!(lines[1].starts_with("日历 calendar: cn_mainland (数据版本 data version "));
    assert!(
        text.contains("跳过节假日 holidays skipped: 2026-10-01..2026-10-07 国庆节"),
        "{text}"
    );
    assert!(
        text.contains("计入调休上班日 make-up days counted: 2026-10-10 国庆节补班"),
        "{text}"
    );
}

#[test]
fn between_prints_the_number() {
    let out = yimen(&["between", "2026-09-30", "2026-10-10"]);
    assert_eq!(stdout(&out), "3\n");
    let out = yimen(&["between", "2026-11-27", "2026-11-30"]);
    assert_eq!(stdout(&out), "1\n");
}

#[test]
fn a_date_outside_the_data_exits_2_naming_the_year() {
    for args in [
        &["days", "2026-12-30", "2027-01-02"][..],
        &["between", "2026-12-30", "2027-01-05"],
        &["add", "2003-06-01", "1"],
    ] {
        let out = yimen(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let year = if args[1].starts_with("2003") {
            "2003"
        } else {
            "2027"
        };
        assert!(
            stderr(&out).contains(&format!("no data for {year}")),
            "{}",
            stderr(&out)
        );
    }
    // A due date reaching into 2027 is still printed (provisional), with status 2.
    let out = yimen(&["add", "2026-12-30", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "2027-01-06 17:30\n");
    assert!(stderr(&out).contains("provisional"), "{}", stderr(&out));
}

#[test]
fn check_accepts_the_shipped_calendars_and_rejects_a_broken_file() {
    let out = yimen(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("cn_mainland.yaml: ok (cn_mainland, 2004-2026, version "));

    let dir = std::env::temp_dir().join(format!("yimen-cal-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("local.yaml");
    std::fs::write(
        &file,
        "name: local\nyears:\n  2027:\n    make_up_days:\n      - date: 2027-02-15\n        name: 春节补班\n",
    )
    .unwrap();
    let out = yimen(&["check", file.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("local.yaml:5: make-up day 2027-02-15 is a Monday"),
        "{text}"
    );
    assert!(text.contains("  help: "), "{text}");
}

#[test]
fn an_example_calendar_says_so_on_stderr_only() {
    let out = yimen(&[
        "days",
        "2026-07-10",
        "2026-07-10",
        "--calendar",
        "cn_inner_mongolia_example",
    ]);
    assert_eq!(stdout(&out), "2026-07-10 rest 示例地方休息日\n");
    assert!(stderr(&out).contains("example data"), "{}", stderr(&out));
}

#[test]
fn check_of_a_draft_uses_the_folder_for_its_base() {
    let dir = std::env::temp_dir().join(format!("yimen-cal-draft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let draft = dir.join("local_draft.yaml");
    std::fs::write(
        &draft,
        "name: local_draft\nextends: cn_mainland\nyears:\n  2026:\n    holidays:\n      - name: 地方休息日\n        from: 2026-07-10\n",
    )
    .unwrap();
    let out = yimen(&["check", draft.to_str().unwrap()]);
    let orphan = dir.join("orphan.yaml");
    std::fs::write(&orphan, "name: orphan\nextends: nowhere\n").unwrap();
    let bad = yimen(&["check", orphan.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("local_draft.yaml: ok (local_draft, 2004-2026, version "));
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stdout(&bad).contains("extends `nowhere`"),
        "{}",
        stdout(&bad)
    );
}

#[test]
fn bad_input_is_refused_with_what_to_fix() {
    let out = yimen(&["add", "30/09/2026", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("write YYYY-MM-DD"),
        "{}",
        stderr(&out)
    );
    let out = yimen(&["days", "2026-10-02", "2026-10-01"]);
    assert_eq!(out.status.code(), Some(1));
    let out = yimen(&["between", "2026-10-01", "2026-10-02", "--calendar", "nope"]);
    assert!(
        stderr(&out).contains("use --calendar with one of"),
        "{}",
        stderr(&out)
    );
}
