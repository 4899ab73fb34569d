#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! The ladder against real (emulated) IAM and DynamoDB: sweep and tick walk identities through
//! every step, and each test reads IAM state back through the SDK and the emulator's request log.

use aws_sdk_iam::types::StatusType;
use chrono::Duration;
use dormant::app::output::RunReport;
use dormant::domain::policy::Exemptions;
use dormant::domain::{Outcome, Policy, Principal, Stage, Step, Subject};
use dormant::ports::Store;
use serde_json::{json, Value};

use crate::support::account::{Account, TRUST};
use crate::support::emulator::{emulator, Fault};

/// Everything about the account's roles and users that dormant could change.
async fn dump(a: &Account) -> Value {
    let mut out = serde_json::Map::new();
    for r in a.iam.list_roles().send().await.unwrap().roles() {
        let name = r.role_name();
        out.insert(
            format!("role/{name}"),
            json!({"tags": a.role_tags(name).await, "policies": a.role_policies(name).await,
                "attached": a.attached_role_policies(name).await}),
        );
    }
    for u in a.iam.list_users().send().await.unwrap().users() {
        let name = u.user_name();
        let keys: Vec<Value> = a
            .iam
            .list_access_keys()
            .user_name(name)
            .send()
            .await
            .unwrap()
            .access_key_metadata()
            .iter()
            .map(|k| {
                json!([
                    k.access_key_id(),
                    k.status().map(|s| s.as_str().to_string())
                ])
            })
            .collect();
        let tags = a.user_tags(name).await;
        let policies = a
            .iam
            .list_user_policies()
            .user_name(name)
            .send()
            .await
            .unwrap()
            .policy_names()
            .to_vec();
        let attached = a.attached_user_policies(name).await;
        let login = a.has_console(name).await;
        out.insert(
            format!("user/{name}"),
            json!({"tags": tags, "keys": keys, "policies": policies, "attached": attached,
                "login": login}),
        );
    }
    Value::Object(out)
}

fn steps(report: &RunReport, outcome: Outcome) -> Vec<(String, Step)> {
    report
        .actions
        .iter()
        .filter(|a| a.outcome == outcome)
        .map(|a| {
            (
                a.identity.rsplit('/').next().unwrap_or("").to_string(),
                a.step,
            )
        })
        .collect()
}

#[tokio::test]
async fn an_unused_role_walks_notice_quarantine_delete_with_a_snapshot_first() {
    let a = Account::new().await;
    a.role("legacy-etl", 120, &[("team", "data")]).await;
    let engine = a.engine(Policy::default()).await;
    let subject = Subject::whole(Principal::role(&a.id, "/", "legacy-etl"));

    let r = engine.sweep(a.day(0)).await.unwrap();
    assert_eq!(
        steps(&r, Outcome::Done),
        vec![("legacy-etl".into(), Step::Notice)]
    );
    let tags = a.role_tags("legacy-etl").await;
    assert_eq!(
        tags["dormant:stage"],
        format!(
            "noticed next quarantine at {}",
            dormant::domain::time::fmt_time(a.day(7))
        )
    );
    assert_eq!(tags["team"], "data");
    assert!(
        !a.role_quarantined("legacy-etl").await,
        "a notice does not cut access"
    );
    assert_eq!(
        engine.store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Noticed
    );

    assert!(
        engine.tick(a.day(6)).await.unwrap().actions.is_empty(),
        "nothing due before day 7"
    );
    let r = engine.tick(a.day(7)).await.unwrap();
    assert_eq!(
        steps(&r, Outcome::Done),
        vec![("legacy-etl".into(), Step::Quarantine)]
    );
    assert!(a.role_quarantined("legacy-etl").await);
    assert!(
        a.role_tags("legacy-etl").await["dormant:stage"].starts_with("quarantined next delete at ")
    );
    let record = engine.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Quarantined);
    assert_eq!(record.next_step, Some(Step::Delete));

    let r = engine.tick(a.day(23)).await.unwrap();
    assert_eq!(
        steps(&r, Outcome::Done),
        vec![("legacy-etl".into(), Step::Delete)]
    );
    assert!(!a.role_exists("legacy-etl").await);
    let snapshot = engine
        .store
        .latest_snapshot(&subject)
        .await
        .unwrap()
        .expect("a snapshot was taken before deletion");
    assert_eq!(snapshot.tags.get("team").map(String::as_str), Some("data"));
    let trust: Value = serde_json::from_str(snapshot.trust_policy.as_deref().unwrap()).unwrap();
    assert_eq!(trust, serde_json::from_str::<Value>(TRUST).unwrap());
    assert_eq!(
        engine.store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Deleted
    );

    let history = engine.store.history(&subject).await.unwrap();
    let done: Vec<&str> = history
        .iter()
        .filter(|h| h.outcome == Outcome::Done)
        .map(|h| h.step.as_str())
        .collect();
    assert_eq!(done, vec!["notice", "quarantine", "delete"]);
}

