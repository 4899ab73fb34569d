//! `decide`: given what dormant recorded, what IAM says now, the policy and the time, what to do.
//! One call takes at most one step, and every wait counts from when the previous step really took
//! effect, so a late run never collapses two steps into one.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use super::breaker::{Budget, Trip};
use super::effect::{stage_tag_keys, stage_tags, Effect};
use super::exemption::{self, Exemption, Verdict};
use super::facts::{fmt_time, Activity, Facts, Timestamp};
use super::policy::{DeleteMode, Policy};
use super::record::{Approval, Record, Stage, Step};
use super::subject::{PrincipalKind, Scope, Subject, SubjectKind};

/// How long a written intent belongs to the run that wrote it: the longest a Lambda invocation can
/// last. After that, the next run completes it.
pub const INTENT_LEASE: Duration = Duration::minutes(15);

/// Whether a chosen step may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "gate")]
pub enum Gate {
    Proceed,
    /// Dry-run: record what would happen, change nothing.
    DryRun,
    /// The circuit breaker stops this step (and trips, if it had not already).
    Breaker(Trip),
}

/// What to do now. Like kube-rs's `Action`, a value; only the executor causes side effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The step to take now; `None` when there is nothing to do yet.
    pub step: Option<Step>,
    pub gate: Gate,
    /// The IAM changes, in order. Empty for bookkeeping-only decisions.
    pub effects: Vec<Effect>,
    /// The record to commit once the effects are done. `None`: nothing to store.
    pub after: Option<Record>,
    /// Why, in words (goes to logs, audit, events and `status`).
    pub reason: String,
    /// The next step and when it is due, seen from the state after this decision.
    pub next: Option<(Step, Timestamp)>,
    /// The last sign of life the decision was based on.
    pub activity: Option<Activity>,
    pub exemption: Option<Exemption>,
}

impl Decision {
    fn nothing(reason: impl Into<String>) -> Self {
        Decision {
            step: None,
            gate: Gate::Proceed,
            effects: Vec::new(),
            after: None,
            reason: reason.into(),
            next: None,
            activity: None,
            exemption: None,
        }
    }

    fn bookkeeping(after: Record) -> Self {
        let mut d = Decision::nothing(after.reason.clone());
        d.after = Some(after);
        d
    }

    fn with_context(mut self, activity: Option<Activity>, exemption: Option<Exemption>) -> Self {
        self.activity = activity;
        self.exemption = exemption;
        self
    }

    /// A step was chosen and may change IAM now.
    pub fn acts(&self) -> bool {
        self.step.is_some() && self.gate == Gate::Proceed
    }
}

/// Whether a subject is dormant under the policy right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dormancy {
    Dormant {
        activity: Activity,
        idle: Duration,
    },
    Active {
        activity: Activity,
    },
    /// The principal is younger than `min_age`.
    TooYoung,
    /// The access key is already inactive: nothing to take away.
    Inert,
    /// The credential no longer exists.
    Missing,
}

pub fn dormancy(facts: &Facts, scope: &Scope, policy: &Policy, now: Timestamp) -> Dormancy {
    let Some(activity) = facts.activity(scope) else {
        return Dormancy::Missing;
    };
    if let Scope::AccessKey(id) = scope {
        if facts.access_key(id).is_some_and(|k| !k.active) {
            return Dormancy::Inert;
        }
    }
    if now - facts.created_at < policy.inactivity.min_age {
        return Dormancy::TooYoung;
    }
    let threshold = match scope {
        Scope::Whole => policy.inactivity.threshold,
        Scope::AccessKey(_) | Scope::Password => policy.inactivity.key_threshold,
    };
    let idle = now - activity.since;
    if idle >= threshold {
        Dormancy::Dormant { activity, idle }
    } else {
        Dormancy::Active { activity }
    }
}

