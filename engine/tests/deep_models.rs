//! Issue 20: deep expressions at the API. Chains of thousands of terms overflowed the stack of
//! the worker deploying them (the server aborted); a choice of 40 `or` alternatives or a sum
//! of 50 terms deployed (201) but every start and read of the definition answered 500
//! (serde_json's 128 levels reading the stored model). Now the deepest expression the checker
//! accepts deploys, starts, evaluates and reads back, one level deeper is refused with
//! `YM0008`, and the server stays up. Every request runs on a tokio worker with a 2 MiB stack;
//! on SQLite and on PostgreSQL (`*::postgres`, skipped without `YIMEN_TEST_POSTGRES`).

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::*;
use yimen_dsl::parser::{MAX_DEPTH, TOO_DEEP};

on_both_databases!(
    on_small_stacks;
    the_deepest_expressions_deploy_start_and_read_back,
    one_level_deeper_is_refused_by_name,
    chains_of_4000_terms_are_refused_and_the_server_stays_up,
);

/// `var n`, `var flag`; a step sets `n` to `sum` and `flag` to `negation`, then a choice
/// takes `when` to the end `hit`, else the end `miss`.
fn source(key: &str, sum: &str, negation: &str, when: &str) -> String {
    format!(
        "process {key} \"深表达式\" version 1\n\
         var n: integer = 0 \"数\"\n\
         var flag: boolean = true \"标志\"\n\
         start begin \"开始\" -> calc\n\
         step calc \"计算\" {{\n  set n = {sum}\n  set flag = {negation}\n}} -> route\n\
         choice route \"分流\" {{\n  when {when} -> hit\n  else -> miss\n}}\n\
         end hit \"命中\" result hit\n\
         end miss \"未中\" result miss\n"
    )
}

/// Expressions exactly `depth` deep: a sum of `depth` terms, `depth - 1` times `not`, and
/// `depth - 1` alternatives `n == i` joined by `or` (each `n == i` is 2 deep).
fn at_depth(depth: usize) -> (String, String, String) {
    let sum = vec!["1"; depth].join(" + ");
    let negation = format!("{}flag", "not ".repeat(depth - 1));
    let alternatives = depth - 1;
    let when = (0..alternatives - 1)
        .map(|i| format!("n == {}", 1000 + i))
        .chain(std::iter::once(format!("n == {depth}")))
        .collect::<Vec<_>>()
        .join(" or ");
    (sum, negation, when)
}

