//! Records follow identities, not names: a re-created role, user or password starts clean.

use super::*;

/// What the reason of a record reset for a re-created identity starts with.
pub const RECREATED: &str = "re-created";

/// `Some` when IAM now shows a different identity under the record's name: the record restarts
/// clean for the new one (only dormant's own password tags are removed from a user that kept its
/// id); it is evaluated as any new identity from the next run on. Access keys need no check: a key
/// id is never reused, and a key missing from a re-created user is simply gone.
pub(super) fn superseded(
    record: &Record,
    facts: Option<&Facts>,
    policy: &Policy,
    now: Timestamp,
) -> Option<Decision> {
    let facts = facts?;
    if let (Stage::Deleted, Some(old)) = (record.stage, &record.unique_id) {
        // dormant's own restore of this identity that stopped half-way: `restore` finishes it
        // (it recognises its marker); starting clean would make it refuse.
        // The same test `restore` applies (`Snapshot::holder`): its marker, the old path, created
        // after the snapshot the marker names.
        let restored_after = tag::value(&facts.tags, RESTORED_FROM_TAG)
            .and_then(|m| m.strip_prefix(&format!("{old}@")))
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let ours = restored_after.is_some_and(|taken| {
            facts.created_at >= taken && facts.principal.path == record.subject.principal.path
        });
        if ours {
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
pub(super) fn remember_identity(after: &mut Record, facts: &Facts) {
    if after.unique_id.is_none() {
        after.unique_id.clone_from(&facts.unique_id);
    }
    if after.subject.scope == Scope::Password {
        let seen = facts.login_profile.as_ref().map(|p| p.created_at);
        after.login_profile_created_at = after.login_profile_created_at.max(seen);
    }
}
