//! The statistics of a known set of cases (`Engine::statistics`, `Engine::register`), their
//! workbooks read back with calamine, and the scheduled `statistics` report writing the same
//! files. On SQLite, and on PostgreSQL when `YIMEN_TEST_POSTGRES` is set.

mod support;

use calamine::{Data, Reader, Xlsx};
use chrono::NaiveDate;
use serde_json::json;
use std::io::Cursor;
use std::sync::Arc;
use support::*;
use yimen_engine::clock::{Clock, ManualClock};
use yimen_engine::engine::{Engine, RegisterReader, StartRequest, StatisticsQuery};
use yimen_engine::reports::{Reports, Schedule};

on_both_databases!(statistics_of_a_known_set);

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("day")
}

fn query(from: &str, to: &str, units: Option<&[&str]>) -> StatisticsQuery {
    StatisticsQuery {
        process: "social_assistance".into(),
        from: day(from),
        to: day(to),
        units: units.map(|u| u.iter().map(|s| s.to_string()).collect()),
    }
}

async fn register_case(engine: &Engine, key: &str, street: &str) -> String {
    let mut form = registration(&["minimum_living"]);
    form["street"] = json!(street);
    engine
        .start(StartRequest {
            process: "social_assistance".into(),
            business_key: Some(key.into()),
            vars: vars(form),
            actor: "window-1".into(),
        })
        .await
        .expect("starts")
        .id
}

/// Accepted, agreed, forwarded, decided by civil affairs.
async fn decided(engine: &Engine, case: &str, decision: &str, temp_aid: bool) {
    accept(engine, case).await;
    agree_and_forward(engine, case).await;
    let v = json!({"decision": decision, "temp_aid_eligible": temp_aid});
    complete(
        engine,
        case,
        "department:civil_affairs",
        "civil-1",
        "decided",
        v,
    )
    .await;
}

fn sheet(bytes: &[u8], name: &str) -> Vec<Vec<Data>> {
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("an XLSX workbook");
    let range = book
        .worksheet_range(name)
        .unwrap_or_else(|e| panic!("sheet {name}: {e}; sheets {:?}", book.sheet_names()));
    range.rows().map(<[Data]>::to_vec).collect()
}

fn text(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Empty => String::new(),
        other => format!("{other:?}"),
    }
}

/// A row of counts as numbers, found by its first cell.
fn counts(rows: &[Vec<Data>], label: &str) -> Vec<f64> {
    let row = rows
        .iter()
        .find(|r| text(&r[0]) == label)
        .unwrap_or_else(|| panic!("a row {label} in {rows:?}"));
    row[1..]
        .iter()
        .map(|d| match d {
            Data::Float(f) => *f,
            other => panic!("{label}: a count is a number, not {other:?}"),
        })
        .collect()
}

