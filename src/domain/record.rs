//! The per-subject state dormant keeps: its stage, the step in flight and the history.

use serde::{Deserialize, Serialize};

use super::effect::Effect;
use super::exemption::OpenExemption;
use super::security_hub::HubFindingRef;
use super::stage::{Stage, Step};
use super::subject::Subject;
use super::time::Timestamp;

/// Who approved a deletion, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    pub at: Timestamp,
}

/// A step that was started but not yet committed: written before the first IAM call, so a crash
/// leaves a record of exactly what remains to finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub step: Step,
    pub started_at: Timestamp,
    pub effects: Vec<Effect>,
    /// The record to commit once every effect is done.
    pub after: Box<Record>,
    /// SSM Automation executions carrying the step out instead of the controller (docs/design.md,
    /// 'SSM Automation fallback'); polled on each tick until they end.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Failed attempts so far; each failure pushes the next one back (see [`retry_delay`]).
    #[serde(default)]
    pub attempts: u32,
    /// No other run takes the intent over before this time: the lease of the run carrying it
    /// out, or the backoff after a failure. `None` (intents written by older versions): the
    /// lease from `started_at`.
    #[serde(default)]
    pub held_until: Option<Timestamp>,
    /// The last failure, in words: a repeat of the same failure is not announced again.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the SSM executions in `fallback` were started (their timeout counts from here).
    #[serde(default)]
    pub fallback_since: Option<Timestamp>,
}

impl Intent {
    /// A new intent for `step`, written before its first IAM call.
    pub fn new(step: Step, started_at: Timestamp, effects: Vec<Effect>, after: Record) -> Self {
        Intent {
            step,
            started_at,
            effects,
            after: Box::new(after),
            fallback: Vec::new(),
            attempts: 0,
            held_until: None,
            last_error: None,
            fallback_since: None,
        }
    }

    /// When another run may take the intent over.
    pub fn not_before(&self, lease: chrono::Duration) -> Timestamp {
        self.held_until.unwrap_or(self.started_at + lease)
    }
}

/// How long a failed step waits before its next attempt: 15 minutes, doubling per failed attempt,
/// at most a day. A permanent failure (a quota, a malformed document, AccessDenied without a
/// fallback) then costs one attempt a day instead of one per tick.
pub fn retry_delay(attempts: u32) -> chrono::Duration {
    let minutes = 15_i64.saturating_mul(1_i64 << attempts.saturating_sub(1).min(7));
    chrono::Duration::minutes(minutes.min(24 * 60))
}

/// The state of one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub subject: Subject,
    pub stage: Stage,
    /// When the current stage took effect; every wait counts from here.
    pub stage_since: Option<Timestamp>,
    pub noticed_at: Option<Timestamp>,
    pub next_step: Option<Step>,
    pub next_due_at: Option<Timestamp>,
    /// Exactly the keys dormant turned off; undo turns these (and only these) back on.
    pub keys_deactivated: Vec<String>,
    pub approval: Option<Approval>,
    pub released_at: Option<Timestamp>,
    /// Why the record is in its stage, in words.
    pub reason: String,
    pub last_used_at: Option<Timestamp>,
    /// Optimistic-concurrency version; 0 for a record never stored.
    pub version: u64,
    pub pending: Option<Intent>,
    /// The `RoleId`/`UserId` of the identity this record is about. A different id under the same
    /// name is a new identity, which starts clean. `None` in records written before it was kept.
    #[serde(default)]
    pub unique_id: Option<String>,
    /// Password subjects: the `CreateDate` of the login profile this record is about; a later one
    /// is a new password.
    #[serde(default)]
    pub login_profile_created_at: Option<Timestamp>,
    /// An exemption tag without a usable end date and when dormant first saw it: it holds for
    /// `exemptions.max_days` from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_exemption: Option<OpenExemption>,
    /// The Security Hub findings that nominated this subject: their workflow follows its ladder
    /// (docs/design.md, 'Security Hub').
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hub_findings: Vec<HubFindingRef>,
    /// Whole identities: `Some(true)` while dormant's quarantine policy on the identity is one
    /// dormant attached, `Some(false)` when its quarantine step found the policy attached by
    /// someone else (an operator's incident response), which dormant never detaches. `None`:
    /// nothing attached by dormant, or a record from a version before this was kept (see
    /// [`Record::owns_quarantine`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_attached: Option<bool>,
}

/// How long after a release a claim on a quarantine policy found already gone is kept: the SSM
/// fallback's timeout, after which no execution of dormant's attaches it any more.
pub const QUARANTINE_CLAIM: chrono::Duration = chrono::Duration::hours(24);

