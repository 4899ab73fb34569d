//! The operator commands that change something: `undo`, `approve`, `restore` (`exempt` is in
//! exempt.rs).

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
            self.refuse_during_delete(intent, now).await?;
            self.stop_fallback(intent, "undo").await?;
            facts = self
                .iam
                .fresh_facts(subject.principal.kind, &subject.principal.name)
                .await?;
            // Stopping can take a while: the identity must still be the one decided on.
            self.check_link_identity(&subject, facts.as_ref())?;
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
