#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! What each kind of run costs in AWS calls, per identity, read from the emulator's request log:
//! detection reads IAM only in bulk, a first pass adds one tag call and two state writes per
//! noticed identity, and every later step re-reads the identity once before it acts.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_iam::Client;
use chrono::{DateTime, Duration, Utc};
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::iam::AwsIam;
use dormant::adapters::retry::RetryPolicy;
use dormant::app::Engine;
use dormant::domain::{OutboundEvent, Outcome, Policy, Step};
use dormant::ports::{PortResult, Publisher, Store};
use support::emulator::emulator;

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// The bulk reads of a sweep: one `GetAccountAuthorizationDetails` page per 1,000 identities
/// and the credential report.
const BULK: &[&str] = &[
    "iam:GetAccountAuthorizationDetails",
    "iam:GenerateCredentialReport",
    "iam:GetCredentialReport",
];

/// Counts `publish` calls and the events in them.
#[derive(Default)]
struct Events(Mutex<Vec<usize>>);

#[async_trait]
impl Publisher for Events {
    async fn publish(&self, events: &[OutboundEvent]) -> PortResult<()> {
        self.0.lock().unwrap().push(events.len());
        Ok(())
    }
}

struct Account {
    id: String,
    iam: Client,
    now: DateTime<Utc>,
}

impl Account {
    async fn new() -> Self {
        let id = emulator().new_account();
        let sdk = emulator().sdk_config_for(&id).await;
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            "dormant",
            RetryPolicy::fast(),
        )
        .init()
        .await
        .unwrap();
        Account {
            iam: Client::new(&sdk),
            id,
            now: Utc::now(),
        }
    }

    async fn engine(&self, policy: Policy, events: Arc<Events>) -> Engine<AwsIam, DynamoStore> {
        let sdk = emulator().sdk_config_for(&self.id).await;
        Engine::new(
            AwsIam::new(Client::new(&sdk), self.id.clone(), RetryPolicy::fast()),
            DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                "dormant",
                RetryPolicy::fast(),
            ),
            policy,
            "controller",
        )
        .with_publisher(events)
    }

    async fn unused_role(&self, name: &str) {
        self.iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(TRUST)
            .send()
            .await
            .unwrap();
        emulator().backdate_role(&self.id, name, Some(self.now - Duration::days(200)), None);
    }

    async fn user(&self, name: &str, created_days_ago: i64) {
        self.iam.create_user().user_name(name).send().await.unwrap();
        emulator().backdate_user(
            &self.id,
            name,
            Some(self.now - Duration::days(created_days_ago)),
            None,
        );
    }

    /// A key created `created_days_ago` and last used `used_days_ago`; returns its id.
    async fn key(&self, user: &str, created_days_ago: i64, used_days_ago: i64) -> String {
        let k = self
            .iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap();
        let id = k.access_key().unwrap().access_key_id().to_string();
        emulator().backdate_access_key(
            &self.id,
            user,
            &id,
            Some(self.now - Duration::days(created_days_ago)),
            Some(self.now - Duration::days(used_days_ago)),
        );
        id
    }

    /// Every request of this account since the last clear, by operation.
    fn calls(&self) -> BTreeMap<String, usize> {
        let mut by_op = BTreeMap::new();
        for r in emulator().requests(&self.id) {
            let op = format!(
                "{}:{}",
                r["service"].as_str().unwrap_or("?"),
                r["operation"].as_str().unwrap_or("?")
            );
            *by_op.entry(op).or_insert(0) += 1;
        }
        by_op
    }

    fn day(&self, n: i64) -> DateTime<Utc> {
        self.now + Duration::days(n)
    }
}

fn only(calls: &BTreeMap<String, usize>, ops: &[&str]) -> BTreeMap<String, usize> {
    calls
        .iter()
        .filter(|(op, _)| ops.contains(&op.as_str()))
        .map(|(op, n)| (op.clone(), *n))
        .collect()
}

fn iam_reads(calls: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    calls
        .iter()
        .filter(|(op, _)| {
            ["iam:Get", "iam:List", "iam:Generate"]
                .iter()
                .any(|p| op.starts_with(p))
        })
        .filter(|(op, _)| !BULK.contains(&op.as_str()))
        .map(|(op, n)| (op.clone(), *n))
        .collect()
}

