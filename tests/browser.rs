//! The workbench in a real browser (Chromium through chromedriver, WebDriver): whole cases of
//! the social-assistance process walked through the pages alone, each role signed in as a
//! person of its own, as `yimen user add` makes them.
//!
//! - `a_whole_case_from_registration_to_archive`: the window clerk signs in with the keyboard
//!   alone, sets a password, registers a case with a wrong ID number and corrects it, claims
//!   the review with the keyboard, finds materials missing (urgent: accepted at once, the
//!   supplement notice issued); the street leader consents to forwarding; the clerk forwards;
//!   the department decides (refused); the clerk tells the applicant and archives; the case
//!   shows as ended with its notices.
//! - `a_convened_case`: the department is unclear; civil affairs convenes two departments,
//!   each gives its opinion signed in as itself, civil affairs decides (approved), the clerk
//!   tells the applicant, the publicity period passes, the clerk archives.
//! - `a_leadership_decision`: civil affairs sends a special case to the leadership group; the
//!   case runs late until it is escalated to the group, whose member sees the escalation on
//!   their work list, marks it read, and decides the case on the same task pages.
//!
//! - `the_statistics_page`: cases registered in two streets (through the API), some reviewed;
//!   a supervision officer reads the statistics of the quarter (tables, charts drawn), the
//!   scheduled report's files listed; a window clerk of one street reads that street's only.
//!
//! Every page visited is checked with axe-core (`tests/assets/axe-4.14.1.min.js`, vendored:
//! MPL-2.0, `tests/assets/README.md`): no `serious` or `critical` violation. A screenshot of
//! each page is kept as `target/tmp/browser/<walk>-NN-<page>.png` (CI leaves them behind).
//!
//! The server runs on a simulated clock (`--clock`), moved forward through the API where the
//! walk waits for time to pass (a publicity period, a deadline missed); nothing else is done
//! outside the pages. On SQLite, or on PostgreSQL (a schema of its own) when
//! `YIMEN_TEST_POSTGRES` is set.
//!
//! Runs when `YIMEN_TEST_BROWSER` is set (`.ci/run` installs Chromium and sets it); otherwise
//! it prints a "skipped" line. Chromium is `/usr/bin/chromium` unless `YIMEN_CHROMIUM` says.
#![cfg(unix)]

mod support;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{Server, serve_with, yimen};

/// axe-core, injected into each page to check it.
const AXE: &str = include_str!("assets/axe-4.14.1.min.js");
/// Monday 2 November 2026, 09:00 in Beijing: where the simulated clock starts.
const START: &str = "2026-11-02T09:00:00+08:00";
const OWN_PASSWORD: &str = "a long password of mine";
const STREET: &str = "滨河街道";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs (apt-get install chromium-driver)");
    let driver = Driver(driver);
    let chromium = std::env::var("YIMEN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--window-size=1280,1100", "--lang=zh-CN"],
        }),
    );
    let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
    builder.capabilities(caps);
    let url = format!("http://127.0.0.1:{port}");
    // chromedriver takes a moment to listen.
    for attempt in 0.. {
        match builder.connect(&url).await {
            Ok(client) => return (driver, client),
            Err(e) if attempt < 50 => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no WebDriver session at {url}: {e}"),
        }
    }
    unreachable!()
}

/// The database of a walk's server: a SQLite file in its folder, or a schema of its own on
/// the PostgreSQL server `YIMEN_TEST_POSTGRES` names (dropped when the walk ends well).
struct Database {
    url: String,
    postgres: Option<(String, String)>,
}

impl Database {
    async fn open(walk: &str, dir: &std::path::Path) -> Database {
        let Some(server) = std::env::var("YIMEN_TEST_POSTGRES")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            return Database {
                url: dir.join("walk.db").to_string_lossy().into_owned(),
                postgres: None,
            };
        };
        let schema = format!("browser_{walk}_{}", std::process::id());
        let pool = sqlx::PgPool::connect(&server)
            .await
            .expect("postgres reachable");
        for sql in [
            format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            format!("CREATE SCHEMA {schema}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .expect("schema created");
        }
        pool.close().await;
        let sep = if server.contains('?') { '&' } else { '?' };
        Database {
            url: format!("{server}{sep}options=-c%20search_path%3D{schema}"),
            postgres: Some((server, schema)),
        }
    }

