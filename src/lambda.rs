//! The Lambda's shell: one invocation in, routed to the event handling or the sweep queue's
//! consumer in `app`, its answer out. `bin/lambda.rs` builds a [`ColdStart`] once.

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;

use crate::app::event::{handle_event, EventError};
use crate::app::fanout::SweepFanOut;
use crate::app::fleet::{Engines, FleetSource};
use crate::app::sweep_queue::{is_sqs_event, sweep_requested};
use crate::domain::Timestamp;
use crate::error::Error;
use crate::inbound::eventbridge::ClassifyRules;
use crate::ports::{Iam, Store};

impl From<EventError> for lambda_runtime::Diagnostic {
    fn from(e: EventError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: if e.is_retryable() {
                "Retryable"
            } else {
                "NonRetryable"
            }
            .to_string(),
            error_message: e.to_string(),
        }
    }
}

/// What the Lambda handles events with, built once at cold start.
pub struct ColdStart<'a, I, S, E: ?Sized> {
    /// The fleet for EventBridge events, built when the first one needs it.
    pub fleet: &'a dyn FleetSource<I, S>,
    pub rules: &'a ClassifyRules,
    /// Engines for the accounts of queued sweep requests.
    pub engines: &'a E,
    /// `Some` when the scheduled sweep fans out through the sweep queue.
    pub fanout: Option<&'a dyn SweepFanOut>,
    pub concurrency: usize,
}

/// One Lambda invocation: an SQS batch from the sweep queue (answered with `batchItemFailures`)
/// or an EventBridge event (answered with its report).
pub async fn invoke<I, S, E>(
    payload: Value,
    cold: &ColdStart<'_, I, S, E>,
    now: Timestamp,
) -> Result<Value, EventError>
where
    I: Iam + 'static,
    S: Store + 'static,
    E: Engines<I, S> + ?Sized,
{
    let answer = if is_sqs_event(&payload) {
        let event: SqsEvent =
            serde_json::from_value(payload).map_err(|e| EventError::Malformed {
                id: "(SQS batch)".to_string(),
                reason: e.to_string(),
            })?;
        let report = sweep_requested(&event, cold.engines, cold.concurrency, now).await;
        serde_json::to_value(report.batch_response())
    } else {
        let report = handle_event(&payload, cold.fleet, cold.rules, cold.fanout, now).await?;
        serde_json::to_value(report)
    };
    answer.map_err(|e| {
        EventError::Failed(Error::Rejected(format!("cannot serialize the answer: {e}")))
    })
}