#[tokio::test]
async fn a_dry_run_sweep_reads_iam_only_in_bulk_and_names_idle_keys_by_their_report_slot() {
    let a = Account::new().await;
    a.unused_role("bulk-role").await;
    // Active through its first key; the second has been idle for 200 days.
    a.user("two-keys", 400).await;
    a.key("two-keys", 300, 1).await;
    let idle = a.key("two-keys", 250, 200).await;
    a.user("no-credentials", 300).await;
    let dry = Policy {
        dry_run: true,
        ..Policy::default()
    };
    let engine = a.engine(dry, Arc::default()).await;
    emulator().clear_requests(&a.id);

    let r = engine.sweep(a.day(0)).await.unwrap();

    let calls = a.calls();
    assert_eq!(
        iam_reads(&calls),
        BTreeMap::new(),
        "no per-identity read in a dry run: {calls:?}"
    );
    let bulk = only(&calls, BULK);
    assert_eq!(bulk.len(), 3, "{calls:?}");
    assert!(
        bulk.values().sum::<usize>() <= 4,
        "one page, the report (+ one poll while it is generated): {calls:?}"
    );
    let planned: Vec<(&str, Step)> = r
        .actions
        .iter()
        .filter(|x| x.outcome == Outcome::DryRun)
        .map(|x| (x.identity.as_str(), x.step))
        .collect();
    let slot = planned
        .iter()
        .find(|(id, _)| id.contains("user/two-keys/key/"))
        .map(|(id, _)| id.rsplit('/').next().unwrap_or(""))
        .unwrap_or_else(|| panic!("the idle key is planned for a notice: {planned:?}"));
    assert!(
        slot == "slot1" || slot == "slot2",
        "named by its credential-report slot: {slot}"
    );
    assert_eq!(planned.len(), 3, "role, user, one key: {planned:?}");
    assert_eq!(
        calls.get("dynamodb:BatchWriteItem"),
        Some(&1),
        "the three dry-run notes in one batch: {calls:?}"
    );
    assert_eq!(
        engine
            .store
            .history(&dormant::domain::Subject::whole(
                dormant::domain::Principal::role(&a.id, "/", "bulk-role")
            ))
            .await
            .unwrap()
            .iter()
            .filter(|h| h.outcome == Outcome::DryRun)
            .count(),
        1,
        "the dry run is recorded in the audit trail"
    );

    // Acting needs the key's id: the real pass lists the user's keys (one call, matched to the
    // report's slots by creation date) and notices the key by id.
    let real = a.engine(Policy::default(), Arc::default()).await;
    emulator().clear_requests(&a.id);
    let r = real.sweep(a.day(0)).await.unwrap();
    let calls = a.calls();
    assert_eq!(
        iam_reads(&calls),
        BTreeMap::from([("iam:ListAccessKeys".to_string(), 1)]),
        "{calls:?}"
    );
    assert!(
        r.actions.iter().any(|x| x.outcome == Outcome::Done
            && x.identity.ends_with(&format!("user/two-keys/key/{idle}"))),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_first_pass_notices_from_the_bulk_read_with_one_tag_call_and_batched_events() {
    let a = Account::new().await;
    for n in 0..12 {
        a.unused_role(&format!("idle-{n}")).await;
    }
    for n in 0..3 {
        a.user(&format!("gone-{n}"), 300).await;
    }
    let events = Arc::new(Events::default());
    let engine = a.engine(Policy::default(), events.clone()).await;
    emulator().clear_requests(&a.id);

    let r = engine.sweep(a.day(0)).await.unwrap();

    let done = r
        .actions
        .iter()
        .filter(|x| x.outcome == Outcome::Done && x.step == Step::Notice)
        .count();
    assert_eq!(done, 15, "{r:?}");
    let calls = a.calls();
    assert_eq!(
        iam_reads(&calls),
        BTreeMap::new(),
        "a notice acts on this run's bulk read: {calls:?}"
    );
    assert_eq!(calls.get("iam:TagRole"), Some(&12), "{calls:?}");
    assert_eq!(calls.get("iam:TagUser"), Some(&3), "{calls:?}");
    // Per notice: the write-ahead intent, the done entry, the new state (+1: the breaker).
    assert_eq!(
        calls.get("dynamodb:PutItem"),
        Some(&(3 * 15 + 1)),
        "{calls:?}"
    );
    let published = events.0.lock().unwrap().clone();
    assert_eq!(
        published.iter().sum::<usize>(),
        15,
        "one event per notice: {published:?}"
    );
    assert_eq!(published, vec![10, 5], "in batches of ten");
}

#[tokio::test]
async fn a_later_step_re_reads_the_identity_once_then_makes_its_own_calls() {
    let a = Account::new().await;
    for n in 0..3 {
        a.unused_role(&format!("later-{n}")).await;
    }
    let engine = a.engine(Policy::default(), Arc::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    emulator().clear_requests(&a.id);

    let r = engine.tick(a.day(7)).await.unwrap();

    assert_eq!(
        r.actions
            .iter()
            .filter(|x| x.outcome == Outcome::Done && x.step == Step::Quarantine)
            .count(),
        3,
        "{r:?}"
    );
    let calls = a.calls();
    // The re-read (GetRole + ListRolePolicies), then the deny-all policy and the stage tags.
    for op in ["GetRole", "ListRolePolicies", "PutRolePolicy", "TagRole"] {
        assert_eq!(calls.get(&format!("iam:{op}")), Some(&3), "{op}: {calls:?}");
    }
    assert_eq!(
        iam_reads(&calls).values().sum::<usize>(),
        6,
        "nothing else is read: {calls:?}"
    );
    // Intent, done entry, state; and the breaker's quarantine window after each quarantine.
    assert_eq!(
        calls.get("dynamodb:PutItem"),
        Some(&(3 * 3 + 3)),
        "{calls:?}"
    );
}