#[tokio::test]
async fn deactivate_keys_turns_off_only_the_active_key_and_records_only_it() {
    let a = Account::new().await;
    a.user("alice", 400).await;
    let active = a.key("alice", 300, 200).await;
    a.key_with("alice", 300, Some(200), false).await;
    let engine = a.engine(Policy::default()).await;

    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    emulator().clear_requests(&a.id);
    let r = engine.tick(a.day(14)).await.unwrap();
    assert_eq!(
        steps(&r, Outcome::Done),
        vec![("alice".into(), Step::DeactivateKeys)]
    );
    let updates: Vec<Value> = emulator()
        .requests(&a.id)
        .into_iter()
        .filter(|r| r["operation"] == "UpdateAccessKey")
        .collect();
    assert_eq!(
        updates.len(),
        1,
        "only the active key is touched: {updates:?}"
    );
    assert_eq!(updates[0]["AccessKeyId"], active.as_str());
    let record = engine
        .store
        .load(&Subject::whole(Principal::user(&a.id, "/", "alice")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.keys_deactivated, vec![active.clone()]);
    let statuses: Vec<_> = a
        .iam
        .list_access_keys()
        .user_name("alice")
        .send()
        .await
        .unwrap()
        .access_key_metadata()
        .iter()
        .map(|k| k.status().cloned())
        .collect();
    assert!(statuses.iter().all(|s| *s == Some(StatusType::Inactive)));
}

#[tokio::test]
async fn only_the_expired_exemption_is_touched() {
    let a = Account::new().await;
    let yesterday = (a.now - Duration::days(1)).format("%Y-%m-%d").to_string();
    a.role("exempt-by-tag", 200, &[("dormant:exempt", "true")])
        .await;
    a.role(
        "exemption-expired",
        200,
        &[
            ("dormant:exempt", "true"),
            ("dormant:exempt-until", &yesterday),
        ],
    )
    .await;
    a.role("breakglass-role", 200, &[]).await;
    a.role("too-young", 30, &[]).await;
    a.role_with(
        "/aws-service-role/support.amazonaws.com/",
        "AWSServiceRoleForSupport",
        500,
        None,
        &[],
    )
    .await;
    let policy = Policy {
        exemptions: Exemptions::new(
            &["/breakglass-*".to_string()],
            false,
            Duration::days(365),
            vec![],
        )
        .unwrap(),
        ..Policy::default()
    };
    let engine = a.engine(policy).await;

    for day in [0, 7, 23] {
        engine.sweep(a.day(day)).await.unwrap();
    }
    assert!(
        !a.role_exists("exemption-expired").await,
        "the lapsed exemption was walked to deletion"
    );
    for name in [
        "exempt-by-tag",
        "breakglass-role",
        "too-young",
        "AWSServiceRoleForSupport",
    ] {
        assert!(a.role_exists(name).await, "{name}");
        assert_eq!(
            a.mutations_of(name),
            Vec::<String>::new(),
            "{name} was never changed"
        );
    }
}

#[tokio::test]
async fn a_role_used_again_after_notice_is_released_and_untagged() {
    let a = Account::new().await;
    a.role("comeback", 200, &[("owner", "ops")]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    assert!(a.role_quarantined("comeback").await);

    emulator().backdate_role(&a.id, "comeback", None, Some(a.day(8)));
    let r = engine.sweep(a.day(9)).await.unwrap();
    assert_eq!(
        steps(&r, Outcome::Done),
        vec![("comeback".into(), Step::Release)]
    );
    assert!(
        r.actions[0].reason.contains("used at"),
        "{}",
        r.actions[0].reason
    );
    assert!(!a.role_quarantined("comeback").await);
    let tags = a.role_tags("comeback").await;
    assert!(!tags.keys().any(|k| k.starts_with("dormant:")), "{tags:?}");
    assert_eq!(tags["owner"], "ops");
    let record = engine
        .store
        .load(&Subject::whole(Principal::role(&a.id, "/", "comeback")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.stage, Stage::Released);
    assert_eq!(record.next_due_at, None, "nothing left in the due index");
}

#[tokio::test]
async fn dry_run_changes_nothing_in_iam_and_says_what_it_would_do() {
    let a = Account::new().await;
    a.role("dry-one", 200, &[]).await;
    a.user("dry-user", 300).await;
    let before = dump(&a).await;
    let policy = Policy {
        dry_run: true,
        ..Policy::default()
    };
    let engine = a.engine(policy).await;
    let r = engine.sweep(a.day(0)).await.unwrap();
    let mut planned = steps(&r, Outcome::DryRun);
    planned.sort();
    assert_eq!(
        planned,
        vec![
            ("dry-one".into(), Step::Notice),
            ("dry-user".into(), Step::Notice)
        ]
    );
    assert_eq!(dump(&a).await, before);
    assert!(
        engine.store.list(&a.id, None).await.unwrap().is_empty(),
        "no state is recorded as if it had happened"
    );
}

#[tokio::test]
async fn throttled_reads_are_retried_and_access_denied_is_recorded_without_stopping_others() {
    let a = Account::new().await;
    a.role("denied", 200, &[]).await;
    a.role("fine", 200, &[]).await;
    a.create_user("/", "young-user", &[]).await;
    let engine = a.engine(Policy::default()).await;
    for op in [
        "GetAccountAuthorizationDetails",
        "GenerateCredentialReport",
        "GetCredentialReport",
    ] {
        emulator().inject_fault(&a.id, "iam", op, Fault::Throttle, 2);
    }
    let r = engine.sweep(a.day(0)).await.unwrap();
    assert_eq!(steps(&r, Outcome::Done).len(), 2, "{r:?}");
    assert!(
        emulator().faults(&a.id).is_empty(),
        "every injected throttle was hit and retried past"
    );

    // The quarantine re-reads each role first: those reads are throttled too.
    for op in ["GetRole", "ListRolePolicies"] {
        emulator().inject_fault(&a.id, "iam", op, Fault::Throttle, 2);
    }
    emulator().inject_fault(&a.id, "iam", "AttachRolePolicy", Fault::AccessDenied, 1);
    let r = engine.tick(a.day(7)).await.unwrap();
    assert!(
        emulator().faults(&a.id).is_empty(),
        "every injected fault was hit"
    );
    let failed = steps(&r, Outcome::Failed);
    assert_eq!(failed.len(), 1);
    let done = steps(&r, Outcome::Done);
    assert_eq!(done.len(), 1, "the other identity is still processed");
    let failed_name = &failed[0].0;
    let reason = &r
        .actions
        .iter()
        .find(|x| x.outcome == Outcome::Failed)
        .unwrap()
        .reason;
    assert!(reason.contains("AccessDenied"), "{reason}");
    let h = engine
        .store
        .history(&Subject::whole(Principal::role(&a.id, "/", failed_name)))
        .await
        .unwrap();
    assert!(h
        .iter()
        .any(|e| e.outcome == Outcome::Failed && e.reason.contains("AccessDenied")));
}

#[tokio::test]
async fn deleting_a_user_tears_everything_down_before_delete_user() {
    let a = Account::new().await;
    let u = "leaver";
    a.user_with("/", u, 400, None, true).await;
    a.key_with(u, 300, None, true).await;
    a.put_user_policy(
        u,
        "inline",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#,
    )
    .await;
    a.group_with("devs", u).await;
    let engine = a.engine(Policy::default()).await;

    for day in [0, 7, 14, 30] {
        engine.sweep(a.day(day)).await.unwrap();
    }
    assert!(
        a.iam.get_user().user_name(u).send().await.is_err(),
        "deleted"
    );
    let ops: Vec<String> = emulator()
        .requests(&a.id)
        .iter()
        .filter(|r| r["UserName"] == u)
        .map(|r| r["operation"].as_str().unwrap().to_string())
        .collect();
    let pos = |op: &str| {
        ops.iter()
            .position(|o| o == op)
            .unwrap_or_else(|| panic!("{op} missing from {ops:?}"))
    };
    let delete = pos("DeleteUser");
    for before in [
        "DeleteLoginProfile",
        "DeleteAccessKey",
        "DeleteUserPolicy",
        "RemoveUserFromGroup",
    ] {
        assert!(
            pos(before) < delete,
            "{before} must come before DeleteUser: {ops:?}"
        );
    }
}

#[tokio::test]
async fn quarantine_then_undo_restores_the_user_exactly_including_an_owner_deactivated_key() {
    let a = Account::new().await;
    let u = "roundtrip";
    a.tagged_user("/", u, 400, None, true, &[("owner", "ops")])
        .await;
    a.key(u, 300, 200).await;
    a.key_with(u, 300, Some(200), false).await;
    let before = dump(&a).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    engine.tick(a.day(14)).await.unwrap();
    assert_ne!(dump(&a).await, before, "quarantined and a key turned off");

    let arg: dormant::domain::IdentityArg = format!("user/{u}").parse().unwrap();
    let r = engine.undo(&arg, "false alarm", a.day(15)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert_eq!(
        dump(&a).await,
        before,
        "everything dormant changed is reversed, nothing else"
    );
    let again = engine.undo(&arg, "again", a.day(15)).await.unwrap_err();
    assert!(again.to_string().contains("already released"), "{again}");
}

#[tokio::test]
async fn an_exemption_tag_set_directly_releases_on_the_next_sweep_and_its_expiry_restarts_from_notice(
) {
    let a = Account::new().await;
    a.role("tagged-later", 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    assert!(a.role_quarantined("tagged-later").await);

    let until = a.day(20).format("%Y-%m-%d").to_string();
    a.tag_role(
        "tagged-later",
        &[("dormant:exempt", "true"), ("dormant:exempt-until", &until)],
    )
    .await;
    let r = engine.sweep(a.day(8)).await.unwrap();
    assert_eq!(
        steps(&r, Outcome::Done),
        vec![("tagged-later".into(), Step::Release)]
    );
    assert!(!a.role_quarantined("tagged-later").await);
    let subject = Subject::whole(Principal::role(&a.id, "/", "tagged-later"));
    assert_eq!(
        engine.store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Exempt
    );

    let r = engine.sweep(a.day(22)).await.unwrap();
    assert_eq!(
        steps(&r, Outcome::Done),
        vec![("tagged-later".into(), Step::Notice)],
        "the lapsed exemption puts it back at notice"
    );
    assert!(
        r.actions[0].reason.contains("lapsed"),
        "{}",
        r.actions[0].reason
    );
}

#[tokio::test]
async fn a_quarantined_role_tagged_exempt_with_an_unreadable_date_is_released_not_advanced() {
    let a = Account::new().await;
    a.role("legacy-batch", 200, &[]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine.tick(a.day(7)).await.unwrap();
    assert!(a.role_quarantined("legacy-batch").await, "quarantined");

    // Set by a security admin, with a date dormant cannot read.
    a.tag_role(
        "legacy-batch",
        &[
            ("dormant:exempt", "true"),
            ("dormant:exempt-until", "31/12/2026"),
        ],
    )
    .await;
    let r = engine.sweep(a.day(8)).await.unwrap();
    assert_eq!(
        steps(&r, Outcome::Done),
        vec![("legacy-batch".into(), Step::Release)]
    );
    assert!(
        r.actions[0].reason.contains("'31/12/2026' is not a date"),
        "{}",
        r.actions[0].reason
    );
    assert!(!a.role_quarantined("legacy-batch").await);
    let subject = Subject::whole(Principal::role(&a.id, "/", "legacy-batch"));
    let record = engine.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Exempt);

    // The ladder does not advance while the exemption holds...
    emulator().clear_requests(&a.id);
    for day in [15, 23, 60, 200] {
        engine.sweep(a.day(day)).await.unwrap();
        engine.tick(a.day(day)).await.unwrap();
    }
    assert!(a.role_exists("legacy-batch").await);
    assert_eq!(a.mutations_of("legacy-batch"), Vec::<String>::new());
    // ...and ends `max_days` after dormant first saw it, remembered in the record.
    let r = engine.sweep(a.day(8 + 365)).await.unwrap();
    assert_eq!(
        steps(&r, Outcome::Done),
        vec![("legacy-batch".into(), Step::Notice)]
    );
    assert!(
        r.actions[0].reason.contains("exemptions.max_days"),
        "{}",
        r.actions[0].reason
    );
}

#[tokio::test]
async fn bootstrap_and_platform_roles_unused_for_a_year_are_never_touched_through_the_ladder() {
    let a = Account::new().await;
    let cdk = format!("cdk-hnb659fds-deploy-role-{}-us-east-1", a.id);
    let mut protected = vec![
        cdk.clone(),
        "AWSControlTowerExecution".to_string(),
        "stacksets-exec-0123456789abcdef0123456789abcdef".to_string(),
        "AWSCloudFormationStackSetExecutionRole".to_string(),
        "dormant-automation".to_string(),
    ];
    for name in &protected {
        a.role(name, 400, &[]).await;
    }
    // The automation role the configuration passes to SSM, under a path and any name.
    a.role_with("/automation/", "ops-remediation", 400, None, &[])
        .await;
    protected.push("ops-remediation".to_string());
    a.role("ordinary", 400, &[]).await;
    // The breaker would otherwise stop the old code's quarantines of these roles.
    let config = dormant::config::Config::from_toml(&format!(
        "[breaker]\nmax_quarantine_fraction = 1.0\n[fallback]\nautomation_role = \"arn:aws:iam::{}:role/automation/ops-remediation\"",
        a.id
    ))
    .unwrap();
    let engine = a.engine(config.policy).await;

    for day in [0, 7, 14, 23, 30, 365] {
        engine.sweep(a.day(day)).await.unwrap();
        engine.tick(a.day(day)).await.unwrap();
    }
    assert!(
        !a.role_exists("ordinary").await,
        "the ladder ran: the ordinary role was deleted"
    );
    for name in &protected {
        assert!(a.role_exists(name).await, "{name}");
        assert_eq!(
            a.mutations_of(name),
            Vec::<String>::new(),
            "{name} was never changed"
        );
        let path = if name == "ops-remediation" {
            "/automation/"
        } else {
            "/"
        };
        let record = engine
            .store
            .load(&Subject::whole(Principal::role(&a.id, path, name)))
            .await
            .unwrap();
        assert!(
            record
                .as_ref()
                .is_none_or(|r| r.stage == Stage::Exempt || r.stage == Stage::Clean),
            "{name}: {record:?}"
        );
    }
}
