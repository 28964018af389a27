//! The engine's only source of "now". Nothing in the engine calls `Utc::now()` directly:
//! tests and drills run on a [`ManualClock`] that moves only when told to.

use chrono::{DateTime, TimeZone, Utc};
use std::sync::{Arc, Mutex};

/// A time as people read it (history, `yimen instance`, the ledger CSV, reports): local time
/// in the zone of `at` with its offset, `2026-10-08 09:30:00 +08:00`. Callers convert to the
/// calendar's zone first (`at.with_timezone(&calendar.time_zone())`).
pub fn readable<Tz: TimeZone>(at: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    at.format("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// Source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
    /// `true` for a simulated clock (`yimen serve --clock`); only such a clock may be advanced.
    fn is_manual(&self) -> bool {
        false
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A simulated clock: time moves only through [`ManualClock::set`] / [`ManualClock::advance`].
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock to `to`. Time never goes backwards: an earlier `to` is refused.
    pub fn set(&self, to: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        if to < *now {
            return Err(*now);
        }
        *now = to;
        Ok(())
    }

    pub fn advance(&self, by: chrono::Duration) -> Result<DateTime<Utc>, DateTime<Utc>> {
        let target = self.now() + by;
        self.set(target)?;
        Ok(target)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn is_manual(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let start = "2026-09-28T01:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        let later = clock.advance(chrono::Duration::hours(2)).unwrap();
        assert_eq!(clock.now(), later);
        assert_eq!(clock.set(start), Err(later));
        assert_eq!(clock.now(), later);
    }
}
