//! The config file of `yimen serve` (`yimen.toml`, docs/operations.md): each key is a flag of
//! `serve` without its dashes, its value what the flag would take.
//!
//! Precedence: command line > environment (`YIMEN_…`) > file > built-in default. The file's
//! values become the flags' defaults before clap parses, so clap's own order (command line,
//! then environment, then default) gives exactly that, and `--help` shows them as defaults.
//! A key that is no flag is refused, naming the key and the file.

use anyhow::{Context, bail};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The file read when `--config` and `YIMEN_CONFIG` name none, if it exists.
pub const DEFAULT_FILE: &str = "yimen.toml";

/// `command` with the defaults of `serve` taken from its config file, when `args` (the whole
/// command line, program name first) run `serve` and a file is named or `./yimen.toml` exists.
pub fn apply(command: clap::Command, args: &[OsString]) -> anyhow::Result<clap::Command> {
    if args.get(1).and_then(|a| a.to_str()) != Some("serve") {
        return Ok(command);
    }
    let named = named_file(&args[2..])
        .or_else(|| std::env::var_os("YIMEN_CONFIG").map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty());
    let file = match named {
        Some(file) => file,
        None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
        None => return Ok(command),
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read the config file {}", file.display()))?;
    with_file(command, &text, &file)
}

/// The value of `--config FILE` or `--config=FILE` among `serve`'s arguments.
fn named_file(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            return None;
        }
        if text == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(value) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    None
}

/// `command` with the defaults of `serve` set from the TOML `text` of `file`.
pub fn with_file(command: clap::Command, text: &str, file: &Path) -> anyhow::Result<clap::Command> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| anyhow::anyhow!("{}: not a TOML file of settings: {e}", file.display()))?;
    let Some(serve) = command.find_subcommand("serve") else {
        bail!("yimen has no serve command");
    };
    let mut defaults = Vec::with_capacity(table.len());
    for (key, value) in &table {
        let Some(arg) = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
        else {
            bail!(
                "unknown key `{key}` in {}: the keys are the flags of `yimen serve` without \
                 their dashes (see `yimen serve --help`, or deploy/yimen.toml for every key)",
                file.display()
            );
        };
        let switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
        let value = match value {
            toml::Value::Boolean(b) => b.to_string(),
            _ if switch => bail!("key `{key}` in {}: give true or false", file.display()),
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            _ => bail!(
                "key `{key}` in {}: give a string, a number or true/false",
                file.display()
            ),
        };
        if !switch {
            refused_value(serve, key, &value)
                .map_err(|why| anyhow::anyhow!("key `{key}` in {}: {why}", file.display()))?;
        }
        defaults.push((arg.get_id().clone(), value));
    }
    Ok(command.mut_subcommand("serve", |mut serve| {
        for (id, value) in defaults {
            // Leaked once per key at start: clap keeps defaults as `&'static str`.
            let value: &'static str = Box::leak(value.into_boxed_str());
            serve = serve.mut_arg(id, |a| a.default_value(value));
        }
        serve
    }))
}

