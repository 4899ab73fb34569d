//! Slack's request signature: `X-Slack-Signature: v0=hex(HMAC-SHA-256(secret,
//! "v0:" + X-Slack-Request-Timestamp + ":" + body))`, the timestamp within five minutes of now
//! (Slack's own advice against replays).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::time::Timestamp;

/// How far the request's timestamp may be from now.
pub const SLACK_MAX_SKEW_SECS: i64 = 5 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackRefusal {
    #[error("the request has no Slack signature or timestamp")]
    Missing,
    #[error("the Slack request's timestamp is more than five minutes from now (a replay?)")]
    Stale,
    #[error("the Slack signature does not match")]
    BadSignature,
}

/// Whether `body` came from Slack, signed with `secret`, at `timestamp` near `now`.
pub fn verify_slack(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: Timestamp,
) -> Result<(), SlackRefusal> {
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(SlackRefusal::Missing);
    };
    let secs: i64 = ts.trim().parse().map_err(|_| SlackRefusal::Missing)?;
    if (now.timestamp() - secs).abs() > SLACK_MAX_SKEW_SECS {
        return Err(SlackRefusal::Stale);
    }
    let hex = sig
        .trim()
        .strip_prefix("v0=")
        .ok_or(SlackRefusal::BadSignature)?;
    let tag = decode_hex(hex).ok_or(SlackRefusal::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SlackRefusal::BadSignature)?;
    mac.update(b"v0:");
    mac.update(ts.trim().as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&tag)
        .map_err(|_| SlackRefusal::BadSignature)
}

/// The `X-Slack-Signature` value for `body` at `timestamp` (what Slack sends; tests and demo).
pub fn slack_signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "v0={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn slack_documented_example_verifies() {
        // The example in Slack's "Verifying requests from Slack" guide.
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(
            verify_slack(
                secret,
                Some("1531420618"),
                Some(sig),
                body,
                at(1_531_420_700)
            ),
            Ok(())
        );
        assert_eq!(slack_signature(secret, "1531420618", body), sig);
        assert_eq!(
            verify_slack(
                secret,
                Some("1531420618"),
                Some(sig),
                b"x",
                at(1_531_420_700)
            ),
            Err(SlackRefusal::BadSignature)
        );
        assert_eq!(
            verify_slack(
                secret,
                Some("1531420618"),
                Some(sig),
                body,
                at(1_531_420_618 + 301)
            ),
            Err(SlackRefusal::Stale)
        );
        assert_eq!(
            verify_slack(secret, None, Some(sig), body, at(0)),
            Err(SlackRefusal::Missing)
        );
    }
}
