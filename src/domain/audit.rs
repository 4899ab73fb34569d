//! One line of the audit trail: who or what did which step, with what outcome, and why.

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    DryRun,
    Skipped,
    Failed,
    FallbackStarted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::DryRun => "dry_run",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
            Outcome::FallbackStarted => "fallback_started",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// A step name, or `release`, `restore`, `exempt`, `approve`, `breaker_reset`.
    pub step: String,
    pub outcome: Outcome,
    /// `controller`, or the CLI caller's ARN.
    pub actor: String,
    pub reason: String,
    pub event_id: Option<String>,
}
