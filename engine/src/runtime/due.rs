//! The bridge to working-day calendars: the runtime asks a [`DueDates`] for due times.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveTime, TimeZone, Utc, Weekday};
use yimen_dsl::model::DurationUnit;

/// A computed due time.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub at: DateTime<Utc>,
    /// Computed without holiday data for some year (weekends only): recompute later.
    pub provisional: bool,
    /// Human explanation (calendar, holidays skipped), for the timeline.
    pub explanation: String,
}

/// Computes due times of durations; [`crate::calendar::Calendars`] implements it with real
/// working-day calendars, [`WeekdaysOnly`] without holiday data.
pub trait DueDates: Send + Sync + std::fmt::Debug {
    /// "`amount` `unit` after `from`" on the named calendar (`None`: the default calendar).
    fn add(
        &self,
        calendar: Option<&str>,
        from: DateTime<Utc>,
        amount: i64,
        unit: DurationUnit,
    ) -> Due;

    /// Names of the calendars a process may name (`None`: not known, the checker's default).
    fn calendar_names(&self) -> Option<Vec<String>> {
        None
    }

    /// The calendars without working-day data for `year` (`None`: no calendars, nothing to
    /// cover). Readiness (`GET /api/v1/ready`) asks it for the current year.
    fn uncovered(&self, _year: i32) -> Option<Vec<String>> {
        None
    }

    /// Where the calendars were looked for, for the error that refuses a process naming a
    /// calendar that is not loaded (`None`: not from a folder).
    fn calendar_source(&self) -> Option<String> {
        None
    }

    /// The time zone of the named calendar (`None`: the default calendar): the zone in which
    /// people read times ([`crate::clock::readable`]). Without calendars: UTC+8, as counted.
    fn time_zone(&self, _calendar: Option<&str>) -> chrono_tz::Tz {
        chrono_tz::Asia::Shanghai
    }

    /// "`amount` `unit` before `due`" (reminders of a ladder).
    fn before(
        &self,
        _calendar: Option<&str>,
        due: DateTime<Utc>,
        amount: i64,
        unit: DurationUnit,
    ) -> Due {
        let length = match unit {
            DurationUnit::WorkDays | DurationUnit::Days => Duration::days(amount),
            DurationUnit::WorkHours | DurationUnit::Hours => Duration::hours(amount),
            DurationUnit::Minutes => Duration::minutes(amount),
        };
        Due {
            at: due - length,
            provisional: matches!(unit, DurationUnit::WorkDays | DurationUnit::WorkHours),
            explanation: "counted back in plain time (no calendar)".into(),
        }
    }

    /// How "`amount` `unit` after `from`" is counted on the named calendar: the days skipped
    /// and counted, for people (`crate::deadlines`). `None`: no calendar to say it.
    fn explain_add(
        &self,
        _calendar: Option<&str>,
        _from: DateTime<Utc>,
        _amount: i64,
        _unit: DurationUnit,
    ) -> Option<crate::calendar::Explanation> {
        None
    }

    /// How "`minutes` of office time after `from`" is counted, as [`DueDates::explain_add`].
    fn explain_office_minutes(
        &self,
        _calendar: Option<&str>,
        _from: DateTime<Utc>,
        _minutes: i64,
    ) -> Option<crate::calendar::Explanation> {
        None
    }

    /// Office minutes from `a` to `b` (the remaining working time of a paused clock).
    fn office_minutes_between(
        &self,
        _calendar: Option<&str>,
        a: DateTime<Utc>,
        b: DateTime<Utc>,
    ) -> i64 {
        (b - a).num_minutes().max(0)
    }

    /// `minutes` of office time after `from` (a resumed clock's new due time).
    fn add_office_minutes(
        &self,
        _calendar: Option<&str>,
        from: DateTime<Utc>,
        minutes: i64,
    ) -> Due {
        Due {
            at: from + Duration::minutes(minutes),
            provisional: true,
            explanation: "plain time (no calendar)".into(),
        }
    }
}

impl DueDates for crate::calendar::Calendars {
    fn calendar_names(&self) -> Option<Vec<String>> {
        Some(self.names().map(str::to_string).collect())
    }

    fn uncovered(&self, year: i32) -> Option<Vec<String>> {
        Some(
            self.names()
                .filter(|name| self.get(name).is_some_and(|c| !c.covers(year)))
                .map(str::to_string)
                .collect(),
        )
    }

    fn time_zone(&self, calendar: Option<&str>) -> chrono_tz::Tz {
        self.resolve(calendar)
            .map_or(chrono_tz::Asia::Shanghai, |c| c.time_zone())
    }

