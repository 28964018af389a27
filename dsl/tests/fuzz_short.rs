//! A short run of the stable fuzzer (`dsl/examples/fuzz.rs`) in the normal test suite: 20,000
//! inputs mutated from the process files and the fixtures, none may panic, overflow a 2 MiB
//! stack or take over 5 s (unoptimised build). The long run and its figure: docs/security.md.

#[path = "../examples/fuzz.rs"]
#[allow(dead_code)]
mod driver;

#[test]
fn twenty_thousand_mutated_inputs_neither_panic_nor_overflow_nor_stall() {
    let failures = driver::fuzz(driver::Args {
        count: 20_000,
        seed: 1,
        limit: std::time::Duration::from_secs(5),
        only: None,
        dump: false,
    });
    assert_eq!(
        failures, 0,
        "see the lines above for --seed and --only to reproduce"
    );
}
