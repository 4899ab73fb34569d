//! The events dormant publishes (docs/design.md, 'Events dormant publishes'): `source` `dormant`, one detail-type per step.

use serde::{Deserialize, Serialize};

use super::record::Record;
use super::stage::Step;
use super::time::{fmt_time, Timestamp};

pub const EVENT_SOURCE: &str = "dormant";
pub const BREAKER_TRIPPED: &str = "Circuit Breaker Tripped";
pub const REMEDIATION_FAILED: &str = "Remediation Failed";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundEvent {
    pub detail_type: String,
    pub detail: EventDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDetail {
    pub account: String,
    pub arn: String,
    pub kind: String,
    pub stage: String,
    pub next_step: Option<Step>,
    pub next_step_at: Option<String>,
    pub reason: String,
    pub last_used_at: Option<String>,
}

impl OutboundEvent {
    /// The event for a step just committed (or failed), from the record as it now stands.
    pub fn for_record(detail_type: &str, record: &Record, reason: &str) -> Self {
        OutboundEvent {
            detail_type: detail_type.to_string(),
            detail: EventDetail {
                account: record.subject.principal.account.clone(),
                arn: record.subject.id(),
                kind: record.subject.kind().as_str().to_string(),
                stage: record.stage.as_str().to_string(),
                next_step: record.next_step,
                next_step_at: record.next_due_at.map(fmt_time),
                reason: reason.to_string(),
                last_used_at: record.last_used_at.map(fmt_time),
            },
        }
    }

    pub fn step_done(step: Step, record: &Record, reason: &str) -> Self {
        Self::for_record(step.event_detail_type(), record, reason)
    }

    pub fn breaker_tripped(account: &str, cause: &str, at: Timestamp) -> Self {
        OutboundEvent {
            detail_type: BREAKER_TRIPPED.to_string(),
            detail: EventDetail {
                account: account.to_string(),
                arn: String::new(),
                kind: String::new(),
                stage: String::new(),
                next_step: None,
                next_step_at: None,
                reason: format!("{cause} (at {})", fmt_time(at)),
                last_used_at: None,
            },
        }
    }
}
