#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Notices of identities dormant has no record of are tagged first and recorded in batches
//! (docs/design.md, 'Batched notices'): the stage tag is their crash marker. A run whose records
//! are not written leaves tags that the next run finds and decides again, once, through every
//! guard.

use chrono::Duration;
use dormant::domain::ladder::CUT_SHORT_NOTICE;
use dormant::domain::{AuditEntry, Outcome, Policy, Stage, Step, Subject};
use dormant::ports::Store;

use crate::support::account::{Account, TestEngine};
use crate::support::emulator::{emulator, Fault};

fn notices_done(history: &[AuditEntry]) -> Vec<&AuditEntry> {
    history
        .iter()
        .filter(|e| e.step == Step::Notice.as_str() && e.outcome == Outcome::Done)
        .collect()
}

fn count(report: &dormant::app::output::RunReport, step: Step, outcome: Outcome) -> usize {
    report
        .actions
        .iter()
        .filter(|x| x.step == step && x.outcome == outcome)
        .count()
}

async fn record_stage(engine: &TestEngine, subject: &Subject) -> Option<Stage> {
    engine.store.load(subject).await.unwrap().map(|r| r.stage)
}

#[tokio::test]
async fn notices_whose_batch_was_not_written_are_completed_once_by_the_next_run() {
    let a = Account::new().await;
    let names = ["cut-a", "cut-b", "cut-c"];
    for n in names {
        a.role(n, 200, &[]).await;
    }
    let engine = a.engine(Policy::default()).await;
    // The done entries' batch is refused: nothing of the notices is recorded.
    emulator().inject_fault(&a.id, "dynamodb", "BatchWriteItem", Fault::AccessDenied, 1);

    let first = engine.sweep(a.day(0)).await.unwrap();

    assert!(emulator().faults(&a.id).is_empty(), "the fault fired");
    assert_eq!(count(&first, Step::Notice, Outcome::Failed), 3, "{first:?}");
    for n in names {
        assert!(
            a.role_tags(n).await.contains_key("dormant:stage"),
            "{n} is tagged: the tag marks the notice"
        );
        assert_eq!(record_stage(&engine, &a.role_subject(n)).await, None);
    }

    let second = engine.sweep(a.day(0) + Duration::hours(1)).await.unwrap();

    assert_eq!(count(&second, Step::Notice, Outcome::Done), 3, "{second:?}");
    for n in names {
        let subject = a.role_subject(n);
        assert_eq!(
            record_stage(&engine, &subject).await,
            Some(Stage::Noticed),
            "{n}"
        );
        let history = engine.store.history(&subject).await.unwrap();
        let done = notices_done(&history);
        assert_eq!(done.len(), 1, "{n}: {history:?}");
        assert!(done[0].reason.contains(CUT_SHORT_NOTICE), "{:?}", done[0]);
    }
    let third = engine.sweep(a.day(0) + Duration::hours(2)).await.unwrap();
    assert_eq!(count(&third, Step::Notice, Outcome::Done), 0, "{third:?}");
}

