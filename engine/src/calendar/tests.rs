use super::*;
use proptest::prelude::*;
use std::sync::OnceLock;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../calendars")
}

fn calendars() -> &'static Calendars {
    static CALENDARS: OnceLock<Calendars> = OnceLock::new();
    CALENDARS.get_or_init(|| match Calendars::load_dir(&dir()) {
        Ok(c) => c,
        Err(e) => panic!("calendars/ must load: {e}"),
    })
}

fn cn() -> &'static Calendar {
    calendars().get("cn_mainland").expect("cn_mainland")
}

fn date(s: &str) -> NaiveDate {
    s.parse().expect("test date")
}

/// A Beijing wall-clock time.
fn bj(s: &str) -> DateTime<Utc> {
    let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("test time");
    Tz::Asia__Shanghai
        .from_local_datetime(&local)
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc)
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&Tz::Asia__Shanghai)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn due(cal: &Calendar, from: &str, amount: i64, unit: DurationUnit) -> String {
    local(cal.add(bj(from), amount, unit).at)
}

#[test]
fn every_date_2004_to_2026_agrees_with_the_independent_fixture() {
    let path = dir().join("fixtures/cn_mainland_days.txt");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut parts = line.splitn(3, ' ');
        let (d, status, name) = (parts.next(), parts.next(), parts.next());
        let d = date(d.expect("date"));
        let info = cn().day(d).expect("covered year");
        let expected = status == Some("workday");
        if info.workday != expected {
            wrong.push(format!("{line}: calendar says {info:?}"));
        }
        // A day the other source names as a day off is a named holiday here too.
        if !expected && name.is_some() && (info.kind != DayKind::Holiday || info.name.is_none()) {
            wrong.push(format!("{line}: calendar says {info:?}"));
        }
        checked += 1;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let days = (date("2026-12-31") - date("2004-01-01")).num_days() + 1;
    assert_eq!(checked, days, "the fixture lists every date 2004-2026");
}

#[test]
fn saturday_2005_12_31_is_a_make_up_working_day_per_the_official_notice() {
    let info = cn().day(date("2005-12-31")).unwrap();
    assert!(info.workday);
    assert_eq!(info.kind, DayKind::MakeUpWorkday);
    assert_eq!(info.name.as_deref(), Some("元旦补班"));
    let new_year = cn().day(date("2006-01-03")).unwrap();
    assert_eq!(
        (new_year.workday, new_year.name.as_deref()),
        (false, Some("元旦"))
    );
}

#[test]
fn days_report_names_and_kinds() {
    let cases = [
        ("2026-10-01", false, Some("国庆节"), DayKind::Holiday),
        ("2026-10-04", false, Some("国庆节"), DayKind::Holiday),
        (
            "2026-10-10",
            true,
            Some("国庆节补班"),
            DayKind::MakeUpWorkday,
        ),
        ("2026-10-11", false, None, DayKind::Weekend),
        ("2026-10-12", true, None, DayKind::Weekday),
        ("2026-02-14", true, Some("春节补班"), DayKind::MakeUpWorkday),
    ];
    for (d, workday, name, kind) in cases {
        let info = cn().day(date(d)).unwrap();
        assert_eq!(
            (info.workday, info.name.as_deref(), info.kind),
            (workday, name, kind),
            "{d}"
        );
    }
}

#[test]
fn a_year_without_data_is_an_error_naming_the_year() {
    let err = cn().day(date("2027-01-04")).unwrap_err();
    assert_eq!(err.year, 2027);
    assert!(err.to_string().contains("no data for 2027"), "{err}");
    assert_eq!(cn().day(date("2003-12-31")).unwrap_err().year, 2003);
    assert_eq!(
        cn().between(date("2026-12-30"), date("2027-01-05"))
            .unwrap_err()
            .year,
        2027
    );
}

