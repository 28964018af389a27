//! Benchmark: parse, lower and check a generated process of about 10,000 nodes (a sequence
//! of blocks, each a task with a loop, a choice, and a parallel split of three branches, one
//! with a nested choice, joined again). Prints the time of each stage.
//!
//! `cargo run --release -p yimen-dsl --example bench_check [nodes]`

use std::fmt::Write as _;
use std::time::Instant;

/// Process text with at least `nodes` nodes.
fn generate(nodes: usize) -> String {
    let mut s = String::from(
        "process bench \"基准\" version 1\nvar flag: boolean = false \"标志\"\nrole clerk \"办事员\"\nstart s \"开始\" -> b0_task\n",
    );
    let blocks = nodes / 11 + 1;
    for i in 0..blocks {
        let next = if i + 1 == blocks {
            "done".to_string()
        } else {
            format!("b{}_task", i + 1)
        };
        let _ = write!(
            s,
            r#"
task b{i}_task "审查 {i}" {{
  queue clerk
  deadline 3 workdays
  outcome ok "通过" -> b{i}_choose
  outcome again "重审" -> b{i}_task
}}
choice b{i}_choose "分流 {i}" {{
  when flag -> b{i}_fork
  else -> b{i}_skip
}}
step b{i}_skip "跳过 {i}" {{ ledger "跳过" }} -> b{i}_fork
parallel b{i}_fork "并行 {i}" {{
  -> b{i}_x
  -> b{i}_y
  -> b{i}_z
}}
task b{i}_x "甲 {i}" {{
  queue clerk
  outcome ok "完成" -> b{i}_join
}}
choice b{i}_y "乙 {i}" {{
  when flag and len([1, 2]) > 1 -> b{i}_y1
  else -> b{i}_y2
}}
step b{i}_y1 "乙一 {i}" {{ set flag = not flag }} -> b{i}_ym
task b{i}_y2 "乙二 {i}" {{
  queue clerk
  outcome ok "完成" -> b{i}_ym
  outcome other "其他" -> b{i}_ym
}}
step b{i}_ym "乙合 {i}" {{ ledger "乙" }} -> b{i}_join
step b{i}_z "丙 {i}" {{ ledger "丙" }} -> b{i}_join
join b{i}_join "汇合 {i}" -> {next}
"#
        );
    }
    s.push_str("end done \"结束\" result done\n");
    s
}

fn main() {
    let nodes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let source = generate(nodes);
    let t = Instant::now();
    let ast = match yimen_dsl::parse("bench.flow", &source) {
        Ok(ast) => ast,
        Err(d) => {
            eprintln!("{}", yimen_dsl::diagnostic::render(&d, &source));
            std::process::exit(1);
        }
    };
    let parsed = t.elapsed();
    let t = Instant::now();
    let (process, lower_diags) = yimen_dsl::lower("bench.flow", &ast);
    let lowered = t.elapsed();
    let t = Instant::now();
    let diags = yimen_dsl::check::check(&process, None, &[]);
    let checked = t.elapsed();
    println!(
        "{} nodes, {} bytes: parse {:.1} ms, lower {:.1} ms, check {:.1} ms; {} diagnostics",
        process.nodes.len(),
        source.len(),
        parsed.as_secs_f64() * 1e3,
        lowered.as_secs_f64() * 1e3,
        checked.as_secs_f64() * 1e3,
        lower_diags.len() + diags.len()
    );
    if let Some(d) = diags.first().or(lower_diags.first()) {
        eprintln!("{}", yimen_dsl::diagnostic::render(d, &source));
        std::process::exit(1);
    }
}
