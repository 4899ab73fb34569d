#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Many accounts at once: dormant assumes a role in each member account (STS in the emulator),
//! sweeps them concurrently with a bound, and one account that cannot be reached or keeps
//! failing is recorded without stopping the others.

mod support;

use aws_sdk_iam::Client;
use chrono::{Duration, Utc};
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::retry::RetryPolicy;
use dormant::config::Config;
use dormant::wiring::{assemble, Actor};
use support::emulator::{emulator, Fault};

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;

async fn member_with_a_dormant_role() -> String {
    let account = emulator().new_account();
    let iam = Client::new(&emulator().sdk_config_for(&account).await);
    iam.create_role()
        .role_name("dormant-member")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    iam.create_role()
        .role_name("forgotten")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    emulator().backdate_role(
        &account,
        "forgotten",
        Some(Utc::now() - Duration::days(200)),
        None,
    );
    account
}

#[tokio::test]
async fn fifty_accounts_swept_concurrently_and_one_denied_assume_role_is_recorded() {
    let controller = emulator().new_account();
    let sdk = emulator().sdk_config_for(&controller).await;
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        "dormant",
        RetryPolicy::fast(),
    )
    .init()
    .await
    .unwrap();
    let mut members = Vec::new();
    for _ in 0..50 {
        members.push(member_with_a_dormant_role().await);
    }
    let mut toml = String::from("max_concurrent_accounts = 8\n");
    for m in &members {
        toml.push_str(&format!(
            "[[accounts]]\nid = \"{m}\"\nrole = \"arn:aws:iam::{m}:role/dormant-member\"\n"
        ));
    }
    let config = Config::from_toml(&toml).unwrap();
    emulator().inject_fault(&controller, "sts", "AssumeRole", Fault::AccessDenied, 1);

    let assembly = assemble(&config, &sdk, Actor::Controller, RetryPolicy::fast())
        .await
        .unwrap();
    assert_eq!(assembly.fleet.engines.len(), 49);
    assert_eq!(assembly.fleet.unreachable.len(), 1);
    let (denied, why) = &assembly.fleet.unreachable[0];
    assert!(
        why.contains("AssumeRole") && why.contains("AccessDenied"),
        "{why}"
    );

    let report = assembly.fleet.sweep(Utc::now()).await;
    assert_eq!(report.accounts.len(), 50);
    assert_eq!(report.failed_accounts(), 1);
    let failed = report.accounts.iter().find(|a| !a.ok).unwrap();
    assert_eq!(&failed.account, denied);
    assert_eq!(
        report.run.actions.len(),
        49,
        "one notice per reachable account"
    );

    for m in members.iter().filter(|m| *m != denied) {
        let iam = Client::new(&emulator().sdk_config_for(m).await);
        let tags = iam
            .list_role_tags()
            .role_name("forgotten")
            .send()
            .await
            .unwrap();
        assert!(
            tags.tags()
                .iter()
                .any(|t| t.key() == "dormant:stage" && t.value().starts_with("noticed ")),
            "{m}"
        );
        let own = iam
            .list_role_tags()
            .role_name("dormant-member")
            .send()
            .await
            .unwrap();
        assert!(
            own.tags().is_empty(),
            "{m}: the role dormant assumes is its own and never touched"
        );
    }
    // State lives in the controller's table, partitioned by account.
    let engine = assembly
        .fleet
        .engine(&members[if members[0] == *denied { 1 } else { 0 }])
        .unwrap();
    assert_eq!(engine.list(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_account_in_a_throttling_storm_fails_alone() {
    let controller = emulator().new_account();
    let sdk = emulator().sdk_config_for(&controller).await;
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        "dormant",
        RetryPolicy::fast(),
    )
    .init()
    .await
    .unwrap();
    let (calm, stormy) = (
        member_with_a_dormant_role().await,
        member_with_a_dormant_role().await,
    );
    let toml = format!(
        "[[accounts]]\nid = \"{calm}\"\nrole = \"arn:aws:iam::{calm}:role/dormant-member\"\n[[accounts]]\nid = \"{stormy}\"\nrole = \"arn:aws:iam::{stormy}:role/dormant-member\"\n"
    );
    let assembly = assemble(
        &Config::from_toml(&toml).unwrap(),
        &sdk,
        Actor::Controller,
        RetryPolicy::fast(),
    )
    .await
    .unwrap();
    emulator().inject_fault(
        &stormy,
        "iam",
        "GetAccountAuthorizationDetails",
        Fault::Throttle,
        100,
    );
    let report = assembly.fleet.sweep(Utc::now()).await;
    emulator().clear_faults(&stormy);
    let by = |a: &str| {
        report
            .accounts
            .iter()
            .find(|o| o.account == a)
            .unwrap()
            .clone()
    };
    assert!(by(&calm).ok);
    assert!(!by(&stormy).ok);
    assert!(by(&stormy).error.unwrap().contains("Throttling"));
    assert_eq!(report.run.actions.len(), 1);
}