/// The subjects of one principal to nominate in a sweep: the whole principal when it is dormant,
/// otherwise each active access key and the password that are dormant on their own.
pub fn dormant_subjects(facts: &Facts, policy: &Policy, now: Timestamp) -> Vec<Subject> {
    let whole = Subject::whole(facts.principal.clone());
    if matches!(
        dormancy(facts, &whole.scope, policy, now),
        Dormancy::Dormant { .. }
    ) {
        return vec![whole];
    }
    if facts.principal.kind == PrincipalKind::Role {
        return Vec::new();
    }
    let mut scopes: Vec<Scope> = facts
        .access_keys
        .iter()
        .map(|k| Scope::AccessKey(k.id.clone()))
        .collect();
    scopes.push(Scope::Password);
    scopes
        .into_iter()
        .filter(|s| matches!(dormancy(facts, s, policy, now), Dormancy::Dormant { .. }))
        .map(|scope| Subject {
            principal: facts.principal.clone(),
            scope,
        })
        .collect()
}

/// Decides the next move for one subject. `facts` is `None` when the principal no longer exists.
pub fn decide(
    record: &Record,
    facts: Option<&Facts>,
    policy: &Policy,
    budget: &Budget,
    now: Timestamp,
) -> Decision {
    if let Some(intent) = &record.pending {
        if now < intent.started_at + INTENT_LEASE {
            // Another run may still be carrying it out; re-running its effects concurrently would
            // double every IAM call. Past the lease that run is certainly gone.
            return Decision::nothing(format!(
                "{} in progress since {}",
                intent.step,
                fmt_time(intent.started_at)
            ));
        }
        // Finish what was started; every effect is idempotent, so re-running done ones is safe.
        return Decision {
            step: Some(intent.step),
            gate: Gate::Proceed,
            effects: intent.effects.clone(),
            after: Some((*intent.after).clone()),
            reason: format!(
                "completing {} started at {}",
                intent.step,
                fmt_time(intent.started_at)
            ),
            next: intent.after.next_step.zip(intent.after.next_due_at),
            activity: None,
            exemption: None,
        };
    }
    if record.stage == Stage::Deleted {
        return Decision::nothing("deleted by dormant; `dormant restore` recreates it");
    }
    let Some(facts) = facts else {
        return gone(record, now, "no longer exists in IAM");
    };
    let subject = &record.subject;

    let verdict = exemption::evaluate(&subject.principal, &facts.tags, &policy.exemptions, now);
    if let Verdict::Exempt(exemption) = verdict {
        return decide_exempt(record, facts, policy, now, exemption);
    }
    let note = match verdict {
        Verdict::NotExempt { note } => note,
        Verdict::Exempt(_) => None,
    };

    let dormancy = dormancy(facts, &subject.scope, policy, now);
    if dormancy == Dormancy::Missing {
        let what = match subject.scope {
            Scope::AccessKey(_) => "the access key no longer exists",
            Scope::Password => "the user no longer has a console password",
            Scope::Whole => "no longer exists in IAM",
        };
        return gone(record, now, what);
    }
    let activity = match &dormancy {
        Dormancy::Dormant { activity, .. } | Dormancy::Active { activity } => {
            Some(activity.clone())
        }
        Dormancy::TooYoung | Dormancy::Inert | Dormancy::Missing => facts.activity(&subject.scope),
    };
    let with_note = |reason: String| match &note {
        Some(n) => format!("{reason}; {n}"),
        None => reason,
    };

    let decision = match record.stage {
        Stage::Clean | Stage::Exempt | Stage::Released => {
            let cooloff_end = record
                .released_at
                .filter(|_| record.stage == Stage::Released)
                .map(|t| t + policy.ladder.cooloff);
            match (&dormancy, cooloff_end) {
                (Dormancy::Dormant { .. }, Some(end)) if now < end => {
                    Decision::nothing(format!("in cool-off after release until {}", fmt_time(end)))
                }
                (Dormancy::Dormant { idle, .. }, _) => {
                    let reason = with_note(format!(
                        "unused for {} days ({})",
                        idle.num_days(),
                        describe_activity(activity.as_ref())
                    ));
                    take(record, facts, policy, budget, now, Step::Notice, reason)
                }
                (_, _) if record.stage == Stage::Exempt => {
                    let reason = with_note(format!(
                        "exemption no longer applies and {}",
                        not_dormant(&dormancy)
                    ));
                    Decision::bookkeeping(record.entering(Stage::Clean, now, reason))
                }
                (_, _) => Decision::nothing(with_note(not_dormant(&dormancy))),
            }
        }
        Stage::Noticed | Stage::Quarantined | Stage::KeysDeactivated | Stage::PendingDelete => {
            // A key dormant itself turned off is still on the ladder, not "already inactive".
            let turned_off_by_us = match &subject.scope {
                Scope::AccessKey(id) => record.keys_deactivated.contains(id),
                Scope::Whole | Scope::Password => false,
            };
            match &dormancy {
                Dormancy::Dormant { .. } => advance(record, facts, policy, budget, now),
                Dormancy::Inert if turned_off_by_us => advance(record, facts, policy, budget, now),
                Dormancy::Active { .. }
                | Dormancy::TooYoung
                | Dormancy::Inert
                | Dormancy::Missing => {
                    let reason = format!("released: {}", not_dormant(&dormancy));
                    release(record, facts, policy, now, Stage::Released, reason)
                }
            }
        }
        Stage::Deleted => Decision::nothing("deleted"),
    };
    decision.with_context(activity, None)
}