#[test]
fn reviewed_on_the_afternoon_before_national_day_2026() {
    let d = cn().add(bj("2026-09-30 15:00"), 1, DurationUnit::WorkDays);
    assert_eq!(local(d.at), "2026-10-08 17:30");
    assert!(!d.provisional);
    let skipped: Vec<_> = d
        .explanation
        .holidays_skipped
        .iter()
        .map(|h| (h.date.to_string(), h.name.as_str()))
        .collect();
    assert_eq!(skipped.len(), 7);
    assert_eq!(skipped[0], ("2026-10-01".to_string(), "国庆节"));
    assert_eq!(skipped[6], ("2026-10-07".to_string(), "国庆节"));
    let text = d.explanation.to_string();
    assert!(text.contains("2026-10-01..2026-10-07 国庆节"), "{text}");
    assert!(text.contains(cn().version()), "{text}");
    assert_eq!(
        d.explanation.notices,
        vec!["国办发明电〔2025〕7号".to_string()]
    );
    assert!(
        text.contains("依据 notices: 国办发明电〔2025〕7号"),
        "{text}"
    );
}

#[test]
fn working_days_count_from_the_day_after_the_event_whatever_the_hour() {
    use DurationUnit::WorkDays;
    for from in ["2026-11-26 00:01", "2026-11-26 08:00", "2026-11-26 23:59"] {
        assert_eq!(due(cn(), from, 1, WorkDays), "2026-11-27 17:30", "{from}");
    }
    // Friday: Saturday and Sunday are skipped.
    assert_eq!(
        due(cn(), "2026-11-27 10:00", 1, WorkDays),
        "2026-11-30 17:30"
    );
    // An event on Saturday counts from Monday.
    assert_eq!(
        due(cn(), "2026-11-28 10:00", 1, WorkDays),
        "2026-11-30 17:30"
    );
    assert_eq!(
        due(cn(), "2026-11-26 10:00", 3, WorkDays),
        "2026-12-01 17:30"
    );
    // The local day decides, not the UTC one: 01:00 in Beijing is the previous UTC day.
    let d = cn().add(bj("2026-11-27 01:00"), 1, WorkDays);
    assert_eq!(local(d.at), "2026-11-30 17:30");
    // Zero days: the close of the day itself, or of the next working day.
    assert_eq!(
        due(cn(), "2026-11-26 10:00", 0, WorkDays),
        "2026-11-26 17:30"
    );
    assert_eq!(
        due(cn(), "2026-10-03 10:00", 0, WorkDays),
        "2026-10-08 17:30"
    );
}

#[test]
fn a_make_up_saturday_is_counted() {
    let d = cn().add(bj("2026-10-09 16:00"), 1, DurationUnit::WorkDays);
    assert_eq!(local(d.at), "2026-10-10 17:30");
    assert_eq!(
        d.explanation.make_up_days_counted,
        vec![NamedDay {
            date: date("2026-10-10"),
            name: "国庆节补班".into()
        }]
    );
    // Spring Festival 2026: 02-14 (Sat) worked, 02-15..02-23 off.
    let d = cn().add(bj("2026-02-13 09:00"), 2, DurationUnit::WorkDays);
    assert_eq!(local(d.at), "2026-02-24 17:30");
    assert_eq!(d.explanation.holidays_skipped.len(), 9);
}

#[test]
fn working_days_across_a_covered_year_end() {
    // 2025-12-31 (Wed) + 1: 2026-01-01..03 off, 01-04 (Sun) is a make-up day.
    let d = cn().add(bj("2025-12-31 10:00"), 1, DurationUnit::WorkDays);
    assert_eq!(local(d.at), "2026-01-04 17:30");
    assert!(!d.provisional);
    // 2005-12-30 (Fri) + 2: Saturday 2005-12-31 is a working day, by the 2006 notice.
    let d = cn().add(bj("2005-12-30 10:00"), 2, DurationUnit::WorkDays);
    assert_eq!(local(d.at), "2006-01-04 17:30");
    assert_eq!(
        d.explanation.notices,
        vec!["国办发明电〔2005〕35号".to_string()]
    );
    assert_eq!(
        cn().day(date("2005-12-31")).unwrap().notice.as_deref(),
        Some("国办发明电〔2005〕35号")
    );
    assert_eq!(
        due(cn(), "2005-12-30 10:00", 1, DurationUnit::WorkDays),
        "2005-12-31 17:30"
    );
}

