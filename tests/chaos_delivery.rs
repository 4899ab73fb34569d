#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; the schedule is relative to one shared instant
//! Reliability under delivery (issue 9): duplicate, out-of-order and concurrent delivery of
//! events, and concurrent runs over the same identities, converge to the end state of one
//! delivery (one run) at a time, each step done once and no IAM change made twice.

use chrono::DateTime;
use chrono::Utc;
use dormant::app::event::{handle_event, EventError, EventReport};
use dormant::config::Config;
use dormant::domain::Policy;
use serde_json::Value;

use crate::support::account::TestEngine;
use crate::support::emulated_world::{assert_no_step_done_twice, is_mutating, pretty, Rng, World};
use crate::support::events::{fixture, rules};

/// Identities for the event tests: a dormant role and user (whole-identity findings), an active
/// user with one unused key, and an active user with an unused console password.
async fn build_event_world(w: &World) -> (String, String) {
    w.role_with("/", "ev-role", 200, None, &[]).await;
    w.user_with("/", "ev-user", 400, Some(200), true).await;
    w.key("ev-user", "ev-user-k", 300, Some(200), true).await;
    w.user_with("/", "ev-key-user", 400, None, false).await;
    w.key("ev-key-user", "ev-daily", 300, Some(1), true).await;
    w.key("ev-key-user", "ev-unused", 300, Some(100), true)
        .await;
    w.user_with("/engineering/", "ev-console", 400, Some(100), true)
        .await;
    w.key("ev-console", "ev-console-daily", 300, Some(1), true)
        .await;
    (w.role_id("ev-role").await, w.user_id("ev-user").await)
}

/// The fixtures, pointed at this account's identities, with event ids unique to `wave` (a
/// finding re-imported later is a new event). Labels ending in `-resolved`/`-passed` are the
/// out-of-order companions: the same finding, resolved.
fn wave_events(w: &World, role_id: &str, user_id: &str, wave: &str) -> Vec<(String, Value)> {
    let acct = w.id.clone();
    let arn = |kind: &str, path_name: &str| format!("arn:aws:iam::{acct}:{kind}/{path_name}");
    let mut out = Vec::new();
    let mut add = |label: &str, mut e: Value| {
        e["id"] = Value::from(format!("{label}-{wave}"));
        e["account"] = Value::from(acct.clone());
        out.push((label.to_string(), e));
    };

    let mut e = fixture("access-analyzer-unused-role.json");
    e["detail"]["resource"] = Value::from(arn("role", "ev-role"));
    e["detail"]["accountId"] = Value::from(acct.clone());
    add("aa-role", e);

    let mut e = fixture("config-role-noncompliant-aroa.json");
    e["detail"]["resourceId"] = Value::from(role_id);
    e["detail"]["awsAccountId"] = Value::from(acct.clone());
    e["detail"]["newEvaluationResult"]["evaluationResultIdentifier"]["evaluationResultQualifier"]
        ["resourceId"] = Value::from(role_id);
    add("config-role", e);

    let mut e = fixture("securityhub-iam8-user.json");
    let f = &mut e["detail"]["findings"][0];
    f["AwsAccountId"] = Value::from(acct.clone());
    f["Resources"][0]["Id"] = Value::from(arn("user", "ev-user"));
    f["Resources"][0]["Details"]["AwsIamUser"]["UserName"] = Value::from("ev-user");
    f["Resources"][0]["Details"]["AwsIamUser"]["UserId"] = Value::from(user_id);
    let mut passed = e.clone();
    add("sh-user", e);
    passed["detail"]["findings"][0]["Compliance"]["Status"] = Value::from("PASSED");
    add("sh-user-passed", passed);

    let mut e = fixture("config-user-noncompliant-aida.json");
    e["detail"]["resourceId"] = Value::from(user_id);
    e["detail"]["awsAccountId"] = Value::from(acct.clone());
    e["detail"]["newEvaluationResult"]["evaluationResultIdentifier"]["evaluationResultQualifier"]
        ["resourceId"] = Value::from(user_id);
    add("config-user", e);

    for (label, file) in [
        ("aa-key", "access-analyzer-unused-access-key.json"),
        ("aa-key-resolved", "access-analyzer-resolved.json"),
    ] {
        let mut e = fixture(file);
        e["detail"]["resource"] = Value::from(arn("user", "ev-key-user"));
        e["detail"]["accountId"] = Value::from(acct.clone());
        add(label, e);
    }

    let mut e = fixture("access-analyzer-unused-password.json");
    e["detail"]["resource"] = Value::from(arn("user", "engineering/ev-console"));
    e["detail"]["accountId"] = Value::from(acct.clone());
    add("aa-password", e);

    let mut e = fixture("cloudtrail-untaguser-dormant.json");
    e["detail"]["requestParameters"]["userName"] = Value::from("ev-user");
    e["detail"]["recipientAccountId"] = Value::from(acct.clone());
    e["detail"]["userIdentity"]["accountId"] = Value::from(acct.clone());
    add("ct-untag", e);
    out
}

