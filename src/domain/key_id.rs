//! How an access key is named: by its id, or by its credential-report slot in bulk reads.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An access key's id, or its slot in the credential report, which has columns `access_key_1_*`
/// and `access_key_2_*` but no key ids. Written `slot1`/`slot2` or the id itself (`AKIA…`), in
/// records and output alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum KeyId {
    /// The report's slot 1 or 2: a placeholder until `ListAccessKeys` gives the id.
    Slot(u8),
    Id(String),
}

impl KeyId {
    pub fn is_slot(&self) -> bool {
        matches!(self, KeyId::Slot(_))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyId::Slot(n) => write!(f, "slot{n}"),
            KeyId::Id(id) => f.write_str(id),
        }
    }
}

/// The slot `s` writes, if it writes one. The report has two: anything else is an id.
fn slot_of(s: &str) -> Option<u8> {
    match s {
        "slot1" => Some(1),
        "slot2" => Some(2),
        _ => None,
    }
}

/// The inverse of `Display`.
impl From<String> for KeyId {
    fn from(s: String) -> Self {
        match slot_of(&s) {
            Some(n) => KeyId::Slot(n),
            None => KeyId::Id(s),
        }
    }
}

impl From<&str> for KeyId {
    fn from(s: &str) -> Self {
        KeyId::from(s.to_string())
    }
}

impl From<KeyId> for String {
    fn from(k: KeyId) -> Self {
        match k {
            KeyId::Id(id) => id,
            slot => slot.to_string(),
        }
    }
}

/// Equal to the string it is written as (scopes and effects carry keys as strings).
impl PartialEq<str> for KeyId {
    fn eq(&self, other: &str) -> bool {
        match self {
            KeyId::Id(id) => id == other,
            KeyId::Slot(n) => slot_of(other) == Some(*n),
        }
    }
}

impl PartialEq<&str> for KeyId {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<String> for KeyId {
    fn eq(&self, other: &String) -> bool {
        *self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_as_before_the_type_existed() {
        for (key, text) in [
            (KeyId::Slot(1), "slot1"),
            (KeyId::Slot(2), "slot2"),
            (KeyId::Id("AKIAEXAMPLE".into()), "AKIAEXAMPLE"),
        ] {
            assert_eq!(key.to_string(), text);
            assert_eq!(serde_json::to_string(&key).unwrap(), format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<KeyId>(&format!("\"{text}\"")).unwrap(),
                key
            );
            assert_eq!(KeyId::from(text), key);
            assert_eq!(key, text);
        }
    }

    #[test]
    fn only_the_reports_two_slots_are_slots() {
        assert!(KeyId::from("slot2").is_slot());
        assert!(!KeyId::from("slot3").is_slot());
        assert!(!KeyId::from("AKIAEXAMPLE").is_slot());
        assert_ne!(KeyId::Slot(1), "AKIAEXAMPLE");
    }
}
