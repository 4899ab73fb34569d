//! `decide`: given what dormant recorded, what IAM says now, the policy and the time, what to do.
//! One call takes at most one step, and every wait counts from when the previous step really took
//! effect, so a late run never collapses two steps into one.

use chrono::Duration;

use super::breaker::Budget;
use super::decision::{Action, Decision, Gate, PlannedStep};
use super::effect::{
    present_legacy_tags, present_stage_tags, stage_tag, stage_tag_key, tag_overflow, Effect,
    TAG_LIMIT,
};
use super::exemption::{self, Exemption, OpenExemption};
use super::facts::{fmt_time, Activity, Facts, Timestamp};
use super::policy::{DeleteMode, Policy};
use super::record::{Intent, Record, Stage, Step};
use super::snapshot::RESTORED_FROM_TAG;
use super::subject::{PrincipalKind, Scope, Subject, SubjectKind};
use super::tag;

/// How long a written intent belongs to the run that wrote it: the longest a Lambda invocation can
/// last. After that, the next run completes it.
pub const INTENT_LEASE: Duration = Duration::minutes(15);

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

/// A step started earlier (by a run that crashed, failed or ran out of time) is taken over only
/// through the same guards as a fresh step, on this run's facts: an identity that is now exempt,
/// protected or used is released (the half-done step rolled back), a delete that is no longer
/// allowed is not finished, and the rest goes through the breaker and dry-run gates again.
fn resume(
    record: &Record,
    facts: Option<&Facts>,
    policy: &Policy,
    budget: &Budget,
    now: Timestamp,
) -> Decision {
    let Some(intent) = &record.pending else {
        return decide_settled(record, facts, policy, budget, now);
    };
    let step = intent.step;
    let started = fmt_time(intent.started_at);
    // What IAM may already show of the half-done step counts as dormant's doing.
    let assumed = record.assuming_intent_done();
    let Some(facts) = facts else {
        if step == Step::Delete {
            let what = "the identity is gone";
            return finished_delete(intent, policy, now, what, Vec::new());
        }
        return gone(&assumed, now, "no longer exists in IAM");
    };
    let subject = &record.subject;
    let verdict = exemption::evaluate(
        &subject.principal,
        &facts.tags,
        &policy.exemptions,
        record.open_exemption.as_ref(),
        now,
    );
    if let Some(exemption) = verdict.exemption {
        let mut d = decide_exempt(&assumed, facts, policy, now, exemption);
        d.reason = format!("{step} started at {started} not finished: {}", d.reason);
        return remember(d, record, verdict.open, now);
    }
    let turned_off_by_us = match &subject.scope {
        Scope::AccessKey(id) => assumed.keys_deactivated.contains(id),
        Scope::Whole | Scope::Password => false,
    };
    let dormancy = dormancy(facts, &subject.scope, policy, now);
    match &dormancy {
        Dormancy::Dormant { .. } => {}
        Dormancy::Inert if turned_off_by_us => {}
        Dormancy::Missing if step == Step::Delete => {
            // The credential went; its stage tags on the user may still be there.
            let tags = present_stage_tags(subject, &facts.tags);
            let effects = if tags.is_empty() {
                Vec::new()
            } else {
                vec![Effect::RemoveTags { keys: tags }]
            };
            let what = "the credential is gone";
            return finished_delete(intent, policy, now, what, effects);
        }
        Dormancy::Missing => return gone(&assumed, now, "the credential no longer exists"),
        Dormancy::Active { .. } | Dormancy::TooYoung | Dormancy::Inert => {
            let reason = format!(
                "released: {step} started at {started} not finished: {}",
                not_dormant(&dormancy)
            );
            return release(&assumed, facts, policy, now, Stage::Released, reason);
        }
    }
    let delete_allowed = match policy.ladder.delete {
        DeleteMode::Enabled => true,
        DeleteMode::Approval => record.approval.is_some(),
        DeleteMode::Never => false,
    };
    if step == Step::Delete && !delete_allowed {
        let mut kept = record.clone();
        kept.pending = None;
        kept.reason = format!(
            "delete started at {started} not finished: ladder.delete is now \"{}\"; the \
             teardown may have begun (the snapshot taken then holds what the identity had)",
            policy.ladder.delete.as_str()
        );
        let next = schedule(&kept, facts, policy);
        kept.next_step = next.map(|(s, _)| s);
        kept.next_due_at = next.map(|(_, t)| t);
        return Decision::bookkeeping(kept);
    }
    let reason = match &intent.last_error {
        Some(e) => format!(
            "completing {step} started at {started}, after {} failed attempt(s) (last: {e})",
            intent.attempts
        ),
        None => format!("completing {step} started at {started}"),
    };
    let mut d = take(&assumed, facts, policy, budget, now, step, reason);
    if let Action::Step(p) = &mut d.action {
        p.resumes = Some(intent.started_at);
    }
    d.with_context(facts.activity(&subject.scope), None)
}

