//! The shipped process files and calendars, built into the binary by `build.rs`: what `yimen
//! demo` and `yimen serve` fall back on when the folder they read has no such file, so that
//! they work from any folder (as after `cargo install`).

use std::collections::BTreeMap;

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// A built-in process file's source and the files beside it (YAML configuration, templates),
/// keyed as `yimen deploy` sends them; `None` when no process file of that name is built in.
pub fn process(file: &str) -> Option<(String, BTreeMap<String, String>)> {
    let source = PROCESSES.iter().find(|(p, _)| *p == file)?.1.to_string();
    let files = PROCESSES
        .iter()
        .filter(|(p, _)| !p.ends_with(".flow"))
        .map(|(p, text)| (p.to_string(), text.to_string()))
        .collect();
    Some((source, files))
}

/// Names of the built-in calendars (`cn_mainland`, ...).
pub fn calendar_names() -> impl Iterator<Item = &'static str> {
    CALENDARS
        .iter()
        .filter_map(|(file, _)| file.strip_suffix(".yaml"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_files_are_built_in() {
        let (source, files) = super::process("social_assistance.flow").expect("built in");
        assert!(
            source.starts_with("process social_assistance")
                || source.contains("process social_assistance")
        );
        assert!(
            files.contains_key("social_assistance.yaml"),
            "{:?}",
            files.keys()
        );
        assert!(
            files.keys().any(|k| k.starts_with("templates/")),
            "{:?}",
            files.keys()
        );
        let names: Vec<&str> = super::calendar_names().collect();
        assert!(
            names.contains(&"cn_mainland") && names.contains(&"weekdays"),
            "{names:?}"
        );
    }
}
