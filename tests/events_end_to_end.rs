#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Events end to end against the emulator: a real-shaped Access Analyzer finding goes through
//! `dormant handle-event` exactly as the Lambda would process it; the notice lands in IAM and
//! DynamoDB once however often the event is delivered, and dormant's own event reaches an SQS
//! queue through an EventBridge rule.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use aws_sdk_iam::Client;
use chrono::{Duration, Utc};
use serde_json::Value;
use support::emulator::emulator;

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Env {
    account: String,
    dir: PathBuf,
}

impl Env {
    fn new() -> Self {
        let account = emulator().new_account();
        let dir = std::env::temp_dir().join(format!("dormant-events-{account}"));
        std::fs::create_dir_all(&dir).unwrap();
        // The defaults, and no starter configuration (dry run) from `init`.
        std::fs::write(dir.join("dormant.toml"), "").unwrap();
        Env { account, dir }
    }

    fn dormant(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dormant"))
            .args(args)
            .current_dir(&self.dir)
            .env("AWS_ENDPOINT_URL", emulator().endpoint())
            .env("AWS_ACCESS_KEY_ID", &self.account)
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    }

    fn handle(&self, event: &Value) -> Value {
        let path = self.dir.join("event.json");
        std::fs::write(&path, serde_json::to_vec(event).unwrap()).unwrap();
        let out = self.dormant(&["--output", "json", "handle-event", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "handle-event failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The Access Analyzer fixture, pointed at `role` in this account, with a fresh event id.
    fn unused_role_event(&self, role: &str, id: &str) -> Value {
        let mut e = fixture("access-analyzer-unused-role.json");
        e["id"] = Value::from(id);
        e["detail"]["resource"] = Value::from(format!("arn:aws:iam::{}:role/{role}", self.account));
        e["detail"]["accountId"] = Value::from(self.account.clone());
        e
    }
}

#[tokio::test]
async fn an_unused_role_finding_notices_the_role_once_and_announces_it() {
    let env = Env::new();
    let sdk = emulator().sdk_config_for(&env.account).await;
    let iam = Client::new(&sdk);
    iam.create_role()
        .role_name("idle")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    emulator().backdate_role(
        &env.account,
        "idle",
        Some(Utc::now() - Duration::days(150)),
        None,
    );
    assert!(env.dormant(&["init"]).status.success());

    // dormant's own events, caught by a rule on the default bus into a queue.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name("dormant-events")
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap().to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let queue_arn =
        attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    events
        .put_rule()
        .name("dormant-out")
        .event_pattern(r#"{"source":["dormant"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("dormant-out")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let event = env.unused_role_event("idle", "aa-event-1");
    for _ in 0..2 {
        env.handle(&event);
    }
    let tags: Vec<(String, String)> = iam
        .list_role_tags()
        .role_name("idle")
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    assert!(
        tags.iter()
            .any(|(k, v)| k == "dormant:stage" && v.starts_with("noticed ")),
        "{tags:?}"
    );

    let out = env.dormant(&["--output", "json", "history", "role/idle"]);
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
        format!("arn:aws:iam::{}:role/idle", env.account).as_str()
    );
    assert_eq!(bodies[0]["detail"]["next_step"], "quarantine");
}

#[tokio::test]
async fn a_finding_about_a_role_used_yesterday_changes_nothing_and_says_why() {
    let env = Env::new();
    let sdk = emulator().sdk_config_for(&env.account).await;
    let iam = Client::new(&sdk);
    iam.create_role()
        .role_name("busy")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    emulator().backdate_role(
        &env.account,
        "busy",
        Some(Utc::now() - Duration::days(300)),
        Some(Utc::now() - Duration::days(1)),
    );
    assert!(env.dormant(&["init"]).status.success());

    let report = env.handle(&env.unused_role_event("busy", "aa-event-2"));
    assert_eq!(report["actions"][0]["outcome"], "skipped", "{report}");
    assert!(iam
        .list_role_tags()
        .role_name("busy")
        .send()
        .await
        .unwrap()
        .tags()
        .is_empty());
    let out = env.dormant(&["--output", "json", "history", "role/busy"]);
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
    let env = Env::new();
    assert!(env.dormant(&["init"]).status.success());
    emulator().clear_requests(&env.account);
    let report = env.handle(&fixture("access-analyzer-unused-permission.json"));
    assert!(
        report["ignored"]
            .as_str()
            .unwrap()
            .contains("UnusedPermission"),
        "{report}"
    );

    let path = env.dir.join("bad.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&fixture("malformed-no-detail-type.json")).unwrap(),
    )
    .unwrap();
    let out = env.dormant(&["handle-event", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("malformed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let iam_calls = emulator()
        .requests(&env.account)
        .into_iter()
        .filter(|r| r["service"] == "iam")
        .count();
    assert_eq!(iam_calls, 0, "neither event reached IAM");

    // `event classify` needs no AWS at all.
    let out = Command::new(env!("CARGO_BIN_EXE_dormant"))
        .args(["--output", "json", "event", "classify", "-"])
        .env_clear()
        .stdin(
            std::fs::File::open(format!(
                "{}/tests/fixtures/events/access-analyzer-unused-role.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
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
