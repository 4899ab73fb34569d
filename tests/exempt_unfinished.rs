#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Keep (`dormant exempt`, an owner's Keep link) when the release cannot happen at once: a step
//! waiting for its retry, an SSM execution in flight, a write failing after the exemption tags.
//! The exemption stands, the caller is told the release is left to the controller (never "Done"
//! nor "the link can be used again"), and the controller's next run releases the identity.
//! SSM is the hand-written fake of engine_fallback.rs (moto has no Automation executions).

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use dormant::app::commands::CommandReport;
use dormant::app::engine::FallbackSetup;
use dormant::domain::answer::AnswerAction;
use dormant::domain::{Intent, Outcome, Policy, Stage, Step, Subject};
use dormant::error::Error;
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

/// The subject's `exempt` audit entry.
async fn exempt_entry(engine: &TestEngine, subject: &Subject) -> dormant::domain::AuditEntry {
    let history = engine.store.history(subject).await.unwrap();
    let entry = history.iter().find(|e| e.step == "exempt");
    entry
        .cloned()
        .unwrap_or_else(|| panic!("no exempt entry: {history:?}"))
}

/// An engine whose SSM fallback is the fake, for `always` and for whatever IAM refuses.
async fn with_ssm(a: &Account, always: Vec<Step>) -> (TestEngine, Arc<FakeSsm>) {
    let ssm = Arc::new(FakeSsm::default());
    let engine = a
        .engine(Policy::default())
        .await
        .with_fallback(FallbackSetup {
            runner: ssm.clone(),
            automation_role: "arn:aws:iam::111122223333:role/dormant-automation".into(),
            always,
            starts: true,
        });
    (engine, ssm)
}

/// A role noticed on day 0 whose quarantine, refused by IAM on day 7, SSM is carrying out.
async fn quarantine_handed_to_ssm(a: &Account, name: &str) -> (TestEngine, Arc<FakeSsm>) {
    a.role(name, 200, &[]).await;
    let (engine, ssm) = with_ssm(a, vec![]).await;
    engine.sweep(a.day(0)).await.unwrap();
    emulator().inject_fault(&a.id, "iam", "AttachRolePolicy", Fault::AccessDenied, 1);
    let r = engine.tick(a.day(7)).await.unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::FallbackStarted, "{r:?}");
    (engine, ssm)
}

async fn keep(engine: &TestEngine, name: &str, at: DateTime<Utc>) -> Result<CommandReport, Error> {
    let arg = format!("role/{name}").parse().unwrap();
    engine.exempt(&arg, until(at), "kept", None, at).await
}