    fn add(
        &self,
        calendar: Option<&str>,
        from: DateTime<Utc>,
        amount: i64,
        unit: DurationUnit,
    ) -> Due {
        due(crate::calendar::Calendars::add(
            self, calendar, from, amount, unit,
        ))
    }
    fn before(
        &self,
        calendar: Option<&str>,
        at: DateTime<Utc>,
        amount: i64,
        unit: DurationUnit,
    ) -> Due {
        due(crate::calendar::Calendars::before(
            self, calendar, at, amount, unit,
        ))
    }
    fn office_minutes_between(
        &self,
        calendar: Option<&str>,
        a: DateTime<Utc>,
        b: DateTime<Utc>,
    ) -> i64 {
        crate::calendar::Calendars::office_minutes_between(self, calendar, a, b)
    }
    fn add_office_minutes(&self, calendar: Option<&str>, from: DateTime<Utc>, minutes: i64) -> Due {
        due(crate::calendar::Calendars::add_office_minutes(
            self, calendar, from, minutes,
        ))
    }
    fn explain_add(
        &self,
        calendar: Option<&str>,
        from: DateTime<Utc>,
        amount: i64,
        unit: DurationUnit,
    ) -> Option<crate::calendar::Explanation> {
        Some(crate::calendar::Calendars::add(self, calendar, from, amount, unit).explanation)
    }
    fn explain_office_minutes(
        &self,
        calendar: Option<&str>,
        from: DateTime<Utc>,
        minutes: i64,
    ) -> Option<crate::calendar::Explanation> {
        Some(
            crate::calendar::Calendars::add_office_minutes(self, calendar, from, minutes)
                .explanation,
        )
    }
}

/// The calendars of a folder, loaded again while the server runs (an administrator adds next
/// year): the engine keeps one `Arc<dyn DueDates>`, [`ReloadingCalendars::reload`] swaps what
/// is behind it. A folder that no longer loads never replaces calendars that did.
#[derive(Debug)]
pub struct ReloadingCalendars {
    dir: std::path::PathBuf,
    /// Calendar files built into the binary, used for the names the folder has no file of
    /// ([`crate::calendar::Calendars::load_dir_or_builtin`]).
    builtin: &'static [(&'static str, &'static str)],
    current: std::sync::RwLock<std::sync::Arc<crate::calendar::Calendars>>,
}

impl ReloadingCalendars {
    /// Loads the calendars of `dir`.
    pub fn load(dir: &std::path::Path) -> Result<Self, crate::calendar::CalendarError> {
        Self::load_with_builtin(dir, &[])
    }

    /// Loads the calendars of `dir` and the `builtin` ones the folder has no file of (see
    /// [`crate::calendar::Calendars::load_dir_or_builtin`]); reloads the same way.
    pub fn load_with_builtin(
        dir: &std::path::Path,
        builtin: &'static [(&'static str, &'static str)],
    ) -> Result<Self, crate::calendar::CalendarError> {
        let calendars = crate::calendar::Calendars::load_dir_or_builtin(dir, builtin)?;
        let mut loaded = Self::new(dir, calendars);
        loaded.builtin = builtin;
        Ok(loaded)
    }

    /// Already loaded `calendars`, to be reloaded from `dir`.
    pub fn new(dir: &std::path::Path, calendars: crate::calendar::Calendars) -> Self {
        Self {
            dir: dir.to_path_buf(),
            builtin: &[],
            current: std::sync::RwLock::new(std::sync::Arc::new(calendars)),
        }
    }

