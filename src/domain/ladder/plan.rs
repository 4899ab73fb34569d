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
    // A credential subject of a user without the credentials marker writes it with its stage
    // tag: the two need room together.
    let marker_wanted = subject.scope != Scope::Whole && !tag::has_credentials_marker(&facts.tags);
    let no_room = match stage {
        Stage::Deleted => None,
        _ => no_tag_room(subject, facts, policy, now, &legacy, marker_wanted),
    };
    let reason = match &no_room {
        Some(why) => format!("{reason}; {why}"),
        None => reason,
    };
    // A quarantine policy already attached by someone else stays theirs: said in the audit trail.
    let found_attached = step == Step::Quarantine
        && subject.scope == Scope::Whole
        && facts.has_quarantine_policy
        && !record.owns_quarantine();
    let reason = match found_attached {
        true => format!(
            "{reason}; dormant's quarantine policy was already attached by someone else: it \
             stays on release"
        ),
        false => reason,
    };

    let mut after = record.entering(stage, now, reason.clone());
    after.last_used_at = facts.activity(&subject.scope).and_then(|a| a.last_used_at);
    match step {
        Step::Notice => {
            after.noticed_at = Some(now);
            after.keys_deactivated.clear();
            after.approval = None;
            // A new ladder: nothing of an earlier one's claim on a quarantine carries over.
            after.quarantine_attached = None;
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
        // dormant detaches only a quarantine policy it attached: one already there (an
        // operator's incident response) stays theirs.
        Step::Quarantine if subject.scope == Scope::Whole => {
            after.quarantine_attached = Some(!found_attached);
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
            effects.push(Effect::RemoveTags {
                keys: legacy.clone(),
            });
            if no_room.is_none() {
                effects.push(Effect::PutTags {
                    tags: vec![stage_tag(
                        subject,
                        stage,
                        next,
                        stage == Stage::PendingDelete,
                    )],
                });
            } else if marker_wanted && marker_fits(facts, &legacy) {
                // The marker is what lets dormant's roles turn the keys off later: it goes
                // first when only one tag fits.
                effects.push(Effect::PutTags { tags: vec![] });
            }
        }
    }
    let marker = credentials_marker(subject, facts, &mut effects, stage == Stage::Deleted);
    let reason = marker.said(reason);
    after.reason = reason.clone();
    effects.retain(|e| match e {
        Effect::RemoveTags { keys } => !keys.is_empty(),
        Effect::PutTags { tags } => !tags.is_empty(),
        _ => true,
    });

    let planned = PlannedStep {
        step,
        gate: gate(step, policy, budget),
        effects,
        after,
        resumes: None,
        blocked: marker.blocked,
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
    marker_wanted: bool,
) -> Option<String> {
    let others = other_untagged(subject, facts, policy, now);
    let marker = usize::from(marker_wanted);
    let used = tag_overflow(
        &facts.tags,
        &stage_tag_key(subject),
        removed,
        others + marker,
    )?;
    let kept = match others {
        0 => String::new(),
        n => format!(", {n} kept for other credentials of this user"),
    };
    let marker = match marker_wanted {
        false => "",
        true if marker_fits(facts, removed) => {
            " (only the user's dormant:credentials marker written)"
        }
        true => {
            "; without the user's dormant:credentials marker, dormant's roles may not turn its \
             keys off or delete them"
        }
    };
    Some(format!(
        "no room for dormant's tag ({used} of {TAG_LIMIT} used{kept}); state kept in DynamoDB \
         only{marker}"
    ))
}

/// Other dormant credentials of the same user, decided on the same facts in one run, that have
/// no stage tag yet: a slot one of them may take is not counted as free.
fn other_untagged(subject: &Subject, facts: &Facts, policy: &Policy, now: Timestamp) -> usize {
    dormant_subjects(facts, policy, now)
        .iter()
        .filter(|s| *s != subject)
        .filter(|s| present_stage_tags(s, &facts.tags).is_empty())
        .count()
}

/// Whether the credentials marker alone fits. It is shared by every credential ladder of the
/// user, so no slot is kept back for the others: each writes the same tag.
fn marker_fits(facts: &Facts, removed: &[String]) -> bool {
    tag_overflow(&facts.tags, tag::CREDENTIALS_TAG, removed, 0).is_none()
}

/// What a guarded effect does, in words (`None`: not guarded).
fn guarded_call(effect: &Effect) -> Option<&'static str> {
    match effect {
        Effect::DeactivateKeys { .. } => Some("turn its access keys off"),
        Effect::ReactivateKeys { .. } => Some("turn its access keys back on"),
        Effect::DeleteAccessKey { .. } => Some("delete its access key"),
        Effect::DeleteLoginProfile => Some("delete its console password"),
        _ => None,
    }
}

