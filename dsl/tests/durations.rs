//! One duration syntax: what the checker accepts in a YAML configuration is exactly what the
//! runtime reads (a variable's value, a configuration text), with the same amount and unit;
//! what one refuses, the other refuses. The forms are listed in docs/language.md.

use serde_json::json;
use yimen_dsl::model::{DurationUnit, Type};
use yimen_dsl::value::Value;

const PROCESS: &str = r#"process limits "时限" version 1

config "limits.yaml" {
  limit: duration
}

role clerk "办事员"

start begin "开始" -> work

task work "办理" {
  queue clerk
  deadline config.limit
  outcome ok "办结" -> done
}

end done "完成"
"#;

/// The checker's verdict on `limit: "<text>"`: accepted or not.
fn checker_accepts(text: &str) -> bool {
    let yaml = format!("limit: \"{text}\"\n");
    let compiled = yimen_dsl::compile("limits.flow", PROCESS, &|path| {
        (path == "limits.yaml").then(|| yaml.clone())
    });
    !compiled.has_errors()
}

/// What the runtime reads: a `duration` variable given as text, and a configuration text.
fn runtime_reads(text: &str) -> Option<(i64, DurationUnit)> {
    let variable = Value::from_json(&json!(text), &Type::Duration, &|_| None)
        .ok()
        .and_then(|v| v.as_duration());
    let config = Value::Text(text.to_string()).as_duration();
    assert_eq!(
        variable, config,
        "`{text}`: a variable and a configuration text agree"
    );
    variable
}

#[test]
fn the_checker_and_the_runtime_read_durations_alike() {
    use DurationUnit::*;
    let cases = [
        ("30 workdays", Some((30, WorkDays))),
        ("30workdays", Some((30, WorkDays))),
        ("1 workday", Some((1, WorkDays))),
        ("4 workhours", Some((4, WorkHours))),
        ("7 days", Some((7, Days))),
        ("2 hours", Some((2, Hours))),
        ("15 minutes", Some((15, Minutes))),
        ("30 工作日", Some((30, WorkDays))),
        ("30工作日", Some((30, WorkDays))),
        ("30个工作日", Some((30, WorkDays))),
        ("4 工作小时", Some((4, WorkHours))),
        ("4个工作小时", Some((4, WorkHours))),
        ("7天", Some((7, Days))),
        ("7 日", Some((7, Days))),
        ("2小时", Some((2, Hours))),
        ("2个小时", Some((2, Hours))),
        ("15分钟", Some((15, Minutes))),
        ("-3 days", None),
        ("-30个工作日", None),
        ("1.5 days", None),
        ("3 weeks", None),
        ("30", None),
        ("days", None),
    ];
    for (text, want) in cases {
        assert_eq!(runtime_reads(text), want, "the runtime reads `{text}`");
        assert_eq!(
            checker_accepts(text),
            want.is_some(),
            "the checker's verdict on `{text}` is the runtime's"
        );
    }
}

#[test]
fn a_negative_duration_is_refused_with_what_to_write() {
    let err = Value::from_json(&json!("-3 workdays"), &Type::Duration, &|_| None).unwrap_err();
    assert!(err.contains("cannot be negative"), "{err}");
    assert!(err.contains("`3 workdays`"), "{err}");
    let yaml = "limit: \"-3 workdays\"\n".to_string();
    let compiled = yimen_dsl::compile("limits.flow", PROCESS, &|path| {
        (path == "limits.yaml").then(|| yaml.clone())
    });
    let messages: Vec<String> = compiled
        .diagnostics
        .iter()
        .map(|d| format!("{} {}", d.message, d.help.as_deref().unwrap_or("")))
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("cannot be negative")),
        "{messages:#?}"
    );
}
