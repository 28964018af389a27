//! 文书: an issued document (the text its template rendered at issue) laid out as an official
//! notice — title, number (文号), addressee, body, issuing office and date, room for the seal —
//! for the workbench's print view and as a PDF typeset by typst ([`pdf`]).
//!
//! The text is read by the conventions the process's templates follow (`docs/workbench.md`,
//! "文书"): a first line `# 标题`; a line ending in `：` after it is the addressee; a last
//! paragraph of `名称：值` lines with a `日期：` line is the signature (落款), whose first other
//! line names the issuing office; lines starting with `|` are a table. Anything else is body
//! text, printed as written: nothing in it is markup to HTML or to typst.

mod typeset;

pub use typeset::pdf;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

/// What the engine knows of one issue of a document, beside its text.
#[derive(Debug, Clone)]
pub struct Issue {
    /// The stored document's id.
    pub id: String,
    /// The document's name in the process (`supplement_notice`).
    pub name: String,
    /// Its label (`补证通知书`).
    pub label: Option<String>,
    /// 文号, e.g. `REG-1〔2026〕2号`.
    pub number: String,
    /// The date of issue as people read it, `2026年10月8日`, in the calendar's zone.
    pub date: String,
    pub issued_at: DateTime<FixedOffset>,
}

/// One part of a notice's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    /// A paragraph, its lines as written: each is printed as a paragraph of its own (the
    /// templates write one sentence or one item a line).
    Paragraph { lines: Vec<String> },
    /// A table: its first row is the heading.
    Table { rows: Vec<Vec<String>> },
}

/// An issued document laid out as a notice.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub name: String,
    pub title: String,
    pub number: String,
    /// The person or body it is addressed to, with its colon (`张三丰：`).
    pub addressee: Option<String>,
    pub body: Vec<Block>,
    /// The issuing office (发文机关署名), when the text names one.
    pub office: Option<String>,
    pub date: String,
    #[serde(skip)]
    pub issue: Issue,
}

/// Labels of a signature line that gives the date (replaced by the date of issue).
const DATE_LABELS: [&str; 3] = ["日期", "成文日期", "签发日期"];

impl Notice {
    /// Reads the stored `text` of `issue`.
    pub fn read(text: &str, issue: Issue) -> Notice {
        let mut paragraphs = paragraphs(text);
        let mut title = None;
        if let Some(first) = paragraphs.first_mut()
            && let Some(heading) = first.first().and_then(|l| l.strip_prefix("# "))
        {
            title = Some(heading.trim().to_string());
            first.remove(0);
            if first.is_empty() {
                paragraphs.remove(0);
            }
        }
        let addressee = match paragraphs.first().map(Vec::as_slice) {
            Some([line]) if is_salutation(line) => {
                let line = line.clone();
                paragraphs.remove(0);
                Some(line)
            }
            _ => None,
        };
        let mut office = None;
        if let Some(last) = paragraphs.last()
            && let Some(fields) = signature(last)
        {
            let mut rest = Vec::new();
            for (label, value, line) in fields {
                if DATE_LABELS.contains(&label.as_str()) {
                    continue;
                }
                if office.is_none() {
                    office = Some(value);
                } else {
                    rest.push(line);
                }
            }
            paragraphs.pop();
            if !rest.is_empty() {
                paragraphs.push(rest);
            }
        }
        let body = paragraphs.into_iter().map(block).collect();
        Notice {
            name: issue.name.clone(),
            title: title
                .filter(|t| !t.is_empty())
                .or_else(|| issue.label.clone())
                .unwrap_or_else(|| issue.name.clone()),
            number: issue.number.clone(),
            addressee,
            body,
            office,
            date: issue.date.clone(),
            issue,
        }
    }
}

/// The text's paragraphs (separated by blank lines), each as its lines, trailing spaces cut.
fn paragraphs(text: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line.to_string());
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `张三丰：`: one short line ending in a colon.
fn is_salutation(line: &str) -> bool {
    let line = line.trim();
    (line.ends_with('：') || line.ends_with(':')) && line.chars().count() <= 60
}

/// A paragraph of `名称：值` lines with a date line: the signature's (label, value, line)s.
fn signature(lines: &[String]) -> Option<Vec<(String, String, String)>> {
    let mut fields = Vec::new();
    for line in lines {
        let (label, value) = line.split_once('：')?;
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 8 {
            return None;
        }
        fields.push((label.to_string(), value.trim().to_string(), line.clone()));
    }
    fields
        .iter()
        .any(|(label, _, _)| DATE_LABELS.contains(&label.as_str()))
        .then_some(fields)
}

/// A paragraph, or a table when every line starts with `|` (a Markdown table; its `|---|`
/// line is dropped).
fn block(lines: Vec<String>) -> Block {
    if !lines.iter().all(|l| l.trim_start().starts_with('|')) {
        return Block::Paragraph { lines };
    }
    let rows = lines
        .iter()
        .map(|line| {
            let inner = line.trim().trim_start_matches('|');
            let inner = inner.strip_suffix('|').unwrap_or(inner);
            inner
                .split('|')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|cells| {
            !cells
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
        })
        .collect();
    Block::Table { rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue() -> Issue {
        Issue {
            id: "d1".into(),
            name: "supplement_notice".into(),
            label: Some("补证通知书".into()),
            number: "REG-1〔2026〕1号".into(),
            date: "2026年10月8日".into(),
            issued_at: DateTime::parse_from_rfc3339("2026-10-08T09:00:00+08:00").unwrap(),
        }
    }

    #[test]
    fn a_notice_is_read_into_its_parts() {
        let text = "# 补证通知书\n\n张三丰：\n\n您的申请材料不齐全。\n现一次性告知如下：\n\n户口簿复印件\n\n受理窗口：新华街道 社会救助受理窗口\n日期：2026-10-08\n";
        let n = Notice::read(text, issue());
        assert_eq!(n.title, "补证通知书");
        assert_eq!(n.addressee.as_deref(), Some("张三丰："));
        assert_eq!(n.office.as_deref(), Some("新华街道 社会救助受理窗口"));
        assert_eq!(n.date, "2026年10月8日");
        assert_eq!(
            n.body,
            vec![
                Block::Paragraph {
                    lines: vec!["您的申请材料不齐全。".into(), "现一次性告知如下：".into()]
                },
                Block::Paragraph {
                    lines: vec!["户口簿复印件".into()]
                },
            ]
        );
    }

    #[test]
    fn a_list_keeps_its_table_and_a_text_without_conventions_is_all_body() {
        let text = "# 公示名单\n\n公示期：7日\n\n| 姓名 | 金额 |\n|---|---|\n| 张* | 850 |\n\n如有异议，请反映。";
        let n = Notice::read(text, issue());
        assert_eq!(n.addressee, None);
        assert_eq!(n.office, None);
        assert_eq!(
            n.body[1],
            Block::Table {
                rows: vec![
                    vec!["姓名".into(), "金额".into()],
                    vec!["张*".into(), "850".into()]
                ]
            }
        );
        let plain = Notice::read("只有一句话", issue());
        assert_eq!(
            plain.title, "补证通知书",
            "the label when the text has no heading"
        );
        assert_eq!(plain.body.len(), 1);
    }
}
