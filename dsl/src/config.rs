//! The YAML configuration a process declares (`config "x.yaml" { ... }`): per-category time
//! limits, departments, contacts. Loaded with line/column errors.

// The contract returns one `Diagnostic` by value; it happens once per file, not in a loop.
#![allow(clippy::result_large_err)]

use crate::diagnostic::{Diagnostic, Severity};
use crate::model::Span;

/// Code of a configuration file that is not valid YAML (or not a mapping at the top).
pub const BAD_YAML: &str = "YM0003";

/// A loaded configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    /// Path as named in the process file.
    pub file: String,
    /// The YAML text (for rendering diagnostics that point into it).
    pub source: String,
    /// The parsed values.
    pub values: serde_json::Value,
}

impl ConfigFile {
    /// The value at a path of mapping keys (`["decision_limit", "minimum_living"]`).
    pub fn get(&self, path: &[&str]) -> Option<&serde_json::Value> {
        let mut v = &self.values;
        for key in path {
            v = v.get(key)?;
        }
        Some(v)
    }

    /// Where the key at `path` is written in the YAML text (block-style mappings, the layout
    /// of every configuration in `processes/`). `None` when it cannot be found; diagnostics
    /// then point at the start of the file.
    pub fn key_span(&self, path: &[&str]) -> Option<Span> {
        if path.is_empty() {
            return None;
        }
        let mut stack: Vec<(usize, &str)> = Vec::new();
        let mut offset = 0;
        for line in self.source.split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            let body = line.trim_end_matches(['\n', '\r']);
            let trimmed = body.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
                continue;
            }
            let indent = body.len() - trimmed.len();
            let Some(colon) = key_end(trimmed) else {
                continue;
            };
            let key = trimmed[..colon].trim().trim_matches(['"', '\'']);
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            stack.push((indent, key));
            if stack.len() == path.len() && stack.iter().zip(path).all(|((_, k), p)| k == p) {
                let key_start = start + indent;
                return Some(Span::new(key_start, key_start + colon));
            }
        }
        None
    }
}

/// Byte index of the `:` that ends a mapping key on this line (outside quotes).
fn key_end(line: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ':') => {
                let rest = &line[i + 1..];
                if rest.is_empty() || rest.starts_with([' ', '\t']) {
                    return Some(i);
                }
            }
            (None, '#') => return None,
            _ => {}
        }
    }
    None
}

/// Parses configuration text. A YAML error becomes a diagnostic (`YM0003`) pointing at its
/// line and column in `file`.
pub fn load(file: &str, source: &str) -> Result<ConfigFile, Diagnostic> {
    let values: serde_json::Value = match serde_saphyr::from_str(source) {
        Ok(v) => v,
        Err(e) => {
            let text = e.to_string();
            let mut offset = e
                .location()
                .map_or(0, |loc| offset_of(source, loc.line(), loc.column()));
            let mut label = "YAML error here";
            // The scanner notices an unclosed `[` or `{` only at the next token, often lines
            // later: point at the bracket instead.
            if (text.contains("flow") || text.contains("indicator"))
                && let Some(open) = unclosed_bracket(&source[..offset.min(source.len())])
            {
                offset = open;
                label = "this bracket is never closed";
            }
            // Likewise a tab is noticed while reading the value before the tab's line.
            if text.contains("tab")
                && let Some(tab) = source[offset.min(source.len())..].find("\n\t")
            {
                offset += tab + 1;
                label = "a tab: YAML indents with spaces only";
            }
            let span = Span::new(offset, next_char_end(source, offset));
            return Err(Diagnostic {
                code: BAD_YAML,
                severity: Severity::Error,
                message: format!("`{file}` is not valid YAML: {}", yaml_message(&text)),
                file: file.to_string(),
                span,
                label: label.to_string(),
                help: Some(
                    "fix the YAML at this line; keys are `name: value`, nested keys are indented with spaces"
                        .to_string(),
                ),
            });
        }
    };
    let values = match values {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        v @ serde_json::Value::Object(_) => v,
        _ => {
            return Err(Diagnostic {
                code: BAD_YAML,
                severity: Severity::Error,
                message: format!("`{file}` must be a mapping of keys to values"),
                file: file.to_string(),
                span: Span::new(0, next_char_end(source, 0)),
                label: "not a mapping".to_string(),
                help: Some("start the file with `key: value` lines".to_string()),
            });
        }
    };
    Ok(ConfigFile {
        file: file.to_string(),
        source: source.to_string(),
        values,
    })
}

