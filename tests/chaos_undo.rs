#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; the schedule is relative to one shared instant
//! `undo` under fault (issue 9): a fault, a crash or a refused write on each call `undo` makes,
//! in turn; it either completes or leaves an intent that the next run (or a second `undo`)
//! completes, never a half-restored identity. Each case checks that its fault was hit.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::Duration;
use dormant::config::Config;
use dormant::domain::{IdentityArg, Outcome, Policy, Principal, Stage, Step, Subject};
use dormant::ports::Store;
use serde_json::Value;

use crate::support::account::TestEngine;
use crate::support::emulated_world::{is_mutating, Call, World};
use crate::support::emulator::Fault;

/// The defaults, with a breaker that never trips: quarantining 30 users at once would trip it,
/// which is not under test here.
fn policy_for_many() -> Policy {
    let mut policy = Config::from_toml("").unwrap().policy;
    policy.breaker.min_count = 10_000;
    policy.breaker.max_actions_per_run = 10_000;
    policy
}

#[derive(Debug, Clone)]
enum UndoFault {
    /// `fault` on request `nth` of `call` (and, for `count > 1`, on its retries).
    Fault {
        call: Call,
        nth: u32,
        fault: Fault,
        count: u32,
    },
    /// The process dies while request `nth` of `call` is on the wire.
    Crash { call: Call, nth: u32 },
}

/// The adapters retry a transient error 5 times: 6 HTTP 500s fail a call, none left over.
const PAST_THE_RETRIES: u32 = 6;

/// A case for each request `undo` made in `probe` (its log, in order): AccessDenied on it; for
/// an IAM change also HTTP 500 past the retries and a crash; for a DynamoDB write a crash.
fn undo_cases(probe: &[Value]) -> Vec<UndoFault> {
    let mut seen: BTreeMap<Call, u32> = BTreeMap::new();
    let mut cases = Vec::new();
    for request in probe {
        let call = Call::new(
            request["service"].as_str().unwrap(),
            request["operation"].as_str().unwrap(),
        );
        let nth = {
            let n = seen.entry(call.clone()).or_default();
            *n += 1;
            *n
        };
        let fault = |fault, count| UndoFault::Fault {
            call: call.clone(),
            nth,
            fault,
            count,
        };
        cases.push(fault(Fault::AccessDenied, 1));
        let write = (call.service == "iam" && is_mutating(&call.operation))
            || (call.service == "dynamodb" && call.operation == "PutItem");
        if call.service == "iam" && write {
            cases.push(fault(Fault::Http500, PAST_THE_RETRIES));
        }
        if write {
            cases.push(UndoFault::Crash {
                call: call.clone(),
                nth,
            });
        }
    }
    cases
}

