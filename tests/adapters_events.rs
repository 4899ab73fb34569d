//! `EventBridgePublisher` against the moto emulator: events go out in batches of 10 and really
//! arrive (a rule on the bus forwards `source: dormant` to an SQS queue that the test reads).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_eventbridge::Client as Events;
use aws_sdk_sqs::Client as Sqs;
use dormant::adapters::events::EventBridgePublisher;
use dormant::adapters::retry::RetryPolicy;
use dormant::domain::event::{EventDetail, EVENT_SOURCE};
use dormant::domain::{OutboundEvent, Step};
use dormant::ports::{ErrorKind, Publisher};
use serde_json::Value;

use crate::support::account::Account;
use crate::support::emulator::{emulator, Fault};

const BUS: &str = "dormant-test";

struct Ctx {
    account: String,
    sqs: Sqs,
    queue_url: String,
    publisher: EventBridgePublisher,
}

/// A fresh account with a bus, a rule on it matching dormant's source and a queue behind it.
async fn ctx() -> Ctx {
    let account = Account::without_table().await;
    let queue_url = account
        .events_to_queue(BUS, "dormant-to-queue", EVENT_SOURCE, "dormant-events")
        .await;
    account.clear_requests();
    let sdk = account.sdk().await;
    let publisher = EventBridgePublisher::new(Events::new(&sdk), BUS, RetryPolicy::fast());
    Ctx {
        account: account.id,
        sqs: Sqs::new(&sdk),
        queue_url,
        publisher,
    }
}

fn event(i: usize, detail_type: &str) -> OutboundEvent {
    OutboundEvent {
        detail_type: detail_type.to_string(),
        detail: EventDetail {
            account: "123456789012".to_string(),
            arn: format!("arn:aws:iam::123456789012:role/app-{i}"),
            kind: "role".to_string(),
            stage: "quarantined".to_string(),
            next_step: Some(Step::Delete),
            next_step_at: Some("2025-02-01T00:00:00Z".to_string()),
            reason: format!("unused for 120 days ({i})"),
            last_used_at: None,
        },
    }
}

impl Ctx {
    /// `PutEvents` requests so far, with their injected faults.
    fn put_events(&self) -> Vec<Option<String>> {
        emulator()
            .requests(&self.account)
            .iter()
            .filter(|r| r["operation"] == "PutEvents")
            .map(|r| r["fault"].as_str().map(str::to_string))
            .collect()
    }

    /// Message bodies from the queue until `n` arrived (or 10 s passed), then a short look for
    /// strays so duplicates would show.
    async fn receive(&self, n: usize) -> Vec<Value> {
        let mut bodies = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut empty_after_enough = 0;
        while Instant::now() < deadline && empty_after_enough < 2 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let got = out.messages();
            if got.is_empty() {
                if bodies.len() >= n {
                    empty_after_enough += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for m in got {
                bodies.push(serde_json::from_str(m.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        bodies
    }
}

#[tokio::test]
async fn twelve_events_go_out_in_two_calls_and_arrive() {
    let cx = ctx().await;
    let detail_types = [
        "Identity Noticed",
        "Identity Quarantined",
        "Identity Deleted",
    ];
    let events: Vec<_> = (0..12)
        .map(|i| event(i, detail_types[i % detail_types.len()]))
        .collect();

    cx.publisher.publish(&events).await.unwrap();

    assert_eq!(cx.put_events(), vec![None, None]);
    let bodies = cx.receive(12).await;
    assert_eq!(bodies.len(), 12, "{bodies:#?}");
    let by_arn: BTreeMap<String, &Value> = bodies
        .iter()
        .map(|b| (b["detail"]["arn"].as_str().unwrap().to_string(), b))
        .collect();
    assert_eq!(by_arn.len(), 12, "duplicates: {bodies:#?}");
    for (i, sent) in events.iter().enumerate() {
        let body = by_arn[&sent.detail.arn];
        assert_eq!(body["source"], EVENT_SOURCE);
        assert_eq!(body["detail-type"], sent.detail_type.as_str());
        // The detail is the serde form of EventDetail, field for field.
        assert_eq!(body["detail"], serde_json::to_value(&sent.detail).unwrap());
        assert_eq!(body["detail"]["next_step"], "delete");
        assert_eq!(body["detail"]["stage"], "quarantined");
        assert_eq!(
            body["detail"]["reason"],
            format!("unused for 120 days ({i})")
        );
    }
}

#[tokio::test]
async fn nothing_to_publish_makes_no_call() {
    let cx = ctx().await;
    cx.publisher.publish(&[]).await.unwrap();
    assert!(cx.put_events().is_empty());
}

#[tokio::test]
async fn throttling_is_retried() {
    let cx = ctx().await;
    emulator().inject_fault(&cx.account, "events", "PutEvents", Fault::Throttle, 2);

    cx.publisher
        .publish(&[event(1, "Identity Noticed")])
        .await
        .unwrap();

    assert_eq!(
        cx.put_events(),
        vec![
            Some("throttle".to_string()),
            Some("throttle".to_string()),
            None
        ]
    );
    let bodies = cx.receive(1).await;
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!(bodies[0]["detail-type"], "Identity Noticed");
}

#[tokio::test]
async fn access_denied_is_an_error_and_not_retried() {
    let cx = ctx().await;
    emulator().inject_fault(&cx.account, "events", "PutEvents", Fault::AccessDenied, 1);

    let err = cx
        .publisher
        .publish(&[event(1, "Identity Noticed")])
        .await
        .unwrap_err();

    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
    assert_eq!(err.operation, "PutEvents");
    assert_eq!(cx.put_events(), vec![Some("access_denied".to_string())]);
}

#[tokio::test]
async fn failed_entries_alone_are_resent_then_reported() {
    let cx = ctx().await;
    // An empty detail-type is refused per entry (InvalidArgument), not per request: a partial
    // failure the emulator produces by itself.
    let events = vec![
        event(1, "Identity Noticed"),
        event(2, ""),
        event(3, "Identity Deleted"),
    ];

    let err = cx.publisher.publish(&events).await.unwrap_err();

    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(err.message.starts_with("1 of 3 events failed"), "{err}");
    assert!(err.message.contains("InvalidArgument"), "{err}");
    // The first call, then three rounds with the failed entry only.
    assert_eq!(cx.put_events().len(), 1 + 3);
    // The good ones arrived exactly once (resending only the failed entry duplicates nothing).
    let bodies = cx.receive(2).await;
    let mut arns: Vec<_> = bodies
        .iter()
        .map(|b| b["detail"]["arn"].as_str().unwrap().to_string())
        .collect();
    arns.sort();
    assert_eq!(
        arns,
        vec![
            "arn:aws:iam::123456789012:role/app-1".to_string(),
            "arn:aws:iam::123456789012:role/app-3".to_string()
        ]
    );
}
