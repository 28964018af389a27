//! The statistics and the register as XLSX workbooks (rust_xlsxwriter): a sheet per table,
//! Chinese headers in a frozen first row, counts as numbers (`#,##0`), times as Excel dates,
//! columns as wide as their widest text (a CJK character counts two).

use super::{Cell, Register, Tables};
use chrono::{Datelike, Timelike};
use rust_xlsxwriter::{Color, ExcelDateTime, Format, FormatBorder, Workbook, Worksheet, XlsxError};
use unicode_width::UnicodeWidthStr;

/// Excel's limit on a sheet name.
const SHEET_NAME_CHARS: usize = 31;

fn header_format() -> Format {
    Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xDDEBF7))
        .set_border(FormatBorder::Thin)
}

/// The width of a column holding these texts, in Excel's character units.
fn width(texts: impl Iterator<Item = usize>) -> f64 {
    texts
        .max()
        .map_or(8.0, |w| (w as f64 + 2.0).clamp(6.0, 60.0))
}

/// A sheet name Excel accepts, unique among `taken`.
fn sheet_name(title: &str, taken: &mut Vec<String>) -> String {
    let clean: String = title
        .chars()
        .map(|c| match c {
            '[' | ']' | ':' | '*' | '?' | '/' | '\\' => '_',
            c => c,
        })
        .take(SHEET_NAME_CHARS - 3)
        .collect();
    let mut name = clean.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{clean}({n})");
        n += 1;
    }
    taken.push(name.clone());
    name
}

/// The statistics' workbook: one sheet per table.
pub fn tables(t: &Tables) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let header = header_format();
    let count = Format::new().set_num_format("#,##0");
    let mut taken = Vec::new();
    for table in &t.tables {
        let sheet = book.add_worksheet();
        sheet.set_name(sheet_name(&table.title, &mut taken))?;
        sheet.write_string_with_format(0, 0, &table.dimension, &header)?;
        for (c, name) in t.columns.iter().enumerate() {
            sheet.write_string_with_format(0, col(c + 1), name, &header)?;
        }
        for (r, row) in table.rows.iter().enumerate() {
            let r = (r + 1) as u32;
            sheet.write_string(r, 0, &row.label)?;
            for (c, n) in row.counts.iter().enumerate() {
                sheet.write_number_with_format(r, col(c + 1), *n as f64, &count)?;
            }
        }
        sheet.set_freeze_panes(1, 0)?;
        sheet.set_column_width(
            0,
            width(
                std::iter::once(table.dimension.width_cjk())
                    .chain(table.rows.iter().map(|r| r.label.width_cjk())),
            ),
        )?;
        for (c, name) in t.columns.iter().enumerate() {
            sheet.set_column_width(
                col(c + 1),
                width(std::iter::once(name.width_cjk()).chain([8])),
            )?;
        }
    }
    book.save_to_buffer()
}

fn col(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

fn excel_time(t: &chrono::NaiveDateTime) -> Result<ExcelDateTime, XlsxError> {
    ExcelDateTime::from_ymd(
        u16::try_from(t.year()).unwrap_or(1900),
        t.month() as u8,
        t.day() as u8,
    )?
    .and_hms(t.hour() as u16, t.minute() as u8, t.second())
}

/// The register's workbook: one sheet, a row per case.
pub fn register(reg: &Register) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let header = header_format();
    let time = Format::new().set_num_format("yyyy-mm-dd hh:mm");
    let number = Format::new().set_num_format("General");
    let sheet: &mut Worksheet = book.add_worksheet();
    sheet.set_name("电子台账")?;
    let mut widths: Vec<usize> = reg.headers.iter().map(|h| h.width_cjk()).collect();
    for (c, h) in reg.headers.iter().enumerate() {
        sheet.write_string_with_format(0, col(c), h, &header)?;
    }
    for (r, row) in reg.rows.iter().enumerate() {
        let r = u32::try_from(r + 1).unwrap_or(u32::MAX);
        for (c, cell) in row.iter().enumerate() {
            let w = match cell {
                Cell::Text(s) => {
                    sheet.write_string(r, col(c), s)?;
                    s.width_cjk()
                }
                Cell::Number(n) => {
                    sheet.write_number_with_format(r, col(c), *n, &number)?;
                    n.to_string().len()
                }
                Cell::Time(t) => {
                    sheet.write_datetime_with_format(r, col(c), excel_time(t)?, &time)?;
                    16
                }
                Cell::Empty => 0,
            };
            if let Some(max) = widths.get_mut(c) {
                *max = (*max).max(w);
            }
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    for (c, w) in widths.iter().enumerate() {
        sheet.set_column_width(col(c), width(std::iter::once(*w)))?;
    }
    book.save_to_buffer()
}
