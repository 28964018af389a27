//! Whole cases of `processes/social_assistance.flow`, one per routing path (§二(二)三、五,
//! §二(三)3-4 of the mechanism document), walked through the HTTP API by the tokens of the
//! people who do each step, on a simulated clock with the real working-day calendar
//! (`calendars/cn_mainland.yaml`) and the real limits (`processes/social_assistance.yaml`).
//!
//! The cases start on Monday 28 September 2026, 09:00 in Wuhai. The National Day holiday runs
//! from 1 to 7 October and Saturday 10 October is a make-up working day (调休), so the working
//! days after the start are 29, 30 September, 8, 9, 10, 12 October, ...

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::*;

/// One case's world: the engine on the simulated clock, its API, and a token per actor.
struct Office {
    api: TestApi,
    _world: World,
    window: String,
    leader: String,
    civil: String,
    health: String,
    education: String,
    leadership: String,
}

async fn office() -> Office {
    office_on(&Db::memory()).await
}

async fn office_on(db: &Db) -> Office {
    let w = World::open(db, MONDAY, service_options()).await;
    deploy(&w.engine, "social_assistance", &|_, text| text).await;
    let api = w.api().await;
    Office {
        window: api.token("clerk1", &["window"], &["xinhua"]).await,
        leader: api.token("leader1", &["street_leader"], &["xinhua"]).await,
        civil: api
            .token("civil1", &["department:civil_affairs"], &[])
            .await,
        health: api.token("health1", &["department:health"], &[]).await,
        education: api
            .token("education1", &["department:education"], &[])
            .await,
        leadership: api.token("group1", &["leadership"], &[]).await,
        api,
        _world: w,
    }
}

impl Fixture for Office {
    async fn open(db: &Db) -> Office {
        office_on(db).await
    }
}

