//! `decide`: given what dormant recorded, what IAM says now, the policy and the time, what to do.
//! One call takes at most one step, and every wait counts from when the previous step really took
//! effect, so a late run never collapses two steps into one.
//!
//! - `mod.rs`: `decide`, dormancy, exemptions and protection, the schedule, cool-off.
//! - `plan.rs`: what a step changes (`take`) and a release (`release`).
//! - `resume.rs`: a step another run started, decided again through every guard.
//! - `identity.rs`: records follow unique ids; a re-created identity starts clean.
//! - `forecast.rs`: the ladder run forward with a moving `now` (`dormant plan`).

use chrono::Duration;

use super::breaker::Budget;
use super::decision::{Action, Decision, Gate, PlannedStep};
use super::effect::Effect;
use super::exemption::{self, Exemption, OpenExemption};
use super::facts::{Activity, Facts};
use super::policy::{DeleteMode, Policy};
use super::record::{Intent, Record};
use super::stage::{Stage, Step};
use super::subject::{PrincipalKind, Scope, Subject, SubjectKind};
use super::tag::{
    self, present_legacy_tags, present_stage_tags, stage_tag, stage_tag_key, tag_overflow,
    RESTORED_FROM_TAG, TAG_LIMIT,
};
use super::time::{fmt_time, Timestamp};

/// How long a written intent belongs to the run that wrote it: the longest a Lambda invocation can
/// last. After that, the next run completes it.
pub const INTENT_LEASE: Duration = Duration::minutes(15);

mod forecast;
mod identity;
mod plan;
mod resume;

pub use forecast::{forecast, Outlook};
pub use identity::RECREATED;
use identity::{remember_identity, superseded};
pub(crate) use plan::release;
use plan::take;
use resume::resume;

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
        .map(|k| Scope::AccessKey(k.id.to_string()))
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
    // Before anything else, the pending intent and `deleted` included: a stage is never carried
    // onto a different identity that has the old one's name.
    if let Some(reset) = superseded(record, facts, policy, now) {
        return reset;
    }
    let mut d = decide_same_identity(record, facts, policy, budget, now);
    if let (Some(after), Some(facts)) = (d.after_mut(), facts) {
        remember_identity(after, facts);
    }
    d
}

fn decide_same_identity(
    record: &Record,
    facts: Option<&Facts>,
    policy: &Policy,
    budget: &Budget,
    now: Timestamp,
) -> Decision {
    if let Some(intent) = &record.pending {
        // Not even a step started before the identity was protected (by an older version of
        // dormant, or another configuration) is finished.
        if let Some(why) = exemption::protection(&record.subject.principal, &policy.exemptions) {
            return decide_protected(record, facts, now, why);
        }
        let not_before = intent.not_before(INTENT_LEASE);
        if now < not_before {
            // Another run may still be carrying it out (or it failed and is backing off);
            // re-running its effects concurrently would double every IAM call. Past the lease
            // that run is certainly gone.
            let mut d = Decision::nothing(match &intent.last_error {
                Some(e) => format!(
                    "{} failed {} time(s), last: {e}; next attempt at {}",
                    intent.step,
                    intent.attempts,
                    fmt_time(not_before)
                ),
                None => format!(
                    "{} in progress since {}",
                    intent.step,
                    fmt_time(intent.started_at)
                ),
            });
            d.next = Some((intent.step, not_before));
            return d;
        }
        return resume(record, facts, policy, budget, now);
    }
    decide_settled(record, facts, policy, budget, now)
}

/// The exemption verdict for `record`'s principal on these facts.
fn exemption_of(
    record: &Record,
    facts: &Facts,
    policy: &Policy,
    now: Timestamp,
) -> exemption::Verdict {
    exemption::evaluate(
        &record.subject.principal,
        &facts.tags,
        &policy.exemptions,
        record.open_exemption.as_ref(),
        now,
    )
}

/// Decides for a subject with no step in flight.
fn decide_settled(
    record: &Record,
    facts: Option<&Facts>,
    policy: &Policy,
    budget: &Budget,
    now: Timestamp,
) -> Decision {
    if record.stage == Stage::Deleted {
        return Decision::nothing("deleted by dormant; `dormant restore` recreates it");
    }
    let Some(facts) = facts else {
        return gone(record, now, "no longer exists in IAM");
    };
    let subject = &record.subject;

    let verdict = exemption_of(record, facts, policy, now);
    let open = verdict.open;
    if let Some(exemption) = verdict.exemption {
        let decision = decide_exempt(record, facts, policy, now, exemption);
        return remember(decision, record, open, now);
    }
    let note = verdict.note;

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

    // Only for an identity dormant itself put on the ladder (`noticed_at`): a deny on a new
    // identity under an old name, or one an operator put there, is not dormant's to lift.
    if !record.stage.is_on_ladder()
        && record.version > 0
        && record.noticed_at.is_some()
        && record.unique_id == facts.unique_id
        && subject.scope == Scope::Whole
        && facts.has_quarantine_policy
        && record.owns_quarantine_at(now)
    {
        // The record says dormant's quarantine is off but IAM still shows it (an SSM execution
        // that finished after an undo, an exemption that ended while a protected run left it):
        // make IAM match the record, keeping the cool-off it had.
        let to = match record.stage {
            Stage::Released => Stage::Released,
            _ => Stage::Clean,
        };
        let mut d = release(
            record,
            facts,
            policy,
            now,
            to,
            format!(
                "repaired: dormant's quarantine policy was still attached while {}",
                record.stage
            ),
        );
        if let Action::Step(p) = &mut d.action {
            p.after.released_at = record.released_at.or(p.after.released_at);
        }
        return d.with_context(activity, None);
    }
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
    remember(decision.with_context(activity, None), record, open, now)
}

