//! The link token: `base64url(claims JSON) . base64url(HMAC-SHA-256 of the first part)`.
//! Verified against the current key, then the previous one (a rotation keeps links that are
//! already out working until they expire). The comparison is constant-time (`verify_slice`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Claims, Refusal};
use crate::domain::time::Timestamp;

type HmacSha256 = Hmac<Sha256>;

/// A key shorter than this is refused: HMAC-SHA-256 wants at least its output size.
pub const MIN_KEY_BYTES: usize = 32;

/// A signing key. Its bytes are never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} bytes)", self.0.len())
    }
}

impl SigningKey {
    /// A key of at least [`MIN_KEY_BYTES`] bytes (a secret's string value, as stored).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, String> {
        let bytes = bytes.into();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the answer signing key has {} bytes; at least {MIN_KEY_BYTES} are needed",
                bytes.len()
            ));
        }
        Ok(SigningKey(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length; the length was checked in `new`.
        match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        }
    }
}

/// The key links are signed with, and the one before it (still accepted) after a rotation.
#[derive(Debug, Clone)]
pub struct SigningKeys {
    pub current: SigningKey,
    pub previous: Option<SigningKey>,
}

/// The token for `claims`, URL-safe (letters, digits, `-`, `_`, `.`).
pub fn sign(key: &SigningKey, claims: &Claims) -> String {
    // Serializing a struct of strings and numbers cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let body = URL_SAFE_NO_PAD.encode(json);
    let mut mac = key.mac();
    mac.update(body.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{body}.{tag}")
}

/// The claims of a token signed by one of `keys` that has not expired at `now`.
pub fn verify(keys: &SigningKeys, token: &str, now: Timestamp) -> Result<Claims, Refusal> {
    let (body, tag) = token.trim().split_once('.').ok_or(Refusal::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| Refusal::Malformed)?;
    let signed_by = |key: &SigningKey| {
        let mut mac = key.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&tag).is_ok()
    };
    if !(signed_by(&keys.current) || keys.previous.as_ref().is_some_and(signed_by)) {
        return Err(Refusal::Forged);
    }
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| Refusal::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| Refusal::Malformed)?;
    claims.subject()?;
    if now.timestamp() >= claims.expires_at {
        return Err(Refusal::expired_at(claims.expires()));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::answer::AnswerAction;
    use crate::domain::{Principal, Stage, Subject};
    use chrono::Duration;

    fn at(s: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(s, 0).unwrap()
    }

    fn key(b: u8) -> SigningKey {
        SigningKey::new(vec![b; 32]).unwrap()
    }

    fn claims() -> Claims {
        let subject = Subject::whole(Principal::role("123456789012", "/", "deploy"));
        Claims::issue(
            AnswerAction::Keep,
            &subject,
            "AROAEXAMPLE",
            Stage::Noticed,
            "owner@example.com",
            at(2_000_000),
            at(1_000_000),
        )
    }

    fn keys(current: u8, previous: Option<u8>) -> SigningKeys {
        SigningKeys {
            current: key(current),
            previous: previous.map(key),
        }
    }

    #[test]
    fn signed_token_verifies_and_is_url_safe() {
        let token = sign(&key(1), &claims());
        assert!(token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        assert_eq!(verify(&keys(1, None), &token, at(1_500_000)), Ok(claims()));
    }

    #[test]
    fn previous_key_still_verifies_after_rotation_and_others_do_not() {
        let token = sign(&key(1), &claims());
        assert_eq!(
            verify(&keys(2, Some(1)), &token, at(1_500_000)),
            Ok(claims())
        );
        assert_eq!(
            verify(&keys(2, Some(3)), &token, at(1_500_000)),
            Err(Refusal::Forged)
        );
    }

    #[test]
    fn expired_at_and_after_the_due_time() {
        let token = sign(&key(1), &claims());
        assert!(matches!(
            verify(&keys(1, None), &token, at(2_000_000)),
            Err(Refusal::Expired(_))
        ));
        assert!(verify(&keys(1, None), &token, at(2_000_000) - Duration::seconds(1)).is_ok());
    }

    #[test]
    fn any_changed_claim_is_forged() {
        let token = sign(&key(1), &claims());
        let (body, tag) = token.split_once('.').unwrap();
        let mut json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        for (field, value) in [
            ("a", serde_json::json!("approve")),
            ("g", serde_json::json!("pending_delete")),
            ("r", serde_json::json!("mallory@example.com")),
            ("e", serde_json::json!(9_000_000)),
            ("u", serde_json::json!("AROAOTHER")),
        ] {
            let original = json[field].clone();
            json[field] = value;
            let forged = format!(
                "{}.{tag}",
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).unwrap())
            );
            assert_eq!(
                verify(&keys(1, None), &forged, at(1_500_000)),
                Err(Refusal::Forged),
                "{field}"
            );
            json[field] = original;
        }
    }

    #[test]
    fn garbage_is_malformed_or_forged_never_accepted() {
        for t in ["", ".", "abc", "a.b", "!!.??", "e30.AAAA"] {
            assert!(verify(&keys(1, None), t, at(0)).is_err(), "{t}");
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(SigningKey::new(vec![0; 31]).is_err());
        assert!(format!("{:?}", key(7)).contains("32 bytes"));
    }
}