fn not_dormant(d: &Dormancy) -> String {
    match d {
        Dormancy::Active { activity } => match activity.last_used_at {
            Some(t) => format!("used at {} ({})", fmt_time(t), activity.evidence.describe()),
            None => format!(
                "created at {}, within the threshold",
                fmt_time(activity.since)
            ),
        },
        Dormancy::TooYoung => "younger than the minimum age".to_string(),
        Dormancy::Inert => "the access key is already inactive".to_string(),
        Dormancy::Missing => "the credential no longer exists".to_string(),
        Dormancy::Dormant { .. } => "dormant".to_string(),
    }
}

fn describe_activity(a: Option<&Activity>) -> String {
    match a {
        Some(a) => match a.last_used_at {
            Some(t) => format!("last used {} per {}", fmt_time(t), a.evidence.describe()),
            None => format!("never used since creation at {}", fmt_time(a.since)),
        },
        None => "no activity known".to_string(),
    }
}

/// The principal or credential disappeared outside dormant: stop tracking it.
fn gone(record: &Record, now: Timestamp, what: &str) -> Decision {
    if record.stage == Stage::Clean && record.version == 0 {
        return Decision::nothing(what.to_string());
    }
    Decision::bookkeeping(record.entering(
        Stage::Deleted,
        now,
        format!("{what} (removed outside dormant)"),
    ))
}

fn decide_exempt(
    record: &Record,
    facts: &Facts,
    policy: &Policy,
    now: Timestamp,
    exemption: Exemption,
) -> Decision {
    let why = exemption.describe();
    let decision = match (&exemption, record.stage.is_on_ladder()) {
        // Never changed in any mode: not even to remove dormant's own tags.
        (Exemption::Protected { .. }, _) => {
            if record.stage == Stage::Exempt || record.version == 0 {
                Decision::nothing(why)
            } else {
                Decision::bookkeeping(record.entering(Stage::Exempt, now, why))
            }
        }
        (_, true) => release(
            record,
            facts,
            policy,
            now,
            Stage::Exempt,
            format!("released: {why}"),
        ),
        (_, false) if record.stage == Stage::Released && record.version > 0 => {
            Decision::bookkeeping(record.entering(Stage::Exempt, now, why))
        }
        (_, false) => Decision::nothing(why),
    };
    let activity = facts.activity(&record.subject.scope);
    decision.with_context(activity, Some(exemption))
}

/// The next step for a subject on the ladder, and when it is due.
pub fn schedule(record: &Record, facts: &Facts, policy: &Policy) -> Option<(Step, Timestamp)> {
    let since = record.stage_since?;
    let ladder = &policy.ladder;
    let delete_step = |due: Timestamp| match ladder.delete {
        DeleteMode::Enabled => Some((Step::Delete, due)),
        DeleteMode::Approval => Some((Step::RequestApproval, due)),
        DeleteMode::Never => None,
    };
    let kind = record.subject.kind();
    match record.stage {
        Stage::Noticed => {
            let due = since + ladder.notice_to_quarantine;
            match kind {
                SubjectKind::Role | SubjectKind::User => Some((Step::Quarantine, due)),
                SubjectKind::AccessKey => Some((Step::DeactivateKeys, due)),
                SubjectKind::Password => delete_step(due),
            }
        }
        Stage::Quarantined => match kind {
            SubjectKind::User if !facts.active_key_ids().is_empty() => {
                Some((Step::DeactivateKeys, since + ladder.quarantine_to_keys))
            }
            SubjectKind::Role
            | SubjectKind::User
            | SubjectKind::AccessKey
            | SubjectKind::Password => delete_step(since + ladder.to_delete),
        },
        Stage::KeysDeactivated => delete_step(since + ladder.to_delete),
        Stage::PendingDelete => record
            .approval
            .as_ref()
            .map(|a| (Step::Delete, a.at.max(since))),
        Stage::Clean | Stage::Deleted | Stage::Released | Stage::Exempt => None,
    }
}

