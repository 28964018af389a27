//! The timer loop: fires durable timers when they fall due.
//!
//! It sleeps until the earliest pending due time (one indexed query), and is woken early when a
//! timer is created (the engine's after-commit notification; on PostgreSQL also the
//! `NOTIFY` of a transaction on another server sharing the schema, see
//! [`crate::store::postgres::listen_timers`]), so a real-clock timer fires
//! within a second of its due time without the database being polled in a loop. On start it
//! fires, in due order, every timer that fell due while the server was down. Firing itself is
//! the engine's (`engine/fire.rs`): due timers are claimed in batches (on PostgreSQL with
//! `SKIP LOCKED`, so with several servers each fires once), each advanced as its own event.
//!
//! With a simulated clock ([`crate::clock::ManualClock`]) time does not pass by itself: the loop
//! only fires what is due at the clock's current time when woken, and [`advance`] moves the
//! clock from due time to due time, firing in order, up to the requested time.

use crate::clock::{Clock, ManualClock};
use chrono::{DateTime, Utc};
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// What the loop needs from the engine. Implemented for [`crate::Engine`]; a fake in tests.
pub trait TimerSource: Send + Sync + 'static {
    type Error: Display + Send;
    /// Claims and fires every timer due at or before `now`, in due order; returns how many.
    fn fire_due(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<usize, Self::Error>> + Send;
    /// The earliest pending due time.
    fn next_due(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>, Self::Error>> + Send;
}

/// Tuning of the loop.
#[derive(Debug, Clone, Copy)]
pub struct LoopOptions {
    /// Longest sleep without a notification: the fallback for timers other servers created
    /// while the PostgreSQL listener was not connected.
    pub idle: std::time::Duration,
    /// Pause after a storage error before trying again.
    pub error_pause: std::time::Duration,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            idle: std::time::Duration::from_secs(30),
            error_pause: std::time::Duration::from_secs(1),
        }
    }
}

