#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Many accounts at once: dormant assumes a role in each member account (STS in the emulator),
//! sweeps them concurrently with a bound, and one account that cannot be reached or keeps
//! failing is recorded without stopping the others.

use chrono::Utc;
use dormant::adapters::retry::RetryPolicy;
use dormant::config::Config;
use dormant::wiring::{assemble, Actor};

use crate::support::account::Account;
use crate::support::emulator::{emulator, Fault};

/// A member account with the role dormant assumes in it and one role unused for 200 days.
async fn member_with_a_dormant_role() -> String {
    let member = Account::without_table().await;
    member.create_role("/", "dormant-member", &[]).await;
    member.role("forgotten", 200, &[]).await;
    member.id
}

/// Fifty accounts, one of whose AssumeRole is denied, plus one configured with a role in another
/// partition and one whose role answers as another account: each of the three is refused alone,
/// with its reason, and the 49 others are swept.
#[tokio::test]
async fn fifty_accounts_swept_concurrently_and_one_denied_assume_role_is_recorded() {
    let controller = Account::new().await;
    let sdk = controller.sdk().await;
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
    let (gov, misrouted) = (
        member_with_a_dormant_role().await,
        member_with_a_dormant_role().await,
    );
    toml.push_str(&format!(
        "[[accounts]]\nid = \"{gov}\"\nrole = \"arn:aws-us-gov:iam::{gov}:role/dormant-member\"\n\
         [[accounts]]\nid = \"{misrouted}\"\nrole = \"arn:aws:iam::{misrouted}:role/dormant-member\"\n"
    ));
    let (code, body) = emulator().control(
        "POST",
        "/_dormant/sts/answer-as",
        Some(&serde_json::json!({"account": misrouted, "answer_as": members[0]})),
    );
    assert_eq!(code, 200, "{body}");
    let config = Config::from_toml(&toml).unwrap();
    emulator().inject_fault(&controller.id, "sts", "AssumeRole", Fault::AccessDenied, 1);

    let assembly = assemble(&config, &sdk, Actor::Controller, RetryPolicy::fast())
        .await
        .unwrap();
    assert_eq!(assembly.fleet.engines.len(), 49);
    assert_eq!(assembly.fleet.unreachable.len(), 3);
    let refused = |account: &str| {
        assembly
            .fleet
            .unreachable
            .iter()
            .find(|(a, _)| a == account)
            .map(|(_, why)| why.clone())
    };
    assert!(refused(&gov).unwrap().contains("across partitions"));
    assert!(refused(&misrouted).unwrap().contains("not the configured"));
    let (denied, why) = assembly
        .fleet
        .unreachable
        .iter()
        .find(|(a, _)| *a != gov && *a != misrouted)
        .unwrap();
    assert!(
        why.contains("AssumeRole") && why.contains("AccessDenied"),
        "{why}"
    );

    let report = assembly.fleet.sweep(Utc::now()).await;
    assert_eq!(report.accounts.len(), 52);
    assert_eq!(report.failed_accounts(), 3);
    for failed in report.accounts.iter().filter(|a| !a.ok) {
        assert!(
            [denied.as_str(), gov.as_str(), misrouted.as_str()].contains(&failed.account.as_str()),
            "{failed:?}"
        );
    }
    assert_eq!(
        report.run.actions.len(),
        49,
        "one notice per reachable account"
    );

    for m in members.iter().filter(|m| *m != denied) {
        let member = Account::existing(m).await;
        let tags = member.role_tags("forgotten").await;
        assert!(
            tags.iter()
                .any(|(k, v)| k == "dormant:stage" && v.starts_with("noticed ")),
            "{m}"
        );
        let own = member.role_tags("dormant-member").await;
        assert!(
            own.is_empty(),
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
    let controller = Account::new().await;
    let sdk = controller.sdk().await;
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