/// The subject is dormant and on the ladder: take the next step if it is due.
fn advance(
    record: &Record,
    facts: &Facts,
    policy: &Policy,
    budget: &Budget,
    now: Timestamp,
) -> Decision {
    match schedule(record, facts, policy) {
        None if record.stage == Stage::PendingDelete => {
            let mut d = Decision::nothing("awaiting deletion approval (`dormant approve`)");
            d.next = None;
            d
        }
        None => Decision::nothing(format!(
            "{}: no further step (delete = \"never\")",
            record.stage
        )),
        Some((step, due)) if due > now => {
            let mut d = Decision::nothing(format!("waiting: {step} due at {}", fmt_time(due)));
            d.next = Some((step, due));
            d
        }
        Some((step, due)) => {
            let reason = match (step, &record.approval, record.stage_since) {
                (Step::Delete, Some(a), _) => format!("deletion approved by {}", a.by),
                (_, _, Some(since)) => format!(
                    "{} {} days ago ({}) and still unused; {step} was due {}",
                    record.stage,
                    (now - since).num_days(),
                    fmt_time(since),
                    fmt_time(due)
                ),
                (_, _, None) => format!("{step} was due {}", fmt_time(due)),
            };
            take(record, facts, policy, budget, now, step, reason)
        }
    }
}

/// Builds the decision for taking `step` now: the effects, the record after, and the gate.
fn take(
    record: &Record,
    facts: &Facts,
    policy: &Policy,
    budget: &Budget,
    now: Timestamp,
    step: Step,
    reason: String,
) -> Decision {
    let subject = &record.subject;
    let (stage, mut effects) = match (step, &subject.scope) {
        (Step::Notice, _) => (Stage::Noticed, vec![]),
        (Step::Quarantine, _) => (Stage::Quarantined, vec![Effect::PutQuarantinePolicy]),
        (Step::DeactivateKeys, scope) => {
            let key_ids = match scope {
                Scope::AccessKey(id) => vec![id.clone()],
                Scope::Whole | Scope::Password => facts.active_key_ids(),
            };
            (
                Stage::KeysDeactivated,
                vec![Effect::DeactivateKeys { key_ids }],
            )
        }
        (Step::RequestApproval, _) => (Stage::PendingDelete, vec![]),
        (Step::Delete, Scope::Whole) => (
            Stage::Deleted,
            vec![Effect::TakeSnapshot, Effect::DeletePrincipal],
        ),
        (Step::Delete, Scope::AccessKey(id)) => (
            Stage::Deleted,
            vec![Effect::DeleteAccessKey { key_id: id.clone() }],
        ),
        (Step::Delete, Scope::Password) => (Stage::Deleted, vec![Effect::DeleteLoginProfile]),
        (Step::Release, _) => {
            return release(record, facts, policy, now, Stage::Released, reason);
        }
    };

    let mut after = record.entering(stage, now, reason.clone());
    after.last_used_at = facts.activity(&subject.scope).and_then(|a| a.last_used_at);
    match step {
        Step::Notice => {
            after.noticed_at = Some(now);
            after.keys_deactivated.clear();
            after.approval = None;
        }
        Step::DeactivateKeys => {
            if let Some(Effect::DeactivateKeys { key_ids }) = effects.last() {
                for id in key_ids {
                    if !after.keys_deactivated.contains(id) {
                        after.keys_deactivated.push(id.clone());
                    }
                }
            }
        }
        Step::Quarantine | Step::RequestApproval | Step::Delete | Step::Release => {}
    }
    let next = schedule(&after, facts, policy);
    if let Some((next_step, due)) = next {
        after.next_step = Some(next_step);
        after.next_due_at = Some(due);
    }

    // The tags describe the state after the step, so they are written last: a crash before them
    // leaves the intent, which the next run completes.
    match stage {
        Stage::Deleted => {
            if subject.scope != Scope::Whole {
                effects.push(Effect::RemoveTags {
                    keys: present_stage_tags(subject, facts),
                });
            }
        }
        _ => effects.push(Effect::PutTags {
            tags: stage_tags(subject, stage, next, stage == Stage::PendingDelete),
        }),
    }
    effects.retain(|e| !matches!(e, Effect::RemoveTags { keys } if keys.is_empty()));

    let gate = gate(step, policy, budget);
    Decision {
        step: Some(step),
        gate,
        effects,
        after: Some(after),
        reason,
        next,
        activity: None,
        exemption: None,
    }
}

