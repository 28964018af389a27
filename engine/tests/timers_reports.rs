//! Report jobs against the database: the first start only marks where the schedule begins,
//! a due run happens once even with two servers, a run missed while down runs once at start,
//! and every run is recorded with its CSV. On SQLite, and on PostgreSQL when
//! `YIMEN_TEST_POSTGRES` is set.

mod support;

use std::sync::Arc;
use support::*;
use yimen_engine::clock::{Clock, ManualClock};
use yimen_engine::reports::{Reports, Schedule};

on_both_databases!(report_runs);

const JOBS: &str = r#"
jobs:
  - name: overdue_digest
    cron: "0 8 * * *"
    report: overdue_digest
    notify: supervision
  - name: monthly
    cron: "0 6 1 * *"
    report: monthly_statistics
    process: social_assistance
    unit_var: street
    category_var: main_category
    department_role: department
"#;

/// Both servers run the jobs over one database; the CSV files go to the test's folder.
async fn report_runs(db: Db) {
    let clock = ManualClock::new(t("2026-10-09T09:00:00+08:00"));
    let engine = db
        .open(Arc::new(clock.clone()), Arc::new(calendars()))
        .await;
    accepted_case(&engine, &format!("SA-R-{}", db.name())).await;

    let out = db.dir().join("reports");
    let server = |name: &str| {
        Reports::new(
            engine.clone(),
            Schedule::parse(JOBS, "reports.yaml").expect("jobs parse"),
            Arc::new(calendars()),
            out.clone(),
            name.to_string(),
        )
    };
    let (a, b) = (server("a"), server("b"));

    // First start: nothing is back-filled.
    assert!(a.run_due(clock.now()).await.expect("runs").is_empty());
    assert!(b.run_due(clock.now()).await.expect("runs").is_empty());
    assert!(a.runs(None, 10).await.expect("lists").is_empty());

    // 1 November 08:30: the digest (08:00) and the monthly report (06:00) are due; two servers
    // look at the same moment and each run happens once.
    clock.set(t("2026-11-01T08:30:00+08:00")).expect("moves");
    let (ra, rb) = tokio::join!(a.run_due(clock.now()), b.run_due(clock.now()));
    let mut ran: Vec<_> = ra.expect("a").into_iter().chain(rb.expect("b")).collect();
    ran.sort_by(|x, y| x.job.cmp(&y.job));
    assert_eq!(ran.len(), 2, "{ran:#?}");
    assert_eq!(ran[0].job, "monthly");
    assert_eq!(ran[0].scheduled_at, t("2026-11-01T06:00:00+08:00"));
    assert_eq!(ran[1].job, "overdue_digest");
    assert!(ran.iter().all(|r| r.state == "done"), "{ran:#?}");
    // Again: nothing more.
    assert!(a.run_due(clock.now()).await.expect("runs").is_empty());

    // The forwarding deadline passed without the leader agreeing: the case is overdue in the
    // digest; the file is written and the CSV is served.
    let digest = &ran[1];
    let csv = a
        .csv("overdue_digest", digest.scheduled_at.timestamp_millis())
        .await
        .expect("csv");
    assert!(
        csv.starts_with("\u{feff}process,business_key,instance,task,"),
        "{csv}"
    );
    assert_eq!(digest.rows, Some(1), "{csv}");
    // Accepted Friday 9 October: due at the close of Saturday 10 October, a make-up working
    // day; the leader (street_consent) holds the case.
    assert!(
        csv.contains(
            ",clock:forwarding,forwarding,street_leader,xinhua,2026-10-10 17:30:00 +08:00,"
        ),
        "{csv}"
    );
    let file = digest.file.as_deref().expect("file");
    assert_eq!(std::fs::read_to_string(file).expect("file written"), csv);
    let monthly = a
        .csv("monthly", ran[0].scheduled_at.timestamp_millis())
        .await
        .expect("csv");
    assert!(
        monthly.starts_with("\u{feff}scope,unit,category,result,cases,"),
        "{monthly}"
    );
    let told = yimen_engine::inbox::list(&engine, "supervision", None, 10)
        .await
        .expect("inbox");
    assert!(
        told.iter()
            .any(|i| i.message.starts_with("report overdue_digest")),
        "{told:#?}"
    );

    // Down from 1 to 5 November: at start the missed digest runs once (5 November 08:00),
    // not once per missed day.
    clock.set(t("2026-11-05T09:00:00+08:00")).expect("moves");
    let ran = b.run_due(clock.now()).await.expect("runs");
    assert_eq!(ran.len(), 1, "{ran:#?}");
    assert_eq!(ran[0].scheduled_at, t("2026-11-05T08:00:00+08:00"));
    assert_eq!(ran[0].server, "b");
    let runs = a.runs(Some("overdue_digest"), 10).await.expect("lists");
    assert_eq!(runs.len(), 2);
    let unknown = a.runs(Some("weekly"), 10).await.unwrap_err();
    assert_eq!(unknown.status(), 404);
}
