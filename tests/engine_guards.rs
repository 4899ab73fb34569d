#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Every step guarded (issue 14): a step resumed after a failure or crash passes the same guards
//! as a fresh one, failures back off, the breaker never loses a trip or a count under concurrent
//! runs, and a released principal's cool-off covers its credentials. Against the emulator.

use std::sync::Arc;

use chrono::Duration;
use dormant::domain::{DeleteMode, Outcome, Policy, Principal, Stage, Step, Subject};
use dormant::ports::Store;

use crate::support::account::{Account, ALLOW_ALL};
use crate::support::emulator::{emulator, Fault};
use crate::support::fakes::Published;

/// A role noticed on day 0 whose quarantine on day 7 attached the deny policy and then failed
/// (tagging denied): the intent is left half-done, as after a crash.
async fn half_quarantined(a: &Account, name: &str) {
    a.role(name, 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    emulator().inject_fault(&a.id, "iam", "TagRole", Fault::AccessDenied, 1);
    let r = engine.tick(a.day(7)).await.unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::Failed, "{r:?}");
    assert!(emulator().faults(&a.id).is_empty(), "the fault fired");
    assert!(a.role_quarantined(name).await);
    let stored = engine
        .store
        .load(&a.role_subject(name))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.stage, Stage::Noticed);
    assert_eq!(
        stored.pending.as_ref().map(|i| i.step),
        Some(Step::Quarantine)
    );
}

