#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Organization-wide sweeps: member accounts discovered with AWS Organizations `ListAccounts`
//! (only ACTIVE ones), and the sweep fanned out through SQS, one message per account, to Lambda
//! invocations that each sweep the accounts of their batch and hand failed ones back to SQS.

use std::collections::BTreeSet;

use aws_sdk_organizations::types::{Account as OrgAccount, AccountState, AccountStatus};
use aws_sdk_organizations::Client as Organizations;
use aws_sdk_sqs::Client as Sqs;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use chrono::Utc;
use dormant::adapters::organizations::AwsOrganizations;
use dormant::adapters::retry::RetryPolicy;
use dormant::app::event::handle_event;
use dormant::app::fanout::{FanOut, SweepFanOut};
use dormant::config::Config;
use dormant::inbound::eventbridge::ClassifyRules;
use dormant::inbound::sqs::decode;
use dormant::lambda::{invoke, ColdStart};
use dormant::ports::Directory;
use dormant::wiring::{assemble, Actor, Assembly, OnDemand};
use serde_json::{json, Value};

use crate::support::account::Account;
use crate::support::emulator::{emulator, Fault};

/// A controller account with the state table, managing an organization of `active` member
/// accounts (each with dormant's role and one long-unused role) plus one closed account
/// (SUSPENDED in moto, which never shows PENDING_CLOSURE).
struct Org {
    controller: String,
    active: Vec<String>,
    closed: String,
}

async fn organization(active: usize) -> Org {
    let controller = Account::new().await;
    let org = Organizations::new(&controller.sdk().await);
    org.create_organization().send().await.unwrap();
    let mut members = Vec::new();
    for n in 0..=active {
        let created = org
            .create_account()
            .account_name(format!("member-{n}"))
            .email(format!("member-{n}@example.com"))
            .send()
            .await
            .unwrap();
        let id = created
            .create_account_status()
            .and_then(|s| s.account_id())
            .unwrap()
            .to_string();
        let member = Account::existing(&id).await;
        member.create_role("/", "dormant-member", &[]).await;
        member.role("forgotten", 200, &[]).await;
        members.push(id);
    }
    let closed = members.pop().unwrap();
    org.close_account()
        .account_id(&closed)
        .send()
        .await
        .unwrap();
    Org {
        controller: controller.id,
        active: members,
        closed,
    }
}

async fn assembled(org: &Org, toml: &str) -> Assembly {
    let sdk = emulator().sdk_config_for(&org.controller).await;
    assemble(
        &Config::from_toml(toml).unwrap(),
        &sdk,
        Actor::Controller,
        RetryPolicy::fast(),
    )
    .await
    .unwrap()
}

async fn noticed(account: &str) -> bool {
    Account::existing(account)
        .await
        .role_tags("forgotten")
        .await
        .iter()
        .any(|(k, v)| k == "dormant:stage" && v.starts_with("noticed "))
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut v = ids.to_vec();
    v.sort();
    v
}

const ORG: &str = "[organization]\nenabled = true\n";

#[tokio::test]
async fn the_sweep_covers_exactly_the_active_accounts_of_the_organization() {
    let org = organization(3).await;
    let assembly = assembled(&org, ORG).await;
    let report = assembly.fleet.sweep(Utc::now()).await;

    // The management (controller) account is listed by Organizations but not swept; the closed
    // one is skipped; every active one is reported.
    let swept: Vec<String> = report.accounts.iter().map(|a| a.account.clone()).collect();
    assert_eq!(swept, sorted(&org.active));
    assert!(report.accounts.iter().all(|a| a.ok), "{report:?}");
    assert_eq!(report.run.actions.len(), 3, "one notice per active account");
    for a in &org.active {
        assert!(noticed(a).await, "{a}");
    }
    assert!(!noticed(&org.closed).await);
    assert_eq!(
        emulator().count_requests(&org.closed, "GetAccountAuthorizationDetails"),
        0
    );
    assert_eq!(
        assembly
            .api_calls
            .snapshot()
            .get("organizations:ListAccounts"),
        Some(&1)
    );
}

