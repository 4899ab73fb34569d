#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! dormant's quarantine is its managed deny policy, attached (docs/design.md, 'The quarantine
//! policy'): what happens when the policy is missing, tampered with, or cannot be attached because
//! the identity already has as many managed policies as IAM allows; and `dormant init` creating it.

use dormant::app::output::RunReport;
use dormant::domain::{Outcome, Policy, Stage, Step};
use dormant::ports::Store;

use crate::support::account::{Account, TestEngine};
use crate::support::emulator::emulator;

const ALLOW_S3: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;

fn quarantine_outcome(r: &RunReport) -> (Outcome, String) {
    let a = r
        .actions
        .iter()
        .find(|a| a.step == Step::Quarantine)
        .unwrap_or_else(|| panic!("no quarantine in {r:?}"));
    (a.outcome, a.reason.clone())
}

/// A role noticed 7 days ago, due for quarantine at `a.day(7)`.
async fn due_role(a: &Account, name: &str) -> TestEngine {
    a.role(name, 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine
}

#[tokio::test]
async fn a_role_with_ten_managed_policies_is_not_quarantined_and_the_failure_says_why() {
    let a = Account::new().await;
    let engine = due_role(&a, "crowded").await;
    for n in 0..10 {
        let arn = a.create_policy(&format!("p{n}"), ALLOW_S3).await;
        a.attach_role_policy("crowded", &arn).await;
    }
    let before = a.attached_role_policies("crowded").await;
    let tags_before = a.role_tags("crowded").await;

    let r = engine.tick(a.day(7)).await.unwrap();
    let (outcome, reason) = quarantine_outcome(&r);
    assert_eq!(outcome, Outcome::Failed, "{r:?}");
    assert!(
        reason.contains("as many managed policies attached as IAM allows")
            && reason.contains("nothing was changed"),
        "{reason}"
    );
    assert_eq!(a.attached_role_policies("crowded").await, before);
    assert_eq!(
        a.role_tags("crowded").await,
        tags_before,
        "not tagged as quarantined"
    );
    let record = engine
        .store
        .load(&a.role_subject("crowded"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.stage, Stage::Noticed, "still noticed: {record:?}");
    assert_eq!(
        emulator().count_requests(&a.id, "PutRolePolicy"),
        0,
        "no inline policy written instead"
    );
}

#[tokio::test]
async fn without_the_quarantine_policy_in_the_account_nothing_is_quarantined() {
    let a = Account::new().await;
    let engine = due_role(&a, "unprotected").await;
    a.iam
        .delete_policy()
        .policy_arn(a.quarantine_arn())
        .send()
        .await
        .unwrap();

    let r = engine.tick(a.day(7)).await.unwrap();
    let (outcome, reason) = quarantine_outcome(&r);
    assert_eq!(outcome, Outcome::Failed, "{r:?}");
    assert!(
        reason.contains(&a.quarantine_arn()) && reason.contains("member stack"),
        "{reason}"
    );
    assert!(a.attached_role_policies("unprotected").await.is_empty());
    assert!(a.role_policies("unprotected").await.is_empty());
}

#[tokio::test]
async fn a_quarantine_policy_that_allows_anything_is_attached_to_no_one() {
    let a = Account::new().await;
    let engine = due_role(&a, "target").await;
    // Someone with IAM rights in the account makes dormant's policy grant something.
    let tampered = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"},{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    a.iam
        .create_policy_version()
        .policy_arn(a.quarantine_arn())
        .policy_document(tampered)
        .set_as_default(true)
        .send()
        .await
        .unwrap();

    let r = engine.tick(a.day(7)).await.unwrap();
    let (outcome, reason) = quarantine_outcome(&r);
    assert_eq!(outcome, Outcome::Failed, "{r:?}");
    assert!(reason.contains("not a deny-all"), "{reason}");
    assert!(a.attached_role_policies("target").await.is_empty());
    assert_eq!(emulator().count_requests(&a.id, "AttachRolePolicy"), 0);
}

#[tokio::test]
async fn init_creates_the_quarantine_policy_once() {
    let a = Account::without_table().await;
    // The emulator provides it, as the member stack would: remove it to see init create it.
    a.iam
        .delete_policy()
        .policy_arn(a.quarantine_arn())
        .send()
        .await
        .unwrap();
    let cli = a.dormant();
    let (code, first) = cli.json(0, &["init"]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["quarantine_policy"], a.quarantine_arn().as_str());
    assert_eq!(first["quarantine_policy_created"], true);
    let (code, again) = cli.json(0, &["init"]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["quarantine_policy_created"], false);
    let version = a
        .iam
        .get_policy_version()
        .policy_arn(a.quarantine_arn())
        .version_id("v1")
        .send()
        .await
        .unwrap();
    let doc =
        percent_encoding::percent_decode_str(version.policy_version().unwrap().document().unwrap())
            .decode_utf8()
            .unwrap()
            .to_string();
    assert!(
        dormant::domain::quarantine::denies_all_and_grants_nothing(&doc),
        "{doc}"
    );
}

/// An operator attached dormant's deny policy by hand (incident response) before dormant's
/// quarantine step: dormant's step finds it there, records it as not its own, and neither undo
/// nor release takes it off. Detached by hand after the release, a new ladder attaches (and later
/// detaches) its own.
#[tokio::test]
async fn a_quarantine_policy_attached_by_hand_is_not_dormants_to_detach() {
    let a = Account::new().await;
    let engine = due_role(&a, "incident").await;
    let subject = a.role_subject("incident");
    a.attach_role_policy("incident", &a.quarantine_arn()).await;

    let r = engine.tick(a.day(7)).await.unwrap();
    assert_eq!(quarantine_outcome(&r).0, Outcome::Done, "{r:?}");
    assert_eq!(
        emulator().count_requests(&a.id, "AttachRolePolicy"),
        1,
        "only the operator's attach"
    );
    let record = engine.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Quarantined);
    assert_eq!(record.quarantine_attached, Some(false), "{record:?}");
    assert!(
        record.reason.contains("already attached by someone else"),
        "{}",
        record.reason
    );

    let undone = engine
        .undo(
            &"role/incident".parse().unwrap(),
            "owner needs it",
            a.day(8),
        )
        .await
        .unwrap();
    assert_eq!(undone.stage, Stage::Released);
    assert!(
        a.role_quarantined("incident").await,
        "the operator's quarantine stays"
    );
    assert_eq!(emulator().count_requests(&a.id, "DetachRolePolicy"), 0);
    let record = engine.store.load(&subject).await.unwrap().unwrap();
    assert!(
        record.reason.contains("attached by someone else"),
        "the audit trail says why: {}",
        record.reason
    );
    let history = engine.store.history(&subject).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.reason.contains("attached by someone else")),
        "{history:?}"
    );

    // Later runs do not 'repair' it either.
    engine.sweep(a.day(9)).await.unwrap();
    assert!(a.role_quarantined("incident").await);
    assert_eq!(emulator().count_requests(&a.id, "DetachRolePolicy"), 0);
}

/// dormant's own quarantine is still undone exactly (the record says dormant attached it), and a
/// record written before ownership was kept counts a quarantined stage as dormant's.
#[tokio::test]
async fn dormants_own_quarantine_is_detached_on_undo_also_from_an_earlier_versions_record() {
    let a = Account::new().await;
    let engine = due_role(&a, "own").await;
    let subject = a.role_subject("own");
    engine.tick(a.day(7)).await.unwrap();
    let mut record = engine.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.quarantine_attached, Some(true));
    // As an earlier version stored it: no ownership field.
    record.quarantine_attached = None;
    engine.store.save(&record).await.unwrap();
    engine
        .undo(&"role/own".parse().unwrap(), "needed", a.day(8))
        .await
        .unwrap();
    assert!(!a.role_quarantined("own").await);
}