#[test]
fn a_deadline_into_an_uncovered_year_is_provisional_on_weekends_only() {
    let d = cn().add(bj("2026-12-30 10:00"), 5, DurationUnit::WorkDays);
    // 12-31, then 2027-01-01 (Fri, no data: counted), 01-04, 01-05, 01-06.
    assert_eq!(local(d.at), "2027-01-06 17:30");
    assert!(d.provisional);
    assert_eq!(d.missing_years, vec![2027]);
    assert!(
        d.explanation
            .to_string()
            .contains("暂定 provisional: no data for 2027")
    );
    let covered = cn().add(bj("2026-12-29 10:00"), 2, DurationUnit::WorkDays);
    assert_eq!(local(covered.at), "2026-12-31 17:30");
    assert!(!covered.provisional && covered.missing_years.is_empty());
}

#[test]
fn calendar_days_ending_on_a_rest_day_move_to_the_next_working_day() {
    use DurationUnit::Days;
    // Ends on a working day: its close of office hours.
    assert_eq!(due(cn(), "2026-11-20 10:00", 7, Days), "2026-11-27 17:30");
    // Ends on a Saturday: Monday.
    assert_eq!(due(cn(), "2026-11-21 10:00", 7, Days), "2026-11-30 17:30");
    // Ends inside National Day: the first working day after it.
    let d = cn().add(bj("2026-09-24 10:00"), 7, Days);
    assert_eq!(local(d.at), "2026-10-08 17:30");
    assert_eq!(d.explanation.holidays_skipped.len(), 7);
    // The local day counts: 01:00 on Saturday in Beijing is Friday in UTC.
    let d = cn().add(bj("2026-11-21 01:00"), 7, Days);
    assert_eq!(local(d.at), "2026-11-30 17:30");
    // Ends on a make-up Saturday: that day.
    assert_eq!(due(cn(), "2026-10-03 10:00", 7, Days), "2026-10-10 17:30");
    // Into 2027: provisional.
    let d = cn().add(bj("2026-12-28 10:00"), 7, Days);
    assert_eq!(local(d.at), "2027-01-04 17:30");
    assert_eq!(d.missing_years, vec![2027]);
}

#[test]
fn working_hours_count_only_office_time() {
    use DurationUnit::WorkHours;
    assert_eq!(
        due(cn(), "2026-11-26 09:00", 2, WorkHours),
        "2026-11-26 11:00"
    );
    // Across lunch.
    assert_eq!(
        due(cn(), "2026-11-26 11:00", 2, WorkHours),
        "2026-11-26 15:30"
    );
    // Ends exactly at a closing time.
    assert_eq!(
        due(cn(), "2026-11-26 11:00", 1, WorkHours),
        "2026-11-26 12:00"
    );
    // An event outside office hours starts at the next opening.
    assert_eq!(
        due(cn(), "2026-11-27 19:00", 2, WorkHours),
        "2026-11-30 10:30"
    );
    assert_eq!(
        due(cn(), "2026-11-26 07:00", 1, WorkHours),
        "2026-11-26 09:30"
    );
    assert_eq!(
        due(cn(), "2026-11-26 13:00", 1, WorkHours),
        "2026-11-26 15:30"
    );
    // Over National Day, into the make-up Saturday.
    assert_eq!(
        due(cn(), "2026-09-30 17:00", 7, WorkHours),
        "2026-10-08 17:30"
    );
    assert_eq!(
        due(cn(), "2026-09-30 17:00", 8, WorkHours),
        "2026-10-09 09:30"
    );
}

#[test]
fn hours_and_minutes_are_plain_elapsed_time() {
    assert_eq!(
        due(cn(), "2026-09-30 17:00", 24, DurationUnit::Hours),
        "2026-10-01 17:00"
    );
    assert_eq!(
        due(cn(), "2026-09-30 23:50", 20, DurationUnit::Minutes),
        "2026-10-01 00:10"
    );
    let d = cn().add(bj("2026-12-31 20:00"), 48, DurationUnit::Hours);
    assert!(!d.provisional, "elapsed time needs no calendar data");
}

