//! [`Messenger`] over SES v2 (`SendEmail`, plain text and HTML), SNS (`Publish`) and Slack
//! incoming webhooks (an HTTPS POST of the Block Kit JSON). Transient failures (throttling,
//! 5xx, a webhook's 429/5xx) are retried with backoff here; the engine retries the rest on the
//! next run.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use super::retry::RetryPolicy;
use super::{ErrorKind, PortError, PortResult};
use crate::domain::notify::{Recipient, Rendered};
use crate::ports::Messenger;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// How long one webhook POST may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);

pub struct AwsMessenger {
    ses: aws_sdk_sesv2::Client,
    sns: aws_sdk_sns::Client,
    /// The verified SES identity messages are sent from; `None`: email is not configured.
    from: Option<String>,
    /// Slack channel (`#team-a`) → incoming webhook URL.
    webhooks: BTreeMap<String, String>,
    http: HttpClient<Https, Full<Bytes>>,
    retry: RetryPolicy,
}

impl AwsMessenger {
    pub fn new(
        ses: aws_sdk_sesv2::Client,
        sns: aws_sdk_sns::Client,
        from: Option<String>,
        webhooks: BTreeMap<String, String>,
        retry: RetryPolicy,
    ) -> PortResult<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| {
                PortError::new(ErrorKind::Permanent, "Slack", format!("no TLS roots: {e}"))
            })?
            // http:// only for tests on 127.0.0.1; configured webhooks are checked to be https.
            .https_or_http()
            .enable_http1()
            .build();
        Ok(AwsMessenger {
            ses,
            sns,
            from,
            webhooks,
            http: HttpClient::builder(TokioExecutor::new()).build(https),
            retry,
        })
    }

    async fn email(&self, to: &str, m: &Rendered) -> PortResult<()> {
        let Some(from) = &self.from else {
            return Err(PortError::new(
                ErrorKind::Permanent,
                "SendEmail",
                "no sender configured (notify.email_from)",
            ));
        };
        let content = |s: &str| Content::builder().data(s).charset("UTF-8").build();
        let mut body = Body::builder().text(content(&m.text).map_err(built)?);
        if let Some(html) = &m.html {
            body = body.html(content(html).map_err(built)?);
        }
        let message = Message::builder()
            .subject(content(&m.subject).map_err(built)?)
            .body(body.build())
            .build();
        let request = self
            .ses
            .send_email()
            .from_email_address(from)
            .destination(Destination::builder().to_addresses(to).build())
            .content(EmailContent::builder().simple(message).build());
        self.retry
            .call("SendEmail", || request.clone().send())
            .await
            .map(drop)
    }

    async fn publish(&self, topic: &str, m: &Rendered) -> PortResult<()> {
        let request = self
            .sns
            .publish()
            .topic_arn(topic)
            .subject(&m.subject)
            .message(&m.text);
        self.retry
            .call("Publish", || request.clone().send())
            .await
            .map(drop)
    }

    async fn slack(&self, channel: &str, m: &Rendered) -> PortResult<()> {
        let op = "SlackWebhook";
        let Some(url) = self.webhooks.get(channel) else {
            return Err(PortError::new(
                ErrorKind::Permanent,
                op,
                format!("no webhook configured for {channel}"),
            ));
        };
        let payload = m.slack.as_ref().map(|j| j.to_string()).unwrap_or_default();
        self.retry
            .run(|| async {
                let request = hyper::Request::post(url.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(payload.clone())))
                    .map_err(|e| PortError::new(ErrorKind::Permanent, op, e.to_string()))?;
                let response = tokio::time::timeout(WEBHOOK_TIMEOUT, self.http.request(request))
                    .await
                    .map_err(|_| PortError::new(ErrorKind::Transient, op, "timed out"))?
                    .map_err(|e| PortError::new(ErrorKind::Transient, op, e.to_string()))?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let body = response.into_body().collect().await.map(|b| b.to_bytes());
                let text = body
                    .map(|b| {
                        String::from_utf8_lossy(&b)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    })
                    .unwrap_or_default();
                let kind = if status.as_u16() == 429 || status.is_server_error() {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Permanent
                };
                Err(PortError::new(kind, op, format!("HTTP {status}: {text}")))
            })
            .await
    }
}

fn built(e: aws_sdk_sesv2::error::BuildError) -> PortError {
    PortError::new(ErrorKind::Permanent, "SendEmail", e.to_string())
}

#[async_trait]
impl Messenger for AwsMessenger {
    async fn send(&self, recipient: &Recipient, message: &Rendered) -> PortResult<()> {
        match recipient {
            Recipient::Email(to) => self.email(to, message).await,
            Recipient::Sns(topic) => self.publish(topic, message).await,
            Recipient::Slack(channel) => self.slack(channel, message).await,
        }
    }
}