#[tokio::test]
async fn excluded_and_explicitly_listed_accounts_merge_with_the_organization() {
    let org = organization(3).await;
    let (excluded, explicit) = (&org.active[0], &org.active[1]);
    let toml = format!(
        "[[accounts]]\nid = \"{explicit}\"\nrole = \"arn:aws:iam::{explicit}:role/dormant-member\"\n\
         {ORG}exclude = [\"{excluded}\"]\ninclude_own_account = true\n"
    );
    let assembly = assembled(&org, &toml).await;
    let accounts: BTreeSet<&str> = assembly.fleet.engines.iter().map(|e| e.account()).collect();
    let want: BTreeSet<&str> = [explicit, &org.active[2], &org.controller]
        .into_iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        accounts, want,
        "each once; the controller's own account on request"
    );
    assert!(assembly.fleet.unreachable.is_empty());
}

#[tokio::test]
async fn suspended_pending_closure_and_closed_accounts_are_skipped() {
    // moto's CloseAccount goes straight to SUSPENDED and never sets PENDING_CLOSURE or CLOSED,
    // so the adapter's reading of `State` (and of `Status` when AWS omits `State`) is checked
    // against canned ListAccounts pages instead.
    let account = |id: &str| OrgAccount::builder().id(id);
    let page1 = mock!(Organizations::list_accounts)
        .match_requests(|r| r.next_token().is_none())
        .then_output(move || {
            aws_sdk_organizations::operation::list_accounts::ListAccountsOutput::builder()
                .accounts(account("111111111111").state(AccountState::Active).build())
                .accounts(
                    account("222222222222")
                        .status(AccountStatus::Active)
                        .state(AccountState::PendingClosure)
                        .build(),
                )
                .accounts(account("333333333333").state(AccountState::Closed).build())
                .next_token("page-2")
                .build()
        });
    let page2 = mock!(Organizations::list_accounts)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(move || {
            aws_sdk_organizations::operation::list_accounts::ListAccountsOutput::builder()
                .accounts(
                    account("444444444444")
                        .status(AccountStatus::Suspended)
                        .build(),
                )
                .accounts(
                    account("555555555555")
                        .status(AccountStatus::Active)
                        .build(),
                )
                .build()
        });
    let client = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&page1, &page2]);
    let directory = AwsOrganizations::new(client, RetryPolicy::fast());
    let listed = directory.accounts().await.unwrap();
    let states: Vec<(&str, &str)> = listed
        .iter()
        .map(|a| (a.id.as_str(), a.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("111111111111", "ACTIVE"),
            ("222222222222", "PENDING_CLOSURE"),
            ("333333333333", "CLOSED"),
            ("444444444444", "SUSPENDED"),
            ("555555555555", "ACTIVE"),
        ]
    );
    let config = Config::from_toml(ORG).unwrap();
    let members = dormant::app::accounts::Members::new(&config, "999999999999", "aws");
    let chosen = members.list(Some(&directory)).await.unwrap();
    let ids: Vec<&str> = chosen.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["111111111111", "555555555555"]);
}

fn scheduled_sweep(id: &str) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-03-05T03:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {"action": "sweep"}
    })
}

async fn queue(controller: &str) -> (Sqs, String) {
    let controller = Account::existing(controller).await;
    let (url, _) = controller.queue("dormant-sweep").await;
    (Sqs::new(&controller.sdk().await), url)
}

