#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! A protected identity is never changed, in any mode (docs/design.md, 'Exemptions'): not by the
//! credentials marker's clean-up, not by finishing a step SSM had, and what dormant left on it
//! before stays dormant's only while IAM shows it. Against the emulator.

use chrono::Duration;
use dormant::domain::tag::CREDENTIALS_TAG;
use dormant::domain::{Policy, PrincipalKind, Stage};
use dormant::ports::Store;

use crate::support::account::{Account, MUTATING};
use crate::support::emulator::emulator;

fn mutations(account: &str) -> Vec<String> {
    let requests = emulator().requests(account);
    requests
        .iter()
        .filter_map(|r| r["operation"].as_str())
        // `MUTATING` and the attaches (a quarantine), of any identity in the account.
        .filter(|op| MUTATING.contains(op) || op.starts_with("Attach"))
        .map(str::to_string)
        .collect()
}

/// The policy under which `name` is one of dormant's own identities (protected by name).
fn protecting(kind: PrincipalKind, name: &str) -> Policy {
    let mut policy = Policy::default();
    policy.exemptions.controller.push((kind, name.to_string()));
    policy
}

/// A role quarantined by dormant on day 7.
async fn quarantined_role(a: &Account, name: &str) {
    a.role(name, 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    assert!(a.role_quarantined(name).await);
}

#[tokio::test]
async fn a_protected_user_carrying_the_credentials_marker_gets_no_iam_change() {
    let a = Account::new().await;
    a.user("ci-bot", 400).await;
    a.key("ci-bot", 300, 1).await;
    a.key("ci-bot", 300, 100).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    assert!(a.user_tags("ci-bot").await.contains_key(CREDENTIALS_TAG));

    // The user becomes dormant's own identity: every ladder of it ends, which is when the
    // marker's clean-up would run.
    emulator().clear_requests(&a.id);
    let engine = a.engine(protecting(PrincipalKind::User, "ci-bot")).await;
    engine.sweep(a.day(8)).await.unwrap();
    engine.tick(a.day(8) + Duration::hours(1)).await.unwrap();
    engine.sweep(a.day(9)).await.unwrap();

    assert_eq!(mutations(&a.id), Vec::<String>::new());
    assert!(a.user_tags("ci-bot").await.contains_key(CREDENTIALS_TAG));
    let records = engine
        .store
        .load_principal(&a.user_principal("ci-bot"))
        .await
        .unwrap();
    let key = records
        .iter()
        .find(|r| r.subject.id().contains("AKIA"))
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(key.stage, Stage::Exempt, "{key:?}");
    assert!(
        key.reason.contains(CREDENTIALS_TAG) && key.reason.contains("by hand"),
        "says what stays: {}",
        key.reason
    );
}

#[tokio::test]
async fn a_quarantine_dormant_attached_before_the_protection_is_detached_when_it_ends() {
    let a = Account::new().await;
    quarantined_role(&a, "ops-robot").await;

    emulator().clear_requests(&a.id);
    let protected = a.engine(protecting(PrincipalKind::Role, "ops-robot")).await;
    protected.sweep(a.day(8)).await.unwrap();
    assert_eq!(mutations(&a.id), Vec::<String>::new());
    let record = protected
        .store
        .load(&a.role_subject("ops-robot"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.stage, Stage::Exempt);
    assert_eq!(record.quarantine_attached, Some(true), "{record:?}");
    assert!(a.role_quarantined("ops-robot").await, "left as it was");

    // Unprotected again: the repair takes off what dormant attached.
    a.engine(Policy::default())
        .await
        .sweep(a.day(9))
        .await
        .unwrap();
    assert!(!a.role_quarantined("ops-robot").await);
}

#[tokio::test]
async fn a_deny_attached_after_the_protected_roles_owner_removed_dormants_is_not_dormants() {
    let a = Account::new().await;
    quarantined_role(&a, "ops-robot").await;
    let quarantine = dormant::domain::quarantine::policy_arn("aws", &a.id);
    let protected = a.engine(protecting(PrincipalKind::Role, "ops-robot")).await;
    protected.sweep(a.day(8)).await.unwrap();

    // The operator removes it by hand, as the record asks; a later run sees it gone.
    a.iam
        .detach_role_policy()
        .role_name("ops-robot")
        .policy_arn(&quarantine)
        .send()
        .await
        .unwrap();
    protected.sweep(a.day(9)).await.unwrap();
    let record = protected
        .store
        .load(&a.role_subject("ops-robot"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.quarantine_attached, Some(false), "{record:?}");

    // Incident response attaches the deny; the protection ends: the deny is theirs.
    a.attach_role_policy("ops-robot", &quarantine).await;
    a.engine(Policy::default())
        .await
        .sweep(a.day(30))
        .await
        .unwrap();
    assert!(
        a.role_quarantined("ops-robot").await,
        "an operator's deny stays"
    );
}
