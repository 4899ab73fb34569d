#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; the schedule is relative to one shared instant
//! Bugs the chaos suites found (issue 9, issue 21), each kept as a regression test that
//! reproduces its failure exactly: the fault or crash is aimed at the one request that caused
//! it, and the test checks that it was hit.

use std::time::Duration as StdDuration;

use chrono::Duration;
use dormant::app::event::handle_event;
use dormant::config::Config;
use dormant::domain::{Policy, Principal, PrincipalKind, Stage, Subject};
use dormant::ports::Store;
use serde_json::Value;

use crate::support::account::{steps_done, ALLOW_S3};
use crate::support::emulated_world::World;
use crate::support::emulator::{emulator, Fault};
use crate::support::events::{fixture, rules};

fn default_policy() -> Policy {
    Config::from_toml("").unwrap().policy
}

/// The `done` audit entry is written after the commit, in a separate write (and, for a
/// quarantine, after the breaker write). When the process dies between the commit and the audit
/// write, or that write fails for good, the step has happened and is committed, but the audit
/// trail never says so: `history` shows no `done` for it, and no later run writes one.
#[tokio::test]
async fn a_failed_audit_write_after_the_commit_loses_the_done_entry() {
    let w = World::new().await;
    w.role_with("/", "crash-after-commit", 200, None, &[]).await;
    w.role_with("/", "audit-refused", 200, None, &[]).await;
    let engine = w.lambda_engine(default_policy()).await;
    engine.sweep(w.at(0, 0)).await.unwrap();

    // The notice of `crash-after-commit` is committed by the second PutItem (the first writes
    // the intent); the process dies while that write is on the wire.
    let r = w
        .crash_in("dynamodb", "PutItem", 1, engine.tick(w.at(7, 0)))
        .await;
    assert!(r.is_none(), "the crash point was reached");
    // `audit-refused`: its quarantine commits, then the third PutItem is refused for good.
    w.fault(
        "dynamodb",
        "PutItem",
        Fault::Latency(StdDuration::from_millis(1)),
        2,
    );
    w.fault("dynamodb", "PutItem", Fault::AccessDenied, 1);
    let _ = engine.tick(w.at(7, 1)).await;
    w.clear_faults();
    for minutes in [20, 40, 60] {
        engine
            .tick(w.at(7, 1) + Duration::minutes(minutes))
            .await
            .unwrap();
    }
    engine.sweep(w.at(8, 0)).await.unwrap();

    for role in ["crash-after-commit", "audit-refused"] {
        let subject = Subject::whole(Principal::role(&w.id, "/", role));
        let record = engine.store.load(&subject).await.unwrap().unwrap();
        assert_eq!(
            record.stage,
            Stage::Quarantined,
            "{role}: the step happened"
        );
        assert_eq!(
            steps_done(&engine, &subject).await,
            vec!["notice", "quarantine"],
            "{role}: every step that happened is in the audit trail"
        );
    }
}

/// `handle` claims the event id before processing it. When processing then fails with a
/// retryable error (the Lambda answers `Retryable`, so EventBridge delivers the event again), the
/// redelivery finds the id claimed and is dropped as a duplicate: the nomination is lost until
/// the next sweep.
#[tokio::test]
async fn a_retryable_failure_after_the_claim_makes_the_redelivery_a_no_op() {
    let w = World::new().await;
    w.role_with("/", "nominated", 200, None, &[]).await;
    let fleet = w.fleet(default_policy()).await;
    let mut event = fixture("access-analyzer-unused-role.json");
    event["id"] = Value::from("aa-retry-1");
    event["detail"]["resource"] = Value::from(format!("arn:aws:iam::{}:role/nominated", w.id));
    event["detail"]["accountId"] = Value::from(w.id.clone());
    let now = w.at(0, 0);

    // IAM is unavailable for longer than the retries last.
    w.fault("iam", "GetRole", Fault::Http500, 8);
    let err = handle_event(&event, &fleet, &rules(), None, now)
        .await
        .expect_err("GetRole keeps failing");
    assert!(
        err.is_retryable(),
        "{err}: EventBridge will deliver it again"
    );
    w.clear_faults();

    let again = handle_event(&event, &fleet, &rules(), None, now + Duration::minutes(1))
        .await
        .unwrap();
    assert!(
        !again.duplicate,
        "the retry of an event that was never processed must be processed: {again:?}"
    );
    let record = fleet.engines[0]
        .store
        .load(&Subject::whole(Principal::role(&w.id, "/", "nominated")))
        .await
        .unwrap();
    assert_eq!(record.map(|r| r.stage), Some(Stage::Noticed));
}

/// A delete whose `DeleteRole` reached IAM but whose run died before the commit: the next run
/// re-runs the intent from its first effect, `TakeSnapshot`, which reads the role, gets
/// `NoSuchEntity` and fails the step. Every later run does the same: the record keeps its pending
/// delete for ever and a `Remediation Failed` goes out each time.
#[tokio::test]
async fn an_interrupted_delete_is_completed_by_the_next_run() {
    let w = World::new().await;
    w.role_with("/", "half-deleted", 200, None, &[]).await;
    w.user_with("/", "half-deleted-user", 400, Some(200), true)
        .await;
    w.key("half-deleted-user", "hd-k", 300, Some(200), true)
        .await;
    let engine = w.lambda_engine(default_policy()).await;
    for (day, hour) in [(0, 0), (7, 0), (14, 0)] {
        engine.sweep(w.at(day, hour)).await.unwrap();
    }
    assert!(w
        .crash_at("DeleteRole", 0, engine.tick(w.at(23, 0)))
        .await
        .is_none());
    assert!(w
        .crash_at("DeleteUser", 0, engine.tick(w.at(30, 0)))
        .await
        .is_none());
    for (kind, name) in [("role", "half-deleted"), ("user", "half-deleted-user")] {
        assert!(
            w.iam_state().await.get(format!("{kind}/{name}")).is_none(),
            "{name}: the delete request landed before the crash"
        );
    }

    let r = engine.tick(w.at(30, 1)).await.unwrap();
    assert_eq!(
        r.failed(),
        0,
        "the next run past the lease completes both: {r:?}"
    );
    for subject in [
        Subject::whole(Principal::role(&w.id, "/", "half-deleted")),
        Subject::whole(Principal::user(&w.id, "/", "half-deleted-user")),
    ] {
        let record = engine.store.load(&subject).await.unwrap().unwrap();
        assert_eq!(record.stage, Stage::Deleted, "{subject}");
        assert!(record.pending.is_none(), "{subject}");
        assert!(engine
            .store
            .latest_snapshot(&subject)
            .await
            .unwrap()
            .is_some());
    }
}

