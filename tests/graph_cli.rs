//! `yimen graph`: draws a valid process, refuses an invalid one with its diagnostics.

use std::process::Command;

fn yimen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_yimen"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the yimen binary runs")
}

#[test]
fn draws_a_valid_process_in_both_formats() {
    let dot = yimen(&["graph", "dsl/tests/ok/minimal.flow"]);
    assert!(
        dot.status.success(),
        "{}",
        String::from_utf8_lossy(&dot.stderr)
    );
    let text = String::from_utf8_lossy(&dot.stdout);
    assert!(text.starts_with("digraph \"expense\" {"), "{text}");
    assert!(
        text.contains("\"pay\" -> \"done\" [label=\"已付款\"];"),
        "{text}"
    );

    let mermaid = yimen(&["graph", "dsl/tests/ok/minimal.flow", "--format", "mermaid"]);
    assert!(mermaid.status.success());
    let text = String::from_utf8_lossy(&mermaid.stdout);
    assert!(text.contains("flowchart TD"), "{text}");
    assert!(text.contains("n1 -->|\"已付款\"| n2"), "{text}");
}

#[test]
fn refuses_an_invalid_process_with_its_diagnostics() {
    let out = yimen(&["graph", "dsl/tests/err/parallel_race.flow"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error[YM0205]"), "{err}");
    assert!(
        err.contains("dsl/tests/err/parallel_race.flow:11:6"),
        "{err}"
    );
}