/// A resumed delete whose teardown got as far as removing the identity (or credential): what is
/// left is `effects` (a credential's stage tags) and the commit.
fn finished_delete(
    intent: &Intent,
    policy: &Policy,
    now: Timestamp,
    what: &str,
    effects: Vec<Effect>,
) -> Decision {
    let reason = format!(
        "delete started at {} completed ({what})",
        fmt_time(intent.started_at)
    );
    // The identity is already gone: only the bookkeeping is left, which no breaker should hold up.
    let planned = PlannedStep {
        step: Step::Delete,
        gate: if policy.dry_run {
            Gate::DryRun
        } else {
            Gate::Proceed
        },
        effects,
        after: intent.after.entering(Stage::Deleted, now, reason.clone()),
        resumes: Some(intent.started_at),
    };
    Decision::taking(planned, reason)
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

    let verdict = exemption::evaluate(
        &subject.principal,
        &facts.tags,
        &policy.exemptions,
        record.open_exemption.as_ref(),
        now,
    );
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

    if !record.stage.is_on_ladder()
        && record.version > 0
        && subject.scope == Scope::Whole
        && facts.has_quarantine_policy
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

/// What the reason of a record reset for a re-created identity starts with.
pub const RECREATED: &str = "re-created";

/// `Some` when IAM now shows a different identity under the record's name: the record restarts
/// clean for the new one (only dormant's own password tags are removed from a user that kept its
/// id); it is evaluated as any new identity from the next run on. Access keys need no check: a key
/// id is never reused, and a key missing from a re-created user is simply gone.
fn superseded(
    record: &Record,
    facts: Option<&Facts>,
    policy: &Policy,
    now: Timestamp,
) -> Option<Decision> {
    let facts = facts?;
    if let (Stage::Deleted, Some(old)) = (record.stage, &record.unique_id) {
        // dormant's own restore of this identity that stopped half-way: `restore` finishes it
        // (it recognises its marker); starting clean would make it refuse.
        let marker = tag::value(&facts.tags, RESTORED_FROM_TAG);
        if marker.is_some_and(|m| m.starts_with(&format!("{old}@"))) {
            return Some(Decision::nothing(format!(
                "an interrupted `dormant restore` of this identity ({RESTORED_FROM_TAG} is set): \
                 run `dormant restore` again to finish it"
            )));
        }
    }
    let was = match record.stage {
        Stage::Deleted => "dormant recorded as deleted".to_string(),
        stage => format!("dormant tracked as {stage} (removed outside dormant)"),
    };
    // The intent of a first step knows the identity before the record does.
    let intended = record.pending.as_ref().map(|i| &*i.after);
    let old_id = (record.unique_id.as_ref()).or(intended.and_then(|a| a.unique_id.as_ref()));
    let old_profile =
        (record.login_profile_created_at).or(intended.and_then(|a| a.login_profile_created_at));
    let why = match (&record.subject.scope, old_id, &facts.unique_id) {
        (Scope::AccessKey(_), _, _) => return None,
        (Scope::Whole | Scope::Password, Some(old), Some(new)) if old != new => {
            format!("unique id {new} differs from {old}, which {was}")
        }
        (Scope::Password, _, _) => {
            let old = old_profile?;
            let new = facts.login_profile.as_ref()?.created_at;
            // Whole seconds: the credential report, which bulk reads use, has no fractions.
            if new.timestamp() <= old.timestamp() {
                return None;
            }
            format!(
                "the console password was created at {}, after the one created at {} that {was}",
                fmt_time(new),
                fmt_time(old)
            )
        }
        (Scope::Whole, _, _) => return None,
    };
    let reason = format!("{RECREATED}: {why}; starting clean");
    let mut fresh = Record::new(record.subject.clone());
    fresh.version = record.version;
    remember_identity(&mut fresh, facts);
    let protected = exemption::protection(&record.subject.principal, &policy.exemptions).is_some();
    if record.subject.scope == Scope::Password
        && !protected
        && !present_stage_tags(&record.subject, &facts.tags).is_empty()
    {
        return Some(release(&fresh, facts, policy, now, Stage::Clean, reason));
    }
    Some(Decision::bookkeeping(fresh.entering(
        Stage::Clean,
        now,
        reason,
    )))
}

/// Notes on the record which identity it is now about. An id already kept stays: only an access
/// key's record can differ from its user's id here, and it describes the old user's key.
fn remember_identity(after: &mut Record, facts: &Facts) {
    if after.unique_id.is_none() {
        after.unique_id.clone_from(&facts.unique_id);
    }
    if after.subject.scope == Scope::Password {
        let seen = facts.login_profile.as_ref().map(|p| p.created_at);
        after.login_profile_created_at = after.login_profile_created_at.max(seen);
    }
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
                && record.subject.scope == Scope::Whole
                && facts.has_quarantine_policy =>
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
    let mut left = Vec::new();
    if let Some(facts) = facts {
        if record.subject.scope == Scope::Whole && facts.has_quarantine_policy {
            left.push("dormant's quarantine policy".to_string());
        }
        left.extend(
            present_stage_tags(&record.subject, &facts.tags)
                .into_iter()
                .map(|k| format!("tag {k}")),
        );
        let off = record
            .assuming_intent_done()
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
        Decision::bookkeeping(record.entering(Stage::Exempt, now, why))
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

    // The stage tag is written only where IAM's tag limit leaves room for it; without room the
    // step still happens and the record says where its state is.
    let legacy = present_legacy_tags(subject, &facts.tags);
    let no_room = match stage {
        Stage::Deleted => None,
        _ => no_tag_room(subject, facts, policy, now, &legacy),
    };
    let reason = match &no_room {
        Some(why) => format!("{reason}; {why}"),
        None => reason,
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
                    keys: present_stage_tags(subject, &facts.tags),
                });
            }
        }
        _ => {
            // The old three-tag form, from versions before the single stage tag, goes either way.
            effects.push(Effect::RemoveTags { keys: legacy });
            if no_room.is_none() {
                effects.push(Effect::PutTags {
                    tags: vec![stage_tag(
                        subject,
                        stage,
                        next,
                        stage == Stage::PendingDelete,
                    )],
                });
            }
        }
    }
    effects.retain(|e| !matches!(e, Effect::RemoveTags { keys } if keys.is_empty()));

    let planned = PlannedStep {
        step,
        gate: gate(step, policy, budget),
        effects,
        after,
        resumes: None,
    };
    Decision::taking(planned, reason)
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

