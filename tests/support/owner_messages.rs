//! An account set up for owner messages (tests/notify.rs, tests/notify_limits.rs): SES's sender
//! verified, an SNS topic feeding an SQS queue, a Slack webhook on a loopback port, and engines
//! routing to them.

use std::collections::BTreeMap;
use std::sync::Arc;

use dormant::adapters::messenger::AwsMessenger;
use dormant::adapters::retry::RetryPolicy;
use dormant::app::engine::{NotifySetup, DEFAULT_MAX_ATTEMPTS};
use dormant::domain::notify::{Recipient, Routing, Templates};
use dormant::domain::Policy;

use crate::support::account::{Account, TestEngine};
use crate::support::emulator::emulator;
use crate::support::webhook::Webhook;

/// The verified SES sender.
pub const SENDER: &str = "dormant@example.com";

/// An account with SES's sender verified (as the CDK configures it), an SNS topic feeding an
/// SQS queue, and a Slack webhook on a loopback port.
pub struct Setup {
    pub a: Account,
    pub topic: String,
    pub queue: String,
    pub slack: Webhook,
}

impl Setup {
    pub async fn new() -> Setup {
        let a = Account::new().await;
        let sdk = a.sdk().await;
        aws_sdk_sesv2::Client::new(&sdk)
            .create_email_identity()
            .email_identity(SENDER)
            .send()
            .await
            .unwrap();
        let sns = aws_sdk_sns::Client::new(&sdk);
        let topic = sns
            .create_topic()
            .name("security-feed")
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_string();
        let (queue, queue_arn) = a.queue("feed").await;
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        let slack = Webhook::start().await;
        Setup {
            a,
            topic,
            queue,
            slack,
        }
    }

    pub fn routing(&self) -> Routing {
        Routing {
            routes: [("team-a".to_string(), "slack:#team-a".parse().unwrap())].into(),
            fallback: Some("secops@example.com".parse().unwrap()),
            feed: Some(Recipient::Sns(self.topic.clone())),
            ..Routing::default()
        }
    }

    pub async fn engine(&self) -> TestEngine {
        self.engine_with(self.routing()).await
    }

    pub async fn engine_with(&self, routing: Routing) -> TestEngine {
        self.engine_linked(routing, Arc::new(dormant::ports::NoLinks))
            .await
    }

    pub async fn engine_linked(
        &self,
        routing: Routing,
        links: Arc<dyn dormant::ports::ActionLinks>,
    ) -> TestEngine {
        self.engine_custom(routing, links, BTreeMap::new(), DEFAULT_MAX_ATTEMPTS)
            .await
    }

    /// With template overrides and `[notify] max_attempts`.
    pub async fn engine_custom(
        &self,
        routing: Routing,
        links: Arc<dyn dormant::ports::ActionLinks>,
        templates: BTreeMap<String, String>,
        max_attempts: u32,
    ) -> TestEngine {
        let setup = self
            .notify_setup(routing, templates)
            .await
            .with_links(links)
            .with_max_attempts(max_attempts);
        self.a.engine(Policy::default()).await.with_notify(setup)
    }

    /// The engine of `member`'s IAM, with this account's table and messages (the controller's,
    /// as a fleet over several accounts has them).
    pub async fn member_engine(&self, member: &Account) -> TestEngine {
        let setup = self.notify_setup(self.routing(), BTreeMap::new()).await;
        dormant::app::Engine::new(
            member.adapter().await,
            self.a.store().await,
            Policy::default(),
            "controller",
        )
        // As `Account::engine`: moto stamps wall-clock dates.
        .with_wall_clock(Arc::new(
            #[allow(clippy::disallowed_methods)]
            chrono::Utc::now,
        ))
        .with_notify(setup)
    }

    async fn notify_setup(
        &self,
        routing: Routing,
        templates: BTreeMap<String, String>,
    ) -> NotifySetup {
        let sdk = self.a.sdk().await;
        let messenger = AwsMessenger::new(
            aws_sdk_sesv2::Client::new(&sdk),
            aws_sdk_sns::Client::new(&sdk),
            Some(SENDER.to_string()),
            [("#team-a".to_string(), self.slack.url.clone())].into(),
            RetryPolicy::fast(),
        )
        .unwrap();
        let templates = Templates::new(&templates).unwrap();
        NotifySetup::new(routing, Arc::new(templates), Arc::new(messenger))
    }

    /// The emails moto's SES kept: (to, subject, body).
    pub fn emails(&self) -> Vec<(String, String, String)> {
        let (status, sent) = emulator().control(
            "GET",
            &format!("/_dormant/ses/sent?account={}", self.a.id),
            None,
        );
        assert_eq!(status, 200, "{sent}");
        let mut out: Vec<_> = sent
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let to = m["destinations"]["ToAddresses"][0]
                    .as_str()
                    .unwrap()
                    .to_string();
                let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                (to, s("subject"), s("body"))
            })
            .collect();
        out.sort();
        out
    }

    /// Every message the feed's queue has (each SNS publish, raw).
    pub async fn feed(&self) -> Vec<String> {
        let sqs = aws_sdk_sqs::Client::new(&self.a.sdk().await);
        let mut out = Vec::new();
        for _ in 0..5 {
            let got = sqs
                .receive_message()
                .queue_url(&self.queue)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = got.messages();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                out.push(m.body().unwrap_or_default().to_string());
                sqs.delete_message()
                    .queue_url(&self.queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        out
    }
}

pub fn arn(a: &Account, name: &str) -> String {
    format!("arn:aws:iam::{}:role/{name}", a.id)
}
