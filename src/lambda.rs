//! The Lambda handler: one EventBridge event in, a run report out. Generic over the ports, so it
//! is tested without AWS; `bin/lambda.rs` only wires it up.
//!
//! Today it acts on scheduled `sweep` and `tick` events. Findings from AWS Config, Access Analyzer,
//! Security Hub and CloudTrail are acknowledged and ignored with a logged reason until their
//! parsers land (issue 6), so EventBridge does not retry them.

use serde_json::{json, Value};
use tracing::{info, warn};

use crate::app::Engine;
use crate::domain::Timestamp;
use crate::error::Error;
use crate::ports::{Iam, Store};

/// A handler failure, classified for the Lambda runtime (and so for EventBridge's retries).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event can never be processed: do not retry.
    #[error("malformed event {id}: {reason}")]
    Malformed { id: String, reason: String },
    #[error(transparent)]
    Failed(#[from] Error),
}

impl HandlerError {
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Malformed { .. } => false,
            HandlerError::Failed(e) => e.is_retryable(),
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
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

/// Processes one EventBridge event.
pub async fn handle<I: Iam, S: Store>(
    event: &Value,
    engine: &Engine<I, S>,
    now: Timestamp,
) -> Result<Value, HandlerError> {
    let id = event
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("(no id)")
        .to_string();
    let malformed = |reason: &str| HandlerError::Malformed {
        id: id.clone(),
        reason: reason.to_string(),
    };
    let source = event
        .get("source")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no \"source\""))?;
    let detail_type = event
        .get("detail-type")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no \"detail-type\""))?;

    let scheduled =
        matches!(source, "aws.events" | "aws.scheduler") && detail_type == "Scheduled Event";
    if !scheduled {
        let reason = format!("events from {source} / {detail_type} are not handled yet");
        info!(event_id = %id, %reason, "ignored");
        return Ok(json!({"outcome": "ignored", "reason": reason}));
    }
    let action = event
        .pointer("/detail/action")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            malformed("a scheduled event needs detail.action = \"sweep\" or \"tick\"")
        })?;
    if !matches!(action, "sweep" | "tick") {
        return Err(malformed(&format!(
            "unknown detail.action '{action}' (expected sweep or tick)"
        )));
    }
    if !engine
        .store
        .claim_event(&id, now)
        .await
        .map_err(Error::from)?
    {
        info!(event_id = %id, "duplicate delivery; already processed");
        return Ok(json!({"outcome": "duplicate", "event_id": id}));
    }
    let report = if action == "sweep" {
        engine.sweep(now).await?
    } else {
        engine.tick(now).await?
    };
    if report.failed() > 0 {
        warn!(event_id = %id, failed = report.failed(), "some steps failed; they are recorded and retried on the next run");
    }
    serde_json::to_value(&report).map_err(|e| malformed(&format!("cannot render the report: {e}")))
}
