//! Telling owners (docs/design.md, 'Owners and messages'). After a step is committed, an outbox
//! entry per recipient is written to the table; at the end of the run every queued entry of the
//! account (this run's, and what earlier runs failed to send) is claimed, grouped into one
//! digest per recipient, sent (in parts when it is too big for the channel: each part's entries
//! are marked sent as soon as it went), and marked sent. Like Security Hub reporting, it never
//! blocks, reorders or undoes a step: a failure is logged, written to the subject's audit trail,
//! and the entry stays queued for the next run, up to `max_attempts` failed attempts; then (or
//! at once, for a permanent refusal) it is dead-lettered: kept, audited, and no longer sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::domain::notify::{digests, DigestItem, OutboxEntry, Recipient, Routing, Templates};
use crate::domain::{AuditEntry, Outcome, Record, Step, Subject, Timestamp};
use crate::ports::{ActionLinks, ErrorKind, Iam, Messenger, NoLinks, SendClaim, Store};

use super::super::deadline;
use super::super::run::Run;
use super::Engine;

/// The audit trail's step name for a message that could not be queued or sent.
pub const NOTIFY_AUDIT_STEP: &str = "notify";

/// How long a send claim holds before another run may take it over: a run that died mid-send
/// is retried after this (at most one duplicate, and only then).
pub const SEND_LEASE: chrono::Duration = chrono::Duration::minutes(15);

pub use crate::domain::notify::DEFAULT_MAX_ATTEMPTS;

/// Time a digest's send and marking are given before the run's deadline: more than one Slack
/// POST may take (`WEBHOOK_TIMEOUT`, 15 s).
const SEND_RESERVE: std::time::Duration = std::time::Duration::from_secs(20);

/// Everything telling owners needs (`[notify] enabled`).
#[derive(Clone)]
pub struct NotifySetup {
    pub routing: Routing,
    pub templates: Arc<Templates>,
    pub messenger: Arc<dyn Messenger>,
    /// Signed links for the messages; [`NoLinks`] by default.
    pub links: Arc<dyn ActionLinks>,
    /// Failed attempts after which a message is dead-lettered.
    pub max_attempts: u32,
}

