//! The sweep queue's consumer: one batch of SQS sweep requests in, the accounts swept and the
//! messages to retry out (docs/design.md, 'Multi-account and scale').

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::app::fleet::{add_account_run, AccountOutcome, Engines};
use crate::app::output::RunReport;
use crate::domain::Timestamp;
use crate::error::Error;
use crate::inbound::sqs;
use crate::ports::{Iam, Store};

/// Whether a Lambda payload is an SQS event (the sweep queue's event source mapping).
pub fn is_sqs_event(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

/// A message that is never retried: it can never succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedMessage {
    pub message_id: String,
    pub reason: String,
}

/// What one batch from the sweep queue did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueReport {
    #[serde(flatten)]
    pub run: RunReport,
    /// One line per account swept (or that failed), by account.
    pub accounts: Vec<AccountOutcome>,
    /// Messages whose account failed: handed back to SQS to be retried alone.
    pub retry: Vec<String>,
    /// Malformed messages, and requests for an account dormant does not manage: not retried.
    pub rejected: Vec<RejectedMessage>,
}

impl QueueReport {
    /// The Lambda's answer to SQS (`ReportBatchItemFailures`): only the failed messages return to
    /// the queue; the others are deleted.
    pub fn batch_response(&self) -> SqsBatchResponse {
        let mut r = SqsBatchResponse::default();
        for id in &self.retry {
            r.add_failure(id.clone());
        }
        r
    }
}

/// Sweeps the accounts a batch of sweep requests names, `concurrency` at a time (an account named
/// twice is swept once). An account that fails (AssumeRole denied, a throttling storm) has its
/// messages retried; a malformed message is reported, logged with its message id and dropped.
pub async fn sweep_requested<I, S, E>(
    event: &SqsEvent,
    engines: &E,
    concurrency: usize,
    now: Timestamp,
) -> QueueReport
where
    I: Iam + 'static,
    S: Store + 'static,
    E: Engines<I, S> + ?Sized,
{
    let mut report = QueueReport::default();
    // account -> the ids of the messages asking for it
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, message) in event.records.iter().enumerate() {
        let Some(id) = message.message_id.clone().filter(|i| !i.is_empty()) else {
            // SQS always sets it; without one the message cannot even be named for a retry.
            error!(
                index = n,
                "sweep request rejected: SQS record without a messageId; dropped"
            );
            report.rejected.push(RejectedMessage {
                message_id: format!("(record {n}, no messageId)"),
                reason: "no messageId".to_string(),
            });
            continue;
        };
        match sqs::decode(message.body.as_deref().unwrap_or_default()) {
            Ok(request) => {
                info!(message_id = %id, account = %request.account, run = %request.run, "sweep request");
                wanted.entry(request.account).or_default().push(id);
            }
            Err(reason) => {
                error!(message_id = %id, %reason, "sweep request rejected: malformed; not retried");
                report.rejected.push(RejectedMessage {
                    message_id: id,
                    reason: format!(
                        "malformed message {}: {reason}",
                        message.message_id.as_deref().unwrap_or_default()
                    ),
                });
            }
        }
    }
    let results: Vec<(String, Vec<String>, Result<RunReport, Error>)> = stream::iter(wanted)
        .map(|(account, ids)| async move {
            let result = match engines.engine_for(&account).await {
                Ok(engine) => engine.sweep(now).await,
                Err(e) => Err(e),
            };
            (account, ids, result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (account, ids, result) in results {
        match result {
            Ok(r) => add_account_run(&mut report.run, &mut report.accounts, account, r),
            // Not an account dormant manages: a retry would be refused the same way.
            Err(e @ Error::Usage(_)) => {
                error!(%account, error = %e, "sweep request rejected: not an account dormant manages; not retried");
                for id in ids {
                    report.rejected.push(RejectedMessage {
                        message_id: id,
                        reason: e.to_string(),
                    });
                }
                report
                    .accounts
                    .push(AccountOutcome::failed(account, e.to_string()));
            }
            Err(e) => {
                warn!(%account, error = %e, "account failed; its messages go back to the queue");
                report.retry.extend(ids);
                report
                    .accounts
                    .push(AccountOutcome::failed(account, e.to_string()));
            }
        }
    }
    report.accounts.sort_by(|a, b| a.account.cmp(&b.account));
    report.retry.sort();
    report
}