/// Whether an effect needs the user marked (`dormant:stage` or the credentials marker) under
/// dormant's roles (`domain::permissions::guards`).
fn needs_marker(effect: &Effect) -> bool {
    effect.needs_user_marker()
}

/// What [`credentials_marker`] planned: words for the reason (the audit trail), and why the
/// step cannot be carried out at all.
#[derive(Debug, Default)]
pub(super) struct MarkerPlan {
    pub note: Option<String>,
    /// The guarded effects were left out: the user has neither `dormant:stage` nor room for the
    /// marker, so dormant's roles would be refused (and SSM's too). The step fails with this.
    pub blocked: Option<String>,
}

impl MarkerPlan {
    /// `reason` with the note appended.
    pub fn said(&self, reason: String) -> String {
        match &self.note {
            Some(note) => format!("{reason}; {note}"),
            None => reason,
        }
    }
}

/// The credentials marker of a user (docs/design.md, 'Permissions'), which dormant's roles need
/// to turn keys on or off, delete a key or a password, where the user lacks `dormant:stage`.
/// A credential subject writes it in the same `TagUser` call as its stage tag when the user lacks
/// it; when the step needs it before that call (a user an earlier version tagged, or one whose
/// first tag found no room), it is written first, where it fits. A whole user without
/// `dormant:stage` (50 tags, state in DynamoDB only, or the tag removed by hand) gets its stage
/// tag written before the guarded effect when the step writes it, the marker otherwise. The
/// marker is removed with the subject's tags when the step `ends` its ladder and no other
/// credential ladder of the user (of a credential that still exists) has its tag on the user;
/// the engine looks again per user once all its subjects are decided. When nothing fits, the
/// guarded effects are left out and the step fails with [`MarkerPlan::blocked`].
pub(super) fn credentials_marker(
    subject: &Subject,
    facts: &Facts,
    effects: &mut Vec<Effect>,
    ends: bool,
) -> MarkerPlan {
    let mut plan = MarkerPlan::default();
    if subject.principal.kind != PrincipalKind::User {
        return plan;
    }
    let marker = (
        tag::CREDENTIALS_TAG.to_string(),
        tag::CREDENTIALS_TAG_VALUE.to_string(),
    );
    let mut marked = tag::has_credentials_marker(&facts.tags);
    let mut notes = Vec::new();
    if subject.scope == Scope::Whole {
        if facts.tags.contains_key(tag::WHOLE_STAGE_TAG) {
            return plan;
        }
        let Some(i) = effects.iter().position(needs_marker) else {
            // Nothing guarded: a marker an earlier step of this ladder wrote goes with its end.
            if ends && marked {
                remove_marker(subject, facts, effects, &mut notes);
            }
            plan.note = (!notes.is_empty()).then(|| notes.join("; "));
            return plan;
        };
        let stage_write = effects.iter().skip(i).position(|e| {
            matches!(e, Effect::PutTags { tags } if tags.iter().any(|(k, _)| k == tag::WHOLE_STAGE_TAG))
        });
        if let Some(j) = stage_write {
            let own = effects.remove(i + j);
            effects.insert(i, own);
            plan.note = Some(format!(
                "the user had no {}: written before its keys are changed, which dormant's roles \
                 allow only on a user carrying it",
                tag::WHOLE_STAGE_TAG
            ));
            return plan;
        }
    }
    if !marked {
        if let Some(i) = effects.iter().position(needs_marker) {
            // A release or delete of a user with no free slot takes the subject's own tags off
            // first, which makes room.
            let untag = effects[i..]
                .iter()
                .position(|e| matches!(e, Effect::RemoveTags { .. }))
                .filter(|_| ends)
                .map(|j| i + j);
            let freed = match untag.map(|j| &effects[j]) {
                Some(Effect::RemoveTags { keys }) => keys.clone(),
                _ => Vec::new(),
            };
            if tag_overflow(&facts.tags, tag::CREDENTIALS_TAG, &[], 0).is_none() {
                effects.insert(i, Effect::PutTags { tags: vec![marker] });
                marked = true;
            } else if let Some(j) = untag
                .filter(|_| tag_overflow(&facts.tags, tag::CREDENTIALS_TAG, &freed, 0).is_none())
            {
                let own = effects.remove(j);
                effects.insert(i, own);
                effects.insert(i + 1, Effect::PutTags { tags: vec![marker] });
                marked = true;
            } else {
                let used = facts.tags.len();
                let left: Vec<&'static str> = effects.iter().filter_map(guarded_call).collect();
                effects.retain(|e| !needs_marker(e));
                plan.blocked = Some(format!(
                    "{} carries neither {} nor {}, and has no room for the marker ({used} of \
                     {TAG_LIMIT} tags used): dormant's roles (and SSM Automation's) may not {} \
                     there, so nothing was called; remove one tag of the user and the next \
                     attempt goes ahead",
                    subject.principal.arn(),
                    tag::WHOLE_STAGE_TAG,
                    tag::CREDENTIALS_TAG,
                    left.join(", ")
                ));
                return plan;
            }
            notes.push(format!(
                "the user's {} marker written first (dormant's roles change keys and passwords \
                 only on a user carrying it or {})",
                tag::CREDENTIALS_TAG,
                tag::WHOLE_STAGE_TAG
            ));
        } else if subject.scope != Scope::Whole {
            if let Some(Effect::PutTags { tags }) = effects
                .iter_mut()
                .find(|e| matches!(e, Effect::PutTags { .. }))
            {
                // Alone (the empty placeholder of a step without room for its stage tag), the
                // no-room reason says so already.
                if !tags.is_empty() {
                    notes.push(format!(
                        "the user's {} marker written with the stage tag",
                        tag::CREDENTIALS_TAG
                    ));
                }
                tags.push(marker);
                marked = true;
            }
        }
    }
    if ends && marked {
        remove_marker(subject, facts, effects, &mut notes);
    }
    plan.note = (!notes.is_empty()).then(|| notes.join("; "));
    plan
}