#[tokio::test]
async fn exempt_stops_a_running_ssm_execution_and_what_it_landed_is_released() {
    let a = Account::new().await;
    let (engine, ssm) = quarantine_handed_to_ssm(&a, "handed-over").await;
    // The execution attached the deny before it was stopped.
    a.attach_role_policy("handed-over", &a.quarantine_arn())
        .await;

    let at = a.day(7) + Duration::hours(1);
    let kept = keep(&engine, "handed-over", at).await.unwrap();
    assert_eq!(
        *ssm.stopped.lock().unwrap(),
        vec!["exec-1".to_string()],
        "the step's execution is stopped"
    );
    assert_eq!(kept.outcome, Outcome::Failed, "{kept:?}");
    assert!(
        kept.reason.contains("left to the controller"),
        "{}",
        kept.reason
    );
    let exempt = exempt_entry(&engine, &a.role_subject("handed-over")).await;
    assert!(
        exempt.reason.contains("stopped SSM Automation exec-1"),
        "{}",
        exempt.reason
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

/// The stop comes first: when the tag write is then refused, the execution is stopped and no
/// exemption is written, so nothing of the step can land on an exempt identity.
#[tokio::test]
async fn exempt_stops_the_execution_before_it_writes_the_exemption() {
    let a = Account::new().await;
    let (engine, ssm) = quarantine_handed_to_ssm(&a, "stop-first").await;
    emulator().inject_fault(&a.id, "iam", "TagRole", Fault::AccessDenied, 1);
    let at = a.day(7) + Duration::hours(1);
    let refused = keep(&engine, "stop-first", at).await.unwrap_err();
    assert!(refused.to_string().contains("AccessDenied"), "{refused}");
    assert_eq!(*ssm.stopped.lock().unwrap(), vec!["exec-1".to_string()]);
    assert!(!a
        .role_tags("stop-first")
        .await
        .contains_key("dormant:exempt"));
}

/// Stopping takes a while: a role deleted and re-created under the name meanwhile is not the
/// link's, and gets no exemption.
#[tokio::test]
async fn a_role_recreated_while_keep_stops_its_execution_is_not_changed() {
    recreated_while_stopping(false).await;
}

/// Nor does Undo release it.
#[tokio::test]
async fn a_role_recreated_while_undo_stops_its_execution_is_not_changed() {
    recreated_while_stopping(true).await;
}

async fn recreated_while_stopping(undo: bool) {
    let a = Account::new().await;
    let (engine, ssm) = quarantine_handed_to_ssm(&a, "swapped").await;
    let link_id = a.role_id("swapped").await;
    let engine = engine.answering_for(link_id);
    let account = Account {
        id: a.id.clone(),
        iam: a.iam.clone(),
        now: a.now,
    };
    *ssm.on_stop.lock().unwrap() = Some(Box::new(move || {
        Box::pin(async move {
            account.recreate_role("swapped").await;
        })
    }));
    let at = a.day(7) + Duration::hours(1);
    let refused = if undo {
        let arg = "role/swapped".parse().unwrap();
        engine.undo(&arg, "mine", at).await.unwrap_err()
    } else {
        keep(&engine, "swapped", at).await.unwrap_err()
    };
    assert_eq!(*ssm.stopped.lock().unwrap(), vec!["exec-1".to_string()]);
    assert!(
        refused
            .to_string()
            .contains("no longer the identity the link was issued for"),
        "{refused}"
    );
    assert!(
        a.role_tags("swapped").await.is_empty(),
        "the new role is not touched"
    );
    assert!(a.attached_role_policies("swapped").await.is_empty());
}

/// A deletion SSM is carrying out is not stopped half-way by a Keep: refused, nothing stopped
/// or written; once it has finished the snapshot restores the role.
#[tokio::test]
async fn keep_refuses_while_ssm_is_deleting_and_stops_nothing() {
    let a = Account::new().await;
    a.role("going", 200, &[]).await;
    let (engine, ssm) = with_ssm(&a, vec![Step::Delete]).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    let record = engine
        .store
        .load(&a.role_subject("going"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.stage, Stage::Quarantined);
    let due = record.next_due_at.unwrap();
    let r = engine.tick(due).await.unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::FallbackStarted, "{r:?}");

    let at = due + Duration::minutes(5);
    let refused = keep(&engine, "going", at).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("being deleted by SSM Automation exec-1"),
        "{refused}"
    );
    assert!(refused.to_string().contains("dormant restore"), "{refused}");
    assert!(ssm.stopped.lock().unwrap().is_empty());
    assert!(!a.role_tags("going").await.contains_key("dormant:exempt"));
    let undo = engine
        .undo(&"role/going".parse().unwrap(), "mine", at)
        .await
        .unwrap_err();
    assert!(undo.to_string().contains("being deleted"), "{undo}");
    assert!(ssm.stopped.lock().unwrap().is_empty());
}

/// Another run is deleting the role under its lease: Keep is refused and changes nothing. A
/// deletion that failed part-way does not hold Keep back, which says what may be missing.
#[tokio::test]
async fn keep_refuses_while_another_run_deletes_and_says_when_a_deletion_failed_part_way() {
    let a = Account::new().await;
    a.role("deleting", 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    let subject = a.role_subject("deleting");
    let mut record = engine.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Quarantined);
    let at = a.day(30);
    record.pending = Some(Intent::new(Step::Delete, at, vec![], record.clone()));
    engine.store.save(&record).await.unwrap();

    let refused = keep(&engine, "deleting", at + Duration::minutes(1))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("being deleted by another run"),
        "{refused}"
    );
    assert!(!a.role_tags("deleting").await.contains_key("dormant:exempt"));

    let mut record = engine.store.load(&subject).await.unwrap().unwrap();
    let intent = record.pending.as_mut().unwrap();
    intent.attempts = 1;
    intent.last_error = Some("AccessDenied on DeleteRole".into());
    engine.store.save(&record).await.unwrap();
    let kept = keep(&engine, "deleting", at + Duration::minutes(2))
        .await
        .unwrap();
    assert!(
        kept.reason
            .contains("had not finished (AccessDenied on DeleteRole)")
            && kept.reason.contains("stays removed"),
        "{}",
        kept.reason
    );
    let exempt = exempt_entry(&engine, &subject).await;
    assert!(exempt.reason.contains("stays removed"), "{}", exempt.reason);
}

/// No room for the exemption's tags: refused before anything is stopped or written.
#[tokio::test]
async fn keep_without_room_for_its_tags_is_refused_before_anything_is_stopped() {
    let a = Account::new().await;
    let (engine, ssm) = quarantine_handed_to_ssm(&a, "full").await;
    let used = a.role_tags("full").await.len();
    let filler: Vec<(String, String)> = (used..49).map(|n| (format!("t{n}"), "x".into())).collect();
    let filler: Vec<(&str, &str)> = filler
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    a.tag_role("full", &filler).await;
    assert_eq!(a.role_tags("full").await.len(), 49);
    let at = a.day(7) + Duration::hours(1);
    let refused = keep(&engine, "full", at).await.unwrap_err();
    assert!(refused.to_string().contains("IAM allows 50"), "{refused}");
    assert!(ssm.stopped.lock().unwrap().is_empty());
    assert!(!a.role_tags("full").await.contains_key("dormant:exempt"));
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
