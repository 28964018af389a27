//! `yimen demo`: one complete social-assistance case on a throw-away database, with a
//! simulated clock, printed as a timeline, so that a newcomer sees the whole mechanism at once.

use super::serve::{deploy_file, deploy_source, due_dates};
use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use yimen_engine::clock::{Clock, ManualClock};
use yimen_engine::{
    ClaimRequest, CompleteRequest, Engine, StartRequest, TaskFilter, TaskState, TaskView,
};

#[derive(clap::Args)]
pub struct Args {
    /// The social-assistance process file; default: processes/social_assistance.flow when
    /// there is one, else the one built into yimen.
    #[arg(long)]
    process: Option<PathBuf>,
    /// Working-day calendars (the ones built into yimen for names the folder has no file of).
    #[arg(long, default_value = "calendars")]
    calendars: PathBuf,
}

/// Who does each task of the demo case, what they decide and what they record.
fn decision(node: &str) -> Option<(&'static str, &'static str, Value)> {
    Some(match node {
        "review" => (
            "窗口-王",
            "complete",
            json!({"main_category": "minimum_living"}),
        ),
        "street_consent" => ("街道-李", "agree", json!({})),
        "forward" => ("窗口-王", "forwarded", json!({"department_clear": true})),
        "department_handle" => (
            "民政局-赵",
            "decided",
            json!({"decision": "approved", "amount": "860.00", "decision_reason": "家庭人均收入低于当地低保标准"}),
        ),
        "feedback" => ("窗口-王", "informed", json!({})),
        "archive" => ("窗口-王", "filed", json!({})),
        _ => return None,
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(demo(args))
}

async fn demo(args: Args) -> anyhow::Result<ExitCode> {
    let start = chrono::DateTime::parse_from_rfc3339("2026-09-28T09:00:00+08:00")?.to_utc();
    let clock = Arc::new(ManualClock::new(start));
    let shared: Arc<dyn Clock> = clock.clone();
    let engine = Engine::open("sqlite::memory:", shared, due_dates(&args.calendars)?)
        .await
        .context("cannot open the throw-away database")?;
    deploy(&engine, args.process.as_deref()).await?;
    let id = start_case(&engine).await?;
    println!("一门 yimen demo: one social-assistance case, start to end, simulated clock\n");
    println!("张** applies at the window of 东城街道 ({start})");

    for _ in 0..40 {
        let view = engine.instance(&id).await?;
        if view.status.as_str() != "running" {
            break;
        }
        let open = engine
            .tasks(TaskFilter {
                instance: Some(id.clone()),
                state: Some(TaskState::Open),
                ..TaskFilter::default()
            })
            .await?;
        match open.first() {
            Some(task) => work(&engine, &clock, task).await?,
            None => next_timer(&engine, &clock).await?,
        }
    }
    finish(&engine, &id).await
}

/// Deploys the social-assistance process: `file`, else the shipped file when there is one, else
/// the one built into yimen.
async fn deploy(engine: &Engine, file: Option<&Path>) -> anyhow::Result<()> {
    let shipped = PathBuf::from("processes/social_assistance.flow");
    match file {
        Some(file) => deploy_file(engine, file).await?,
        None if shipped.is_file() => deploy_file(engine, &shipped).await?,
        None => {
            let name = "social_assistance.flow";
            let (source, files) = super::builtin::process(name)
                .context("the social-assistance process is not built into this binary")?;
            eprintln!(
                "no {}: using the process built into yimen",
                shipped.display()
            );
            let d = deploy_source(engine, Path::new(name), name.into(), source, files).await?;
            let answer = serde_json::to_value(&d).context("the deployment as JSON")?;
            eprintln!("{} (built in)", super::client::deploy_line(&answer));
            d
        }
    };
    Ok(())
}

/// Starts the demo case; its id.
async fn start_case(engine: &Engine) -> anyhow::Result<String> {
    let vars = json!({
        "applicant_name": "张三", "id_number": "150302198001011237", "phone": "13800138000",
        "address": "东城街道幸福社区3号楼2单元501", "street": "东城街道", "community": "幸福社区",
        "household_size": 3, "reason": "家庭主要劳动力因病丧失劳动能力", "categories": ["minimum_living"]
    });
    let view = engine
        .start(StartRequest {
            process: "social_assistance".into(),
            business_key: Some("DEMO-2026-0001".into()),
            vars: vars.as_object().cloned().unwrap_or_default(),
            actor: "窗口-王".into(),
        })
        .await?;
    Ok(view.id)
}

/// The person of [`decision`] claims `task` and, two hours later, completes it.
async fn work(engine: &Engine, clock: &ManualClock, task: &TaskView) -> anyhow::Result<()> {
    let Some((worker, outcome, vars)) = decision(&task.node) else {
        bail!("the demo does not know how to do task `{}`", task.node);
    };
    let claimed = engine
        .claim(ClaimRequest {
            queues: vec![task.queue.clone()],
            org_units: None,
            actor: worker.into(),
            worker: None,
            max: 1,
            lease: chrono::Duration::minutes(30),
        })
        .await?;
    let Some(claimed) = claimed.into_iter().next() else {
        bail!("task `{}` could not be claimed by {worker}", task.node);
    };
    clock
        .advance(chrono::Duration::hours(2))
        .map_err(|_| anyhow::anyhow!("clock went backwards"))?;
    println!(
        "{}  {worker} completes 「{}」 → {outcome}",
        clock.now().format("%m-%d %H:%M"),
        task.label.as_deref().unwrap_or(&task.node)
    );
    engine
        .complete(CompleteRequest {
            task_id: claimed.task.id.clone(),
            lock_token: claimed.lock_token,
            outcome: Some(outcome.into()),
            vars: vars.as_object().cloned().unwrap_or_else(Map::new),
            actor: worker.into(),
            access: None,
        })
        .await?;
    Ok(())
}

/// No task is open: the clock moves to the next timer, which fires.
async fn next_timer(engine: &Engine, clock: &ManualClock) -> anyhow::Result<()> {
    let Some(due) = engine.next_timer_due().await? else {
        bail!("the case waits for something the demo cannot give (no task, no timer)");
    };
    if due > clock.now() {
        let _ = clock.set(due);
    }
    println!(
        "{}  time passes to the next timer (publicity period, deadlines)",
        clock.now().format("%m-%d %H:%M")
    );
    engine.fire_due_timers(clock.now()).await?;
    Ok(())
}

/// Prints the case's timeline and documents; success when the case completed.
async fn finish(engine: &Engine, id: &str) -> anyhow::Result<ExitCode> {
    let view = engine.instance(id).await?;
    let history = engine.history(id).await?;
    println!();
    print!(
        "{}",
        super::client::timeline(
            &serde_json::to_value(&view)?,
            &serde_json::json!({ "entries": history })
        )
    );
    let documents = engine.documents(id).await?;
    if !documents.is_empty() {
        println!("documents:");
        for d in documents {
            println!("  {} ({})", d.label.as_deref().unwrap_or(&d.name), d.name);
        }
    }
    Ok(if view.status.as_str() == "completed" {
        ExitCode::SUCCESS
    } else {
        eprintln!("the case did not finish: status {}", view.status.as_str());
        ExitCode::from(1)
    })
}
