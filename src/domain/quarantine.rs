//! dormant's quarantine policy, and how dormant tells it from someone else's policy of the same
//! name. dormant never overwrites or deletes an inline policy it did not write: when an operator's
//! policy holds the usual name, dormant's goes under the second one.

use serde_json::{json, Value};

use super::subject::Principal;

/// The names dormant's deny-all inline policy may have, in order of preference. The second is
/// used only when a policy dormant did not write holds the first.
pub const QUARANTINE_POLICY_NAMES: [&str; 2] =
    ["DormantQuarantineDenyAll", "DormantQuarantineDenyAll-2"];

/// The usual name of dormant's quarantine policy.
pub const QUARANTINE_POLICY_NAME: &str = QUARANTINE_POLICY_NAMES[0];

/// The Sid versions before policy ownership wrote, on every principal: still recognised, so an
/// identity quarantined by them is released exactly.
pub const LEGACY_QUARANTINE_SID: &str = "DormantQuarantine";

/// The document versions before policy ownership wrote.
pub const LEGACY_QUARANTINE_POLICY_DOCUMENT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"DormantQuarantine","Effect":"Deny","Action":"*","Resource":"*"}]}"#;

/// A short id of the principal for the policy's Sid: FNV-1a (64 bits) of `<kind>/<name>`, name
/// lower-cased as IAM compares names. Not a secret (nothing about a policy can be): it tells
/// dormant's policy on this principal from a copy of it on another one. The SSM documents in
/// `remediation-docs/` compute the same.
pub fn marker(p: &Principal) -> String {
    let input = format!("{}/{}", p.kind.as_str(), p.name.to_ascii_lowercase());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in input.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// `DormantQuarantine` + the principal's marker (Sids allow only letters and digits).
pub fn sid(p: &Principal) -> String {
    format!("{LEGACY_QUARANTINE_SID}{}", marker(p))
}

fn deny_all(sid: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": sid, "Effect": "Deny", "Action": "*", "Resource": "*"}]
    })
}

/// Deny everything. IAM evaluates inline policies on every request, so sessions issued before the
/// quarantine are cut off too.
pub fn document(p: &Principal) -> String {
    deny_all(&sid(p)).to_string()
}

/// Whether `document` (JSON text, already URL-decoded) is dormant's quarantine policy for `p`:
/// exactly the deny-all with this principal's Sid, or the one earlier versions wrote. Anything
/// else under the name, however similar, is someone else's.
pub fn is_dormants(p: &Principal, document: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(document) else {
        return false;
    };
    doc == deny_all(&sid(p)) || doc == deny_all(LEGACY_QUARANTINE_SID)
}

/// Whether `name` is one of the names dormant's policy may have.
pub fn is_quarantine_name(name: &str) -> bool {
    QUARANTINE_POLICY_NAMES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_fixed_per_principal_kind_and_name_whatever_the_case() {
        // The same value is checked in remediation-docs/test/simulate.py.
        let etl = Principal::role("123456789012", "/", "legacy-etl");
        assert_eq!(marker(&etl), "f0151f9c09f899e3");
        assert_eq!(
            marker(&Principal::role("210987654321", "/other/", "Legacy-ETL")),
            marker(&etl),
            "account and path do not matter; IAM names are case-insensitive"
        );
        assert_ne!(
            marker(&Principal::user("123456789012", "/", "legacy-etl")),
            marker(&etl)
        );
    }

    #[test]
    fn only_the_exact_deny_all_with_this_principals_or_the_legacy_sid_is_dormants() {
        let p = Principal::role("123456789012", "/", "legacy-etl");
        let other = Principal::role("123456789012", "/", "other");
        assert!(is_dormants(&p, &document(&p)));
        assert!(is_dormants(&p, LEGACY_QUARANTINE_POLICY_DOCUMENT));
        let spaced = "{ \"Statement\": [ {\"Resource\":\"*\", \"Action\":\"*\", \"Effect\":\"Deny\", \"Sid\":\"DormantQuarantine\"} ], \"Version\": \"2012-10-17\" }";
        assert!(is_dormants(&p, spaced), "formatting does not matter");
        assert!(
            !is_dormants(&p, &document(&other)),
            "a copy from another role"
        );
        for foreign in [
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#,
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"DormantQuarantine","Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#,
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"DormantQuarantine","Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"DormantQuarantine","Effect":"Deny","Action":"*","Resource":"*"},{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
            "not json",
        ] {
            assert!(!is_dormants(&p, foreign), "{foreign}");
        }
    }
}