    async fn finish(self) {
        if let Some((server, schema)) = &self.postgres {
            yimen_engine::testing::drop_schema(server, schema).await;
        }
    }
}

/// A person of the walk: their login and the one-time password `yimen user add` printed,
/// until they have set their own.
struct Person {
    login: &'static str,
    name: &'static str,
    once: String,
    has_own: Cell<bool>,
}

/// One walk: its server, its browser, its screenshots and what axe found.
struct Walk {
    name: &'static str,
    server: Server,
    database: Option<Database>,
    base: String,
    client: Client,
    _driver: Driver,
    shots: PathBuf,
    page_no: Cell<u32>,
    violations: RefCell<Vec<String>>,
}

impl Walk {
    /// A server on a simulated clock and a browser; `None` (a skip line printed) without
    /// `YIMEN_TEST_BROWSER`.
    async fn start(name: &'static str) -> Option<Walk> {
        Walk::start_with(name, &[]).await
    }

    /// [`Walk::start`] with more arguments for `yimen serve` (`--reports FILE`).
    async fn start_with(name: &'static str, more: &[&str]) -> Option<Walk> {
        if std::env::var_os("YIMEN_TEST_BROWSER").is_none() {
            println!(
                "skipped: set YIMEN_TEST_BROWSER (with chromium and chromium-driver installed) to run the browser walk {name}"
            );
            return None;
        }
        let dir = std::env::temp_dir().join(format!("yimen-browser-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        for old in std::fs::read_dir(&shots).expect("screenshot dir").flatten() {
            if old
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
            {
                let _ = std::fs::remove_file(old.path());
            }
        }
        let database = Database::open(name, &dir).await;
        let mut args = vec!["--clock", START, "--calendars-check", "0"];
        args.extend(more);
        let server = serve_with(&database.url, &dir.join("serve.log"), &args);
        let base = format!("http://{}", server.address);
        let (driver, client) = browser().await;
        Some(Walk {
            name,
            server,
            database: Some(database),
            base,
            client,
            _driver: driver,
            shots,
            page_no: Cell::new(0),
            violations: RefCell::new(Vec::new()),
        })
    }

    /// An account, as an administrator makes it.
    fn person(
        &self,
        login: &'static str,
        name: &'static str,
        roles: &str,
        units: Option<&str>,
    ) -> Person {
        let mut args = vec![
            "user", "add", "--login", login, "--name", name, "--roles", roles,
        ];
        if let Some(units) = units {
            args.extend(["--units", units]);
        }
        let (once, _) = yimen(&self.server, &args);
        Person {
            login,
            name,
            once: once.trim().to_string(),
            has_own: Cell::new(false),
        }
    }

    /// Time passes (the simulated clock moved by the admin, as `POST /api/v1/clock/advance`):
    /// timers due on the way fire and their notices are delivered before it answers.
    async fn time_passes(&self, by: &str) {
        let answer = reqwest::Client::new()
            .post(format!("{}/api/v1/clock/advance", self.base))
            .bearer_auth(&self.server.token)
            .json(&serde_json::json!({ "by": by }))
            .send()
            .await
            .expect("the clock answers");
        assert!(answer.status().is_success(), "{:?}", answer.text().await);
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }

    /// Waits until the page shows `text` (in its source), up to 10 s: after a click, a text
    /// only the next page has.
    async fn sees(&self, text: &str) {
        for _ in 0..100 {
            if self.source().await.contains(text) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let url = self.client.current_url().await.expect("url");
        panic!("{url} does not show {text:?}");
    }

    async fn source(&self) -> String {
        self.client.source().await.expect("source")
    }

    /// The page as it is now: checked with axe-core (serious and critical violations kept
    /// for the end of the walk, and printed at once) and kept as `<walk>-NN-<what>.png`.
    async fn page(&self, what: &str) {
        let no = self.page_no.get() + 1;
        self.page_no.set(no);
        let file = format!("{}-{no:02}-{what}.png", self.name);
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(self.shots.join(&file), png).expect("screenshot written");
        let found = self.axe().await;
        if !found.is_empty() {
            let url = self.client.current_url().await.expect("url");
            let said = format!("{file} ({url}):\n{}", found.join("\n"));
            eprintln!("axe: {said}");
            self.violations.borrow_mut().push(said);
        }
    }

    /// The serious and critical violations axe-core finds on the page, one readable line
    /// per rule and element.
    async fn axe(&self) -> Vec<String> {
        self.client
            .execute(&format!("{AXE}\n;return typeof axe;"), vec![])
            .await
            .expect("axe-core loads");
        let script = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ["violations"] })
              .then(r => done(r.violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .flatMap(v => v.nodes.map(n =>
                  `  ${v.impact} ${v.id} (${v.help}): ${n.target.join(" ")}\n    ${(n.failureSummary || "").replace(/\n/g, "\n    ")}`))))
              .catch(e => done([`  axe failed: ${e}`]));
        "#;
        let found = self
            .client
            .execute_async(script, vec![])
            .await
            .expect("axe-core runs");
        serde_json::from_value(found).expect("a list of violations")
    }