impl Record {
    /// A subject dormant has not acted on.
    pub fn new(subject: Subject) -> Self {
        Record {
            subject,
            stage: Stage::Clean,
            stage_since: None,
            noticed_at: None,
            next_step: None,
            next_due_at: None,
            keys_deactivated: Vec::new(),
            approval: None,
            released_at: None,
            reason: String::new(),
            last_used_at: None,
            version: 0,
            pending: None,
            unique_id: None,
            login_profile_created_at: None,
            open_exemption: None,
            hub_findings: Vec::new(),
            quarantine_attached: None,
        }
    }

    /// Whether a quarantine policy on the identity is dormant's to detach: its record says dormant
    /// attached it. A record from before this was kept (`None`: every release, notice and
    /// quarantine of this version writes it) says so by its stage (every version quarantined a
    /// whole identity on its way past `quarantined`), and off the ladder by the rule those
    /// versions repaired by: any identity dormant itself noticed.
    pub fn owns_quarantine(&self) -> bool {
        self.quarantine_attached.unwrap_or(match self.stage {
            Stage::Quarantined | Stage::KeysDeactivated | Stage::PendingDelete => true,
            Stage::Noticed => false,
            Stage::Released | Stage::Exempt | Stage::Clean | Stage::Deleted => {
                self.noticed_at.is_some()
            }
        })
    }

    /// [`Record::owns_quarantine`] as of `now`: off the ladder, a claim kept by a release of this
    /// ladder expires [`QUARANTINE_CLAIM`] after it (the SSM fallback's timeout: no execution of
    /// dormant's can attach the policy later), so a policy attached by hand after that stays.
    pub fn owns_quarantine_at(&self, now: Timestamp) -> bool {
        let released_in_this_ladder = self
            .released_at
            .filter(|at| self.noticed_at.is_none_or(|n| *at >= n));
        self.owns_quarantine()
            && (self.stage.is_on_ladder()
                || released_in_this_ladder.is_none_or(|at| now - at <= QUARANTINE_CLAIM))
    }

    /// The record as it would be if its pending step had taken effect in IAM as far as it can
    /// have: the keys it deactivates count as dormant's, and a step taken from off the ladder
    /// counts as on it (its tags may be there). The intent is dropped; the stage is otherwise
    /// the one before the step, whose waits still hold.
    pub fn assuming_intent_done(&self) -> Record {
        let mut r = self.clone();
        let Some(intent) = r.pending.take() else {
            return r;
        };
        let mut ours: Vec<&String> = Vec::new();
        for effect in &intent.effects {
            if let Effect::DeactivateKeys { key_ids } = effect {
                ours.extend(key_ids);
            }
        }
        // An intent that took over from an earlier attempt of a key deactivation finds the keys
        // that attempt turned off already off and deactivates nothing itself; its record-after
        // still lists them as dormant's (a release's or a notice's lists none).
        ours.extend(&intent.after.keys_deactivated);
        for id in ours {
            if !r.keys_deactivated.contains(id) {
                r.keys_deactivated.push(id.clone());
            }
        }
        if !r.stage.is_on_ladder() {
            r.stage = intent.after.stage;
        }
        // A quarantine cut short may have attached dormant's policy.
        if intent.after.owns_quarantine() {
            r.quarantine_attached = Some(true);
        }
        r
    }

    /// Moves to `stage` as of `now`, clearing the schedule (the caller sets the next one).
    pub fn entering(&self, stage: Stage, now: Timestamp, reason: String) -> Record {
        Record {
            // Ownership read off an earlier version's stage is kept once the stage changes.
            quarantine_attached: match self.quarantine_attached {
                None if self.owns_quarantine() => Some(true),
                kept => kept,
            },
            stage,
            stage_since: Some(now),
            next_step: None,
            next_due_at: None,
            reason,
            pending: None,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::subject::Principal;

    #[test]
    fn a_record_stored_before_identities_were_kept_still_loads() {
        let mut r = Record::new(Subject::whole(Principal::role("123456789012", "/", "r")));
        r.unique_id = Some("AROAEXAMPLE".into());
        let mut json: serde_json::Value = serde_json::to_value(&r).unwrap();
        let back: Record = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, r);

        let fields = json.as_object_mut().unwrap();
        fields.remove("unique_id");
        fields.remove("login_profile_created_at");
        let old: Record = serde_json::from_value(json).unwrap();
        assert_eq!((old.unique_id, old.login_profile_created_at), (None, None));
    }
}
