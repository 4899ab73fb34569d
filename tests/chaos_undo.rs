#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; the schedule is relative to one shared instant
//! `undo` under fault (issue 9): a fault, a crash or a refused write on each call `undo` makes,
//! in turn; it either completes or leaves an intent that the next run (or a second `undo`)
//! completes, never a half-restored identity. Each case checks that its fault was hit.

use std::time::Duration as StdDuration;

use chrono::Duration;
use dormant::config::Config;
use dormant::domain::{IdentityArg, Outcome, Policy, Principal, Stage, Step, Subject};
use dormant::ports::Store;

use crate::support::emulated_world::World;
use crate::support::emulator::Fault;

fn default_policy() -> Policy {
    Config::from_toml("").unwrap().policy
}

#[derive(Debug, Clone, Copy)]
enum UndoFault {
    /// A fault on the next `count` calls of an IAM operation.
    Iam(&'static str, Fault, u32),
    /// The process dies while that IAM call is on the wire.
    Crash(&'static str),
    /// The `nth` DynamoDB call of that operation is refused.
    Dynamo(&'static str, u32),
}

/// The calls `undo` makes on a user: the fresh read, then the release (quarantine policy, the
/// key dormant turned off, the stage tags).
const UNDO_READS: &[&str] = &[
    "GetUser",
    "ListUserTags",
    "ListAccessKeys",
    "GetAccessKeyLastUsed",
    "GetLoginProfile",
    "ListUserPolicies",
];
const UNDO_WRITES: &[&str] = &["DeleteUserPolicy", "UpdateAccessKey", "UntagUser"];

fn undo_cases() -> Vec<UndoFault> {
    let mut cases = Vec::new();
    for op in UNDO_READS {
        cases.push(UndoFault::Iam(op, Fault::AccessDenied, 1));
    }
    for op in UNDO_WRITES {
        cases.push(UndoFault::Iam(op, Fault::AccessDenied, 1));
        cases.push(UndoFault::Iam(op, Fault::Http500, 8));
        cases.push(UndoFault::Crash(op));
    }
    // DynamoDB: the record read, the breaker read, the intent write, the commit, the read-back.
    // (The third PutItem, the audit entry, is the bug test below.)
    cases.push(UndoFault::Dynamo("GetItem", 1));
    cases.push(UndoFault::Dynamo("GetItem", 2));
    cases.push(UndoFault::Dynamo("PutItem", 1));
    cases.push(UndoFault::Dynamo("PutItem", 2));
    cases.push(UndoFault::Dynamo("GetItem", 3));
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

async fn build_undo_user(w: &World, name: &str) {
    w.user_with("/", name, 400, Some(200), true).await;
    w.key(name, &format!("{name}-dormants"), 300, Some(200), true)
        .await;
    w.key(name, &format!("{name}-owners"), 300, Some(200), false)
        .await;
}

/// `undo` of a user with its keys turned off, with a fault on each of its calls in turn. Right
/// after the faulty `undo` the identity is either fully restored and recorded released, or
/// untouched, or carries a pending release intent; never partly restored without one. Then the
/// next tick past the lease (or, alternately and when nothing is pending, a second `undo`)
/// finishes it: fully restored, released, the release recorded done exactly once, and the key its
/// owner turned off never turned on.
#[tokio::test]
async fn undo_with_a_fault_on_each_call_completes_or_leaves_an_intent_that_is_finished() {
    let w = World::new().await;
    let cases = undo_cases();
    let names: Vec<String> = (0..cases.len()).map(|i| format!("undo-{i}")).collect();
    for name in &names {
        build_undo_user(&w, name).await;
    }
    // Quarantining 20 users at once would trip the breaker, which is not under test here.
    let mut policy = default_policy();
    policy.breaker.min_count = 10_000;
    let engine = w.lambda_engine(policy).await;
    for (day, run) in [(0, "sweep"), (7, "tick"), (14, "tick")] {
        let r = if run == "sweep" {
            engine.sweep(w.at(day, 0)).await
        } else {
            engine.tick(w.at(day, 0)).await
        }
        .unwrap();
        assert_eq!(r.failed(), 0, "{r:?}");
    }
    for name in &names {
        assert_eq!(
            undo_user_state(&w, name).await,
            (true, "Inactive".into(), "Inactive".into(), 1),
            "{name} is quarantined with its key turned off"
        );
    }

    for (i, (case, name)) in cases.iter().zip(&names).enumerate() {
        let now = w.at(15, i as i64);
        let subject = Subject::whole(Principal::user(&w.id, "/", name));
        let arg: IdentityArg = format!("user/{name}").parse().unwrap();
        let undo = || engine.undo(&arg, "still needed", now);
        let first = match *case {
            UndoFault::Iam(op, fault, count) => {
                w.fault("iam", op, fault, count);
                Some(undo().await)
            }
            UndoFault::Crash(op) => w.crash_at(op, 0, undo()).await,
            UndoFault::Dynamo(op, nth) => {
                if nth > 1 {
                    w.fault(
                        "dynamodb",
                        op,
                        Fault::Latency(StdDuration::from_millis(1)),
                        nth - 1,
                    );
                }
                w.fault("dynamodb", op, Fault::AccessDenied, 1);
                Some(undo().await)
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
