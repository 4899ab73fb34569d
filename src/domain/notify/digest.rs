//! What a message says about one identity, and one message per recipient.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Owner, Recipient};
use crate::domain::time::fmt_time;
use crate::domain::{Record, Scope, Stage, Step, Timestamp};

/// One identity in a digest: what happened, on what evidence, what comes next and when. It
/// carries what a signed action link needs (ARN, unique id, credential scope, step, expiry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestItem {
    pub account: String,
    /// The subject id: the principal ARN, `…/key/AKIA…` or `…/password`.
    pub identity: String,
    /// The principal's ARN.
    pub arn: String,
    /// `role/NAME`, `user/NAME`: what the CLI takes back.
    pub short: String,
    /// `RoleId`/`UserId` (`AROA…`/`AIDA…`): a link must not act on a recreated namesake.
    pub unique_id: Option<String>,
    /// `key/AKIA…` or `password` for a credential; `None` for the whole principal.
    pub scope: Option<String>,
    /// The step this message is about (the "stage" of the message).
    pub step: Step,
    /// Where the identity stands after it.
    pub stage: Stage,
    pub at: Timestamp,
    /// Evidence: when it was last used (`None`: never, as far as IAM knows) and dormant's reason.
    pub last_used: Option<Timestamp>,
    pub evidence: String,
    pub next_step: Option<Step>,
    /// When the next step is due; a link offered in this message expires then.
    pub next_due_at: Option<Timestamp>,
    /// How the owner was found (`tag owner=team-a`, `fallback: no owner tag`).
    pub owner: String,
    pub fallback: bool,
}

impl DigestItem {
    /// The message item for a committed `step` that left `after`.
    pub fn of(step: Step, after: &Record, owner: &Owner, at: Timestamp) -> Self {
        let principal = &after.subject.principal;
        DigestItem {
            account: principal.account.clone(),
            identity: after.subject.id(),
            arn: principal.arn(),
            short: principal.short(),
            unique_id: after.unique_id.clone(),
            scope: match &after.subject.scope {
                Scope::Whole => None,
                Scope::AccessKey(k) => Some(format!("key/{k}")),
                Scope::Password => Some("password".to_string()),
            },
            step,
            stage: after.stage,
            at,
            last_used: after.last_used_at,
            evidence: after.reason.clone(),
            next_step: after.next_step,
            next_due_at: after.next_due_at,
            owner: owner.how.clone(),
            fallback: owner.fallback,
        }
    }

    /// What happened, in words.
    pub fn what(&self) -> &'static str {
        match self.step {
            Step::Notice => "unused: noticed (nothing changed yet)",
            Step::Quarantine => "quarantined: a deny-all policy is attached",
            Step::DeactivateKeys => "access keys deactivated",
            Step::RequestApproval => "deletion awaits approval",
            Step::Delete => "deleted (a snapshot is kept for restore)",
            Step::Release => "released: dormant's changes are undone",
        }
    }

    /// What comes next, in words, with its date.
    pub fn next(&self) -> String {
        match (self.next_step, self.next_due_at) {
            (Some(step), Some(due)) => format!("{} on {}", step_words(step), fmt_time(due)),
            (Some(Step::Delete), None) => "deletion once approved".to_string(),
            (Some(step), None) => step_words(step).to_string(),
            (None, _) => "nothing further".to_string(),
        }
    }
}

fn step_words(step: Step) -> &'static str {
    match step {
        Step::Notice => "notice",
        Step::Quarantine => "quarantine",
        Step::DeactivateKeys => "access keys deactivated",
        Step::RequestApproval => "approval requested for deletion",
        Step::Delete => "deletion",
        Step::Release => "release",
    }
}

/// One queued message: an item for one recipient. Its key is what sending is idempotent on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub item: DigestItem,
    pub recipient: Recipient,
}

impl OutboxEntry {
    /// `<identity>#<unique id>#<step>#<time>#<recipient>`: the same step of the same identity
    /// told the same recipient; a later trip up the ladder (another time) is a new message.
    pub fn key(&self) -> String {
        format!(
            "{}#{}#{}#{}#{}",
            self.item.identity,
            self.item.unique_id.as_deref().unwrap_or("-"),
            self.item.step,
            fmt_time(self.item.at),
            self.recipient
        )
    }
}

/// A link the owner can follow from a message (signed elsewhere; see `ports::ActionLinks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionLink {
    /// `keep`, `approve` or `undo`.
    pub action: String,
    pub label: String,
    pub url: String,
}

/// One message: every item a recipient is told of in this run, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub recipient: Recipient,
    pub items: Vec<DigestItem>,
}

/// One digest per recipient, recipients in order, items by time then identity.
pub fn digests(entries: &[OutboxEntry]) -> Vec<Digest> {
    let mut by: BTreeMap<&Recipient, Vec<DigestItem>> = BTreeMap::new();
    for e in entries {
        by.entry(&e.recipient).or_default().push(e.item.clone());
    }
    by.into_iter()
        .map(|(recipient, mut items)| {
            items.sort_by(|a, b| (a.at, &a.identity, a.step).cmp(&(b.at, &b.identity, b.step)));
            items.dedup();
            Digest {
                recipient: recipient.clone(),
                items,
            }
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::{Principal, Subject};
    use chrono::TimeZone;

    pub(crate) fn item(name: &str, step: Step) -> DigestItem {
        let at = chrono::Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let mut r = Record::new(Subject::whole(Principal::role("111111111111", "/", name)));
        r.stage = Stage::Noticed;
        r.next_step = Some(Step::Quarantine);
        r.next_due_at = Some(at + chrono::Duration::days(7));
        r.reason = "unused for 120 days".into();
        let owner = Owner {
            recipient: None,
            how: "tag owner=x".into(),
            fallback: false,
            refused: Vec::new(),
        };
        DigestItem::of(step, &r, &owner, at)
    }

    #[test]
    fn one_digest_per_recipient_with_all_its_items() {
        let a: Recipient = "a@example.com".parse().unwrap();
        let b: Recipient = "slack:#b".parse().unwrap();
        let entries = vec![
            OutboxEntry {
                item: item("r2", Step::Notice),
                recipient: a.clone(),
            },
            OutboxEntry {
                item: item("r1", Step::Notice),
                recipient: a.clone(),
            },
            OutboxEntry {
                item: item("r1", Step::Notice),
                recipient: b.clone(),
            },
        ];
        let d = digests(&entries);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].recipient, a);
        let names: Vec<_> = d[0].items.iter().map(|i| i.short.as_str()).collect();
        assert_eq!(names, ["role/r1", "role/r2"]);
        assert_eq!(d[1].items.len(), 1);
    }

    #[test]
    fn the_key_tells_apart_steps_recipients_and_trips() {
        let a: Recipient = "a@example.com".parse().unwrap();
        let e = OutboxEntry {
            item: item("r1", Step::Notice),
            recipient: a.clone(),
        };
        let mut later = e.clone();
        later.item.at += chrono::Duration::days(60);
        let mut quarantine = e.clone();
        quarantine.item.step = Step::Quarantine;
        let mut other = e.clone();
        other.recipient = "b@example.com".parse().unwrap();
        let keys: std::collections::BTreeSet<_> = [&e, &later, &quarantine, &other]
            .iter()
            .map(|e| e.key())
            .collect();
        assert_eq!(keys.len(), 4);
        assert_eq!(e.item.next(), "quarantine on 2026-03-08T00:00:00Z");
    }
}
