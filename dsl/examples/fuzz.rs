//! A fuzzer for the process language on stable Rust: inputs mutated from the real process
//! files (`processes/`, `processes/bench/`) and the test fixtures (`dsl/tests/ok`,
//! `dsl/tests/err`) go through the parser, the checker, the diagnostics' rendering, the
//! flowchart and the formatter, on a thread with a 2 MiB stack (a tokio worker's). Each input
//! must finish without a panic, without overflowing the stack (which aborts the run) and
//! within the time limit (wall-clock time; an input over it runs again timed by the CPU time
//! of its thread, and fails if it is over the limit that way too).
//!
//! ```sh
//! cargo run --release -p yimen-dsl --example fuzz -- --count 1000000 --seed 20
//! ```
//!
//! Options: `--count N` inputs (20,000), `--seed S` (1), `--limit-ms L` per input (1,000),
//! `--only I` runs input I alone and `--dump` prints it: an input is a function of the seed
//! and its index, so a failure is reproduced by both. Mutations: byte and line splices,
//! token splices across files, grammar keywords inserted, a piece of text duplicated, and an
//! operand turned into a long chain or deep nesting (`a + a + …`, `not not …`, `- - …`,
//! `a.b.b…`, `a[0][0]…`, `((…))`, `[[…]]`, `f(f(…))`), up to thousands of levels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use yimen_dsl::graph::{Format, render as draw};

/// splitmix64: small, fast, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Words of the grammar and pieces of syntax, inserted at random.
const WORDS: &[&str] = &[
    "process",
    "version",
    "import",
    "calendar",
    "config",
    "enum",
    "from",
    "var",
    "personal",
    "required",
    "optional",
    "role",
    "per",
    "oversees",
    "informs",
    "reassigns",
    "channel",
    "url",
    "document",
    "template",
    "public",
    "clock",
    "list",
    "map",
    "start",
    "end",
    "result",
    "step",
    "task",
    "for",
    "each",
    "in",
    "queue",
    "assignee",
    "completed_by",
    "fields",
    "on",
    "enter",
    "outcome",
    "requires",
    "deadline",
    "before",
    "at",
    "due",
    "after",
    "level",
    "choice",
    "when",
    "else",
    "parallel",
    "join",
    "wait",
    "message",
    "timeout",
    "call",
    "with",
    "nowait",
    "set",
    "notify",
    "applicant",
    "holder",
    "ledger",
    "issue",
    "pause",
    "resume",
    "stop",
    "extend",
    "by",
    "date",
    "or",
    "and",
    "not",
    "true",
    "false",
    "->",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    ",",
    ";",
    ":",
    ".",
    "=",
    "==",
    "!=",
    "<=",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "\"",
    "//",
    "\n",
    " ",
    "\t",
    "3 workdays",
    "10 days",
    "2 hours",
    "0",
    "-1",
    "9223372036854775807",
    "99999999999999999999",
    "1.5",
    "\"审查\"",
    "config.x",
    "len(x)",
    "today()",
    "now()",
    "outcomes(t)",
    "date \"2026-02-30\"",
    "list<list<text>>",
    "map<text, integer>",
    "personal(id_number)",
    "\u{3000}",
    "\u{FEFF}",
];

/// Operators that join a chain of one operand.
const CHAIN_OPS: &[&str] = &[" + ", " or ", " and ", " * ", " == ", " - ", " / ", " in "];

/// A number of repetitions: mostly small, often around the expression depth limit, sometimes
/// thousands.
fn repetitions(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0..=4 => 1 + rng.below(8),
        5..=7 => 60 + rng.below(10),
        8 => 190 + rng.below(20),
        _ => 1 + rng.below(5000),
    }
}

fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A random place in `text` (on a character boundary).
fn place(rng: &mut Rng, text: &str) -> usize {
    boundary(text, rng.below(text.len() + 1))
}

/// The word (letters, digits, `_`) or the number around `at`, if any.
fn word_at(text: &str, at: usize) -> Option<(usize, usize)> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let start = text[..at]
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_word(*c))
        .last()
        .map_or(at, |(i, _)| i);
    let end = at
        + text[at..]
            .chars()
            .take_while(|c| is_word(*c))
            .map(char::len_utf8)
            .sum::<usize>();
    (end > start).then_some((start, end))
}

