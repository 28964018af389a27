//! The workbench in a real browser (Chromium through chromedriver, WebDriver): a window clerk
//! signs in with a one-time password, sets their own, registers a case with a wrong ID number
//! and corrects it, finds the task in their work, claims it, is told at the field what the
//! outcome needs, completes it, reads the case's timeline and signs out. A screenshot of each
//! page is kept in `target/tmp/browser/` (CI leaves them behind).
//!
//! Runs when `YIMEN_TEST_BROWSER` is set (`.ci/run` installs Chromium and sets it); otherwise
//! it prints a "skipped" line. Chromium is `/usr/bin/chromium` unless `YIMEN_CHROMIUM` says.
#![cfg(unix)]

mod support;

use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{serve, yimen};

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

/// Keeps a screenshot of the page as `NN-name.png`.
async fn shot(client: &Client, dir: &std::path::Path, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
}

async fn fill(client: &Client, id: &str, text: &str) {
    let field = client.find(Locator::Id(id)).await.expect(id);
    field.clear().await.expect("cleared");
    field.send_keys(text).await.expect("typed");
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .expect("clicked");
}

/// Waits until the page shows `text` (in its source), up to 10 s: after a click, a text only
/// the next page has.
async fn sees(client: &Client, text: &str) {
    for _ in 0..100 {
        if client.source().await.expect("source").contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = client.current_url().await.expect("url");
    panic!("{url} does not show {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_clerk_works_a_case_in_the_browser() {
    if std::env::var_os("YIMEN_TEST_BROWSER").is_none() {
        println!(
            "skipped: set YIMEN_TEST_BROWSER (with chromium and chromium-driver installed) to run the browser tests"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("yimen-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let server = serve(&dir, &dir.join("serve.log"));
    let (once, _) = yimen(
        &server,
        &[
            "user",
            "add",
            "--login",
            "wangfang",
            "--name",
            "王芳",
            "--roles",
            "window",
            "--units",
            "滨河街道",
        ],
    );
    let once = once.trim().to_string();
    let base = format!("http://{}", server.address);
    let (_driver, client) = browser().await;

    // Sign in: a wrong password is said in Chinese; the one-time one leads to a new password.
    client.goto(&format!("{base}/")).await.expect("opens");
    sees(&client, "登录名").await;
    shot(&client, &shots, "01-login").await;
    fill(&client, "login", "wangfang").await;
    fill(&client, "password", "not the password").await;
    click(&client, "main form button[type=submit]").await;
    sees(&client, "登录名或密码不正确").await;
    shot(&client, &shots, "02-login-wrong").await;
    fill(&client, "password", &once).await;
    click(&client, "main form button[type=submit]").await;
    sees(&client, "设置新密码").await;
    shot(&client, &shots, "03-password").await;
    let own = "a long password of mine";
    fill(&client, "current", &once).await;
    fill(&client, "new", own).await;
    fill(&client, "confirm", own).await;
    click(&client, "main form button[type=submit]").await;
    sees(&client, "我已认领的任务").await;

    // Register: a wrong check digit is said at its field, what was typed stays.
    client
        .goto(&format!("{base}/register?process=social_assistance"))
        .await
        .expect("opens");
    sees(&client, "登记：").await;
    for (id, text) in [
        ("f-applicant_name", "张三"),
        ("f-id_number", "110105194912310021"),
        ("f-phone", "13800138000"),
        ("f-address", "滨河路1号"),
        ("f-street", "滨河街道"),
        ("f-community", "滨河社区"),
        ("f-household_size", "3"),
        ("f-reason", "因病致贫"),
    ] {
        fill(&client, id, text).await;
    }
    click(&client, "input[name=categories][value=minimum_living]").await;
    shot(&client, &shots, "04-register").await;
    click(&client, ".outcomes button").await;
    sees(&client, "校验位不对").await;
    shot(&client, &shots, "05-register-id-number").await;
    fill(&client, "f-id_number", "11010519491231002X").await;
    click(&client, ".outcomes button").await;
    sees(&client, "办理经过").await;
    shot(&client, &shots, "06-case").await;

    // My work: the review task of the new case; claim it.
    client.goto(&format!("{base}/work")).await.expect("opens");
    sees(&client, "受理窗口审查相关申请材料").await;
    shot(&client, &shots, "07-work").await;
    click(&client, "table.tasks a[href^='/tasks/']").await;
    sees(&client, "认领此任务").await;
    click(&client, "main form button[type=submit]").await;
    sees(&client, "您已认领").await;
    shot(&client, &shots, "08-task").await;

    // 材料齐全 needs the main category: said at the field; then chosen, the task is done.
    click(&client, ".outcomes button[value=complete]").await;
    sees(&client, "main_category-problem").await;
    shot(&client, &shots, "09-task-problem").await;
    client
        .find(Locator::Id("f-main_category"))
        .await
        .expect("the category")
        .select_by_value("minimum_living")
        .await
        .expect("chosen");
    click(&client, ".outcomes button[value=complete]").await;
    sees(&client, "办理经过").await;
    shot(&client, &shots, "10-case-after-review").await;
    client
        .execute(
            "document.getElementById('timeline').scrollIntoView()",
            vec![],
        )
        .await
        .expect("scrolls");
    shot(&client, &shots, "11-case-timeline").await;
    sees(&client, "认领：受理窗口审查相关申请材料").await;
    // A due time in the calendar's zone, as the engine computed it (17:30 Beijing time).
    sees(&client, "17:30").await;
    let page = client.source().await.expect("source");
    assert!(page.contains("王芳"), "the timeline names the clerk");
    assert!(
        !page.contains("张三丰") && !page.contains(">张三<"),
        "the name is masked"
    );

    // Sign out: the work list needs signing in again.
    click(&client, ".who button").await;
    sees(&client, "登录已失效或已退出").await;
    client.goto(&format!("{base}/work")).await.expect("opens");
    sees(&client, "登录名").await;
    client.close().await.expect("closed");
}
