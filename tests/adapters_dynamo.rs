//! The DynamoDB state store against the moto emulator: schema, conditional writes, the sparse due
//! index, the principal and account indexes, audit/snapshot/event/breaker items, retries.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use chrono::{DateTime, Duration, TimeZone, Utc};
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::retry::RetryPolicy;
use dormant::domain::{
    AuditEntry, BreakerState, Intent, Outcome, Principal, Record, Snapshot, Stage, Step, Subject,
};
use dormant::ports::{ErrorKind, Store};

use crate::support::emulator::{emulator, Fault};

/// The (fake) AWS account the records describe; the table lives in the emulator account.
const ACCOUNT: &str = "111122223333";

fn t(secs: i64) -> DateTime<Utc> {
    // Sub-second part on purpose: keys and JSON must keep it.
    Utc.timestamp_opt(1_750_000_000 + secs, 123_456_789)
        .unwrap()
}

async fn client(account: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&emulator().sdk_config_for(account).await)
}

/// A fresh account and an initialised table in it.
async fn store(table: &str) -> (String, DynamoStore) {
    let account = emulator().new_account();
    let store = DynamoStore::new(client(&account).await, table, RetryPolicy::fast());
    assert!(store.init().await.unwrap());
    (account, store)
}

fn role(name: &str) -> Principal {
    Principal::role(ACCOUNT, "/", name)
}

fn record(subject: Subject, stage: Stage, due: Option<DateTime<Utc>>) -> Record {
    Record {
        stage,
        stage_since: Some(t(0)),
        next_step: due.map(|_| Step::Quarantine),
        next_due_at: due,
        reason: format!("test {stage}"),
        ..Record::new(subject)
    }
}

