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
use crate::support::emulated_world::{Call, World};
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

/// The partition key of `subject`'s items in dormant's table (`src/adapters/dynamo/item.rs`).
fn pk(subject: &Subject) -> String {
    format!("ID#{}#{}", subject.principal.account, subject.stable_id())
}

/// Refuses the state write that commits the next step of `subject` (its second state write:
/// the first stores the intent); the done entry, written between the two, lands.
fn refuse_commit(w: &World, subject: &Subject) -> Call {
    let state = Call::new("dynamodb", "PutItem")
        .on(&pk(subject))
        .sk("STATE");
    w.fault_on(&state, Fault::Latency(StdDuration::from_millis(1)), 1);
    w.fault_on(&state, Fault::AccessDenied, 1);
    state
}

fn assert_hit(w: &World, what: &str) {
    assert_eq!(
        w.faults_left(),
        Vec::<Value>::new(),
        "{what}: every fault was hit"
    );
}

/// Found by the seeded chaos run (issue 21): a release whose commit was refused after its done
/// entry landed was completed by a later run as a new step, under a new key, so the audit trail
/// said `release` twice. Both ways a release is taken again: the next run past the lease (the
/// owner exempted the role while its quarantine was pending) and the operator's second `undo`.
#[tokio::test]
async fn a_release_completed_after_a_refused_commit_is_recorded_done_once() {
    let w = World::new().await;
    w.role_with("/", "exempted-late", 200, None, &[]).await;
    w.role_with("/", "undone-twice", 200, None, &[]).await;
    let engine = w.lambda_engine(default_policy()).await;
    engine.sweep(w.at(0, 0)).await.unwrap();
    engine.tick(w.at(7, 0)).await.unwrap();
    let exempted = Subject::whole(Principal::role(&w.id, "/", "exempted-late"));
    let undone = Subject::whole(Principal::role(&w.id, "/", "undone-twice"));

    let until = (w.at(60, 0)).format("%Y-%m-%d").to_string();
    w.tag_role(
        "exempted-late",
        &[("dormant:exempt", "true"), ("dormant:exempt-until", &until)],
    )
    .await;
    refuse_commit(&w, &exempted);
    let r = engine.sweep(w.at(8, 0)).await.unwrap();
    assert_eq!(r.failed(), 1, "the refused commit fails the release: {r:?}");
    assert_hit(&w, "exempted-late");
    let r = engine
        .tick(w.at(8, 0) + Duration::minutes(16))
        .await
        .unwrap();
    assert_eq!(r.failed(), 0, "{r:?}");

    let arg = "role/undone-twice".parse().unwrap();
    refuse_commit(&w, &undone);
    assert!(engine.undo(&arg, "needed", w.at(9, 0)).await.is_err());
    assert_hit(&w, "undone-twice");
    let r = engine
        .undo(&arg, "needed", w.at(9, 0) + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(r.outcome, dormant::domain::Outcome::Done, "{r:?}");

    for (subject, stage) in [(exempted, Stage::Exempt), (undone, Stage::Released)] {
        let record = engine.store.load(&subject).await.unwrap().unwrap();
        assert_eq!(record.stage, stage, "{subject}");
        assert!(record.pending.is_none(), "{subject}");
        assert_eq!(
            steps_done(&engine, &subject).await,
            vec!["notice", "quarantine", "release"],
            "{subject}: the release is in the audit trail once"
        );
    }
}

/// Found by the seeded chaos run (issue 21): a key deactivation whose commit was refused, and
/// whose next attempt died after writing its own intent, forgot the key the first attempt had
/// turned off (the second intent had nothing left to turn off, and only intents' effects were
/// counted as dormant's). The step then committed without the key, and when the user signed in
/// again the release left it off: a half-restored user. Whatever attempt finishes the step, the
/// release turns that key back on (and only it).
#[tokio::test]
async fn a_key_deactivation_cut_short_twice_still_knows_the_key_it_turned_off() {
    let w = World::new().await;
    w.user_with("/", "resumed-keys", 400, Some(200), true).await;
    w.key("resumed-keys", "rk-dormants", 300, Some(200), true)
        .await;
    w.key("resumed-keys", "rk-owners", 300, Some(250), false)
        .await;
    let engine = w.lambda_engine(default_policy()).await;
    let subject = Subject::whole(Principal::user(&w.id, "/", "resumed-keys"));
    engine.sweep(w.at(0, 0)).await.unwrap();
    engine.tick(w.at(7, 0)).await.unwrap();
    // The first attempt turns the key off; its commit is refused.
    refuse_commit(&w, &subject);
    let r = engine.tick(w.at(14, 0)).await.unwrap();
    assert_eq!(r.failed(), 1, "{r:?}");
    assert_hit(&w, "the refused commit");
    // The second dies while writing its own intent (the write lands).
    let state = Call::new("dynamodb", "PutItem")
        .on(&pk(&subject))
        .sk("STATE");
    let crashed = w
        .crash_on(&state, 0, engine.tick(w.at(14, 0) + Duration::minutes(16)))
        .await;
    assert!(crashed.is_none(), "the crash point was reached");
    // The third finishes it.
    let r = engine
        .tick(w.at(14, 0) + Duration::minutes(32))
        .await
        .unwrap();
    assert_eq!(r.failed(), 0, "{r:?}");
    let record = engine.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::KeysDeactivated);
    assert_eq!(
        record.keys_deactivated,
        vec![w.key_id("rk-dormants")],
        "the key the first attempt turned off is dormant's"
    );

    emulator().backdate_user(&w.id, "resumed-keys", None, Some(w.at(15, 0)));
    let r = engine.sweep(w.at(16, 0)).await.unwrap();
    assert_eq!(r.failed(), 0, "{r:?}");
    let state = w.user_state("resumed-keys").await.unwrap();
    assert_eq!(
        state["keys"],
        serde_json::json!({"<rk-dormants>": "Active", "<rk-owners>": "Inactive"}),
        "{r:?}"
    );
    assert_eq!(
        steps_done(&engine, &subject).await,
        vec!["notice", "quarantine", "deactivate_keys", "release"]
    );
}

