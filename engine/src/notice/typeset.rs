//! The notice as a PDF, typeset by typst (as a library) from `notice.typ`, with the CJK font
//! that ships in the binary (`engine/assets/fonts/`: Noto Serif CJK SC Regular, SIL Open Font
//! License 1.1, cut to the Chinese a notice needs). The notice's texts reach the template as
//! `sys.inputs` values, never spliced into its source, so no name or reason can be read as
//! typst markup or code.

use super::Notice;
use std::sync::LazyLock;
use typst::diag::{FileError, FileResult};
use typst::foundations::{Array, Bytes, Datetime, Dict, Str, Value};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};

const TEMPLATE: &str = include_str!("notice.typ");
static FONT: &[u8] = include_bytes!("../../assets/fonts/NotoSerifCJKsc-Regular.subset.otf");

/// The shipped font and its book, read once.
static FONTS: LazyLock<(LazyHash<FontBook>, Vec<Font>)> = LazyLock::new(|| {
    let fonts: Vec<Font> = Font::iter(Bytes::new(FONT)).collect();
    (LazyHash::new(FontBook::from_fonts(&fonts)), fonts)
});

static MAIN: LazyLock<Source> = LazyLock::new(|| {
    let path = VirtualPath::new("/notice.typ").expect("a valid virtual path");
    let id = FileId::new(RootedPath::new(VirtualRoot::Project, path));
    Source::new(id, TEMPLATE.to_string())
});

/// One compilation: the template and the library with the notice as its inputs.
struct NoticeWorld {
    library: LazyHash<Library>,
}

impl World for NoticeWorld {
    fn library(&self) -> &LazyHash<Library> {
        &self.library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &FONTS.0
    }

    fn main(&self) -> FileId {
        MAIN.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == MAIN.id() {
            Ok(MAIN.clone())
        } else {
            Err(FileError::AccessDenied)
        }
    }

    fn file(&self, _id: FileId) -> FileResult<Bytes> {
        Err(FileError::AccessDenied)
    }

    fn font(&self, index: usize) -> Option<Font> {
        FONTS.1.get(index).cloned()
    }

    fn today(&self, _offset: Option<typst::foundations::Duration>) -> Option<Datetime> {
        None
    }
}

/// A JSON value as a typst value: texts stay texts.
fn value(json: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::None,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or_default())),
        J::String(s) => Value::Str(Str::from(s.as_str())),
        J::Array(items) => Value::Array(items.iter().map(value).collect::<Array>()),
        J::Object(map) => Value::Dict(
            map.iter()
                .map(|(k, v)| (Str::from(k.as_str()), value(v)))
                .collect::<Dict>(),
        ),
    }
}

/// The notice as a one-or-more-page A4 PDF; the error is typst's, for the log.
pub fn pdf(notice: &Notice) -> Result<Vec<u8>, String> {
    let data = serde_json::to_value(notice).map_err(|e| e.to_string())?;
    let inputs: Dict = [(Str::from("notice"), value(&data))].into_iter().collect();
    let world = NoticeWorld {
        library: LazyHash::new(Library::builder().with_inputs(inputs).build()),
    };
    // The document's type (typst-layout's `PagedDocument`) is the one typst-pdf takes.
    let document = typst::compile(&world)
        .output
        .map_err(|errors| diagnostics(&errors))?;
    let at = notice.issue.issued_at.naive_utc();
    let timestamp = Datetime::from_ymd_hms(
        chrono::Datelike::year(&at),
        chrono::Datelike::month(&at) as u8,
        chrono::Datelike::day(&at) as u8,
        chrono::Timelike::hour(&at) as u8,
        chrono::Timelike::minute(&at) as u8,
        chrono::Timelike::second(&at) as u8,
    )
    .map(typst_pdf::Timestamp::new_utc);
    let options = typst_pdf::PdfOptions {
        ident: typst::foundations::Smart::Custom(notice.issue.id.clone()),
        creator: typst::foundations::Smart::Custom(Some("yimen".into())),
        timestamp,
        ..typst_pdf::PdfOptions::default()
    };
    let bytes = typst_pdf::pdf(&document, &options).map_err(|errors| diagnostics(&errors))?;
    // Typst keeps what it computed for reuse; a server typesets many notices, so old entries go.
    typst::comemo::evict(10);
    Ok(bytes)
}

fn diagnostics(errors: &[typst::diag::SourceDiagnostic]) -> String {
    errors
        .iter()
        .map(|e| e.message.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