/// The YAML error's first line without the `error: line N column M:` prefix (the
/// diagnostic shows the position itself).
fn yaml_message(s: &str) -> &str {
    let first = s.lines().next().unwrap_or(s);
    // The parser's advice names its own options, which a user cannot set.
    let first = first.split(", set ").next().unwrap_or(first);
    let rest = first.strip_prefix("error: ").unwrap_or(first);
    if rest.starts_with("line ")
        && let Some(i) = rest.find(": ")
    {
        return &rest[i + 2..];
    }
    rest
}

/// The last `[` or `{` of `text` that is not closed, outside quotes and `#` comments.
fn unclosed_bracket(text: &str) -> Option<usize> {
    let mut open = Vec::new();
    for (start, line) in text.split_inclusive('\n').scan(0, |pos, l| {
        let start = *pos;
        *pos += l.len();
        Some((start, l))
    }) {
        let mut quote = None;
        for (i, c) in line.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => open.push(start + i),
                (None, ']' | '}') => {
                    open.pop();
                }
                _ => {}
            }
        }
    }
    open.pop()
}

/// Byte offset of a 1-based line and (character) column.
fn offset_of(source: &str, line: u64, column: u64) -> usize {
    let mut offset = 0;
    for (n, l) in source.split_inclusive('\n').enumerate() {
        if n as u64 + 1 == line {
            let col = column.saturating_sub(1) as usize;
            let within = l
                .char_indices()
                .nth(col)
                .map_or(l.trim_end_matches('\n').len(), |(i, _)| i);
            return offset + within;
        }
        offset += l.len();
    }
    source.len()
}

fn next_char_end(source: &str, offset: usize) -> usize {
    source
        .get(offset..)
        .and_then(|r| r.chars().next())
        .map_or(offset, |c| offset + c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_col(source: &str, offset: usize) -> (usize, usize) {
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    #[test]
    fn bad_yaml_points_at_its_line() {
        let src = "departments:\n  civil_affairs:\n    name: 民政局\n  bad: [unclosed\nlimits: 3\n";
        let d = load("x.yaml", src).expect_err("broken YAML must fail");
        assert_eq!(d.code, BAD_YAML);
        assert_eq!(d.file, "x.yaml");
        let (line, col) = line_col(src, d.span.start);
        assert_eq!((line, col), (4, 8), "{}", d.message);
        assert_eq!(d.label, "this bracket is never closed");
    }

    #[test]
    fn an_unclosed_bracket_is_found_across_comment_lines() {
        let src = "a: {x: 1\n# comment\n# another\n\nb: \"[not a bracket\"\nc: 2\n";
        let d = load("x.yaml", src).expect_err("broken YAML must fail");
        assert_eq!(line_col(src, d.span.start), (1, 4), "{}", d.message);
    }

    #[test]
    fn tab_indentation_is_an_error_with_a_line() {
        let src = "a:\n  b: 1\n\tc: 2\n";
        let d = load("t.yaml", src).expect_err("tabs are not YAML indentation");
        let (line, _) = line_col(src, d.span.start);
        // The scanner notices the tab while reading the value that the tab line continues.
        assert!((2..=3).contains(&line), "line {line}: {}", d.message);
        assert!(d.message.contains("tab"), "{}", d.message);
    }

    #[test]
    fn a_list_at_the_top_is_refused() {
        let d = load("l.yaml", "- a\n- b\n").expect_err("top level must be a mapping");
        assert!(d.message.contains("mapping"));
    }

    #[test]
    fn values_and_key_spans() {
        let src = "# limits\ndecision_limit:\n  minimum_living: \"30 workdays\"\n  \"medical\": 20 workdays\nname: x\n";
        let c = load("c.yaml", src).expect("valid");
        assert_eq!(
            c.get(&["decision_limit", "minimum_living"]),
            Some(&serde_json::json!("30 workdays"))
        );
        let s = c.key_span(&["decision_limit", "medical"]).expect("found");
        assert_eq!(&src[s.start..s.end], "\"medical\"");
        let s = c.key_span(&["name"]).expect("found");
        assert_eq!(&src[s.start..s.end], "name");
        assert_eq!(c.key_span(&["minimum_living"]), None);
    }

    #[test]
    fn empty_file_is_an_empty_mapping() {
        let c = load("e.yaml", "").expect("empty is fine");
        assert_eq!(c.values, serde_json::json!({}));
    }
}