/// What IAM shows of one undo user: quarantine policy attached, status of the key dormant turned
/// off and of the owner's, and how many stage tags.
async fn undo_user_state(w: &World, name: &str) -> (bool, String, String, usize) {
    let u = w.user_state(name).await.unwrap();
    let policy = u["policies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "DormantQuarantineDenyAll");
    let key = |label: &str| {
        u["keys"][format!("<{label}>")]
            .as_str()
            .unwrap()
            .to_string()
    };
    let stage_tags = u["tags"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("dormant:stage") || k.starts_with("dormant:next-step"))
        .count();
    (
        policy,
        key(&format!("{name}-dormants")),
        key(&format!("{name}-owners")),
        stage_tags,
    )
}

/// Notice, quarantine and key deactivation of every user in the account.
async fn quarantine(w: &World, engine: &TestEngine) {
    for (day, run) in [(0, "sweep"), (7, "tick"), (14, "tick")] {
        let r = if run == "sweep" {
            engine.sweep(w.at(day, 0)).await
        } else {
            engine.tick(w.at(day, 0)).await
        }
        .unwrap();
        assert_eq!(r.failed(), 0, "{r:?}");
    }
    for r in engine.store.list(&w.id, None).await.unwrap() {
        let name = &r.subject.principal.name;
        assert_eq!(
            undo_user_state(w, name).await,
            (true, "Inactive".into(), "Inactive".into(), 1),
            "{name} is quarantined with its key turned off"
        );
    }
}

async fn build_undo_user(w: &World, name: &str) {
    w.user_with("/", name, 400, Some(200), true).await;
    w.key(name, &format!("{name}-dormants"), 300, Some(200), true)
        .await;
    w.key(name, &format!("{name}-owners"), 300, Some(200), false)
        .await;
}

/// `undo` of a user with its keys turned off, with a fault on each request it makes in turn
/// (every request of an `undo` without faults: the fresh read, the record and breaker reads,
/// the intent, the release's IAM calls, the done entry, the commit, the read-back, the event),
/// each case checked to have hit its request. Right after the faulty `undo` the identity is
/// either fully restored and recorded released, or untouched, or carries a pending release
/// intent; never partly restored without one. Then the next tick past the lease (or,
/// alternately and when nothing is pending, a second `undo`) finishes it: fully restored,
/// released, the release recorded done exactly once, and the key its owner turned off never
/// turned on.
#[tokio::test]
async fn undo_with_a_fault_on_each_call_completes_or_leaves_an_intent_that_is_finished() {
    // An undo without faults, to learn the requests it makes.
    let w = World::new().await;
    build_undo_user(&w, "undo-probe").await;
    let engine = w.lambda_engine(policy_for_many()).await;
    quarantine(&w, &engine).await;
    w.forget_requests();
    let arg: IdentityArg = "user/undo-probe".parse().unwrap();
    let r = engine.undo(&arg, "probe", w.at(15, 0)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done, "{r:?}");
    let cases = undo_cases(&w.all_requests());
    assert!(
        cases.len() > 20,
        "every request of the undo is a case: {cases:#?}"
    );

    // One user per case, each undone with its fault.
    let w = World::new().await;
    let names: Vec<String> = (0..cases.len()).map(|i| format!("undo-{i}")).collect();
    for name in &names {
        build_undo_user(&w, name).await;
    }
    let engine = w.lambda_engine(policy_for_many()).await;
    quarantine(&w, &engine).await;

    for (i, (case, name)) in cases.iter().zip(&names).enumerate() {
        let now = w.at(15, i as i64);
        let subject = Subject::whole(Principal::user(&w.id, "/", name));
        let arg: IdentityArg = format!("user/{name}").parse().unwrap();
        let undo = || engine.undo(&arg, "still needed", now);
        let first = match case {
            UndoFault::Fault {
                call,
                nth,
                fault,
                count,
            } => {
                if *nth > 1 {
                    w.fault_on(call, Fault::Latency(StdDuration::from_millis(1)), nth - 1);
                }
                w.fault_on(call, *fault, *count);
                let out = Some(undo().await);
                assert_eq!(
                    w.faults_left(),
                    Vec::<Value>::new(),
                    "{case:?}: the fault was hit"
                );
                out
            }
            UndoFault::Crash { call, nth } => {
                let out = w.crash_on(call, nth - 1, undo()).await;
                assert!(out.is_none(), "{case:?}: the crash point was reached");
                out
            }
        };
        w.clear_faults();
        let first = match first {
            None => "crashed".to_string(),
            Some(Ok(r)) => format!("{} ({})", r.outcome.as_str(), r.reason),
            Some(Err(e)) => format!("error: {e}"),
        };
        let what = format!("{case:?} → {first}");

        let record = engine.store.load(&subject).await.unwrap().unwrap();
        let state = undo_user_state(&w, name).await;
        assert_eq!(state.2, "Inactive", "{what}: the owner's key stays off");
        let restored = (false, "Active".to_string(), "Inactive".to_string(), 0);
        let untouched = (true, "Inactive".to_string(), "Inactive".to_string(), 1);
        match (record.stage, &record.pending) {
            (Stage::Released, None) => {
                assert_eq!(
                    state, restored,
                    "{what}: recorded released, so fully restored"
                );
            }
            (Stage::KeysDeactivated, Some(intent)) => {
                assert_eq!(intent.step, Step::Release, "{what}");
            }
            (Stage::KeysDeactivated, None) => {
                assert_eq!(
                    state, untouched,
                    "{what}: changed in IAM, but neither released nor a pending intent says so"
                );
            }
            other => panic!("{what}: unexpected record {other:?}"),
        }

        // Finish: the next run past the lease, or the operator again.
        if record.stage != Stage::Released {
            if record.pending.is_some() && i % 2 == 0 {
                let r = engine.tick(now + Duration::minutes(16)).await.unwrap();
                assert_eq!(r.failed(), 0, "{what}: {r:?}");
            } else {
                let r = engine
                    .undo(&arg, "still needed", now + Duration::minutes(1))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: the second undo: {e}"));
                assert_eq!(r.outcome, Outcome::Done, "{what}: {r:?}");
            }
        }
        let record = engine.store.load(&subject).await.unwrap().unwrap();
        assert_eq!(record.stage, Stage::Released, "{what}: {record:?}");
        assert!(record.pending.is_none(), "{what}");
        assert!(record.keys_deactivated.is_empty(), "{what}");
        assert_eq!(
            undo_user_state(&w, name).await,
            restored,
            "{what}: fully restored in the end"
        );
        let releases = engine
            .store
            .history(&subject)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.step == "release" && e.outcome == Outcome::Done)
            .count();
        assert_eq!(releases, 1, "{what}: the release is recorded done once");
    }
}
