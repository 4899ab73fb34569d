#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! A sweep's notices are committed in batches (docs/design.md, 'Batched notices'): each still
//! claims its identity with its intent, and what a batch cannot commit is committed one by one or,
//! failing that, left to its intent.

use chrono::Duration;
use dormant::app::output::RunReport;
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

fn count(report: &RunReport, step: Step, outcome: Outcome) -> usize {
    report
        .actions
        .iter()
        .filter(|x| x.step == step && x.outcome == outcome)
        .count()
}

async fn record_stage(engine: &TestEngine, subject: &Subject) -> Option<(Stage, bool)> {
    let record = engine.store.load(subject).await.unwrap()?;
    Some((record.stage, record.pending.is_some()))
}

#[tokio::test]
async fn notices_a_refused_batch_could_not_commit_are_committed_one_by_one() {
    let a = Account::new().await;
    let names = ["batch-a", "batch-b", "batch-c"];
    for n in names {
        a.role(n, 200, &[]).await;
    }
    let engine = a.engine(Policy::default()).await;
    emulator().inject_fault(&a.id, "dynamodb", "BatchWriteItem", Fault::AccessDenied, 1);

    let r = engine.sweep(a.day(0)).await.unwrap();

    assert!(emulator().faults(&a.id).is_empty(), "the fault fired");
    assert_eq!(count(&r, Step::Notice, Outcome::Done), 3, "{r:?}");
    for n in names {
        let subject = a.role_subject(n);
        assert_eq!(
            record_stage(&engine, &subject).await,
            Some((Stage::Noticed, false)),
            "{n}"
        );
        let history = engine.store.history(&subject).await.unwrap();
        assert_eq!(notices_done(&history).len(), 1, "{n}: {history:?}");
    }
}

#[tokio::test]
async fn a_notice_whose_commit_fails_keeps_its_intent_and_is_completed_once_after_the_lease() {
    let a = Account::new().await;
    a.role("uncommitted", 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    let subject = a.role_subject("uncommitted");
    // The batch is refused, and so is the done entry of the one-by-one commit after it.
    emulator().inject_fault(&a.id, "dynamodb", "BatchWriteItem", Fault::AccessDenied, 1);
    emulator().inject_fault_on(
        &a.id,
        "dynamodb",
        "PutItem",
        None,
        Some("AUDIT"),
        Fault::AccessDenied,
        1,
    );

    let first = engine.sweep(a.day(0)).await.unwrap();

    assert!(emulator().faults(&a.id).is_empty(), "both faults fired");
    assert_eq!(count(&first, Step::Notice, Outcome::Failed), 1, "{first:?}");
    assert!(a
        .role_tags("uncommitted")
        .await
        .contains_key("dormant:stage"));
    assert_eq!(
        record_stage(&engine, &subject).await,
        Some((Stage::Clean, true)),
        "the intent is left for the next run"
    );

    // Within the intent's lease nothing else touches it; after it, the notice is completed.
    let waiting = engine.sweep(a.day(0) + Duration::minutes(5)).await.unwrap();
    assert_eq!(
        count(&waiting, Step::Notice, Outcome::Done),
        0,
        "{waiting:?}"
    );
    let second = engine.sweep(a.day(0) + Duration::hours(1)).await.unwrap();

    assert_eq!(count(&second, Step::Notice, Outcome::Done), 1, "{second:?}");
    assert_eq!(
        record_stage(&engine, &subject).await,
        Some((Stage::Noticed, false))
    );
    let history = engine.store.history(&subject).await.unwrap();
    let done = notices_done(&history);
    assert_eq!(done.len(), 1, "{history:?}");
    assert_eq!(done[0].at, a.day(0), "keyed by the intent's start");
}

#[tokio::test]
async fn an_event_runs_notice_is_committed_before_its_run_reports() {
    let a = Account::new().await;
    a.role("nominated", 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    emulator().clear_requests(&a.id);

    let r = engine
        .evaluate(
            dormant::domain::PrincipalKind::Role,
            "nominated",
            Some("event-1"),
            a.day(0),
        )
        .await
        .unwrap();

    assert_eq!(
        r.actions
            .iter()
            .map(|x| (x.step, x.outcome))
            .collect::<Vec<_>>(),
        [(Step::Notice, Outcome::Done)],
        "{r:?}"
    );
    let batched = a
        .requests()
        .iter()
        .filter(|x| x["operation"] == "BatchWriteItem")
        .count();
    assert_eq!(batched, 0, "one identity's run commits as every step does");
}

#[tokio::test]
async fn a_sweep_whose_intents_leases_are_nearly_over_by_the_wall_clock_commits_each_notice_at_once(
) {
    let a = Account::new().await;
    for n in ["late-a", "late-b"] {
        a.role(n, 200, &[]).await;
    }
    // The run's `now` is twelve minutes behind the wall clock (a fleet sweep's later account):
    // its intents' leases end three minutes from now, too soon to wait in a batch.
    let now = a.day(0);
    let engine = a
        .engine(Policy::default())
        .await
        .with_wall_clock(std::sync::Arc::new(move || now + Duration::minutes(12)));
    emulator().clear_requests(&a.id);

    let r = engine.sweep(now).await.unwrap();

    assert_eq!(count(&r, Step::Notice, Outcome::Done), 2, "{r:?}");
    let requests = a.requests();
    let ops = |op: &str| requests.iter().filter(|x| x["operation"] == op).count();
    assert_eq!(ops("BatchWriteItem"), 0, "nothing waits in a batch");
    // Intent, done entry and record for each (+1: the breaker's count).
    assert_eq!(ops("PutItem"), 2 * 3 + 1);
}