#[tokio::test]
async fn a_resumed_quarantine_of_a_now_exempt_role_is_rolled_back_not_finished() {
    let a = Account::new().await;
    half_quarantined(&a, "owner-said-keep").await;
    a.tag_role("owner-said-keep", &[("dormant:exempt", "true")])
        .await;

    let engine = a.engine(Policy::default()).await;
    let r = engine.tick(a.day(7) + Duration::hours(1)).await.unwrap();

    let record = engine
        .store
        .load(&a.role_subject("owner-said-keep"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.stage, Stage::Exempt, "{r:?}");
    assert!(record.pending.is_none());
    assert!(
        !a.role_quarantined("owner-said-keep").await,
        "the half-done quarantine is rolled back"
    );
    let history = engine
        .store
        .history(&a.role_subject("owner-said-keep"))
        .await
        .unwrap();
    assert!(
        !history
            .iter()
            .any(|h| h.step == "quarantine" && h.outcome == Outcome::Done),
        "never recorded as quarantined: {history:?}"
    );
    assert!(history
        .iter()
        .any(|h| h.step == "release" && h.reason.contains("quarantine started at")));
}

#[tokio::test]
async fn a_resumed_quarantine_of_a_role_used_meanwhile_is_released() {
    let a = Account::new().await;
    half_quarantined(&a, "came-back").await;
    emulator().backdate_role(
        &a.id,
        "came-back",
        None,
        Some(a.day(7) + Duration::minutes(30)),
    );

    let engine = a.engine(Policy::default()).await;
    engine.tick(a.day(7) + Duration::hours(1)).await.unwrap();

    let record = engine
        .store
        .load(&a.role_subject("came-back"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.stage, Stage::Released);
    assert!(record.reason.contains("not finished"), "{}", record.reason);
    assert!(!a.role_quarantined("came-back").await);
}

#[tokio::test]
async fn a_resumed_step_in_a_dry_run_changes_nothing() {
    let a = Account::new().await;
    half_quarantined(&a, "dry").await;
    emulator().clear_requests(&a.id);
    let engine = a
        .engine(Policy {
            dry_run: true,
            ..Policy::default()
        })
        .await;

    let r = engine.tick(a.day(7) + Duration::hours(1)).await.unwrap();

    assert_eq!(r.actions[0].outcome, Outcome::DryRun, "{r:?}");
    for op in ["TagRole", "AttachRolePolicy", "DetachRolePolicy", "PutItem"] {
        assert_eq!(emulator().count_requests(&a.id, op), 0, "{op}");
    }
    let record = engine
        .store
        .load(&a.role_subject("dry"))
        .await
        .unwrap()
        .unwrap();
    assert!(record.pending.is_some(), "still waiting for a real run");
}

#[tokio::test]
async fn a_resumed_step_is_stopped_by_a_tripped_breaker() {
    let a = Account::new().await;
    a.role("held", 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    emulator().inject_fault(&a.id, "iam", "AttachRolePolicy", Fault::AccessDenied, 1);
    engine.tick(a.day(7)).await.unwrap();
    engine
        .breaker()
        .trip("tripped by a test", a.day(7))
        .await
        .unwrap();
    emulator().clear_requests(&a.id);

    let r = engine.tick(a.day(7) + Duration::hours(1)).await.unwrap();

    assert!(r.breaker_tripped);
    assert_eq!(r.actions[0].outcome, Outcome::Skipped, "{r:?}");
    assert_eq!(emulator().count_requests(&a.id, "AttachRolePolicy"), 0);
    assert!(!a.role_quarantined("held").await);
}

#[tokio::test]
async fn a_resumed_delete_is_not_finished_once_delete_is_never() {
    let a = Account::new().await;
    a.role("keep-me", 200, &[]).await;
    let allow_all = a.create_policy("allow-all", ALLOW_ALL).await;
    a.attach_role_policy("keep-me", &allow_all).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    // The teardown is cut short while the allow-all policy is still attached.
    emulator().inject_fault(&a.id, "iam", "DetachRolePolicy", Fault::AccessDenied, 1);
    let r = engine.tick(a.day(23)).await.unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::Failed, "{r:?}");
    assert!(emulator().faults(&a.id).is_empty(), "the fault fired");
    assert!(
        a.role_quarantined("keep-me").await,
        "dormant's deny is removed last, so a half-torn-down role stays denied"
    );

    let mut never = Policy::default();
    never.ladder.delete = DeleteMode::Never;
    let engine = a.engine(never).await;
    emulator().clear_requests(&a.id);
    engine.tick(a.day(23) + Duration::hours(1)).await.unwrap();

    assert_eq!(emulator().count_requests(&a.id, "DeleteRole"), 0);
    assert!(a.iam.get_role().role_name("keep-me").send().await.is_ok());
    assert!(a.role_quarantined("keep-me").await, "still denied");
    let record = engine
        .store
        .load(&a.role_subject("keep-me"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.stage, Stage::Quarantined);
    assert!(record.pending.is_none());
    assert!(record.reason.contains("\"never\""), "{}", record.reason);
}

#[tokio::test]
async fn a_permanent_failure_backs_off_and_is_announced_once() {
    let a = Account::new().await;
    a.role("stuck", 200, &[]).await;
    let events = Arc::new(Published::default());
    let engine = a
        .engine(Policy::default())
        .await
        .with_publisher(events.clone());
    engine.sweep(a.day(0)).await.unwrap();
    emulator().inject_fault(&a.id, "iam", "AttachRolePolicy", Fault::AccessDenied, 100);

    // A tick every 15 minutes for 6 hours.
    let mut attempts = 0;
    for n in 0..24 {
        let r = engine
            .tick(a.day(7) + Duration::minutes(15 * n))
            .await
            .unwrap();
        attempts += r
            .actions
            .iter()
            .filter(|x| x.outcome == Outcome::Failed)
            .count();
    }
    // 0, +15, +45 min, +1h45, +3h45: five attempts, not 24.
    assert_eq!(attempts, 5);
    let failed_events = events
        .events()
        .iter()
        .filter(|e| e.detail_type == "Remediation Failed")
        .count();
    assert_eq!(failed_events, 1, "one event for one distinct failure");

    let status = engine
        .status(
            &"role/stuck".parse().unwrap(),
            a.day(7) + Duration::hours(6),
        )
        .await
        .unwrap();
    assert_eq!(status.next_step, Some(Step::Quarantine));
    let next = status.next_due_at.unwrap();
    assert!(
        next.starts_with(
            &(a.day(7) + Duration::hours(7) + Duration::minutes(45))
                .format("%Y-%m-%dT%H:%M")
                .to_string()
        ),
        "{next}"
    );
    assert!(
        status.reason.contains("failed 5 time(s)"),
        "{}",
        status.reason
    );
    emulator().clear_faults(&a.id);
}

/// Each run writing back its start-of-run copy of the breaker lost counts and trips.
#[tokio::test]
async fn concurrent_runs_never_lose_a_quarantine_count_or_a_trip() {
    let a = Account::new().await;
    for n in 0..8 {
        a.role(&format!("counted-{n}"), 200, &[]).await;
    }
    let mut policy = Policy::default();
    policy.breaker.min_count = 10_000;
    let first = a.engine(policy.clone()).await;
    first.sweep(a.day(0)).await.unwrap();
    let second = a.engine(policy.clone()).await;
    let (r1, r2) = tokio::join!(first.tick(a.day(7)), second.tick(a.day(7)));
    let done = [r1.unwrap(), r2.unwrap()]
        .iter()
        .flat_map(|r| r.actions.iter())
        .filter(|x| x.outcome == Outcome::Done)
        .count();
    assert_eq!(done, 8);
    let state = first.breaker().state().await.unwrap();
    assert_eq!(state.quarantines.len(), 8, "every quarantine counted");

    // A trip made while a long sweep runs survives the sweep.
    let slow_sweep = a.engine(policy).await;
    emulator().inject_fault(
        &a.id,
        "iam",
        "GetAccountAuthorizationDetails",
        Fault::Latency(std::time::Duration::from_millis(1500)),
        1,
    );
    let trip = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        first
            .breaker()
            .trip("tripped during the sweep", a.day(8))
            .await
    };
    let (swept, tripped) = tokio::join!(slow_sweep.sweep(a.day(8)), trip);
    swept.unwrap();
    assert!(tripped.unwrap());
    let state = first.breaker().state().await.unwrap();
    assert!(state.tripped, "the sweep did not overwrite the trip");
    assert_eq!(state.cause.as_deref(), Some("tripped during the sweep"));
    assert_eq!(state.identities, 8);
}

#[tokio::test]
async fn a_released_users_cooloff_covers_its_keys() {
    let a = Account::new().await;
    a.user("returner", 300).await;
    let used = a.key("returner", 300, 200).await;
    let idle = a.key("returner", 300, 250).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    // One key is used again: the user is released; the other key stays idle.
    emulator().backdate_access_key(&a.id, "returner", &used, None, Some(a.day(1)));
    let r = engine.sweep(a.day(2)).await.unwrap();
    assert!(
        r.actions
            .iter()
            .any(|x| x.step == Step::Release && x.outcome == Outcome::Done),
        "{r:?}"
    );

    let r = engine.sweep(a.day(3)).await.unwrap();
    assert!(
        r.actions.is_empty(),
        "no key nominated during the cool-off: {r:?}"
    );
    let key = Subject {
        principal: Principal::user(&a.id, "/", "returner"),
        scope: dormant::domain::Scope::AccessKey(idle.clone()),
    };
    assert_eq!(engine.store.load(&key).await.unwrap(), None);

    let r = engine.sweep(a.day(33)).await.unwrap();
    assert!(
        r.actions.iter().any(|x| x.identity.ends_with(&idle)
            && x.step == Step::Notice
            && x.outcome == Outcome::Done),
        "after the cool-off the idle key walks its own ladder: {r:?}"
    );
}

#[tokio::test]
async fn undo_waits_for_a_step_another_run_is_carrying_out() {
    let a = Account::new().await;
    a.role("busy", 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    // Another run has claimed the quarantine and is between its calls.
    let mut record = engine
        .store
        .load(&a.role_subject("busy"))
        .await
        .unwrap()
        .unwrap();
    let after = record.entering(Stage::Quarantined, a.day(7), "quarantine".into());
    let mut intent = dormant::domain::Intent::new(
        Step::Quarantine,
        a.day(7),
        vec![dormant::domain::Effect::PutQuarantinePolicy],
        after,
    );
    intent.held_until = Some(a.day(7) + Duration::minutes(15));
    record.pending = Some(intent);
    let version = engine.store.save(&record).await.unwrap();

    let refused = engine
        .undo(
            &"role/busy".parse().unwrap(),
            "needed",
            a.day(7) + Duration::minutes(1),
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("being carried out"),
        "{refused}"
    );
    let stored = engine
        .store
        .load(&a.role_subject("busy"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.version, version, "nothing changed");

    let done = engine
        .undo(
            &"role/busy".parse().unwrap(),
            "needed",
            a.day(7) + Duration::minutes(20),
        )
        .await
        .unwrap();
    assert_eq!(done.stage, Stage::Released);
}

/// Writers that do not share a lock (separate processes) still lose no count: each change is
/// re-applied to the state another writer just stored.
#[tokio::test]
async fn concurrent_breaker_writers_in_separate_processes_lose_nothing() {
    let a = Account::new().await;
    let engine = a.engine(Policy::default()).await;
    let (store, account, t0) = (&engine.store, a.id.as_str(), a.day(0));
    let writers = (0..8).map(|n| async move {
        let breaker = dormant::app::breaker::Breaker::new(store, account);
        breaker.count_quarantine(t0 + Duration::minutes(n)).await
    });
    for written in futures::future::join_all(writers).await {
        written.unwrap();
    }
    let state = engine.breaker().state().await.unwrap();
    assert_eq!(state.quarantines.len(), 8, "{state:?}");
}