async fn statistics_of_a_known_set(db: Db) {
    let clock = ManualClock::new(t("2026-10-09T09:00:00+08:00"));
    let engine = db
        .open(Arc::new(clock.clone()), Arc::new(calendars()))
        .await;
    deploy(&engine, "social_assistance", &|_, text| text).await;

    // A: xinhua, approved, referred to temporary aid, open (at feedback).
    let a = register_case(&engine, "SA-S-A", "xinhua").await;
    decided(&engine, &a, "approved", true).await;
    // B: xinhua, not a social-assistance matter: refused, closed.
    let b = register_case(&engine, "SA-S-B", "xinhua").await;
    complete(
        &engine,
        &b,
        "window",
        "window-1",
        "not_assistance",
        json!({"referral": "人力资源和社会保障局"}),
    )
    .await;
    // C: gongyuan, rejected, told and filed: closed.
    let c = register_case(&engine, "SA-S-C", "gongyuan").await;
    decided(&engine, &c, "rejected", false).await;
    complete(&engine, &c, "window", "window-1", "informed", json!({})).await;
    complete(&engine, &c, "window", "window-1", "filed", json!({})).await;
    // D: gongyuan, registered only.
    register_case(&engine, "SA-S-D", "gongyuan").await;

    let october = query("2026-10-01", "2026-10-31", None);
    let tables = engine.statistics(&october).await.expect("statistics");
    assert_eq!(
        tables.columns,
        [
            "登记",
            "受理",
            "不予受理",
            "批准",
            "不予批准",
            "转介临时救助",
            "视为撤回",
            "在办",
            "已办结"
        ]
    );
    let total = &tables.table("total").expect("total").rows[0].counts;
    assert_eq!(total, &[4, 2, 1, 1, 1, 1, 0, 2, 2], "{tables:#?}");

    // The workbook: a sheet per table, Chinese headers, counts as numbers.
    let book = yimen_engine::statistics::xlsx::tables(&tables).expect("a workbook");
    let streets = sheet(&book, "按街道（镇）统计");
    let header: Vec<String> = streets[0].iter().map(text).collect();
    assert_eq!(header[0], "街道（镇）");
    assert_eq!(header[1..], tables.columns[..]);
    assert_eq!(
        counts(&streets, "xinhua"),
        [2., 1., 1., 1., 0., 1., 0., 1., 1.]
    );
    assert_eq!(
        counts(&streets, "gongyuan"),
        [2., 1., 0., 0., 1., 0., 0., 1., 1.]
    );
    let departments = sheet(&book, "按办理部门统计");
    assert_eq!(counts(&departments, "民政局")[..2], [2., 2.]);
    let categories = sheet(&book, "按主要救助类别（确定牵头部门）统计");
    assert_eq!(counts(&categories, "最低生活保障")[0], 2.);
    assert_eq!(counts(&categories, "（未填写）")[0], 2.);
    assert_eq!(counts(&sheet(&book, "按登记月份统计"), "2026年10月")[0], 4.);
    assert_eq!(
        counts(&sheet(&book, "总计"), "2026-10-01 至 2026-10-31")[0],
        4.
    );

    // A window limited to gongyuan counts its street's cases only.
    let gongyuan = query("2026-10-01", "2026-10-31", Some(&["gongyuan"]));
    let mine = engine.statistics(&gongyuan).await.expect("statistics");
    assert_eq!(mine.table("total").expect("total").rows[0].counts[0], 2);

    // The register, masked: one row per case, the form's fields and the stages' dates.
    let register = engine
        .register(&october, RegisterReader::Masked)
        .await
        .expect("register");
    let reg_book = yimen_engine::statistics::xlsx::register(&register).expect("a workbook");
    let rows = sheet(&reg_book, "电子台账");
    assert_eq!(rows.len(), 5, "a header and four cases");
    let header: Vec<String> = rows[0].iter().map(text).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("column {name} in {header:?}"))
    };
    let a_row = rows
        .iter()
        .find(|r| text(&r[col("案件编号")]) == "SA-S-A")
        .expect("A's row");
    assert_eq!(text(&a_row[col("申请人姓名")]), "张**");
    assert_eq!(text(&a_row[col("身份证号")]), "150302********1231");
    assert_eq!(text(&a_row[col("联系电话")]), "138****8000");
    assert_eq!(text(&a_row[col("办理结果")]), "批准");
    assert_eq!(
        text(&a_row[col("主要救助类别（确定牵头部门）")]),
        "最低生活保障"
    );
    assert!(
        matches!(a_row[col("转办时间")], Data::DateTime(_)),
        "a stage's date is a date: {:?}",
        a_row[col("转办时间")]
    );
    let b_row = rows
        .iter()
        .find(|r| text(&r[col("案件编号")]) == "SA-S-B")
        .expect("B's row");
    assert_eq!(text(&b_row[col("办结情况")]), "不予受理");
    assert_eq!(b_row[col("转办时间")], Data::Empty);

    // Unmasked: every case read is recorded.
    let reader = yimen_engine::engine::Reader {
        principal: yimen_engine::auth::Principal {
            kind: yimen_engine::auth::PrincipalKind::User,
            id: "u-1".into(),
            name: "监察员".into(),
            roles: vec![yimen_engine::auth::Role::Named("supervision".into())],
            org_units: Vec::new(),
            oversees: true,
            informs_subject: false,
            only_oversees: true,
            reassigns: Vec::new(),
        },
        address: None,
    };
    let open = engine
        .register(&october, RegisterReader::Unmasked(reader))
        .await
        .expect("register");
    let name_col = open
        .headers
        .iter()
        .position(|h| h == "申请人姓名")
        .expect("name");
    assert!(
        open.rows
            .iter()
            .all(|r| r[name_col] == yimen_engine::statistics::Cell::Text("张三丰".into()))
    );
    let (_, reads) = engine
        .personal_data_reads(None, 1, 100)
        .await
        .expect("reads");
    assert_eq!(reads, 4);

    // The scheduled report: on 1 November the month of October, as the page's files.
    let jobs = "jobs:\n  - name: monthly_tables\n    cron: \"0 6 1 * *\"\n    report: statistics\n    process: social_assistance\n";
    let reports = Reports::new(
        engine.clone(),
        Schedule::parse(jobs, "reports.yaml").expect("jobs parse"),
        Arc::new(calendars()),
        db.dir().join("reports"),
        "a".into(),
    );
    assert!(reports.run_due(clock.now()).await.expect("runs").is_empty());
    clock.set(t("2026-11-01T08:30:00+08:00")).expect("moves");
    let ran = reports.run_due(clock.now()).await.expect("runs");
    assert_eq!(ran.len(), 1, "{ran:#?}");
    assert_eq!(ran[0].state, "done", "{ran:#?}");
    let csv_file = std::path::PathBuf::from(ran[0].file.clone().expect("a file"));
    let csv = std::fs::read_to_string(&csv_file).expect("the CSV");
    assert!(csv.starts_with("\u{feff}统计表,分组,登记,受理,"), "{csv}");
    assert!(
        csv.contains("总计,2026-10-01 至 2026-10-31,4,2,1,1,1,1,0,2,2\n"),
        "{csv}"
    );
    let (book_file, register_file) = yimen_engine::reports::workbook_files(&csv_file);
    let book = std::fs::read(book_file).expect("the workbook");
    assert_eq!(
        counts(&sheet(&book, "按街道（镇）统计"), "xinhua"),
        [2., 1., 1., 1., 0., 1., 0., 1., 1.]
    );
    let reg = std::fs::read(register_file).expect("the register");
    let rows = sheet(&reg, "电子台账");
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .skip(1)
            .all(|r| text(&r[col("申请人姓名")]) == "张**")
    );

    // A case registered in December is not in October, and is in the quarter.
    clock.set(t("2026-12-01T09:00:00+08:00")).expect("moves");
    register_case(&engine, "SA-S-E", "xinhua").await;
    let again = engine.statistics(&october).await.expect("statistics");
    assert_eq!(again.table("total").expect("total").rows[0].counts[0], 4);
    let quarter = engine
        .statistics(&query("2026-10-01", "2026-12-31", None))
        .await
        .expect("statistics");
    let months: Vec<(String, u64)> = quarter
        .table("month")
        .expect("months")
        .rows
        .iter()
        .map(|r| (r.label.clone(), r.counts[0]))
        .collect();
    assert_eq!(
        months,
        [("2026年10月".to_string(), 4), ("2026年12月".to_string(), 1)]
    );
    let reversed = engine
        .statistics(&query("2026-10-31", "2026-10-01", None))
        .await
        .unwrap_err();
    assert_eq!(reversed.status(), 422);
}