fn is_resolution(label: &str) -> bool {
    label.ends_with("-passed") || label.ends_with("-resolved")
}

fn default_policy() -> Policy {
    Config::from_toml("").unwrap().policy
}

/// The days on which findings arrive: notice, quarantine (and the key and password steps),
/// keys, deletion of the role and the key.
const WAVES: [i64; 4] = [0, 7, 14, 23];

/// Every event delivered three times (one batch of three at once, the other copies shuffled in
/// among the other events), resolved findings before and after the failing ones, against three
/// Lambda instances: the same end state as one delivery each in order, each step done once, each
/// event processed once, and the resolutions ignored (dormant decides from IAM, not from a
/// finding's status: only fresh use releases).
#[tokio::test]
async fn duplicate_and_out_of_order_delivery_converge_to_the_sequential_end_state() {
    let (a, b) = tokio::join!(World::new(), World::new());
    let (ids_a, ids_b) = tokio::join!(build_event_world(&a), build_event_world(&b));
    a.forget_requests();
    b.forget_requests();
    let sequential = a.fleet(default_policy()).await;
    let lambdas = [
        b.fleet(default_policy()).await,
        b.fleet(default_policy()).await,
        b.fleet(default_policy()).await,
    ];
    let rules = rules();
    let mut rng = Rng::new(7);

    for (n, day) in WAVES.into_iter().enumerate() {
        let wave = format!("w{n}");
        let now = a.at(day, 1);
        for (label, event) in wave_events(&a, &ids_a.0, &ids_a.1, &wave) {
            let r = handle_event(&event, &sequential, &rules, None, now)
                .await
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(r.run.failed(), 0, "{label}: {r:?}");
        }

        // Three copies of each; the first event's copies arrive at the same instant.
        let events = wave_events(&b, &ids_b.0, &ids_b.1, &wave);
        let mut deliveries: Vec<(String, Value)> = events
            .iter()
            .flat_map(|e| std::iter::repeat_n(e.clone(), 3))
            .collect();
        let first: Vec<_> = deliveries.drain(..3).collect();
        for i in (1..deliveries.len()).rev() {
            deliveries.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut results: Vec<(String, Result<EventReport, EventError>)> = Vec::new();
        let (r0, r1, r2) = tokio::join!(
            handle_event(&first[0].1, &lambdas[0], &rules, None, now),
            handle_event(&first[1].1, &lambdas[1], &rules, None, now),
            handle_event(&first[2].1, &lambdas[2], &rules, None, now),
        );
        for r in [r0, r1, r2] {
            results.push((first[0].0.clone(), r));
        }
        // The rest in groups of three concurrent deliveries (different events, or copies).
        for group in deliveries.chunks(3) {
            let get = |i: usize| group.get(i).or(group.first()).unwrap();
            let (r0, r1, r2) = tokio::join!(
                handle_event(&get(0).1, &lambdas[0], &rules, None, now),
                handle_event(&get(1).1, &lambdas[1], &rules, None, now),
                handle_event(&get(2).1, &lambdas[2], &rules, None, now),
            );
            for (i, r) in [r0, r1, r2].into_iter().enumerate().take(group.len()) {
                results.push((get(i).0.clone(), r));
            }
        }

        for (label, _) in &events {
            let mine: Vec<&EventReport> = results
                .iter()
                .filter(|(l, _)| l == label)
                .map(|(_, r)| {
                    r.as_ref()
                        .unwrap_or_else(|e| panic!("wave {n} {label}: {e}"))
                })
                .collect();
            assert_eq!(mine.len(), 3, "{label}");
            if is_resolution(label) {
                for r in &mine {
                    let why = r.ignored.as_deref().unwrap_or_default();
                    assert!(
                        why.contains("PASSED") || why.contains("RESOLVED"),
                        "{label}: a resolved finding is ignored, not acted on: {r:?}"
                    );
                }
            } else {
                let processed: Vec<_> = mine.iter().filter(|r| !r.duplicate).collect();
                assert_eq!(
                    processed.len(),
                    1,
                    "wave {n} {label}: processed exactly once: {mine:?}"
                );
                assert_eq!(processed[0].run.failed(), 0, "{label}: {processed:?}");
            }
        }
    }

    assert_eq!(pretty(&b.iam_state().await), pretty(&a.iam_state().await));
    let (seq, lambda) = (&sequential.engines[0], &lambdas[0].engines[0]);
    assert_eq!(b.records(lambda).await, a.records(seq).await);
    let (done_a, done_b) = (a.done_steps(seq).await, b.done_steps(lambda).await);
    assert_no_step_done_twice(&done_b, "concurrent delivery");
    assert_eq!(done_b, done_a);
    assert_eq!(
        done_a["arn:aws:iam::ACCOUNT:role/ev-role"],
        vec!["notice", "quarantine", "delete"],
        "the waves walk the role down the whole ladder"
    );
    assert_eq!(
        mutation_multiset(&b),
        mutation_multiset(&a),
        "no IAM change made twice"
    );
}

/// The mutating IAM calls of an account, normalised and sorted: `operation target [key]`.
fn mutation_multiset(w: &World) -> Vec<String> {
    let mut out: Vec<String> = w
        .all_requests()
        .iter()
        .filter(|r| r["service"] == "iam")
        .filter(|r| r["operation"].as_str().is_some_and(is_mutating))
        .map(|r| {
            let target = r["RoleName"]
                .as_str()
                .or(r["UserName"].as_str())
                .unwrap_or("?");
            let key = r["AccessKeyId"].as_str().unwrap_or("");
            w.norm(&format!(
                "{} {target} {key}",
                r["operation"].as_str().unwrap()
            ))
        })
        .collect();
    out.sort();
    out
}

async fn evaluate_all(engine: &TestEngine, now: DateTime<Utc>) {
    for (kind, name) in [
        (dormant::domain::PrincipalKind::Role, "c-role-1"),
        (dormant::domain::PrincipalKind::Role, "c-role-2"),
        (dormant::domain::PrincipalKind::Role, "c-role-3"),
        (dormant::domain::PrincipalKind::User, "c-user"),
        (dormant::domain::PrincipalKind::User, "c-key-user"),
    ] {
        let r = engine.evaluate(kind, name, None, now).await.unwrap();
        assert_eq!(r.failed(), 0, "{name}: {r:?}");
    }
}

async fn build_concurrency_world(w: &World) {
    for n in 1..=3 {
        w.role_with("/", &format!("c-role-{n}"), 200, None, &[])
            .await;
    }
    w.user_with("/", "c-user", 400, Some(200), true).await;
    w.key("c-user", "c-user-k1", 300, Some(200), true).await;
    w.key("c-user", "c-user-k2", 300, Some(200), false).await;
    w.user_with("/", "c-key-user", 400, None, false).await;
    w.key("c-key-user", "c-daily", 300, Some(1), true).await;
    w.key("c-key-user", "c-unused", 300, Some(100), true).await;
}

/// Three runs at once on the same identities (two scheduled runs and an event-driven evaluation
/// of each identity, as three Lambda instances would), at every point where a step is due: the
/// same end state as one run at a time, every step done once, and not one IAM change made twice.
#[tokio::test]
async fn concurrent_ticks_and_evaluations_take_each_step_once() {
    let (a, b) = tokio::join!(World::new(), World::new());
    tokio::join!(build_concurrency_world(&a), build_concurrency_world(&b));
    a.forget_requests();
    b.forget_requests();
    let sequential = a.lambda_engine(default_policy()).await;
    let (e1, e2, e3) = (
        b.lambda_engine(default_policy()).await,
        b.lambda_engine(default_policy()).await,
        b.lambda_engine(default_policy()).await,
    );
    // Notice, quarantine (and key deactivation for the key subject), keys, delete roles and the
    // key, delete the user.
    for (n, day) in [0, 7, 14, 23, 30].into_iter().enumerate() {
        let now = a.at(day, 2);
        let run = |e: &'static str, r: dormant::error::Result<dormant::app::output::RunReport>| {
            let r = r.unwrap_or_else(|err| panic!("{e}: {err}"));
            assert_eq!(r.failed(), 0, "{e}: {r:?}");
        };
        if n == 0 {
            run("sequential sweep", sequential.sweep(now).await);
            let (r1, r2, ()) = tokio::join!(e1.sweep(now), e2.sweep(now), evaluate_all(&e3, now));
            run("sweep 1", r1);
            run("sweep 2", r2);
        } else {
            run("sequential tick", sequential.tick(now).await);
            let (r1, r2, ()) = tokio::join!(e1.tick(now), e2.tick(now), evaluate_all(&e3, now));
            run("tick 1", r1);
            run("tick 2", r2);
        }
    }
    assert_eq!(pretty(&b.iam_state().await), pretty(&a.iam_state().await));
    assert_eq!(b.records(&e1).await, a.records(&sequential).await);
    let done = b.done_steps(&e1).await;
    assert_no_step_done_twice(&done, "concurrent runs");
    assert_eq!(done, a.done_steps(&sequential).await);
    assert_eq!(
        done["arn:aws:iam::ACCOUNT:user/c-user"],
        vec!["notice", "quarantine", "deactivate_keys", "delete"]
    );
    assert_eq!(mutation_multiset(&b), mutation_multiset(&a));
}
