//! A sweep's notices, committed in batches (docs/design.md, 'Batched notices'). A first sweep is
//! mostly notices, and committing each on its own (done entry, then record) doubled its DynamoDB
//! writes. Each notice still claims its identity with its write-ahead intent (so two runs never
//! tag one identity together, and a crash leaves the intent); its commit waits in the run and goes
//! with others': done entries first, then records, in `BatchWriteItem`s without a condition,
//! which the intent's lease makes safe. About 1.1 DynamoDB requests per notice instead of three.

use tracing::{info, warn};

use crate::domain::{AuditEntry, Record, Stage, Step, Timestamp};
use crate::error::{Error, Result};
use crate::ports::{ErrorKind, Iam, Store};

use super::super::run::{QueuedNotice, Run};
use super::Engine;

/// How much of an intent's lease must be left, by the wall clock, for its commit to wait in a
/// batch: the lease (15 minutes from the run's `now`) is what keeps other writers off, and a run
/// held up (a fleet sweep's later account, a laptop suspended mid-sweep) may be near its end.
const LEASE_LEFT_FOR_BATCH: chrono::Duration = chrono::Duration::minutes(5);

impl<I: Iam, S: Store> Engine<I, S> {
    /// Whether a commit may wait in a batch: the wall clock says the intent's lease, ending at
    /// `held_until`, has at least [`LEASE_LEFT_FOR_BATCH`] left.
    pub(super) fn lease_holds(&self, held_until: Timestamp) -> bool {
        self.wall_clock
            .as_ref()
            .is_some_and(|clock| clock() + LEASE_LEFT_FOR_BATCH < held_until)
    }

    /// Queues a notice whose effects are done; commits the batch it fills.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn queue_notice(
        &self,
        run: &Run,
        before: Stage,
        after: Record,
        done: AuditEntry,
        reason: &str,
        held_until: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        let notice = QueuedNotice {
            before,
            after,
            done,
            reason: reason.to_string(),
            held_until,
        };
        if let Some(batch) = run.queue_notice(notice) {
            self.commit_notices(run, batch, now).await;
        }
        Ok(())
    }

    /// Commits the notices this run has queued. Called before anything reads their records back:
    /// the end of a pass (before its cursor), a user's credentials marker, the end of the run.
    /// (A notice decided again after a lost race may queue another: committed too.)
    pub(crate) async fn commit_queued_notices(&self, run: &Run, now: Timestamp) {
        loop {
            let batch = run.drain_notices();
            if batch.is_empty() {
                return;
            }
            self.commit_notices(run, batch, now).await;
        }
    }

    /// One batch; what the batch cannot commit is committed one by one with the usual condition.
    async fn commit_notices(&self, run: &Run, batch: Vec<QueuedNotice>, now: Timestamp) {
        let dedup = format!("done-{}", Step::Notice);
        let (fresh, stale): (Vec<QueuedNotice>, Vec<QueuedNotice>) = batch
            .into_iter()
            .partition(|n| self.lease_holds(n.held_until));
        let mut one_by_one = stale;
        if !fresh.is_empty() {
            let commits: Vec<(Record, AuditEntry, String)> = fresh
                .iter()
                .map(|n| (n.after.clone(), n.done.clone(), dedup.clone()))
                .collect();
            match self.store.commit_batch(&commits).await {
                Ok(versions) => {
                    for (notice, version) in fresh.into_iter().zip(versions) {
                        self.notice_committed(run, notice, version, now).await;
                    }
                }
                Err(e) => {
                    warn!(notices = fresh.len(), error = %e, "a batch of notices could not be committed; committing them one by one");
                    one_by_one.extend(fresh);
                }
            }
        }
        for notice in one_by_one {
            let subject = notice.after.subject.clone();
            match self.store.commit(&notice.after, &notice.done, &dedup).await {
                Ok(version) => self.notice_committed(run, notice, version, now).await,
                Err(e) if e.kind == ErrorKind::Conflict => {
                    // The failed batch may have written it; otherwise another run took over.
                    let stored = self.store.load(&subject).await;
                    let ours = Record {
                        version: notice.after.version + 1,
                        ..notice.after.clone()
                    };
                    match stored {
                        Ok(Some(stored)) if stored == ours => {
                            self.notice_committed(run, notice, ours.version, now).await;
                        }
                        Ok(_) => {
                            info!(identity = %subject, "another run took the notice over before its commit; deciding again");
                            if let Err(e) = Box::pin(self.decide_again(run, &subject, now)).await {
                                self.record_failure(run, &subject, Some(Step::Notice), &e);
                            }
                        }
                        Err(e) => {
                            self.record_failure(run, &subject, Some(Step::Notice), &Error::Port(e));
                        }
                    }
                }
                // The intent stays: the first run after its lease completes the notice.
                Err(e) => self.record_failure(run, &subject, Some(Step::Notice), &e.into()),
            }
        }
    }

    async fn notice_committed(
        &self,
        run: &Run,
        notice: QueuedNotice,
        version: u64,
        now: Timestamp,
    ) {
        let after = Record {
            version,
            ..notice.after
        };
        let subject = after.subject.clone();
        let result = self
            .step_done(
                run,
                notice.before,
                &after,
                Step::Notice,
                &notice.reason,
                now,
            )
            .await;
        if let Err(e) = result {
            self.record_failure(run, &subject, Some(Step::Notice), &e);
        }
    }
}
