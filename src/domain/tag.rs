//! Reading dormant's own tags. IAM keeps a user's or role's tag keys unique regardless of case
//! (it refuses `Dormant:Exempt` next to `dormant:exempt`) and preserves the case written.
//!
//! What a tag *grants* (an exemption, a restore marker) is read only under dormant's exact,
//! lowercase key: that is the spelling the sample SCP keeps to security admins (`StringLike` on
//! `aws:TagKeys` is case-sensitive), so `DORMANT:EXEMPT` written by an identity's owner grants
//! nothing. What dormant *removes* (its stage tags) is found in any case, and any case of
//! `dormant:*` nominates an identity for a fresh look.
//!
//! Every `dormant:*` tag name is defined here, and nowhere else.

use std::collections::BTreeMap;

use super::stage::{Stage, Step};
use super::subject::{Scope, Subject};
use super::time::{fmt_time, Timestamp};

/// The prefix of every tag dormant reads or writes.
pub const PREFIX: &str = "dormant:";

/// The stage tag of a whole role or user: what the controller's permissions to remove policies
/// are conditioned on (`domain::permissions::Guard::Marked`).
pub const WHOLE_STAGE_TAG: &str = "dormant:stage";

/// The tag keys dormant's roles may write and remove (`aws:TagKeys`, compared case-sensitively):
/// the stage tags of a whole identity and of its credentials, the companions earlier versions
/// wrote, and any other spelling of the prefix (a stage tag someone wrote as `Dormant:Stage` is
/// removed too; nothing is granted by a tag in another case). Not the tags that grant something,
/// `dormant:exempt*` and `dormant:restored-from`: only operator commands write those.
pub const TAG_KEY_PATTERNS: [&str; 7] = [
    "dormant:stage",
    "dormant:credentials",
    "dormant:key:*",
    "dormant:password:*",
    "dormant:next-step*",
    "Dormant:*",
    "DORMANT:*",
];

/// Whether dormant's roles may write or remove the tag `key` ([`TAG_KEY_PATTERNS`], as IAM's
/// `StringLike` compares: case-sensitively, `*` at the end only).
pub fn may_write_tag(key: &str) -> bool {
    TAG_KEY_PATTERNS.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == *p,
    })
}

/// The user-level marker of a user with credentials on dormant's ladder: what the controller's
/// permission to turn access keys on and off is conditioned on besides `dormant:stage`
/// (`domain::permissions::Guard::CredentialsMarked`), since a key's own stage tag
/// (`dormant:key:<id>:stage`) can be named by no IAM condition key. Written in the same `TagUser`
/// call as the first credential stage tag of the user, removed in the same `UntagUser` call as
/// the last one.
pub const CREDENTIALS_TAG: &str = "dormant:credentials";
/// Its value (informational; the guard tests only that the tag is there).
pub const CREDENTIALS_TAG_VALUE: &str = "access keys or password on the dormant ladder";

/// Whether the principal carries the credentials marker (exact key: it is what the guard names).
pub fn has_credentials_marker(tags: &BTreeMap<String, String>) -> bool {
    tags.contains_key(CREDENTIALS_TAG)
}

/// The credential stage tags (any case, either form) of subjects other than `subject` whose
/// credential still exists (`key_exists`, `has_password`): the marker stays while there is one.
/// The tag of a credential deleted outside dormant is an orphan and keeps nothing.
pub fn other_credential_tags(
    subject: &Subject,
    tags: &BTreeMap<String, String>,
    key_exists: impl Fn(&str) -> bool,
    has_password: bool,
) -> Vec<String> {
    let own = present_stage_tags(subject, tags);
    tags.keys()
        .filter(|k| !own.contains(k))
        .filter(|k| {
            credential_of_tag(k).is_some_and(|c| match c {
                Scope::AccessKey(id) => key_exists(&id),
                Scope::Password => has_password,
                Scope::Whole => false,
            })
        })
        .cloned()
        .collect()
}

/// The credential a progress tag (`dormant:key:<id>:…`, `dormant:password:…`, any case) is of.
pub fn credential_of_tag(key: &str) -> Option<Scope> {
    let lower = key.to_ascii_lowercase();
    if lower.starts_with(PASSWORD_PREFIX) {
        return Some(Scope::Password);
    }
    let rest = key
        .get(KEY_PREFIX.len()..)
        .filter(|_| lower.starts_with(KEY_PREFIX))?;
    let id = rest.split(':').next().filter(|id| !id.is_empty())?;
    Some(Scope::AccessKey(id.to_ascii_uppercase()))
}