/// Fires every timer due at `now`, again while firing made more due timers (a rung due at once).
async fn fire_all<S: TimerSource>(source: &S, now: DateTime<Utc>) -> Result<usize, S::Error> {
    let mut total = 0;
    loop {
        let n = source.fire_due(now).await?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// Runs the timer loop until `shutdown` turns true. `wake` is notified when a timer is created.
pub async fn run_loop<S: TimerSource>(
    source: Arc<S>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    options: LoopOptions,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let pause = match step(&*source, &*clock, options).await {
            Ok(pause) => pause,
            Err(e) => {
                tracing::warn!("timer loop: {e}; retrying");
                options.error_pause
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One pass: fire what is due, then say how long to sleep.
async fn step<S: TimerSource>(
    source: &S,
    clock: &dyn Clock,
    options: LoopOptions,
) -> Result<std::time::Duration, S::Error> {
    let fired = fire_all(source, clock.now()).await?;
    if fired > 0 {
        tracing::debug!(fired, "timers fired");
    }
    if clock.is_manual() {
        return Ok(options.idle);
    }
    Ok(match source.next_due().await? {
        Some(due) => (due - clock.now())
            .to_std()
            .unwrap_or(std::time::Duration::ZERO)
            .min(options.idle),
        None => options.idle,
    })
}

/// What [`advance`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Advanced {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub fired: usize,
}

/// Why [`advance`] refused.
#[derive(Debug, thiserror::Error)]
pub enum AdvanceError {
    #[error("the clock is at {now}; it cannot go back to {to}")]
    Backwards {
        now: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    #[error("firing timers failed: {0}")]
    Fire(String),
}

/// Moves a simulated clock to `to`, firing every timer due on the way in due order, each at its
/// own due time (so durations computed while firing start from the right instant).
pub async fn advance<S: TimerSource>(
    source: &S,
    clock: &ManualClock,
    to: DateTime<Utc>,
) -> Result<Advanced, AdvanceError> {
    let from = clock.now();
    if to < from {
        return Err(AdvanceError::Backwards { now: from, to });
    }
    let fail = |e: S::Error| AdvanceError::Fire(e.to_string());
    let mut fired = fire_all(source, from).await.map_err(fail)?;
    while let Some(due) = source.next_due().await.map_err(fail)? {
        if due > to {
            break;
        }
        let at = due.max(clock.now());
        // `at` is never before the clock (max above), so `set` cannot refuse.
        let _ = clock.set(at);
        fired += fire_all(source, at).await.map_err(fail)?;
    }
    let _ = clock.set(to);
    fired += fire_all(source, to).await.map_err(fail)?;
    Ok(Advanced { from, to, fired })
}

impl TimerSource for crate::engine::Engine {
    type Error = crate::error::EngineError;
    async fn fire_due(&self, now: DateTime<Utc>) -> Result<usize, Self::Error> {
        self.fire_due_timers(now).await
    }
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, Self::Error> {
        self.next_timer_due().await
    }
}

/// Settings of the background services a server runs.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// HMAC key for webhook signatures.
    pub webhook_secret: Vec<u8>,
    /// Longest wait of one webhook attempt.
    pub webhook_timeout: std::time::Duration,
    pub backoff: crate::outbox::Backoff,
    /// How often the outbox is looked at besides after every fired timer.
    pub outbox_poll: std::time::Duration,
    pub timer_loop: LoopOptions,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            webhook_secret: Vec::new(),
            webhook_timeout: std::time::Duration::from_secs(10),
            backoff: crate::outbox::Backoff::default(),
            outbox_poll: std::time::Duration::from_secs(2),
            timer_loop: LoopOptions::default(),
        }
    }
}

/// Why a clock request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error(
        "this server runs on the real clock; only a server started with `yimen serve --clock TIME` can be advanced"
    )]
    RealClock,
    /// The clock would leave the years the engine accepts (`crate::limits`).
    #[error("the clock cannot move to {}: {source}", to.to_rfc3339())]
    OutOfRange {
        to: DateTime<Utc>,
        source: crate::limits::LimitError,
    },
    /// The clock moved by `by` from `now` would be a time no date type holds.
    #[error("the clock cannot move to {now} + {by}: the time overflows")]
    Overflow {
        now: DateTime<Utc>,
        by: chrono::Duration,
    },
    #[error(transparent)]
    Advance(#[from] AdvanceError),
    #[error(transparent)]
    Engine(#[from] crate::error::EngineError),
}

/// Why the background services did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Webhooks(#[from] crate::outbox::DeliveryError),
}

/// What `POST /clock/advance` answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AdvanceReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Timers fired on the way.
    pub fired: usize,
    /// Notifications delivered (inbox items written, webhooks sent or rescheduled).
    pub delivered: usize,
    /// Report runs made.
    pub reports: usize,
}

/// The background services of one server: the timer loop, outbox delivery and report jobs.
/// Cheap to clone; [`Services::stop`] ends the loops.
#[derive(Clone)]
pub struct Services {
    engine: crate::engine::Engine,
    manual: Option<ManualClock>,
    delivery: crate::outbox::Delivery,
    reports: Option<crate::reports::Reports>,
    stop: Arc<watch::Sender<bool>>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    advancing: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("manual", &self.manual.is_some())
            .field("reports", &self.reports.is_some())
            .finish()
    }
}

