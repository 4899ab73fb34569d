#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! What each kind of run costs in AWS calls, per identity, read from the emulator's request log:
//! detection reads IAM only in bulk, a first pass adds one tag call and about one DynamoDB request
//! per noticed identity, and every later step re-reads the identity once before it acts.

use std::collections::BTreeMap;
use std::sync::Arc;

use dormant::domain::{Outcome, Policy, Step};
use dormant::ports::Store;

use crate::support::account::{Account, TestEngine};
use crate::support::emulator::emulator;
use crate::support::fakes::Published;

/// The bulk reads of a sweep: one `GetAccountAuthorizationDetails` page per 1,000 identities
/// and the credential report.
const BULK: &[&str] = &[
    "iam:GetAccountAuthorizationDetails",
    "iam:GenerateCredentialReport",
    "iam:GetCredentialReport",
];

async fn engine_publishing_to(a: &Account, policy: Policy, events: Arc<Published>) -> TestEngine {
    a.engine(policy).await.with_publisher(events)
}

/// Every request of the account since the last clear, by `service:Operation`.
fn requests_by_operation(a: &Account) -> BTreeMap<String, usize> {
    let mut by_op = BTreeMap::new();
    for r in emulator().requests(&a.id) {
        let op = format!(
            "{}:{}",
            r["service"].as_str().unwrap_or("?"),
            r["operation"].as_str().unwrap_or("?")
        );
        *by_op.entry(op).or_insert(0) += 1;
    }
    by_op
}

fn only(calls: &BTreeMap<String, usize>, ops: &[&str]) -> BTreeMap<String, usize> {
    calls
        .iter()
        .filter(|(op, _)| ops.contains(&op.as_str()))
        .map(|(op, n)| (op.clone(), *n))
        .collect()
}

fn iam_reads(calls: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    calls
        .iter()
        .filter(|(op, _)| {
            ["iam:Get", "iam:List", "iam:Generate"]
                .iter()
                .any(|p| op.starts_with(p))
        })
        .filter(|(op, _)| !BULK.contains(&op.as_str()))
        .map(|(op, n)| (op.clone(), *n))
        .collect()
}