impl NotifySetup {
    pub fn new(routing: Routing, templates: Arc<Templates>, messenger: Arc<dyn Messenger>) -> Self {
        NotifySetup {
            routing,
            templates,
            messenger,
            links: Arc::new(NoLinks),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Failed attempts after which a message is dead-lettered (at least 1).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// Where the links in messages come from (the lead's link signer).
    pub fn with_links(mut self, links: Arc<dyn ActionLinks>) -> Self {
        self.links = links;
        self
    }
}

impl<I: Iam, S: Store> Engine<I, S> {
    /// Queues the messages about a committed `step` that left `after`. Nothing in a dry run, a
    /// preview, or without `[notify]`.
    pub(crate) async fn tell_owner(&self, run: &Run, after: &Record, step: Step, now: Timestamp) {
        let Some(notify) = &self.notify else { return };
        if self.policy.dry_run || !self.mode().writes() {
            return;
        }
        let principal = &after.subject.principal;
        let tags = match run.tags_of(&principal.arn()) {
            Some(tags) => tags,
            // Not read in this run (a polled SSM step, an undo): read it now; gone means none.
            None => match self.iam.fresh_facts(principal.kind, &principal.name).await {
                Ok(facts) => facts.map(|f| f.tags).unwrap_or_default(),
                Err(e) => {
                    warn!(identity = %after.subject, error = %e, "could not read the owner tags; the fallback is told");
                    BTreeMap::new()
                }
            },
        };
        let owner = notify.routing.owner(&principal.account, &tags);
        for refused in &owner.refused {
            // Whoever wrote the tag named somewhere dormant does not send to: say so, once per step.
            warn!(identity = %after.subject, %refused, "an owner tag was refused; the fallback is told");
            let why = format!("{refused}; told {}", owner.how);
            self.audit_notify(&after.subject, now, Outcome::Skipped, &why)
                .await;
        }
        let recipients = notify.routing.recipients(&owner);
        if recipients.is_empty() {
            let why = format!("nobody to tell ({})", owner.how);
            self.notify_failed(&after.subject, now, &why).await;
            return;
        }
        if owner.fallback {
            info!(identity = %after.subject, owner = %owner.how, "no owner found; telling the fallback");
        }
        let item = DigestItem::of(step, after, &owner, now);
        for recipient in recipients {
            let entry = OutboxEntry {
                item: item.clone(),
                recipient,
            };
            if let Err(e) = self.store.queue_message(&entry).await {
                let why = format!("could not queue the message to {}: {e}", entry.recipient);
                self.notify_failed(&after.subject, now, &why).await;
            }
        }
    }

    /// Sends every queued message of the account: one digest per recipient.
    pub(crate) async fn flush_owners(&self, now: Timestamp) {
        let account = self.account().to_string();
        self.flush_owners_of(std::slice::from_ref(&account), now)
            .await;
    }

    /// Sends every queued message of `accounts` (all in this engine's table): one digest per
    /// recipient across them. An account whose outbox cannot be read is sent next run.
    pub(crate) async fn flush_owners_of(&self, accounts: &[String], now: Timestamp) {
        let Some(notify) = &self.notify else { return };
        if self.policy.dry_run || !self.mode().writes() {
            return;
        }
        let mut by: BTreeMap<Recipient, Vec<OutboxEntry>> = BTreeMap::new();
        for account in accounts {
            match self.store.outbox(account).await {
                Ok(queued) => {
                    for entry in queued {
                        by.entry(entry.recipient.clone()).or_default().push(entry);
                    }
                }
                Err(e) => {
                    warn!(%account, error = %e, "could not read the message outbox; it is sent next run");
                }
            }
        }
        for (recipient, entries) in by {
            // Near the deadline the rest stays queued for the next run, rather than being cut
            // off between a send and its marking (which would send it again after the lease).
            if deadline::current().is_some_and(|d| d.remaining() < SEND_RESERVE) {
                info!(%recipient, "the deadline is near: owner messages left for the next run");
                break;
            }
            let mut claimed = Vec::new();
            for entry in entries {
                match self.store.claim_message(&entry, now, SEND_LEASE).await {
                    Ok(SendClaim::Claimed) => claimed.push(entry),
                    Ok(SendClaim::Sent) => {
                        // Sent by a run that died before clearing the outbox.
                        if let Err(e) = self.store.message_sent(&entry, now).await {
                            warn!(error = %e, "could not clear a sent message from the outbox");
                        }
                    }
                    Ok(SendClaim::Busy) => {
                        debug!(%recipient, "another run is sending this message")
                    }
                    Err(e) => {
                        warn!(%recipient, error = %e, "could not claim a message; it is sent next run")
                    }
                }
            }
            if !claimed.is_empty() {
                self.send_digest(notify, &recipient, claimed, now).await;
            }
        }
    }

    async fn send_digest(
        &self,
        notify: &NotifySetup,
        recipient: &Recipient,
        claimed: Vec<OutboxEntry>,
        now: Timestamp,
    ) {
        let Some(digest) = digests(&claimed).pop() else {
            return;
        };
        let links: Vec<_> = digest
            .items
            .iter()
            .map(|item| notify.links.links(item, recipient))
            .collect();
        let parts = notify.templates.render_parts(&digest, &links);
        let count = parts.len();
        // The entries of an item: the same recipient, so the key names the item.
        let mut by_key: BTreeMap<String, Vec<&OutboxEntry>> = BTreeMap::new();
        for e in &claimed {
            by_key.entry(e.key()).or_default().push(e);
        }
        for (k, part) in parts.into_iter().enumerate() {
            let items = &digest.items[part.items.clone()];
            // A part's entries: claims are per entry, so each part is sent at most once more
            // after a crash (the lease), whatever happened to the others.
            let entries: Vec<&OutboxEntry> = items
                .iter()
                .flat_map(|item| {
                    let key = OutboxEntry {
                        item: item.clone(),
                        recipient: recipient.clone(),
                    }
                    .key();
                    by_key.remove(&key).unwrap_or_default()
                })
                .collect();
            let sent = match part.message {
                // A template that renders nothing sendable fails the same way every run, but
                // an operator can fix it: counted like a transient failure.
                Err(e) => Err((e.to_string(), false)),
                Ok(message) => notify
                    .messenger
                    .send(recipient, &message)
                    .await
                    .map_err(|e| (e.to_string(), e.kind == ErrorKind::Permanent)),
            };
            let part_words = if count > 1 {
                format!(" (part {} of {count})", k + 1)
            } else {
                String::new()
            };
            match sent {
                Ok(()) => {
                    info!(%recipient, identities = items.len(), part = k + 1, parts = count, "owner message sent");
                    for entry in &entries {
                        if let Err(e) = self.store.message_sent(entry, now).await {
                            // The claim stays `sending`: no run sends it again before the lease ends.
                            warn!(%recipient, error = %e, "could not mark a message sent");
                        }
                    }
                    let offered = &links[part.items.clone()];
                    self.audit_told(recipient, items, offered, &part_words, now)
                        .await;
                }
                Err((why, permanent)) => {
                    for entry in entries {
                        self.message_failed(notify, entry, &why, permanent, now)
                            .await;
                    }
                }
            }
        }
    }

    /// Who was told, and which answers they were handed: the audit trail says.
    async fn audit_told(
        &self,
        recipient: &Recipient,
        items: &[DigestItem],
        links: &[Vec<crate::domain::notify::ActionLink>],
        part: &str,
        now: Timestamp,
    ) {
        for (item, offered) in items.iter().zip(links) {
            let told = match offered.as_slice() {
                [] => format!(
                    "told {recipient} of the {} step{part} (no links)",
                    item.step
                ),
                some => format!(
                    "told {recipient} of the {} step{part}, with links: {}",
                    item.step,
                    some.iter()
                        .map(|l| l.action.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            match Subject::from_id(&item.identity) {
                Ok(subject) => self.audit_notify(&subject, now, Outcome::Done, &told).await,
                Err(_) => info!(identity = %item.identity, %told, "message sent"),
            }
        }
    }

    /// A failed send of `entry`: counted, and retried next run until `max_attempts` (or a
    /// permanent refusal) dead-letters it. Audited either way.
    async fn message_failed(
        &self,
        notify: &NotifySetup,
        entry: &OutboxEntry,
        why: &str,
        permanent: bool,
        now: Timestamp,
    ) {
        let recipient = &entry.recipient;
        if let Err(e) = self.store.release_message(entry).await {
            warn!(%recipient, error = %e, "could not release a message claim; retried after the lease");
        }
        let attempts = match self.store.message_failed(entry, now, why).await {
            Ok(n) => Some(n),
            Err(e) => {
                warn!(%recipient, error = %e, "could not count a failed attempt");
                None
            }
        };
        let max = notify.max_attempts;
        let dead = permanent || attempts.is_some_and(|n| n >= max);
        let why = if dead {
            let reason = if permanent {
                "was refused permanently".to_string()
            } else {
                format!("failed {} times", attempts.unwrap_or(max))
            };
            match self.store.dead_letter(entry, now, why).await {
                Ok(()) => format!(
                    "telling {recipient} of the {} step {reason}; dead-lettered, not retried \
                     (see `dormant outbox`): {why}",
                    entry.item.step
                ),
                Err(e) => {
                    warn!(%recipient, error = %e, "could not dead-letter a message; retried next run");
                    format!(
                        "telling {recipient} of the {} step {reason} (retried next run: it could \
                         not be dead-lettered): {why}",
                        entry.item.step
                    )
                }
            }
        } else {
            let attempt = attempts.map_or(String::new(), |n| format!(", attempt {n} of {max}"));
            format!(
                "telling {recipient} of the {} step failed (retried next run{attempt}): {why}",
                entry.item.step
            )
        };
        match Subject::from_id(&entry.item.identity) {
            Ok(subject) => self.notify_failed(&subject, now, &why).await,
            Err(_) => warn!(identity = %entry.item.identity, %why, "message failed"),
        }
    }

    async fn notify_failed(&self, subject: &Subject, at: Timestamp, why: &str) {
        // The log line is what an alarm can count.
        warn!(identity = %subject, error = %why, "telling the owner failed; the step stands");
        self.audit_notify(subject, at, Outcome::Failed, why).await;
    }

    async fn audit_notify(&self, subject: &Subject, at: Timestamp, outcome: Outcome, why: &str) {
        let entry = AuditEntry {
            at,
            step: NOTIFY_AUDIT_STEP.to_string(),
            outcome,
            actor: self.actor.clone(),
            reason: why.to_string(),
            event_id: None,
        };
        if let Err(e) = self.store.append_audit(subject, &entry).await {
            warn!(identity = %subject, error = %e, "could not audit a message to its owner");
        }
    }
}
