//! `yimen calendar days|add|between|check`: the engine's calendar code on the command line.
//! Scripts depend on the output formats; `docs/time.md` documents them.

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use yimen_dsl::model::DurationUnit;
use yimen_engine::calendar::{Calendar, Calendars, MissingYear, check_text};

/// Exit status for a date outside the years the calendar data covers.
const MISSING_YEAR: u8 = 2;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List dates: `YYYY-MM-DD workday|rest[ name]`, one line per date.
    Days {
        /// First date (YYYY-MM-DD).
        from: NaiveDate,
        /// Last date, inclusive.
        to: NaiveDate,
        #[command(flatten)]
        common: Common,
    },
    /// Due date of "within N working days of DATE": `YYYY-MM-DD HH:MM` (close of office hours).
    Add {
        /// The event: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM` (calendar time zone) or RFC 3339.
        date: String,
        /// How many units (working days unless --unit says otherwise).
        n: i64,
        /// Unit of N.
        #[arg(long, value_enum, default_value_t = Unit::Workdays)]
        unit: Unit,
        /// Also print how the date was computed (holidays skipped, make-up days counted).
        #[arg(long)]
        explain: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Number of working days after A up to and including B.
    Between {
        a: NaiveDate,
        b: NaiveDate,
        #[command(flatten)]
        common: Common,
    },
    /// Validate calendar files (all of --calendars DIR when FILE is not given).
    Check {
        file: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(clap::Args)]
pub struct Common {
    /// Folder of calendar files.
    #[arg(long, default_value = "calendars")]
    calendars: PathBuf,
    /// Calendar to use (its `name:`).
    #[arg(long, default_value = "cn_mainland")]
    calendar: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Unit {
    Workdays,
    Workhours,
    Days,
    Hours,
    Minutes,
}

impl From<Unit> for DurationUnit {
    fn from(unit: Unit) -> Self {
        match unit {
            Unit::Workdays => DurationUnit::WorkDays,
            Unit::Workhours => DurationUnit::WorkHours,
            Unit::Days => DurationUnit::Days,
            Unit::Hours => DurationUnit::Hours,
            Unit::Minutes => DurationUnit::Minutes,
        }
    }
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Days { from, to, common } => {
            let calendars = load(&common.calendars)?;
            let calendar = pick(&calendars, &common)?;
            if to < from {
                bail!("TO ({to}) is before FROM ({from}): give the earlier date first");
            }
            let mut out = String::new();
            for date in from.iter_days().take_while(|d| *d <= to) {
                let info = match calendar.day(date) {
                    Ok(info) => info,
                    Err(missing) => return Ok(missing_year(&missing)),
                };
                out.push_str(&format!(
                    "{date} {}",
                    if info.workday { "workday" } else { "rest" }
                ));
                if let Some(name) = info.name {
                    out.push(' ');
                    out.push_str(&name);
                }
                out.push('\n');
            }
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Add {
            date,
            n,
            unit,
            explain,
            common,
        } => {
            let calendars = load(&common.calendars)?;
            let calendar = pick(&calendars, &common)?;
            let from = parse_event(calendar, &date)?;
            let local_day = from.with_timezone(&calendar.time_zone()).date_naive();
            if let Err(missing) = calendar.day(local_day) {
                return Ok(missing_year(&missing));
            }
            let due = calendar.add(from, n, unit.into());
            println!(
                "{}",
                due.at
                    .with_timezone(&calendar.time_zone())
                    .format("%Y-%m-%d %H:%M")
            );
            if explain {
                println!("{}", due.explanation);
            }
            if due.provisional {
                let years: Vec<String> = due.missing_years.iter().map(i32::to_string).collect();
                eprintln!(
                    "error: provisional: calendar `{}` has no data for {} (counted with weekends \
                     only); add the year's arrangement to {} and run `yimen calendar check`",
                    calendar.name(),
                    years.join(", "),
                    calendar.data_file().display()
                );
                return Ok(ExitCode::from(MISSING_YEAR));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Between { a, b, common } => {
            let calendars = load(&common.calendars)?;
            let calendar = pick(&calendars, &common)?;
            match calendar.between(a, b) {
                Ok(n) => {
                    println!("{n}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(missing) => Ok(missing_year(&missing)),
            }
        }
        Command::Check { file, common } => check(file.as_deref(), &common.calendars),
    }
}

fn missing_year(missing: &MissingYear) -> ExitCode {
    eprintln!("error: {missing}");
    ExitCode::from(MISSING_YEAR)
}

fn load(dir: &Path) -> anyhow::Result<Calendars> {
    Calendars::load_dir(dir).with_context(|| {
        format!(
            "cannot load calendars from {} (run `yimen calendar check` for details)",
            dir.display()
        )
    })
}

fn pick<'a>(calendars: &'a Calendars, common: &Common) -> anyhow::Result<&'a Calendar> {
    let calendar = calendars.get(&common.calendar).with_context(|| {
        let names: Vec<&str> = calendars.names().collect();
        format!(
            "no calendar `{}` in {}: use --calendar with one of {}",
            common.calendar,
            common.calendars.display(),
            names.join(", ")
        )
    })?;
    if calendar.is_example() {
        eprintln!(
            "note: calendar `{}` is example data, not for real deadlines",
            calendar.name()
        );
    }
    Ok(calendar)
}

/// Reads the event time: a date (its start), a local date and time, or an RFC 3339 instant.
fn parse_event(calendar: &Calendar, text: &str) -> anyhow::Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        d.and_time(chrono::NaiveTime::MIN)
    } else if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
    {
        t
    } else {
        bail!(
            "cannot read the date `{text}`: write YYYY-MM-DD, `YYYY-MM-DD HH:MM` or an RFC 3339 \
             time such as 2026-09-30T15:00:00+08:00"
        );
    };
    calendar
        .time_zone()
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("{text} does not exist in {}", calendar.time_zone()))
}

/// The `*.yaml` files of `dir`, sorted.
fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

fn check(file: Option<&Path>, dir: &Path) -> anyhow::Result<ExitCode> {
    let stem_of = |p: &Path| p.file_stem().and_then(|s| s.to_str()).map(str::to_string);
    let (files, set) = match file {
        Some(f) => {
            // The draft replaces the folder's file of the same name, so layers and bases are
            // checked together with it.
            let stem = stem_of(f);
            let mut set: Vec<PathBuf> = yaml_files(dir)
                .unwrap_or_default()
                .into_iter()
                .filter(|p| stem_of(p) != stem)
                .collect();
            set.push(f.to_path_buf());
            (vec![f.to_path_buf()], set)
        }
        None => {
            let files = yaml_files(dir)?;
            if files.is_empty() {
                bail!(
                    "no calendar files (*.yaml) in {}: point --calendars at the calendars folder",
                    dir.display()
                );
            }
            (files.clone(), files)
        }
    };
    let mut failed = false;
    for path in &files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let issues = check_text(&text, stem_of(path).as_deref());
        for issue in &issues {
            let at = issue.line.map(|l| format!(":{l}")).unwrap_or_default();
            println!("{}{at}: {}", path.display(), issue.message);
            println!("  help: {}", issue.help);
        }
        failed |= !issues.is_empty();
    }
    if failed {
        return Ok(ExitCode::from(1));
    }
    // Each file is sound on its own; now all of them as the engine loads them (layers, names).
    let calendars = match Calendars::load_files(&set) {
        Ok(c) => c,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    for path in &files {
        let Some(calendar) = stem_of(path).and_then(|s| calendars.get(&s)) else {
            println!("{}: ok", path.display());
            continue;
        };
        let years: Vec<i32> = calendar.years().collect();
        let span = match (years.first(), years.last()) {
            _ if calendar.covers_every_year() => "every year".to_string(),
            (Some(a), Some(b)) => format!("{a}-{b}"),
            _ => "no years".to_string(),
        };
        let example = if calendar.is_example() {
            ", EXAMPLE data"
        } else {
            ""
        };
        println!(
            "{}: ok ({}, {span}, version {}{example})",
            path.display(),
            calendar.name(),
            calendar.version()
        );
    }
    Ok(ExitCode::SUCCESS)
}
