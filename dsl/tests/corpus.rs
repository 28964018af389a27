//! Tests as data. `err/*.flow`: each file is one mistake an administrator could make; its
//! rendered diagnostics are a snapshot. `ok/*.flow`: valid processes; no diagnostic at all
//! (not even a warning), and their DOT and Mermaid drawings are snapshots. Adding a case is
//! adding a file. Files a process names (YAML, templates, imports) are looked up next to it,
//! then in `support/`.

use std::path::{Path, PathBuf};
use yimen_dsl::diagnostic::render_all;
use yimen_dsl::graph::{Format, render};

fn support() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support")
}

/// Compiles `path`, returning the result and the rendered diagnostics.
fn compile(path: &Path) -> (yimen_dsl::Compiled, String) {
    let source = std::fs::read_to_string(path).expect("corpus file is readable");
    let dir = path
        .parent()
        .expect("corpus file has a folder")
        .to_path_buf();
    let name = path
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .to_string();
    let load = |rel: &str| {
        std::fs::read_to_string(dir.join(rel))
            .or_else(|_| std::fs::read_to_string(support().join(rel)))
            .ok()
    };
    let compiled = yimen_dsl::compile(&name, &source, &load);
    let rendered = render_all(&compiled.diagnostics, &|file| {
        if file == name {
            Some(source.clone())
        } else {
            load(file)
        }
    });
    (compiled, rendered)
}

#[test]
fn err_corpus() {
    insta::glob!("err/*.flow", |path| {
        let (compiled, rendered) = compile(path);
        assert!(
            !compiled.diagnostics.is_empty(),
            "{} is in err/ but compiles without a diagnostic",
            path.display()
        );
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn ok_corpus() {
    insta::glob!("ok/*.flow", |path| {
        let (compiled, rendered) = compile(path);
        assert!(
            compiled.diagnostics.is_empty(),
            "{}:\n{rendered}",
            path.display()
        );
        let process = compiled.process.expect("a clean file yields a model");
        insta::assert_snapshot!("dot", render(&process, Format::Dot));
        insta::assert_snapshot!("mermaid", render(&process, Format::Mermaid));
    });
}

/// Graphviz must accept every drawing (skipped with a message when `dot` is not installed).
#[test]
fn graphviz_accepts_the_dot_output() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    if Command::new("dot").arg("-V").output().is_err() {
        println!("skipped: Graphviz `dot` is not on PATH (apt-get install graphviz)");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ok");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/ok exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .collect();
    let processes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    if let Ok(entries) = std::fs::read_dir(&processes) {
        files.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "flow")),
        );
    }
    files.sort();
    for path in files {
        let (compiled, _) = compile(&path);
        let Some(process) = compiled.process else {
            continue;
        };
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dot starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(render(&process, Format::Dot).as_bytes())
            .expect("dot reads its input");
        let out = child.wait_with_output().expect("dot finishes");
        assert!(
            out.status.success(),
            "{}: dot rejected the drawing: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every diagnostic code has its page in `docs/errors/`.
#[test]
fn every_code_is_documented() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/errors");
    for (code, _) in yimen_dsl::check::ALL {
        let page = docs.join(format!("{code}.md"));
        let text = std::fs::read_to_string(&page).unwrap_or_default();
        assert!(
            text.starts_with(&format!("# {code}")),
            "{} is missing or has no title",
            page.display()
        );
    }
}
