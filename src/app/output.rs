//! The JSON shapes of docs/design.md, 'Operator commands'. Field names are a contract: scripts depend on them.

use serde::Serialize;

use crate::domain::breaker::Reset;
use crate::domain::{AuditEntry, BreakerState, Decision, Outcome, Record, Stage, Step, Timestamp};

use crate::domain::time::fmt_time as rfc3339;

/// One step taken, skipped or planned in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionReport {
    pub identity: String,
    pub step: Step,
    pub outcome: Outcome,
    pub reason: String,
}

/// `sweep`, `tick` and `handle-event`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub evaluated: usize,
    pub actions: Vec<ActionReport>,
    pub breaker_tripped: bool,
    /// Identities a sweep left for the next run at its deadline (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub unfinished: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl RunReport {
    /// Adds another run's report (one account's, one finding's) to this one.
    pub fn add(&mut self, other: RunReport) {
        self.evaluated += other.evaluated;
        self.actions.extend(other.actions);
        self.breaker_tripped |= other.breaker_tripped;
        self.unfinished += other.unfinished;
    }

    pub fn failed(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| a.outcome == Outcome::Failed)
            .count()
    }
}

/// `status` and each row of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    pub identity: String,
    pub kind: &'static str,
    pub stage: Stage,
    pub next_step: Option<Step>,
    pub next_due_at: Option<String>,
    pub exempt: bool,
    pub reason: String,
    pub last_used_at: Option<String>,
}

impl StatusReport {
    /// From the stored record alone (`list`).
    pub fn from_record(r: &Record) -> Self {
        StatusReport {
            identity: r.subject.id(),
            kind: r.subject.kind().as_str(),
            stage: r.stage,
            next_step: r.next_step,
            next_due_at: r.next_due_at.map(rfc3339),
            exempt: r.stage == Stage::Exempt,
            reason: r.reason.clone(),
            last_used_at: r.last_used_at.map(rfc3339),
        }
    }

    /// From the record and a fresh look at IAM (`status`): the exemption, the evidence, and
    /// what would happen next (now, if a step is due).
    pub fn from_decision(r: &Record, d: &Decision, now: Timestamp) -> Self {
        let mut s = Self::from_record(r);
        s.exempt = d.exemption.is_some();
        s.reason = d.reason.clone();
        let next = match d.step() {
            Some(step) => Some((step, now)),
            None => d.next,
        };
        if let Some((step, at)) = next {
            s.next_step = Some(step);
            s.next_due_at = Some(rfc3339(at));
        }
        if let Some(a) = &d.activity {
            s.last_used_at = a.last_used_at.map(rfc3339);
        }
        s
    }
}

/// One line of `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub at: String,
    pub step: String,
    pub outcome: Outcome,
    pub actor: String,
    pub reason: String,
    pub event_id: Option<String>,
}

impl From<&AuditEntry> for HistoryEntry {
    fn from(e: &AuditEntry) -> Self {
        HistoryEntry {
            at: rfc3339(e.at),
            step: e.step.clone(),
            outcome: e.outcome,
            actor: e.actor.clone(),
            reason: e.reason.clone(),
            event_id: e.event_id.clone(),
        }
    }
}

/// What `dormant breaker status|reset` prints for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerReport {
    pub account: String,
    pub tripped: bool,
    pub tripped_at: Option<String>,
    pub cause: Option<String>,
    pub quarantines_last_24h: u32,
    pub last_reset: Option<Reset>,
    /// When the last of those quarantines leaves the 24-hour window (for the text form).
    #[serde(skip)]
    pub window_clears_at: Option<String>,
}

impl BreakerReport {
    pub fn of(account: &str, state: &BreakerState, now: Timestamp) -> Self {
        BreakerReport {
            account: account.to_string(),
            tripped: state.tripped,
            tripped_at: state.tripped_at.map(rfc3339),
            cause: state.cause.clone(),
            quarantines_last_24h: state.quarantines_within_day(now),
            last_reset: state.last_reset.clone(),
            window_clears_at: state
                .quarantines
                .iter()
                .filter(|t| **t > now - chrono::Duration::hours(24))
                .max()
                .map(|t| rfc3339(*t + chrono::Duration::hours(24))),
        }
    }
}
