#![allow(clippy::disallowed_methods)] // moto stamps real wall-clock dates; tests backdate relative to them
//! The emulator harness itself: backdated dates, injected faults and per-test accounts as
//! the real AWS SDK sees them.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_iam::error::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::support::account::Account;
use crate::support::emulator::{emulator, Fault};

fn days_ago(days: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(days)
}

fn secs(t: Option<&aws_sdk_iam::primitives::DateTime>) -> Option<i64> {
    t.map(aws_sdk_iam::primitives::DateTime::secs)
}

#[tokio::test]
async fn backdated_role_dates_reach_the_sdk() {
    let a = Account::without_table().await;
    let (account, iam) = (a.id.clone(), &a.iam);
    a.create_role("/", "old-role", &[]).await;
    let (created, used) = (days_ago(120), days_ago(100));

    emulator().backdate_role(&account, "old-role", Some(created), Some(used));

    let role = iam
        .get_role()
        .role_name("old-role")
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    assert_eq!(secs(Some(&role.create_date)), Some(created.timestamp()));
    let last_used = role.role_last_used.expect("RoleLastUsed");
    assert_eq!(
        secs(last_used.last_used_date.as_ref()),
        Some(used.timestamp())
    );
    assert_eq!(last_used.region.as_deref(), Some("us-east-1"));
}

#[tokio::test]
async fn backdated_access_key_and_password_reach_the_sdk() {
    let a = Account::without_table().await;
    let (account, iam) = (a.id.clone(), &a.iam);
    iam.create_user().user_name("alice").send().await.unwrap();
    iam.create_login_profile()
        .user_name("alice")
        .password("Correct-Horse-9")
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("alice")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let (user_created, key_created, key_used, password_used) =
        (days_ago(400), days_ago(300), days_ago(95), days_ago(50));

    emulator().backdate_user(&account, "alice", Some(user_created), None);
    emulator().backdate_access_key(
        &account,
        "alice",
        &key.access_key_id,
        Some(key_created),
        Some(key_used),
    );
    emulator().backdate_password(&account, "alice", password_used);

    let key_last_used = iam
        .get_access_key_last_used()
        .access_key_id(&key.access_key_id)
        .send()
        .await
        .unwrap();
    let key_last_used = key_last_used.access_key_last_used.unwrap();
    assert_eq!(
        secs(key_last_used.last_used_date.as_ref()),
        Some(key_used.timestamp())
    );
    assert_eq!(key_last_used.service_name, "iam");
    let keys = iam
        .list_access_keys()
        .user_name("alice")
        .send()
        .await
        .unwrap()
        .access_key_metadata;
    assert_eq!(
        secs(keys[0].create_date.as_ref()),
        Some(key_created.timestamp())
    );
    let user = iam
        .get_user()
        .user_name("alice")
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    assert_eq!(
        secs(Some(&user.create_date)),
        Some(user_created.timestamp())
    );
    assert_eq!(
        secs(user.password_last_used.as_ref()),
        Some(password_used.timestamp())
    );
}

#[tokio::test]
async fn throttling_fails_without_retries_and_is_retried_with_them() {
    let a = Account::without_table().await;
    let account = a.id.clone();
    emulator().inject_fault(&account, "iam", "ListRoles", Fault::Throttle, 2);

    let err = a.iam.list_roles().send().await.unwrap_err();
    assert_eq!(err.code(), Some("Throttling"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));

    emulator().clear_requests(&account);
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(10));
    let patient =
        aws_sdk_iam::Client::new(&emulator().sdk_config_with_retry(&account, retry).await);
    patient
        .list_roles()
        .send()
        .await
        .expect("third attempt succeeds");

    let log = emulator().requests(&account);
    let list_roles: Vec<_> = log
        .iter()
        .filter(|r| r["operation"] == "ListRoles")
        .collect();
    assert_eq!(list_roles.len(), 2, "{log:#?}");
    assert!(list_roles.iter().all(|r| r["service"] == "iam"));
    assert_eq!(
        list_roles
            .iter()
            .filter(|r| r["fault"] == "throttle")
            .count(),
        1,
        "{log:#?}"
    );
    assert!(emulator().faults(&account).is_empty());
}

