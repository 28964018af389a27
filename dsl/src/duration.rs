//! Duration text, the one reader used everywhere: process literals (`3 workdays`) and YAML
//! configuration values (`"30 workdays"`, `"7 days"`, `"4 workhours"`).

use crate::model::DurationUnit;

/// A duration: a whole amount of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duration {
    pub amount: i64,
    pub unit: DurationUnit,
}

/// The unit a word names (`workdays`, `workday`, `days`, `工作日`, ...), if any.
pub fn unit_from_word(word: &str) -> Option<DurationUnit> {
    Some(match word {
        "workdays" | "workday" | "工作日" => DurationUnit::WorkDays,
        "workhours" | "workhour" | "工作小时" => DurationUnit::WorkHours,
        "days" | "day" | "天" | "日" => DurationUnit::Days,
        "hours" | "hour" | "小时" => DurationUnit::Hours,
        "minutes" | "minute" | "分钟" => DurationUnit::Minutes,
        _ => return None,
    })
}

/// The canonical word for a unit as `yimen fmt` writes it: singular for one (`1 workday`),
/// plural otherwise.
pub fn unit_word(unit: DurationUnit, amount: i64) -> &'static str {
    let one = amount == 1;
    match (unit, one) {
        (DurationUnit::WorkDays, true) => "workday",
        (DurationUnit::WorkDays, false) => "workdays",
        (DurationUnit::WorkHours, true) => "workhour",
        (DurationUnit::WorkHours, false) => "workhours",
        (DurationUnit::Days, true) => "day",
        (DurationUnit::Days, false) => "days",
        (DurationUnit::Hours, true) => "hour",
        (DurationUnit::Hours, false) => "hours",
        (DurationUnit::Minutes, true) => "minute",
        (DurationUnit::Minutes, false) => "minutes",
    }
}

/// Reads duration text such as `"30 workdays"`, `"7 days"`, `"4 workhours"` or `"30工作日"`.
/// The error says what is wrong and which units exist.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let digits_end = t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(t.len(), |(i, _)| i);
    if digits_end == 0 {
        return Err(format!(
            "`{text}` is not a duration: write a whole number and a unit, e.g. `30 workdays`"
        ));
    }
    let amount = t[..digits_end]
        .parse::<i64>()
        .map_err(|_| format!("`{text}`: the number is too large"))?;
    let word = t[digits_end..].trim();
    if word.is_empty() {
        return Err(format!(
            "`{text}` has no unit: write e.g. `{amount} workdays` or `{amount} days`"
        ));
    }
    match unit_from_word(word) {
        Some(unit) => Ok(Duration { amount, unit }),
        None => Err(format!(
            "`{word}` is not a duration unit: use workdays, workhours, days, hours or minutes"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_unit_and_rejects_nonsense() {
        let cases = [
            ("30 workdays", Some((30, DurationUnit::WorkDays))),
            ("1 workday", Some((1, DurationUnit::WorkDays))),
            ("4 workhours", Some((4, DurationUnit::WorkHours))),
            ("7 days", Some((7, DurationUnit::Days))),
            ("  2 hours ", Some((2, DurationUnit::Hours))),
            ("15 minutes", Some((15, DurationUnit::Minutes))),
            ("30工作日", Some((30, DurationUnit::WorkDays))),
            ("30", None),
            ("days", None),
            ("3 weeks", None),
            ("-3 days", None),
            ("99999999999999999999 days", None),
        ];
        for (text, want) in cases {
            let got = parse(text).ok().map(|d| (d.amount, d.unit));
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn canonical_words_read_back() {
        for unit in [
            DurationUnit::WorkDays,
            DurationUnit::WorkHours,
            DurationUnit::Days,
            DurationUnit::Hours,
            DurationUnit::Minutes,
        ] {
            for amount in [1, 2] {
                assert_eq!(unit_from_word(unit_word(unit, amount)), Some(unit));
            }
        }
    }
}
