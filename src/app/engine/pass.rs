//! A sweep pass (docs/design.md, 'Deadlines'): every listed identity and every tracked one the
//! listing did not show, in ARN order, so that a run that meets its deadline stops at one place,
//! records it (`Store::set_sweep_cursor`), and the next sweep or tick continues from there.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use futures::StreamExt;
use tracing::{info, warn};

use crate::domain::{Facts, Principal, Record, Stage, Subject, Timestamp};
use crate::error::Result;
use crate::ports::{Iam, Store};

use super::super::run::Run;
use super::Engine;

/// One identity of a pass.
enum Item {
    /// In the bulk listing, with its tracked records.
    Listed(Facts, Vec<Record>),
    /// Tracked, live, and not in the listing: looked at before concluding it is gone (a listing
    /// can end early).
    Unlisted(Principal, Vec<Record>),
}

impl<I: Iam, S: Store> Engine<I, S> {
    /// Goes through the pass from where the last one stopped (if it did), `concurrency`
    /// identities at a time, starting each only while the run's deadline allows.
    pub(super) async fn sweep_pass(
        &self,
        run: &Run,
        bulk: Vec<Facts>,
        mut tracked: BTreeMap<String, Vec<Record>>,
        now: Timestamp,
    ) -> Result<()> {
        let mut work: Vec<(String, Item)> = bulk
            .into_iter()
            .map(|facts| {
                let arn = facts.principal.arn();
                let records = tracked.remove(&arn).unwrap_or_default();
                (arn, Item::Listed(facts, records))
            })
            .collect();
        for (arn, records) in tracked {
            let live: Vec<Record> = records
                .into_iter()
                .filter(|r| r.stage != Stage::Deleted)
                .collect();
            if let Some(first) = live.first() {
                let principal = first.subject.principal.clone();
                work.push((arn, Item::Unlisted(principal, live)));
            }
        }
        work.sort_by(|a, b| a.0.cmp(&b.0));
        run.batch_notices();
        // A dry run neither continues a pass nor records one.
        let from = if self.policy.dry_run {
            None
        } else {
            self.store.sweep_cursor(self.account()).await?
        };
        if let Some(from) = &from {
            work.retain(|(arn, _)| arn >= from);
            info!(account = self.account(), from = %from, left = work.len(), "continuing the sweep pass a deadline stopped");
        }
        self.go_through(run, work, from.is_some(), now).await
    }

    /// Continues a sweep pass a deadline stopped, if there is one (a tick does, after its due
    /// steps).
    pub(super) async fn continue_pass(&self, run: &Run, now: Timestamp) -> Result<()> {
        if self.policy.dry_run || !run.may_start() {
            return Ok(());
        }
        if self.store.sweep_cursor(self.account()).await?.is_none() {
            return Ok(());
        }
        self.sweep_in_run(run, now).await
    }

    async fn go_through(
        &self,
        run: &Run,
        work: Vec<(String, Item)>,
        continued: bool,
        now: Timestamp,
    ) -> Result<()> {
        let total = work.len();
        run.add_total(total);
        let done = AtomicUsize::new(0);
        let stopped: Mutex<Option<(String, usize)>> = Mutex::new(None);
        futures::stream::iter(work.into_iter().enumerate())
            .take_while(|(i, (arn, _))| {
                let go = run.may_start();
                if !go {
                    *stopped.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some((arn.clone(), total - i));
                }
                futures::future::ready(go)
            })
            .for_each_concurrent(self.concurrency, |(_, (_, item))| {
                let done = &done;
                async move {
                    let started = Instant::now();
                    self.sweep_item(run, item, now).await;
                    run.identity_done(started.elapsed());
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_multiple_of(1000) {
                        info!(done = n, of = total, "sweep progress");
                    }
                }
            })
            .await;
        // Before the cursor says these identities are done.
        self.commit_queued_notices(run, now).await;
        let stopped = stopped.into_inner().unwrap_or_else(PoisonError::into_inner);
        match stopped {
            Some((from, left)) => {
                warn!(account = self.account(), left, from = %from, "deadline: stopped starting identities; the next sweep or tick continues");
                run.state().report.unfinished += left;
                if !self.policy.dry_run {
                    self.store
                        .set_sweep_cursor(self.account(), Some(&from), now)
                        .await?;
                }
            }
            None if continued => {
                info!(account = self.account(), "sweep pass complete");
                self.store
                    .set_sweep_cursor(self.account(), None, now)
                    .await?;
            }
            None => {}
        }
        Ok(())
    }

    async fn sweep_item(&self, run: &Run, item: Item, now: Timestamp) {
        let (principal, result) = match item {
            Item::Listed(facts, records) => {
                let result = self.sweep_principal(run, &facts, records, now).await;
                run.count_evaluated(1);
                (facts.principal, result)
            }
            Item::Unlisted(principal, records) => {
                run.count_evaluated(1);
                let result = self.sweep_fresh(run, &principal, records, now).await;
                (principal, result)
            }
        };
        if let Err(e) = result {
            self.record_failure(run, &Subject::whole(principal), None, &e);
        }
    }
}