#[tokio::test]
async fn standard_retries_make_three_attempts_through_two_throttles() {
    let account = emulator().new_account();
    emulator().inject_fault(&account, "iam", "ListRoles", Fault::Throttle, 2);
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(10));
    let iam = aws_sdk_iam::Client::new(&emulator().sdk_config_with_retry(&account, retry).await);

    iam.list_roles()
        .send()
        .await
        .expect("third attempt succeeds");

    let log = emulator().requests(&account);
    assert_eq!(
        emulator().count_requests(&account, "ListRoles"),
        3,
        "{log:#?}"
    );
    assert_eq!(
        log.iter().filter(|r| r["fault"] == "throttle").count(),
        2,
        "{log:#?}"
    );
    assert_eq!(log.last().unwrap()["status"], 200);
}

#[tokio::test]
async fn access_denied_surfaces_with_its_code() {
    let a = Account::without_table().await;
    let (account, iam) = (a.id.clone(), &a.iam);
    a.create_role("/", "victim", &[]).await;
    emulator().inject_fault(&account, "iam", "PutRolePolicy", Fault::AccessDenied, 1);

    let put = || {
        iam.put_role_policy().role_name("victim").policy_name("deny-all").policy_document(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#,
    )
    };
    let err = put().send().await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    put().send().await.expect("the fault was used up");

    let log = emulator().requests(&account);
    let puts: Vec<_> = log
        .iter()
        .filter(|r| r["operation"] == "PutRolePolicy")
        .collect();
    assert_eq!(puts.len(), 2);
    assert_eq!(
        (puts[0]["fault"].as_str(), puts[0]["status"].as_u64()),
        (Some("access_denied"), Some(403))
    );
    assert_eq!(
        (puts[0]["RoleName"].as_str(), puts[0]["PolicyName"].as_str()),
        (Some("victim"), Some("deny-all"))
    );
}

#[tokio::test]
async fn dynamodb_throttling_is_a_modelled_retryable_error() {
    let account = emulator().new_account();
    let config = emulator().sdk_config_for(&account).await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    ddb.create_table()
        .table_name("ledger")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    emulator().inject_fault(&account, "dynamodb", "PutItem", Fault::Throttle, 2);
    let put = |ddb: &aws_sdk_dynamodb::Client| {
        ddb.put_item()
            .table_name("ledger")
            .item("pk", AttributeValue::S("a".into()))
    };

    let err = put(&ddb).send().await.unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
    assert!(err.into_service_error().is_throttling_exception());

    let retry = RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(Duration::from_millis(10));
    let patient =
        aws_sdk_dynamodb::Client::new(&emulator().sdk_config_with_retry(&account, retry).await);
    put(&patient)
        .send()
        .await
        .expect("retried past the second throttle");
    assert_eq!(emulator().count_requests(&account, "PutItem"), 3);
}

#[tokio::test]
async fn injected_latency_delays_but_does_not_fail() {
    let account = emulator().new_account();
    emulator().inject_fault(
        &account,
        "sts",
        "GetCallerIdentity",
        Fault::Latency(Duration::from_millis(300)),
        1,
    );
    let sts = aws_sdk_sts::Client::new(&emulator().sdk_config_for(&account).await);

    let started = std::time::Instant::now();
    let me = sts.get_caller_identity().send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(me.account.as_deref(), Some(account.as_str()));
}

#[tokio::test]
async fn accounts_do_not_see_each_other() {
    let (in_a, in_b) = (
        Account::without_table().await,
        Account::without_table().await,
    );
    let (a, b) = (in_a.id.clone(), in_b.id.clone());
    assert_ne!(a, b);
    let (iam_a, iam_b) = (&in_a.iam, &in_b.iam);
    in_a.create_role("/", "only-in-a", &[]).await;

    let roles_b = iam_b.list_roles().send().await.unwrap().roles;
    assert!(
        roles_b.iter().all(|r| r.role_name != "only-in-a"),
        "{roles_b:?}"
    );
    let err = iam_b
        .get_role()
        .role_name("only-in-a")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_no_such_entity_exception());
    let role = iam_a
        .get_role()
        .role_name("only-in-a")
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    assert_eq!(role.arn, format!("arn:aws:iam::{a}:role/only-in-a"));
    assert!(emulator()
        .requests(&b)
        .iter()
        .all(|r| r["account"] == b.as_str()));
}

