//! Operator commands decided in the core: `undo` and `approve`. Nothing is changed when they
//! refuse.

use super::decision::Decision;
use super::exemption;
use super::facts::Facts;
use super::ladder::release;
use super::policy::Policy;
use super::record::{Approval, Record};
use super::stage::{Stage, Step};
use super::time::Timestamp;

/// Why an operator command cannot be carried out. Nothing is changed in these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusedBecause {
    /// The subject, and what that means for the command (`there is nothing … to undo`).
    #[error("{0} is not tracked by dormant: {1}")]
    NotTracked(String, String),
    #[error("{0} is already {1}: nothing to undo")]
    AlreadyReleased(String, Stage),
    #[error("{0} was deleted by dormant: undo cannot bring it back; use `dormant restore`")]
    Deleted(String),
    #[error("{0} is {1}, not pending_delete: there is no deletion to approve")]
    NotPendingDelete(String, Stage),
    #[error("{0} is already approved by {1}")]
    AlreadyApproved(String, String),
    #[error("{0} no longer exists in IAM")]
    Gone(String),
    #[error("{0} is protected ({1}): dormant never changes it")]
    Protected(String, String),
    /// `restore` found the name held by an identity that is neither the deleted one nor one an
    /// earlier restore created: restoring onto it would hand it the deleted identity's access.
    #[error("{0} exists again in IAM as another identity (unique id {1}), not one dormant restored: restoring would give it the deleted identity's access, so nothing was changed; remove or rename that identity first, or grant the access yourself")]
    NameTaken(String, String),
}

/// The operator's `undo`: release now, whatever the schedule says. Cool-off starts from now.
pub fn undo(
    record: &Record,
    facts: Option<&Facts>,
    policy: &Policy,
    now: Timestamp,
    reason: &str,
) -> Result<Decision, RefusedBecause> {
    let id = record.subject.id();
    if let Some(why) = exemption::protection(&record.subject.principal, &policy.exemptions) {
        return Err(RefusedBecause::Protected(id, why));
    }
    // A step cut short by a crash or an error is rolled back with the rest: what it may have
    // done counts as dormant's, and the release works from what IAM shows now. The engine stops
    // SSM executions of the step before it calls this, so nothing lands after the release.
    let mut rolled_back = record.assuming_intent_done();
    // An intent handed to SSM stays visible to the release: an execution stopped just now may
    // still attach the quarantine, which the release keeps its claim on for a while.
    rolled_back.pending = record.pending.clone().filter(|i| !i.fallback.is_empty());
    let record = &rolled_back;
    match record.stage {
        Stage::Clean => Err(RefusedBecause::NotTracked(
            id,
            "there is nothing of dormant's to undo".to_string(),
        )),
        Stage::Released | Stage::Exempt => Err(RefusedBecause::AlreadyReleased(id, record.stage)),
        Stage::Deleted => Err(RefusedBecause::Deleted(id)),
        Stage::Noticed | Stage::Quarantined | Stage::KeysDeactivated | Stage::PendingDelete => {
            let facts = facts.ok_or(RefusedBecause::Gone(id))?;
            Ok(release(
                record,
                facts,
                policy,
                now,
                Stage::Released,
                format!("undone by operator: {reason}"),
            ))
        }
    }
}

/// The operator's `approve`: the record to store; the deletion then runs on the next tick.
pub fn approve(
    record: &Record,
    policy: &Policy,
    by: &str,
    now: Timestamp,
) -> Result<Record, RefusedBecause> {
    let id = record.subject.id();
    if let Some(why) = exemption::protection(&record.subject.principal, &policy.exemptions) {
        return Err(RefusedBecause::Protected(id, why));
    }
    if record.stage != Stage::PendingDelete {
        return Err(RefusedBecause::NotPendingDelete(id, record.stage));
    }
    if let Some(a) = &record.approval {
        return Err(RefusedBecause::AlreadyApproved(id, a.by.clone()));
    }
    let mut after = record.clone();
    after.approval = Some(Approval {
        by: by.to_string(),
        at: now,
    });
    after.next_step = Some(Step::Delete);
    after.next_due_at = Some(now);
    after.reason = format!("deletion approved by {by}");
    Ok(after)
}
