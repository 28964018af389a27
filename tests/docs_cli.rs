//! The project's documents stand on their own: no path outside the repository, and every
//! relative link names a file that is there.

use std::path::{Path, PathBuf};

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable folder") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

#[test]
fn documents_link_only_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    markdown_files(root, &mut files);
    assert!(files.iter().any(|f| f.ends_with("processes/README.md")));
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let shown = file.strip_prefix(root).unwrap().display();
        if text.contains("/work/") {
            problems.push(format!(
                "{shown} names a path outside the repository (/work/...)"
            ));
        }
        for link in text.split("](").skip(1) {
            let target = link.split([')', ' ']).next().unwrap_or_default();
            if target.is_empty()
                || target.starts_with('#')
                || target.contains("://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let path = target.split('#').next().unwrap();
            if !file.parent().unwrap().join(path).exists() {
                problems.push(format!("{shown} links to {target}, which is not there"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What a maintainer of the processes needs of the mechanism is in the project's docs: the
/// process folder's README points there, and the rules it cites by number are there.
#[test]
fn the_mechanism_is_in_the_projects_docs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("processes/README.md")).unwrap();
    assert!(readme.contains("../docs/mechanism.md"), "{readme}");
    let mechanism = std::fs::read_to_string(root.join("docs/mechanism.md")).unwrap();
    for row in readme.lines().filter(|l| l.starts_with("| ")) {
        let cell = row.trim_start_matches("| ");
        let number: String = cell.chars().take_while(char::is_ascii_digit).collect();
        if !number.is_empty() && cell[number.len()..].starts_with(". ") {
            assert!(
                mechanism.contains(&format!("\n{number}. **")),
                "rule {number} of processes/README.md is not in docs/mechanism.md"
            );
        }
    }
}
