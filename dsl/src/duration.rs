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

/// Reads duration text: the one reader of durations written as text, used by the checker
/// (YAML configuration values) and by the runtime (configuration, variables, values given
/// through the API). A whole number of 0 or more, then a unit, with or without a space between:
/// `30 workdays`, `30workdays`, `4 workhours`, `7 days`, `2 hours`, `15 minutes`, or in Chinese
/// `30 工作日`, `30工作日`, `4工作小时`, `7天`, `7日`, `2小时`, `15分钟`; a Chinese unit may take
/// `个` before it (`30个工作日`, `4个工作小时`, `2个小时`). Anything else is an error that says
/// what to write (a negative number, a fraction, an unknown unit, no unit).
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let example = "write a whole number and a unit, e.g. `30 workdays` or `30个工作日`";
    if let Some(rest) = t.strip_prefix('-')
        && rest.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!(
            "`{text}`: a duration cannot be negative; write a whole number of 0 or more, e.g. `{rest}`"
        ));
    }
    let digits_end = t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(t.len(), |(i, _)| i);
    if digits_end == 0 {
        return Err(format!("`{text}` is not a duration: {example}"));
    }
    let amount = t[..digits_end]
        .parse::<i64>()
        .map_err(|_| format!("`{text}`: the number is too large"))?;
    let rest = &t[digits_end..];
    if rest.starts_with(['.', ',']) && rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "`{text}`: a duration is a whole number of its unit; use a smaller unit \
             (`4 workhours` rather than `0.5 workdays`)"
        ));
    }
    let word = rest.trim_start();
    if word.is_empty() {
        return Err(format!(
            "`{text}` has no unit: write e.g. `{amount} workdays` or `{amount} days`"
        ));
    }
    // `个` is a measure word before a Chinese unit: 30个工作日, 2个小时.
    let unit = match word.strip_prefix('个') {
        Some(chinese) => unit_from_word(chinese.trim_start()).filter(|_| !chinese.is_ascii()),
        None => unit_from_word(word),
    };
    match unit {
        Some(unit) => Ok(Duration { amount, unit }),
        None => Err(format!(
            "`{word}` is not a duration unit: use workdays (工作日), workhours (工作小时), days \
             (天 or 日), hours (小时) or minutes (分钟)"
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
            ("30workdays", Some((30, DurationUnit::WorkDays))),
            ("1 workday", Some((1, DurationUnit::WorkDays))),
            ("4 workhours", Some((4, DurationUnit::WorkHours))),
            ("7 days", Some((7, DurationUnit::Days))),
            ("  2 hours ", Some((2, DurationUnit::Hours))),
            ("15 minutes", Some((15, DurationUnit::Minutes))),
            ("0 days", Some((0, DurationUnit::Days))),
            ("30工作日", Some((30, DurationUnit::WorkDays))),
            ("30 工作日", Some((30, DurationUnit::WorkDays))),
            ("30个工作日", Some((30, DurationUnit::WorkDays))),
            ("30 个工作日", Some((30, DurationUnit::WorkDays))),
            ("4 工作小时", Some((4, DurationUnit::WorkHours))),
            ("4个工作小时", Some((4, DurationUnit::WorkHours))),
            ("7天", Some((7, DurationUnit::Days))),
            ("7 日", Some((7, DurationUnit::Days))),
            ("2个小时", Some((2, DurationUnit::Hours))),
            ("15分钟", Some((15, DurationUnit::Minutes))),
            ("30", None),
            ("days", None),
            ("3 weeks", None),
            ("-3 days", None),
            ("1.5 days", None),
            ("3 个days", None),
            ("3 个", None),
            ("99999999999999999999 days", None),
        ];
        for (text, want) in cases {
            let got = parse(text).ok().map(|d| (d.amount, d.unit));
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn errors_say_what_to_write() {
        let negative = parse("-3 workdays").unwrap_err();
        assert!(negative.contains("cannot be negative"), "{negative}");
        assert!(negative.contains("`3 workdays`"), "{negative}");
        let fraction = parse("0.5 workdays").unwrap_err();
        assert!(fraction.contains("whole number"), "{fraction}");
        let unit = parse("3 weeks").unwrap_err();
        assert!(
            unit.contains("`weeks`") && unit.contains("工作日"),
            "{unit}"
        );
        assert!(parse("30").unwrap_err().contains("no unit"));
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