/// A time as Wuhai reads it, to the minute.
fn local(at: &Value) -> String {
    let at: chrono::DateTime<chrono::Utc> = at.as_str().expect("a time").parse().expect("RFC 3339");
    at.with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// The due times of a case's pending timers (escalation rungs, waits), local, sorted.
fn dues(view: &Value) -> Vec<String> {
    let mut dues: Vec<String> = view["timers"]
        .as_array()
        .expect("timers")
        .iter()
        .map(|t| local(&t["due_at"]))
        .collect();
    dues.sort();
    dues
}

impl Office {
    async fn start(&self, categories: &[&str]) -> Value {
        let answer = self
            .api
            .post(
                "/api/v1/instances",
                &self.window,
                json!({"process": "social_assistance", "variables": registration(categories)}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        answer.body
    }

    /// Claims task `node` of `case` from `queue` with `token` (its worker named like the
    /// token, `who`) and completes it; other tasks claimed on the way are released.
    async fn work(
        &self,
        (token, who): (&str, &str),
        queue: &str,
        case: &str,
        node: &str,
        outcome: &str,
        vars: Value,
    ) -> Answer {
        let claimed = self
            .api
            .post(
                "/api/v1/tasks/claim",
                token,
                json!({"queues": [queue], "worker": who, "max": 50, "lease_seconds": 600}),
            )
            .await;
        assert_eq!(claimed.status, StatusCode::OK, "{claimed:?}");
        let tasks = claimed.body["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut mine = None;
        for task in tasks {
            if mine.is_none() && task["instance_id"] == case && task["node"] == node {
                mine = Some(task);
            } else {
                let id = task["id"].as_str().expect("id");
                let released = self
                    .api
                    .post(
                        &format!("/api/v1/tasks/{id}/release"),
                        token,
                        json!({"lock_token": task["lock_token"]}),
                    )
                    .await;
                assert_eq!(released.status, StatusCode::OK, "{released:?}");
            }
        }
        let task = mine.unwrap_or_else(|| panic!("{who} finds task {node} of {case} in {queue}"));
        let id = task["id"].as_str().expect("id");
        let answer = self
            .api
            .post(
                &format!("/api/v1/tasks/{id}/complete"),
                token,
                json!({"lock_token": task["lock_token"], "outcome": outcome, "variables": vars}),
            )
            .await;
        if answer.status != StatusCode::OK {
            // Refused: the task is given back for the next attempt.
            self.api
                .post(
                    &format!("/api/v1/tasks/{id}/release"),
                    token,
                    json!({"lock_token": task["lock_token"]}),
                )
                .await;
        }
        answer
    }

    /// [`Office::work`], which must succeed; the case afterwards.
    async fn done(
        &self,
        actor: (&str, &str),
        queue: &str,
        case: &str,
        node: &str,
        outcome: &str,
        vars: Value,
    ) -> Value {
        let answer = self.work(actor, queue, case, node, outcome, vars).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{node}/{outcome}: {answer:?}"
        );
        answer.body
    }

    async fn case(&self, id: &str) -> Value {
        let answer = self
            .api
            .get(&format!("/api/v1/instances/{id}"), &self.api.admin)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer.body
    }

    /// Moves the simulated clock (every timer due on the way fires).
    async fn advance_to(&self, to: &str) {
        let answer = self
            .api
            .post("/api/v1/clock/advance", &self.api.admin, json!({"to": to}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }

    fn window(&self) -> (&str, &str) {
        (&self.window, "clerk1")
    }

    /// Review (accepted with `main_category`), the street leader's consent and forwarding;
    /// returns the case after forwarding.
    async fn accept_and_forward(&self, case: &str, main: &str, clear: bool) -> Value {
        let reviewed = self
            .done(
                self.window(),
                "window",
                case,
                "review",
                "complete",
                json!({"main_category": main}),
            )
            .await;
        // A4 §2: forwarded within 1 working day of review: by the close of Tuesday 29 September.
        assert!(
            dues(&reviewed).contains(&"2026-09-29 17:30".to_string()),
            "{:?}",
            dues(&reviewed)
        );
        self.done(
            (&self.leader, "leader1"),
            "street_leader",
            case,
            "street_consent",
            "agree",
            json!({}),
        )
        .await;
        self.done(
            self.window(),
            "window",
            case,
            "forward",
            "forwarded",
            json!({"department_clear": clear}),
        )
        .await
    }

    /// The window tells the applicant (A4 §4), the approved case is published (§二(二)六) for
    /// 7 days and filed (A4 §6). The decision came on `decided` (local date): the feedback is
    /// due `feedback_due`, the publicity ends `publicity_end`.
    async fn feed_back_publish_and_file(
        &self,
        case: &str,
        feedback_due: &str,
        publicity_end: &str,
    ) -> Value {
        let tasks = self.case(case).await["tasks"].clone();
        let feedback = tasks
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["node"] == "feedback")
            .expect("the feedback task")
            .clone();
        assert_eq!(local(&feedback["due_at"]), feedback_due);
        let informed = self
            .done(
                self.window(),
                "window",
                case,
                "feedback",
                "informed",
                json!({}),
            )
            .await;
        if informed["active_nodes"] == json!(["publicity_period"]) {
            assert!(
                dues(&informed).contains(&publicity_end.to_string()),
                "{:?}",
                dues(&informed)
            );
            let (day, time) = publicity_end.split_once(' ').expect("date and time");
            self.advance_to(&format!("{day}T{time}:00+08:00")).await;
        }
        let filed = self
            .done(self.window(), "window", case, "archive", "filed", json!({}))
            .await;
        assert_eq!(filed["status"], "completed", "{filed}");
        filed
    }
}

/// Department clear (§二(二)三): the department of the category decides. Minimum living
/// allowance: 30 working days from acceptance, 45 in special cases. Asking for more time
/// needs a reason, not a decision (fields are required per outcome).
#[tokio::test]
async fn a_clear_department_decides_and_may_extend_without_deciding() {
    let o = office().await;
    let case = o.start(&["minimum_living"]).await;
    let id = case["id"].as_str().expect("id");
    let forwarded = o.accept_and_forward(id, "minimum_living", true).await;
    assert_eq!(forwarded["active_nodes"], json!(["department_handle"]));
    // 30 working days after Monday 28 September: 29, 30 September, 8, 9, 10 (调休), 12 ...
    // October: 13 November 17:30, warned 3 working days before (10 November). The promised
    // limit, 45 working days, runs to 4 December.
    let due = dues(&forwarded);
    for at in ["2026-11-10 17:30", "2026-11-13 17:30", "2026-12-04 17:30"] {
        assert!(due.contains(&at.to_string()), "{at} in {due:?}");
    }
    let task = &forwarded["tasks"][0];
    assert_eq!(task["queue"], "department:civil_affairs");

    let civil = (o.civil.as_str(), "civil1");
    // No decision yet: the special extension (15 working days) is granted with its reason.
    let extended = o
        .work(
            civil,
            "department:civil_affairs",
            id,
            "department_handle",
            "need_more_time",
            json!({"extension_reason": "需入户核查家庭财产状况"}),
        )
        .await;
    assert_eq!(extended.status, StatusCode::OK, "{extended:?}");
    let extended = extended.body;
    assert_eq!(extended["active_nodes"], json!(["department_handle"]));
    let due = dues(&extended);
    assert!(
        due.contains(&"2026-12-04 17:30".to_string()) && !due.contains(&"2026-11-13 17:30".into()),
        "13 November + 15 working days = 4 December: {due:?}"
    );
    // Deciding still needs the decision.
    let undecided = o
        .work(
            civil,
            "department:civil_affairs",
            id,
            "department_handle",
            "decided",
            json!({"amount": "850.00"}),
        )
        .await;
    assert_eq!(undecided.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        undecided.body.to_string().contains("decision"),
        "{undecided:?}"
    );

    // Decided on Friday 9 October: the window tells the applicant within 2 working days,
    // Saturday 10 October (调休) and Monday 12 October.
    o.advance_to("2026-10-09T10:00:00+08:00").await;
    o.done(
        civil,
        "department:civil_affairs",
        id,
        "department_handle",
        "decided",
        json!({"decision": "approved", "amount": "850.00"}),
    )
    .await;
    // Publicity from 9 October for 7 days: Friday 16 October, a working day.
    let filed = o
        .feed_back_publish_and_file(id, "2026-10-12 17:30", "2026-10-16 17:30")
        .await;
    assert_eq!(filed["result"], "approved");
}

/// Department unclear (§二(二)三, §二(三)4): civil affairs receives the case and convenes the
/// departments concerned, which give their opinions in parallel; civil affairs decides.
#[tokio::test]
async fn an_unclear_case_goes_to_civil_affairs_which_convenes_the_departments() {
    let o = office().await;
    let case = o.start(&["other"]).await;
    let id = case["id"].as_str().expect("id");
    let forwarded = o.accept_and_forward(id, "other", false).await;
    assert_eq!(forwarded["active_nodes"], json!(["civil_convene"]));
    // "Other": 20 working days (a local value), to Friday 30 October.
    assert!(dues(&forwarded).contains(&"2026-10-30 17:30".to_string()));
    let convened = o
        .done(
            (&o.civil, "civil1"),
            "department:civil_affairs",
            id,
            "civil_convene",
            "convene",
            json!({"main_category": "other", "convened": ["health", "education"]}),
        )
        .await;
    let mut queues: Vec<&str> = convened["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["queue"].as_str().expect("queue"))
        .collect();
    queues.sort();
    assert_eq!(queues, ["department:education", "department:health"]);
    o.done(
        (&o.health, "health1"),
        "department:health",
        id,
        "consult",
        "opinion",
        json!({}),
    )
    .await;
    let waiting = o.case(id).await;
    assert_eq!(waiting["active_nodes"], json!(["consult"]), "{waiting}");
    o.done(
        (&o.education, "education1"),
        "department:education",
        id,
        "consult",
        "opinion",
        json!({}),
    )
    .await;
    o.done(
        (&o.civil, "civil1"),
        "department:civil_affairs",
        id,
        "civil_decide",
        "decided",
        json!({"decision": "rejected", "decision_reason": "家庭收入高于标准"}),
    )
    .await;
    // Decided on Monday 28 September: feedback due Wednesday 30 September. A refusal is not
    // published; it gets a notice (A3 §2).
    let filed = o
        .feed_back_publish_and_file(id, "2026-09-30 17:30", "")
        .await;
    assert_eq!(filed["result"], "rejected");
    let docs = o
        .api
        .get(&format!("/api/v1/instances/{id}/documents"), &o.api.admin)
        .await;
    assert!(
        docs.body.to_string().contains("rejection_notice"),
        "{docs:?}"
    );
}

/// Special cases go to the district leadership group (§二(三)4), whose token decides them.
#[tokio::test]
async fn a_special_case_is_decided_by_the_leadership_group() {
    let o = office().await;
    let case = o.start(&["destitute"]).await;
    let id = case["id"].as_str().expect("id");
    o.accept_and_forward(id, "destitute", false).await;
    let referred = o
        .done(
            (&o.civil, "civil1"),
            "department:civil_affairs",
            id,
            "civil_convene",
            "special",
            json!({"main_category": "destitute"}),
        )
        .await;
    assert_eq!(referred["active_nodes"], json!(["leadership_decide"]));
    // Destitute support: 30 working days, to 13 November.
    assert!(dues(&referred).contains(&"2026-11-13 17:30".to_string()));
    o.advance_to("2026-10-08T09:00:00+08:00").await;
    // The civil-affairs bureau cannot decide it in the group's place.
    let claimed = o
        .api
        .post(
            "/api/v1/tasks/claim",
            &o.civil,
            json!({"queues": ["leadership"], "worker": "civil1"}),
        )
        .await;
    assert_eq!(claimed.status, StatusCode::FORBIDDEN, "{claimed:?}");
    o.done(
        (&o.leadership, "group1"),
        "leadership",
        id,
        "leadership_decide",
        "decided",
        json!({"decision": "approved", "amount": "600.00"}),
    )
    .await;
    // Decided on Thursday 8 October: feedback by Saturday 10 October (调休); publicity 7 days
    // to Thursday 15 October.
    let filed = o
        .feed_back_publish_and_file(id, "2026-10-10 17:30", "2026-10-15 17:30")
        .await;
    assert_eq!(filed["result"], "approved");
}

/// Several kinds of aid (§二(二)五, §二(三)3): the main request's department leads, notifies
/// the co-handling departments, all handle in parallel and the lead decides.
#[tokio::test]
async fn several_categories_are_led_by_the_main_requests_department_with_co_handlers() {
    let o = office().await;
    let case = o.start(&["medical", "minimum_living"]).await;
    let id = case["id"].as_str().expect("id");
    let forwarded = o.accept_and_forward(id, "medical", true).await;
    assert_eq!(forwarded["active_nodes"], json!(["lead_notify"]));
    assert_eq!(forwarded["tasks"][0]["queue"], "department:health");
    // Medical aid: 20 working days (a local value), to 30 October.
    assert!(dues(&forwarded).contains(&"2026-10-30 17:30".to_string()));
    let health = (o.health.as_str(), "health1");
    let notified = o
        .done(
            health,
            "department:health",
            id,
            "lead_notify",
            "notified",
            json!({"co_departments": ["civil_affairs"]}),
        )
        .await;
    let mut active: Vec<&str> = notified["active_nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n.as_str().expect("node"))
        .collect();
    active.sort();
    assert_eq!(active, ["co_handle", "lead_handle"]);
    o.done(
        (&o.civil, "civil1"),
        "department:civil_affairs",
        id,
        "co_handle",
        "done",
        json!({}),
    )
    .await;
    let joined = o
        .done(
            health,
            "department:health",
            id,
            "lead_handle",
            "done",
            json!({}),
        )
        .await;
    assert_eq!(joined["active_nodes"], json!(["lead_decide"]));
    o.advance_to("2026-09-30T16:00:00+08:00").await;
    o.done(
        health,
        "department:health",
        id,
        "lead_decide",
        "decided",
        json!({"decision": "approved", "amount": "1200.00"}),
    )
    .await;
    // Decided on Wednesday 30 September: the next two working days are 8 and 9 October. The
    // publicity's 7 days end on 7 October, a holiday: the period runs to 8 October.
    let filed = o
        .feed_back_publish_and_file(id, "2026-10-09 17:30", "2026-10-08 17:30")
        .await;
    assert_eq!(filed["result"], "approved");
}

/// §二(二)五: an application that passes acceptance review and meets temporary-aid conditions
/// is referred at review: the linked case starts at once and runs in parallel, in the one
/// civil-affairs queue; flagging it again later starts no second case; each case shows the
/// link.
#[tokio::test]
async fn temporary_aid_is_referred_at_review_once_and_runs_in_parallel() {
    let o = office().await;
    let case = o.start(&["minimum_living"]).await;
    let id = case["id"].as_str().expect("id");
    let reviewed = o
        .done(
            o.window(),
            "window",
            id,
            "review",
            "complete",
            json!({"main_category": "minimum_living", "temp_aid_eligible": true}),
        )
        .await;
    assert_eq!(reviewed["active_nodes"], json!(["street_consent"]));
    let children = reviewed["children"].as_array().expect("children").clone();
    assert_eq!(children.len(), 1, "{reviewed}");
    assert_eq!(children[0]["process"], "temporary_assistance");
    assert_eq!(children[0]["node"], "temporary_at_review");
    let child_id = children[0]["instance_id"].as_str().expect("child id");
    let child = o.case(child_id).await;
    assert_eq!(child["parent_id"], id);
    assert_eq!(child["parent_node"], "temporary_at_review");
    assert_eq!(child["status"], "running");
    assert_eq!(child["vars"]["id_number"], "150302********1231");
    // One department, one queue: the temporary-aid review is civil affairs' work like the
    // rest; the normal procedure's limit is 15 working days, to 23 October.
    let task = &child["tasks"][0];
    assert_eq!(
        (task["node"].as_str(), task["queue"].as_str()),
        (Some("review"), Some("department:civil_affairs"))
    );
    assert_eq!(local(&task["due_at"]), "2026-10-23 17:30");

    // The main case goes on meanwhile; the department flags the conditions again.
    o.done(
        (&o.leader, "leader1"),
        "street_leader",
        id,
        "street_consent",
        "agree",
        json!({}),
    )
    .await;
    o.done(
        o.window(),
        "window",
        id,
        "forward",
        "forwarded",
        json!({"department_clear": true}),
    )
    .await;
    let civil = (o.civil.as_str(), "civil1");
    let decided = o
        .done(
            civil,
            "department:civil_affairs",
            id,
            "department_handle",
            "decided",
            json!({"decision": "rejected", "temp_aid_eligible": true}),
        )
        .await;
    assert_eq!(
        decided["children"],
        json!(children),
        "no second linked case"
    );
    let started = o
        .api
        .history(id)
        .await
        .iter()
        .filter(|e| e["kind"] == "child_started")
        .count();
    assert_eq!(started, 1);

    // The linked case is decided on its own.
    let child_done = o
        .done(
            civil,
            "department:civil_affairs",
            child_id,
            "review",
            "decided",
            json!({"decision": "approved", "amount": "500.00"}),
        )
        .await;
    assert_eq!(child_done["active_nodes"], json!(["inform"]));
    let filed = o
        .feed_back_publish_and_file(id, "2026-09-30 17:30", "")
        .await;
    assert_eq!(filed["result"], "rejected");
    assert_eq!(filed["children"], json!(children));
}

/// A department that finds the conditions met while handling refers the applicant at once,
/// with its decision, when the window did not at review.
#[tokio::test]
async fn a_department_refers_temporary_aid_with_its_decision() {
    let o = office().await;
    let case = o.start(&["housing"]).await;
    let id = case["id"].as_str().expect("id");
    let forwarded = o.accept_and_forward(id, "housing", true).await;
    assert_eq!(forwarded["children"], json!([]));
    assert_eq!(forwarded["tasks"][0]["queue"], "department:housing");
    let housing = o.api.token("housing1", &["department:housing"], &[]).await;
    let decided = o
        .done(
            (&housing, "housing1"),
            "department:housing",
            id,
            "department_handle",
            "decided",
            json!({"decision": "approved", "amount": "300.00", "temp_aid_eligible": true}),
        )
        .await;
    assert_eq!(decided["active_nodes"], json!(["feedback"]));
    let children = decided["children"].as_array().expect("children");
    assert_eq!(children.len(), 1, "{decided}");
    assert_eq!(children[0]["node"], "temporary_at_decision");
    let child = o
        .case(children[0]["instance_id"].as_str().expect("child"))
        .await;
    assert_eq!(child["parent_id"], id);
    assert_eq!(child["tasks"][0]["queue"], "department:civil_affairs");
}

/// §二(二)五 while a department handles (seed: "对受理审查的非临时救助申请，符合临时救助条件
/// 的，要告知并帮助申请临时救助"): a department that finds the conditions met flags it without
/// deciding, here while asking for more time, and the linked case starts at once, visible from
/// both cases; its later decision starts no second one.
async fn a_department_flags_temporary_aid_while_handling_without_deciding(o: Office) {
    let case = o.start(&["minimum_living"]).await;
    let id = case["id"].as_str().expect("id");
    o.accept_and_forward(id, "minimum_living", true).await;
    let civil = (o.civil.as_str(), "civil1");
    o.advance_to("2026-10-08T10:00:00+08:00").await;
    let extended = o
        .done(
            civil,
            "department:civil_affairs",
            id,
            "department_handle",
            "need_more_time",
            json!({"extension_reason": "需入户核查家庭财产状况", "temp_aid_eligible": true}),
        )
        .await;
    assert_eq!(extended["active_nodes"], json!(["department_handle"]));
    assert!(extended["vars"].get("decision").is_none_or(Value::is_null));
    let children = extended["children"].as_array().expect("children").clone();
    assert_eq!(children.len(), 1, "{extended}");
    assert_eq!(children[0]["process"], "temporary_assistance");
    assert_eq!(children[0]["node"], "temporary_while_handling");
    let child_id = children[0]["instance_id"].as_str().expect("child id");
    let child = o.case(child_id).await;
    assert_eq!(
        (child["parent_id"].as_str(), child["parent_node"].as_str()),
        (Some(id), Some("temporary_while_handling"))
    );
    assert_eq!(child["status"], "running");
    assert_eq!(child["tasks"][0]["queue"], "department:civil_affairs");
    let flagged: Vec<Value> = o
        .api
        .history(id)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "child_started")
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(local(&flagged[0]["at"]), "2026-10-08 10:00", "at once");

    // Flagged again on its own, then decided with the flag: no second linked case.
    let again = o
        .done(
            civil,
            "department:civil_affairs",
            id,
            "department_handle",
            "refer_temporary",
            json!({}),
        )
        .await;
    assert_eq!(again["active_nodes"], json!(["department_handle"]));
    let decided = o
        .done(
            civil,
            "department:civil_affairs",
            id,
            "department_handle",
            "decided",
            json!({"decision": "approved", "amount": "850.00", "temp_aid_eligible": true}),
        )
        .await;
    assert_eq!(decided["active_nodes"], json!(["feedback"]));
    assert_eq!(
        decided["children"],
        json!(children),
        "no second linked case"
    );
    let started = o
        .api
        .history(id)
        .await
        .iter()
        .filter(|e| e["kind"] == "child_started")
        .count();
    assert_eq!(started, 1);
}

/// The department flags it on its own (`refer_temporary`), neither deciding nor asking for
/// time: the linked case starts at once and the department goes on handling.
async fn a_department_flags_temporary_aid_on_its_own_and_goes_on(o: Office) {
    let case = o.start(&["housing"]).await;
    let id = case["id"].as_str().expect("id");
    o.accept_and_forward(id, "housing", true).await;
    let housing = o.api.token("housing1", &["department:housing"], &[]).await;
    let flagged = o
        .done(
            (&housing, "housing1"),
            "department:housing",
            id,
            "department_handle",
            "refer_temporary",
            json!({}),
        )
        .await;
    assert_eq!(flagged["active_nodes"], json!(["department_handle"]));
    assert_eq!(flagged["vars"]["temp_aid_eligible"], true);
    let children = flagged["children"].as_array().expect("children");
    assert_eq!(children.len(), 1, "{flagged}");
    assert_eq!(flagged["tasks"][0]["queue"], "department:housing");
}

/// Several kinds of aid: the lead department flags it while handling, in parallel with the
/// co-handlers, and a co-handler's flag after that starts nothing more.
async fn the_lead_department_flags_temporary_aid_while_co_handlers_work(o: Office) {
    let case = o.start(&["medical", "education"]).await;
    let id = case["id"].as_str().expect("id");
    o.accept_and_forward(id, "medical", true).await;
    let health = (o.health.as_str(), "health1");
    let education = (o.education.as_str(), "education1");
    o.done(
        health,
        "department:health",
        id,
        "lead_notify",
        "notified",
        json!({"co_departments": ["education"]}),
    )
    .await;
    let flagged = o
        .done(
            health,
            "department:health",
            id,
            "lead_handle",
            "refer_temporary",
            json!({}),
        )
        .await;
    let mut active: Vec<String> = flagged["active_nodes"]
        .as_array()
        .expect("active nodes")
        .iter()
        .map(|n| n.as_str().unwrap_or_default().to_string())
        .collect();
    active.sort();
    assert_eq!(active, ["co_handle", "lead_handle"]);
    let children = flagged["children"].as_array().expect("children").clone();
    assert_eq!(children.len(), 1, "{flagged}");
    assert_eq!(children[0]["node"], "temporary_while_leading");
    let co_done = o
        .done(
            education,
            "department:education",
            id,
            "co_handle",
            "done",
            json!({"temp_aid_eligible": true}),
        )
        .await;
    assert_eq!(
        co_done["children"],
        json!(children),
        "no second linked case"
    );
}

on_both_databases!(
    a_department_flags_temporary_aid_while_handling_without_deciding,
    a_department_flags_temporary_aid_on_its_own_and_goes_on,
    the_lead_department_flags_temporary_aid_while_co_handlers_work,
);

/// A matter that is not social assistance (A2 §3) carries no aid category: the window gives
/// the referral only, and a category sent with it is refused, so it is never counted under one.
#[tokio::test]
async fn a_matter_that_is_not_social_assistance_carries_no_aid_category() {
    let o = office().await;
    let case = o.start(&["other"]).await;
    let id = case["id"].as_str().expect("id");
    let with_category = o
        .work(
            o.window(),
            "window",
            id,
            "review",
            "not_assistance",
            json!({"referral": "区残联", "main_category": "other"}),
        )
        .await;
    assert_eq!(with_category.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        with_category.body.to_string().contains("main_category"),
        "{with_category:?}"
    );
    let refused = o
        .done(
            o.window(),
            "window",
            id,
            "review",
            "not_assistance",
            json!({"referral": "区残联"}),
        )
        .await;
    assert_eq!(refused["result"], "not_accepted");
    assert!(
        refused["vars"]
            .get("main_category")
            .is_none_or(Value::is_null),
        "{refused}"
    );
}

/// One department, one queue: temporary aid applied for on its own at the window is civil
/// affairs' work in the same queue as its other cases (`department:civil_affairs`), so a
/// civil-affairs token sees it and statistics per department count it there.
#[tokio::test]
async fn temporary_aid_on_its_own_is_in_the_civil_affairs_queue() {
    let o = office().await;
    let started = o
        .api
        .post(
            "/api/v1/instances",
            &o.window,
            json!({"process": "temporary_assistance", "variables": {
                "applicant_name": "王五",
                "id_number": "150303198503150049",
                "phone": "13912345678",
                "street": "xinhua",
                "reason": "火灾致基本生活暂时困难",
            }}),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    let id = started.body["id"].as_str().expect("id");
    let decided = o
        .done(
            (&o.civil, "civil1"),
            "department:civil_affairs",
            id,
            "review",
            "decided",
            json!({"decision": "approved", "amount": "2000.00"}),
        )
        .await;
    assert_eq!(decided["active_nodes"], json!(["inform"]));
    assert_eq!(decided["tasks"][0]["queue"], "window");
}
