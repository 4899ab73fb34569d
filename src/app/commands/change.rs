//! The operator commands that change something: `undo`, `approve`, `exempt`, `restore`.

use super::*;

impl<I: Iam, S: Store> Engine<I, S> {
    /// `undo`: reverse exactly what dormant changed, then cool-off.
    pub async fn undo(
        &self,
        arg: &IdentityArg,
        reason: &str,
        now: Timestamp,
    ) -> Result<CommandReport> {
        let (subject, mut facts) = self.resolve(arg).await?;
        let record = self
            .tracked(
                &subject,
                facts.as_ref(),
                "there is nothing of dormant's to undo",
                now,
            )
            .await?;
        // Refusals come before anything is stopped or changed.
        crate::domain::undo(&record, facts.as_ref(), &self.policy, now, reason)?;
        if let Some(intent) = record.pending.as_ref().filter(|i| {
            i.step != Step::Release
                && i.fallback.is_empty()
                && i.last_error.is_none()
                && now < i.not_before(INTENT_LEASE)
        }) {
            // Another run is carrying a step out right now: the release could land before its
            // last call. (Another release in flight, e.g. an earlier undo that died, is safe to
            // repeat: every effect of a release is idempotent.)
            return Err(Error::Rejected(format!(
                "{subject}: {} is being carried out by another run since {}; try again after {}",
                intent.step,
                fmt_time(intent.started_at),
                fmt_time(intent.not_before(INTENT_LEASE))
            )));
        }
        if let Some(intent) = record.pending.as_ref().filter(|i| !i.fallback.is_empty()) {
            if self.policy.dry_run {
                return Err(Error::Rejected(format!(
                    "{subject} has SSM Automation running for its {} step; a dry run cannot stop it",
                    intent.step
                )));
            }
            // An execution finishing after the release would undo the undo; stop it first, then
            // release from what IAM shows once it has stopped.
            self.stop_fallback(intent).await?;
            facts = self
                .iam
                .fresh_facts(subject.principal.kind, &subject.principal.name)
                .await?;
        }
        let decision = crate::domain::undo(&record, facts.as_ref(), &self.policy, now, reason)?;
        let after_stage = decision.after().map_or(record.stage, |a| a.stage);
        let run = self.start_run(None, now).await?;
        let result = self.carry_out(&run, record, decision, now).await;
        let report = self.finish(run).await;
        result?;
        let action = report?.actions.pop();
        let outcome = action.as_ref().map_or(Outcome::Done, |a| a.outcome);
        let stored = self
            .store
            .load(&subject)
            .await?
            .map_or(after_stage, |r| r.stage);
        Ok(CommandReport {
            identity: subject.id(),
            command: "undo",
            outcome,
            stage: stored,
            reason: action.map(|a| a.reason).unwrap_or_default(),
            restored: None,
            not_restored: None,
        })
    }

    /// `approve`: record the caller's approval of a pending deletion; the next tick deletes.
    pub async fn approve(
        &self,
        arg: &IdentityArg,
        reason: &str,
        now: Timestamp,
    ) -> Result<CommandReport> {
        let reason = required_reason(reason)?;
        let (subject, mut after) = self.approval(arg, now).await?;
        after.reason = format!("{}: {reason}", after.reason);
        let run = self.start_run(None, now).await?;
        if !self.policy.dry_run {
            self.store.save(&after).await?;
            self.audit(&subject, "approve", Outcome::Done, &after.reason, &run, now)
                .await?;
        }
        Ok(CommandReport {
            identity: subject.id(),
            command: "approve",
            outcome: if self.policy.dry_run {
                Outcome::DryRun
            } else {
                Outcome::Done
            },
            stage: after.stage,
            reason: after.reason,
            restored: None,
            not_restored: None,
        })
    }

    /// What `approve` would do, for the operator to confirm; refuses as `approve` would.
    pub async fn approve_plan(&self, arg: &IdentityArg, now: Timestamp) -> Result<String> {
        let (subject, before) = self.approval(arg, now).await?;
        Ok(format!(
            "approve the deletion of {}: the next tick snapshots it and deletes it ({})",
            subject.short(),
            before.reason
        ))
    }

