//! Reading dormant's own tags. IAM keeps a user's or role's tag keys unique regardless of case
//! (it refuses `Dormant:Exempt` next to `dormant:exempt`: "Tag keys are case insensitive") and
//! preserves the case written, so dormant matches its keys ignoring ASCII case everywhere.

use std::collections::BTreeMap;

/// The prefix of every tag dormant reads or writes.
pub const PREFIX: &str = "dormant:";

/// Whether `key` is one of dormant's (`dormant:*`, any case).
pub fn is_dormant_key(key: &str) -> bool {
    key.get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

/// The value of the tag `key`, however the stored key is cased.
pub fn value<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    stored(tags, key).map(|(_, v)| v)
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
    fn keys_match_whatever_their_case() {
        let tags: BTreeMap<String, String> = [("Dormant:Exempt".to_string(), "yes".to_string())]
            .into_iter()
            .collect();
        assert_eq!(value(&tags, "dormant:exempt"), Some("yes"));
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