fn mutate(rng: &mut Rng, text: &mut String, seeds: &[String]) {
    match rng.below(9) {
        // Delete a range of bytes.
        0 => {
            let a = place(rng, text);
            let b = boundary(text, a + 1 + rng.below(40));
            text.replace_range(a..b, "");
        }
        // Insert one character: ASCII, a Chinese character, a control character.
        1 => {
            let c = match rng.below(4) {
                0 => char::from(b' ' + rng.below(95) as u8),
                1 => *rng.pick(&['审', '查', '、', '“', '\u{3000}']),
                2 => char::from(rng.below(32) as u8),
                _ => *rng.pick(&['{', '}', '(', ')', '[', ']', '"', '\\', '-', '>', '.']),
            };
            let a = place(rng, text);
            text.insert(a, c);
        }
        // Line splice: a line of any seed file inserted, a line deleted or duplicated.
        2 => {
            let donor = rng.pick(seeds);
            let lines: Vec<&str> = donor.lines().collect();
            let line = format!("{}\n", rng.pick(&lines));
            let at = line_start(text, rng);
            match rng.below(3) {
                0 => text.insert_str(at, &line),
                1 => {
                    let end = text[at..].find('\n').map_or(text.len(), |n| at + n + 1);
                    text.replace_range(at..end, "");
                }
                _ => {
                    let end = text[at..].find('\n').map_or(text.len(), |n| at + n + 1);
                    let copy = text[at..end].to_string();
                    text.insert_str(at, &copy);
                }
            }
        }
        // Token splice: a run of text of another file put at a random place.
        3 => {
            let donor = rng.pick(seeds);
            let a = place(rng, donor);
            let b = boundary(donor, a + 1 + rng.below(60));
            let piece = donor[a..b].to_string();
            let at = place(rng, text);
            text.insert_str(at, &piece);
        }
        // A grammar word.
        4 => {
            let w = *rng.pick(WORDS);
            let at = place(rng, text);
            text.insert_str(at, &format!(" {w} "));
        }
        // A piece of the text duplicated, maybe many times.
        5 => {
            let a = place(rng, text);
            let b = boundary(text, a + 1 + rng.below(200));
            let piece = text[a..b].to_string();
            let times = if rng.below(4) == 0 {
                repetitions(rng)
            } else {
                1
            };
            text.insert_str(b, &piece.repeat(times.min(2000)));
        }
        // An operand (a word or number of the text) made into a chain or a deep nesting.
        _ => {
            let at = place(rng, text);
            let Some((a, b)) = word_at(text, at) else {
                return;
            };
            let operand = text[a..b].to_string();
            let n = repetitions(rng);
            let deep = match rng.below(8) {
                0 => {
                    let op = *rng.pick(CHAIN_OPS);
                    vec![operand.as_str(); n + 1].join(op)
                }
                1 => format!("{}{operand}", "not ".repeat(n)),
                2 => format!("{}{operand}", "- ".repeat(n)),
                3 => format!("{operand}{}", ".b".repeat(n)),
                4 => format!("{operand}{}", "[0]".repeat(n)),
                5 => format!("{}{operand}{}", "(".repeat(n), ")".repeat(n)),
                6 => format!("{}{operand}{}", "[".repeat(n), "]".repeat(n)),
                _ => format!("{}{operand}{}", "len(".repeat(n), ")".repeat(n)),
            };
            text.replace_range(a..b, &deep);
        }
    }
}

fn line_start(text: &str, rng: &mut Rng) -> usize {
    let at = place(rng, text);
    text[..at].rfind('\n').map_or(0, |n| n + 1)
}

/// Input `index` of the run with `seed`.
fn input(seed: u64, index: u64, seeds: &[String]) -> String {
    let mut rng = Rng(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
    rng.next();
    let mut text = rng.pick(seeds).clone();
    let mutations = 1 + rng.below(6);
    for _ in 0..mutations {
        mutate(&mut rng, &mut text, seeds);
    }
    text
}

/// Parse, lower, check, render every diagnostic, draw the model, format (and parse what the
/// formatter wrote).
fn exercise(source: &str, files: &BTreeMap<String, String>) {
    let load = |rel: &str| files.get(rel).cloned();
    let compiled = yimen_dsl::compile("fuzz.flow", source, &load);
    let index = yimen_dsl::diagnostic::LineIndex::new(source);
    for diag in &compiled.diagnostics {
        let out = if diag.file == "fuzz.flow" {
            yimen_dsl::diagnostic::render_indexed(diag, source, &index)
        } else {
            yimen_dsl::diagnostic::render(diag, &load(&diag.file).unwrap_or_default())
        };
        assert!(
            out.contains(diag.code),
            "a diagnostic renders with its code"
        );
    }
    if let Some(process) = &compiled.process {
        draw(process, Format::Dot);
        draw(process, Format::Mermaid);
    }
    if let Ok(formatted) = yimen_dsl::fmt::format_source("fuzz.flow", source) {
        yimen_dsl::parse("fuzz.flow", &formatted).expect("what the formatter writes parses");
    }
}

fn read_flows(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.extension().is_some_and(|x| x == "flow")
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            out.push(text);
        }
    }
}