#[test]
fn backdating_an_unknown_role_is_a_404() {
    let account = emulator().new_account();
    let request = json!({"account": account, "kind": "role", "name": "ghost", "created": "2020-01-01T00:00:00Z"});

    let (status, body) = emulator().try_backdate(&request).unwrap_err();

    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("ghost"), "{body}");
}

#[tokio::test]
async fn server_errors_on_a_json_protocol_are_retried() {
    let account = emulator().new_account();
    let ssm = aws_sdk_ssm::Client::new(&emulator().sdk_config_for(&account).await);
    ssm.put_parameter()
        .name("/dormant/mode")
        .value("observe")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    emulator().inject_fault(&account, "ssm", "GetParameter", Fault::Http500, 2);

    let err = ssm
        .get_parameter()
        .name("/dormant/mode")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(500),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("InternalFailure"));

    let retry = RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(Duration::from_millis(10));
    let patient =
        aws_sdk_ssm::Client::new(&emulator().sdk_config_with_retry(&account, retry).await);
    let got = patient
        .get_parameter()
        .name("/dormant/mode")
        .send()
        .await
        .expect("retried past the 500");
    assert_eq!(got.parameter.unwrap().value.as_deref(), Some("observe"));
    assert_eq!(emulator().count_requests(&account, "GetParameter"), 3);
}

