//! Any text: compile it (parse, lower, check), render every diagnostic, draw the model.
//! Must never panic or hang. Seed corpus: `dsl/tests/ok`, `dsl/tests/err`, `processes/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yimen_dsl::graph::{Format, render};

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    let compiled = yimen_dsl::compile("fuzz.flow", &source, &|_| None);
    for diag in &compiled.diagnostics {
        let _ = yimen_dsl::diagnostic::render(diag, &source);
    }
    if let Some(process) = &compiled.process {
        let _ = render(process, Format::Dot);
        let _ = render(process, Format::Mermaid);
    }
});
