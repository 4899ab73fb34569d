#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Hostile input across accounts (docs/design.md, 'Event sources'): Security Hub aggregates
//! findings, and any member may import one, so an event from account A can name an identity in
//! account B. It is acted on only when B is managed and not exempt, judged with B's credentials,
//! and the audit trail says which account sent it.

use crate::support::account::Account;
use crate::support::emulator::emulator;
use aws_sdk_iam::Client;
use chrono::{Duration, Utc};
use dormant::adapters::retry::RetryPolicy;
use dormant::app::event::handle_event;
use dormant::config::Config;
use dormant::domain::{Outcome, Principal, Stage, Subject};
use dormant::inbound::eventbridge::ClassifyRules;
use dormant::ports::Store;
use dormant::wiring::{assemble, Actor, Assembly};
use serde_json::Value;

const ANYONE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;

async fn iam(account: &str) -> Client {
    Client::new(&emulator().sdk_config_for(account).await)
}

/// An account with dormant's member role and the unused user the finding names.
async fn account_with_unused_user() -> String {
    let account = emulator().new_account();
    let iam = iam(&account).await;
    iam.create_role()
        .role_name("dormant-member")
        .assume_role_policy_document(ANYONE)
        .send()
        .await
        .unwrap();
    iam.create_user()
        .path("/analytics/")
        .user_name("report-writer")
        .send()
        .await
        .unwrap();
    emulator().backdate_user(
        &account,
        "report-writer",
        Some(Utc::now() - Duration::days(200)),
        None,
    );
    account
}

/// Security Hub's IAM.22 finding, sent from `sender` about `report-writer` in `about`.
fn finding(sender: &str, about: &str, id: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/events/securityhub-iam22-user-member-account.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("111122223333", sender)
        .replace("123456789012", about);
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["id"] = Value::from(id);
    event
}

async fn controller_with(members: &[&str], extra: &str) -> (String, Assembly) {
    // The controller's account, with dormant's table.
    let controller = Account::new().await.id;
    let sdk = emulator().sdk_config_for(&controller).await;
    let mut toml = format!("{extra}\n[[accounts]]\nid = \"{controller}\"\n");
    for m in members {
        toml.push_str(&format!(
            "[[accounts]]\nid = \"{m}\"\nrole = \"arn:aws:iam::{m}:role/dormant-member\"\n"
        ));
    }
    let config = Config::from_toml(&toml).unwrap();
    let assembly = assemble(&config, &sdk, Actor::Controller, RetryPolicy::fast())
        .await
        .unwrap();
    (controller, assembly)
}

async fn user_tags(account: &str) -> Vec<String> {
    iam(account)
        .await
        .list_user_tags()
        .user_name("report-writer")
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| t.key().to_string())
        .collect()
}

#[tokio::test]
async fn an_event_about_another_account_is_judged_there_and_the_audit_names_both() {
    let member = account_with_unused_user().await;
    let unmanaged = account_with_unused_user().await;
    let (controller, assembly) = controller_with(&[&member], "").await;
    let rules = ClassifyRules::from_config(&Config::from_toml("").unwrap());
    let now = Utc::now();

    // About a managed member account: noticed there, with the member's credentials.
    let report = handle_event(
        &finding(&controller, &member, "e-member"),
        &assembly.fleet,
        &rules,
        None,
        now,
    )
    .await
    .unwrap();
    assert_eq!(report.run.failed(), 0, "{report:?}");
    let subject = Subject::whole(Principal::user(&member, "/analytics/", "report-writer"));
    let engine = assembly.fleet.engine(&member).unwrap();
    let record = engine.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Noticed);
    assert!(user_tags(&member)
        .await
        .contains(&"dormant:stage".to_string()));
    let history = engine.store.history(&subject).await.unwrap();
    let notice = history.iter().find(|h| h.step == "notice").unwrap();
    assert_eq!(notice.event_id.as_deref(), Some("e-member"));
    assert!(
        notice.reason.contains(&format!(
            "event sent from account {controller} about account {member}"
        )),
        "the audit entry names both accounts: {}",
        notice.reason
    );

    // About an account dormant does not manage: reported, nothing touched anywhere.
    emulator().clear_requests(&unmanaged);
    let report = handle_event(
        &finding(&member, &unmanaged, "e-unmanaged"),
        &assembly.fleet,
        &rules,
        None,
        now,
    )
    .await
    .unwrap();
    assert_eq!(report.run.actions.len(), 1, "{report:?}");
    assert_eq!(report.run.actions[0].outcome, Outcome::Skipped);
    assert!(
        report.run.actions[0].reason.contains("not acted on"),
        "{report:?}"
    );
    assert!(user_tags(&unmanaged).await.is_empty());
    assert!(
        emulator()
            .requests(&unmanaged)
            .iter()
            .all(|r| r["operation"] == "ListUserTags"),
        "only this test's own read reached the unmanaged account"
    );
}

#[tokio::test]
async fn an_event_about_an_exempt_account_changes_nothing_there() {
    let member = account_with_unused_user().await;
    let (controller, assembly) = controller_with(
        &[&member],
        &format!("[exemptions]\naccounts = [\"{member}\"]"),
    )
    .await;
    let rules = ClassifyRules::from_config(&Config::from_toml("").unwrap());
    let report = handle_event(
        &finding(&controller, &member, "e-exempt"),
        &assembly.fleet,
        &rules,
        None,
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(report.run.failed(), 0, "{report:?}");
    assert!(
        report
            .run
            .actions
            .iter()
            .all(|a| a.outcome != Outcome::Done),
        "{report:?}"
    );
    assert!(user_tags(&member).await.is_empty());
}
