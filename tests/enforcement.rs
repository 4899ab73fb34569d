#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Least privilege, proven: dormant runs as roles built from the CDK's synthesized policies
//! (tests/fixtures/policies) in an emulator that refuses what they do not allow
//! (tests/emulator/README.md, 'Enforcing IAM policies'), through everything it does in AWS. A
//! missing action fails with the AccessDenied that names it; an action dormant calls that
//! `dormant permissions` does not list fails too.
//!
//! Not checked here, so covered by policy unit tests (cdk/test/permissions.test.ts): the
//! emulator treats `aws:ResourceOrgID` (AssumeRole with `organizationId`) and `aws:SourceAccount`
//! (the automation role's trust in SSM) as met; SCPs and the queue's resource policy are not
//! evaluated; Lambda's own use of the role (logs, the sweep queue's event source mapping) is not
//! exercised.

#[path = "enforcement/answers.rs"]
mod answers;
#[path = "enforcement/answers_keys.rs"]
mod answers_keys;
#[path = "enforcement/deployment.rs"]
mod deployment;
#[path = "enforcement/grant_nothing.rs"]
mod grant_nothing;

use chrono::{Duration, Utc};
use dormant::adapters::iam::AwsIam;
use dormant::adapters::retry::RetryPolicy;
use dormant::app::event::handle_event;
use dormant::app::fanout::{FanOut, SweepFanOut};
use dormant::domain::{Effect, IdentityArg, Outcome, Principal};
use dormant::inbound::eventbridge::ClassifyRules;
use dormant::lambda::{invoke, ColdStart};
use dormant::ports::Iam;
use dormant::wiring::OnDemand;
use serde_json::{json, Value};

use deployment::{admin_iam, enforcing, Deployment};

