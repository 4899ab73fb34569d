//! Which signed links a message item offers, and the links themselves (pure: the key and the
//! item's time come in). The answer service re-checks all of this when a link is posted.

use super::{answer_url, sign, AnswerAction, Claims, SigningKey};
use crate::domain::notify::{ActionLink, DigestItem, Recipient};
use crate::domain::stage::Stage;
use crate::domain::subject::Subject;

/// What a link may be offered for: `approval` when deletions wait for an approval
/// (`ladder.delete = "approval"`).
pub fn offered(stage: Stage, approval: bool) -> Vec<AnswerAction> {
    let on_ladder = matches!(
        stage,
        Stage::Noticed | Stage::Quarantined | Stage::KeysDeactivated | Stage::PendingDelete
    );
    if !on_ladder {
        return Vec::new();
    }
    let mut actions = vec![AnswerAction::Keep, AnswerAction::Undo];
    if approval && stage == Stage::PendingDelete {
        actions.push(AnswerAction::Approve);
    }
    actions
}

/// The links of `item` for `recipient`: none for a topic (its readers are not one answerer),
/// for an identity whose unique id is unknown (a link must not act on a namesake), or for a
/// stage with no due step (a link expires when the next step is due).
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
    let (Some(unique_id), Some(expires_at)) = (&item.unique_id, item.next_due_at) else {
        return Vec::new();
    };
    let Ok(subject) = Subject::from_id(&item.identity) else {
        return Vec::new();
    };
    let to = recipient.to_string();
    offered(item.stage, approval)
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
        assert_eq!(offered(Stage::Noticed, false), vec![Keep, Undo]);
        assert_eq!(offered(Stage::PendingDelete, false), vec![Keep, Undo]);
        assert_eq!(
            offered(Stage::PendingDelete, true),
            vec![Keep, Undo, Approve]
        );
        assert_eq!(offered(Stage::Quarantined, true), vec![Keep, Undo]);
        for off in [Stage::Clean, Stage::Deleted, Stage::Released, Stage::Exempt] {
            assert!(offered(off, true).is_empty(), "{off}");
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
    fn no_links_for_a_topic_an_unknown_unique_id_or_nothing_due() {
        let it = item(Stage::Noticed, Some("AROAEXAMPLE"));
        let topic = Recipient::Sns("arn:aws:sns:us-east-1:123456789012:feed".into());
        assert!(links_for(&it, &topic, "https://a", &key(), false).is_empty());
        let unknown = item(Stage::Noticed, None);
        assert!(links_for(&unknown, &email(), "https://a", &key(), false).is_empty());
        let mut nothing_due = it.clone();
        nothing_due.next_due_at = None;
        assert!(links_for(&nothing_due, &email(), "https://a", &key(), false).is_empty());
    }
}