#[test]
fn office_minutes_between_counts_office_time_only() {
    let m = |a, b| cn().office_minutes_between(bj(a), bj(b));
    assert_eq!(m("2026-11-26 09:00", "2026-11-26 10:00"), 60);
    assert_eq!(m("2026-11-26 11:00", "2026-11-26 15:00"), 90);
    assert_eq!(m("2026-11-27 16:30", "2026-11-30 09:30"), 120);
    // A whole working day is 6.5 hours; the National Day week has none but the make-up day.
    assert_eq!(m("2026-09-30 17:30", "2026-10-10 17:30"), 390 * 3);
    assert_eq!(m("2026-11-26 10:00", "2026-11-26 09:00"), -60);
    assert_eq!(m("2026-11-28 10:00", "2026-11-29 16:00"), 0);
    let (_, missing) = cn().office_minutes_checked(bj("2026-12-31 09:00"), bj("2027-01-04 10:00"));
    assert_eq!(missing, vec![2027]);
}

#[test]
fn add_office_minutes_resumes_a_paused_clock() {
    // 90 minutes left, resumed on Friday at 17:00: 30 today, 60 on Monday.
    let d = cn().add_office_minutes(bj("2026-11-27 17:00"), 90);
    assert_eq!(local(d.at), "2026-11-30 09:30");
    assert_eq!(
        local(cn().add_office_minutes(bj("2026-11-27 17:00"), 0).at),
        "2026-11-27 17:00"
    );
}

#[test]
fn between_counts_working_days_after_a_up_to_b() {
    let b = |x, y| cn().between(date(x), date(y)).unwrap();
    assert_eq!(b("2026-09-30", "2026-10-08"), 1);
    assert_eq!(b("2026-10-09", "2026-10-10"), 1);
    assert_eq!(b("2026-11-26", "2026-11-26"), 0);
    assert_eq!(b("2026-11-27", "2026-11-30"), 1);
    assert_eq!(b("2026-11-30", "2026-11-27"), -1);
    assert_eq!(b("2005-12-30", "2006-01-04"), 2);
    assert_eq!(
        cn().between_checked(date("2026-09-30"), date("2026-10-08")),
        (1, vec![])
    );
    // 2026-12-31, then 2027-01-01 (Fri, no data) and 01-04: weekends only there.
    assert_eq!(
        cn().between_checked(date("2026-12-30"), date("2027-01-04")),
        (3, vec![2027])
    );
}

#[test]
fn weekdays_calendar_covers_every_year() {
    let w = calendars().get("weekdays").unwrap();
    assert!(w.covers(1999) && w.covers(2099));
    assert!(!w.day(date("2005-12-31")).unwrap().workday);
    assert!(w.day(date("2026-10-01")).unwrap().workday);
    let d = w.add(bj("2027-12-31 10:00"), 1, DurationUnit::WorkDays);
    assert_eq!(local(d.at), "2028-01-03 17:30");
    assert!(!d.provisional);
}

#[test]
fn calendars_compute_on_a_named_calendar_or_the_default() {
    let all = calendars();
    let from = bj("2026-09-30 15:00");
    assert_eq!(
        all.add(None, from, 1, DurationUnit::WorkDays),
        cn().add(from, 1, DurationUnit::WorkDays)
    );
    let w = all.add(Some("weekdays"), from, 1, DurationUnit::WorkDays);
    assert_eq!(local(w.at), "2026-10-01 17:30");
    // A calendar that is gone: weekends only, provisional, never lost.
    let gone = all.add(Some("gone"), from, 1, DurationUnit::WorkDays);
    assert_eq!(local(gone.at), "2026-10-01 17:30");
    assert!(gone.provisional);
    assert_eq!(gone.explanation.calendar, "gone");
    assert_eq!(
        all.office_minutes_between(None, bj("2026-11-27 16:30"), bj("2026-11-30 09:30")),
        120
    );
    let resumed = all.add_office_minutes(None, bj("2026-11-27 17:00"), 90);
    assert_eq!(local(resumed.at), "2026-11-30 09:30");
    let reminder = all.before(None, bj("2026-10-08 17:30"), 1, DurationUnit::WorkDays);
    assert_eq!(local(reminder.at), "2026-09-30 17:30");
}