fn gate(step: Step, policy: &Policy, budget: &Budget) -> Gate {
    if step.cuts_access() {
        if let Some(trip) = budget.check(step, &policy.breaker) {
            return Gate::Breaker(trip);
        }
    }
    if policy.dry_run {
        Gate::DryRun
    } else {
        Gate::Proceed
    }
}

fn present_stage_tags(subject: &Subject, facts: &Facts) -> Vec<String> {
    stage_tag_keys(subject)
        .into_iter()
        .filter(|k| facts.tags.contains_key(k))
        .collect()
}

/// Reverses exactly what dormant changed: its tags (never an exemption tag), its inline policy,
/// and the keys it turned off that are still off. A key its owner turned off stays off.
fn release(
    record: &Record,
    facts: &Facts,
    policy: &Policy,
    now: Timestamp,
    to: Stage,
    reason: String,
) -> Decision {
    let subject = &record.subject;
    let mut effects = Vec::new();
    if subject.scope == Scope::Whole && facts.has_quarantine_policy {
        effects.push(Effect::DeleteQuarantinePolicy);
    }
    let reactivate: Vec<String> = record
        .keys_deactivated
        .iter()
        .filter(|id| facts.access_key(id).is_some_and(|k| !k.active))
        .cloned()
        .collect();
    if !reactivate.is_empty() {
        effects.push(Effect::ReactivateKeys {
            key_ids: reactivate,
        });
    }
    let tags = present_stage_tags(subject, facts);
    if !tags.is_empty() {
        effects.push(Effect::RemoveTags { keys: tags });
    }

    let mut after = record.entering(to, now, reason.clone());
    after.released_at = Some(now);
    after.keys_deactivated.clear();
    after.approval = None;
    after.last_used_at = facts.activity(&subject.scope).and_then(|a| a.last_used_at);
    Decision {
        step: Some(Step::Release),
        gate: if policy.dry_run {
            Gate::DryRun
        } else {
            Gate::Proceed
        },
        effects,
        after: Some(after),
        reason,
        next: None,
        activity: None,
        exemption: None,
    }
}

/// Why an operator command cannot be carried out. Nothing is changed in these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusedBecause {
    #[error("{0} is not tracked by dormant: there is nothing of dormant's to undo")]
    NotTracked(String),
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
    // A step cut short by a crash or an error is rolled back with the rest: the keys it may have
    // turned off count as dormant's, and the release works from what IAM shows now.
    let rolled_back;
    let record = match &record.pending {
        Some(intent) => {
            let mut r = record.clone();
            r.pending = None;
            for e in &intent.effects {
                if let Effect::DeactivateKeys { key_ids } = e {
                    for k in key_ids {
                        if !r.keys_deactivated.contains(k) {
                            r.keys_deactivated.push(k.clone());
                        }
                    }
                }
            }
            if !r.stage.is_on_ladder() {
                r.stage = intent.after.stage;
            }
            // Executions still running may finish after the release; the release's own effects
            // are idempotent, so a second `undo` or the next sweep tidies up behind them.
            rolled_back = r;
            &rolled_back
        }
        None => record,
    };
    match record.stage {
        Stage::Clean => Err(RefusedBecause::NotTracked(id)),
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
pub fn approve(record: &Record, by: &str, now: Timestamp) -> Result<Record, RefusedBecause> {
    let id = record.subject.id();
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
