#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Many accounts at once: dormant assumes a role in each member account (STS in the emulator),
//! sweeps them concurrently with a bound (measured at the emulator, as is the bound on
//! identities worked on at once), and one account that cannot be reached or keeps failing is
//! recorded without stopping the others.

use chrono::Utc;
use dormant::adapters::retry::RetryPolicy;
use dormant::config::Config;
use dormant::wiring::{assemble, Actor};

use crate::support::account::Account;
use crate::support::emulator::{emulator, Emulator, Fault};

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

/// The member accounts' IAM requests (the controller's own table is not one of them).
fn member_requests(members: &[String]) -> Vec<serde_json::Value> {
    members
        .iter()
        .flat_map(|m| emulator().requests(m))
        .filter(|r| r["service"] == "iam")
        .collect()
}

fn fleet_toml(head: &str, members: &[String]) -> String {
    let mut toml = format!("{head}\n");
    for m in members {
        toml.push_str(&format!(
            "[[accounts]]\nid = \"{m}\"\nrole = \"arn:aws:iam::{m}:role/dormant-member\"\n"
        ));
    }
    toml
}

/// `max_concurrent_accounts` measured at the emulator: with each member's bulk read slowed so
/// that accounts overlap, the most accounts with an IAM request in flight at one instant is
/// exactly the limit, for a limit of 1 and of 3 over 6 accounts.
#[tokio::test]
async fn the_fleet_sweeps_max_concurrent_accounts_at_a_time_and_never_more() {
    let controller = Account::new().await;
    let sdk = controller.sdk().await;
    let mut members = Vec::new();
    for _ in 0..6 {
        members.push(member_with_a_dormant_role().await);
    }
    for limit in [1, 3] {
        let config = Config::from_toml(&fleet_toml(
            &format!("max_concurrent_accounts = {limit}"),
            &members,
        ))
        .unwrap();
        let assembly = assemble(&config, &sdk, Actor::Controller, RetryPolicy::fast())
            .await
            .unwrap();
        for m in &members {
            emulator().clear_requests(m);
            let slow = Fault::Latency(std::time::Duration::from_millis(300));
            emulator().inject_fault(m, "iam", "GetAccountAuthorizationDetails", slow, 1);
        }
        let report = assembly.fleet.sweep(Utc::now()).await;
        assert_eq!(report.failed_accounts(), 0, "{report:?}");
        assert_eq!(report.accounts.len(), 6);
        for m in &members {
            assert!(
                emulator().faults(m).is_empty(),
                "{m}: the slow read was hit"
            );
        }
        let peak = Emulator::peak_in_flight(&member_requests(&members), |r| {
            r["account"].as_str().map(str::to_string)
        });
        assert_eq!(peak, limit, "accounts worked on at once, limit {limit}");
    }
}

/// `max_concurrent_identities` measured at the emulator: ten dormant roles in one member account,
/// each one's IAM requests slowed, limit 3: at most (and at some instant exactly) 3 roles have a
/// request in flight, in a sweep (the notices' tags) and in a tick (the quarantines' fresh reads).
#[tokio::test]
async fn max_concurrent_identities_holds_in_a_sweep_and_a_tick() {
    let controller = Account::new().await;
    let sdk = controller.sdk().await;
    let member = Account::without_table().await;
    member.create_role("/", "dormant-member", &[]).await;
    let roles: Vec<String> = (0..10).map(|n| format!("idle-{n}")).collect();
    for role in &roles {
        member.role(role, 200, &[]).await;
    }
    let members = vec![member.id.clone()];
    let config = Config::from_toml(&fleet_toml(
        "max_concurrent_identities = 3\n[breaker]\nmax_actions_per_run = 100\nmin_count = 100",
        &members,
    ))
    .unwrap();
    let assembly = assemble(&config, &sdk, Actor::Controller, RetryPolicy::fast())
        .await
        .unwrap();
    let by_role = |r: &serde_json::Value| {
        r["RoleName"]
            .as_str()
            .filter(|n| n.starts_with("idle-"))
            .map(str::to_string)
    };
    let slow = Fault::Latency(std::time::Duration::from_millis(150));
    let now = Utc::now();
    for (run, op) in [("sweep", "TagRole"), ("tick", "GetRole")] {
        emulator().clear_requests(&member.id);
        emulator().inject_fault(&member.id, "iam", op, slow, 10);
        let report = if run == "sweep" {
            assembly.fleet.sweep(now).await
        } else {
            assembly.fleet.tick(now + chrono::Duration::days(7)).await
        };
        assert_eq!(report.run.failed(), 0, "{run}: {report:?}");
        assert_eq!(report.run.actions.len(), 10, "{run}: a step for every role");
        assert!(
            emulator().faults(&member.id).is_empty(),
            "{run}: every {op} was slowed"
        );
        let peak = Emulator::peak_in_flight(&member_requests(&members), by_role);
        assert_eq!(peak, 3, "{run}: roles worked on at once");
    }
}
