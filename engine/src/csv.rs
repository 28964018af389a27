//! The CSV files people open (the ledger export, report runs): one writer, so each opens the
//! same way in a spreadsheet.
//!
//! - UTF-8 with a byte-order mark: Excel on Windows reads a file without it in the local code
//!   page (GBK on a Chinese system), which garbles every Chinese field.
//! - Fields with a comma, quote or line break are quoted (RFC 4180).
//! - A field a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a
//!   carriage return) is neutralised with a leading `'`, so case data typed by anyone cannot
//!   run in the reader's spreadsheet (OWASP "CSV injection"). Numbers (`-3`, `+8.5`) stay.

/// The byte-order mark that opens every file.
pub const BOM: &str = "\u{feff}";

/// One field: neutralised when a spreadsheet would read it as a formula, quoted when needed.
pub fn field(s: &str) -> String {
    let formula =
        s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.trim().parse::<f64>().is_err();
    let s = if formula {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One line of fields, ending in `\n`.
pub fn line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = fields
        .iter()
        .map(|f| field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

/// The start of a file: the byte-order mark and the header line.
pub fn header<S: AsRef<str>>(names: &[S]) -> String {
    format!("{BOM}{}", line(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_numbers_kept() {
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("+1+1"), "'+1+1");
        assert_eq!(field("-1+1"), "'-1+1");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("-3"), "-3");
        assert_eq!(field("+8.5"), "+8.5");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("最低生活保障"), "最低生活保障");
        assert!(header(&["a", "b"]).starts_with('\u{feff}'));
    }
}