/// The same resumption while the identity still exists: a delete interrupted half-way through
/// the teardown (after the inline policies were deleted and the managed policy detached) takes a
/// second snapshot of the half-torn-down role when resumed. `restore` uses the latest snapshot,
/// so the role comes back without the policies the first attempt had already removed.
#[tokio::test]
async fn a_resumed_delete_keeps_the_snapshot_taken_before_the_teardown() {
    let w = World::new().await;
    w.role_with("/", "well-equipped", 200, None, &[]).await;
    let policy_arn = w.create_policy("reports-read", ALLOW_S3).await;
    w.attach_role_policy("well-equipped", &policy_arn).await;
    w.put_role_policy(
        "well-equipped",
        "app-inline",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"*"}]}"#,
    )
    .await;
    let engine = w.lambda_engine(default_policy()).await;
    engine.sweep(w.at(0, 0)).await.unwrap();
    engine.tick(w.at(7, 0)).await.unwrap();
    // Inline policies are deleted, then the managed policy detached: die while detaching.
    assert!(w
        .crash_at("DetachRolePolicy", 0, engine.tick(w.at(23, 0)))
        .await
        .is_none());
    let r = engine.tick(w.at(23, 1)).await.unwrap();
    assert_eq!(r.failed(), 0, "{r:?}");
    let subject = Subject::whole(Principal::role(&w.id, "/", "well-equipped"));
    assert_eq!(
        engine.store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Deleted
    );

    let report = engine
        .restore(
            &"role/well-equipped".parse().unwrap(),
            "needed again",
            w.at(24, 0),
        )
        .await
        .unwrap();
    let inline = w.role_policies("well-equipped").await;
    let attached = w.attached_role_policies("well-equipped").await;
    assert_eq!(inline, vec!["app-inline".to_string()], "{report:?}");
    assert_eq!(attached, vec![policy_arn], "{report:?}");
}

/// A quarantine dies after its deny policy landed; while its intent is pending the owner tags
/// one role exempt and uses another. The next run past the lease rolls both half-done steps back
/// instead of finishing them, and the run after that changes nothing more.
#[tokio::test]
async fn an_exemption_and_a_fresh_use_that_arrive_while_a_step_is_pending_win() {
    let w = World::new().await;
    w.role_with("/", "pending-exempt", 200, None, &[]).await;
    w.role_with("/", "pending-used", 200, None, &[]).await;
    let engine = w.lambda_engine(default_policy()).await;
    engine.sweep(w.at(0, 0)).await.unwrap();
    for name in ["pending-exempt", "pending-used"] {
        // Die while tagging, after the deny policy was attached.
        let crashed = w
            .crash_at(
                "TagRole",
                0,
                engine.evaluate(PrincipalKind::Role, name, None, w.at(7, 0)),
            )
            .await;
        assert!(crashed.is_none(), "{name}: the crash point was reached");
        assert_eq!(
            w.iam_state().await[format!("role/{name}")]["policies"],
            serde_json::json!(["DormantQuarantineDenyAll"]),
            "{name}"
        );
    }
    assert!(emulator().faults(&w.id).is_empty(), "both crashes fired");
    // The owner tags one role exempt and uses the other, five minutes after the crash.
    let then = w.at(7, 0) + Duration::minutes(5);
    let until = (then + Duration::days(60)).format("%Y-%m-%d").to_string();
    w.tag_role(
        "pending-exempt",
        &[("dormant:exempt", "true"), ("dormant:exempt-until", &until)],
    )
    .await;
    emulator().backdate_role(&w.id, "pending-used", None, Some(then));

    let r = engine.tick(w.at(7, 1)).await.unwrap();
    assert_eq!(r.failed(), 0, "{r:?}");
    for (name, stage) in [
        ("pending-exempt", Stage::Exempt),
        ("pending-used", Stage::Released),
    ] {
        let subject = Subject::whole(Principal::role(&w.id, "/", name));
        let record = engine.store.load(&subject).await.unwrap().unwrap();
        assert_eq!(record.stage, stage, "{name}: {}", record.reason);
        assert!(record.pending.is_none(), "{name}");
        assert_eq!(
            w.iam_state().await[format!("role/{name}")]["policies"],
            serde_json::json!([]),
            "{name}: the half-done quarantine is rolled back"
        );
        let done = w.done_steps(&engine).await;
        assert!(
            !done[&format!("arn:aws:iam::ACCOUNT:role/{name}")].contains(&"quarantine".to_string()),
            "{name}: {done:?}"
        );
    }
    emulator().clear_requests(&w.id);
    let again = engine.sweep(w.at(8, 0)).await.unwrap();
    assert!(again.actions.is_empty(), "converged: {again:?}");
}
