//! Builds the shipped process files and calendars into the `yimen` binary (`src/cli/builtin.rs`),
//! so that `yimen demo` and `yimen serve` work from any folder, as after `cargo install`: a file
//! in the folder a command reads still comes first.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut out = String::new();
    // The processes: each `*.flow` at the top of `processes/`, and the YAML configurations and
    // templates beside them (as `yimen deploy` sends them), keyed by their relative path.
    let processes = root.join("processes");
    let mut files = Vec::new();
    collect(&processes, &processes, 0, &mut files);
    files.retain(|(rel, _)| {
        !rel.contains('/') && rel.ends_with(".flow")
            || [".yaml", ".yml", ".j2"].iter().any(|e| rel.ends_with(e))
    });
    write_list(&mut out, "PROCESSES", &files);
    // The calendars: each `*.yaml` at the top of `calendars/`.
    let calendars = root.join("calendars");
    let mut files = Vec::new();
    collect(&calendars, &calendars, 3, &mut files);
    files.retain(|(rel, _)| rel.ends_with(".yaml"));
    write_list(&mut out, "CALENDARS", &files);
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("builtin.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
    println!("cargo:rerun-if-changed=processes");
    println!("cargo:rerun-if-changed=calendars");
}

/// Files under `dir` (at most 3 folders deep from `depth`), sorted, as (relative path, path).
fn collect(root: &Path, dir: &Path, depth: usize, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            if depth < 3 {
                println!("cargo:rerun-if-changed={}", path.display());
                collect(root, &path, depth + 1, files);
            }
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            files.push((rel, path.clone()));
        }
    }
}

fn write_list(out: &mut String, name: &str, files: &[(String, PathBuf)]) {
    let _ = writeln!(out, "pub const {name}: &[(&str, &str)] = &[");
    for (rel, path) in files {
        let _ = writeln!(
            out,
            "    ({rel:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    let _ = writeln!(out, "];");
}
