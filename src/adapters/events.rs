//! [`Publisher`] over EventBridge `PutEvents` (docs/design.md, 'Events dormant publishes'): source `dormant`, one entry per
//! event, on the configured bus.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use tracing::{debug, warn};

use super::retry::RetryPolicy;
use super::{ErrorKind, PortError, PortResult};
use crate::domain::event::EVENT_SOURCE;
use crate::domain::OutboundEvent;
use crate::ports::Publisher;

const OP: &str = "PutEvents";
/// `PutEvents` takes at most 10 entries per request.
const MAX_ENTRIES: usize = 10;
/// Rounds of resending the entries a `PutEvents` answer marked as failed, after the first send.
const PARTIAL_RETRY_ROUNDS: u32 = 3;
/// Per-entry error codes worth calling transient when they are still failing at the end.
const TRANSIENT_ENTRY_CODES: &[&str] = &[
    "ThrottlingException",
    "InternalFailure",
    "InternalException",
    "ServiceUnavailable",
];

pub struct EventBridgePublisher {
    client: Client,
    bus: String,
    retry: RetryPolicy,
}

/// An entry still failing after every round, with the error EventBridge gave for it.
struct Failed {
    code: String,
    message: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>, retry: RetryPolicy) -> Self {
        EventBridgePublisher {
            client,
            bus: bus.into(),
            retry,
        }
    }

    fn entry(&self, event: &OutboundEvent) -> PortResult<PutEventsRequestEntry> {
        let detail = serde_json::to_string(&event.detail).map_err(|e| {
            PortError::new(
                ErrorKind::Permanent,
                OP,
                format!(
                    "cannot serialise the detail of {:?}: {e}",
                    event.detail_type
                ),
            )
        })?;
        Ok(PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(&event.detail_type)
            .detail(detail)
            .event_bus_name(&self.bus)
            .build())
    }

    /// Sends one batch (≤ 10 entries). A request-level error (throttling, 5xx) is retried by the
    /// policy; entries the answer marks as failed are resent, alone, for a few rounds. Returns the
    /// entries still failing after that; a non-transient request-level error is returned as is.
    async fn put_batch(&self, batch: &[PutEventsRequestEntry]) -> PortResult<Vec<Failed>> {
        let c = &self.client;
        let mut pending = batch.to_vec();
        let mut round = 0;
        loop {
            let out = self
                .retry
                .call(OP, || {
                    c.put_events().set_entries(Some(pending.clone())).send()
                })
                .await?;
            if out.failed_entry_count() == 0 {
                return Ok(Vec::new());
            }
            // Results come in request order, one per entry; a failed one has an error code
            // instead of an event id. A missing result counts as failed: a duplicate
            // notification is better than a lost one.
            let results = out.entries();
            let mut still = Vec::new();
            let mut failed = Vec::new();
            for (i, entry) in pending.iter().enumerate() {
                let result = results.get(i);
                if result.is_some_and(|r| r.error_code().is_none() && r.event_id().is_some()) {
                    continue;
                }
                still.push(entry.clone());
                failed.push(Failed {
                    code: result
                        .and_then(|r| r.error_code())
                        .unwrap_or("NoResult")
                        .to_string(),
                    message: result
                        .and_then(|r| r.error_message())
                        .unwrap_or("no result for this entry")
                        .to_string(),
                });
            }
            if still.is_empty() || round == PARTIAL_RETRY_ROUNDS {
                return Ok(failed);
            }
            round += 1;
            let delay = self.round_delay(round);
            warn!(
                failed = still.len(),
                of = pending.len(),
                round,
                first_error = %failed[0].code,
                retry_in_ms = delay.as_millis() as u64,
                "PutEvents partially failed; resending the failed entries"
            );
            tokio::time::sleep(delay).await;
            pending = still;
        }
    }

    /// Exponential like the request-level backoff, from the same policy.
    fn round_delay(&self, round: u32) -> Duration {
        self.retry
            .min_delay
            .saturating_mul(1u32 << round.min(16))
            .min(self.retry.max_delay)
    }
}

#[async_trait]
impl Publisher for EventBridgePublisher {
    async fn publish(&self, events: &[OutboundEvent]) -> PortResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let entries = events
            .iter()
            .map(|e| self.entry(e))
            .collect::<PortResult<Vec<_>>>()?;
        // Every batch is tried even if an earlier one had failed entries: the others'
        // notifications still matter. A request-level error stops at once (the next batch would
        // meet the same AccessDenied or outage).
        let mut failed = Vec::new();
        for batch in entries.chunks(MAX_ENTRIES) {
            failed.extend(self.put_batch(batch).await?);
        }
        debug!(bus = %self.bus, events = events.len(), failed = failed.len(), "published");
        if failed.is_empty() {
            return Ok(());
        }
        let kind = if failed
            .iter()
            .all(|f| TRANSIENT_ENTRY_CODES.contains(&f.code.as_str()))
        {
            ErrorKind::Transient
        } else {
            ErrorKind::Permanent
        };
        let mut codes: Vec<&str> = failed.iter().map(|f| f.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        Err(PortError::new(
            kind,
            OP,
            format!(
                "{} of {} events failed after {PARTIAL_RETRY_ROUNDS} retries ({}; first: {})",
                failed.len(),
                events.len(),
                codes.join(", "),
                failed[0].message
            ),
        ))
    }
}