/// Found by the seeded chaos run (issue 21): a release that died half-way (the key it turns
/// back on already on, its tags not yet removed) left the whole user on the ladder until the
/// next run past the lease finished it, and the Lambda's retry of the sweep a minute later put
/// that key, unused for months, on the ladder of its own: the release's cool-off did not cover
/// it, and the key was deleted weeks later. A release in flight covers the credentials too.
#[tokio::test]
async fn a_release_that_died_half_way_covers_the_keys_it_turned_back_on() {
    let w = World::new().await;
    w.user_with("/", "half-released", 400, Some(200), true)
        .await;
    w.key("half-released", "hr-dormants", 300, Some(200), true)
        .await;
    w.key("half-released", "hr-owners", 300, Some(250), false)
        .await;
    let engine = w.lambda_engine(default_policy()).await;
    engine.sweep(w.at(0, 0)).await.unwrap();
    engine.tick(w.at(7, 0)).await.unwrap();
    engine.tick(w.at(14, 0)).await.unwrap();
    emulator().backdate_user(&w.id, "half-released", None, Some(w.at(15, 0)));

    // The release turns the key back on, then dies while removing the stage tag.
    let crashed = w.crash_at("UntagUser", 0, engine.sweep(w.at(16, 0))).await;
    assert!(crashed.is_none(), "the crash point was reached");
    assert_eq!(
        w.user_state("half-released").await.unwrap()["keys"]["<hr-dormants>"],
        "Active",
        "the key was turned back on before the crash"
    );
    // Lambda retries the sweep; then the next runs, past the lease and later in the cool-off.
    for at in [
        w.at(16, 0) + Duration::minutes(1),
        w.at(16, 0) + Duration::minutes(16),
        w.at(17, 0),
        w.at(30, 0),
    ] {
        let r = engine.sweep(at).await.unwrap();
        assert_eq!(r.failed(), 0, "{r:?}");
        assert!(
            !r.actions.iter().any(|a| a.identity.contains("/key/")),
            "no key of a user being released is put on the ladder: {r:?}"
        );
    }
    let subject = Subject::whole(Principal::user(&w.id, "/", "half-released"));
    assert_eq!(
        engine.store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Released
    );
    assert_eq!(
        engine.store.list(&w.id, None).await.unwrap().len(),
        1,
        "only the user is tracked"
    );
    assert_eq!(
        w.user_state("half-released").await.unwrap()["keys"],
        serde_json::json!({"<hr-dormants>": "Active", "<hr-owners>": "Inactive"})
    );
}
