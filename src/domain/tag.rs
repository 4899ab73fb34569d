//! Reading dormant's own tags. IAM keeps a user's or role's tag keys unique regardless of case
//! (it refuses `Dormant:Exempt` next to `dormant:exempt`) and preserves the case written.
//!
//! What a tag *grants* (an exemption, a restore marker) is read only under dormant's exact,
//! lowercase key: that is the spelling the sample SCP keeps to security admins (`StringLike` on
//! `aws:TagKeys` is case-sensitive), so `DORMANT:EXEMPT` written by an identity's owner grants
//! nothing. What dormant *removes* (its stage tags) is found in any case, and any case of
//! `dormant:*` nominates an identity for a fresh look.

use std::collections::BTreeMap;

/// The prefix of every tag dormant reads or writes.
pub const PREFIX: &str = "dormant:";

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
