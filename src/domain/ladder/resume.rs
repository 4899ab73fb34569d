//! Taking over a step another run started: decided again through every guard.

use super::*;

/// A step started earlier (by a run that crashed, failed or ran out of time) is taken over only
/// through the same guards as a fresh step, on this run's facts: an identity that is now exempt,
/// protected or used is released (the half-done step rolled back), a delete that is no longer
/// allowed is not finished, and the rest goes through the breaker and dry-run gates again.
pub(super) fn resume(
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
    let verdict = exemption_of(record, facts, policy, now);
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
            let mut effects = if tags.is_empty() {
                Vec::new()
            } else {
                vec![Effect::RemoveTags { keys: tags }]
            };
            let marker = plan::credentials_marker(subject, facts, &mut effects, true);
            let what = marker.said("the credential is gone".to_string());
            return finished_delete(intent, policy, now, &what, effects);
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
        blocked: None,
    };
    Decision::taking(planned, reason)
}
