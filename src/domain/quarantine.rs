//! dormant's quarantine. Since 0.x (issue 16) it is the customer-managed policy
//! `/dormant/DormantQuarantineDenyAll` that the CDK stacks (or `dormant init`) create in every
//! account, attached to the identity: the controller may attach that one policy and nothing else,
//! so it needs no right to write a policy document (docs/design.md, 'The quarantine policy').
//! Earlier versions wrote an inline deny-all; dormant still recognises and removes those, and never
//! overwrites or deletes an inline policy it did not write.

use serde_json::{json, Value};

use super::subject::Principal;

/// The managed policy's name and path; its ARN is [`policy_arn`].
pub const MANAGED_POLICY_NAME: &str = "DormantQuarantineDenyAll";
pub const MANAGED_POLICY_PATH: &str = "/dormant/";

/// The ARN of dormant's quarantine policy in `account` of `partition`.
pub fn policy_arn(partition: &str, account: &str) -> String {
    format!("arn:{partition}:iam::{account}:policy{MANAGED_POLICY_PATH}{MANAGED_POLICY_NAME}")
}

/// The ARN of the quarantine policy in the principal's own account and partition: the only one
/// dormant attaches to it.
pub fn policy_arn_for(p: &Principal) -> String {
    policy_arn(&p.partition, &p.account)
}

/// The managed policy's document: what the stacks and `dormant init` create.
pub fn managed_document() -> String {
    LEGACY_QUARANTINE_POLICY_DOCUMENT.to_string()
}

/// Whether a policy document can only take access away and does take all of it: every statement
/// a `Deny`, one of them of `*` on `*` without a condition. dormant attaches its quarantine policy
/// only after its default version passes this, so a tampered copy (an `Allow` added to it) is
/// never attached to anyone.
pub fn denies_all_and_grants_nothing(document: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(document) else {
        return false;
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return false,
    };
    let is_star = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s == "*",
        Some(Value::Array(list)) => list.iter().any(|x| x == "*"),
        _ => false,
    };
    !statements.is_empty()
        && statements
            .iter()
            .all(|st| st.get("Effect").and_then(Value::as_str) == Some("Deny"))
        && statements.iter().any(|st| {
            is_star(st.get("Action"))
                && is_star(st.get("Resource"))
                && st.get("Condition").is_none()
                && st.get("NotAction").is_none()
                && st.get("NotResource").is_none()
                && st.get("NotPrincipal").is_none()
        })
}

/// The names dormant's deny-all inline policy may have, in order of preference. The second is
/// used only when a policy dormant did not write holds the first.
pub const QUARANTINE_POLICY_NAMES: [&str; 2] =
    ["DormantQuarantineDenyAll", "DormantQuarantineDenyAll-2"];

/// The usual name of dormant's (legacy, inline) quarantine policy.
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
    fn the_policy_arn_is_the_principals_own_account_and_partition() {
        let p = Principal::role("123456789012", "/", "x").in_partition("aws-cn");
        assert_eq!(
            policy_arn_for(&p),
            "arn:aws-cn:iam::123456789012:policy/dormant/DormantQuarantineDenyAll"
        );
    }

    #[test]
    fn only_a_document_of_denies_with_a_full_deny_all_passes_the_attach_check() {
        assert!(denies_all_and_grants_nothing(&managed_document()));
        assert!(denies_all_and_grants_nothing(
            r#"{"Statement":{"Effect":"Deny","Action":["*"],"Resource":"*"}}"#
        ));
        for tampered in [
            // An Allow anywhere grants something.
            r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"},{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            // Denies that leave something allowed.
            r#"{"Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"arn:aws:s3:::b"}]}"#,
            r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"}}}]}"#,
            r#"{"Statement":[{"Effect":"Deny","NotAction":"iam:*","Action":"*","Resource":"*"}]}"#,
            r#"{"Statement":[]}"#,
            "not json",
        ] {
            assert!(!denies_all_and_grants_nothing(tampered), "{tampered}");
        }
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
