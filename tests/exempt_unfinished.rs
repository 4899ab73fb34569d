#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Keep (`dormant exempt`, an owner's Keep link) when the release cannot happen at once: a step
//! waiting for its retry, an SSM execution in flight, a write failing after the exemption tags.
//! The exemption stands, the caller is told the release is left to the controller (never "Done"
//! nor "the link can be used again"), and the controller's next run releases the identity.
//! SSM is the hand-written fake of engine_fallback.rs (moto has no Automation executions).

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use dormant::app::engine::FallbackSetup;
use dormant::domain::answer::AnswerAction;
use dormant::domain::{Outcome, Policy, Stage, Subject};
use dormant::ports::Store;

use crate::answers::Fixture;
use crate::support::account::{Account, TestEngine};
use crate::support::emulator::{emulator, Fault};
use crate::support::fakes::FakeSsm;

fn until(from: DateTime<Utc>) -> NaiveDate {
    (from + Duration::days(30)).date_naive()
}

/// The role is released, exempt, with nothing in flight and no quarantine attached.
async fn assert_released(a: &Account, engine: &TestEngine, name: &str) {
    let record = engine
        .store
        .load(&a.role_subject(name))
        .await
        .unwrap()
        .unwrap();
    assert!(record.pending.is_none(), "{record:?}");
    assert!(!record.stage.is_on_ladder(), "{record:?}");
    assert!(!a.role_quarantined(name).await, "still quarantined");
    let tags = a.role_tags(name).await;
    assert_eq!(tags.get("dormant:exempt").map(String::as_str), Some("true"));
    assert!(!tags.contains_key("dormant:stage"), "{tags:?}");
}

#[tokio::test]
async fn exempt_while_a_failed_step_waits_for_its_retry_says_so_and_the_controller_releases_it() {
    let a = Account::new().await;
    a.role("waiting", 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    emulator().inject_fault(&a.id, "iam", "AttachRolePolicy", Fault::AccessDenied, 1);
    let r = engine.tick(a.day(7)).await.unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::Failed, "{r:?}");
    let subject: Subject = a.role_subject("waiting");
    let record = engine.store.load(&subject).await.unwrap().unwrap();
    let retry = record.next_due_at.expect("a retry is scheduled");
    assert!(record.pending.is_some(), "{record:?}");

    let at = a.day(7) + Duration::minutes(1);
    assert!(at < retry);
    let kept = engine
        .exempt(
            &"role/waiting".parse().unwrap(),
            until(at),
            "still used by billing",
            None,
            at,
        )
        .await
        .unwrap();
    assert_eq!(kept.outcome, Outcome::Failed, "{kept:?}");
    assert!(
        kept.reason.contains("left to the controller") && kept.reason.contains("next attempt"),
        "{}",
        kept.reason
    );
    assert_eq!(
        a.role_tags("waiting")
            .await
            .get("dormant:exempt")
            .map(String::as_str),
        Some("true"),
        "the exemption stands"
    );

    engine.tick(retry + Duration::minutes(1)).await.unwrap();
    assert_released(&a, &engine, "waiting").await;
}

#[tokio::test]
async fn exempt_stops_a_running_ssm_execution_and_what_it_landed_is_released() {
    let a = Account::new().await;
    a.role("handed-over", 200, &[]).await;
    let ssm = Arc::new(FakeSsm::default());
    let engine = a
        .engine(Policy::default())
        .await
        .with_fallback(FallbackSetup {
            runner: ssm.clone(),
            automation_role: "arn:aws:iam::111122223333:role/dormant-automation".into(),
            always: vec![],
            starts: true,
        });
    engine.sweep(a.day(0)).await.unwrap();
    emulator().inject_fault(&a.id, "iam", "AttachRolePolicy", Fault::AccessDenied, 1);
    let r = engine.tick(a.day(7)).await.unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::FallbackStarted, "{r:?}");
    // The execution attached the deny before it was stopped.
    a.attach_role_policy("handed-over", &a.quarantine_arn())
        .await;

    let at = a.day(7) + Duration::hours(1);
    let kept = engine
        .exempt(
            &"role/handed-over".parse().unwrap(),
            until(at),
            "kept",
            None,
            at,
        )
        .await
        .unwrap();
    assert_eq!(
        *ssm.stopped.lock().unwrap(),
        vec!["exec-1".to_string()],
        "the step's execution is stopped before the exemption is written"
    );
    assert_eq!(kept.outcome, Outcome::Failed, "{kept:?}");
    assert!(
        kept.reason.contains("left to the controller"),
        "{}",
        kept.reason
    );

    let record = engine
        .store
        .load(&a.role_subject("handed-over"))
        .await
        .unwrap()
        .unwrap();
    let due = record.next_due_at.unwrap_or(at);
    engine.tick(due + Duration::minutes(1)).await.unwrap();
    assert_released(&a, &engine, "handed-over").await;
}

/// The audit write after the exemption tags fails: the owner's answer stands (the link is used,
/// the page says "Answer recorded" and why, not that it may be used again) and the release is
/// made all the same.
#[tokio::test]
async fn a_keep_whose_audit_write_fails_after_the_tags_is_recorded_not_offered_again() {
    let f = Fixture::role("audit-fails", Policy::default(), &[7]).await;
    assert_eq!(f.stage().await, Stage::Quarantined);
    let token = f.link(AnswerAction::Keep).await;
    emulator().inject_fault_on(
        &f.a.id,
        "dynamodb",
        "PutItem",
        None,
        Some("AUDIT#"),
        Fault::AccessDenied,
        1,
    );
    let r = f.post(&token, "&reason=billing&until=", f.a.day(8)).await;
    assert!(
        emulator().faults(&f.a.id).is_empty(),
        "the audit write was refused"
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Answer recorded"), "{}", r.body);
    assert!(!r.body.contains("can be used again"), "{}", r.body);
    assert_eq!(
        f.a.role_tags("audit-fails")
            .await
            .get("dormant:exempt")
            .map(String::as_str),
        Some("true")
    );
    assert!(
        r.body.contains("audit entry could not be written"),
        "{}",
        r.body
    );
    let again = f.post(&token, "&reason=billing&until=", f.a.day(8)).await;
    assert_ne!(again.status, 200, "{}", again.body);
    // The missing audit entry does not hold the release back.
    assert_released(&f.a, &f.engine().await, "audit-fails").await;
}