/// Keeps what the record knows of an exemption tag without a usable end date (when dormant first
/// saw it, so that its `max_days` count from then): in the record the decision commits, or in a
/// bookkeeping write of its own when there is none.
fn remember(
    mut d: Decision,
    record: &Record,
    open: Option<OpenExemption>,
    now: Timestamp,
) -> Decision {
    if let Some(after) = d.after_mut() {
        after.open_exemption = open;
        return d;
    }
    if open.is_none() || record.open_exemption == open {
        return d;
    }
    let mut after = if record.stage == Stage::Exempt {
        Record {
            reason: d.reason.clone(),
            ..record.clone()
        }
    } else {
        record.entering(Stage::Exempt, now, d.reason.clone())
    };
    after.open_exemption = open;
    d.action = Action::Record(Box::new(after));
    d
}

// ---- re-created identities ---------------------------------------------------------------
// A name can be deleted and created again. The record belongs to the identity it was decided on,
// known by its unique id (`RoleId`/`UserId`) and, for a password, the login profile's CreateDate.

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
    if let Exemption::Protected { why } = exemption {
        return decide_protected(record, Some(facts), now, why);
    }
    let why = exemption.describe();
    let decision = match (&exemption, record.stage.is_on_ladder()) {
        (_, true) => release(
            record,
            facts,
            policy,
            now,
            Stage::Exempt,
            format!("released: {why}"),
        ),
        (_, false)
            if record.version > 0
                && record.noticed_at.is_some()
                && record.unique_id == facts.unique_id
                && record.subject.scope == Scope::Whole
                && facts.has_quarantine_policy
                && record.owns_quarantine_at(now) =>
        {
            release(
                record,
                facts,
                policy,
                now,
                Stage::Exempt,
                format!("released: {why}; dormant's quarantine policy was still attached"),
            )
        }
        (_, false) if record.stage == Stage::Released && record.version > 0 => {
            Decision::bookkeeping(record.entering(Stage::Exempt, now, why))
        }
        (_, false) => Decision::nothing(why),
    };
    let activity = facts.activity(&record.subject.scope);
    decision.with_context(activity, Some(exemption))
}

/// Never changed in any mode: not even to remove dormant's own tags or finish a pending step.
fn decide_protected(
    record: &Record,
    facts: Option<&Facts>,
    now: Timestamp,
    why: String,
) -> Decision {
    let exemption = Exemption::Protected { why };
    let mut why = exemption.describe();
    // Never changed, so what an earlier version (or a step cut short) left stays: say what.
    // A step cut short counts as done as far as it can be (a late SSM quarantine).
    let assumed = record.assuming_intent_done();
    let owned = assumed.owns_quarantine_at(now);
    let mut left = Vec::new();
    if let Some(facts) = facts {
        if record.subject.scope == Scope::Whole && facts.has_quarantine_policy && owned {
            left.push("dormant's quarantine policy".to_string());
        }
        if record.subject.principal.kind == PrincipalKind::User
            && tag::has_credentials_marker(&facts.tags)
        {
            left.push(format!("the user's tag {}", tag::CREDENTIALS_TAG));
        }
        left.extend(
            present_stage_tags(&record.subject, &facts.tags)
                .into_iter()
                .map(|k| format!("tag {k}")),
        );
        let off = assumed
            .keys_deactivated
            .into_iter()
            .filter(|id| facts.access_key(id).is_some_and(|k| !k.active))
            .collect::<Vec<_>>();
        if !off.is_empty() {
            left.push(format!(
                "access key(s) {} turned off by dormant",
                off.join(", ")
            ));
        }
    }
    if !left.is_empty() {
        why = format!(
            "{why}; dormant changes nothing on it, so what it left from before stays: {} \
             (remove by hand)",
            left.join(", ")
        );
    }
    let settled = record.stage == Stage::Exempt && record.pending.is_none() && record.reason == why;
    let decision = if settled || record.version == 0 {
        Decision::nothing(why)
    } else {
        let mut exempt = record.entering(Stage::Exempt, now, why);
        // Carried, so the repair when the protection ends detaches what dormant attached; and
        // only while IAM shows it attached, so a deny someone attaches later is never dormant's.
        if record.subject.scope == Scope::Whole {
            exempt.quarantine_attached =
                Some(owned && facts.is_some_and(|f| f.has_quarantine_policy));
        }
        Decision::bookkeeping(exempt)
    };
    let activity = facts.and_then(|f| f.activity(&record.subject.scope));
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

/// Cool-off covers a principal and its credentials: while the whole principal is in cool-off
/// after a release, none of its credentials is newly put on the ladder. `Some(end of the
/// cool-off)` when `record`, a credential's, must not be decided on now.
pub fn cooloff_covers(
    record: &Record,
    whole: Option<&Record>,
    policy: &Policy,
    now: Timestamp,
) -> Option<Timestamp> {
    if record.subject.scope == Scope::Whole
        || record.stage.is_on_ladder()
        || record.pending.is_some()
    {
        return None;
    }
    let whole = whole?;
    let released_at = if whole.stage == Stage::Released {
        whole.released_at?
    } else {
        // A release in flight (its run died or failed half-way; the keys it turns back on may
        // already be on) covers them too, from when it began.
        let intent = whole.pending.as_ref().filter(|i| i.step == Step::Release)?;
        intent
            .after
            .released_at
            .filter(|_| intent.after.stage == Stage::Released)?
    };
    let end = released_at + policy.ladder.cooloff;
    (now < end).then_some(end)
}
