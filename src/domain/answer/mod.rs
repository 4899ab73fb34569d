//! Owners' answers (docs/design.md, 'Answers'): the signed action links a message carries —
//! Keep, Approve deletion, Undo — and why a link is refused. Pure: the key, the token and the
//! time come in; nothing is read or written here.
//!
//! - this file: [`Claims`], [`AnswerAction`], [`Refusal`] and the link URL;
//! - `token.rs`: [`sign`] and [`verify`] (HMAC-SHA-256, current and previous key);
//! - `links.rs`: which links a message item offers, and minting them;
//! - `slack.rs`: Slack's request signature (`X-Slack-Signature` v0).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::stage::Stage;
use super::subject::Subject;
use super::time::{fmt_time, Timestamp};

mod links;
mod slack;
mod token;

pub use links::{links_for, offered};
pub use slack::{slack_signature, verify_slack, SlackRefusal, SLACK_MAX_SKEW_SECS};
pub use token::{sign, verify, SigningKey, SigningKeys, MIN_KEY_BYTES};

/// What an owner can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerAction {
    /// An exemption, with a reason and an end date no later than `exemptions.max_days`.
    Keep,
    /// Approve a pending deletion: the next tick deletes.
    Approve,
    /// Release now: reverse what dormant changed.
    Undo,
}

impl AnswerAction {
    pub const ALL: [AnswerAction; 3] = [
        AnswerAction::Keep,
        AnswerAction::Approve,
        AnswerAction::Undo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AnswerAction::Keep => "keep",
            AnswerAction::Approve => "approve",
            AnswerAction::Undo => "undo",
        }
    }

    /// The button's words.
    pub fn label(self) -> &'static str {
        match self {
            AnswerAction::Keep => "Keep",
            AnswerAction::Approve => "Approve deletion",
            AnswerAction::Undo => "Undo",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// What a link is bound to. Every field is signed; a link acts only on this identity (its
/// unique id, so a role deleted and re-created under the name is not it), at this stage, for
/// this recipient, before `expires_at`, once (`token_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "a")]
    pub action: AnswerAction,
    /// [`Subject::id`]: the account, the principal's ARN and the credential scope, if any.
    #[serde(rename = "s")]
    pub subject: String,
    /// `AROA…` / `AIDA…`: IAM never gives it to another identity.
    #[serde(rename = "u")]
    pub unique_id: String,
    /// The stage the link was issued at: the link is void once the identity has moved on.
    #[serde(rename = "g")]
    pub stage: Stage,
    /// Who the link was sent to: the audit trail names them as the one who answered.
    #[serde(rename = "r")]
    pub recipient: String,
    /// Unix seconds: the next step's due time.
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// What the single-use claim is written under.
    #[serde(rename = "t")]
    pub token_id: String,
    /// Unix seconds: when the message was made. A link is void once its identity has entered
    /// its stage again since (an undo and a new ladder): `None` in links issued before this.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<i64>,
}

