//! Diagnostics: what is wrong, where, and how to fix it. Produced by the parser (syntax, first
//! error only), the config loader and the checker (every error at once). Rendered for people
//! with `file:line:col`, the source line and a caret underline.

use crate::model::Span;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code, `YM0001`..., explained in `docs/errors/<code>.md`.
    pub code: &'static str,
    pub severity: Severity,
    /// What is wrong, one sentence.
    pub message: String,
    /// File the span points into (process file or its YAML configuration).
    pub file: String,
    pub span: Span,
    /// Short text under the caret.
    pub label: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span` of the process file (`file` is filled in by `compile`).
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            file: String::new(),
            span,
            label: String::new(),
            help: None,
        }
    }

    /// A warning at `span` (does not fail `yimen check` unless `--deny-warnings`).
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Sets the short text shown under the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Sets the "how to fix it" line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the file the span points into.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = file.into();
        self
    }

    /// True for errors (which fail a check), false for warnings.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Tab stops used when showing a source line (the caret must line up with what is shown).
const TAB_WIDTH: usize = 4;

/// 1-based line and column (in characters) of byte `offset` in `source`. Offsets past the end
/// or inside a multi-byte character are clamped to the nearest character boundary before them.
/// To locate many offsets in one text, build a [`LineIndex`] once.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(source).line_col(source, offset)
}

/// Where each line of one text starts. Built once per file, it locates an offset by a binary
/// search, so that rendering all of a file's diagnostics stays linear in their number: each
/// scanning the text from its start made a file with thousands of them take over a second.
#[derive(Debug, Clone)]
pub struct LineIndex {
    /// Byte offset of the start of each line; the first is 0.
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// 0-based line of byte `offset` and the byte range of that line, without its `\n`.
    fn line(&self, source: &str, offset: usize) -> (usize, usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset).max(1) - 1;
        let start = self.starts[line];
        let end = self
            .starts
            .get(line + 1)
            .map_or(source.len(), |next| next - 1);
        (line, start, end)
    }

    /// Like [`line_col`], for the text this index was built from.
    pub fn line_col(&self, source: &str, offset: usize) -> (usize, usize) {
        let offset = floor_boundary(source, offset);
        let (line, start, _) = self.line(source, offset);
        (line + 1, source[start..offset].chars().count() + 1)
    }
}

fn floor_boundary(source: &str, offset: usize) -> usize {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Display width of `text` as shown in a terminal: tabs expand to the next tab stop (counted
/// from `start_width`), wide (CJK) characters count two columns.
fn display_width(text: &str, start_width: usize) -> usize {
    let mut width = start_width;
    for ch in text.chars() {
        if ch == '\t' {
            width += TAB_WIDTH - width % TAB_WIDTH;
        } else {
            width += unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0);
        }
    }
    width - start_width
}

fn expand_tabs(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut width = 0;
    for ch in line.chars() {
        if ch == '\t' {
            let n = TAB_WIDTH - width % TAB_WIDTH;
            out.extend(std::iter::repeat_n(' ', n));
            width += n;
        } else if ch.is_control() {
            // Keep the caret aligned: a control character would move the cursor.
            out.push(' ');
            width += 1;
        } else {
            out.push(ch);
            width += unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0);
        }
    }
    out
}

/// Characters of a long line shown before a span and after its start.
const CONTEXT_CHARS: usize = 80;
/// Stands for the part of a long line that is not shown.
const ELLIPSIS: &str = "...";

/// Where the shown part of the line starts: at most [`CONTEXT_CHARS`] characters before `start`
/// (and whether the line was cut there).
fn window_start(source: &str, line_start: usize, start: usize) -> (usize, bool) {
    match source[line_start..start]
        .char_indices()
        .rev()
        .nth(CONTEXT_CHARS - 1)
    {
        Some((i, _)) if i > 0 => (line_start + i, true),
        _ => (line_start, false),
    }
}

/// Where the shown part of the line ends: at most [`CONTEXT_CHARS`] characters after `end`.
fn window_end(source: &str, end: usize, line_end: usize) -> usize {
    match source[end..line_end].char_indices().nth(CONTEXT_CHARS) {
        Some((i, _)) => end + i,
        None => line_end,
    }
}

/// Renders `diag` for people: severity and code, the message, `file:line:col`, the source line
/// with a caret underline (right for tabs and wide CJK characters), the label and the help.
/// `source` is the text of `diag.file`.
pub fn render(diag: &Diagnostic, source: &str) -> String {
    render_indexed(diag, source, &LineIndex::new(source))
}

/// Like [`render`], with the [`LineIndex`] of `source` built once for all of its diagnostics.
pub fn render_indexed(diag: &Diagnostic, source: &str, index: &LineIndex) -> String {
    use std::fmt::Write as _;
    let severity = match diag.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let file = if diag.file.is_empty() {
        "<input>"
    } else {
        &diag.file
    };
    let start = floor_boundary(source, diag.span.start);
    let end = floor_boundary(source, diag.span.end.max(start));
    let (line, col) = index.line_col(source, start);
    let (_, line_start, line_end) = index.line(source, start);
    // A long line is shown as a window around the span, so that rendering stays proportional
    // to what is shown, not to the line: a file of one huge line with thousands of diagnostics
    // took seconds to render.
    let (shown_start, cut_before) = window_start(source, line_start, start);
    let shown_end = window_end(source, end.clamp(start, line_end), line_end);
    let cut_after = shown_end < line_end;
    let text = source[shown_start..shown_end].trim_end_matches('\r');
    let gutter = line.to_string().len();
    let pad = " ".repeat(gutter);

    let mut out = String::new();
    let _ = writeln!(out, "{severity}[{}]: {}", diag.code, diag.message);
    let _ = writeln!(out, "{pad}--> {file}:{line}:{col}");
    let _ = writeln!(out, "{pad} |");
    let ellipsis_before = if cut_before { ELLIPSIS } else { "" };
    let ellipsis_after = if cut_after { ELLIPSIS } else { "" };
    let shown = expand_tabs(text);
    let _ = writeln!(
        out,
        "{line} | {ellipsis_before}{}{ellipsis_after}",
        if cut_after {
            shown.as_str()
        } else {
            shown.trim_end()
        }
    );
    let prefix = &source[shown_start..start];
    let caret_col = display_width(prefix, 0) + ellipsis_before.len();
    let underlined = &source[start..end.clamp(start, shown_end)];
    let caret_len = display_width(underlined.trim_end_matches('\r'), caret_col).max(1);
    let mut marker = format!("{}{}", " ".repeat(caret_col), "^".repeat(caret_len));
    if !diag.label.is_empty() {
        marker.push(' ');
        marker.push_str(&diag.label);
    }
    let _ = writeln!(out, "{pad} | {marker}");
    if let Some(help) = &diag.help {
        let _ = writeln!(out, "{pad} = help: {help}");
    }
    out
}

/// Renders every diagnostic in order, separated by blank lines. `sources` maps a file name to
/// its text (asked once per file); diagnostics whose file is unknown are rendered against an
/// empty text.
pub fn render_all(diags: &[Diagnostic], sources: &dyn Fn(&str) -> Option<String>) -> String {
    let mut files: std::collections::HashMap<&str, (String, LineIndex)> = Default::default();
    let mut out = String::new();
    for (i, diag) in diags.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let (source, index) = files.entry(diag.file.as_str()).or_insert_with(|| {
            let source = sources(&diag.file).unwrap_or_default();
            let index = LineIndex::new(&source);
            (source, index)
        });
        out.push_str(&render_indexed(diag, source, index));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(start: usize, end: usize) -> Diagnostic {
        Diagnostic::error("YM9999", Span::new(start, end), "something is wrong")
            .with_label("here")
            .with_help("fix it")
            .in_file("p.flow")
    }

    #[test]
    fn caret_lines_up_under_wide_characters_and_tabs() {
        let source = "process p \"标题\" version 1\n\ttask 审查 x\n";
        let start = source.find('x').unwrap();
        let out = render(&diag(start, start + 1), source);
        // "\t" → 4 columns, "task " → 5, "审查 " → 5: the caret sits at column 14.
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], " --> p.flow:2:10");
        assert_eq!(lines[3], "2 |     task 审查 x");
        assert_eq!(lines[4], "  |               ^ here");
    }

    #[test]
    fn underline_covers_wide_characters_twice() {
        let source = "a 审查 b";
        let start = source.find('审').unwrap();
        let out = render(&diag(start, start + "审查".len()), source);
        assert!(out.contains("  |   ^^^^ here"), "{out}");
    }

    #[test]
    fn a_long_line_is_shown_as_a_window_around_the_span() {
        let source = format!("{}审查{}\n", "x".repeat(1000), "y".repeat(1000));
        let start = source.find('审').unwrap();
        let out = render(&diag(start, start + "审查".len()), &source);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], " --> p.flow:1:1001");
        let shown = format!("1 | ...{}审查{}...", "x".repeat(80), "y".repeat(80));
        assert_eq!(lines[3], shown);
        // "1 | " and then the caret under 审查: "..." and 80 x's before it, two wide characters.
        let marker = format!("  | {}^^^^ here", " ".repeat(83));
        assert_eq!(lines[4], marker);
        // A span near the line's start is not cut before; the line's end still is.
        let out = render(&diag(2, 3), &source);
        assert!(out.lines().nth(3).unwrap().starts_with("1 | xxx"), "{out}");
        assert!(out.lines().nth(3).unwrap().ends_with("x..."), "{out}");
        assert!(
            out.lines().nth(4).unwrap().starts_with("  |   ^ here"),
            "{out}"
        );
    }

    #[test]
    fn spans_out_of_range_or_inside_a_character_do_not_panic() {
        let source = "审查\n";
        for (s, e) in [(1, 2), (100, 200), (5, 1), (0, 0)] {
            let out = render(&diag(s, e), source);
            assert!(out.contains("error[YM9999]"));
        }
        assert_eq!(line_col(source, 1), (1, 1));
        assert_eq!(line_col(source, 999), (2, 1));
    }

    /// The index agrees with a scan from the start at every offset: line ends, empty lines,
    /// CRLF, multi-byte characters, offsets inside a character and past the end.
    #[test]
    fn the_line_index_agrees_with_a_scan_from_the_start() {
        let source = "流程 a\r\n\n  步骤\tb\n\nend";
        let index = LineIndex::new(source);
        for offset in 0..source.len() + 3 {
            let at = floor_boundary(source, offset);
            let before = &source[..at];
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let col = source[line_start..at].chars().count() + 1;
            assert_eq!(
                index.line_col(source, offset),
                (line, col),
                "offset {offset}"
            );
        }
    }
}