fn ids(records: &[Record]) -> Vec<String> {
    let mut ids: Vec<_> = records.iter().map(|r| r.subject.id()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn init_is_idempotent_and_creates_the_indexes() {
    let account = emulator().new_account();
    let ddb = client(&account).await;
    let store = DynamoStore::new(ddb.clone(), "init-table", RetryPolicy::fast());

    assert!(!store.exists().await.unwrap());
    assert!(store.init().await.unwrap(), "first init creates");
    assert!(!store.init().await.unwrap(), "second init finds it");
    assert!(store.exists().await.unwrap());

    let table = ddb
        .describe_table()
        .table_name("init-table")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        schema
            .iter()
            .map(|k| (k.attribute_name.clone(), k.key_type.as_str().to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(table.key_schema()),
        [("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())]
    );
    let mut indexes: Vec<_> = table
        .global_secondary_indexes()
        .iter()
        .map(|i| {
            (
                i.index_name.clone().unwrap(),
                keys(i.key_schema()),
                i.projection
                    .as_ref()
                    .unwrap()
                    .projection_type
                    .clone()
                    .unwrap(),
            )
        })
        .collect();
    indexes.sort_by(|a, b| a.0.cmp(&b.0));
    let all = aws_sdk_dynamodb::types::ProjectionType::All;
    assert_eq!(
        indexes,
        [
            (
                "by_account".into(),
                vec![
                    ("account".into(), "HASH".into()),
                    ("stage_subject".into(), "RANGE".into())
                ],
                all.clone()
            ),
            (
                "by_principal".into(),
                vec![
                    ("principal".into(), "HASH".into()),
                    ("subject".into(), "RANGE".into())
                ],
                all.clone()
            ),
            (
                "due".into(),
                vec![
                    ("due_pk".into(), "HASH".into()),
                    ("next_due_at".into(), "RANGE".into())
                ],
                all
            ),
        ]
    );
    let ttl = ddb
        .describe_time_to_live()
        .table_name("init-table")
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.time_to_live_status, Some(TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name.as_deref(), Some("expires_at"));
}

#[tokio::test]
async fn save_is_versioned_and_load_returns_what_was_saved() {
    let (_, store) = store("versions").await;
    let subject = Subject::whole(role("app"));
    assert_eq!(store.load(&subject).await.unwrap(), None);

    let mut r = record(subject.clone(), Stage::Noticed, Some(t(60)));
    r.noticed_at = Some(t(0));
    r.keys_deactivated = vec!["AKIAEXAMPLE000000001".into()];
    r.pending = Some(Intent::new(
        Step::Quarantine,
        t(1),
        Vec::new(),
        record(subject.clone(), Stage::Quarantined, None),
    ));
    assert_eq!(store.save(&r).await.unwrap(), 1);
    let loaded = store.load(&subject).await.unwrap().unwrap();
    assert_eq!(
        loaded,
        Record {
            version: 1,
            ..r.clone()
        }
    );

    // Stale: another create of the same subject.
    let err = store.save(&r).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err}");

    let next = Record {
        stage: Stage::Quarantined,
        pending: None,
        ..loaded
    };
    assert_eq!(store.save(&next).await.unwrap(), 2);
    assert_eq!(
        store.load(&subject).await.unwrap().unwrap(),
        Record {
            version: 2,
            ..next.clone()
        }
    );
    // Version 1 is stale now too.
    assert_eq!(
        store.save(&next).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
}

#[tokio::test]
async fn due_index_is_sparse() {
    let (_, store) = store("due").await;
    let now = t(1000);
    let past = record(
        Subject::whole(role("past")),
        Stage::Noticed,
        Some(now - Duration::hours(1)),
    );
    let exact = record(Subject::whole(role("exact")), Stage::Noticed, Some(now));
    let future = record(
        Subject::whole(role("future")),
        Stage::Noticed,
        Some(now + Duration::nanoseconds(1)),
    );
    let none = record(Subject::whole(role("none")), Stage::Noticed, None);
    let elsewhere = record(
        Subject::whole(Principal::role("999999999999", "/", "past")),
        Stage::Noticed,
        Some(now - Duration::hours(1)),
    );
    for r in [&past, &exact, &future, &none, &elsewhere] {
        store.save(r).await.unwrap();
    }

    assert_eq!(
        ids(&store.due(ACCOUNT, now).await.unwrap()),
        ids(&[exact.clone(), past.clone()])
    );
    assert_eq!(
        ids(&store.due("999999999999", now).await.unwrap()),
        ids(&[elsewhere])
    );

    // Step taken, nothing scheduled: it leaves the index.
    let done = Record {
        version: 1,
        next_step: None,
        next_due_at: None,
        ..past
    };
    store.save(&done).await.unwrap();
    assert_eq!(ids(&store.due(ACCOUNT, now).await.unwrap()), ids(&[exact]));
    assert_eq!(store.due(ACCOUNT, t(-10_000)).await.unwrap(), []);
}

#[tokio::test]
async fn list_by_account_and_stage_and_load_by_principal() {
    let (_, store) = store("lists").await;
    let alice = Principal::user(ACCOUNT, "/", "alice");
    // A name that starts with the other's: matching must be exact, not by prefix.
    let alice2 = Principal::user(ACCOUNT, "/", "alice2");
    let records = [
        record(Subject::whole(alice.clone()), Stage::Noticed, None),
        record(
            Subject::access_key(alice.clone(), "AKIAALICE00000000001"),
            Stage::KeysDeactivated,
            None,
        ),
        record(Subject::password(alice.clone()), Stage::Quarantined, None),
        record(Subject::whole(alice2.clone()), Stage::Quarantined, None),
        record(Subject::whole(role("ops")), Stage::Quarantined, None),
        record(Subject::whole(role("exempt")), Stage::Exempt, None),
        record(
            Subject::whole(Principal::role("999999999999", "/", "other")),
            Stage::Quarantined,
            None,
        ),
    ];
    for r in &records {
        store.save(r).await.unwrap();
    }

    let principal = store.load_principal(&alice).await.unwrap();
    assert_eq!(ids(&principal), ids(&records[..3]));
    assert!(principal.iter().all(|r| r.version == 1));
    assert_eq!(
        ids(&store.load_principal(&alice2).await.unwrap()),
        ids(&records[3..4])
    );
    assert_eq!(store.load_principal(&role("nobody")).await.unwrap(), []);

    assert_eq!(
        ids(&store.list(ACCOUNT, None).await.unwrap()),
        ids(&records[..6])
    );
    assert_eq!(
        ids(&store.list(ACCOUNT, Some(Stage::Quarantined)).await.unwrap()),
        ids(&[records[2].clone(), records[3].clone(), records[4].clone()])
    );
    assert_eq!(
        ids(&store.list(ACCOUNT, Some(Stage::Deleted)).await.unwrap()),
        Vec::<String>::new()
    );

    // The other item kinds stay out of the indexes.
    let subject = records[0].subject.clone();
    store
        .append_audit(&subject, &audit(t(0), "notice"))
        .await
        .unwrap();
    store
        .save_breaker(ACCOUNT, &BreakerState::default())
        .await
        .unwrap();
    assert_eq!(store.list(ACCOUNT, None).await.unwrap().len(), 6);
    assert_eq!(store.load_principal(&alice).await.unwrap().len(), 3);
}

#[tokio::test]
async fn queries_follow_pagination() {
    let (account, store) = store("pages").await;
    // Big records so that 40 of them exceed one 1 MB query page.
    let filler = "x".repeat(40_000);
    for i in 0..40 {
        let mut r = record(
            Subject::whole(role(&format!("r{i:02}"))),
            Stage::Noticed,
            Some(t(0)),
        );
        r.reason = filler.clone();
        store.save(&r).await.unwrap();
    }
    emulator().clear_requests(&account);
    assert_eq!(store.list(ACCOUNT, None).await.unwrap().len(), 40);
    assert_eq!(store.due(ACCOUNT, t(1)).await.unwrap().len(), 40);
    assert!(
        emulator().count_requests(&account, "Query") >= 4,
        "each query took more than one page"
    );
}

fn audit(at: DateTime<Utc>, step: &str) -> AuditEntry {
    AuditEntry {
        at,
        step: step.into(),
        outcome: Outcome::Done,
        actor: "controller".into(),
        reason: format!("did {step}"),
        event_id: None,
    }
}

fn snapshot(principal: &Principal, taken_at: DateTime<Utc>) -> Snapshot {
    Snapshot {
        principal: principal.clone(),
        unique_id: Some("AROAEXAMPLEEXAMPLE1".into()),
        taken_at,
        created_at: Some(t(-100)),
        tags: BTreeMap::from([("team".into(), "ops".into())]),
        description: None,
        max_session_duration: Some(3600),
        permissions_boundary: None,
        trust_policy: Some("{}".into()),
        inline_policies: BTreeMap::new(),
        attached_policy_arns: vec![],
        groups: vec![],
        instance_profiles: vec![],
        access_key_ids: vec![],
        had_login_profile: false,
        ssh_public_keys: vec![],
        signing_certificates: vec![],
        service_specific_credentials: vec![],
        mfa_devices: vec![],
    }
}

#[tokio::test]
async fn audit_keeps_same_instant_entries_in_order_and_latest_snapshot_wins() {
    let (_, store) = store("audit").await;
    let principal = role("audited");
    let subject = Subject::whole(principal.clone());
    let other = Subject::whole(role("other"));

    let entries = [
        audit(t(5), "notice"),
        audit(t(5), "quarantine"),
        audit(t(5), "release"),
    ];
    for e in &entries {
        store.append_audit(&subject, e).await.unwrap();
    }
    let earlier = AuditEntry {
        event_id: Some("evt-1".into()),
        outcome: Outcome::DryRun,
        ..audit(t(4), "exempt")
    };
    store.append_audit(&subject, &earlier).await.unwrap();
    store
        .append_audit(&other, &audit(t(1), "notice"))
        .await
        .unwrap();

    let mut expected = vec![earlier];
    expected.extend(entries);
    assert_eq!(store.history(&subject).await.unwrap(), expected);
    assert_eq!(
        store
            .history(&Subject::whole(role("nobody")))
            .await
            .unwrap(),
        []
    );

    assert_eq!(store.latest_snapshot(&subject).await.unwrap(), None);
    let (old, new) = (snapshot(&principal, t(10)), snapshot(&principal, t(20)));
    store.put_snapshot(&subject, &new).await.unwrap();
    store.put_snapshot(&subject, &old).await.unwrap();
    assert_eq!(store.latest_snapshot(&subject).await.unwrap(), Some(new));
    // Snapshots are not audit entries, and the other way round.
    assert_eq!(store.history(&subject).await.unwrap().len(), 4);
    assert_eq!(store.latest_snapshot(&other).await.unwrap(), None);
}

#[tokio::test]
async fn events_are_claimed_once() {
    let (account, store) = store("events").await;
    assert!(store.claim_event("evt-a", t(0)).await.unwrap());
    assert!(!store.claim_event("evt-a", t(60)).await.unwrap());
    assert!(store.claim_event("evt-b", t(60)).await.unwrap());

    let item = client(&account)
        .await
        .get_item()
        .table_name("events")
        .key("pk", AttributeValue::S("EVENT#evt-a".into()))
        .key("sk", AttributeValue::S("EVENT".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expires = (t(0) + Duration::days(7)).timestamp().to_string();
    assert_eq!(item["expires_at"], AttributeValue::N(expires));
}

#[tokio::test]
async fn breaker_round_trips() {
    let (_, store) = store("breaker").await;
    assert_eq!(
        store.breaker(ACCOUNT).await.unwrap(),
        BreakerState::default()
    );
    let state = BreakerState {
        tripped: true,
        tripped_at: Some(t(30)),
        cause: Some("too many".into()),
        quarantines: vec![t(1), t(2), t(3)],
        identities: 42,
        last_reset: None,
        version: 0,
    };
    store.save_breaker(ACCOUNT, &state).await.unwrap();
    let stored = store.breaker(ACCOUNT).await.unwrap();
    assert_eq!(
        stored,
        BreakerState {
            version: 1,
            ..state.clone()
        }
    );
    assert_eq!(
        store.breaker("999999999999").await.unwrap(),
        BreakerState::default()
    );
    // A writer holding the old version loses: it must re-read and apply its change again.
    let stale = store
        .save_breaker(ACCOUNT, &BreakerState::default())
        .await
        .unwrap_err();
    assert_eq!(stale.kind, ErrorKind::Conflict);
    store
        .save_breaker(
            ACCOUNT,
            &BreakerState {
                version: 1,
                ..BreakerState::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.breaker(ACCOUNT).await.unwrap(),
        BreakerState {
            version: 2,
            ..BreakerState::default()
        }
    );
}

#[tokio::test]
async fn throttling_is_retried_and_access_denied_is_not() {
    let (account, store) = store("faults").await;
    let subject = Subject::whole(role("throttled"));
    emulator().clear_requests(&account);
    emulator().inject_fault(&account, "dynamodb", "PutItem", Fault::Throttle, 2);
    assert_eq!(
        store
            .save(&record(subject.clone(), Stage::Noticed, None))
            .await
            .unwrap(),
        1
    );
    assert_eq!(emulator().count_requests(&account, "PutItem"), 3);
    // Throttled attempts never reached the table: no read-back was needed.
    assert_eq!(emulator().count_requests(&account, "GetItem"), 0);

    emulator().inject_fault(&account, "dynamodb", "Query", Fault::AccessDenied, 1);
    let err = store.list(ACCOUNT, None).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
    assert_eq!(err.operation, "Query");
    assert_eq!(
        emulator().count_requests(&account, "Query"),
        1,
        "not retried"
    );
    assert_eq!(store.list(ACCOUNT, None).await.unwrap().len(), 1);
}

/// A conditional write whose first attempt was applied but whose response was lost (here: the
/// client times out while the emulator sleeps before applying it) must not come back as a
/// conflict or a duplicate when the retry finds its own write.
#[tokio::test]
async fn a_write_applied_after_a_client_timeout_is_not_a_conflict() {
    let (account, _) = store("lost").await;
    let config = emulator().sdk_config_for(&account).await;
    let impatient = aws_sdk_dynamodb::config::Builder::from(&config)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(StdDuration::from_millis(1000))
                .build(),
        )
        .build();
    // The retry starts after the delayed first attempt has been applied. Wide margins: a
    // loaded machine's emulator can take a few hundred milliseconds to answer any request.
    let retry = RetryPolicy {
        max_times: 2,
        min_delay: StdDuration::from_millis(3500),
        max_delay: StdDuration::from_millis(3500),
    };
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(impatient),
        "lost",
        retry,
    );
    let latency = Fault::Latency(StdDuration::from_millis(2000));

    emulator().inject_fault(&account, "dynamodb", "PutItem", latency, 1);
    let r = record(Subject::whole(role("lost")), Stage::Noticed, None);
    assert_eq!(store.save(&r).await.unwrap(), 1);
    assert_eq!(emulator().count_requests(&account, "PutItem"), 2);
    assert_eq!(
        emulator().count_requests(&account, "GetItem"),
        1,
        "read back once"
    );
    assert_eq!(store.save(&r).await.unwrap_err().kind, ErrorKind::Conflict);

    emulator().inject_fault(&account, "dynamodb", "PutItem", latency, 1);
    assert!(store.claim_event("evt-lost", t(0)).await.unwrap());
    assert!(!store.claim_event("evt-lost", t(0)).await.unwrap());

    emulator().inject_fault(&account, "dynamodb", "PutItem", latency, 1);
    let subject = Subject::whole(role("lost"));
    store
        .append_audit(&subject, &audit(t(0), "notice"))
        .await
        .unwrap();
    assert_eq!(
        store.history(&subject).await.unwrap().len(),
        1,
        "no duplicate entry"
    );
}

#[tokio::test]
async fn concurrent_saves_of_one_version_have_one_winner() {
    let (account, store) = store("race").await;
    let other = DynamoStore::new(client(&account).await, "race", RetryPolicy::fast());
    for round in 0..5 {
        let subject = Subject::whole(role(&format!("raced{round}")));
        let base = record(subject.clone(), Stage::Noticed, None);
        // Both create…
        let (a, b) = tokio::join!(store.save(&base), other.save(&base));
        assert_one_winner(a, b, 1);
        // …then both update from version 1 with different stages.
        let first = Record {
            version: 1,
            stage: Stage::Quarantined,
            ..base.clone()
        };
        let second = Record {
            version: 1,
            stage: Stage::Released,
            ..base
        };
        let (a, b) = tokio::join!(store.save(&first), other.save(&second));
        let a_won = a.is_ok();
        assert_one_winner(a, b, 2);
        let stored = store.load(&subject).await.unwrap().unwrap();
        let winner = if a_won { first } else { second };
        assert_eq!(
            stored,
            Record {
                version: 2,
                ..winner
            }
        );
    }
}

fn assert_one_winner(
    a: dormant::ports::PortResult<u64>,
    b: dormant::ports::PortResult<u64>,
    version: u64,
) {
    match (a, b) {
        (Ok(v), Err(e)) | (Err(e), Ok(v)) => {
            assert_eq!(v, version);
            assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
        }
        other => panic!("expected exactly one winner, got {other:?}"),
    }
}

#[tokio::test]
async fn a_malformed_item_is_a_permanent_error_naming_its_key() {
    let (account, store) = store("malformed").await;
    let subject = Subject::whole(role("broken"));
    let pk = format!("ID#{ACCOUNT}#{}", subject.id());
    client(&account)
        .await
        .put_item()
        .table_name("malformed")
        .item("pk", AttributeValue::S(pk.clone()))
        .item("sk", AttributeValue::S("STATE".into()))
        .item("record", AttributeValue::S("{not json".into()))
        .send()
        .await
        .unwrap();
    let err = store.load(&subject).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert!(err.message.contains(&pk), "{err}");
}