/// Why the stage tag of `subject` cannot be written, or `None` when it fits. Other dormant
/// credentials of the same user are decided on the same facts in one run, so a slot one of them
/// may take is not counted as free.
fn no_tag_room(
    subject: &Subject,
    facts: &Facts,
    policy: &Policy,
    now: Timestamp,
    removed: &[String],
) -> Option<String> {
    let others = dormant_subjects(facts, policy, now)
        .iter()
        .filter(|s| *s != subject)
        .filter(|s| present_stage_tags(s, &facts.tags).is_empty())
        .count();
    let used = tag_overflow(&facts.tags, &stage_tag_key(subject), removed, others)?;
    let kept = match others {
        0 => String::new(),
        n => format!(", {n} kept for other credentials of this user"),
    };
    Some(format!(
        "no room for dormant's tag ({used} of {TAG_LIMIT} used{kept}); state kept in DynamoDB only"
    ))
}

/// Reverses exactly what dormant changed: its tags (never an exemption tag), its inline policy,
/// and the keys it turned off that are still off. A key its owner turned off stays off.
pub(crate) fn release(
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
    let tags = present_stage_tags(subject, &facts.tags);
    if !tags.is_empty() {
        effects.push(Effect::RemoveTags { keys: tags });
    }

    let mut after = record.entering(to, now, reason.clone());
    after.released_at = Some(now);
    after.keys_deactivated.clear();
    after.approval = None;
    after.last_used_at = facts.activity(&subject.scope).and_then(|a| a.last_used_at);
    let planned = PlannedStep {
        step: Step::Release,
        gate: if policy.dry_run {
            Gate::DryRun
        } else {
            Gate::Proceed
        },
        effects,
        after,
        resumes: None,
    };
    Decision::taking(planned, reason)
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
    let whole = whole.filter(|w| w.stage == Stage::Released)?;
    let end = whole.released_at? + policy.ladder.cooloff;
    (now < end).then_some(end)
}