#[tokio::test]
async fn a_dry_run_sweep_reads_iam_only_in_bulk_and_names_idle_keys_by_their_report_slot() {
    let a = Account::new().await;
    a.role("bulk-role", 200, &[]).await;
    // Active through its first key; the second has been idle for 200 days.
    a.user("two-keys", 400).await;
    a.key("two-keys", 300, 1).await;
    let idle = a.key("two-keys", 250, 200).await;
    a.user("no-credentials", 300).await;
    let dry = Policy {
        dry_run: true,
        ..Policy::default()
    };
    let engine = engine_publishing_to(&a, dry, Arc::default()).await;
    emulator().clear_requests(&a.id);

    let r = engine.sweep(a.day(0)).await.unwrap();

    let calls = requests_by_operation(&a);
    assert_eq!(
        iam_reads(&calls),
        BTreeMap::new(),
        "no per-identity read in a dry run: {calls:?}"
    );
    let bulk = only(&calls, BULK);
    assert_eq!(bulk.len(), 3, "{calls:?}");
    assert!(
        bulk.values().sum::<usize>() <= 4,
        "one page, the report (+ one poll while it is generated): {calls:?}"
    );
    let planned: Vec<(&str, Step)> = r
        .actions
        .iter()
        .filter(|x| x.outcome == Outcome::DryRun)
        .map(|x| (x.identity.as_str(), x.step))
        .collect();
    let slot = planned
        .iter()
        .find(|(id, _)| id.contains("user/two-keys/key/"))
        .map(|(id, _)| id.rsplit('/').next().unwrap_or(""))
        .unwrap_or_else(|| panic!("the idle key is planned for a notice: {planned:?}"));
    assert!(
        slot == "slot1" || slot == "slot2",
        "named by its credential-report slot: {slot}"
    );
    assert_eq!(planned.len(), 3, "role, user, one key: {planned:?}");
    assert_eq!(
        calls.get("dynamodb:BatchWriteItem"),
        Some(&1),
        "the three dry-run notes in one batch: {calls:?}"
    );
    assert_eq!(
        engine
            .store
            .history(&dormant::domain::Subject::whole(
                dormant::domain::Principal::role(&a.id, "/", "bulk-role")
            ))
            .await
            .unwrap()
            .iter()
            .filter(|h| h.outcome == Outcome::DryRun)
            .count(),
        1,
        "the dry run is recorded in the audit trail"
    );

    // Acting needs the key's id: the real pass lists the user's keys (one call, matched to the
    // report's slots by creation date) and notices the key by id.
    let real = engine_publishing_to(&a, Policy::default(), Arc::default()).await;
    emulator().clear_requests(&a.id);
    let r = real.sweep(a.day(0)).await.unwrap();
    let calls = requests_by_operation(&a);
    assert_eq!(
        iam_reads(&calls),
        BTreeMap::from([("iam:ListAccessKeys".to_string(), 1)]),
        "{calls:?}"
    );
    assert!(
        r.actions.iter().any(|x| x.outcome == Outcome::Done
            && x.identity.ends_with(&format!("user/two-keys/key/{idle}"))),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_first_pass_notices_from_the_bulk_read_with_one_tag_call_and_about_one_dynamodb_request_each(
) {
    let a = Account::new().await;
    for n in 0..97 {
        a.role(&format!("idle-{n}"), 200, &[]).await;
    }
    for n in 0..3 {
        a.user(&format!("gone-{n}"), 300).await;
    }
    let events = Arc::new(Published::default());
    let engine = engine_publishing_to(&a, Policy::default(), events.clone()).await;
    emulator().clear_requests(&a.id);

    let r = engine.sweep(a.day(0)).await.unwrap();

    let done = r
        .actions
        .iter()
        .filter(|x| x.outcome == Outcome::Done && x.step == Step::Notice)
        .count();
    assert_eq!(done, 100, "{r:?}");
    let calls = requests_by_operation(&a);
    assert_eq!(
        iam_reads(&calls),
        BTreeMap::new(),
        "a notice acts on this run's bulk read: {calls:?}"
    );
    assert_eq!(calls.get("iam:TagRole"), Some(&97), "{calls:?}");
    assert_eq!(calls.get("iam:TagUser"), Some(&3), "{calls:?}");
    // Per notice its write-ahead intent (the claim); the commits go 25 at a time, done entries
    // first, then records (+1 PutItem: the breaker's count).
    assert_eq!(calls.get("dynamodb:PutItem"), Some(&(100 + 1)), "{calls:?}");
    assert_eq!(calls.get("dynamodb:BatchWriteItem"), Some(&8), "{calls:?}");
    let dynamodb: usize = calls
        .iter()
        .filter(|(op, _)| op.starts_with("dynamodb:"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        dynamodb * 10 <= 100 * 12,
        "at most 1.2 DynamoDB requests per notice, reads included: {dynamodb} for 100: {calls:?}"
    );
    for n in [0, 96] {
        let history = engine
            .store
            .history(&a.role_subject(&format!("idle-{n}")))
            .await
            .unwrap();
        assert_eq!(
            history.iter().map(|e| e.step.as_str()).collect::<Vec<_>>(),
            ["notice"],
            "each notice is in its own audit trail: {history:?}"
        );
    }
    let published = events.batch_sizes();
    assert_eq!(
        published.iter().sum::<usize>(),
        100,
        "one event per notice: {published:?}"
    );
    assert!(published.iter().all(|n| *n <= 10), "in batches of ten");
}

#[tokio::test]
async fn a_later_step_re_reads_the_identity_once_then_makes_its_own_calls() {
    let a = Account::new().await;
    for n in 0..3 {
        a.role(&format!("later-{n}"), 200, &[]).await;
    }
    let engine = engine_publishing_to(&a, Policy::default(), Arc::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    emulator().clear_requests(&a.id);

    let r = engine.tick(a.day(7)).await.unwrap();

    assert_eq!(
        r.actions
            .iter()
            .filter(|x| x.outcome == Outcome::Done && x.step == Step::Quarantine)
            .count(),
        3,
        "{r:?}"
    );
    let calls = requests_by_operation(&a);
    // The re-read (GetRole, ListRolePolicies, ListAttachedRolePolicies), then the quarantine:
    // the attachments listed once more right before the attach, the policy's default version
    // checked to be a deny-all (GetPolicy, GetPolicyVersion), the attach, and the stage tag.
    for op in [
        "GetRole",
        "ListRolePolicies",
        "GetPolicy",
        "GetPolicyVersion",
        "AttachRolePolicy",
        "TagRole",
    ] {
        assert_eq!(calls.get(&format!("iam:{op}")), Some(&3), "{op}: {calls:?}");
    }
    assert_eq!(
        calls.get("iam:ListAttachedRolePolicies"),
        Some(&6),
        "{calls:?}"
    );
    assert_eq!(
        iam_reads(&calls).values().sum::<usize>(),
        18,
        "nothing else is read: {calls:?}"
    );
    // Intent, done entry, state; and the breaker's quarantine window after each quarantine.
    assert_eq!(
        calls.get("dynamodb:PutItem"),
        Some(&(3 * 3 + 3)),
        "{calls:?}"
    );
}
