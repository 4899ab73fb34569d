//! Which signed links a message item offers, and the links themselves (pure: the key and the
//! item's time come in). The answer service re-checks all of this when a link is posted.

use super::{answer_url, sign, AnswerAction, Claims, SigningKey};
use crate::domain::notify::{ActionLink, DigestItem, Recipient};
use crate::domain::stage::Stage;
use crate::domain::subject::{Scope, Subject};
use crate::domain::Timestamp;

/// What a link may be offered for: `approval` when deletions wait for an approval
/// (`ladder.delete = "approval"`). No Keep for an access key or password: it has no tags of its
/// own, so its exemption would be the whole user's, which `exempt` refuses.
pub fn offered(stage: Stage, scope: &Scope, approval: bool) -> Vec<AnswerAction> {
    if !stage.is_on_ladder() {
        return Vec::new();
    }
    let mut actions = match scope {
        Scope::Whole => vec![AnswerAction::Keep, AnswerAction::Undo],
        Scope::AccessKey(_) | Scope::Password => vec![AnswerAction::Undo],
    };
    if approval && stage == Stage::PendingDelete {
        actions.push(AnswerAction::Approve);
    }
    actions
}

/// A link lives until the next step is due (the stage it is bound to ends then), and at least
/// this long, so a step about to fall due still leaves the owner time to read the message.
pub const MIN_LINK_TTL: chrono::Duration = chrono::Duration::days(1);

/// How long a link lives when nothing is due: a pending deletion waiting for its approval.
pub const LINK_TTL_NOTHING_DUE: chrono::Duration = chrono::Duration::days(14);

/// When the links of `item` expire.
pub fn link_expiry(item: &DigestItem) -> Timestamp {
    let floor = item.at + MIN_LINK_TTL;
    match item.next_due_at {
        Some(due) => due.max(floor),
        None => item.at + LINK_TTL_NOTHING_DUE,
    }
}

