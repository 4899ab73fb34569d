#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! A role, user or console password deleted and created again under the same name is a new
//! identity (issue 14, item 4): against emulated IAM and DynamoDB, dormant evaluates it afresh and
//! never carries the old one's stage onto it.

use chrono::Duration;
use dormant::app::output::RunReport;
use dormant::domain::{
    AuditEntry, Outcome, Policy, Principal, PrincipalKind, Record, Stage, Step, Subject,
};
use dormant::ports::{Iam, Store};

use crate::support::account::{Account, TestEngine};
use crate::support::emulator::emulator;

fn done(report: &RunReport) -> Vec<(String, Step)> {
    report
        .actions
        .iter()
        .filter(|a| a.outcome == Outcome::Done)
        .map(|a| (a.identity.clone(), a.step))
        .collect()
}

async fn record(engine: &TestEngine, subject: &Subject) -> Record {
    engine.store.load(subject).await.unwrap().unwrap()
}

async fn history(engine: &TestEngine, subject: &Subject) -> Vec<AuditEntry> {
    engine.store.history(subject).await.unwrap()
}

#[tokio::test]
async fn bulk_and_fresh_reads_give_the_unique_id_iam_assigned() {
    let a = Account::new().await;
    a.role("svc", 10, &[]).await;
    a.user("bob", 10).await;
    let role_id = a.role_id("svc").await;
    let user_id = a.user_id("bob").await;
    let engine = a.engine(Policy::default()).await;

    let bulk = engine.iam.bulk_facts().await.unwrap();
    let id_of = |name: &str| {
        bulk.iter()
            .find(|f| f.principal.name == name)
            .and_then(|f| f.unique_id.clone())
    };
    assert_eq!(id_of("svc"), Some(role_id.clone()));
    assert_eq!(id_of("bob"), Some(user_id.clone()));
    let fresh = |kind, name: &'static str| {
        let iam = &engine.iam;
        async move {
            iam.fresh_facts(kind, name)
                .await
                .unwrap()
                .unwrap()
                .unique_id
        }
    };
    assert_eq!(fresh(PrincipalKind::Role, "svc").await, Some(role_id));
    assert_eq!(fresh(PrincipalKind::User, "bob").await, Some(user_id));
}

#[tokio::test]
async fn a_role_deleted_by_dormant_and_created_again_is_noticed_when_it_is_unused() {
    let a = Account::new().await;
    a.role("legacy-etl", 120, &[]).await;
    let old_id = a.role_id("legacy-etl").await;
    let engine = a.engine(Policy::default()).await;
    let subject = Subject::whole(Principal::role(&a.id, "/", "legacy-etl"));
    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    let r = engine.tick(a.day(23)).await.unwrap();
    assert_eq!(done(&r), vec![(subject.id(), Step::Delete)]);
    assert!(!a.role_exists("legacy-etl").await);
    let deleted = record(&engine, &subject).await;
    assert_eq!(deleted.stage, Stage::Deleted);
    assert_eq!(deleted.unique_id.as_deref(), Some(old_id.as_str()));

    // A team creates a role of the same name on day 24 and never uses it.
    let new_id = a.create_role("/", "legacy-etl", &[]).await;
    assert_ne!(new_id, old_id);
    emulator().backdate_role(&a.id, "legacy-etl", Some(a.day(24)), None);
    emulator().clear_requests(&a.id);

    engine.sweep(a.day(25)).await.unwrap();
    let reset = record(&engine, &subject).await;
    assert_eq!(reset.stage, Stage::Clean);
    assert_eq!(reset.unique_id.as_deref(), Some(new_id.as_str()));
    let entry = history(&engine, &subject).await.pop().unwrap();
    assert_eq!(entry.step, "recreated");
    assert_eq!(
        entry.reason,
        format!("re-created: unique id {new_id} differs from {old_id}, which dormant recorded as deleted; starting clean")
    );
    assert!(
        a.mutations_of("legacy-etl").is_empty(),
        "a new identity is not touched: {:?}",
        a.mutations_of("legacy-etl")
    );

    // Unused for the threshold: the new role walks the ladder from its first rung.
    assert!(done(&engine.sweep(a.day(113)).await.unwrap()).is_empty());
    let r = engine.sweep(a.day(114)).await.unwrap();
    assert_eq!(done(&r), vec![(subject.id(), Step::Notice)]);
    let noticed = record(&engine, &subject).await;
    assert_eq!(noticed.stage, Stage::Noticed);
    assert_eq!(noticed.unique_id.as_deref(), Some(new_id.as_str()));
}

/// Deleted outside dormant while quarantined; the same name is created again and used.
async fn quarantined_then_replaced(a: &Account, policy: Policy, used: bool) -> (String, String) {
    a.role("deploy", 120, &[]).await;
    let old_id = a.role_id("deploy").await;
    let engine = a.engine(policy).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    assert_eq!(
        record(
            &engine,
            &Subject::whole(Principal::role(&a.id, "/", "deploy"))
        )
        .await
        .stage,
        Stage::Quarantined
    );
    a.iam
        .detach_role_policy()
        .role_name("deploy")
        .policy_arn(a.quarantine_arn())
        .send()
        .await
        .unwrap();
    let new_id = a.recreate_role("deploy").await;
    let last_used = used.then(|| a.day(20));
    emulator().backdate_role(&a.id, "deploy", Some(a.day(8)), last_used);
    emulator().clear_requests(&a.id);
    (old_id, new_id)
}

