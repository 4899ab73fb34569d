#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! The Lambda's cold start at scale (docs/design.md, 'Multi-account and scale'): a container that
//! consumes queued sweep requests assumes a role only in the accounts its messages name, reuses
//! that engine for a while, and builds the whole fleet only when an EventBridge event needs it.

use crate::support::account::Account;
use crate::support::emulator::emulator;
use aws_sdk_iam::Client;
use chrono::{Duration, Utc};
use dormant::adapters::retry::RetryPolicy;
use dormant::config::Config;
use dormant::inbound::eventbridge::ClassifyRules;
use dormant::lambda::{invoke, invoke_within, ColdStart};
use dormant::wiring::{Actor, EngineFactory, LazyFleet, OnDemand};
use serde_json::{json, Value};

const ANYONE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;

async fn member() -> String {
    let account = emulator().new_account();
    let iam = Client::new(&emulator().sdk_config_for(&account).await);
    for role in ["dormant-member", "forgotten"] {
        iam.create_role()
            .role_name(role)
            .assume_role_policy_document(ANYONE)
            .send()
            .await
            .unwrap();
    }
    emulator().backdate_role(
        &account,
        "forgotten",
        Some(Utc::now() - Duration::days(200)),
        None,
    );
    account
}

fn batch(account: &str, message: &str) -> Value {
    let body = json!({"dormant": "sweep-account", "account": account, "run": "run-1"}).to_string();
    json!({"Records": [{
        "messageId": message, "receiptHandle": format!("handle-{message}"), "body": body,
        "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dormant-sweep",
        "awsRegion": "us-east-1"
    }]})
}

#[tokio::test]
async fn queued_sweeps_assume_only_the_accounts_they_name_and_the_fleet_waits_for_an_event() {
    // The controller's account, with dormant's table.
    let controller = Account::new().await.id;
    let sdk = emulator().sdk_config_for(&controller).await;
    let mut members = Vec::new();
    for _ in 0..5 {
        members.push(member().await);
    }
    let mut toml = String::new();
    for m in &members {
        toml.push_str(&format!(
            "[[accounts]]\nid = \"{m}\"\nrole = \"arn:aws:iam::{m}:role/dormant-member\"\n"
        ));
    }
    let config = Config::from_toml(&toml).unwrap();
    emulator().clear_requests(&controller);

    let factory = EngineFactory::new(&config, &sdk, Actor::Controller, RetryPolicy::fast())
        .await
        .unwrap();
    let fleet = LazyFleet::new(&factory);
    let engines = OnDemand::new(&factory, None);
    let rules = ClassifyRules::from_config(&config);
    let cold = ColdStart {
        function: dormant::lambda::Function::Controller,
        answers: None,
        fleet: &fleet,
        rules: &rules,
        engines: &engines,
        fanout: None,
        concurrency: 4,
    };
    let assumed = || emulator().count_requests(&controller, "AssumeRole");
    assert_eq!(assumed(), 0, "the cold start assumes nothing");

    let answer = invoke(batch(&members[0], "m-1"), &cold, Utc::now())
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    assert_eq!(assumed(), 1, "one message, one account, one AssumeRole");
    invoke(batch(&members[0], "m-2"), &cold, Utc::now())
        .await
        .unwrap();
    assert_eq!(assumed(), 1, "the engine is reused within its time to live");

    // An event dormant ignores needs no account at all.
    let ignored = json!({"version": "0", "id": "other-1", "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2", "account": controller, "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {"state": "running"}});
    invoke(ignored, &cold, Utc::now()).await.unwrap();
    assert_eq!(assumed(), 1, "an ignored event assumes nothing");

    // An event that needs every account builds the fleet, once.
    let tick = json!({"version": "0", "id": "tick-1", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": controller, "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {"action": "tick"}});
    invoke(tick.clone(), &cold, Utc::now()).await.unwrap();
    assert_eq!(assumed(), 1 + members.len());
    let mut again = tick;
    again["id"] = Value::from("tick-2");
    invoke(again, &cold, Utc::now()).await.unwrap();
    assert_eq!(assumed(), 1 + members.len(), "the fleet is built once");

    // With no time left before the Lambda's deadline an invocation stops at once, retryably,
    // having changed nothing.
    let mut late = json!({"version": "0", "id": "tick-late", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": controller, "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {"action": "sweep"}});
    late["id"] = Value::from("sweep-late");
    let stopped = invoke_within(late, &cold, Utc::now(), std::time::Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(stopped.is_retryable(), "{stopped}");
    assert!(stopped.to_string().contains("deadline"), "{stopped}");

    // Past its time to live an engine is built again.
    let short = OnDemand::new(&factory, None).with_ttl(std::time::Duration::ZERO);
    let cold = ColdStart {
        function: dormant::lambda::Function::Controller,
        answers: None,
        engines: &short,
        ..cold
    };
    for n in 0..2 {
        invoke(
            batch(&members[1], &format!("m-short-{n}")),
            &cold,
            Utc::now(),
        )
        .await
        .unwrap();
    }
    assert_eq!(assumed(), 1 + members.len() + 2);
}