async fn the_deepest_expressions_deploy_start_and_read_back(api: TestApi) {
    let (sum, negation, when) = at_depth(MAX_DEPTH);
    let deployed = api
        .deploy(
            "deepest.flow",
            &source("deepest", &sum, &negation, &when),
            json!({}),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{deployed:?}");

    // Starting reads the stored model back from the database and evaluates each expression.
    let started = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "deepest", "variables": {}}),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    let id = started.body["id"].as_str().expect("id").to_string();
    let view = api
        .get(&format!("/api/v1/instances/{id}"), &api.admin)
        .await;
    assert_eq!(view.status, StatusCode::OK, "{view:?}");
    assert_eq!(view.body["vars"]["n"], json!(MAX_DEPTH), "the sum of 1s");
    // `not` an odd number of times (MAX_DEPTH - 1 = 63) turns `true` into `false`.
    assert_eq!(
        view.body["vars"]["flag"],
        json!((MAX_DEPTH - 1).is_multiple_of(2))
    );
    assert_eq!(view.body["status"], "completed", "{view:?}");
    assert_eq!(
        view.body["result"], "hit",
        "`n == {MAX_DEPTH}` matched: {view:?}"
    );

    let read = api.get("/api/v1/definitions/deepest", &api.admin).await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    let model: yimen_dsl::model::Process =
        read_back(&read.body).expect("the model as answered reads back");
    assert_eq!(model.key.name, "deepest");

    // The shapes of the issue one by one: 40 alternatives of `or`, a sum of 50 terms.
    let forty = (0..40)
        .map(|i| format!("n == {i}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let fifty = vec!["1"; 50].join(" + ");
    for (key, source) in [
        ("forty_or", source("forty_or", "1", "flag", &forty)),
        ("fifty_plus", source("fifty_plus", &fifty, "flag", "true")),
    ] {
        let deployed = api.deploy(&format!("{key}.flow"), &source, json!({})).await;
        assert_eq!(deployed.status, StatusCode::CREATED, "{key}: {deployed:?}");
        let started = api
            .post(
                "/api/v1/instances",
                &api.admin,
                json!({"process": key, "variables": {}}),
            )
            .await;
        assert_eq!(started.status, StatusCode::CREATED, "{key}: {started:?}");
        let read = api
            .get(&format!("/api/v1/definitions/{key}"), &api.admin)
            .await;
        assert_eq!(read.status, StatusCode::OK, "{key}: {read:?}");
    }
}

/// The model of a `GET /definitions/{key}` answer, read as the engine reads stored models.
/// The answer nests deeper than serde_json's default 128 levels, so the test client's
/// `Answer` holds it as text.
fn read_back(body: &Value) -> Result<yimen_dsl::model::Process, String> {
    use serde::Deserialize as _;
    let text = match body {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut de = serde_json::Deserializer::from_str(&text);
    de.disable_recursion_limit();
    let answer = Value::deserialize(&mut de).map_err(|e| e.to_string())?;
    yimen_engine::read_model(&answer["model"].to_string()).map_err(|e| e.to_string())
}

fn codes(answer: &Answer) -> Vec<String> {
    answer.body["error"]["details"]["diagnostics"]
        .as_array()
        .map(|ds| {
            ds.iter()
                .filter_map(|d| d["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn one_level_deeper_is_refused_by_name(api: TestApi) {
    let (sum, negation, when) = at_depth(MAX_DEPTH + 1);
    let (ok_sum, ok_negation, ok_when) = at_depth(MAX_DEPTH);
    for (what, source) in [
        ("sum", source("deeper", &sum, &ok_negation, &ok_when)),
        ("not", source("deeper", &ok_sum, &negation, &ok_when)),
        ("or", source("deeper", &ok_sum, &ok_negation, &when)),
    ] {
        let refused = api.deploy("deeper.flow", &source, json!({})).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {refused:?}"
        );
        assert_eq!(codes(&refused), vec![TOO_DEEP.to_string()], "{what}");
        let message = refused.body["error"]["details"]["diagnostics"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(&MAX_DEPTH.to_string()), "{message}");
    }
    let missing = api.get("/api/v1/definitions/deeper", &api.admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "nothing was stored");
}

async fn chains_of_4000_terms_are_refused_and_the_server_stays_up(api: TestApi) {
    let chains = [
        ("sum", "n", vec!["1"; 4000].join(" + ")),
        ("not", "flag", format!("{}flag", "not ".repeat(4000))),
        ("neg", "n", format!("{}1", "- ".repeat(4000))),
        ("field", "n", format!("n{}", ".a".repeat(4000))),
        ("index", "n", format!("m{}", "[0]".repeat(4000))),
    ];
    for (what, target, expr) in chains {
        let source = format!(
            "process chain \"链\" version 1\nvar n: integer\nvar flag: boolean\nvar m: list<integer>\n\
             start begin \"开始\" -> calc\nstep calc \"计算\" {{ set {target} = {expr} }} -> done\n\
             end done \"结束\" result ok\n"
        );
        let refused = api.deploy("chain.flow", &source, json!({})).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {refused:?}"
        );
        assert_eq!(codes(&refused), vec![TOO_DEEP.to_string()], "{what}");
    }
    let list = api.get("/api/v1/definitions", &api.admin).await;
    assert_eq!(list.status, StatusCode::OK, "the server still answers");
}

/// The loader's own bound: a stored model nested exactly [`yimen_engine::MAX_MODEL_DEPTH`]
/// JSON levels (a type of `list<list<…>>`, which the checker does not limit by expression
/// depth) reads back on a 2 MiB stack; one level deeper is an error, not a stack overflow.
#[test]
fn a_stored_model_at_the_reading_limit_reads_back_and_one_deeper_is_an_error() {
    use yimen_dsl::model::Type;
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let base = support::case_model();
            let nest = |levels: usize| {
                let mut model = base.clone();
                let mut ty = Type::Text;
                for _ in 0..levels {
                    ty = Type::List(Box::new(ty));
                }
                model.vars[0].ty = ty;
                serde_json::to_string(&model).expect("serialises")
            };
            let max = yimen_engine::MAX_MODEL_DEPTH;
            let levels = (max / 2..max)
                .find(|&l| yimen_engine::json_depth(&nest(l)) == max)
                .expect("a nesting reaches the limit exactly");
            let at_limit = nest(levels);
            let model = yimen_engine::read_model(&at_limit).expect("reads back at the limit");
            assert_eq!(model.key.name, "case");
            let deeper = nest(levels + 1);
            assert_eq!(yimen_engine::json_depth(&deeper), max + 1);
            let error = yimen_engine::read_model(&deeper).expect_err("one level too deep");
            assert!(
                error
                    .to_string()
                    .contains(&yimen_engine::MAX_MODEL_DEPTH.to_string()),
                "{error}"
            );
            // Taken apart level by level: the derived `Drop` of a `Type` recurses.
            let mut ty = model.vars.into_iter().next().expect("a variable").ty;
            while let Type::List(inner) = ty {
                ty = *inner;
            }
        })
        .expect("thread starts")
        .join()
        .expect("no panic, no overflow");
}