impl Services {
    /// Starts the loops on the current tokio runtime. `manual` is the simulated clock the engine
    /// was opened with, if any (the same one: advancing it moves the engine's time).
    pub fn start(
        engine: crate::engine::Engine,
        manual: Option<ManualClock>,
        reports: Option<crate::reports::Reports>,
        options: ServiceOptions,
    ) -> Result<Services, StartError> {
        let sender = crate::outbox::WebhookSender::new(
            options.webhook_secret.clone(),
            options.webhook_timeout,
        )?;
        let delivery = crate::outbox::Delivery::new(engine.clone(), sender, options.backoff);
        let (stop, stopped) = watch::channel(false);
        let timer_wake = Arc::new(Notify::new());
        let outbox_wake = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        // Created timers wake the timer loop; every commit may have written outbox rows.
        let mut created = engine.subscribe_timers();
        let mut task_created = engine.subscribe_tasks();
        {
            let (tw, ow, mut stopped) = (timer_wake.clone(), outbox_wake.clone(), stopped.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = created.recv() => match r {
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                tw.notify_one();
                                ow.notify_one();
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        },
                        r = task_created.recv() => match r {
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => ow.notify_one(),
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        },
                        _ = stopped.changed() => return,
                    }
                }
            }));
        }
        // Timers created by other servers on the same PostgreSQL schema (NOTIFY).
        let tw = timer_wake.clone();
        if let Some(listen) = engine.store().listen_timers(
            move || tw.notify_one(),
            stopped.clone(),
            std::time::Duration::from_secs(1),
        ) {
            tasks.push(tokio::spawn(listen));
        }
        tasks.push(tokio::spawn(run_loop(
            Arc::new(engine.clone()),
            engine.clock().clone(),
            timer_wake,
            stopped.clone(),
            options.timer_loop,
        )));
        tasks.push(tokio::spawn(delivery.clone().run_loop(
            outbox_wake,
            stopped.clone(),
            options.outbox_poll,
        )));
        if let Some(r) = &reports {
            tasks.push(tokio::spawn(r.clone().run_loop(stopped)));
        }
        Ok(Services {
            engine,
            manual,
            delivery,
            reports,
            stop: Arc::new(stop),
            tasks: Arc::new(std::sync::Mutex::new(tasks)),
            advancing: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub fn engine(&self) -> &crate::engine::Engine {
        &self.engine
    }

    pub fn reports(&self) -> Option<&crate::reports::Reports> {
        self.reports.as_ref()
    }

    /// `true` when the server runs on a simulated clock.
    pub fn is_simulated(&self) -> bool {
        self.manual.is_some()
    }

    /// Delivers every due notification now (tests and drills; the loop does it anyway).
    pub async fn deliver_now(&self) -> Result<usize, crate::error::EngineError> {
        self.delivery.deliver_due().await
    }

    /// Moves the simulated clock to `to`: every timer due on the way fires in due order, then
    /// the notifications they wrote are delivered and due report jobs run, all before this
    /// returns. Refused on a real clock. Requests are served one at a time.
    pub async fn advance_to(&self, to: DateTime<Utc>) -> Result<AdvanceReport, ClockError> {
        let clock = self.manual.as_ref().ok_or(ClockError::RealClock)?;
        crate::limits::check_instant(to).map_err(|source| ClockError::OutOfRange { to, source })?;
        let _one_at_a_time = self.advancing.lock().await;
        let moved = advance(&self.engine, clock, to).await?;
        let delivered = self.delivery.deliver_due().await?;
        let reports = match &self.reports {
            Some(r) => r.run_due(to).await?.len(),
            None => 0,
        };
        Ok(AdvanceReport {
            from: moved.from,
            to: moved.to,
            fired: moved.fired,
            delivered,
            reports,
        })
    }

    /// [`Services::advance_to`] by a length of time.
    pub async fn advance_by(&self, by: chrono::Duration) -> Result<AdvanceReport, ClockError> {
        let clock = self.manual.as_ref().ok_or(ClockError::RealClock)?;
        let now = clock.now();
        let to = now
            .checked_add_signed(by)
            .ok_or(ClockError::Overflow { now, by })?;
        self.advance_to(to).await
    }

    /// Stops the loops and waits for them to end (a delivery in flight finishes first).
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use std::sync::Mutex;

    /// Timers in memory: (due, name); fired ones are recorded with the time they fired at.
    #[derive(Default)]
    struct Fake {
        pending: Mutex<Vec<(DateTime<Utc>, String)>>,
        fired: Mutex<Vec<(String, DateTime<Utc>)>>,
        queries: Mutex<usize>,
    }

    impl Fake {
        fn add(&self, due: DateTime<Utc>, name: &str) {
            self.pending.lock().unwrap().push((due, name.into()));
        }
        fn fired(&self) -> Vec<String> {
            self.fired
                .lock()
                .unwrap()
                .iter()
                .map(|f| f.0.clone())
                .collect()
        }
    }

    impl TimerSource for Fake {
        type Error = String;
        async fn fire_due(&self, now: DateTime<Utc>) -> Result<usize, String> {
            let mut pending = self.pending.lock().unwrap();
            pending.sort();
            let n = pending.iter().take_while(|t| t.0 <= now).count();
            let due: Vec<_> = pending.drain(..n).collect();
            drop(pending);
            for (_, name) in &due {
                self.fired.lock().unwrap().push((name.clone(), now));
                // A timer named "chain" creates another due at once (an overdue rung).
                if name == "chain" {
                    self.add(now, "chained");
                }
            }
            Ok(due.len())
        }
        async fn next_due(&self) -> Result<Option<DateTime<Utc>>, String> {
            *self.queries.lock().unwrap() += 1;
            Ok(self.pending.lock().unwrap().iter().map(|t| t.0).min())
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn advance_fires_in_due_order_each_at_its_due_time() {
        let fake = Fake::default();
        fake.add(t("2026-10-09T09:30:00Z"), "c");
        fake.add(t("2026-09-30T09:30:00Z"), "a");
        fake.add(t("2026-10-08T09:30:00Z"), "chain");
        fake.add(t("2026-10-01T09:30:00Z"), "b");
        fake.add(t("2026-12-01T00:00:00Z"), "later");
        let clock = ManualClock::new(t("2026-09-28T01:00:00Z"));
        let r = advance(&fake, &clock, t("2026-10-09T10:00:00Z"))
            .await
            .unwrap();
        assert_eq!(r.fired, 5);
        assert_eq!(fake.fired(), ["a", "b", "chain", "chained", "c"]);
        let at: Vec<_> = fake.fired.lock().unwrap().iter().map(|f| f.1).collect();
        assert_eq!(at[0], t("2026-09-30T09:30:00Z"));
        assert_eq!(at[3], t("2026-10-08T09:30:00Z"));
        assert_eq!(clock.now(), t("2026-10-09T10:00:00Z"));
        let back = advance(&fake, &clock, t("2026-10-01T00:00:00Z"))
            .await
            .unwrap_err();
        assert!(back.to_string().contains("cannot go back"), "{back}");
    }

    #[tokio::test]
    async fn the_loop_fires_within_a_second_and_wakes_for_sooner_timers() {
        let fake = Arc::new(Fake::default());
        let now = Utc::now();
        // Missed while down: fired at once, in order.
        fake.add(now - chrono::Duration::minutes(5), "missed2");
        fake.add(now - chrono::Duration::minutes(10), "missed1");
        fake.add(now + chrono::Duration::hours(1), "far");
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let options = LoopOptions {
            idle: std::time::Duration::from_secs(60),
            error_pause: std::time::Duration::from_millis(50),
        };
        let task = tokio::spawn(run_loop(
            fake.clone(),
            Arc::new(SystemClock),
            wake.clone(),
            stopped,
            options,
        ));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(fake.fired(), ["missed1", "missed2"]);
        // The loop now sleeps towards "far"; a sooner timer must wake it.
        let due = Utc::now() + chrono::Duration::milliseconds(400);
        fake.add(due, "soon");
        wake.notify_one();
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
        assert_eq!(fake.fired(), ["missed1", "missed2", "soon"]);
        let fired_at = fake.fired.lock().unwrap()[2].1;
        assert!(fired_at >= due && fired_at - due < chrono::Duration::seconds(1));
        // Sleeping, not polling: a handful of queries over a second, not hundreds.
        assert!(*fake.queries.lock().unwrap() < 10);
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