    /// `approve`'s checks, shared with its preview: the subject and the record to store.
    async fn approval(&self, arg: &IdentityArg, now: Timestamp) -> Result<(Subject, Record)> {
        let (subject, facts) = self.resolve(arg).await?;
        let so = "there is no deletion to approve";
        let record = self.tracked(&subject, facts.as_ref(), so, now).await?;
        let approved = crate::domain::approve(&record, &self.policy, &self.actor, now);
        match (approved, self.exemption_of(&record, facts.as_ref(), now)) {
            (Err(protected @ RefusedBecause::Protected(..)), _) => Err(protected.into()),
            // An exempt identity is released, never deleted, whatever its stage says.
            (_, Some(why)) => Err(Error::Rejected(format!(
                "{} is {why}: dormant releases it rather than delete it, so {so}",
                subject.id()
            ))),
            (approved, None) => Ok((subject, approved?)),
        }
    }

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
        let Some(until_instant) = exemption::parse_until(&until.format("%Y-%m-%d").to_string())
        else {
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
        let Some(facts) = facts else {
            return Err(Error::NotFound(format!("{subject} does not exist in IAM")));
        };
        if let Some(why) = exemption::protection(&facts.principal, &self.policy.exemptions) {
            return Err(Error::Rejected(format!(
                "{subject} is protected ({why}); dormant never changes it, not even to tag it"
            )));
        }
        let whole = Subject::whole(facts.principal.clone());
        let reason_text = format!("exempted until {until}: {reason}");
        let records = self.store.load_principal(&facts.principal).await?;
        let stage_before = records
            .iter()
            .find(|r| r.subject == whole)
            .map_or(Stage::Clean, |r| r.stage);
        if self.policy.dry_run {
            return Ok(CommandReport {
                identity: whole.id(),
                command: "exempt",
                outcome: Outcome::DryRun,
                stage: stage_before,
                reason: reason_text,
                restored: None,
                not_restored: None,
            });
        }
        // A step SSM is carrying out would land after the release: stop it first, as `undo`
        // does. A stop that fails changes nothing (the caller may try again).
        for intent in records.iter().filter_map(|r| r.pending.as_ref()) {
            self.stop_fallback(intent).await?;
        }
        let tags = vec![
            (tag::TAG_EXEMPT.to_string(), "true".to_string()),
            (
                tag::TAG_EXEMPT_UNTIL.to_string(),
                until.format("%Y-%m-%d").to_string(),
            ),
            (
                tag::TAG_EXEMPT_REASON.to_string(),
                reason.trim().to_string(),
            ),
        ];
        // IAM keeps one spelling per key: an owner's `Dormant:Exempt` would keep its case and the
        // exemption would not count (only the exact key does). Remove such spellings first.
        let miscased: Vec<String> = [
            tag::TAG_EXEMPT,
            tag::TAG_EXEMPT_UNTIL,
            tag::TAG_EXEMPT_REASON,
        ]
        .iter()
        .filter_map(|k| crate::domain::tag::miscased(&facts.tags, k).map(str::to_string))
        .collect();
        if !miscased.is_empty() {
            self.iam
                .apply(
                    &facts.principal,
                    &crate::domain::Effect::RemoveTags { keys: miscased },
                )
                .await?;
        }
        self.iam
            .apply(&facts.principal, &crate::domain::Effect::PutTags { tags })
            .await?;
        // The exemption stands from here: whatever fails next is reported as a failure to be
        // finished by the controller, never as an error (an owner's link would be offered again
        // for an answer already in effect).
        let audit_reason = match answered {
            Some(via) => format!("{reason_text} ({via})"),
            None => reason_text.clone(),
        };
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
    /// identity is now off the ladder with nothing in flight. A release that failed, was left
    /// to another run, waits for a step's retry or for SSM is the controller's to finish, and
    /// the caller must hear of it (an owner's page says "Answer recorded", not "Done").
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
        let mut unfinished: Vec<String> = match self
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
        let records = self.store.load_principal(principal).await?;
        let open: Vec<&Record> = records
            .iter()
            .filter(|r| r.pending.is_some() || r.stage.is_on_ladder())
            .collect();
        if unfinished.is_empty() && !open.is_empty() {
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

    /// `restore`: recreate a deleted role or user from its latest snapshot.
    pub async fn restore(
        &self,
        arg: &IdentityArg,
        why: &str,
        now: Timestamp,
    ) -> Result<CommandReport> {
        let why = required_reason(why)?;
        let (subject, record, snapshot) = self.restorable(arg, now).await?;
        if self.policy.dry_run {
            return Ok(CommandReport {
                identity: subject.id(),
                command: "restore",
                outcome: Outcome::DryRun,
                stage: record.stage,
                reason: format!(
                    "would restore from the snapshot of {}",
                    fmt_time(snapshot.taken_at)
                ),
                restored: None,
                not_restored: None,
            });
        }
        let report = match self.iam.restore(&snapshot).await? {
            RestoreOutcome::Restored(report) => report,
            RestoreOutcome::NameTaken { unique_id } => {
                return Err(RefusedBecause::NameTaken(subject.id(), unique_id).into())
            }
        };
        let reason = format!(
            "restored by {} ({why}){} from the snapshot of {}; not restored: {}",
            self.actor,
            report
                .unique_id
                .as_deref()
                .map(|id| format!(" as unique id {id}"))
                .unwrap_or_default(),
            fmt_time(snapshot.taken_at),
            if report.not_restored.is_empty() {
                "nothing".to_string()
            } else {
                report.not_restored.join("; ")
            }
        );
        let mut after = record.entering(Stage::Released, now, reason.clone());
        after.released_at = Some(now);
        after.keys_deactivated.clear();
        after.approval = None;
        // The record follows the restored identity (IAM gave it a new unique id), so the next
        // run does not take it for a stranger re-created under the name.
        after.unique_id = report.unique_id.clone();
        after.login_profile_created_at = None;
        self.store.save(&after).await?;
        // The restore marker only lets an interrupted restore find its own identity; once the
        // record says released there is nothing left to resume, and the owner gets exactly their
        // tags back. Not before: a crash in between would leave a restored identity that a rerun
        // could not tell from a stranger's. A failure here leaves a harmless tag: said, not fatal.
        let mut not_restored = report.not_restored;
        let unmark = Effect::RemoveTags {
            keys: vec![RESTORED_FROM_TAG.to_string()],
        };
        if let Err(e) = self.iam.apply(&subject.principal, &unmark).await {
            warn!(identity = %subject, error = %e, "restore marker tag not removed");
            not_restored.push(format!(
                "tag {RESTORED_FROM_TAG}: dormant's restore marker could not be removed ({e}); remove it by hand"
            ));
        }
        let run = self.start_run(None, now).await?;
        self.audit(&subject, "restore", Outcome::Done, &reason, &run, now)
            .await?;
        self.publish(vec![crate::domain::OutboundEvent::for_record(
            "Identity Restored",
            &after,
            &reason,
        )])
        .await;
        // The owner hears of it like of a release (the reason says "restored").
        self.tell_owner(&run, &after, crate::domain::Step::Release, now)
            .await;
        self.flush_owners(now).await;
        Ok(CommandReport {
            identity: subject.id(),
            command: "restore",
            outcome: Outcome::Done,
            stage: Stage::Released,
            reason,
            restored: Some(report.restored),
            not_restored: Some(not_restored),
        })
    }

    /// What `restore` would do, for the operator to confirm; refuses as `restore` would.
    pub async fn restore_plan(&self, arg: &IdentityArg, now: Timestamp) -> Result<String> {
        let (subject, _, snapshot) = self.restorable(arg, now).await?;
        Ok(format!(
            "restore {} from its snapshot of {}: recreates it with its policies, tags, groups \
             and instance profiles; access keys and passwords cannot be recreated",
            subject.short(),
            fmt_time(snapshot.taken_at)
        ))
    }

    /// `restore`'s checks, shared with its preview: the subject, its record and its snapshot.
    async fn restorable(
        &self,
        arg: &IdentityArg,
        now: Timestamp,
    ) -> Result<(Subject, Record, crate::domain::Snapshot)> {
        let (subject, facts) = self.resolve(arg).await?;
        if subject.scope != Scope::Whole {
            return Err(Error::Rejected(format!(
                "{subject}: access keys and passwords cannot be recreated; create a new one for the user"
            )));
        }
        let so = "there is nothing to restore";
        let record = self.tracked(&subject, facts.as_ref(), so, now).await?;
        if record.stage != Stage::Deleted {
            let exempt = self
                .exemption_of(&record, facts.as_ref(), now)
                .map(|why| format!(" ({why})"))
                .unwrap_or_default();
            return Err(Error::Rejected(format!(
                "{subject} is {}{exempt}, not deleted: {so}{}",
                record.stage,
                if record.stage.is_on_ladder() {
                    " (use `dormant undo`)"
                } else {
                    ""
                }
            )));
        }
        let snapshot = self.store.latest_snapshot(&subject).await?.ok_or_else(|| {
            Error::Rejected(format!(
                "{subject} has no snapshot: it was not deleted by dormant ({})",
                record.reason
            ))
        })?;
        Ok((subject, record, snapshot))
    }
}
