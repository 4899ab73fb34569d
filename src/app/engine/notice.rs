//! Notices of identities dormant has no record of yet, the bulk of a first sweep (docs/design.md,
//! 'Batched notices'). Such a notice writes no intent: its stage tag, written first, is the crash
//! marker. Its done entry and record are then written with other notices' (one `BatchWriteItem`
//! for 25 done entries, one conditional `PutItem` per record), about one DynamoDB request per
//! notice instead of three. A stage tag found without a record is a notice cut short and is
//! decided again as one (`ladder::with_cut_short_notice`).

use tracing::{info, warn};

use crate::domain::ladder::{is_cut_short_notice, untag_lost_notice, with_cut_short_notice};
use crate::domain::time::fmt_time;
use crate::domain::{AuditEntry, Effect, Facts, Intent, Outcome, Record, Step, Timestamp};
use crate::error::{Error, Result};
use crate::ports::{ErrorKind, Iam, Store};

use super::super::run::{QueuedNotice, Run};
use super::step::effect_name;
use super::Engine;

impl<I: Iam, S: Store> Engine<I, S> {
    /// Whether a step may be taken the batched way: a notice of a subject with no record and no
    /// step in flight, which writes a stage tag to mark it.
    pub(super) fn notice_without_intent(record: &Record, step: Step, effects: &[Effect]) -> bool {
        step == Step::Notice
            && record.version == 0
            && record.pending.is_none()
            && effects.iter().any(|e| matches!(e, Effect::PutTags { .. }))
    }

    /// Tags, then queues the notice to be recorded with others. `with_intent` is the record as
    /// an intent would have stored it: a failed tag call is recorded through it like any other
    /// failed step.
    pub(super) async fn notice_untracked(
        &self,
        run: &Run,
        with_intent: Record,
        reason: &str,
        now: Timestamp,
    ) -> Result<()> {
        let Some(intent) = with_intent.pending.clone() else {
            return Ok(());
        };
        let Intent {
            effects,
            after,
            started_at,
            ..
        } = intent;
        for effect in &effects {
            if let Err(e) = self.iam.apply(&with_intent.subject.principal, effect).await {
                return self
                    .step_failed(run, &with_intent, effect_name(effect), &e.to_string(), now)
                    .await;
            }
        }
        let done = AuditEntry {
            at: started_at,
            step: Step::Notice.as_str().to_string(),
            outcome: Outcome::Done,
            actor: self.actor.clone(),
            reason: run.with_note_on(reason),
            event_id: run.event_id.clone(),
        };
        let mut after = *after;
        after.version = 0;
        after.pending = None;
        let queued = QueuedNotice {
            before: with_intent.stage,
            after,
            done,
            reason: reason.to_string(),
        };
        if let Some(batch) = run.queue_notice(queued) {
            self.record_notices(run, batch, now).await;
        }
        Ok(())
    }

    /// Records the notices this run has tagged and not recorded yet. Called before anything
    /// reads their records back: the end of a pass (before its cursor), a user's marker, the end
    /// of the run.
    pub(crate) async fn record_queued_notices(&self, run: &Run, now: Timestamp) {
        let batch = run.drain_notices();
        if !batch.is_empty() {
            self.record_notices(run, batch, now).await;
        }
    }

    /// Writes a batch's done entries, then each record; each notice recorded goes on as any
    /// committed step does. Whatever is not written is reported failed and left to its stage tag.
    async fn record_notices(&self, run: &Run, batch: Vec<QueuedNotice>, now: Timestamp) {
        let dedup = format!("done-{}", Step::Notice);
        let commits: Vec<(Record, AuditEntry, String)> = batch
            .iter()
            .map(|n| (n.after.clone(), n.done.clone(), dedup.clone()))
            .collect();
        let saved = match self.store.commit_new(&commits).await {
            Ok(saved) => saved,
            Err(e) => {
                warn!(notices = batch.len(), error = %e, "could not record tagged notices; their stage tags mark them for the next run");
                let e = Error::Port(e);
                for n in &batch {
                    self.record_failure(run, &n.after.subject, Some(Step::Notice), &e);
                }
                return;
            }
        };
        for (notice, result) in batch.into_iter().zip(saved) {
            let subject = notice.after.subject.clone();
            let outcome = match result {
                Ok(version) => {
                    let after = Record {
                        version,
                        ..notice.after
                    };
                    self.step_done(
                        run,
                        notice.before,
                        &after,
                        Step::Notice,
                        &notice.reason,
                        now,
                    )
                    .await
                }
                Err(e) if e.kind == ErrorKind::Conflict => {
                    info!(identity = %subject, "another run recorded this identity while it was being noticed; deciding again");
                    Box::pin(self.decide_again(run, &subject, true, now)).await
                }
                Err(e) => Err(e.into()),
            };
            if let Err(e) = outcome {
                self.record_failure(run, &subject, Some(Step::Notice), &e);
            }
        }
    }

    /// `record` as it is to be decided: an unstored one whose stage tag `facts` show is the
    /// notice a run cut short, resumed from when its done entry (if written) says it was taken.
    pub(super) async fn with_cut_short(
        &self,
        record: Record,
        facts: Option<&Facts>,
        now: Timestamp,
    ) -> Result<Record> {
        if !facts.is_some_and(|f| is_cut_short_notice(&record, f)) {
            return Ok(record);
        }
        let history = self.store.history(&record.subject).await?;
        let started_at = history
            .last()
            .filter(|e| e.step == Step::Notice.as_str() && e.outcome == Outcome::Done)
            .map_or(now, |e| e.at);
        info!(identity = %record.subject, started_at = %fmt_time(started_at), "dormant's stage tag without a record: a notice cut short; deciding it again");
        Ok(with_cut_short_notice(&record, started_at, now))
    }

    /// The stage tag a lost notice wrote, removed again when the record that won says the
    /// identity is off the ladder (`ladder::untag_lost_notice`). `true` if that was the case.
    pub(super) async fn untag_after_lost_notice(
        &self,
        run: &Run,
        current: &Record,
        facts: Option<&Facts>,
        now: Timestamp,
    ) -> Result<bool> {
        let Some(d) = facts.and_then(|f| untag_lost_notice(current, f, &self.policy, now)) else {
            return Ok(false);
        };
        self.carry_out(run, current.clone(), d, now).await?;
        Ok(true)
    }
}