    /// The folder the calendars come from.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The calendars in use now.
    pub fn current(&self) -> std::sync::Arc<crate::calendar::Calendars> {
        // A poisoned lock still holds a whole `Arc` (the swap is one assignment).
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Loads the folder again. When some calendar's version differs from the loaded one, swaps
    /// the new calendars in and returns the versions before and after; `Ok(None)`: unchanged.
    /// A folder that does not load leaves the loaded calendars in place and returns the error.
    #[allow(clippy::type_complexity)]
    pub fn reload(
        &self,
    ) -> Result<
        Option<(
            std::collections::BTreeMap<String, String>,
            std::collections::BTreeMap<String, String>,
        )>,
        crate::calendar::CalendarError,
    > {
        let fresh = crate::calendar::Calendars::load_dir_or_builtin(&self.dir, self.builtin)?;
        let (before, after) = (self.current().versions(), fresh.versions());
        if before == after {
            return Ok(None);
        }
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::sync::Arc::new(fresh);
        Ok(Some((before, after)))
    }
}

impl DueDates for ReloadingCalendars {
    fn calendar_names(&self) -> Option<Vec<String>> {
        DueDates::calendar_names(&*self.current())
    }
    fn uncovered(&self, year: i32) -> Option<Vec<String>> {
        DueDates::uncovered(&*self.current(), year)
    }
    fn calendar_source(&self) -> Option<String> {
        let dir = std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let missing = if self.dir.is_dir() {
            ""
        } else {
            ", which does not exist"
        };
        Some(if self.builtin.is_empty() {
            format!("the folder {}{missing}", dir.display())
        } else {
            format!(
                "the folder {}{missing}, and the calendars built into the binary",
                dir.display()
            )
        })
    }
    fn time_zone(&self, calendar: Option<&str>) -> chrono_tz::Tz {
        DueDates::time_zone(&*self.current(), calendar)
    }
    fn add(
        &self,
        calendar: Option<&str>,
        from: DateTime<Utc>,
        amount: i64,
        unit: DurationUnit,
    ) -> Due {
        DueDates::add(&*self.current(), calendar, from, amount, unit)
    }
    fn before(
        &self,
        calendar: Option<&str>,
        at: DateTime<Utc>,
        amount: i64,
        unit: DurationUnit,
    ) -> Due {
        DueDates::before(&*self.current(), calendar, at, amount, unit)
    }
    fn office_minutes_between(
        &self,
        calendar: Option<&str>,
        a: DateTime<Utc>,
        b: DateTime<Utc>,
    ) -> i64 {
        DueDates::office_minutes_between(&*self.current(), calendar, a, b)
    }
    fn add_office_minutes(&self, calendar: Option<&str>, from: DateTime<Utc>, minutes: i64) -> Due {
        DueDates::add_office_minutes(&*self.current(), calendar, from, minutes)
    }
    fn explain_add(
        &self,
        calendar: Option<&str>,
        from: DateTime<Utc>,
        amount: i64,
        unit: DurationUnit,
    ) -> Option<crate::calendar::Explanation> {
        DueDates::explain_add(&*self.current(), calendar, from, amount, unit)
    }
    fn explain_office_minutes(
        &self,
        calendar: Option<&str>,
        from: DateTime<Utc>,
        minutes: i64,
    ) -> Option<crate::calendar::Explanation> {
        DueDates::explain_office_minutes(&*self.current(), calendar, from, minutes)
    }
}

fn due(d: crate::calendar::Due) -> Due {
    Due {
        at: d.at,
        provisional: d.provisional,
        explanation: d.explanation.to_string(),
    }
}

/// Monday–Friday, 08:30–17:30 UTC+8, no holidays. Working-day results are flagged provisional.
#[derive(Debug, Default, Clone, Copy)]
pub struct WeekdaysOnly;

fn is_workday(d: chrono::NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

impl DueDates for WeekdaysOnly {
    fn add(&self, _: Option<&str>, from: DateTime<Utc>, amount: i64, unit: DurationUnit) -> Due {
        let tz = FixedOffset::east_opt(8 * 3600).expect("valid offset");
        let close = NaiveTime::from_hms_opt(17, 30, 0).expect("valid time");
        let at_close = |d: chrono::NaiveDate| {
            tz.from_local_datetime(&d.and_time(close))
                .single()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(from)
        };
        let plain = |d: Duration| Due {
            at: from + d,
            provisional: false,
            explanation: "plain elapsed time".into(),
        };
        match unit {
            DurationUnit::Minutes => plain(Duration::minutes(amount)),
            DurationUnit::Hours => plain(Duration::hours(amount)),
            DurationUnit::WorkHours => Due {
                // Approximation until the calendar lands: nine office hours a working day.
                at: from + Duration::hours(amount),
                provisional: true,
                explanation: "weekdays-only calendar (no holiday data)".into(),
            },
            DurationUnit::Days => {
                let mut d = from.with_timezone(&tz).date_naive() + Duration::days(amount);
                while !is_workday(d) {
                    d += Duration::days(1);
                }
                Due {
                    at: at_close(d),
                    provisional: true,
                    explanation: "weekdays-only calendar (no holiday data)".into(),
                }
            }
            DurationUnit::WorkDays => {
                let mut d = from.with_timezone(&tz).date_naive();
                let mut left = amount.max(0);
                while left > 0 {
                    d += Duration::days(1);
                    if is_workday(d) {
                        left -= 1;
                    }
                }
                Due {
                    at: at_close(d),
                    provisional: true,
                    explanation: "weekdays-only calendar (no holiday data)".into(),
                }
            }
        }
    }
}
