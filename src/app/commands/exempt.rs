//! `exempt` (an operator's, or an owner's Keep): the exemption tags, then the release at once.

use super::*;
use crate::domain::Intent;

impl<I: Iam, S: Store> Engine<I, S> {
    /// `exempt`: write the exemption tags, then evaluate at once (a quarantined identity is
    /// released). `answered` says where the answer came from (an owner's link), for the audit
    /// trail only.
    pub async fn exempt(
        &self,
        arg: &IdentityArg,
        until: chrono::NaiveDate,
        reason: &str,
        answered: Option<&str>,
        now: Timestamp,
    ) -> Result<CommandReport> {
        refuse_credential_exemption(match arg {
            IdentityArg::Name { scope, .. } => scope,
            IdentityArg::Subject(subject) => &subject.scope,
        })?;
        let until_text = until.format("%Y-%m-%d").to_string();
        let Some(until_instant) = exemption::parse_until(&until_text) else {
            return Err(Error::Usage(format!("--until {until} is not a date")));
        };
        if until_instant <= now {
            return Err(Error::Rejected(format!(
                "--until {until} is in the past; an exemption must end in the future"
            )));
        }
        if until_instant - now > self.policy.exemptions.max_duration {
            return Err(Error::Rejected(format!(
                "--until {until} is more than {} days away (exemptions.max_days)",
                self.policy.exemptions.max_duration.num_days()
            )));
        }
        if reason.trim().is_empty() {
            return Err(Error::Usage("--reason must not be empty".to_string()));
        }
        check_tag_value("--reason", reason)?;
        let (subject, facts) = self.resolve(arg).await?;
        let Some(mut facts) = facts else {
            return Err(Error::NotFound(format!("{subject} does not exist in IAM")));
        };
        if let Some(why) = exemption::protection(&facts.principal, &self.policy.exemptions) {
            return Err(Error::Rejected(format!(
                "{subject} is protected ({why}); dormant never changes it, not even to tag it"
            )));
        }
        let whole = Subject::whole(facts.principal.clone());
        let reason_text = format!("exempted until {until}: {reason}");
        let records = self.principal_records(&facts.principal).await?;
        let stage_before = records
            .iter()
            .find(|r| r.subject == whole)
            .map_or(Stage::Clean, |r| r.stage);
        let pending: Vec<&Intent> = records.iter().filter_map(|r| r.pending.as_ref()).collect();
        // Refusals first (reads only, so a dry run says them too): no room for the tags, or a
        // deletion under way (stopped half-way it would leave the identity stripped).
        exemption_tags_fit(&subject, &facts.tags)?;
        for intent in &pending {
            self.refuse_during_delete(intent, now).await?;
        }
        if self.policy.dry_run {
            let stops = pending
                .iter()
                .filter(|i| !i.fallback.is_empty())
                .map(|i| {
                    format!(
                        "; would first stop SSM Automation {} ({})",
                        i.fallback.join(", "),
                        i.step
                    )
                })
                .collect::<String>();
            return Ok(CommandReport {
                identity: whole.id(),
                command: "exempt",
                outcome: Outcome::DryRun,
                stage: stage_before,
                reason: format!("{reason_text}{stops}"),
                restored: None,
                not_restored: None,
            });
        }
        // A step SSM is carrying out would land after the release: stop it first, as `undo`
        // does. A stop that fails leaves the exemption unwritten.
        let mut stopped = Vec::new();
        for intent in &pending {
            for id in self.stop_fallback(intent, "keep").await? {
                stopped.push(format!("{id} ({})", intent.step));
            }
        }
        if pending.iter().any(|i| !i.fallback.is_empty()) {
            // Stopping can take a while: the identity must still be the one decided on.
            let fresh = self
                .iam
                .fresh_facts(subject.principal.kind, &subject.principal.name)
                .await?
                .filter(|f| f.principal.path == facts.principal.path);
            self.check_link_identity(&subject, fresh.as_ref())?;
            let Some(fresh) = fresh.filter(|f| f.unique_id == facts.unique_id) else {
                return Err(Error::Rejected(format!(
                    "{subject} was deleted or re-created while its SSM Automation was being \
                     stopped; nothing was written"
                )));
            };
            facts = fresh;
            exemption_tags_fit(&subject, &facts.tags)?;
        }
        // A deletion that failed part-way (waiting for its retry) is not finished: what it
        // removed stays removed, and the caller must hear of it.
        let mut reason_text = reason_text;
        for i in pending.iter().filter(|i| i.step == Step::Delete) {
            reason_text.push_str(&format!(
                "; a deletion started at {} had not finished ({}): what it removed stays \
                 removed; the snapshot taken then lists what it had (`dormant history`)",
                fmt_time(i.started_at),
                i.last_error.as_deref().unwrap_or("interrupted")
            ));
        }
        let tags = vec![
            (tag::TAG_EXEMPT.to_string(), "true".to_string()),
            (tag::TAG_EXEMPT_UNTIL.to_string(), until_text),
            (
                tag::TAG_EXEMPT_REASON.to_string(),
                reason.trim().to_string(),
            ),
        ];
        let miscased = miscased_exemption_keys(&facts.tags);
        if !miscased.is_empty() {
            self.iam
                .apply(&facts.principal, &Effect::RemoveTags { keys: miscased })
                .await?;
        }
        self.iam
            .apply(&facts.principal, &Effect::PutTags { tags })
            .await?;
        // The exemption stands from here: whatever fails next is reported as a failure to be
        // finished by the controller, never as an error (an owner's link would be offered again
        // for an answer already in effect).
        let mut audit_reason = reason_text.clone();
        if !stopped.is_empty() {
            audit_reason.push_str(&format!("; stopped SSM Automation {}", stopped.join(", ")));
        }
        if let Some(via) = answered {
            audit_reason.push_str(&format!(" ({via})"));
        }
        let report = match self
            .release_exempted(&whole, &reason_text, &audit_reason, now)
            .await
        {
            Ok(report) => report,
            Err(e) => CommandReport {
                identity: whole.id(),
                command: "exempt",
                outcome: Outcome::Failed,
                stage: stage_before,
                reason: format!(
                    "{reason_text}; the exemption tags are written, but the rest failed for now \
                     ({e}): the controller releases it when it next evaluates the identity"
                ),
                restored: None,
                not_restored: None,
            },
        };
        Ok(report)
    }