/// A fault can be aimed at one role or user (`target`) or one DynamoDB item (`target` = its
/// `pk`, `sk` a prefix of its sort key): other requests of the operation pass it by. The log
/// names each item request's key and when each request arrived and was answered.
#[tokio::test]
async fn a_fault_aimed_at_one_identity_or_item_hits_only_it_and_the_log_times_requests() {
    let a = Account::new().await;
    a.role("aimed-at", 10, &[]).await;
    a.role("passed-by", 10, &[]).await;
    let tag = |role: &'static str| {
        a.iam
            .tag_role()
            .role_name(role)
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("k")
                    .value("v")
                    .build()
                    .unwrap(),
            )
            .send()
    };
    let e = emulator();
    e.inject_fault_on(
        &a.id,
        "iam",
        "TagRole",
        Some("aimed-at"),
        None,
        Fault::AccessDenied,
        1,
    );
    tag("passed-by")
        .await
        .expect("another role's request passes");
    assert_eq!(e.faults(&a.id).len(), 1, "not hit yet");
    let err = tag("aimed-at")
        .await
        .expect_err("the aimed-at role's request");
    assert_eq!(err.code(), Some("AccessDenied"));
    assert!(e.faults(&a.id).is_empty());

    let ddb = aws_sdk_dynamodb::Client::new(&a.sdk().await);
    let put = |pk: &'static str, sk: &'static str| {
        ddb.put_item()
            .table_name("dormant")
            .item("pk", AttributeValue::S(pk.into()))
            .item("sk", AttributeValue::S(sk.into()))
            .send()
    };
    e.inject_fault_on(
        &a.id,
        "dynamodb",
        "PutItem",
        Some("ITEM#1"),
        Some("AUDIT#"),
        Fault::AccessDenied,
        1,
    );
    put("ITEM#1", "STATE").await.expect("another sort key");
    put("ITEM#2", "AUDIT#x").await.expect("another item");
    put("ITEM#1", "AUDIT#2026#1")
        .await
        .expect_err("the aimed-at item");
    assert!(e.faults(&a.id).is_empty());

    e.inject_fault(
        &a.id,
        "iam",
        "GetRole",
        Fault::Latency(Duration::from_millis(200)),
        1,
    );
    a.iam
        .get_role()
        .role_name("passed-by")
        .send()
        .await
        .unwrap();
    let log = e.requests(&a.id);
    let puts: Vec<(String, String)> = log
        .iter()
        .filter(|r| r["operation"] == "PutItem")
        .map(|r| {
            (
                r["pk"].as_str().unwrap().into(),
                r["sk"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        puts.contains(&("ITEM#1".into(), "AUDIT#2026#1".into())),
        "{puts:?}"
    );
    for r in &log {
        let (start, end) = (r["started"].as_f64().unwrap(), r["ended"].as_f64().unwrap());
        assert!(start <= end, "{r}");
    }
    let slow = log
        .iter()
        .rev()
        .find(|r| r["operation"] == "GetRole")
        .unwrap();
    let took = slow["ended"].as_f64().unwrap() - slow["started"].as_f64().unwrap();
    assert!(took >= 0.2, "in flight for the injected latency: {took}");
}

/// IAM's rate limit as AWS answers it: `Throttling` / "Rate exceeded" (HTTP 400, which the SDK
/// classifies as a throttling error), reads and writes in separate buckets, per account.
#[tokio::test]
async fn iam_rate_limits_throttle_each_class_and_account_separately() {
    use crate::support::emulator::Rate;
    let a = Account::without_table().await;
    let other = Account::without_table().await;
    a.create_role("/", "busy", &[]).await;
    other.create_role("/", "calm", &[]).await;
    // Slow enough that the refill during the test is far below one token.
    emulator().set_iam_rates(
        &a.id,
        Some(Rate::new(0.01, 3.0)),
        Some(Rate::new(0.01, 2.0)),
    );

    let tag = |iam: &aws_sdk_iam::Client, role: &'static str| {
        let iam = iam.clone();
        async move {
            iam.tag_role()
                .role_name(role)
                .tags(
                    aws_sdk_iam::types::Tag::builder()
                        .key("k")
                        .value("v")
                        .build()
                        .unwrap(),
                )
                .send()
                .await
        }
    };
    tag(&a.iam, "busy").await.expect("first write: a token");
    tag(&a.iam, "busy")
        .await
        .expect("second write: the burst's last token");
    let err = tag(&a.iam, "busy")
        .await
        .expect_err("third write: no token left");
    assert_eq!(err.code(), Some("Throttling"));
    assert_eq!(err.message(), Some("Rate exceeded"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    let classified = dormant::adapters::retry::classify("TagRole", err);
    assert!(classified.is_retryable(), "{classified}");

    // Reads have their own bucket (3 tokens), untouched by the writes.
    for _ in 0..3 {
        a.iam
            .get_role()
            .role_name("busy")
            .send()
            .await
            .expect("a read token");
    }
    let err = a.iam.get_role().role_name("busy").send().await.unwrap_err();
    assert_eq!(err.code(), Some("Throttling"));
    // Another account is not limited at all.
    for _ in 0..5 {
        tag(&other.iam, "calm")
            .await
            .expect("no limit in another account");
    }

    let rates = emulator().iam_rates(&a.id);
    assert_eq!(rates["write"]["allowed"], 2);
    assert_eq!(rates["write"]["throttled"], 1);
    assert_eq!(rates["read"]["throttled"], 1);
    let log = emulator().requests(&a.id);
    let limited: Vec<_> = log.iter().filter(|r| r["rate_limited"] == true).collect();
    assert_eq!(limited.len(), 2, "{log:#?}");
    assert!(limited
        .iter()
        .all(|r| r["fault"] == "throttle" && r["status"] == 400));
    emulator().set_iam_rates(&a.id, None, None);
}

/// A rate lowered in the middle of a run takes effect when asked, not before.
#[tokio::test]
async fn an_iam_rate_can_be_lowered_mid_run() {
    use crate::support::emulator::Rate;
    let a = Account::without_table().await;
    a.create_role("/", "r", &[]).await;
    emulator().set_iam_rates(&a.id, None, Some(Rate::new(1000.0, 1000.0)));
    emulator().set_iam_write_rate_after(&a.id, Rate::new(0.01, 1.0), Duration::from_millis(300));
    let untag = || a.iam.untag_role().role_name("r").tag_keys("k").send();
    for _ in 0..5 {
        untag().await.expect("the generous rate still holds");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    untag().await.expect("the lowered bucket keeps one token");
    let err = untag().await.expect_err("then the lowered rate throttles");
    assert_eq!(err.code(), Some("Throttling"));
    assert_eq!(emulator().iam_rates(&a.id)["write"]["rate"], 0.01);
    emulator().set_iam_rates(&a.id, None, None);
}
