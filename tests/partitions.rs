#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Partitions (docs/design.md, 'Multi-account and scale'): in an account of `aws-cn` every ARN
//! dormant builds, stores, reports and publishes is an `aws-cn` one, taken from the caller; an
//! event from a China region names its identities in that partition; a member role in another
//! partition than the controller's is refused for that account, clearly, and the others go on.

use crate::support::account::Account;
use crate::support::emulator::emulator;
use aws_config::Region;
use aws_config::SdkConfig;
use aws_sdk_iam::Client;
use chrono::{Duration, Utc};
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::retry::RetryPolicy;
use dormant::config::Config;
use dormant::domain::{Principal, Stage, Subject};
use dormant::inbound::eventbridge::{classification_json, classify, ClassifyRules};
use dormant::ports::Store;
use dormant::wiring::{assemble, Actor};
use serde_json::{json, Value};

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;

async fn in_region(account: &str, region: &'static str) -> SdkConfig {
    emulator()
        .sdk_config_for(account)
        .await
        .to_builder()
        .region(Region::new(region))
        .build()
}

#[tokio::test]
async fn the_ladder_in_a_china_region_names_everything_in_aws_cn() {
    let account = emulator().new_account();
    let sdk = in_region(&account, "cn-north-1").await;
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        "dormant",
        RetryPolicy::fast(),
    )
    .init()
    .await
    .unwrap();
    Client::new(&sdk)
        .create_role()
        .role_name("old-cn")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    let created = Utc::now() - Duration::days(200);
    emulator()
        .try_backdate(
            &json!({"account": account, "kind": "role", "name": "old-cn",
            "region": "cn-north-1", "created": created.to_rfc3339()}),
        )
        .unwrap();

    let assembly = assemble(
        &Config::from_toml("").unwrap(),
        &sdk,
        Actor::Controller,
        RetryPolicy::fast(),
    )
    .await
    .unwrap();
    assert!(
        assembly.caller_arn.starts_with("arn:aws-cn:"),
        "moto answers as aws-cn: {}",
        assembly.caller_arn
    );
    let now = Utc::now();
    let sweep = assembly.fleet.sweep(now).await;
    let arn = format!("arn:aws-cn:iam::{account}:role/old-cn");
    let noticed: Vec<&str> = sweep
        .run
        .actions
        .iter()
        .map(|a| a.identity.as_str())
        .collect();
    assert_eq!(noticed, [arn.as_str()], "{sweep:?}");

    let tick = assembly.fleet.tick(now + Duration::days(7)).await;
    assert_eq!(tick.run.actions[0].identity, arn, "{tick:?}");
    let subject = Subject::whole(Principal::role(&account, "/", "old-cn").in_partition("aws-cn"));
    let engine = assembly.fleet.engine(&account).unwrap();
    let record = engine.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Quarantined);
    assert_eq!(record.subject.id(), arn, "stored under its aws-cn id");
    // Keyed partition-free: what a version that wrote `arn:aws:` ids stored is found again.
    let legacy = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        "dormant",
        RetryPolicy::fast(),
    );
    let aws_form = Subject::whole(Principal::role(&account, "/", "old-cn"));
    let as_before = legacy.load(&aws_form).await.unwrap().unwrap();
    assert_eq!(as_before.version, record.version, "one item, one key");

    // What the CLI prints and takes: the aws-cn ARN finds it; an aws one is refused, saying why.
    let status = engine
        .status(&arn.parse().unwrap(), now + Duration::days(7))
        .await
        .unwrap();
    assert_eq!(status.identity, arn);
    let wrong = format!("arn:aws:iam::{account}:role/old-cn");
    let refused = engine
        .status(&wrong.parse().unwrap(), now)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("partition aws"), "{refused}");
}

#[test]
fn an_event_from_a_china_or_govcloud_region_names_identities_in_its_partition() {
    let rules = ClassifyRules::from_config(&Config::from_toml("").unwrap());
    let path = format!(
        "{}/tests/fixtures/events/access-analyzer-unused-role.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (region, partition) in [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")] {
        let mut e = event.clone();
        e["region"] = Value::from(region);
        let resource = e["detail"]["resource"].as_str().unwrap().to_string();
        e["detail"]["resource"] =
            Value::from(resource.replacen("arn:aws:", &format!("arn:{partition}:"), 1));
        let verdict = classification_json(&classify(&e, &rules));
        assert_eq!(verdict["outcome"], "candidate", "{verdict}");
        assert!(
            verdict["identity"]
                .as_str()
                .unwrap()
                .starts_with(&format!("arn:{partition}:iam::")),
            "{verdict}"
        );
    }
}

/// Misrouted or cross-partition roles: each refused for its account with a clear reason, recorded
/// in the run's `accounts`, while the good account is swept.
#[tokio::test]
async fn a_member_role_in_another_partition_or_landing_in_another_account_is_refused_for_that_account_only(
) {
    // The controller's account, with dormant's table.
    let controller = Account::new().await.id;
    let sdk = emulator().sdk_config_for(&controller).await;
    let (good, gov, misrouted) = (
        emulator().new_account(),
        emulator().new_account(),
        emulator().new_account(),
    );
    for account in [&good, &gov, &misrouted] {
        Client::new(&emulator().sdk_config_for(account).await)
            .create_role()
            .role_name("dormant-member")
            .assume_role_policy_document(TRUST)
            .send()
            .await
            .unwrap();
    }
    let config = Config::from_toml(&format!(
        "[[accounts]]\nid = \"{good}\"\nrole = \"arn:aws:iam::{good}:role/dormant-member\"\n\
         [[accounts]]\nid = \"{gov}\"\nrole = \"arn:aws-us-gov:iam::{gov}:role/dormant-member\"\n\
         [[accounts]]\nid = \"{misrouted}\"\nrole = \"arn:aws:iam::{misrouted}:role/dormant-member\"\n"
    ))
    .unwrap();
    // The misrouted role's credentials say they are the good account's.
    let (code, body) = emulator().control(
        "POST",
        "/_dormant/sts/answer-as",
        Some(&json!({"account": misrouted, "answer_as": good})),
    );
    assert_eq!(code, 200, "{body}");
    emulator().clear_requests(&controller);
    let assembly = assemble(&config, &sdk, Actor::Controller, RetryPolicy::fast())
        .await
        .unwrap();
    assert_eq!(assembly.fleet.engines.len(), 1);
    assert_eq!(assembly.fleet.engines[0].account(), good);
    let why = |account: &str| {
        assembly
            .fleet
            .unreachable
            .iter()
            .find(|(a, _)| a == account)
            .map(|(_, why)| why.clone())
            .unwrap_or_default()
    };
    assert!(why(&gov).contains("across partitions"), "{}", why(&gov));
    assert!(
        why(&misrouted).contains(&format!(
            "answers as account {good}, not the configured {misrouted}"
        )),
        "{}",
        why(&misrouted)
    );
    assert_eq!(
        emulator().count_requests(&controller, "AssumeRole"),
        2,
        "no AssumeRole is even tried across partitions"
    );
    let report = assembly.fleet.sweep(Utc::now()).await;
    for refused in [&gov, &misrouted] {
        let line = report
            .accounts
            .iter()
            .find(|a| &a.account == refused)
            .unwrap();
        assert!(!line.ok && line.error.is_some(), "{report:?}");
    }
    assert!(report.accounts.iter().any(|a| a.account == good && a.ok));
}
