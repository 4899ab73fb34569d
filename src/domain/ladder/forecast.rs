//! `dormant plan`: the ladder run forward on one read of IAM and the table, with a moving `now`
//! and nothing changed anywhere. Each step `decide` would take is applied to copies of the record
//! and the facts (as the executor would apply it to IAM), and the next run is assumed at the
//! moment the next step falls due. The circuit breaker is not simulated: every step counts as
//! allowed, and a dry run's gate as taken.

use super::*;

/// Rounds of `decide` per subject: a ladder has at most five steps, and each wait moves `now`
/// strictly forward, so this is never reached by a well-formed record.
const MAX_ROUNDS: usize = 32;

/// What the ladder would do to one subject between `from` and `until` if nothing changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlook {
    pub subject: Subject,
    /// The steps, oldest first, each with when and why.
    pub steps: Vec<(Timestamp, Step, String)>,
    /// Why nothing (more) happens within the window: the last decision's reason.
    pub quiet: String,
}

/// The outlook of every subject of one principal: the whole role or user, each access key and
/// the password the facts show, and every other subject the table tracks for it. `records` are
/// the table's records of this principal.
pub fn forecast(
    facts: &Facts,
    records: &[Record],
    policy: &Policy,
    from: Timestamp,
    until: Timestamp,
) -> Vec<Outlook> {
    let principal = &facts.principal;
    let mut subjects: Vec<Subject> = vec![Subject::whole(principal.clone())];
    subjects.extend(
        facts
            .access_keys
            .iter()
            .map(|k| Subject::access_key(principal.clone(), &k.id.to_string())),
    );
    if facts.login_profile.is_some() {
        subjects.push(Subject::password(principal.clone()));
    }
    for r in records {
        if !subjects.contains(&r.subject) {
            subjects.push(r.subject.clone());
        }
    }
    let whole = records.iter().find(|r| r.subject.scope == Scope::Whole);
    subjects
        .into_iter()
        .map(|subject| {
            let record = records
                .iter()
                .find(|r| r.subject == subject)
                .cloned()
                .unwrap_or_else(|| Record::new(subject));
            simulate(record, facts.clone(), whole, policy, from, until)
        })
        .collect()
}

fn simulate(
    mut record: Record,
    mut facts: Facts,
    whole: Option<&Record>,
    policy: &Policy,
    from: Timestamp,
    until: Timestamp,
) -> Outlook {
    let subject = record.subject.clone();
    let mut steps = Vec::new();
    let mut quiet = String::new();
    let mut now = from;
    for _ in 0..MAX_ROUNDS {
        if let Some(end) = cooloff_covers(&record, whole, policy, now) {
            quiet = format!(
                "the user is in cool-off after release until {}",
                fmt_time(end)
            );
            match Some(end).filter(|t| *t <= until) {
                Some(t) => {
                    now = t;
                    continue;
                }
                None => break,
            }
        }
        let d = decide(&record, Some(&facts), policy, &Budget::default(), now);
        // A sweep puts a credential on the ladder only when the whole user is not (see
        // `dormant_subjects`); one already tracked goes on regardless.
        let nominated = subject.scope == Scope::Whole
            || record.version > 0
            || dormant_subjects(&facts, policy, now).contains(&subject);
        let wait_reason = d.reason.clone();
        match d.action {
            Action::Step(p) if nominated => {
                steps.push((now, p.step, d.reason));
                apply(&mut facts, &p.effects);
                record = p.after;
                record.version += 1;
                record.pending = None;
                if record.stage == Stage::Deleted {
                    quiet = "deleted".to_string();
                    break;
                }
            }
            Action::Step(_) => {
                quiet = "the whole user is on the ladder, not this credential on its own".into();
                break;
            }
            Action::Record(after) if *after != record => {
                record = *after;
                record.version += 1;
            }
            Action::Record(_) | Action::Wait => {
                quiet = wait_reason;
                let wake = d
                    .next
                    .map(|(_, t)| t)
                    .filter(|t| *t > now)
                    .or_else(|| wake_up(&record, &facts, policy, d.exemption.as_ref(), now));
                match wake.filter(|t| *t <= until) {
                    Some(t) => now = t,
                    None => break,
                }
            }
        }
    }
    Outlook {
        subject,
        steps,
        quiet,
    }
}

/// When a subject nothing happens to now might next be decided differently: it turns dormant,
/// old enough, out of cool-off, or its exemption ends.
fn wake_up(
    record: &Record,
    facts: &Facts,
    policy: &Policy,
    exemption: Option<&Exemption>,
    now: Timestamp,
) -> Option<Timestamp> {
    let scope = &record.subject.scope;
    let threshold = match scope {
        Scope::Whole => policy.inactivity.threshold,
        Scope::AccessKey(_) | Scope::Password => policy.inactivity.key_threshold,
    };
    let mut times = vec![facts.created_at + policy.inactivity.min_age];
    if let Some(a) = facts.activity(scope) {
        times.push(a.since + threshold);
    }
    if let Some(released) = record.released_at {
        times.push(released + policy.ladder.cooloff);
    }
    if let Some(Exemption::Tag {
        until: Some(end), ..
    }) = exemption
    {
        times.push(*end);
    }
    times.into_iter().filter(|t| *t > now).min()
}

/// What the effects would leave in IAM, on the copy of the facts.
fn apply(facts: &mut Facts, effects: &[Effect]) {
    let set_keys = |facts: &mut Facts, ids: &[String], active: bool| {
        for k in facts.access_keys.iter_mut() {
            if ids.iter().any(|id| k.id == *id) {
                k.active = active;
            }
        }
    };
    for e in effects {
        match e {
            Effect::PutTags { tags } => facts.tags.extend(tags.iter().cloned()),
            Effect::RemoveTags { keys } => facts.tags.retain(|k, _| !keys.contains(k)),
            Effect::PutQuarantinePolicy => facts.has_quarantine_policy = true,
            Effect::DeleteQuarantinePolicy => facts.has_quarantine_policy = false,
            Effect::DeactivateKeys { key_ids } => set_keys(facts, key_ids, false),
            Effect::ReactivateKeys { key_ids } => set_keys(facts, key_ids, true),
            Effect::DeleteAccessKey { key_id } => facts.access_keys.retain(|k| k.id != *key_id),
            Effect::DeleteLoginProfile => facts.login_profile = None,
            Effect::TakeSnapshot | Effect::DeletePrincipal => {}
        }
    }
}
