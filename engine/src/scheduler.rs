//! The timer loop: fires durable timers when they fall due.
//!
//! It sleeps until the earliest pending due time (one indexed query), and is woken early when a
//! timer is created (the engine's after-commit notification), so a real-clock timer fires
//! within a second of its due time without the database being polled in a loop. On start it
//! fires, in due order, every timer that fell due while the server was down. Firing itself is
//! the engine's: each due timer is claimed (on PostgreSQL with `SKIP LOCKED`, so with several
//! servers each fires once) and advanced as its own event.
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
    /// Longest sleep without a notification: picks up timers other servers created.
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
