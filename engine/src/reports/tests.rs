use super::*;
use crate::calendar::Calendars;
use serde_json::json;

fn calendar() -> Calendar {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../calendars");
    let cals = Calendars::load_dir(&dir).expect("calendars load");
    cals.get("cn_mainland").expect("cn_mainland").clone()
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const FILE: &str = r#"
time_zone: Asia/Shanghai
jobs:
  - name: overdue_digest
    cron: "0 8 * * *"
    report: overdue_digest
    notify: audit_office
  - name: monthly
    cron: "0 6 1 * *"
    report: monthly_statistics
    process: social_assistance
    unit_var: district
    category_var: category
    department_role: department
"#;

#[test]
fn cron_lines_are_read_in_shanghai_time() {
    let s = Schedule::parse(FILE, "reports.yaml").unwrap();
    let digest = s.job("overdue_digest").unwrap();
    // 07:59 Shanghai on 2026-09-30 = 23:59 UTC the day before: the due run is the 29th's.
    let now = t("2026-09-30T07:59:00+08:00");
    assert_eq!(
        s.latest_due(digest, now),
        Some(t("2026-09-29T08:00:00+08:00"))
    );
    assert_eq!(
        s.next_after(digest, now),
        Some(t("2026-09-30T08:00:00+08:00"))
    );
    // Exactly at the scheduled minute, that run is the due one.
    let at = t("2026-09-30T08:00:00+08:00");
    assert_eq!(s.latest_due(digest, at), Some(at));
    let monthly = s.job("monthly").unwrap();
    assert_eq!(
        s.next_after(monthly, now),
        Some(t("2026-10-01T06:00:00+08:00"))
    );
    assert_eq!(s.next_any(now), Some(t("2026-09-30T08:00:00+08:00")));
    assert_eq!(
        s.previous_month(t("2026-10-01T06:00:00+08:00")),
        (
            t("2026-09-01T00:00:00+08:00"),
            t("2026-10-01T00:00:00+08:00")
        )
    );
    assert_eq!(
        s.previous_month(t("2026-01-01T06:00:00+08:00")),
        (
            t("2025-12-01T00:00:00+08:00"),
            t("2026-01-01T00:00:00+08:00")
        )
    );
}

#[test]
fn a_bad_reports_file_lists_every_problem() {
    let bad = r#"
time_zone: Mars/Olympus
jobs:
  - name: Digest
    cron: "0 8 * *"
    report: overdue_digest
  - name: m
    cron: "61 8 * * *"
    report: monthly_statistics
  - name: m
    cron: "0 8 * * *"
    report: monthly_statistics
    unit_var: district
"#;
    let problems = Schedule::parse(bad, "reports.yaml").unwrap_err();
    let all = problems.join("\n");
    assert!(all.contains("unknown time zone `Mars/Olympus`"), "{all}");
    assert!(all.contains("job name `Digest`"), "{all}");
    assert!(all.contains("must have five fields"), "{all}");
    assert!(all.contains("cron `61 8 * * *`"), "{all}");
    assert!(all.contains("job `m` is defined twice"), "{all}");
    let unknown = Schedule::parse(
        "jobs:\n  - name: a\n    cron: \"0 8 * * *\"\n    report: weekly\n",
        "r.yaml",
    )
    .unwrap_err();
    assert!(unknown[0].starts_with("r.yaml: "), "{unknown:?}");
}

#[test]
fn percentiles_use_the_nearest_rank() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[3]), Some(3.0));
    assert_eq!(median(&[1, 2, 3, 10]), Some(2.5));
    assert_eq!(p90(&[5]), Some(5));
    let ten: Vec<i64> = (1..=10).collect();
    assert_eq!(p90(&ten), Some(9));
    let eleven: Vec<i64> = (1..=11).collect();
    assert_eq!(p90(&eleven), Some(10));
}