/// A fixture of tests/fixtures/events with its accounts and ids replaced.
fn event(name: &str, replace: &[(&str, &str)]) -> Value {
    let path = format!(
        "{}/tests/fixtures/events/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn the_ladder_from_dry_run_to_delete_and_undo_in_both_accounts() {
    let d = Deployment::new().await;
    for account in [&d.controller, &d.member] {
        d.role(account, "forgotten", 200).await;
        d.role(account, "revived", 200).await;
        d.user(account, "old-user", 200).await;
    }
    let now = Utc::now();

    // A dry run decides everything and writes its audit notes (BatchWriteItem), changing nothing.
    let dry = d.assembly(&d.config("dry_run = true", "")).await;
    let report = dry.fleet.sweep(now).await;
    d.assert_nothing_refused("dry-run sweep");
    assert_eq!(report.run.failed(), 0, "{report:?}");
    assert!(
        report.accounts.iter().all(|a| a.error.is_none()),
        "{report:?}"
    );
    assert!(
        report
            .run
            .actions
            .iter()
            .any(|a| a.outcome == Outcome::DryRun),
        "{report:?}"
    );

    // As the CDK app deploys it: Security Hub reporting on, each account's findings imported
    // through its own role.
    let live = d
        .assembly(&d.config("[security_hub]\nenabled = true", ""))
        .await;
    let fleet = &live.fleet;
    let mut runs = vec![fleet.sweep(now).await];
    runs.push(fleet.tick(now + Duration::days(8)).await);
    d.assert_nothing_refused("notice, quarantine");
    // Undo the quarantine of one role in each account (the operator's path, same role).
    for account in [&d.controller, &d.member] {
        let arg: IdentityArg = format!("arn:aws:iam::{account}:role/revived")
            .parse()
            .unwrap();
        let undone = fleet
            .engine(account)
            .unwrap()
            .undo(&arg, "enforcement suite", now + Duration::days(8))
            .await;
        d.assert_nothing_refused("undo");
        let undone = undone.unwrap();
        assert_eq!(undone.outcome, Outcome::Done, "{undone:?}");
    }
    for day in [16, 33, 34, 50, 51] {
        runs.push(fleet.tick(now + Duration::days(day)).await);
    }
    d.assert_nothing_refused("deactivate keys, delete");
    for run in &runs {
        assert_eq!(run.run.failed(), 0, "{run:?}");
        assert!(run.accounts.iter().all(|a| a.error.is_none()), "{run:?}");
    }
    for account in [&d.controller, &d.member] {
        assert!(!d.exists(account, "role", "forgotten").await, "{runs:#?}");
        assert!(!d.exists(account, "user", "old-user").await, "{runs:#?}");
        assert!(d.exists(account, "role", "revived").await);
    }
    // Each account imported its own findings as its own default product, allowed by its role.
    for account in [&d.controller, &d.member] {
        let imports: Vec<Value> = enforcing()
            .requests(account)
            .into_iter()
            .filter(|r| r["operation"] == "BatchImportFindings")
            .collect();
        assert!(!imports.is_empty(), "{account}: no BatchImportFindings");
        assert!(
            imports.iter().all(|r| r["caller"]
                .as_str()
                .is_some_and(|c| c.contains(account.as_str()))),
            "{account}: {imports:?}"
        );
    }
    let called = d.actions_called();
    for needed in [
        "securityhub:BatchImportFindings",
        "securityhub:BatchUpdateFindings",
    ] {
        assert!(
            called.contains(needed),
            "{needed} not exercised: {called:?}"
        );
    }
    d.assert_calls_are_listed();
}

#[tokio::test]
async fn one_event_of_every_source_in_the_account_it_names() {
    let d = Deployment::new().await;
    let (c, m) = (d.controller.as_str(), d.member.as_str());
    // Config names users and roles by unique id: ListUsers in the controller's account, ListRoles
    // in the member's.
    let aida = d.user(c, "config-user", 200).await;
    let aroa = d.role(m, "config-role", 200).await;
    d.role(m, "FindingIntegTestFakeRole", 200).await;
    d.user(m, "sharrtest", 200).await;
    d.user(m, "svc-legacy-etl", 200).await;
    d.role(m, "nightly-report-role", 200).await;
    let config = d.config("", "");
    let live = d.assembly(&config).await;
    let rules = ClassifyRules::from_config(&config);
    let events = [
        event(
            "config-user-noncompliant-aida",
            &[("123456789012", c), ("AIDACKCEVSQ6C2EXAMPLE", &aida)],
        ),
        event(
            "config-role-noncompliant-aroa",
            &[("111122223333", m), ("AROA3XFRBF535PLBIFPI4", &aroa)],
        ),
        // The organization's analyzer is in the controller's account, the role in the member's.
        event(
            "access-analyzer-unused-role",
            &[("123456789012", c), ("111122223333", m)],
        ),
        event("securityhub-iam8-user", &[("111122223333", m)]),
        event("securityhub-v2-iam8-user", &[("123456789012", m)]),
        event("cloudtrail-tagrole-dormant-exempt", &[("123456789012", m)]),
        event("schedule-tick", &[("123456789012", c)]),
        event("schedule-sweep", &[("123456789012", c)]),
    ];
    let now = Utc::now();
    for e in &events {
        let report = handle_event(e, &live.fleet, &rules, None, now).await;
        d.assert_nothing_refused(e["detail-type"].as_str().unwrap());
        let report = report.unwrap_or_else(|err| panic!("{}: {err:?}", e["detail-type"]));
        assert_eq!(report.run.failed(), 0, "{}: {report:?}", e["detail-type"]);
    }
    let called = d.actions_called();
    for needed in [
        "iam:ListUsers",
        "iam:ListRoles",
        "sts:AssumeRole",
        "events:PutEvents",
    ] {
        assert!(
            called.contains(needed),
            "{needed} not exercised: {called:?}"
        );
    }
    d.assert_calls_are_listed();
}

#[tokio::test]
async fn the_ssm_fallback_runs_each_accounts_document_as_its_automation_role() {
    let d = Deployment::new().await;
    for account in [&d.controller, &d.member] {
        d.role(account, "twin", 200).await;
    }
    let live = d
        .assembly(&d.config("", "ssm_steps = [\"quarantine\"]"))
        .await;
    let now = Utc::now();
    live.fleet.sweep(now).await;
    let report = live.fleet.tick(now + Duration::days(8)).await;
    d.assert_nothing_refused("SSM fallback: start");
    assert_eq!(report.run.failed(), 0, "{report:?}");
    for account in [&d.controller, &d.member] {
        let started = enforcing().automations(account);
        assert_eq!(started.len(), 1, "{account}: {started:?} {report:?}");
        assert_eq!(
            started[0]["parameters"]["AutomationAssumeRole"][0],
            format!("arn:aws:iam::{account}:role/dormant-automation")
        );
    }
    // The documents' change lands (the stub runs nothing); polled (GetAutomationExecution),
    // checked in IAM and committed.
    for account in [&d.controller, &d.member] {
        AwsIam::new(
            admin_iam(account).await,
            account.clone(),
            RetryPolicy::fast(),
        )
        .apply(
            &Principal::role(account, "/", "twin"),
            &Effect::PutQuarantinePolicy,
        )
        .await
        .unwrap();
    }
    let report = live
        .fleet
        .tick(now + Duration::days(8) + Duration::minutes(20))
        .await;
    d.assert_nothing_refused("SSM fallback: poll");
    assert_eq!(report.run.failed(), 0, "{report:?}");
    assert_eq!(report.run.actions.len(), 2, "{report:?}");
    d.assert_calls_are_listed();
}

#[tokio::test]
async fn a_fanned_out_sweep_queues_and_consumes_one_message_per_account() {
    let d = Deployment::new().await;
    for account in [&d.controller, &d.member] {
        d.role(account, "forgotten", 200).await;
    }
    let config = d.config("", "");
    let live = d.assembly(&config).await;
    let rules = ClassifyRules::from_config(&config);
    let fanout = FanOut {
        members: live.factory.members.clone(),
        directory: live.factory.directory(),
        queue: live.factory.sweep_queue(&d.queue_url),
    };
    let sweep = event("schedule-sweep", &[("123456789012", &d.controller)]);
    let now = Utc::now();
    let report = handle_event(
        &sweep,
        &live.fleet,
        &rules,
        Some(&fanout as &dyn SweepFanOut),
        now,
    )
    .await;
    d.assert_nothing_refused("fan-out (SendMessageBatch)");
    assert_eq!(report.unwrap().queued.len(), 2);

    // Lambda's event source mapping receives (its own permissions); the function sweeps each.
    let sqs = aws_sdk_sqs::Client::new(&enforcing().sdk_config_for(&d.controller).await);
    let received = sqs
        .receive_message()
        .queue_url(&d.queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = received
        .messages()
        .iter()
        .map(|msg| {
            json!({"messageId": msg.message_id(), "receiptHandle": msg.receipt_handle(),
                "body": msg.body(), "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
                "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:{}:dormant-sweep", d.controller)})
        })
        .collect();
    assert_eq!(records.len(), 2);
    // As the Lambda does: engines assumed for the accounts the batch names.
    let engines = OnDemand::new(&live.factory, None);
    let cold = ColdStart {
        function: dormant::lambda::Function::Controller,
        answers: None,
        fleet: &live.fleet,
        rules: &rules,
        engines: &engines,
        fanout: None,
        concurrency: 2,
    };
    let answer = invoke(json!({ "Records": records }), &cold, now).await;
    d.assert_nothing_refused("fanned-out sweep");
    assert_eq!(answer.unwrap(), json!({"batchItemFailures": []}));
    d.assert_calls_are_listed();
    let ignored = d.ignored_conditions();
    assert!(
        ignored.is_empty(),
        "conditions the emulator did not check: {ignored:?}"
    );
}

/// A credential ladder under the deployed roles, in both accounts: a lone idle key of an active
/// user is noticed (its stage tag and the user's `dormant:credentials` marker in one `TagUser`),
/// turned off (`UpdateAccessKey`, allowed by the marker alone) and undone (turned back on, then
/// the key's tag and the marker removed together). Nothing is refused.
#[tokio::test]
async fn a_lone_idle_key_is_turned_off_and_back_on_under_the_credentials_marker() {
    use aws_sdk_iam::types::StatusType;
    use dormant::domain::tag::CREDENTIALS_TAG;

    let d = Deployment::new().await;
    let now = Utc::now();
    let mut idle = Vec::new();
    for account in [&d.controller, &d.member] {
        d.user(account, "keyed", 200).await;
        let admin = deployment::admin_iam(account).await;
        let old = admin
            .list_access_keys()
            .user_name("keyed")
            .send()
            .await
            .unwrap();
        let old = old.access_key_metadata()[0]
            .access_key_id()
            .unwrap()
            .to_string();
        let used = admin
            .create_access_key()
            .user_name("keyed")
            .send()
            .await
            .unwrap();
        let used = used.access_key().unwrap().access_key_id().to_string();
        deployment::enforcing().backdate_access_key(
            account,
            "keyed",
            &used,
            Some(now - Duration::days(200)),
            Some(now - Duration::days(1)),
        );
        idle.push((account.clone(), old));
    }
    let user_tags = |account: String| async move {
        let admin = deployment::admin_iam(&account).await;
        let out = admin
            .list_user_tags()
            .user_name("keyed")
            .send()
            .await
            .unwrap();
        out.tags()
            .iter()
            .map(|t| t.key().to_string())
            .collect::<Vec<_>>()
    };
    let status = |account: String, key: String| async move {
        let admin = deployment::admin_iam(&account).await;
        let out = admin
            .list_access_keys()
            .user_name("keyed")
            .send()
            .await
            .unwrap();
        out.access_key_metadata()
            .iter()
            .find(|k| k.access_key_id() == Some(key.as_str()))
            .and_then(|k| k.status().cloned())
    };

    let live = d.assembly(&d.config("", "")).await;
    let fleet = &live.fleet;
    let run = fleet.sweep(now).await;
    assert_eq!(run.run.failed(), 0, "{run:?}");
    for (account, key) in &idle {
        let tags = user_tags(account.clone()).await;
        assert!(
            tags.contains(&CREDENTIALS_TAG.to_string())
                && tags.contains(&format!("dormant:key:{key}:stage")),
            "{tags:?}"
        );
    }
    let run = fleet.tick(now + Duration::days(8)).await;
    d.assert_nothing_refused("notice, deactivate keys");
    assert_eq!(run.run.failed(), 0, "{run:?}");
    for (account, key) in &idle {
        assert_eq!(
            status(account.clone(), key.clone()).await,
            Some(StatusType::Inactive),
            "{run:?}"
        );
        let arg: IdentityArg = format!("user/keyed/key/{key}").parse().unwrap();
        let undone = fleet
            .engine(account)
            .unwrap()
            .undo(&arg, "enforcement suite", now + Duration::days(9))
            .await;
        d.assert_nothing_refused("undo of a key");
        assert_eq!(undone.unwrap().outcome, Outcome::Done);
        assert_eq!(
            status(account.clone(), key.clone()).await,
            Some(StatusType::Active)
        );
        let tags = user_tags(account.clone()).await;
        assert!(
            !tags.iter().any(|k| k.starts_with("dormant:")),
            "the last credential ladder took the marker with it: {tags:?}"
        );
    }
    d.assert_calls_are_listed();
}

/// Review 6: a role whose `dormant:stage` someone removed after its quarantine is still deleted
/// under the deployed roles: the stage tag is written again after the snapshot, which is what
/// lets the controller delete its own inline policy and the role. Nothing is refused.
#[tokio::test]
async fn a_role_whose_stage_tag_was_removed_by_hand_is_still_deleted() {
    let d = Deployment::new().await;
    for account in [&d.controller, &d.member] {
        d.role(account, "untagged", 200).await;
        // Its own inline policy, which only a marked identity's teardown may delete.
        deployment::admin_iam(account)
            .await
            .put_role_policy()
            .role_name("untagged")
            .policy_name("app")
            .policy_document(
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Action": "s3:GetObject", "Resource": "*"}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
    }
    let now = Utc::now();
    let live = d.assembly(&d.config("", "")).await;
    let fleet = &live.fleet;
    let mut runs = vec![fleet.sweep(now).await];
    runs.push(fleet.tick(now + Duration::days(8)).await);
    for day in [16, 33, 34, 50, 51] {
        // Removed by hand before every run, so the run that deletes finds it gone.
        for account in [&d.controller, &d.member] {
            if d.exists(account, "role", "untagged").await {
                deployment::admin_iam(account)
                    .await
                    .untag_role()
                    .role_name("untagged")
                    .tag_keys("dormant:stage")
                    .send()
                    .await
                    .unwrap();
            }
        }
        runs.push(fleet.tick(now + Duration::days(day)).await);
    }
    d.assert_nothing_refused("delete of a role without its stage tag");
    for run in &runs {
        assert_eq!(run.run.failed(), 0, "{run:?}");
    }
    for account in [&d.controller, &d.member] {
        assert!(!d.exists(account, "role", "untagged").await, "{runs:#?}");
    }
    d.assert_calls_are_listed();
}