/// An owner's exemption (docs/design.md, 'Decisions and guards'): `true`, and optionally until a
/// date and with a reason.
pub const TAG_EXEMPT: &str = "dormant:exempt";
pub const TAG_EXEMPT_UNTIL: &str = "dormant:exempt-until";
pub const TAG_EXEMPT_REASON: &str = "dormant:exempt-reason";

/// The progress tags of an access key (`dormant:key:<id>:stage`) and of a console password.
const KEY_PREFIX: &str = "dormant:key:";
const PASSWORD_PREFIX: &str = "dormant:password:";
/// The one progress tag (after the prefix), and the two that versions before it wrote.
const STAGE: &str = "stage";
const LEGACY_NEXT_STEP: &str = "next-step";
const LEGACY_NEXT_STEP_AT: &str = "next-step-at";

/// The tag `restore` puts on the identity it creates, in the `CreateRole`/`CreateUser` call itself
/// so that the identity never exists without it. Its value names the snapshot (see
/// [`Snapshot::restore_marker`](super::snapshot::Snapshot::restore_marker)): an interrupted
/// restore finds its own identity by it and finishes, while an identity someone else created
/// under the name has no such tag. `restore` removes it once the record says released.
pub const RESTORED_FROM_TAG: &str = "dormant:restored-from";

/// Whether `key` is one of dormant's (`dormant:*`, any case).
pub fn is_dormant_key(key: &str) -> bool {
    key.get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

/// The value of the tag `key`, exactly as spelled (see the module comment).
pub fn value<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    tags.get(key).map(String::as_str)
}

/// A stored key that is `key` in another case, which dormant does not honour: said in reasons.
pub fn miscased<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    tags.keys()
        .find(|k| k.as_str() != key && k.eq_ignore_ascii_case(key))
        .map(String::as_str)
}