/// Whether `serve` takes `value` for `--key`: its parser's verdict, so that a bad value is
/// said to come from the file. Only that flag's own errors count (not another flag it needs).
fn refused_value(serve: &clap::Command, key: &str, value: &str) -> Result<(), String> {
    let flag = format!("--{key}");
    match serve
        .clone()
        .try_get_matches_from(["serve", &format!("{flag}={value}")])
    {
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::InvalidValue | clap::error::ErrorKind::ValueValidation
            ) && e.to_string().contains(&flag) =>
        {
            let why = e.to_string();
            let why = why.lines().next().unwrap_or_default();
            Err(why.trim_start_matches("error: ").to_string())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn serve_args(text: &str, argv: &[&str]) -> anyhow::Result<crate::cli::serve::Args> {
        let command = with_file(crate::Cli::command(), text, Path::new("test.toml"))?;
        let matches =
            command.try_get_matches_from(["yimen", "serve"].iter().chain(argv).copied())?;
        match crate::Cli::from_arg_matches(&matches)?.command {
            crate::Command::Serve(args) => Ok(*args),
            _ => unreachable!("serve was asked for"),
        }
    }

    /// The error of a file `serve` refuses.
    fn refused(text: &str) -> String {
        match serve_args(text, &[]) {
            Ok(_) => panic!("taken: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_file_sets_what_the_command_line_does_not() {
        let text = "max-body-bytes = 4096\nsecure-cookies = true\nsession-idle = \"45m\"\n\
                    log-format = \"json\"\nmax-fan-out = 7\n";
        let args = serve_args(text, &[]).expect("parses");
        assert_eq!(args.max_body_bytes, 4096);
        assert!(args.secure_cookies);
        assert_eq!(args.session_idle, std::time::Duration::from_secs(45 * 60));
        assert_eq!(args.log_format, crate::cli::serve::LogFormat::Json);
        assert_eq!(args.limits.max_fan_out, 7, "flattened flags too");
        let args = serve_args(text, &["--max-body-bytes", "100"]).expect("parses");
        assert_eq!(
            args.max_body_bytes, 100,
            "the command line wins over the file"
        );
        let args = serve_args("", &[]).expect("parses");
        assert_eq!(
            args.max_body_bytes,
            2 << 20,
            "without the key, the built-in default"
        );
    }

    #[test]
    fn an_unknown_key_is_refused_naming_it_and_the_file() {
        let e = refused("max-body-byte = 1\n");
        assert!(e.contains("unknown key `max-body-byte`"), "{e}");
        assert!(e.contains("test.toml"), "{e}");
        let e = refused("config = \"other.toml\"\n");
        assert!(e.contains("unknown key `config`"), "{e}");
        let e = refused("[serve]\nlisten = \"x\"\n");
        assert!(e.contains("key `serve`"), "{e}");
    }

    #[test]
    fn a_bad_value_is_said_to_come_from_the_file() {
        let e = refused("max-body-bytes = \"lots\"\n");
        assert!(e.contains("key `max-body-bytes` in test.toml"), "{e}");
        let e = refused("log-format = \"xml\"\n");
        assert!(e.contains("key `log-format` in test.toml"), "{e}");
        let e = refused("listen = ");
        assert!(e.contains("test.toml: not a TOML file"), "{e}");
    }

    #[test]
    fn the_config_file_is_found_after_serve_only() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            named_file(&os(&["--listen", "x", "--config", "a.toml"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            named_file(&os(&["--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(named_file(&os(&["--", "--config", "c.toml"])), None);
        let command = apply(
            crate::Cli::command(),
            &os(&["yimen", "check", "--config", "/no/such/file"]),
        );
        assert!(command.is_ok(), "other commands read no config file");
        let e = apply(
            crate::Cli::command(),
            &os(&["yimen", "serve", "--config", "/no/such/file.toml"]),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("/no/such/file.toml"), "{e:#}");
    }

    /// Every flag of `serve` (but `--config` itself) has an environment variable, and the
    /// example file names each one.
    #[test]
    fn every_flag_has_its_variable_and_its_line_in_the_example() {
        let command = crate::Cli::command();
        let serve = command.find_subcommand("serve").expect("serve");
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/yimen.toml"),
        )
        .expect("deploy/yimen.toml");
        // Its keys, commented out: `# key = value`.
        let keys: std::collections::BTreeSet<&str> = example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, _)| k)
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            .collect();
        let mut flags = std::collections::BTreeSet::new();
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            assert!(
                arg.get_env().is_some(),
                "--{long} has no environment variable"
            );
            if long != "config" {
                flags.insert(long);
            }
        }
        assert_eq!(
            keys, flags,
            "deploy/yimen.toml names every flag of serve, and no other"
        );
        // And the example, uncommented, is a file `serve` takes.
        let uncommented: String = example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.split_once(" = ").is_some_and(|(k, _)| keys.contains(k)))
            .map(|l| format!("{l}\n"))
            .collect();
        with_file(
            crate::Cli::command(),
            &uncommented,
            Path::new("deploy/yimen.toml"),
        )
        .expect("the example's values are valid");
    }
}