    async fn fill(&self, id: &str, text: &str) {
        let field = self.client.find(Locator::Id(id)).await.expect(id);
        field.clear().await.expect("cleared");
        field.send_keys(text).await.expect("typed");
    }

    async fn choose(&self, id: &str, value: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"))
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("{id} = {value}: {e}"));
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .expect("clicked");
    }

    /// Presses keys on whatever has the focus, as a person at the keyboard does.
    async fn keys(&self, keys: &str) {
        let mut typing = KeyActions::new("keyboard".into());
        for key in keys.chars() {
            typing = typing
                .then(KeyAction::Down { value: key })
                .then(KeyAction::Up { value: key });
        }
        self.client.perform_actions(typing).await.expect("keys");
    }

    /// Presses Tab until the focus is on the control `what` (its id, or a button's text), at
    /// most `most` times; then checks the focus is visible (an outline).
    async fn tab_to(&self, what: &str, most: usize) {
        let mut passed = Vec::new();
        for _ in 0..most {
            self.keys(&char::from(Key::Tab).to_string()).await;
            let focused = self
                .client
                .execute(
                    "const e = document.activeElement; \
                     return [e.id || e.innerText || e.tagName, getComputedStyle(e).outlineStyle];",
                    vec![],
                )
                .await
                .expect("the focus");
            let on = focused[0].as_str().unwrap_or("").trim().to_string();
            if on == what {
                assert_ne!(
                    focused[1].as_str(),
                    Some("none"),
                    "the focus on {what} is visible"
                );
                return;
            }
            passed.push(on);
        }
        panic!("{what} is not reached with Tab; the focus went {passed:?}");
    }

    /// Signs `who` in with the form (the first time, their one-time password, then their own
    /// password set on the page it leads to), ending on their work list.
    async fn sign_in(&self, who: &Person) {
        self.goto("/login").await;
        self.sees("登录名").await;
        self.page(&format!("login-{}", who.login)).await;
        let password = if who.has_own.get() {
            OWN_PASSWORD
        } else {
            &who.once
        };
        self.fill("login", who.login).await;
        self.fill("password", password).await;
        self.click("main form button[type=submit]").await;
        if !who.has_own.get() {
            self.set_password(who).await;
        }
        self.sees("我已认领的任务").await;
        self.sees(who.name).await;
        self.page(&format!("work-{}", who.login)).await;
    }

    /// The password page after a first sign-in: their own password set.
    async fn set_password(&self, who: &Person) {
        self.sees("设置新密码").await;
        self.page(&format!("password-{}", who.login)).await;
        self.fill("current", &who.once).await;
        self.fill("new", OWN_PASSWORD).await;
        self.fill("confirm", OWN_PASSWORD).await;
        self.click("main form button[type=submit]").await;
        who.has_own.set(true);
    }

    async fn sign_out(&self) {
        self.click(".who button").await;
        self.sees("登录已失效或已退出").await;
        self.page("signed-out").await;
    }

    /// From the work list, the task called `label`, claimed: its form shown.
    async fn claim(&self, label: &str, what: &str) {
        self.goto("/work").await;
        self.sees(label).await;
        self.page(&format!("work-{what}")).await;
        self.click_link(label).await;
        self.sees("认领此任务").await;
        self.click("form[action$='/claim'] button").await;
        self.sees("您已认领").await;
        self.page(&format!("task-{what}")).await;
    }

    async fn click_link(&self, text: &str) {
        self.client
            .find(Locator::LinkText(text))
            .await
            .unwrap_or_else(|e| panic!("a link {text}: {e}"))
            .click()
            .await
            .expect("clicked");
    }

    /// Completes the claimed task with `outcome`; the case page follows.
    async fn complete(&self, outcome: &str, what: &str) {
        self.click(&format!(".outcomes button[value={outcome}]"))
            .await;
        self.sees("办理经过").await;
        self.page(&format!("case-after-{what}")).await;
    }

    /// The case's page, by the link on the page now.
    async fn case_page(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        assert!(url.path().starts_with("/cases/"), "on a case page: {url}");
        url.path().to_string()
    }

    /// Ends the walk: the browser closed, no accessibility violation found on its pages.
    async fn finish(mut self) {
        self.client.clone().close().await.expect("closed");
        let found = self.violations.take();
        assert!(
            found.is_empty(),
            "axe-core found serious or critical accessibility violations:\n{}",
            found.join("\n")
        );
        if let Some(database) = self.database.take() {
            database.finish().await;
        }
    }
}

