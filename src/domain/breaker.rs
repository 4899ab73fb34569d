//! Circuit-breaker arithmetic. The store keeps the counts; the core only checks them.

use serde::{Deserialize, Serialize};

use super::policy::BreakerLimits;
use super::stage::Step;

/// What the current run has done so far, and the account's recent history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Already tripped (persisted until `dormant breaker reset`).
    pub tripped: bool,
    /// Access-cutting steps taken (or, in dry-run, that would be taken) in this run.
    pub actions_this_run: u32,
    /// Quarantines in the account within the last 24 hours.
    pub quarantines_in_window: u32,
    /// Identities (roles + users) in the account.
    pub identities_in_account: u32,
}

/// Why the breaker stopped a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trip {
    pub cause: String,
    /// Whether this step is the one that trips it (as opposed to it having been tripped before).
    pub newly_tripped: bool,
}

impl Budget {
    /// `Some` if taking `step` now would exceed a limit (or the breaker is already tripped).
    pub fn check(&self, step: Step, limits: &BreakerLimits) -> Option<Trip> {
        if self.tripped {
            return Some(Trip {
                cause: "the circuit breaker is tripped; `dormant breaker reset` re-enables steps"
                    .to_string(),
                newly_tripped: false,
            });
        }
        if self.actions_this_run >= limits.max_actions_per_run {
            return Some(Trip {
                cause: format!(
                    "more than {} access-cutting steps in one run",
                    limits.max_actions_per_run
                ),
                newly_tripped: true,
            });
        }
        if step == Step::Quarantine {
            let count = self.quarantines_in_window + 1;
            let fraction = f64::from(count) / f64::from(self.identities_in_account.max(1));
            if count >= limits.min_count && fraction > limits.max_quarantine_fraction {
                // Names the quarantine refused: the window holds one fewer than `count`.
                return Some(Trip {
                    cause: format!(
                        "quarantine {count} within 24 h would put {count} of {} identities in \
                         quarantine, more than {:.0} %",
                        self.identities_in_account,
                        limits.max_quarantine_fraction * 100.0
                    ),
                    newly_tripped: true,
                });
            }
        }
        None
    }

    /// Counts a step that was taken (or would be, in dry-run).
    pub fn record(&mut self, step: Step) {
        if step.cuts_access() {
            self.actions_this_run += 1;
        }
        if step == Step::Quarantine {
            self.quarantines_in_window += 1;
        }
    }
}

/// The persisted breaker of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    pub tripped: bool,
    pub tripped_at: Option<super::time::Timestamp>,
    pub cause: Option<String>,
    /// Quarantines taken, kept for the 24-hour window.
    pub quarantines: Vec<super::time::Timestamp>,
    /// Roles + users the last sweep saw; the quarantine fraction's denominator between sweeps.
    #[serde(default)]
    pub identities: u32,
    /// The last operator reset: who, why and when (the audit of `dormant breaker reset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reset: Option<Reset>,
    /// Optimistic-concurrency version of the stored item; 0 when none is stored.
    #[serde(default, skip_serializing)]
    pub version: u64,
}

/// Who reset the breaker, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reset {
    pub by: String,
    pub reason: String,
    pub at: super::time::Timestamp,
}

impl BreakerState {
    /// Trips the breaker; `false` if it was already tripped (the first cause is kept).
    pub fn trip(&mut self, cause: &str, now: super::time::Timestamp) -> bool {
        if self.tripped {
            return false;
        }
        self.tripped = true;
        self.tripped_at = Some(now);
        self.cause = Some(cause.to_string());
        true
    }

    /// Counts a quarantine and forgets those older than the window.
    pub fn count_quarantine(&mut self, now: super::time::Timestamp) {
        self.quarantines.push(now);
        let since = now - chrono::Duration::hours(24);
        self.quarantines.retain(|t| *t > since);
    }

    /// The operator's reset: steps may run again; the quarantine history stays.
    pub fn reset(&mut self) {
        self.tripped = false;
        self.tripped_at = None;
        self.cause = None;
    }

    /// Quarantines within the 24 hours before `now`.
    pub fn quarantines_within_day(&self, now: super::time::Timestamp) -> u32 {
        let since = now - chrono::Duration::hours(24);
        let n = self.quarantines.iter().filter(|t| **t > since).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}
