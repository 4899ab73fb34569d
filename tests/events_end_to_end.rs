#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Events end to end against the emulator: a real-shaped Access Analyzer finding goes through
//! `dormant handle-event` exactly as the Lambda would process it; the notice lands in IAM and
//! DynamoDB once however often the event is delivered, and dormant's own event reaches an SQS
//! queue through an EventBridge rule.

use std::process::Command;

use serde_json::Value;

use crate::support::account::Account;
use crate::support::cli::Dormant;
use crate::support::events::{fixture, fixture_dir};

/// Runs `dormant --output json handle-event` on `event`; its JSON report.
fn handle(dormant: &Dormant, event: &Value) -> Value {
    let path = dormant.write("event.json", &serde_json::to_vec(event).unwrap());
    let out = dormant.run(&["--output", "json", "handle-event", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "handle-event failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The Access Analyzer fixture, pointed at `role` in `account`, with a fresh event id.
fn unused_role_event(account: &Account, role: &str, id: &str) -> Value {
    let mut e = fixture("access-analyzer-unused-role.json");
    e["id"] = Value::from(id);
    e["detail"]["resource"] = Value::from(format!("arn:aws:iam::{}:role/{role}", account.id));
    e["detail"]["accountId"] = Value::from(account.id.clone());
    e
}

#[tokio::test]
async fn an_unused_role_finding_notices_the_role_once_and_announces_it() {
    let a = Account::without_table().await;
    let dormant = a.dormant();
    a.role("idle", 150, &[]).await;
    assert!(dormant.run(&["init"]).status.success());

    // dormant's own events, caught by a rule on the default bus into a queue.
    let queue_url = a
        .events_to_queue("default", "dormant-out", "dormant", "dormant-events")
        .await;
    let sqs = aws_sdk_sqs::Client::new(&a.sdk().await);

    let event = unused_role_event(&a, "idle", "aa-event-1");
    for _ in 0..2 {
        handle(&dormant, &event);
    }
    let tags = a.role_tags("idle").await;
    assert!(
        tags.iter()
            .any(|(k, v)| k == "dormant:stage" && v.starts_with("noticed ")),
        "{tags:?}"
    );

    let out = dormant.run(&["--output", "json", "history", "role/idle"]);
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let notices: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["step"] == "notice" && h["outcome"] == "done")
        .collect();
    assert_eq!(notices.len(), 1, "delivered twice, noticed once: {history}");
    assert_eq!(notices[0]["event_id"], "aa-event-1");

    let got = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<Value> = got
        .messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["detail-type"], "Identity Noticed");
    assert_eq!(bodies[0]["source"], "dormant");
    assert_eq!(
        bodies[0]["detail"]["arn"],
        format!("arn:aws:iam::{}:role/idle", a.id).as_str()
    );
    assert_eq!(bodies[0]["detail"]["next_step"], "quarantine");
}

#[tokio::test]
async fn a_finding_about_a_role_used_yesterday_changes_nothing_and_says_why() {
    let a = Account::without_table().await;
    let dormant = a.dormant();
    a.role_with("/", "busy", 300, Some(1), &[]).await;
    assert!(dormant.run(&["init"]).status.success());

    let report = handle(&dormant, &unused_role_event(&a, "busy", "aa-event-2"));
    assert_eq!(report["actions"][0]["outcome"], "skipped", "{report}");
    assert!(a.role_tags("busy").await.is_empty());
    let out = dormant.run(&["--output", "json", "history", "role/busy"]);
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = &history[0];
    assert_eq!(entry["event_id"], "aa-event-2");
    assert_eq!(entry["outcome"], "skipped");
    assert!(
        entry["reason"].as_str().unwrap().contains("used at"),
        "{entry}"
    );
}

#[tokio::test]
async fn ignored_and_malformed_events_are_acknowledged_or_refused_without_aws_changes() {
    let a = Account::without_table().await;
    let dormant = a.dormant();
    assert!(dormant.run(&["init"]).status.success());
    a.clear_requests();
    let report = handle(&dormant, &fixture("access-analyzer-unused-permission.json"));
    assert!(
        report["ignored"]
            .as_str()
            .unwrap()
            .contains("UnusedPermission"),
        "{report}"
    );

    let path = dormant.write(
        "bad.json",
        &serde_json::to_vec(&fixture("malformed-no-detail-type.json")).unwrap(),
    );
    let out = dormant.run(&["handle-event", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("malformed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let iam_calls = a
        .requests()
        .into_iter()
        .filter(|r| r["service"] == "iam")
        .count();
    assert_eq!(iam_calls, 0, "neither event reached IAM");

    // `event classify` needs no AWS at all.
    let out = Command::new(env!("CARGO_BIN_EXE_dormant"))
        .args(["--output", "json", "event", "classify", "-"])
        .env_clear()
        .stdin(std::fs::File::open(fixture_dir().join("access-analyzer-unused-role.json")).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "candidate");
    assert_eq!(
        v["identity"],
        "arn:aws:iam::111122223333:role/FindingIntegTestFakeRole"
    );
}
