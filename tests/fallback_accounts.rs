#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! The SSM fallback acts in the account the step is about (docs/design.md, 'SSM Automation
//! fallback'): two emulated accounts hold a role of the same name; the member account's step runs
//! through the member's own SSM, as the member's automation role, and is committed only when IAM
//! in that account shows it landed. The controller account's twin is never touched by it.

use crate::support::account::Account;
use crate::support::emulator::emulator;
use aws_sdk_iam::Client;
use chrono::{Duration, Utc};
use dormant::adapters::iam::AwsIam;
use dormant::adapters::retry::RetryPolicy;
use dormant::config::Config;
use dormant::domain::{quarantine, Principal, Stage, Subject};
use dormant::ports::{Iam, Store};
use dormant::wiring::{assemble, Actor};

const ANYONE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;

async fn iam(account: &str) -> Client {
    Client::new(&emulator().sdk_config_for(account).await)
}

async fn role(account: &str, name: &str, days_old: i64) {
    iam(account)
        .await
        .create_role()
        .role_name(name)
        .assume_role_policy_document(ANYONE)
        .send()
        .await
        .unwrap();
    emulator().backdate_role(
        account,
        name,
        Some(Utc::now() - Duration::days(days_old)),
        None,
    );
}

async fn has_deny(account: &str, name: &str) -> bool {
    let facts = AwsIam::new(iam(account).await, account, RetryPolicy::fast())
        .fresh_facts(dormant::domain::PrincipalKind::Role, name)
        .await
        .unwrap()
        .unwrap();
    facts.has_quarantine_policy
}

#[tokio::test]
async fn a_member_accounts_step_runs_in_the_member_account_and_commits_only_once_it_landed() {
    // The controller's account, with dormant's table.
    let controller = Account::new().await.id;
    let member = emulator().new_account();
    let sdk = emulator().sdk_config_for(&controller).await;
    role(&member, "dormant-member", 1).await;
    role(&controller, "twin", 200).await;
    role(&member, "twin", 200).await;
    let config = Config::from_toml(&format!(
        "[[accounts]]\nid = \"{controller}\"\n\
         [[accounts]]\nid = \"{member}\"\nrole = \"arn:aws:iam::{member}:role/dormant-member\"\n\
         [fallback]\nssm_steps = [\"quarantine\"]\n\
         automation_role = \"arn:aws:iam::{controller}:role/dormant-automation\"\n"
    ))
    .unwrap();
    let assembly = assemble(&config, &sdk, Actor::Controller, RetryPolicy::fast())
        .await
        .unwrap();
    let now = Utc::now();
    let fleet = &assembly.fleet;
    assert_eq!(fleet.sweep(now).await.run.failed(), 0);

    // Quarantine is due: each account's document starts in that account, as its own role.
    let day7 = now + Duration::days(7);
    let report = fleet.tick(day7).await.run;
    assert_eq!(report.failed(), 0, "{report:?}");
    for account in [&controller, &member] {
        let started = emulator().automations(account);
        assert_eq!(started.len(), 1, "{account}: {started:?}");
        let p = &started[0]["parameters"];
        assert_eq!(started[0]["document"], "Dormant-QuarantineIdentity");
        assert_eq!(p["PrincipalName"][0], "twin");
        assert_eq!(
            p["AutomationAssumeRole"][0],
            format!("arn:aws:iam::{account}:role/dormant-automation")
        );
    }

    // Both executions report success, but only the member's document changed anything: it
    // attached dormant's quarantine policy of the member account to the member's twin.
    iam(&member)
        .await
        .attach_role_policy()
        .role_name("twin")
        .policy_arn(quarantine::policy_arn("aws", &member))
        .send()
        .await
        .unwrap();
    let later = day7 + Duration::minutes(20);
    let report = fleet.tick(later).await.run;
    let engine = |account: &str| fleet.engine(account).unwrap();
    let stage = |record: Option<dormant::domain::Record>| record.map(|r| r.stage);
    let member_twin = Subject::whole(Principal::role(&member, "/", "twin"));
    let controller_twin = Subject::whole(Principal::role(&controller, "/", "twin"));
    assert_eq!(
        stage(engine(&member).store.load(&member_twin).await.unwrap()),
        Some(Stage::Quarantined),
        "{report:?}"
    );
    assert!(has_deny(&member, "twin").await);

    // The controller's execution said success and IAM says otherwise: a recorded failure, the
    // record stays noticed, and the controller's twin is as it was.
    let record = engine(&controller)
        .store
        .load(&controller_twin)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.stage, Stage::Noticed);
    let failure = report
        .actions
        .iter()
        .find(|a| a.identity.contains(&controller))
        .expect("the controller's step is reported");
    assert!(
        failure.reason.contains("reported success, but")
            && failure.reason.contains("no dormant deny policy"),
        "{failure:?}"
    );
    assert!(!has_deny(&controller, "twin").await);
    let history = engine(&controller)
        .store
        .history(&controller_twin)
        .await
        .unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.reason.contains("reported success, but")),
        "the audit trail says why: {history:?}"
    );
}
