#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! One step cut short at each of its requests, runs racing, and the breaker stopping a run,
//! checked request by request in the emulator's log: a crash or a refusal at any request
//! converges on the next run; no IAM change is made twice; after a trip no IAM change at all.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::Duration;
use dormant::app::output::RunReport;
use dormant::domain::{Outcome, Policy, Principal, Stage, Subject};
use dormant::ports::Store;
use serde_json::Value;

use crate::support::account::{steps_done, TestEngine};
use crate::support::emulated_world::{is_mutating, Call, World};
use crate::support::emulator::{emulator, Fault};

/// Every IAM request that changes something, as `(operation, role or user)`, in order.
fn iam_changes(requests: &[Value]) -> Vec<(String, String)> {
    requests
        .iter()
        .filter(|r| r["service"] == "iam")
        .filter_map(|r| {
            let op = r["operation"].as_str().filter(|op| is_mutating(op))?;
            let target = r["RoleName"].as_str().or(r["UserName"].as_str())?;
            Some((op.to_string(), target.to_string()))
        })
        .collect()
}

fn done(report: &RunReport) -> Vec<String> {
    let mut names: Vec<String> = report
        .actions
        .iter()
        .filter(|a| a.outcome == Outcome::Done)
        .map(|a| a.identity.rsplit('/').next().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

/// What a quarantine leaves: the role's inline policies and tags (the time in the stage tag
/// cut, as the next step counts from the real commit), the stored stage, and the steps done.
async fn quarantine_end_state(w: &World, engine: &TestEngine) -> Value {
    let subject = Subject::whole(Principal::role(&w.id, "/", "fragile"));
    let mut tags = w.role_tags("fragile").await;
    if let Some(v) = tags.get_mut("dormant:stage") {
        v.truncate(v.find(" at ").unwrap_or(v.len()));
    }
    let record = engine.store.load(&subject).await.unwrap().unwrap();
    serde_json::json!({
        "policies": w.role_policies("fragile").await,
        "quarantined": w.role_quarantined("fragile").await,
        "tags": tags,
        "stage": record.stage.as_str(),
        "pending": record.pending.is_some(),
        "done": steps_done(engine, &subject).await,
    })
}

/// A role noticed on day 0, due for quarantine on day 7.
async fn noticed_role() -> (World, TestEngine) {
    let w = World::new().await;
    w.role_with("/", "fragile", 200, None, &[]).await;
    let engine = w.engine(Policy::default()).await;
    engine.sweep(w.at(0, 0)).await.unwrap();
    (w, engine)
}

#[derive(Debug, Clone)]
enum Cut {
    /// The process dies while request `nth` of the call is on the wire.
    Crash,
    /// Request `nth` of the call is refused (AccessDenied).
    Refused,
}

/// Crash safety of one step: the quarantine tick makes a dozen requests (the due index, the
/// breaker, the fresh read, the intent, the deny policy, the tag, the done entry, the commit,
/// the breaker's count). Cut it short at each in turn, by a crash and by a refusal, each checked
/// to have hit its request: the next run past the intent lease ends where a run without the cut
/// ends, with the step recorded done exactly once, and no run inside the lease resumes it.
#[tokio::test]
async fn a_step_interrupted_at_any_call_converges_on_the_next_run() {
    let (w, engine) = noticed_role().await;
    w.forget_requests();
    let r = engine.tick(w.at(7, 0)).await.unwrap();
    assert_eq!(done(&r), vec!["fragile"], "{r:?}");
    let mut seen: BTreeMap<Call, u32> = BTreeMap::new();
    let mut requests = Vec::new();
    for request in w.all_requests() {
        let mut call = Call::of(&request);
        // Keys of items (the breaker's, the role's) name the account: each case has its own.
        call.target = call.target.map(|t| w.norm(&t));
        let n = seen.entry(call.clone()).or_default();
        *n += 1;
        requests.push((call, *n));
    }
    assert!(
        requests.len() >= 10,
        "the tick's requests were logged: {requests:?}"
    );
    let reference = quarantine_end_state(&w, &engine).await;
    assert_eq!(
        reference["done"],
        serde_json::json!(["notice", "quarantine"])
    );

    let cases = requests
        .iter()
        .flat_map(|(call, nth)| [Cut::Crash, Cut::Refused].map(|cut| (call.clone(), *nth, cut)));
    let reference = &reference;
    futures::future::join_all(cases.map(|(call, nth, cut)| async move {
        let what = format!("{cut:?} at {call} #{nth}");
        let (w, engine) = noticed_role().await;
        let call = Call {
            target: call.target.map(|t| w.denorm(&t)),
            ..call
        };
        let tick = engine.tick(w.at(7, 0));
        match cut {
            Cut::Crash => {
                let out = Box::pin(w.crash_on(&call, nth - 1, tick)).await;
                assert!(out.is_none(), "{what}: the crash point was reached");
            }
            Cut::Refused => {
                if nth > 1 {
                    w.fault_on(&call, Fault::Latency(StdDuration::from_millis(1)), nth - 1);
                }
                w.fault_on(&call, Fault::AccessDenied, 1);
                let _ = Box::pin(tick).await;
                assert_eq!(w.faults_left(), Vec::<Value>::new(), "{what}: hit");
            }
        }
        let subject = Subject::whole(Principal::role(&w.id, "/", "fragile"));
        let stored = engine.store.load(&subject).await.unwrap().unwrap();
        if stored.pending.is_some() {
            let r = engine
                .tick(w.at(7, 0) + Duration::minutes(5))
                .await
                .unwrap();
            assert!(
                r.actions.is_empty(),
                "{what}: resumed inside the lease: {r:?}"
            );
        }
        let r = engine
            .tick(w.at(7, 0) + Duration::minutes(16))
            .await
            .unwrap();
        assert_eq!(r.failed(), 0, "{what}: {r:?}");
        assert_eq!(
            &quarantine_end_state(&w, &engine).await,
            reference,
            "{what}: the same end state as without the cut"
        );
    }))
    .await;
}

/// Two ticks racing over four due quarantines: each quarantine is done once between them, and
/// not one IAM change (of any kind, on any role) is made twice.
#[tokio::test]
async fn two_ticks_racing_take_each_step_once_and_make_no_iam_call_twice() {
    let w = World::new().await;
    for n in 0..4 {
        w.role_with("/", &format!("race-{n}"), 200, None, &[]).await;
    }
    let (e1, e2) = (
        w.engine(Policy::default()).await,
        w.engine(Policy::default()).await,
    );
    e1.sweep(w.at(0, 0)).await.unwrap();
    w.forget_requests();
    let (r1, r2) = tokio::join!(e1.tick(w.at(7, 0)), e2.tick(w.at(7, 0)));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    let mut both = [done(&r1), done(&r2)].concat();
    both.sort();
    assert_eq!(
        both,
        vec!["race-0", "race-1", "race-2", "race-3"],
        "each quarantine done once between the two: {r1:?} {r2:?}"
    );
    let mut changes = iam_changes(&w.all_requests());
    changes.sort();
    let mut expected: Vec<(String, String)> = (0..4)
        .flat_map(|n| {
            ["AttachRolePolicy", "TagRole"].map(|op| (op.to_string(), format!("race-{n}")))
        })
        .collect();
    expected.sort();
    assert_eq!(changes, expected, "every IAM change once, none twice");
    for n in 0..4 {
        let s = Subject::whole(Principal::role(&w.id, "/", &format!("race-{n}")));
        assert_eq!(steps_done(&e1, &s).await, vec!["notice", "quarantine"]);
    }
}

/// The breaker allows 2 actions per run: the third quarantine trips it, and from then on no IAM
/// change at all is made, in that run or the next, on any role; the two done are whole.
#[tokio::test]
async fn the_breaker_trips_at_max_actions_plus_one_and_stops_every_further_mutation() {
    let w = World::new().await;
    for n in 0..4 {
        w.role_with("/", &format!("mass-{n}"), 200, None, &[]).await;
    }
    let mut policy = Policy::default();
    policy.breaker.max_actions_per_run = 2;
    let engine = w.engine(policy).await;
    engine.sweep(w.at(0, 0)).await.unwrap();
    w.forget_requests();
    let r = engine.tick(w.at(7, 0)).await.unwrap();
    assert!(r.breaker_tripped);
    let quarantined = done(&r);
    assert_eq!(quarantined.len(), 2, "{r:?}");
    assert_eq!(
        r.actions
            .iter()
            .filter(|a| a.outcome == Outcome::Skipped)
            .count(),
        2
    );
    let mut changes = iam_changes(&w.all_requests());
    changes.sort();
    let mut expected: Vec<(String, String)> = quarantined
        .iter()
        .flat_map(|n| ["AttachRolePolicy", "TagRole"].map(|op| (op.to_string(), n.clone())))
        .collect();
    expected.sort();
    assert_eq!(
        changes, expected,
        "only the two quarantines before the trip changed IAM"
    );
    let breaker = engine.store.breaker(&w.id).await.unwrap();
    assert!(breaker.tripped);
    assert!(breaker.cause.unwrap().contains("more than 2"));

    // Stays tripped across runs until reset: nothing more changes.
    w.forget_requests();
    let r = engine.tick(w.at(8, 0)).await.unwrap();
    assert!(done(&r).is_empty(), "{r:?}");
    let r = engine.sweep(w.at(9, 0)).await.unwrap();
    assert!(done(&r).is_empty(), "{r:?}");
    assert_eq!(iam_changes(&w.all_requests()), Vec::new());
    for n in 0..4 {
        let name = format!("mass-{n}");
        let s = Subject::whole(Principal::role(&w.id, "/", &name));
        let stage = engine.store.load(&s).await.unwrap().unwrap().stage;
        let want = if quarantined.contains(&name) {
            Stage::Quarantined
        } else {
            Stage::Noticed
        };
        assert_eq!(stage, want, "{name}");
    }
    assert!(emulator().faults(&w.id).is_empty());
}
