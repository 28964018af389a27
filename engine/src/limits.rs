//! Limits on what one request may make the engine do. Each is refused with 422 before anything
//! is written; `docs/security.md` ("Limits") lists them with their defaults and where they are
//! set.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

/// Limits an event is held to. The defaults are the server's; `yimen serve` sets them from its
/// flags (`--max-list-items`, `--max-fan-out`, `--template-fuel`, `--max-document-bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries of one list variable (also the keys of a map variable), as given at a start,
    /// a completion or a message, or as set by an action.
    pub list_items: usize,
    /// Tasks one `for each` may create at once.
    pub fan_out: usize,
    /// Instructions one template render may run (minijinja fuel).
    pub template_fuel: u64,
    /// Bytes one rendered document or message text may have.
    pub document_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            list_items: 1_000,
            fan_out: 200,
            template_fuel: 5_000_000,
            document_bytes: 1 << 20,
        }
    }
}

/// Bytes of one template or other file deployed with a process.
pub const MAX_DEPLOYED_FILE_BYTES: usize = 512 * 1024;

/// The first year a date or time may have (variables of type date/datetime, clock moves).
pub const MIN_YEAR: i32 = 1970;
/// The last year a date or time may have.
pub const MAX_YEAR: i32 = 2200;

/// The longest clock move (`POST /clock/advance {"by": …}`): 100 years.
pub const MAX_ADVANCE_DAYS: i64 = 36_500;

/// The earliest instant the engine accepts.
pub fn min_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(MIN_YEAR, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The latest instant the engine accepts.
pub fn max_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(MAX_YEAR, 12, 31, 23, 59, 59)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Why a value is refused by a limit. The text follows the value or field it is about
/// (`2300-01-01 is outside the years …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A date or time outside [`MIN_YEAR`]–[`MAX_YEAR`].
    #[error("is outside the years {MIN_YEAR}–{MAX_YEAR} this engine accepts")]
    OutsideYears,
}

/// `Err` with what to write instead when `at` is outside the years the engine accepts.
pub fn check_instant(at: DateTime<Utc>) -> Result<(), LimitError> {
    if at < min_instant() || at > max_instant() {
        Err(LimitError::OutsideYears)
    } else {
        Ok(())
    }
}

/// `Err` when `date` is outside the years the engine accepts.
pub fn check_date(date: NaiveDate) -> Result<(), LimitError> {
    use chrono::Datelike;
    if !(MIN_YEAR..=MAX_YEAR).contains(&date.year()) {
        Err(LimitError::OutsideYears)
    } else {
        Ok(())
    }
}
