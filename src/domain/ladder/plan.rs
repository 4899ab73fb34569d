//! What a step changes: its effects, the record after it and its gate; and a release.

use super::*;

/// Builds the decision for taking `step` now: the effects, the record after, and the gate.
pub(super) fn take(
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
