//! The sweep queue: one SQS message per account (`SendMessageBatch`, ten per request).

use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;

use super::retry::{classify, RetryPolicy};
use super::{ErrorKind, PortError, PortResult};
use crate::inbound::sqs::encode;
use crate::ports::{AccountSweep, SweepQueue};

/// SQS takes at most ten entries per `SendMessageBatch`.
const BATCH: usize = 10;

pub struct SqsSweepQueue {
    client: Client,
    queue_url: String,
    retry: RetryPolicy,
}

impl SqsSweepQueue {
    pub fn new(client: Client, queue_url: impl Into<String>, retry: RetryPolicy) -> Self {
        SqsSweepQueue {
            client,
            queue_url: queue_url.into(),
            retry,
        }
    }
}

#[async_trait]
impl SweepQueue for SqsSweepQueue {
    async fn send(&self, requests: &[AccountSweep]) -> PortResult<()> {
        for chunk in requests.chunks(BATCH) {
            // Entries still to send: a batch can half-succeed with HTTP 200, and only the failed
            // entries are sent again (a duplicate sweep would be harmless, but it is wasted work).
            let pending: Mutex<Vec<(String, String)>> = Mutex::new(
                chunk
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (i.to_string(), encode(r)))
                    .collect(),
            );
            self.retry
                .run(|| async {
                    let entries = pending
                        .lock()
                        .map_err(|_| poisoned())?
                        .iter()
                        .map(|(id, body)| {
                            SendMessageBatchRequestEntry::builder()
                                .id(id)
                                .message_body(body)
                                .build()
                                .map_err(|e| {
                                    PortError::new(
                                        ErrorKind::Permanent,
                                        "SendMessageBatch",
                                        e.to_string(),
                                    )
                                })
                        })
                        .collect::<PortResult<Vec<_>>>()?;
                    let out = self
                        .client
                        .send_message_batch()
                        .queue_url(&self.queue_url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .map_err(|e| classify("SendMessageBatch", e))?;
                    let mut pending = pending.lock().map_err(|_| poisoned())?;
                    pending.retain(|(id, _)| out.failed().iter().any(|f| f.id() == id));
                    let Some(first) = out.failed().first() else {
                        return Ok(());
                    };
                    let sender_fault = out.failed().iter().any(|f| f.sender_fault());
                    Err(PortError::new(
                        if sender_fault {
                            ErrorKind::Permanent
                        } else {
                            ErrorKind::Transient
                        },
                        "SendMessageBatch",
                        format!(
                            "{} of the messages were not sent, e.g. {}: {}",
                            out.failed().len(),
                            first.code(),
                            first.message().unwrap_or("no message")
                        ),
                    ))
                })
                .await?;
        }
        Ok(())
    }
}

fn poisoned() -> PortError {
    PortError::new(
        ErrorKind::Permanent,
        "SendMessageBatch",
        "internal: a lock was poisoned",
    )
}