/// Removes the marker at the end of `subject`'s ladder unless another credential ladder of the
/// user (a credential that still exists) keeps it; says which in `notes`.
fn remove_marker(
    subject: &Subject,
    facts: &Facts,
    effects: &mut Vec<Effect>,
    notes: &mut Vec<String>,
) {
    let others = tag::other_credential_tags(
        subject,
        &facts.tags,
        |id| {
            facts
                .access_keys
                .iter()
                .any(|k| k.id.to_string().eq_ignore_ascii_case(id))
        },
        facts.login_profile.is_some(),
    );
    if !others.is_empty() {
        notes.push(format!(
            "the user's {} marker kept: {} still on the user",
            tag::CREDENTIALS_TAG,
            others.join(", ")
        ));
        return;
    }
    // In the last untag call, which comes after every effect that needs the marker.
    let last_guarded = effects.iter().rposition(needs_marker);
    match effects
        .iter_mut()
        .enumerate()
        .rev()
        .find(|(n, e)| {
            matches!(e, Effect::RemoveTags { .. }) && last_guarded.is_none_or(|g| *n > g)
        })
        .map(|(_, e)| e)
    {
        Some(Effect::RemoveTags { keys }) => keys.push(tag::CREDENTIALS_TAG.to_string()),
        _ => effects.push(Effect::RemoveTags {
            keys: vec![tag::CREDENTIALS_TAG.to_string()],
        }),
    }
    notes.push(format!(
        "the user's {} marker removed (no other credential of the user on dormant's ladder)",
        tag::CREDENTIALS_TAG
    ));
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
    let mut reason = reason;
    let owned = record.owns_quarantine();
    // After the release nothing is dormant's: `Some(false)` (`None` is only an earlier version's
    // record). Except where the policy is already gone while an SSM execution of dormant's was
    // handed the quarantine: it may still attach it, and the repair needs the claim (for
    // `QUARANTINE_CLAIM` after the release, see `Record::owns_quarantine_at`).
    let ssm_ran = record
        .pending
        .as_ref()
        .is_some_and(|i| !i.fallback.is_empty());
    let quarantine_attached = match subject.scope {
        Scope::Whole => Some(owned && ssm_ran && !facts.has_quarantine_policy),
        Scope::AccessKey(_) | Scope::Password => record.quarantine_attached,
    };
    if subject.scope == Scope::Whole && facts.has_quarantine_policy {
        if owned {
            effects.push(Effect::DeleteQuarantinePolicy);
        } else {
            reason = format!(
                "{reason}; dormant's quarantine policy was attached by someone else, not \
                 dormant, and stays"
            );
        }
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
    let marker = credentials_marker(subject, facts, &mut effects, true);
    let reason = marker.said(reason);

    let mut after = record.entering(to, now, reason.clone());
    after.quarantine_attached = quarantine_attached;
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
        blocked: marker.blocked,
    };
    Decision::taking(planned, reason)
}