#[test]
fn versions_follow_the_file_contents() {
    let versions = calendars().versions();
    assert_eq!(versions["cn_mainland"], cn().version());
    assert_eq!(cn().version().len(), 12);
    let tmp = std::env::temp_dir().join(format!("yimen-cal-version-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let write = |text: &str| std::fs::write(tmp.join("v.yaml"), text).unwrap();
    write("name: v\nall_years: true\n");
    let first = Calendars::load_dir(&tmp).unwrap().versions()["v"].clone();
    write("name: v\nall_years: true\n# edited\n");
    let second = Calendars::load_dir(&tmp).unwrap().versions()["v"].clone();
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_ne!(first, second);
}

#[test]
fn a_local_layer_adds_days_off_to_its_base() {
    let layer = calendars().get("cn_inner_mongolia_example").unwrap();
    assert!(layer.is_example());
    assert!(layer.version().starts_with(cn().version()));
    let info = layer.day(date("2026-07-10")).unwrap();
    assert_eq!((info.workday, info.kind), (false, DayKind::LocalDayOff));
    assert!(cn().day(date("2026-07-10")).unwrap().workday);
    // The base's holidays and coverage carry over.
    assert!(!layer.day(date("2026-10-01")).unwrap().workday);
    assert!(layer.day(date("2027-01-04")).is_err());
    let d = layer.add(bj("2026-07-09 10:00"), 1, DurationUnit::WorkDays);
    assert_eq!(local(d.at), "2026-07-13 17:30");
    assert_eq!(d.explanation.holidays_skipped[0].name, "示例地方休息日");
}

/// Each file of `engine/tests/calendar_check/` is checked; the snapshot is the report.
/// Adding a case is adding a file.
#[test]
fn check_reports_every_problem_with_its_line() {
    insta::glob!("../../tests/calendar_check", "*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("case file");
        let stem = path.file_stem().and_then(|s| s.to_str());
        let rendered: Vec<String> = check_text(&text, stem)
            .iter()
            .map(ToString::to_string)
            .collect();
        let report = if rendered.is_empty() {
            "no problems".to_string()
        } else {
            rendered.join("\n")
        };
        insta::assert_snapshot!(report);
    });
}

#[test]
fn check_reports_yaml_errors_with_their_line() {
    let cases = [
        (
            "name: x\nyears:\n  2027:\n    holidays: [\n",
            4,
            "unclosed bracket",
        ),
        ("name: x\nweekend: [Fri]\n", 2, "unknown field `weekend`"),
        (
            "name: x\nyears:\n  2027:\n    holidays:\n      - name: a\n        from: 2027-02-30\n",
            6,
            "`2027-02-30` is not a date",
        ),
        (
            "name: x\nyears:\n  2027:\n    holidays: []\n  2027:\n    holidays: []\n",
            5,
            "duplicate mapping key: 2027",
        ),
        (
            "name: x\nyears:\n  2027:\n    make_up_days:\n      - name: a\n",
            5,
            "missing field `date`",
        ),
    ];
    let empty = check_text("\n  \n", None);
    assert!(empty[0].message.contains("empty"), "{empty:?}");
    let layer = check_text("name: x\nextends: cn_mainland\nall_years: true\n", None);
    assert_eq!(layer[0].line, Some(2), "{layer:?}");
    assert!(
        layer[0].message.contains("`all_years` has no effect"),
        "{layer:?}"
    );
    for (yaml, line, message) in cases {
        let issues = check_text(yaml, None);
        assert_eq!(issues.len(), 1, "{yaml}");
        assert_eq!(issues[0].line, Some(line), "{:?}", issues[0]);
        assert!(issues[0].message.contains(message), "{:?}", issues[0]);
        assert!(!issues[0].help.is_empty());
    }
}

#[test]
fn a_one_day_holiday_may_leave_out_to_and_a_layer_may_set_its_own_hours() {
    let tmp = std::env::temp_dir().join(format!("yimen-cal-layer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(
        tmp.join("base.yaml"),
        "name: base\nyears:\n  2030:\n    holidays:\n      - name: 元旦\n        from: 2030-01-01\n",
    )
    .unwrap();
    std::fs::write(
        tmp.join("late.yaml"),
        "name: late\nextends: base\noffice_hours:\n  - \"09:00-18:00\"\n",
    )
    .unwrap();
    let cals = Calendars::load_dir(&tmp).unwrap();
    std::fs::remove_dir_all(&tmp).unwrap();
    let base = cals.get("base").unwrap();
    assert!(!base.day(date("2030-01-01")).unwrap().workday);
    assert!(base.day(date("2030-01-02")).unwrap().workday);
    let late = cals.get("late").unwrap();
    let d = late.add(bj("2029-12-31 10:00"), 1, DurationUnit::WorkDays);
    assert_eq!(local(d.at), "2030-01-02 18:00");
    assert_eq!(d.missing_years, Vec::<i32>::new());
    assert!(late.day(date("2031-01-01")).is_err());
}

#[test]
fn shipped_calendars_pass_the_check() {
    for name in ["cn_mainland", "weekdays", "cn_inner_mongolia_example"] {
        let text = std::fs::read_to_string(dir().join(format!("{name}.yaml"))).unwrap();
        assert_eq!(check_text(&text, Some(name)), vec![], "{name}");
    }
}

#[test]
fn loading_refuses_unknown_bases_and_cycles() {
    let tmp = std::env::temp_dir().join(format!("yimen-cal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("a.yaml"), "name: a\nextends: b\n").unwrap();
    let err = Calendars::load_dir(&tmp).unwrap_err();
    assert!(matches!(err, CalendarError::UnknownBase { .. }), "{err}");
    std::fs::write(tmp.join("b.yaml"), "name: b\nextends: a\n").unwrap();
    let err = Calendars::load_dir(&tmp).unwrap_err();
    assert!(matches!(err, CalendarError::Cycle(_)), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(matches!(
        Calendars::load_dir(&tmp),
        Err(CalendarError::Io { .. })
    ));
}

fn covered_start() -> impl Strategy<Value = DateTime<Utc>> {
    // Minute-aligned instants from 2004 to late 2026.
    (0i64..(22 * 365 + 300) * 24 * 60).prop_map(|m| bj("2004-01-01 00:00") + Duration::minutes(m))
}

proptest! {
    #[test]
    fn add_then_between_gives_back_n(from in covered_start(), n in 0i64..40) {
        let d = cn().add(from, n, DurationUnit::WorkDays);
        prop_assume!(!d.provisional);
        let start = from.with_timezone(&Tz::Asia__Shanghai).date_naive();
        let end = d.at.with_timezone(&Tz::Asia__Shanghai).date_naive();
        prop_assert!(cn().day(end).unwrap().workday);
        if n > 0 {
            prop_assert_eq!(cn().between(start, end).unwrap(), n);
        }
    }

    #[test]
    fn due_dates_grow_with_n(from in covered_start(), n in 0i64..30) {
        for unit in [DurationUnit::WorkDays, DurationUnit::Days, DurationUnit::WorkHours] {
            let a = cn().add(from, n, unit).at;
            let b = cn().add(from, n + 1, unit).at;
            prop_assert!(a <= b, "{:?} {} {} {}", unit, n, a, b);
            // Zero working days from a rest day and one working day both end on the next
            // working day; from then on every step adds a day or an hour.
            let strict = match unit {
                DurationUnit::WorkHours => true,
                DurationUnit::WorkDays => n > 0,
                _ => false,
            };
            if strict {
                prop_assert!(a < b);
            }
        }
    }

    #[test]
    fn between_adds_up(a in 0i64..8000, b in 0i64..8000, c in 0i64..8000) {
        let d = |n: i64| date("2004-01-01") + Duration::days(n);
        let (a, b, c) = (d(a), d(b), d(c));
        prop_assert_eq!(
            cn().between(a, b).unwrap() + cn().between(b, c).unwrap(),
            cn().between(a, c).unwrap()
        );
    }

    #[test]
    fn a_layer_only_removes_working_days(a in 0i64..8000, len in 0i64..400) {
        let layer = calendars().get("cn_inner_mongolia_example").unwrap();
        let a = date("2004-01-01") + Duration::days(a);
        let b = (a + Duration::days(len)).min(date("2026-12-31"));
        prop_assert!(layer.between(a, b).unwrap() <= cn().between(a, b).unwrap());
    }

    #[test]
    fn office_minutes_round_trip(from in covered_start(), minutes in 0i64..5000) {
        let d = cn().add_office_minutes(from, minutes);
        prop_assume!(!d.provisional);
        prop_assert_eq!(cn().office_minutes_between(from, d.at), minutes);
    }
}

#[test]
fn a_due_date_round_trips_through_json() {
    let d = cn().add(bj("2026-12-30 10:00"), 5, DurationUnit::WorkDays);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["provisional"], true);
    assert_eq!(json["explanation"]["rule"], "working_days");
    assert_eq!(json["explanation"]["amount"], 5);
    let back: Due = serde_json::from_value(json).unwrap();
    assert_eq!(back, d);
}

#[test]
fn reminders_before_a_due_date() {
    use DurationUnit::{Days, Hours, WorkDays, WorkHours};
    let before = |due: &str, n, unit| local(cn().before(bj(due), n, unit).at);
    // National Day lies between: one working day before 10-08 is 09-30.
    assert_eq!(before("2026-10-08 17:30", 1, WorkDays), "2026-09-30 17:30");
    // The make-up Saturday counts.
    assert_eq!(before("2026-10-12 17:30", 1, WorkDays), "2026-10-10 17:30");
    assert_eq!(before("2026-11-30 10:30", 1, WorkDays), "2026-11-27 10:30");
    assert_eq!(before("2026-11-26 17:30", 0, WorkDays), "2026-11-26 17:30");
    // Office time only, backwards.
    assert_eq!(before("2026-11-26 17:30", 3, WorkHours), "2026-11-26 14:30");
    assert_eq!(before("2026-11-26 17:30", 4, WorkHours), "2026-11-26 11:00");
    assert_eq!(before("2026-11-30 09:30", 2, WorkHours), "2026-11-27 16:30");
    assert_eq!(before("2026-10-08 09:30", 2, WorkHours), "2026-09-30 16:30");
    assert_eq!(before("2026-11-30 17:30", 2, Days), "2026-11-28 17:30");
    assert_eq!(before("2026-11-30 17:30", 2, Hours), "2026-11-30 15:30");
    let d = cn().before(bj("2026-10-08 17:30"), 1, WorkDays);
    assert_eq!(d.explanation.holidays_skipped.len(), 7);
    assert!(d.explanation.to_string().contains("到期前 1 个工作日"));
}

proptest! {
    #[test]
    fn before_undoes_office_time(due in covered_start(), hours in 0i64..60) {
        let start = cn().before(due, hours, DurationUnit::WorkHours).at;
        prop_assert_eq!(cn().office_minutes_between(start, due), hours * 60);
    }

    #[test]
    fn before_leaves_n_working_days(from in covered_start(), n in 0i64..30) {
        // A due date is the close of a working day.
        let due = cn().add(from, 0, DurationUnit::WorkDays).at;
        let d = cn().before(due, n, DurationUnit::WorkDays);
        prop_assume!(!d.provisional);
        let tz = Tz::Asia__Shanghai;
        let (a, b) = (d.at.with_timezone(&tz).date_naive(), due.with_timezone(&tz).date_naive());
        prop_assert_eq!(cn().between(a, b).unwrap(), n);
    }
}
