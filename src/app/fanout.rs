//! A sweep fanned out through SQS (docs/design.md, 'Multi-account and scale'): the scheduled sweep queues one request per
//! account instead of sweeping them itself, and concurrent Lambda invocations, fed by the queue's
//! event source mapping, each sweep the accounts of their batch. AWS does the scheduling, the
//! retries (per message, `batchItemFailures`) and the dead-lettering.

use async_trait::async_trait;
use tracing::info;

use crate::app::accounts::Members;
use crate::error::Result;
use crate::ports::{AccountSweep, Directory, SweepQueue};

/// What the scheduled sweep does when fan-out is configured.
#[async_trait]
pub trait SweepFanOut: Send + Sync {
    /// Queues one request per account of the run (`run`: the scheduled event's id); returns the
    /// accounts queued.
    async fn fan_out(&self, run: &str) -> Result<Vec<String>>;
}

/// Lists the accounts (configuration and Organizations) afresh for each run, so an account that
/// joined the organization is covered without a redeploy.
pub struct FanOut<D, Q> {
    pub members: Members,
    pub directory: D,
    pub queue: Q,
}

#[async_trait]
impl<D: Directory, Q: SweepQueue> SweepFanOut for FanOut<D, Q> {
    async fn fan_out(&self, run: &str) -> Result<Vec<String>> {
        let accounts = self.members.list(Some(&self.directory)).await?;
        let requests: Vec<AccountSweep> = accounts
            .iter()
            .map(|a| AccountSweep {
                account: a.id.clone(),
                run: run.to_string(),
            })
            .collect();
        self.queue.send(&requests).await?;
        info!(%run, accounts = requests.len(), "sweep fanned out through the queue");
        Ok(requests.into_iter().map(|r| r.account).collect())
    }
}
