//! The checker never panics or hangs, whatever it is given: arbitrary bytes, and valid
//! process files mutated at random (deletions, duplications, inserted tokens). Every
//! diagnostic must render, and every model that passes must draw. Kept small enough for CI;
//! `fuzz/` runs the same property with cargo-fuzz for as long as you like.

use proptest::prelude::*;
use std::path::Path;
use yimen_dsl::diagnostic::render;
use yimen_dsl::graph::{Format, render as draw};

/// The valid files the mutations start from.
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["tests/ok", "../processes"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|x| x == "flow")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                out.push(text);
            }
        }
    }
    assert!(!out.is_empty(), "no seed files found");
    out
}

/// Compiles `source` (files it names come from `support/` or `processes/`), renders every
/// diagnostic and draws the model if there is one.
fn exercise(source: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let load = |rel: &str| {
        std::fs::read_to_string(root.join("tests/support").join(rel))
            .or_else(|_| std::fs::read_to_string(root.join("../processes").join(rel)))
            .ok()
    };
    let compiled = yimen_dsl::compile("fuzz.flow", source, &load);
    for diag in &compiled.diagnostics {
        let text = if diag.file == "fuzz.flow" {
            source.to_string()
        } else {
            load(&diag.file).unwrap_or_default()
        };
        let out = render(diag, &text);
        assert!(out.contains(diag.code));
    }
    if let Some(process) = &compiled.process {
        draw(process, Format::Dot);
        draw(process, Format::Mermaid);
    }
}

/// Words that make a mutation more likely to stay parseable but wrong.
const TOKENS: &[&str] = &[
    " -> ",
    "join j -> x\n",
    "parallel p { -> a -> b }\n",
    "}",
    "{",
    " when ",
    " else ",
    "\"",
    "审查",
    " outcome o -> review ",
    " and ",
    " == ",
    " in ",
    "[",
    "]",
    " config.x ",
    " 3 workdays ",
    "\t",
    "\n",
    " end e result r\n",
    " choice c { when true -> e }\n",
    "task t { queue q }\n",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Duplicate(usize, usize),
    Insert(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), 1usize..200).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Insert(a, t)),
    ]
}

fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(mut text: String, mutations: &[Mutation]) -> String {
    for m in mutations {
        match *m {
            Mutation::Delete(a, n) => {
                let a = boundary(&text, a);
                let b = boundary(&text, a.saturating_add(n).min(text.len()));
                text.replace_range(a..b, "");
            }
            Mutation::Duplicate(a, n) => {
                let a = boundary(&text, a);
                let b = boundary(&text, a.saturating_add(n).min(text.len()));
                let piece = text[a..b].to_string();
                text.insert_str(b, &piece);
            }
            Mutation::Insert(a, t) => {
                let a = boundary(&text, a);
                text.insert_str(a, TOKENS[t]);
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_valid_files_never_panic(seed in any::<prop::sample::Index>(), mutations in proptest::collection::vec(mutation(), 1..6)) {
        let seeds = seeds();
        let text = apply(seeds[seed.index(seeds.len())].clone(), &mutations);
        exercise(&text);
    }
}

/// Found by `mutated_valid_files_never_panic`: a label of blanks wraps to no line at all, and
/// drawing a task put its queue on the second line of none.
#[test]
fn a_blank_label_draws() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("../processes/bench/three_task.flow"))
        .expect("the bench process")
        .replace(r#"task receive "受理""#, r#"task receive " ""#);
    let compiled = yimen_dsl::compile("blank.flow", &text, &|_| None);
    let process = compiled.process.expect("a blank label is allowed");
    for format in [Format::Dot, Format::Mermaid] {
        let drawn = draw(&process, format);
        assert!(
            drawn.contains("receive"),
            "the id stands in for the label:\n{drawn}"
        );
    }
}