/// The registration form filled for an applicant of the street, with a business key.
async fn register(walk: &Walk, key: &str, id_number: &str) {
    walk.goto("/register?process=social_assistance").await;
    walk.sees("登记：").await;
    for (id, text) in [
        ("f-business_key", key),
        ("f-applicant_name", "张三"),
        ("f-id_number", id_number),
        ("f-phone", "13800138000"),
        ("f-address", "滨河路1号"),
        ("f-street", STREET),
        ("f-community", "滨河社区"),
        ("f-household_size", "3"),
        ("f-reason", "因病致贫"),
    ] {
        walk.fill(id, text).await;
    }
    walk.click("input[name=categories][value=minimum_living]")
        .await;
}

/// The first steps every walk shares, from a registered case to its department: the review
/// (materials complete), the street leader's consent, the forwarding (`clear`: whether the
/// department is clear).
async fn reviewed_and_forwarded(walk: &Walk, clerk: &Person, leader: &Person, clear: bool) {
    walk.claim("受理窗口审查相关申请材料", "review").await;
    walk.choose("f-main_category", "minimum_living").await;
    walk.complete("complete", "review").await;
    walk.sign_out().await;

    walk.sign_in(leader).await;
    walk.claim("街道（镇）分管领导审核同意转办", "consent")
        .await;
    walk.complete("agree", "consent").await;
    walk.sign_out().await;

    walk.sign_in(clerk).await;
    walk.claim("1个工作日内提交给相关救助部门分办（转办）", "forward")
        .await;
    walk.choose("f-department_clear", if clear { "true" } else { "false" })
        .await;
    walk.complete("forwarded", "forward").await;
    walk.sign_out().await;
}