#[tokio::test]
async fn a_quarantined_role_replaced_outside_dormant_is_not_stepped_on_and_starts_clean() {
    let a = Account::new().await;
    let (old_id, new_id) = quarantined_then_replaced(&a, Policy::default(), true).await;
    let engine = a.engine(Policy::default()).await;
    let subject = Subject::whole(Principal::role(&a.id, "/", "deploy"));

    // The old role's delete falls due on day 23.
    let r = engine.tick(a.day(23)).await.unwrap();
    assert!(done(&r).is_empty(), "{:?}", r.actions);
    assert!(a.role_exists("deploy").await);
    assert!(
        a.mutations_of("deploy").is_empty(),
        "{:?}",
        a.mutations_of("deploy")
    );
    let reset = record(&engine, &subject).await;
    assert_eq!(reset.stage, Stage::Clean);
    assert_eq!(reset.unique_id.as_deref(), Some(new_id.as_str()));
    assert_eq!(reset.next_due_at, None, "no step is due for the new role");
    assert_eq!(
        reset.reason,
        format!("re-created: unique id {new_id} differs from {old_id}, which dormant tracked as quarantined (removed outside dormant); starting clean")
    );
    // Nothing is pending any more.
    assert!(done(&engine.tick(a.day(60)).await.unwrap()).is_empty());
    assert!(done(&engine.sweep(a.day(60)).await.unwrap()).is_empty());
    assert!(a.mutations_of("deploy").is_empty());
}

#[tokio::test]
async fn a_replacement_that_looks_dormant_is_not_deleted_in_the_old_roles_place() {
    // Thresholds short enough that the new role, unused since day 8, is idle when the old
    // role's delete falls due: before the unique id was checked, that delete hit the new role.
    let mut policy = Policy::default();
    policy.inactivity.threshold = Duration::days(10);
    policy.inactivity.min_age = Duration::days(10);
    let a = Account::new().await;
    let (_, new_id) = quarantined_then_replaced(&a, policy.clone(), false).await;
    let engine = a.engine(policy).await;
    let subject = Subject::whole(Principal::role(&a.id, "/", "deploy"));

    let r = engine.tick(a.day(23)).await.unwrap();
    assert!(done(&r).is_empty(), "{:?}", r.actions);
    assert!(a.role_exists("deploy").await, "the new role is not deleted");
    assert!(
        a.mutations_of("deploy").is_empty(),
        "{:?}",
        a.mutations_of("deploy")
    );
    assert_eq!(record(&engine, &subject).await.stage, Stage::Clean);

    // It is judged on its own: a notice first, never a delete.
    let r = engine.sweep(a.day(24)).await.unwrap();
    assert_eq!(done(&r), vec![(subject.id(), Step::Notice)]);
    let noticed = record(&engine, &subject).await;
    assert_eq!(noticed.unique_id.as_deref(), Some(new_id.as_str()));
    assert_eq!(a.mutations_of("deploy"), vec!["TagRole".to_string()]);
}

#[tokio::test]
async fn a_password_deleted_by_dormant_and_set_again_is_evaluated_again() {
    let a = Account::new().await;
    a.user("carol", 400).await;
    let key = a.key("carol", 300, 2).await;
    a.console("carol").await;
    let engine = a.engine(Policy::default()).await;
    let password = Subject::password(Principal::user(&a.id, "/", "carol"));

    let r = engine.sweep(a.day(0)).await.unwrap();
    assert_eq!(done(&r), vec![(password.id(), Step::Notice)]);
    let r = engine.tick(a.day(7)).await.unwrap();
    assert_eq!(done(&r), vec![(password.id(), Step::Delete)]);
    assert_eq!(record(&engine, &password).await.stage, Stage::Deleted);

    // An administrator gives carol a console password again on day 8. (moto reports the user's
    // CreateDate as the login profile's: moving it is how the emulator dates a new password.)
    a.console("carol").await;
    emulator().backdate_user(&a.id, "carol", Some(a.day(8)), None);

    engine.sweep(a.day(9)).await.unwrap();
    let reset = record(&engine, &password).await;
    assert_eq!(reset.stage, Stage::Clean);
    let entry = history(&engine, &password).await.pop().unwrap();
    assert_eq!(entry.step, "recreated");
    assert!(
        entry
            .reason
            .starts_with("re-created: the console password was created at "),
        "{}",
        entry.reason
    );

    // The key stays in use; the new password never is: 45 days on, it is noticed.
    emulator().backdate_access_key(&a.id, "carol", &key, None, Some(a.day(95)));
    let r = engine.sweep(a.day(98)).await.unwrap();
    assert_eq!(done(&r), vec![(password.id(), Step::Notice)]);
    let noticed = record(&engine, &password).await;
    assert_eq!(
        noticed.login_profile_created_at.map(|t| t.timestamp()),
        Some((a.day(8)).timestamp())
    );
    assert!(a.has_console("carol").await, "a notice only tags");
}
