//! Poison payloads: GitHub's real payloads, mutated the ways a forged (but signed) delivery
//! could be, fed through the projector. Nothing may panic, nothing may get stuck, every other
//! account keeps projecting, and `verdict reproject` succeeds.

mod common;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use verdict::projections::clean::{MAX_BODY_BYTES, MAX_SHORT_BYTES};
use verdict::projections::decisions::project;

/// The events the projector interprets, with every real example of each.
fn interpreted() -> Vec<(String, Value)> {
    const EVENTS: &[&str] = &[
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "pull_request_review_thread",
        "issue_comment",
        "issues",
        "check_suite",
        "check_run",
        "status",
        "push",
    ];
    common::fixture_payloads()
        .into_iter()
        .filter(|(event, _)| EVENTS.contains(&event.as_str()))
        .map(|(event, path)| {
            (
                event,
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap(),
            )
        })
        .collect()
}

/// What replaces a value somewhere in a payload.
#[derive(Debug, Clone)]
enum Poison {
    Nul,
    Huge,
    Emoji,
    Null,
    Float,
    BigInt,
    Negative,
    Bool,
    EmptyObject,
    EmptyArray,
    Deep(u8),
    Time(&'static str),
    Text(String),
}

impl Poison {
    fn value(&self) -> Value {
        match self {
            Poison::Nul => json!("a\u{0}b\u{0}"),
            Poison::Huge => json!("word ".repeat(120_000)),
            Poison::Emoji => json!("😀".repeat(700)),
            Poison::Null => Value::Null,
            Poison::Float => json!(1e300),
            Poison::BigInt => json!(u64::MAX),
            Poison::Negative => json!(-1),
            Poison::Bool => json!(true),
            Poison::EmptyObject => json!({}),
            Poison::EmptyArray => json!([]),
            Poison::Deep(n) => (0..*n).fold(json!(1), |v, _| json!([v])),
            Poison::Time(t) => json!(t),
            Poison::Text(s) => json!(s),
        }
    }
}

fn poison() -> impl Strategy<Value = Poison> {
    prop_oneof![
        Just(Poison::Nul),
        Just(Poison::Huge),
        Just(Poison::Emoji),
        Just(Poison::Null),
        Just(Poison::Float),
        Just(Poison::BigInt),
        Just(Poison::Negative),
        Just(Poison::Bool),
        Just(Poison::EmptyObject),
        Just(Poison::EmptyArray),
        (1u8..120).prop_map(Poison::Deep),
        prop_oneof![
            Just("0000-01-01T00:00:00Z"),
            Just("9999-12-31T23:59:59Z"),
            Just("2026-13-45T99:99:99Z"),
            Just("not a time"),
        ]
        .prop_map(Poison::Time),
        "[\\PC\\x00]{0,40}".prop_map(Poison::Text),
    ]
}

/// Every node of `v`, as JSON pointers, depth first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Members the projector reads: half the mutations aim at one of these, the rest anywhere.
const READ: &[&str] = &[
    "/action",
    "/number",
    "/repository/full_name",
    "/repository/private",
    "/sender/login",
    "/pull_request/number",
    "/pull_request/title",
    "/pull_request/body",
    "/pull_request/user/login",
    "/pull_request/head/sha",
    "/pull_request/updated_at",
    "/pull_request/merged",
    "/pull_request/labels",
    "/pull_request/labels/0/name",
    "/pull_request/milestone/title",
    "/review/id",
    "/review/state",
    "/review/body",
    "/review/user/login",
    "/review/submitted_at",
    "/review/commit_id",
    "/comment/body",
    "/comment/id",
    "/comment/path",
    "/comment/user/login",
    "/comment/created_at",
    "/issue/number",
    "/issue/title",
    "/issue/pull_request",
    "/check_run/name",
    "/check_run/conclusion",
    "/check_run/pull_requests",
    "/check_suite/pull_requests/0/number",
    "/state",
    "/context",
    "/ref",
    "/forced",
    "/after",
    "/pusher/name",
];

/// Where a mutation lands.
#[derive(Debug, Clone)]
enum Target {
    Anywhere(prop::sample::Index),
    Read(prop::sample::Index),
}

/// One real payload with up to four of its values (or the whole) replaced.
fn mutated() -> impl Strategy<Value = (String, Value)> {
    let payloads = interpreted();
    let n = payloads.len();
    let target = prop_oneof![
        any::<prop::sample::Index>().prop_map(Target::Anywhere),
        any::<prop::sample::Index>().prop_map(Target::Read),
    ];
    (0..n, prop::collection::vec((target, poison()), 1..5)).prop_map(move |(which, changes)| {
        let (event, mut v) = payloads[which].clone();
        for (target, poison) in changes {
            let pointer = match target {
                Target::Anywhere(at) => {
                    let mut all = Vec::new();
                    pointers(&v, String::new(), &mut all);
                    at.get(&all).clone()
                }
                Target::Read(at) => at.get(READ).to_string(),
            };
            if let Some(slot) = v.pointer_mut(&pointer) {
                *slot = poison.value();
            }
        }
        (event, v)
    })
}

/// Every string in what a projection holds, with how long it may be.
fn strings(p: &verdict::projections::decisions::Projected) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let short = |s: &str| (s.to_string(), MAX_SHORT_BYTES);
    for d in &p.decisions {
        out.push(short(&d.repo));
        out.push(short(&d.kind));
        out.extend(d.actor.as_deref().map(short));
        out.extend(d.commit_sha.as_deref().map(short));
        out.extend(d.body.clone().map(|b| (b, MAX_BODY_BYTES + 100)));
        out.push((d.details.to_string(), usize::MAX));
    }
    if let Some(pr) = &p.pull_request {
        out.push(short(&pr.title));
        out.extend(pr.body.clone().map(|b| (b, MAX_BODY_BYTES + 100)));
    }
    for f in &p.features {
        out.push(short(&f.key));
        out.push(short(&f.title));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever a signed payload holds, projecting it never panics, and what it projects to
    /// is text PostgreSQL accepts, within the caps.
    #[test]
    fn projecting_a_mutated_payload_never_panics_and_yields_clean_text((event, v) in mutated()) {
        let body = serde_json::to_vec(&v).unwrap();
        if let Ok(p) = project(
            &event,
            &body,
            chrono::Utc::now(),
            &verdict::projections::features::FeatureLinking::labels("feature:"),
        ) {
            for (s, max) in strings(&p) {
                prop_assert!(!s.contains('\0') && !s.contains("\\u0000"), "NUL in {s:?}");
                prop_assert!(s.len() <= max, "{} bytes", s.len());
            }
            for d in &p.decisions {
                prop_assert!(verdict::github::names::is_full_name(&d.repo), "{}", d.repo);
            }
        }
    }
}

#[tokio::test]
async fn a_stream_of_mutated_payloads_never_stops_the_projector_and_reproject_succeeds() {
    let db = common::TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    let mut runner = TestRunner::deterministic();
    let strategy = mutated();
    for i in 0..150u64 {
        let (event, mut v) = strategy.new_tree(&mut runner).unwrap().current();
        // Unique bytes, so none is a replay of another.
        if let Some(o) = v.as_object_mut() {
            o.insert("verdict_test_variant".into(), json!(i));
        }
        let body = serde_json::to_vec(&v).unwrap();
        let r = server.deliver(&event, &format!("poison-{i}"), &body).await;
        assert!(r.status().is_success(), "{event} #{i}: {}", r.status());
    }
    // An ordinary delivery of another account, after all of them.
    let sentinel = common::in_repository(
        &common::fixture("pull_request_review/submitted.1.json"),
        "other-org",
        "payments",
    );
    assert_eq!(
        server
            .deliver("pull_request_review", "sentinel", &sentinel)
            .await
            .status(),
        201
    );
    let pool = db.app_pool().await;
    // Returns only once nothing is left to project (it panics if the projector is stuck).
    common::project_all(&pool).await;
    let sentinel_records: i64 =
        sqlx::query_scalar("SELECT count(*) FROM decisions WHERE repo = 'other-org/payments'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(sentinel_records, 1);
    let (ok, out) = common::verdict_cli(&["reproject"], &[("DATABASE_URL", &db.url)]);
    assert!(ok, "{out}");
    assert!(out.contains("reprojected 151 entries"), "{out}");
    server.shutdown().await;
}
