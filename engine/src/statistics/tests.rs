use super::*;
use serde_json::json;

struct L;
impl Labels for L {
    fn title(&self) -> String {
        "社会救助".into()
    }
    fn var(&self, name: &str) -> String {
        match name {
            "street" => "街道（镇）".into(),
            other => other.into(),
        }
    }
    fn value(&self, _var: &str, value: &Json) -> String {
        match value {
            Json::String(s) => s.clone(),
            Json::Bool(b) => if *b { "是" } else { "否" }.into(),
            other => other.to_string(),
        }
    }
    fn department(&self, _role: &str, key: &str) -> String {
        format!("部门{key}")
    }
}

fn spec() -> Spec {
    Spec::of(
        &json!({"statistics": {"p": {
            "by": ["street", "categories"],
            "department_role": "department",
            "events": [
                {"name": "accepted", "label": "受理", "task": "consent"},
                {"name": "refused", "label": "不予受理", "result": "not_accepted"},
                {"name": "approved", "label": "批准", "var": "decision", "is": "approved"},
                {"name": "referred", "label": "转介", "var": "referred", "is": true},
                {"name": "agreed", "label": "同意", "task": "consent", "outcome": "agree"},
            ],
            "stages": [{"label": "同意", "task": "consent", "outcome": "agree"}],
            "register": ["name", "street"],
        }}}),
        "p",
    )
    .expect("reads")
    .expect("declared")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

fn case(id: &str, created: &str, vars: Json, result: Option<&str>) -> Case {
    Case {
        id: id.into(),
        business_key: Some(format!("K-{id}")),
        status: if result.is_some() {
            "completed"
        } else {
            "running"
        }
        .into(),
        result: result.map(str::to_string),
        created_at: at(created),
        ended_at: result.map(|_| at("2026-09-30T10:00:00+08:00")),
        vars: vars
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        reached: Vec::new(),
        departments: Vec::new(),
    }
}

fn task(case: &str, node: &str, outcome: Option<&str>) -> Task {
    Task {
        instance_id: case.into(),
        node: node.into(),
        outcome: outcome.map(str::to_string),
        completed_at: outcome.map(|_| at("2026-08-03T09:30:00+08:00")),
    }
}

fn fixture() -> (Vec<Case>, Vec<Task>) {
    let mut cases = vec![
        case(
            "a",
            "2026-07-01T09:00:00+08:00",
            json!({"street": "东街", "categories": ["low", "medical"], "decision": "approved", "referred": true, "name": "张三"}),
            Some("approved"),
        ),
        case(
            "b",
            "2026-07-31T23:30:00+08:00",
            json!({"street": "东街", "categories": ["low"]}),
            None,
        ),
        case(
            "c",
            "2026-08-02T09:00:00+08:00",
            json!({"street": "西街", "categories": []}),
            Some("not_accepted"),
        ),
    ];
    // The conditions: (consent, any outcome), (consent, agree).
    assert_eq!(
        spec().task_conditions(),
        [
            ("consent".into(), None),
            ("consent".into(), Some("agree".into()))
        ]
    );
    cases[0].reached = vec![true, true];
    cases[1].reached = vec![true, false];
    cases[2].reached = vec![false, false];
    // A department counted once however many of its tasks the case had.
    cases[0].departments = vec!["civil".into(), "health".into(), "civil".into()];
    let tasks = vec![
        task("a", "consent", Some("agree")),
        task("a", "consent", Some("return")),
        task("b", "consent", None),
    ];
    (cases, tasks)
}

#[test]
fn every_dimension_counts_each_case_once_per_event() {
    let (cases, _) = fixture();
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("day");
    let t = tables(
        &spec(),
        &cases,
        &L,
        chrono_tz::Asia::Shanghai,
        (day("2026-07-01"), day("2026-09-30")),
    );
    assert_eq!(
        t.columns,
        [
            "登记",
            "受理",
            "不予受理",
            "批准",
            "转介",
            "同意",
            "在办",
            "已办结"
        ]
    );
    let total = &t.table("total").expect("total").rows[0];
    assert_eq!(total.counts, [3, 2, 1, 1, 1, 1, 1, 2]);
    let street = t.table("by_street").expect("street");
    assert_eq!(street.title, "按街道（镇）统计");
    assert_eq!(street.rows[0].label, "东街");
    assert_eq!(street.rows[0].counts, [2, 2, 0, 1, 1, 1, 1, 1]);
    assert_eq!(street.rows[1].label, "西街");
    // A list counts the case under each member; an empty one under 未填写, last.
    let cats = t.table("by_categories").expect("categories");
    let labels: Vec<&str> = cats.rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["low", "medical", NO_VALUE]);
    assert_eq!(cats.rows[0].counts[0], 2);
    // Two tasks of one department count the case once there.
    let dept = t.table("department").expect("departments");
    assert!(dept.overlapping);
    let rows: Vec<(&str, u64)> = dept
        .rows
        .iter()
        .map(|r| (r.label.as_str(), r.counts[0]))
        .collect();
    assert_eq!(rows, [("部门civil", 1), ("部门health", 1)]);
    // Months by the local day: 23:30 on 31 July in Shanghai is July.
    let months: Vec<(&str, u64)> = t
        .table("month")
        .expect("months")
        .rows
        .iter()
        .map(|r| (r.label.as_str(), r.counts[0]))
        .collect();
    assert_eq!(months, [("2026年07月", 2), ("2026年08月", 1)]);
    let csv = t.csv(t.table("by_street"));
    assert!(csv.starts_with("\u{feff}统计表,分组,登记,受理,"), "{csv}");
    assert!(
        csv.contains("按街道（镇）统计,东街,2,2,0,1,1,1,1,1\n"),
        "{csv}"
    );
}

struct Masked;
impl Shown for Masked {
    fn show(&self, var: &str, value: &Json) -> Json {
        if var == "name" {
            json!("张*")
        } else {
            value.clone()
        }
    }
}

#[test]
fn the_register_lists_fields_as_shown_and_the_first_completion_of_each_stage() {
    let (cases, tasks) = fixture();
    let r = register(
        &spec(),
        &cases,
        &tasks,
        &L,
        &|r| format!("结果{r}"),
        &Masked,
        chrono_tz::Asia::Shanghai,
    );
    assert_eq!(
        r.headers,
        [
            "序号",
            "案件编号",
            "登记时间",
            "状态",
            "办结情况",
            "name",
            "街道（镇）",
            "同意时间",
            "办结时间"
        ]
    );
    assert_eq!(r.rows.len(), 3);
    let a = &r.rows[0];
    assert_eq!(a[1], Cell::Text("K-a".into()));
    assert_eq!(a[4], Cell::Text("结果approved".into()));
    assert_eq!(a[5], Cell::Text("张*".into()));
    let local = |s: &str| {
        Cell::Time(chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("time"))
    };
    assert_eq!(a[7], local("2026-08-03 09:30"));
    assert_eq!(r.rows[1][7], Cell::Empty, "b's consent is not completed");
    assert_eq!(r.rows[1][3], Cell::Text("在办".into()));
}

#[test]
fn an_event_without_a_condition_is_refused_with_what_to_give() {
    let bad = json!({"statistics": {"p": {"events": [{"name": "x", "label": "X"}]}}});
    let e = Spec::of(&bad, "p").expect_err("refused");
    assert!(e.contains("give `task`, `result` or `var`"), "{e}");
    let unknown = json!({"statistics": {"p": {"bye": []}}});
    assert!(Spec::of(&unknown, "p").is_err());
    assert_eq!(Spec::of(&json!({}), "p"), Ok(None));
}