impl Claims {
    /// The claims of a link issued at `issued_at`. The token id is derived from every field and
    /// the issue time, so two links never share one unless they are the same link.
    pub fn issue(
        action: AnswerAction,
        subject: &Subject,
        unique_id: &str,
        stage: Stage,
        recipient: &str,
        expires_at: Timestamp,
        issued_at: Timestamp,
    ) -> Claims {
        let mut h = Sha256::new();
        for part in [
            action.as_str(),
            &subject.id(),
            unique_id,
            stage.as_str(),
            recipient,
            &expires_at.timestamp().to_string(),
            &issued_at
                .timestamp_nanos_opt()
                .unwrap_or_default()
                .to_string(),
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        let digest = h.finalize();
        let token_id = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Claims {
            action,
            subject: subject.id(),
            unique_id: unique_id.to_string(),
            stage,
            recipient: recipient.to_string(),
            expires_at: expires_at.timestamp(),
            token_id,
            issued_at: Some(issued_at.timestamp()),
        }
    }

    /// Whether the identity entered the link's stage after the link was made (`stage_since`):
    /// then it is another pass of that stage, which the link was not issued for.
    pub fn stage_entered_since(&self, stage_since: Option<Timestamp>) -> bool {
        match (self.issued_at, stage_since) {
            (Some(issued), Some(since)) => since.timestamp() > issued,
            _ => false,
        }
    }

    pub fn subject(&self) -> Result<Subject, Refusal> {
        Subject::from_id(&self.subject).map_err(|_| Refusal::Malformed)
    }

    pub fn expires(&self) -> Timestamp {
        chrono::DateTime::from_timestamp(self.expires_at, 0).unwrap_or_default()
    }
}

/// Why an answer changed nothing. Each message says why, to the owner who clicked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "this link is not one dormant issued (it is malformed or incomplete); nothing was changed"
    )]
    Malformed,
    #[error("this link's signature does not match: it was altered or not issued by dormant; nothing was changed")]
    Forged,
    #[error("this link expired at {0}; nothing was changed — the next message carries a new one")]
    Expired(String),
    #[error("this link was already used; nothing was changed again")]
    Used,
    #[error("this link was issued while the identity was {issued}, but it is now {now}; nothing was changed — answer from the latest message")]
    WrongStage { issued: Stage, now: Stage },
    #[error("this link was issued for an earlier time the identity was {0}; nothing was changed — answer from the latest message")]
    StageAgain(Stage),
    #[error("{0} is no longer the identity this link was issued for (it was deleted, and perhaps re-created under the same name with a new unique id); nothing was changed")]
    WrongIdentity(String),
    #[error("the form's token does not match the link; nothing was changed")]
    BadForm,
    #[error("{0}; nothing was changed")]
    Invalid(String),
    /// The operator path refused (protected, exempt, not pending deletion…).
    #[error("{0}")]
    Refused(String),
}

impl Refusal {
    pub fn expired_at(t: Timestamp) -> Refusal {
        Refusal::Expired(fmt_time(t))
    }

    /// The HTTP status a refusal answers with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed | Refusal::BadForm | Refusal::Invalid(_) => 400,
            Refusal::Forged => 403,
            Refusal::Expired(_) => 410,
            Refusal::Used
            | Refusal::WrongStage { .. }
            | Refusal::StageAgain(_)
            | Refusal::WrongIdentity(_) => 409,
            Refusal::Refused(_) => 409,
        }
    }
}

/// The path the answer page is served under.
pub const ANSWER_PATH: &str = "/answer";

/// The link a message carries: `BASE/answer?t=TOKEN` (the token is URL-safe).
pub fn answer_url(base_url: &str, token: &str) -> String {
    format!("{}{ANSWER_PATH}?t={token}", base_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Principal;

    fn subject() -> Subject {
        Subject::whole(Principal::role("123456789012", "/", "deploy"))
    }

    #[test]
    fn token_ids_differ_per_action_recipient_and_issue() {
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let later = t + chrono::Duration::days(3);
        let id = |a, r: &str, at| {
            Claims::issue(a, &subject(), "AROA1", Stage::Noticed, r, later, at).token_id
        };
        let base = id(AnswerAction::Keep, "a@x", t);
        assert_eq!(base, id(AnswerAction::Keep, "a@x", t));
        assert_ne!(base, id(AnswerAction::Undo, "a@x", t));
        assert_ne!(base, id(AnswerAction::Keep, "b@x", t));
        assert_ne!(
            base,
            id(AnswerAction::Keep, "a@x", t + chrono::Duration::seconds(1))
        );
        assert_eq!(base.len(), 32);
    }

    #[test]
    fn url_joins_base_and_token() {
        assert_eq!(
            answer_url("https://x.lambda-url.eu-west-1.on.aws/", "abc"),
            "https://x.lambda-url.eu-west-1.on.aws/answer?t=abc"
        );
        assert_eq!(
            answer_url("http://127.0.0.1:8080", "abc"),
            "http://127.0.0.1:8080/answer?t=abc"
        );
    }

    #[test]
    fn actions_round_trip() {
        for a in AnswerAction::ALL {
            assert_eq!(AnswerAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(AnswerAction::parse("delete"), None);
    }
}