/// The links of `item` for `recipient`: none for a topic (its readers are not one answerer) or
/// for an identity whose unique id is unknown (a link must not act on a namesake). Each expires
/// at [`link_expiry`]; the service refuses it earlier if the stage it was issued at has passed.
pub fn links_for(
    item: &DigestItem,
    recipient: &Recipient,
    base_url: &str,
    key: &SigningKey,
    approval: bool,
) -> Vec<ActionLink> {
    if matches!(recipient, Recipient::Sns(_)) {
        return Vec::new();
    }
    let Some(unique_id) = &item.unique_id else {
        return Vec::new();
    };
    let expires_at = link_expiry(item);
    let Ok(subject) = Subject::from_id(&item.identity) else {
        return Vec::new();
    };
    let to = recipient.to_string();
    offered(item.stage, &subject.scope, approval)
        .into_iter()
        .map(|action| {
            let claims = Claims::issue(
                action, &subject, unique_id, item.stage, &to, expires_at, item.at,
            );
            ActionLink {
                action: action.as_str().to_string(),
                label: action.label().to_string(),
                url: answer_url(base_url, &sign(key, &claims)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::answer::{verify, SigningKeys};
    use crate::domain::stage::Step;
    use crate::domain::Principal;
    use chrono::Duration;

    fn key() -> SigningKey {
        SigningKey::new(vec![7u8; 32]).unwrap()
    }

    fn item(stage: Stage, unique_id: Option<&str>) -> DigestItem {
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let subject = Subject::whole(Principal::role("123456789012", "/", "deploy"));
        DigestItem {
            account: "123456789012".into(),
            identity: subject.id(),
            arn: subject.principal.arn(),
            short: subject.principal.short(),
            unique_id: unique_id.map(str::to_string),
            scope: None,
            step: Step::Notice,
            stage,
            at,
            last_used: None,
            evidence: "unused for 120 days".into(),
            next_step: Some(Step::Quarantine),
            next_due_at: Some(at + Duration::days(14)),
            owner: "tag owner=a@example.com".into(),
            fallback: false,
        }
    }

    fn email() -> Recipient {
        Recipient::Email("a@example.com".into())
    }

    #[test]
    fn each_rung_offers_keep_and_undo_and_a_pending_deletion_under_approval_also_approve() {
        use AnswerAction::*;
        let whole = Scope::Whole;
        assert_eq!(offered(Stage::Noticed, &whole, false), vec![Keep, Undo]);
        assert_eq!(
            offered(Stage::PendingDelete, &whole, false),
            vec![Keep, Undo]
        );
        assert_eq!(
            offered(Stage::PendingDelete, &whole, true),
            vec![Keep, Undo, Approve]
        );
        assert_eq!(offered(Stage::Quarantined, &whole, true), vec![Keep, Undo]);
        for off in [Stage::Clean, Stage::Deleted, Stage::Released, Stage::Exempt] {
            assert!(offered(off, &whole, true).is_empty(), "{off}");
        }
    }

    /// `exempt` refuses a key or password (its exemption would be the whole user's): its
    /// message offers no Keep that could only be refused.
    #[test]
    fn a_key_or_password_is_offered_undo_and_approve_but_no_keep() {
        use AnswerAction::*;
        for scope in [Scope::AccessKey("AKIAEXAMPLE".into()), Scope::Password] {
            assert_eq!(offered(Stage::KeysDeactivated, &scope, false), vec![Undo]);
            assert_eq!(
                offered(Stage::PendingDelete, &scope, true),
                vec![Undo, Approve]
            );
        }
    }

    #[test]
    fn a_link_verifies_and_is_bound_to_the_identity_stage_recipient_and_next_due_time() {
        let it = item(Stage::Noticed, Some("AROAEXAMPLE"));
        let links = links_for(&it, &email(), "https://answers.example/", &key(), false);
        assert_eq!(links.len(), 2);
        let keys = SigningKeys {
            current: key(),
            previous: None,
        };
        for link in &links {
            let token = link
                .url
                .strip_prefix("https://answers.example/answer?t=")
                .unwrap();
            let claims = verify(&keys, token, it.at).unwrap();
            assert_eq!(claims.action.as_str(), link.action);
            assert_eq!(claims.subject, it.identity);
            assert_eq!(claims.unique_id, "AROAEXAMPLE");
            assert_eq!(claims.stage, Stage::Noticed);
            assert_eq!(claims.recipient, "a@example.com");
            assert_eq!(Some(claims.expires()), it.next_due_at);
            assert!(verify(&keys, token, it.next_due_at.unwrap() + Duration::seconds(1)).is_err());
        }
    }

    #[test]
    fn no_links_for_a_topic_or_an_unknown_unique_id() {
        let it = item(Stage::Noticed, Some("AROAEXAMPLE"));
        let topic = Recipient::Sns("arn:aws:sns:us-east-1:123456789012:feed".into());
        assert!(links_for(&it, &topic, "https://a", &key(), false).is_empty());
        let unknown = item(Stage::Noticed, None);
        assert!(links_for(&unknown, &email(), "https://a", &key(), false).is_empty());
    }

    /// Review 3 and 7: a pending deletion waiting for its approval has nothing due, and still
    /// offers Approve (for 14 days); a step about to fall due leaves at least a day.
    #[test]
    fn a_deletion_waiting_for_approval_offers_approve_and_a_link_lives_at_least_a_day() {
        let keys = SigningKeys {
            current: key(),
            previous: None,
        };
        let mut waiting = item(Stage::PendingDelete, Some("AROAEXAMPLE"));
        waiting.next_step = None;
        waiting.next_due_at = None;
        let links = links_for(&waiting, &email(), "https://a/", &key(), true);
        let actions: Vec<&str> = links.iter().map(|l| l.action.as_str()).collect();
        assert_eq!(actions, ["keep", "undo", "approve"]);
        let token = links[2].url.strip_prefix("https://a/answer?t=").unwrap();
        let claims = verify(&keys, token, waiting.at + Duration::days(13)).unwrap();
        assert_eq!(claims.expires(), waiting.at + LINK_TTL_NOTHING_DUE);

        let mut soon = item(Stage::Quarantined, Some("AROAEXAMPLE"));
        soon.next_due_at = Some(soon.at + Duration::minutes(5));
        assert_eq!(link_expiry(&soon), soon.at + MIN_LINK_TTL);
    }
}