/// The key as stored and its value: what an untag call must name.
pub fn stored<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> Option<(&'a str, &'a str)> {
    tags.get_key_value(key)
        .or_else(|| tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// IAM's limit on tags per role or user.
pub const TAG_LIMIT: usize = 50;

/// The one tag that shows a subject's progress on the principal itself: `dormant:stage` for the
/// whole principal, `dormant:key:<id>:stage` for an access key, `dormant:password:stage` for the
/// console password.
pub fn stage_tag_key(subject: &Subject) -> String {
    format!("{}{STAGE}", tag_prefix(subject))
}

/// The two tags versions before the single stage tag wrote next to it (`…next-step`,
/// `…next-step-at`). dormant removes them wherever it writes or removes the stage tag.
pub fn legacy_tag_keys(subject: &Subject) -> [String; 2] {
    let prefix = tag_prefix(subject);
    [
        format!("{prefix}{LEGACY_NEXT_STEP}"),
        format!("{prefix}{LEGACY_NEXT_STEP_AT}"),
    ]
}

fn tag_prefix(subject: &Subject) -> String {
    match &subject.scope {
        Scope::Whole => PREFIX.to_string(),
        Scope::AccessKey(id) => format!("{KEY_PREFIX}{id}:"),
        Scope::Password => PASSWORD_PREFIX.to_string(),
    }
}

/// The stage tag for a stage and what comes next: `noticed next quarantine at
/// 2026-06-08T00:00:00Z`, `pending_delete awaiting approval`, or the stage alone when nothing is
/// scheduled. The stage always comes first (the sample SCP matches on it). Only characters IAM
/// accepts in tag values.
pub fn stage_tag(
    subject: &Subject,
    stage: Stage,
    next: Option<(Step, Timestamp)>,
    awaiting_approval: bool,
) -> (String, String) {
    let value = match next {
        Some((step, at)) => format!("{stage} next {step} at {}", fmt_time(at)),
        None if awaiting_approval => format!("{stage} awaiting approval"),
        None => stage.as_str().to_string(),
    };
    (stage_tag_key(subject), value)
}

/// The key of `tags` that is `key` for IAM, which compares tag keys without regard to case.
fn find_key<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> Option<&'a String> {
    tags.keys().find(|k| k.eq_ignore_ascii_case(key))
}

/// dormant's progress tags of `subject` present on the principal, in either form, spelled as
/// IAM has them.
pub fn present_stage_tags(subject: &Subject, tags: &BTreeMap<String, String>) -> Vec<String> {
    let [next, at] = legacy_tag_keys(subject);
    [stage_tag_key(subject), next, at]
        .iter()
        .filter_map(|k| find_key(tags, k).cloned())
        .collect()
}

/// The old-form companions of `subject`'s stage tag present on the principal.
pub fn present_legacy_tags(subject: &Subject, tags: &BTreeMap<String, String>) -> Vec<String> {
    legacy_tag_keys(subject)
        .iter()
        .filter_map(|k| find_key(tags, k).cloned())
        .collect()
}

/// How many tags the principal would have after writing `key` (once `removed` are gone), with
/// `reserved` more kept for tags other subjects of the principal may write in the same run.
/// `None` when that fits under [`TAG_LIMIT`]; otherwise the count to report.
pub fn tag_overflow(
    tags: &BTreeMap<String, String>,
    key: &str,
    removed: &[String],
    reserved: usize,
) -> Option<usize> {
    if find_key(tags, key).is_some() {
        return None; // written over in place
    }
    let kept = tags.len().saturating_sub(removed.len());
    (kept + 1 + reserved > TAG_LIMIT).then_some(kept)
}

/// Tags dormant set: to show a stage (`dormant:stage`, `dormant:next-step`,
/// `dormant:next-step-at`, and the per-credential `dormant:key:*`, `dormant:password:*`) or an
/// earlier restore ([`RESTORED_FROM_TAG`]). They describe dormant's progress, not the owner's
/// intent, so restore leaves them out.
pub fn is_progress_tag(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if key == RESTORED_FROM_TAG
        || key == CREDENTIALS_TAG
        || key.starts_with(KEY_PREFIX)
        || key.starts_with(PASSWORD_PREFIX)
    {
        return true;
    }
    key.strip_prefix(PREFIX)
        .is_some_and(|name| [STAGE, LEGACY_NEXT_STEP, LEGACY_NEXT_STEP_AT].contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tags_of_credentials_that_still_exist_keep_the_marker() {
        let user = super::super::subject::Principal::user("123456789012", "/", "u");
        let mine = Subject::access_key(user.clone(), "AKIAMINE");
        let tags: BTreeMap<String, String> = [
            "dormant:key:AKIAMINE:stage",
            "Dormant:Key:akiagone:stage",
            "dormant:key:AKIALIVE:stage",
            "dormant:password:stage",
            "dormant:credentials",
        ]
        .iter()
        .map(|k| (k.to_string(), String::new()))
        .collect();
        assert_eq!(
            credential_of_tag("Dormant:Key:akiagone:stage"),
            Some(Scope::AccessKey("AKIAGONE".into()))
        );
        assert_eq!(credential_of_tag("dormant:credentials"), None);
        let live = |id: &str| id == "AKIALIVE";
        assert_eq!(
            other_credential_tags(&mine, &tags, live, false),
            vec!["dormant:key:AKIALIVE:stage".to_string()]
        );
        assert_eq!(
            other_credential_tags(&mine, &tags, |_| false, true).len(),
            1
        );
        assert!(other_credential_tags(&mine, &tags, |_| false, false).is_empty());
    }

    #[test]
    fn grants_are_read_exactly_and_removals_in_any_case() {
        let tags: BTreeMap<String, String> = [("Dormant:Exempt".to_string(), "yes".to_string())]
            .into_iter()
            .collect();
        assert_eq!(value(&tags, "dormant:exempt"), None);
        assert_eq!(miscased(&tags, "dormant:exempt"), Some("Dormant:Exempt"));
        assert_eq!(
            stored(&tags, "DORMANT:EXEMPT"),
            Some(("Dormant:Exempt", "yes"))
        );
        assert_eq!(value(&tags, "dormant:exempt-until"), None);
        assert!(is_dormant_key("DORMANT:stage"));
        assert!(!is_dormant_key("dormant"));
        assert!(!is_dormant_key("dörmant:x"));
    }

    #[test]
    fn the_marked_guard_names_the_whole_stage_tag_and_the_key_patterns_cover_it() {
        let p = super::super::subject::Principal::role("123456789012", "/", "r");
        assert_eq!(stage_tag_key(&Subject::whole(p)), WHOLE_STAGE_TAG);
        let allowed = may_write_tag;
        assert!(!allowed("dormant:Key:AKIAEXAMPLE:stage"));
        let user = super::super::subject::Principal::user("123456789012", "/", "u");
        let key = Subject::access_key(user.clone(), "AKIAEXAMPLE");
        let password = Subject::password(user);
        for subject in [key, password] {
            assert!(allowed(&stage_tag_key(&subject)), "{subject:?}");
            for legacy in legacy_tag_keys(&subject) {
                assert!(allowed(&legacy), "{legacy}");
            }
        }
        assert!(allowed(CREDENTIALS_TAG));
        for grants in [
            TAG_EXEMPT,
            TAG_EXEMPT_UNTIL,
            TAG_EXEMPT_REASON,
            RESTORED_FROM_TAG,
        ] {
            assert!(!allowed(grants), "{grants} must stay the operator's");
        }
    }
}