/// The window staff of the street, and civil affairs.
fn people(walk: &Walk) -> (Person, Person, Person) {
    (
        walk.person("wangfang", "王芳", "window", Some(STREET)),
        walk.person("zhaolei", "赵磊", "street_leader", Some(STREET)),
        walk.person("lihua", "李华", "department:civil_affairs", None),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_case_from_registration_to_archive() {
    let Some(walk) = Walk::start("whole").await else {
        return;
    };
    let (clerk, leader, civil) = people(&walk);

    // Signing in with the keyboard alone: the login field has the focus, Tab to the password,
    // Enter sends the form. A wrong password is said in Chinese.
    walk.goto("/").await;
    walk.sees("登录名").await;
    walk.page("login").await;
    walk.keys(clerk.login).await;
    walk.tab_to("password", 1).await;
    walk.keys("not the password").await;
    walk.keys(&char::from(Key::Enter).to_string()).await;
    walk.sees("登录名或密码不正确").await;
    walk.page("login-wrong").await;
    walk.fill("password", &clerk.once).await;
    walk.keys(&char::from(Key::Enter).to_string()).await;
    walk.set_password(&clerk).await;
    walk.sees("我已认领的任务").await;
    walk.page("work-empty").await;

    // Registering: a wrong check digit is said at its field, what was typed stays.
    register(&walk, "WH-2026-0001", "110105194912310021").await;
    walk.page("register").await;
    walk.click(".outcomes button").await;
    walk.sees("校验位不对").await;
    walk.page("register-id-number").await;
    walk.fill("f-id_number", "11010519491231002X").await;
    walk.click(".outcomes button").await;
    walk.sees("办理经过").await;
    walk.page("case-registered").await;
    let case = walk.case_page().await;

    // The review, claimed with the keyboard alone: Tab from the top of the task page to the
    // claim button, Space presses it.
    walk.goto("/work").await;
    walk.sees("受理窗口审查相关申请材料").await;
    walk.page("work-review").await;
    walk.click_link("受理窗口审查相关申请材料").await;
    walk.sees("认领此任务").await;
    walk.page("task-review-open").await;
    walk.tab_to("认领此任务", 20).await;
    walk.keys(&char::from(Key::Space).to_string()).await;
    walk.sees("您已认领").await;
    walk.page("task-review").await;

    // Materials missing: the outcome needs what is missing, said at its field; urgent, so
    // the case is accepted at once and the supplement notice issued.
    walk.choose("f-main_category", "minimum_living").await;
    walk.click(".outcomes button[value=incomplete]").await;
    walk.sees("missing_materials-problem").await;
    walk.page("task-review-problem").await;
    walk.fill("f-missing_materials", "户口簿复印件、近6个月收入证明")
        .await;
    walk.choose("f-urgent", "true").await;
    walk.complete("incomplete", "review").await;
    walk.sees("补证通知书").await;
    walk.sees("街道（镇）分管领导审核同意转办").await;
    // The notice printed: its A4 view names the applicant in full and what is missing.
    walk.click_link("补证通知书").await;
    walk.sees("下载 PDF").await;
    walk.sees("张三").await;
    walk.sees("户口簿复印件").await;
    walk.page("notice-supplement").await;
    walk.goto(&case).await;
    walk.sign_out().await;

    // The street leader consents to forwarding.
    walk.sign_in(&leader).await;
    walk.claim("街道（镇）分管领导审核同意转办", "consent")
        .await;
    walk.complete("agree", "consent").await;
    walk.sign_out().await;

    // The clerk, the case's first responder, forwards it: one category, a clear department.
    walk.sign_in(&clerk).await;
    walk.claim("1个工作日内提交给相关救助部门分办（转办）", "forward")
        .await;
    walk.choose("f-department_clear", "true").await;
    walk.complete("forwarded", "forward").await;
    walk.sees("相关救助部门在政策规定时限内办结申请事项").await;
    walk.sign_out().await;

    // Civil affairs decides: refused, with its reason.
    walk.sign_in(&civil).await;
    walk.claim("相关救助部门在政策规定时限内办结申请事项", "decide")
        .await;
    walk.choose("f-decision", "rejected").await;
    walk.fill("f-decision_reason", "家庭人均收入高于当地最低生活保障标准")
        .await;
    walk.complete("decided", "decide").await;
    walk.sign_out().await;

    // The clerk tells the applicant (the refusal notice is issued) and archives the case.
    walk.sign_in(&clerk).await;
    walk.claim(
        "受理窗口接到反馈结果后2个工作日内反馈给申请对象",
        "feedback",
    )
    .await;
    walk.complete("informed", "feedback").await;
    walk.sees("不予批准通知书").await;
    walk.claim("办结，归档", "archive").await;
    walk.complete("filed", "archive").await;
    walk.goto(&case).await;
    walk.sees("已办结").await;
    walk.sees("结束于").await;
    walk.sees("结案：办结·不予批准").await;
    walk.sees("没有待办任务").await;
    walk.client
        .execute(
            "document.getElementById('timeline').scrollIntoView()",
            vec![],
        )
        .await
        .expect("scrolls");
    walk.page("case-ended-timeline").await;
    let page = walk.source().await;
    for (who, what) in [
        ("王芳", "the clerk"),
        ("赵磊", "the street leader"),
        ("李华", "civil affairs"),
    ] {
        assert!(page.contains(who), "the timeline names {what}");
    }
    assert!(
        !page.contains(">张三<"),
        "the name is masked on the case page"
    );
    walk.sign_out().await;
    walk.goto("/work").await;
    walk.sees("登录名").await;
    walk.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_convened_case() {
    let Some(walk) = Walk::start("convened").await else {
        return;
    };
    let (clerk, leader, civil) = people(&walk);
    let health = walk.person("zhouyi", "周怡", "department:health", None);
    let education = walk.person("sunli", "孙丽", "department:education", None);

    walk.sign_in(&clerk).await;
    register(&walk, "WH-2026-0002", "11010519491231002X").await;
    walk.click(".outcomes button").await;
    walk.sees("办理经过").await;
    walk.page("case-registered").await;
    let case = walk.case_page().await;
    reviewed_and_forwarded(&walk, &clerk, &leader, false).await;

    // The department is unclear: civil affairs convenes health and education.
    walk.sign_in(&civil).await;
    walk.claim("民政部门牵头，召集相关部门会商", "convene")
        .await;
    walk.click(".outcomes button[value=convene]").await;
    walk.sees("convened-problem").await;
    walk.page("task-convene-problem").await;
    walk.click("input[name=convened][value=health]").await;
    walk.click("input[name=convened][value=education]").await;
    walk.complete("convene", "convene").await;
    walk.sees("卫生和计划生育局").await;
    walk.sees("教育局").await;
    walk.sign_out().await;

    // Each consulted department gives its opinion, signed in as itself: one task each.
    for (person, what) in [(&health, "health"), (&education, "education")] {
        walk.sign_in(person).await;
        walk.claim("相关部门提出意见", &format!("consult-{what}"))
            .await;
        let page = walk.source().await;
        assert_eq!(
            page.matches("认领此任务").count(),
            0,
            "the claimed task page"
        );
        walk.complete("opinion", &format!("consult-{what}")).await;
        walk.sign_out().await;
    }

    // Civil affairs decides: approved, with the monthly amount.
    walk.sign_in(&civil).await;
    walk.claim("民政部门汇总意见并办结", "civil-decide").await;
    walk.choose("f-decision", "approved").await;
    walk.fill("f-amount", "800").await;
    walk.complete("decided", "civil-decide").await;
    walk.sign_out().await;

    // The clerk tells the applicant; the approval is published and its period runs.
    walk.sign_in(&clerk).await;
    walk.claim(
        "受理窗口接到反馈结果后2个工作日内反馈给申请对象",
        "feedback",
    )
    .await;
    walk.complete("informed", "feedback").await;
    walk.sees("公示名单").await;
    walk.sees("在居（村）委会张榜公示").await;
    walk.time_passes("8d").await;

    // Eight days on, the session has ended; the clerk signs in again and archives.
    walk.sign_in(&clerk).await;
    walk.claim("办结，归档", "archive").await;
    walk.complete("filed", "archive").await;
    walk.goto(&case).await;
    walk.sees("已办结").await;
    walk.sees("结案：办结·批准").await;
    walk.page("case-ended").await;
    let page = walk.source().await;
    for who in ["周怡", "孙丽", "李华"] {
        assert!(page.contains(who), "the timeline names {who}");
    }
    walk.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leadership_decision() {
    let Some(walk) = Walk::start("leadership").await else {
        return;
    };
    let (clerk, leader, civil) = people(&walk);
    let chair = walk.person("qianjun", "钱军", "leadership", None);

    walk.sign_in(&clerk).await;
    register(&walk, "WH-2026-0003", "11010519491231002X").await;
    walk.click(".outcomes button").await;
    walk.sees("办理经过").await;
    let case = walk.case_page().await;
    reviewed_and_forwarded(&walk, &clerk, &leader, false).await;

    // Civil affairs finds the case special: it goes to the district's leadership group.
    walk.sign_in(&civil).await;
    walk.claim("民政部门牵头，召集相关部门会商", "convene")
        .await;
    walk.complete("special", "special").await;
    walk.sees("区领导小组研究决定").await;
    walk.sign_out().await;

    // The group does not decide in time: past the statutory limit and five working days
    // more, the case is escalated to it.
    walk.time_passes("70d").await;

    // The group's member sees the escalation on their work list, opens the case from it and
    // marks it read; it leaves the list.
    walk.sign_in(&chair).await;
    walk.sees("待阅提醒").await;
    walk.sees("救助申请严重超时，请领导小组督办").await;
    walk.sees("超期督办（第 2 级）").await;
    walk.page("work-escalated").await;
    walk.click_link("查看案件 WH-2026-0003").await;
    walk.sees("区领导小组研究决定").await;
    walk.page("case-escalated").await;
    walk.goto("/work").await;
    walk.sees("待阅提醒").await;
    walk.click("form[action^='/inbox/'] button").await;
    walk.sees("我已认领的任务").await;
    walk.page("work-read").await;
    assert!(
        !walk
            .source()
            .await
            .contains("救助申请严重超时，请领导小组督办"),
        "the escalation read leaves the list"
    );

    // The decision, on the same task pages as everyone's.
    walk.claim("区领导小组研究决定", "leadership").await;
    walk.click(".outcomes button[value=decided]").await;
    walk.sees("decision-problem").await;
    walk.page("task-leadership-problem").await;
    walk.choose("f-decision", "approved").await;
    walk.fill("f-amount", "1200").await;
    walk.fill("f-decision_reason", "因病致贫，经领导小组研究特殊救助")
        .await;
    walk.complete("decided", "leadership").await;
    walk.goto(&case).await;
    walk.sees("办结：区领导小组研究决定，结果：作出决定，将结果反馈给受理窗口")
        .await;
    walk.sees("受理窗口接到反馈结果后2个工作日内反馈给申请对象")
        .await;
    walk.sees("钱军").await;
    walk.page("case-decided").await;
    walk.finish().await;
}

/// Starts `n` social-assistance cases in `street` through the API (as admin); their ids.
async fn api_cases(walk: &Walk, street: &str, keys: &[&str]) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for key in keys {
        let answer = http
            .post(format!("{}/api/v1/instances", walk.base))
            .bearer_auth(&walk.server.token)
            .json(&serde_json::json!({
                "process": "social_assistance",
                "business_key": key,
                "variables": {
                    "applicant_name": "张三", "id_number": "150302199001011231",
                    "phone": "13800138000", "address": "滨河路1号", "street": street,
                    "community": "滨河社区", "household_size": 3, "reason": "因病致贫",
                    "categories": ["minimum_living"],
                },
            }))
            .send()
            .await
            .expect("the API answers");
        assert!(answer.status().is_success(), "{:?}", answer.text().await);
        let body: serde_json::Value = answer.json().await.expect("JSON");
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    ids
}

/// The review of every open window task through the API: `outcome` with `vars`.
async fn api_review(walk: &Walk, outcome: &str, vars: serde_json::Value, n: usize) {
    let http = reqwest::Client::new();
    let claimed: serde_json::Value = http
        .post(format!("{}/api/v1/tasks/claim", walk.base))
        .bearer_auth(&walk.server.token)
        .json(&serde_json::json!({"queues": ["window"], "worker": "api", "max": n, "lease_seconds": 60}))
        .send()
        .await
        .expect("claims")
        .json()
        .await
        .expect("JSON");
    let tasks = claimed["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), n, "{claimed}");
    for t in tasks {
        let id = t["task"]["id"]
            .as_str()
            .or(t["id"].as_str())
            .expect("task id");
        let answer = http
            .post(format!("{}/api/v1/tasks/{id}/complete", walk.base))
            .bearer_auth(&walk.server.token)
            .json(&serde_json::json!({"lock_token": t["lock_token"], "outcome": outcome, "variables": vars}))
            .send()
            .await
            .expect("completes");
        assert!(answer.status().is_success(), "{:?}", answer.text().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statistics_page() {
    let reports = std::env::temp_dir().join(format!("yimen-stats-{}", std::process::id()));
    std::fs::create_dir_all(&reports).expect("reports dir");
    let jobs = reports.join("reports.yaml");
    std::fs::write(
        &jobs,
        "jobs:\n  - name: monthly_statistics_xlsx\n    cron: \"0 6 * * *\"\n    report: statistics\n    process: social_assistance\n",
    )
    .expect("jobs written");
    let out = reports.join("out");
    let (jobs, out) = (jobs.to_string_lossy(), out.to_string_lossy());
    let Some(walk) =
        Walk::start_with("statistics", &["--reports", &jobs, "--reports-dir", &out]).await
    else {
        return;
    };
    // Three cases in the street, two in another; two accepted, one refused.
    api_cases(&walk, STREET, &["SA-T-1", "SA-T-2", "SA-T-3"]).await;
    api_review(
        &walk,
        "complete",
        serde_json::json!({"main_category": "minimum_living"}),
        3,
    )
    .await;
    api_cases(&walk, "凤凰岭街道", &["SA-T-4", "SA-T-5"]).await;
    api_review(
        &walk,
        "not_assistance",
        serde_json::json!({"referral": "人力资源和社会保障局"}),
        2,
    )
    .await;
    // The scheduled report runs the next mornings (the server's first start only began the
    // schedule).
    walk.time_passes("1d").await;
    walk.time_passes("1d").await;

    let officer = walk.person("qianjian", "钱监", "supervision", None);
    walk.sign_in(&officer).await;
    walk.click_link("统计").await;
    walk.sees("按街道（镇）统计").await;
    let source = walk.source().await;
    for text in [
        "本季度",
        "下载统计表（XLSX）",
        "下载电子台账（XLSX，含个人信息",
        "定期报表",
        "统计表 XLSX",
    ] {
        assert!(source.contains(text), "the page shows {text}");
    }
    // The charts are drawn (a canvas each) from the embedded figures.
    for _ in 0..50 {
        let drawn = walk
            .client
            .execute(
                "return document.querySelectorAll('.chart canvas').length;",
                vec![],
            )
            .await
            .expect("counts the charts");
        if drawn.as_u64().unwrap_or(0) >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drawn = walk
        .client
        .execute(
            "return document.querySelectorAll('.chart canvas').length;",
            vec![],
        )
        .await
        .expect("counts the charts");
    assert!(drawn.as_u64().unwrap_or(0) >= 4, "charts drawn: {drawn}");
    let total = walk
        .client
        .find(Locator::Css("#table-total tbody tr"))
        .await
        .expect("the total row")
        .text()
        .await
        .expect("its text");
    // 登记 5, 受理 3 (the leader's consent reached), 不予受理 2, …, 在办 3, 已办结 2.
    assert!(total.contains("5 3 2 0 0 0 0 3 2"), "{total}");
    walk.page("statistics-quarter").await;
    // The scheduled report's workbook downloads.
    let link = walk
        .client
        .find(Locator::LinkText("统计表 XLSX"))
        .await
        .expect("the report's link")
        .attr("href")
        .await
        .expect("href")
        .expect("a link");
    assert!(
        link.starts_with("/statistics/reports/monthly_statistics_xlsx/"),
        "{link}"
    );
    walk.sign_out().await;

    // The window of the street: its three cases only, no unmasked register, no reports.
    let clerk = walk.person("wangfang", "王芳", "window", Some(STREET));
    walk.sign_in(&clerk).await;
    walk.goto("/statistics").await;
    walk.sees("仅限本单位").await;
    let total = walk
        .client
        .find(Locator::Css("#table-total tbody tr"))
        .await
        .expect("the total row")
        .text()
        .await
        .expect("its text");
    assert!(total.contains("3 3 0 0 0 0 0 3 0"), "{total}");
    let source = walk.source().await;
    assert!(
        !source.contains("含个人信息"),
        "no unmasked register for the window"
    );
    assert!(
        !source.contains("凤凰岭街道"),
        "another street's figures are not shown"
    );
    walk.page("statistics-window").await;
    walk.finish().await;
    let _ = std::fs::remove_dir_all(&reports);
}
