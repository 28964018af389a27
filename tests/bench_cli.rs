//! `yimen bench`: a small run drives every case to its end through the HTTP API, with workers
//! completing what they claimed in one request (`POST /tasks/complete`) or one request each.

use std::process::Command;

fn bench(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_yimen"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run yimen bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "yimen bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn figure<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{label}` in:\n{out}"))
}

fn run_both_ways(database: &str) {
    for complete in ["batch", "each"] {
        let out = bench(&[
            "three-task",
            "--cases",
            "40",
            "--workers",
            "3",
            "--batch",
            "8",
            "--starters",
            "2",
            "--complete",
            complete,
            "--database",
            database,
        ]);
        assert_eq!(figure(&out, "cases completed:"), "40 of 40", "{out}");
        assert_eq!(figure(&out, "task completions:"), "120", "{out}");
        let rate: f64 = figure(&out, "cases/s:").parse().expect("a number");
        assert!(rate > 0.0, "{out}");
        let cpu = figure(&out, "CPU per case:");
        let micros: f64 = cpu
            .split(' ')
            .next()
            .unwrap_or_default()
            .parse()
            .expect("µs");
        assert!(micros >= 0.0 && cpu.contains("µs (user "), "{out}");
    }
}

#[test]
fn bench_drives_every_case_to_its_end_on_sqlite() {
    run_both_ways("sqlite");
}

#[test]
fn bench_drives_every_case_to_its_end_on_postgres() {
    if let Some(url) = yimen_engine::testing::postgres_url("the bench") {
        run_both_ways(&url);
    }
}

/// `yimen bench pages`, tiny: the pages answer, with the figures of each.
fn pages(database: &str) {
    let out = bench(&[
        "pages",
        "--cases",
        "30",
        "--open",
        "10",
        "--requests",
        "5",
        "--database",
        database,
    ]);
    assert_eq!(
        figure(&out, "stored cases:"),
        "30 (20 ended, 10 open)",
        "{out}"
    );
    for page in ["我的待办 /work", "案件 /cases/{id}"] {
        let line = figure(&out, page);
        assert!(line.starts_with("p50 ") && line.contains("p95 "), "{out}");
    }
}

#[test]
fn bench_pages_answers_on_sqlite() {
    pages("sqlite");
}

#[test]
fn bench_pages_answers_on_postgres() {
    if let Some(url) = yimen_engine::testing::postgres_url("the pages bench") {
        pages(&url);
    }
}