fn case(
    id: &str,
    district: &str,
    category: &str,
    result: &str,
    created: &str,
    ended: Option<&str>,
) -> CaseFacts {
    let mut vars = Map::new();
    vars.insert("district".into(), json!(district));
    vars.insert("category".into(), json!(category));
    vars.insert("id_number".into(), json!("150302199001011235"));
    CaseFacts {
        id: id.into(),
        process: "social_assistance".into(),
        business_key: Some(format!("SA-{id}")),
        status: if ended.is_some() {
            "completed"
        } else {
            "running"
        }
        .into(),
        result: ended.map(|_| result.to_string()),
        vars,
        created_at: t(created),
        ended_at: ended.map(t),
        clocks: if ended.is_none() {
            vec![("statutory".to_string(), t("2026-09-28T17:30:00+08:00"))]
        } else {
            vec![]
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn task(
    id: &str,
    case: &str,
    queue: &str,
    state: &str,
    outcome: Option<&str>,
    created: &str,
    done: Option<&str>,
    due: Option<&str>,
) -> TaskFacts {
    TaskFacts {
        id: id.into(),
        instance_id: case.into(),
        node: "handle".into(),
        label: Some("部门办理".into()),
        queue: queue.into(),
        org_unit: None,
        state: state.into(),
        outcome: outcome.map(str::to_string),
        created_at: t(created),
        completed_at: done.map(t),
        due_at: due.map(t),
    }
}

fn facts() -> Facts {
    Facts {
        cases: vec![
            // Accepted Mon 2026-09-07, ended Fri 09-11: 4 working days; on time.
            case(
                "a",
                "xinhua",
                "minimum_living",
                "approved",
                "2026-09-07T10:00:00+08:00",
                Some("2026-09-11T10:00:00+08:00"),
            ),
            // Accepted 09-28 (Mon), ended 10-09 (Fri): 09-29, 09-30, 10-09 (+ 10-10 make-up Sat not reached) = 3; late.
            case(
                "b",
                "xinhua",
                "minimum_living",
                "approved",
                "2026-09-28T10:00:00+08:00",
                Some("2026-10-09T10:00:00+08:00"),
            ),
            // Ended in September too, other district.
            case(
                "c",
                "gangwan",
                "destitute",
                "rejected",
                "2026-09-01T10:00:00+08:00",
                Some("2026-09-15T10:00:00+08:00"),
            ),
            // Still open: not counted, but its escalation is.
            case(
                "d",
                "xinhua",
                "minimum_living",
                "",
                "2026-09-20T10:00:00+08:00",
                None,
            ),
        ],
        tasks: vec![
            task(
                "ta",
                "a",
                "department:civil_affairs",
                "completed",
                Some("done"),
                "2026-09-07T11:00:00+08:00",
                Some("2026-09-09T11:00:00+08:00"),
                Some("2026-09-10T17:30:00+08:00"),
            ),
            task(
                "tc",
                "c",
                "department:civil_affairs",
                "completed",
                Some("done"),
                "2026-09-01T11:00:00+08:00",
                Some("2026-09-14T11:00:00+08:00"),
                Some("2026-09-10T17:30:00+08:00"),
            ),
            task(
                "td",
                "d",
                "department:housing",
                "open",
                None,
                "2026-09-20T11:00:00+08:00",
                None,
                Some("2026-09-25T17:30:00+08:00"),
            ),
            task(
                "tw",
                "d",
                "window",
                "open",
                None,
                "2026-09-21T11:00:00+08:00",
                None,
                Some("2026-09-24T17:30:00+08:00"),
            ),
            task(
                "tx",
                "d",
                "window",
                "open",
                None,
                "2026-09-21T11:00:00+08:00",
                None,
                Some("2026-12-24T17:30:00+08:00"),
            ),
        ],
        escalations: vec![
            OpenEscalation {
                instance_id: "d".into(),
                task_id: Some("td".into()),
                clock: None,
                level: 1,
            },
            OpenEscalation {
                instance_id: "d".into(),
                task_id: Some("td".into()),
                clock: None,
                level: 2,
            },
            OpenEscalation {
                instance_id: "d".into(),
                task_id: Some("tw".into()),
                clock: None,
                level: 0,
            },
            OpenEscalation {
                instance_id: "d".into(),
                task_id: None,
                clock: Some("statutory".into()),
                level: 1,
            },
        ],
    }
}

#[test]
fn monthly_statistics_by_unit_and_department() {
    let s = Schedule::parse(FILE, "reports.yaml").unwrap();
    let spec = &s.job("monthly").unwrap().spec;
    let (from, to) = s.previous_month(t("2026-10-01T06:00:00+08:00"));
    let csv = monthly_statistics(&facts(), spec, from, to, &calendar());
    insta::assert_snapshot!(csv.text);
    assert_eq!(csv.rows, 8);
    // Case b ended in October: not in September's report.
    assert!(!csv.text.contains(",3,"), "{}", csv.text);
    // Personal data never reaches a report.
    assert!(!csv.text.contains("150302"));
}

/// A2 §5 (登记、统计): registrations per district and category count the cases still open; the
/// month's report counted only the cases that ended in it.
#[test]
fn registrations_count_cases_still_open() {
    let s = Schedule::parse(FILE, "reports.yaml").unwrap();
    let spec = &s.job("monthly").unwrap().spec;
    let (from, to) = s.previous_month(t("2026-10-01T06:00:00+08:00"));
    let csv = monthly_statistics(&facts(), spec, from, to, &calendar());
    let rows: Vec<&str> = csv.text.lines().collect();
    // b (ended in October) and d (running) were open at the end of September.
    assert!(
        rows.contains(&"registered,xinhua,minimum_living,open,2,,,,3"),
        "{}",
        csv.text
    );
    assert!(
        rows.contains(&"registered,xinhua,minimum_living,approved,1,,,,3"),
        "{}",
        csv.text
    );
    assert!(
        rows.contains(&"registered,gangwan,destitute,rejected,1,,,,0"),
        "{}",
        csv.text
    );
}

#[test]
fn report_files_open_in_excel_and_run_no_formulas() {
    let mut facts = facts();
    facts.cases[3]
        .vars
        .insert("district".into(), json!("=HYPERLINK(\"http://x\")"));
    let s = Schedule::parse(FILE, "reports.yaml").unwrap();
    let spec = &s.job("monthly").unwrap().spec;
    let (from, to) = s.previous_month(t("2026-10-01T06:00:00+08:00"));
    let csv = monthly_statistics(&facts, spec, from, to, &calendar());
    assert!(
        csv.text.starts_with('\u{feff}'),
        "UTF-8 with a byte-order mark"
    );
    assert!(csv.text.contains("\"'=HYPERLINK("), "{}", csv.text);
    assert!(!csv.text.contains(",=HYPERLINK"), "{}", csv.text);
}

#[test]
fn overdue_digest_lists_late_open_tasks_oldest_first() {
    let now = t("2026-09-30T08:00:00+08:00");
    let csv = overdue_digest(&facts(), now, &calendar());
    insta::assert_snapshot!(csv.text);
    assert_eq!(csv.rows, 3);
}

#[test]
fn csv_fields_with_commas_and_quotes_are_quoted() {
    assert_eq!(
        csv_line(&["a,b".into(), "say \"hi\"".into(), "x".into()]),
        "\"a,b\",\"say \"\"hi\"\"\",x\n"
    );
}