/// The files a process may name (configurations, templates, imports), by relative path.
fn named_files(root: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for dir in [
        "processes",
        "processes/bench",
        "dsl/tests/support",
        "dsl/tests/err",
    ] {
        let base = root.join(dir);
        let mut stack = vec![base.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let (Ok(rel), Ok(text)) =
                    (p.strip_prefix(&base), std::fs::read_to_string(&p))
                {
                    files
                        .entry(rel.to_string_lossy().into_owned())
                        .or_insert(text);
                }
            }
        }
    }
    files
}

/// What to run: `count` inputs of `seed`, each within `limit`; or input `only` alone.
pub struct Args {
    pub count: u64,
    pub seed: u64,
    pub limit: Duration,
    pub only: Option<u64>,
    pub dump: bool,
}

fn args() -> Args {
    let mut a = Args {
        count: 20_000,
        seed: 1,
        limit: Duration::from_millis(1_000),
        only: None,
        dump: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a whole number"))
        };
        match arg.as_str() {
            "--count" => a.count = number("--count"),
            "--seed" => a.seed = number("--seed"),
            "--limit-ms" => a.limit = Duration::from_millis(number("--limit-ms")),
            "--only" => a.only = Some(number("--only")),
            "--dump" => a.dump = true,
            other => panic!("unknown option {other}; see the top of dsl/examples/fuzz.rs"),
        }
    }
    a
}

fn main() {
    let failures = fuzz(args());
    std::process::exit(i32::from(failures > 0));
}

/// Runs `args` on a thread with a 2 MiB stack; returns the number of failures (panics and
/// slow inputs; a stack overflow aborts the process).
pub fn fuzz(args: Args) -> u64 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seeds = Vec::new();
    for dir in [
        "processes",
        "processes/bench",
        "dsl/tests/ok",
        "dsl/tests/err",
    ] {
        read_flows(&root.join(dir), &mut seeds);
    }
    assert!(!seeds.is_empty(), "no seed files found");
    let files = named_files(&root);
    let worker = std::thread::Builder::new()
        .name("fuzz".into())
        .stack_size(2 << 20)
        .spawn(move || run(&args, &seeds, &files))
        .expect("the fuzz thread starts");
    worker.join().expect("the fuzz thread ends")
}

/// CPU time this thread has run (Linux: `/proc/thread-self/schedstat`, in nanoseconds).
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Runs the inputs; returns the number of failures (panics and slow inputs).
fn run(args: &Args, seeds: &[String], files: &BTreeMap<String, String>) -> u64 {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let range = match args.only {
        Some(i) => i..i + 1,
        None => 0..args.count,
    };
    let (mut failures, mut slowest, mut bytes) = (0u64, (Duration::ZERO, 0u64), 0u64);
    for index in range {
        let text = input(args.seed, index, seeds);
        if args.dump {
            println!("{text}");
        }
        bytes += text.len() as u64;
        if std::env::var_os("FUZZ_TRACE").is_some() {
            eprintln!("input {index}");
        }
        let t = Instant::now();
        let outcome = std::panic::catch_unwind(|| exercise(&text, files));
        let mut took = t.elapsed();
        if outcome.is_ok() && took > args.limit {
            // Once more, timed by the CPU time of this thread where Linux tells it: on a busy
            // machine the wall clock counts the time other processes ran.
            let (t, cpu) = (Instant::now(), cpu_time());
            let _ = std::panic::catch_unwind(|| exercise(&text, files));
            let again = match (cpu, cpu_time()) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => t.elapsed(),
            };
            took = took.min(again);
        }
        if took > slowest.0 {
            slowest = (took, index);
        }
        if let Err(panic) = outcome {
            failures += 1;
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            eprintln!(
                "PANIC input {index} (--seed {} --only {index} --dump): {message}",
                args.seed
            );
        } else if took > args.limit {
            failures += 1;
            eprintln!(
                "SLOW input {index} (--seed {} --only {index} --dump): {took:?}",
                args.seed
            );
        }
        if index > 0 && index % 100_000 == 0 {
            eprintln!(
                "{index} inputs, {:?}, {failures} failures",
                started.elapsed()
            );
        }
    }
    let n = args.only.map_or(args.count, |_| 1);
    println!(
        "fuzz: {n} inputs ({} MB) from {} seed files, seed {}, in {:.1?}: {failures} failures; slowest input {} took {:?} (limit {:?})",
        bytes / 1_000_000,
        seeds.len(),
        args.seed,
        started.elapsed(),
        slowest.1,
        slowest.0,
        args.limit
    );
    std::panic::set_hook(hook);
    failures
}
