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

/// Found by the chaos suite (issue 9): the `done` audit entry was written after the commit, so
/// a process dying right after the commit, or that write failing for good, left a committed step
/// the audit trail never mentioned. Now the entry is written first, under a key fixed by the
/// intent, and the state write commits. Each cut aimed at its one request and checked to have
/// hit it: the process dies while the commit's state write is on the wire (it lands), dies right
/// after the done entry landed, or the state write is refused. The step ends committed (by the
/// next run past the lease where needed) with its done entry exactly once.
#[tokio::test]
async fn a_commit_cut_short_keeps_exactly_one_done_entry() {
    let w = World::new().await;
    w.role_with("/", "died-at-commit", 200, None, &[]).await;
    w.role_with("/", "died-after-entry", 200, None, &[]).await;
    w.role_with("/", "commit-refused", 200, None, &[]).await;
    let engine = w.lambda_engine(default_policy()).await;
    engine.sweep(w.at(0, 0)).await.unwrap();
    let at_commit = Subject::whole(Principal::role(&w.id, "/", "died-at-commit"));
    let died = Subject::whole(Principal::role(&w.id, "/", "died-after-entry"));
    let refused = Subject::whole(Principal::role(&w.id, "/", "commit-refused"));

    // The second state write of `died-at-commit`'s quarantine (the first stores the intent)
    // commits it; the process dies while it is on the wire, so nothing after it runs.
    let state = Call::new("dynamodb", "PutItem")
        .on(&pk(&at_commit))
        .sk("STATE");
    let r = w
        .crash_on(
            &state,
            1,
            engine.evaluate(PrincipalKind::Role, "died-at-commit", None, w.at(7, 0)),
        )
        .await;
    assert!(r.is_none(), "the crash point was reached");
    let record = engine.store.load(&at_commit).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Quarantined, "the commit landed");
    assert!(record.pending.is_none());
    assert_eq!(
        steps_done(&engine, &at_commit).await,
        vec!["notice", "quarantine"],
        "a committed step is in the audit trail"
    );

    // The quarantine of `died-after-entry` writes its done entry; the process dies while that
    // write is on the wire (it lands; the state write never starts).
    let entry = Call::new("dynamodb", "PutItem").on(&pk(&died)).sk("AUDIT#");
    let r = w
        .crash_on(
            &entry,
            0,
            engine.evaluate(PrincipalKind::Role, "died-after-entry", None, w.at(7, 0)),
        )
        .await;
    assert!(r.is_none(), "the crash point was reached");
    // `commit-refused`: its done entry lands, its state write is refused for good.
    refuse_commit(&w, &refused);
    let r = engine
        .evaluate(PrincipalKind::Role, "commit-refused", None, w.at(7, 0))
        .await
        .unwrap();
    assert_eq!(r.failed(), 1, "{r:?}");
    assert_hit(&w, "the refused state write");
    for subject in [&died, &refused] {
        let record = engine.store.load(subject).await.unwrap().unwrap();
        assert_eq!(record.stage, Stage::Noticed, "{subject}: not committed");
        assert!(record.pending.is_some(), "{subject}: the intent is left");
    }

    for minutes in [20, 40] {
        let r = engine
            .tick(w.at(7, 0) + Duration::minutes(minutes))
            .await
            .unwrap();
        assert_eq!(r.failed(), 0, "{r:?}");
    }
    engine.sweep(w.at(8, 0)).await.unwrap();
    for subject in [&at_commit, &died, &refused] {
        let record = engine.store.load(subject).await.unwrap().unwrap();
        assert_eq!(record.stage, Stage::Quarantined, "{subject}: completed");
        assert!(record.pending.is_none(), "{subject}");
        assert_eq!(
            steps_done(&engine, subject).await,
            vec!["notice", "quarantine"],
            "{subject}: the done entry is there, once"
        );
    }
}

/// Found by the chaos suite (issue 9): `handle` claimed the event id before processing it, and
/// kept the claim when processing then failed with a retryable error, so EventBridge's
/// redelivery was dropped as a duplicate and the nomination lost until the next sweep. Now the
/// claim is given back: the redelivery is processed.
#[tokio::test]
async fn a_retryable_failure_gives_the_claim_back_so_the_redelivery_is_processed() {
    let w = World::new().await;
    w.role_with("/", "nominated", 200, None, &[]).await;
    let fleet = w.fleet(default_policy()).await;
    let mut event = fixture("access-analyzer-unused-role.json");
    event["id"] = Value::from("aa-retry-1");
    event["detail"]["resource"] = Value::from(format!("arn:aws:iam::{}:role/nominated", w.id));
    event["detail"]["accountId"] = Value::from(w.id.clone());
    let now = w.at(0, 0);

    // IAM answers 500 to the fresh read and every one of its 5 retries.
    w.fault_on(
        &Call::new("iam", "GetRole").on("nominated"),
        Fault::Http500,
        6,
    );
    let err = handle_event(&event, &fleet, &rules(), None, now)
        .await
        .expect_err("GetRole keeps failing");
    assert!(
        err.is_retryable(),
        "{err}: EventBridge will deliver it again"
    );
    assert_hit(&w, "GetRole");

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

/// Found by the chaos suite (issue 9): a delete whose `DeleteRole` (`DeleteUser`) reached IAM
/// but whose run died before the commit was re-run by the next run from its first effect,
/// `TakeSnapshot`, which found the identity gone and failed, on every run, for ever. Now the
/// next run past the lease completes it, with the snapshot taken before the teardown.
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

/// Found by the chaos suite (issue 9), the same resumption while the identity still exists: a
/// delete interrupted half-way through the teardown (inline policies deleted, the managed policy
/// being detached) took a second snapshot of the half-torn-down role when resumed, and `restore`
/// (which uses the latest) brought it back without those policies. Now the resumed delete keeps
/// the snapshot taken before the teardown began.
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

/// Found by the chaos suite (issue 9): a quarantine dies after its deny policy landed; while its
/// intent is pending the owner tags one role exempt and uses another. The next run past the lease rolls both half-done steps back
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