async fn drain(sqs: &Sqs, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            return bodies;
        }
        for m in out.messages() {
            bodies.push(m.body().unwrap().to_string());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_fanned_out_sweep_queues_one_message_per_active_account_and_sweeps_nothing_itself() {
    // Eleven active accounts: two SendMessageBatch requests (ten at most per batch).
    let org = organization(11).await;
    let assembly = assembled(&org, ORG).await;
    let (sqs, url) = queue(&org.controller).await;
    let fanout = FanOut {
        members: assembly.factory.members.clone(),
        directory: assembly.factory.directory(),
        queue: assembly.factory.sweep_queue(&url),
    };
    let rules = ClassifyRules::from_config(&Config::from_toml(ORG).unwrap());
    let run = format!("sweep-{}", org.controller);
    let report = handle_event(
        &scheduled_sweep(&run),
        &assembly.fleet,
        &rules,
        Some(&fanout as &dyn SweepFanOut),
        Utc::now(),
    )
    .await
    .unwrap();

    assert_eq!(sorted(&report.queued), sorted(&org.active));
    assert_eq!(
        report.run.evaluated, 0,
        "the accounts are swept by the queue's consumers"
    );
    let mut queued: Vec<String> = drain(&sqs, &url)
        .await
        .iter()
        .map(|b| {
            let r = decode(b).unwrap();
            assert_eq!(r.run, run);
            r.account
        })
        .collect();
    queued.sort();
    assert_eq!(
        queued,
        sorted(&org.active),
        "exactly one message per active account"
    );
    assert_eq!(
        emulator()
            .requests(&org.controller)
            .iter()
            .filter(|r| r["operation"] == "SendMessageBatch")
            .count(),
        2
    );
    for a in &org.active {
        assert!(!noticed(a).await, "{a} was swept by the producer");
    }
}

fn sqs_event(messages: &[(&str, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id, "receiptHandle": format!("handle-{id}"), "body": body,
                "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dormant-sweep",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

fn request(account: &str) -> String {
    json!({"dormant": "sweep-account", "account": account, "run": "run-1"}).to_string()
}

#[tokio::test]
async fn a_batch_of_sweep_requests_sweeps_its_accounts_and_hands_back_only_the_failed_one() {
    let org = organization(3).await;
    let assembly = assembled(&org, ORG).await;
    let (a, denied, c) = (&org.active[0], &org.active[1], &org.active[2]);
    let rules = ClassifyRules::from_config(&Config::from_toml(ORG).unwrap());
    // As if the denied account had been unreachable at cold start: its engine is built again on
    // demand (a retried message gets a fresh AssumeRole), and this AssumeRole is denied.
    let mut fleet_without = Vec::new();
    for e in &assembly.fleet.engines {
        if e.account() != denied.as_str() {
            fleet_without.push(e.clone());
        }
    }
    let partial = dormant::app::fleet::Fleet {
        engines: fleet_without,
        unreachable: vec![(denied.clone(), "AssumeRole denied at start-up".into())],
        concurrency: 4,
        analyzer: None,
    };
    let engines = OnDemand::new(&assembly.factory, Some(&partial));
    let cold = ColdStart {
        function: dormant::lambda::Function::Controller,
        answers: None,
        fleet: &assembly.fleet,
        rules: &rules,
        engines: &engines,
        fanout: None,
        concurrency: 4,
    };
    emulator().inject_fault(&org.controller, "sts", "AssumeRole", Fault::AccessDenied, 1);
    let event = sqs_event(&[
        ("m-a", request(a)),
        ("m-denied", request(denied)),
        ("m-c", request(c)),
        ("m-a-again", request(a)),
        (
            "m-bad",
            r#"{"dormant":"sweep-account","account":"nope","run":"r"}"#.to_string(),
        ),
    ]);
    let answer = invoke(event, &cold, Utc::now()).await.unwrap();
    emulator().clear_faults(&org.controller);

    // Only the account whose AssumeRole was denied goes back to the queue. The malformed message
    // is dropped (a retry cannot fix it).
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "m-denied"}]})
    );
    assert!(noticed(a).await && noticed(c).await);
    assert!(!noticed(denied).await);
    // State in the controller's table, partitioned by account: swept once though asked twice.
    let engine = assembly.fleet.engine(a).unwrap();
    assert_eq!(engine.list(None).await.unwrap().len(), 1);
    assert_eq!(
        emulator().count_requests(a, "GetAccountAuthorizationDetails"),
        1
    );

    // The same batch through the library call shows why each message ended where it did.
    let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(sqs_event(&[
        ("m-denied", request(denied)),
        ("m-bad", "{not json".to_string()),
        ("m-own", request(&org.controller)),
    ]))
    .unwrap();
    let report = dormant::app::sweep_queue::sweep_requested(&event, &engines, 4, Utc::now()).await;
    assert!(
        report.retry.is_empty(),
        "the retry gets a fresh AssumeRole: {report:?}"
    );
    assert!(noticed(denied).await);
    assert_eq!(report.rejected.len(), 2, "{:?}", report.rejected);
    assert_eq!(report.rejected[0].message_id, "m-bad");
    // The controller's own account is not swept unless organization.include_own_account.
    assert_eq!(report.rejected[1].message_id, "m-own");
    assert!(report.rejected[1]
        .reason
        .contains("not one dormant manages"));
    assert!(
        report.rejected[0].reason.contains("m-bad")
            && report.rejected[0].reason.contains("not a dormant message"),
        "{:?}",
        report.rejected
    );
}