#[tokio::test]
async fn a_notice_whose_done_entry_was_written_but_not_its_record_keeps_that_one_entry() {
    let a = Account::new().await;
    a.role("half-written", 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    let subject = a.role_subject("half-written");
    // The batch of done entries goes through; the record's own write is refused.
    emulator().inject_fault_on(
        &a.id,
        "dynamodb",
        "PutItem",
        None,
        Some("STATE"),
        Fault::AccessDenied,
        1,
    );

    let first = engine.sweep(a.day(0)).await.unwrap();

    assert!(emulator().faults(&a.id).is_empty(), "the fault fired");
    assert_eq!(count(&first, Step::Notice, Outcome::Failed), 1, "{first:?}");
    assert_eq!(record_stage(&engine, &subject).await, None);
    let written = engine.store.history(&subject).await.unwrap();
    assert_eq!(notices_done(&written).len(), 1, "{written:?}");

    let second = engine.sweep(a.day(0) + Duration::hours(1)).await.unwrap();

    assert_eq!(count(&second, Step::Notice, Outcome::Done), 1, "{second:?}");
    assert_eq!(record_stage(&engine, &subject).await, Some(Stage::Noticed));
    let history = engine.store.history(&subject).await.unwrap();
    let done = notices_done(&history);
    assert_eq!(done.len(), 1, "the entry is not written twice: {history:?}");
    assert_eq!(done[0].at, a.day(0), "it keeps when the notice was taken");
}

#[tokio::test]
async fn the_tag_of_a_notice_cut_short_goes_when_the_role_was_used_since() {
    let a = Account::new().await;
    a.role("back-in-use", 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    emulator().inject_fault(&a.id, "dynamodb", "BatchWriteItem", Fault::AccessDenied, 1);
    engine.sweep(a.day(0)).await.unwrap();
    assert!(a
        .role_tags("back-in-use")
        .await
        .contains_key("dormant:stage"));

    let used = a.day(0) + Duration::minutes(30);
    emulator().backdate_role(&a.id, "back-in-use", None, Some(used));
    let r = engine.sweep(a.day(0) + Duration::hours(1)).await.unwrap();

    assert_eq!(count(&r, Step::Release, Outcome::Done), 1, "{r:?}");
    assert!(
        !a.role_tags("back-in-use")
            .await
            .keys()
            .any(|k| k.starts_with("dormant:")),
        "the stage tag is gone"
    );
    let subject = a.role_subject("back-in-use");
    assert_eq!(record_stage(&engine, &subject).await, Some(Stage::Released));
    let history = engine.store.history(&subject).await.unwrap();
    let release = history
        .iter()
        .find(|e| e.step == Step::Release.as_str())
        .unwrap();
    assert!(
        release.reason.contains("notice started at") && release.reason.contains("used at"),
        "the trail says why: {release:?}"
    );
}

#[tokio::test]
async fn a_key_tag_without_a_record_is_found_and_removed_with_the_marker_once_the_key_is_used() {
    let a = Account::new().await;
    a.user("key-owner", 400).await;
    a.key("key-owner", 300, 1).await;
    let idle = a.key("key-owner", 250, 200).await;
    let engine = a.engine(Policy::default()).await;
    emulator().inject_fault(&a.id, "dynamodb", "BatchWriteItem", Fault::AccessDenied, 1);
    engine.sweep(a.day(0)).await.unwrap();
    let tags = a.user_tags("key-owner").await;
    let key_tag = format!("dormant:key:{idle}:stage");
    assert!(tags.contains_key(&key_tag), "{tags:?}");
    assert!(tags.contains_key("dormant:credentials"), "{tags:?}");

    // Used again: neither the key's bulk facts nor its dormancy would bring it up by itself.
    emulator().backdate_access_key(
        &a.id,
        "key-owner",
        &idle,
        None,
        Some(a.day(0) + Duration::minutes(30)),
    );
    let r = engine.sweep(a.day(0) + Duration::hours(1)).await.unwrap();

    assert_eq!(count(&r, Step::Release, Outcome::Done), 1, "{r:?}");
    let tags = a.user_tags("key-owner").await;
    assert!(
        !tags.keys().any(|k| k.starts_with("dormant:")),
        "key tag and marker gone: {tags:?}"
    );
    let key = Subject::access_key(a.user_principal("key-owner"), &idle);
    assert_eq!(record_stage(&engine, &key).await, Some(Stage::Released));
}

#[tokio::test]
async fn a_notice_that_loses_the_race_to_an_owners_exemption_takes_its_stage_tag_back() {
    let a = Account::new().await;
    a.role("raced", 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    // The sweep's stage tag is held on the wire while the owner exempts the role (further away
    // than exemptions.max_days: dormant records when it first saw it) and an event has it
    // evaluated.
    emulator().inject_fault_on(
        &a.id,
        "iam",
        "TagRole",
        Some("raced"),
        None,
        Fault::Latency(std::time::Duration::from_secs(2)),
        1,
    );
    let now = a.day(0);
    let sweep = engine.sweep(now);
    let operator = async {
        for _ in 0..100 {
            let held = a.requests().iter().any(|r| {
                r["operation"] == "TagRole" && r["RoleName"] == "raced" && r["fault"] == "latency"
            });
            if held {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let far = [
            ("dormant:exempt", "true"),
            ("dormant:exempt-until", "2099-01-01"),
        ];
        a.tag_role("raced", &far).await;
        engine
            .evaluate(dormant::domain::PrincipalKind::Role, "raced", None, now)
            .await
    };
    let (swept, evaluated) = tokio::join!(sweep, operator);
    swept.unwrap();
    evaluated.unwrap();

    assert!(emulator().faults(&a.id).is_empty(), "the tag was held");
    let tags = a.role_tags("raced").await;
    assert_eq!(tags.get("dormant:exempt").map(String::as_str), Some("true"));
    assert!(!tags.contains_key("dormant:stage"), "{tags:?}");
    let subject = a.role_subject("raced");
    assert_eq!(record_stage(&engine, &subject).await, Some(Stage::Exempt));
    let history = engine.store.history(&subject).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.reason.contains("removed the stage tag a notice wrote")),
        "{history:?}"
    );
}