    /// `exempt` after its tags are written: the audit entry, the release, and whether the
    /// identity is now off the ladder with nothing in flight, as the records read back say
    /// (another run may have released it). What is left (a failed release, a step waiting for
    /// its retry, another run's step) is the controller's to finish, and the caller must hear
    /// of it (an owner's page says "Answer recorded", not "Done").
    async fn release_exempted(
        &self,
        whole: &Subject,
        reason_text: &str,
        audit_reason: &str,
        now: Timestamp,
    ) -> Result<CommandReport> {
        let principal = &whole.principal;
        let run = self.start_run(None, now).await?;
        // An audit entry that cannot be written does not hold the release back: said below.
        let audited = self
            .audit(whole, "exempt", Outcome::Done, audit_reason, &run, now)
            .await;
        let said: Vec<String> = match self
            .evaluate(principal.kind, &principal.name, None, now)
            .await
        {
            Ok(released) => released
                .actions
                .iter()
                .filter(|a| matches!(a.outcome, Outcome::Failed | Outcome::Skipped))
                .map(|a| a.reason.clone())
                .collect(),
            Err(e) => vec![e.to_string()],
        };
        let records = self.principal_records(principal).await?;
        let open: Vec<&Record> = records
            .iter()
            .filter(|r| r.pending.is_some() || r.stage.is_on_ladder())
            .collect();
        let mut unfinished = Vec::new();
        if !open.is_empty() {
            unfinished = said;
            let fresh = self
                .iam
                .fresh_facts(principal.kind, &principal.name)
                .await?;
            for record in open {
                let why = decide(
                    record,
                    fresh.as_ref(),
                    &self.policy,
                    &Budget::default(),
                    now,
                );
                unfinished.push(format!(
                    "{} is still {}: {}",
                    record.subject.short(),
                    record.stage,
                    why.reason
                ));
            }
        }
        let stage = records
            .iter()
            .find(|r| r.subject == *whole)
            .map_or(Stage::Clean, |r| r.stage);
        let mut problems = Vec::new();
        if let Err(e) = audited {
            problems.push(format!(
                "the exemption's audit entry could not be written ({e})"
            ));
        }
        if !unfinished.is_empty() {
            problems.push(format!(
                "the release is not done yet and is left to the controller: {}",
                unfinished.join("; ")
            ));
        }
        let (outcome, reason) = if problems.is_empty() {
            (Outcome::Done, reason_text.to_string())
        } else {
            (
                Outcome::Failed,
                format!("{reason_text}; {}", problems.join("; ")),
            )
        };
        Ok(CommandReport {
            identity: whole.id(),
            command: "exempt",
            outcome,
            stage,
            reason,
            restored: None,
            not_restored: None,
        })
    }
}

impl<I: Iam, S: Store> Engine<I, S> {
    /// The principal's records: the index lists the subjects (it may lag), then each record is
    /// read consistently.
    async fn principal_records(&self, principal: &Principal) -> Result<Vec<Record>> {
        let mut records = Vec::new();
        for listed in self.store.load_principal(principal).await? {
            if let Some(record) = self.store.load(&listed.subject).await? {
                records.push(record);
            }
        }
        Ok(records)
    }
}

/// The spellings of the exemption keys other than the exact ones: IAM keeps one spelling per
/// key, so an owner's `Dormant:Exempt` would keep its case and the exemption would not count
/// (only the exact key does). They are removed first.
fn miscased_exemption_keys(tags: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    [
        tag::TAG_EXEMPT,
        tag::TAG_EXEMPT_UNTIL,
        tag::TAG_EXEMPT_REASON,
    ]
    .iter()
    .filter_map(|k| tag::miscased(tags, k).map(str::to_string))
    .collect()
}

/// Refuses, before anything is stopped or written, an exemption IAM would refuse for want of
/// room (50 tags per identity).
fn exemption_tags_fit(
    subject: &Subject,
    tags: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let keys = [
        tag::TAG_EXEMPT,
        tag::TAG_EXEMPT_UNTIL,
        tag::TAG_EXEMPT_REASON,
    ];
    let added = keys.iter().filter(|k| !tags.contains_key(**k)).count();
    let after = tags.len() - miscased_exemption_keys(tags).len() + added;
    if after > tag::TAG_LIMIT {
        return Err(Error::Rejected(format!(
            "{subject} has {} tags and would have {after} with the exemption's: IAM allows {}; \
             remove {} of its tags first",
            tags.len(),
            tag::TAG_LIMIT,
            after - tag::TAG_LIMIT
        )));
    }
    Ok(())
}
