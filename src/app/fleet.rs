//! Many accounts: one engine per account, swept concurrently with a bound. One account failing
//! (AssumeRole denied, a throttling storm) is recorded and does not stop the others.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use serde::Serialize;
use tracing::{info, warn};

use crate::domain::Timestamp;
use crate::error::{Error, Result};
use crate::ports::{FindingDetails, Iam, Store};

use super::output::RunReport;
use super::Engine;

/// How one account's run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountOutcome {
    pub account: String,
    pub ok: bool,
    pub evaluated: usize,
    pub error: Option<String>,
}

/// `sweep`/`tick` over every account: the run report of docs/design.md, 'Operator commands', plus one line per
/// account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FleetReport {
    #[serde(flatten)]
    pub run: RunReport,
    pub accounts: Vec<AccountOutcome>,
    /// AWS requests sent, by `service:Operation` (retries included).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub api_calls: std::collections::BTreeMap<String, u64>,
}

impl AccountOutcome {
    pub fn failed(account: String, why: String) -> Self {
        AccountOutcome {
            account,
            ok: false,
            evaluated: 0,
            error: Some(why),
        }
    }
}

/// Adds one account's finished run: its outcome line and its share of the totals.
pub fn add_account_run(
    run: &mut RunReport,
    accounts: &mut Vec<AccountOutcome>,
    account: String,
    r: RunReport,
) {
    accounts.push(AccountOutcome {
        account,
        ok: true,
        evaluated: r.evaluated,
        error: None,
    });
    run.add(r);
}

impl FleetReport {
    pub fn failed_accounts(&self) -> usize {
        self.accounts.iter().filter(|a| !a.ok).count()
    }
}

pub struct Fleet<I, S> {
    pub engines: Vec<Arc<Engine<I, S>>>,
    /// Accounts that could not even be set up (e.g. AssumeRole denied), with why.
    pub unreachable: Vec<(String, String)>,
    pub concurrency: usize,
    /// IAM Access Analyzer `GetFindingV2`, to enrich its findings; `None` skips enrichment.
    pub analyzer: Option<Arc<dyn FindingDetails>>,
}

/// Where the engine for one account comes from: the port of the SQS-triggered sweep of one
/// account. [`Fleet`] answers from the engines it holds; the Lambda also wires missing ones on
/// demand (`crate::wiring::OnDemand`).
#[async_trait]
pub trait Engines<I, S>: Send + Sync {
    async fn engine_for(&self, account: &str) -> Result<Arc<Engine<I, S>>>;
}

/// Where the Lambda gets the fleet for an EventBridge event: built at start-up, or on the first
/// event that needs it (`crate::wiring::LazyFleet`), so that a run that only consumes queued
/// sweep requests never assumes a role in every account.
#[async_trait]
pub trait FleetSource<I, S>: Send + Sync {
    async fn fleet(&self) -> Result<&Fleet<I, S>>;
}

#[async_trait]
impl<I: Iam + 'static, S: Store + 'static> FleetSource<I, S> for Fleet<I, S> {
    async fn fleet(&self) -> Result<&Fleet<I, S>> {
        Ok(self)
    }
}

#[async_trait]
impl<I: Iam + 'static, S: Store + 'static> Engines<I, S> for Fleet<I, S> {
    async fn engine_for(&self, account: &str) -> Result<Arc<Engine<I, S>>> {
        match self.engines.iter().find(|e| e.account() == account) {
            Some(e) => Ok(e.clone()),
            None => Err(self.missing(account)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Job {
    Sweep,
    Tick,
}

impl<I: Iam + 'static, S: Store + 'static> Fleet<I, S> {
    /// The engine for `account`.
    pub fn engine(&self, account: &str) -> Result<&Engine<I, S>> {
        match self.engines.iter().find(|e| e.account() == account) {
            Some(e) => Ok(e),
            None => Err(self.missing(account)),
        }
    }

    /// Why there is no engine for `account`.
    fn missing(&self, account: &str) -> Error {
        match self.unreachable.iter().find(|(a, _)| a == account) {
            Some((_, why)) => Error::Rejected(format!("account {account} is unreachable: {why}")),
            None => Error::Usage(format!(
                "account {account} is not one dormant manages (see `accounts` in the configuration)"
            )),
        }
    }

    /// The only engine, when there is exactly one account (names like `role/NAME` need it).
    pub fn single(&self) -> Result<&Engine<I, S>> {
        match (self.engines.as_slice(), self.unreachable.as_slice()) {
            ([only], []) => Ok(only),
            ([], [(account, why)]) => Err(Error::Rejected(format!(
                "account {account} is unreachable: {why}"
            ))),
            _ => Err(Error::Usage(
                "several accounts are configured: name the identity by its ARN".to_string(),
            )),
        }
    }

    pub async fn sweep(&self, now: Timestamp) -> FleetReport {
        self.run(Job::Sweep, now).await
    }

    pub async fn tick(&self, now: Timestamp) -> FleetReport {
        self.run(Job::Tick, now).await
    }

    async fn run(&self, job: Job, now: Timestamp) -> FleetReport {
        let total = self.engines.len();
        // Owners hear once per run, not once per account: the accounts' runs leave their
        // messages queued and the fleet sends them all at the end (a run cut short leaves them
        // for the next).
        let together = total > 1 && self.engines.iter().any(|e| e.notify.is_some());
        let results: Vec<(String, Result<RunReport>)> = stream::iter(self.engines.iter().cloned())
            .map(|engine| async move {
                let account = engine.account().to_string();
                let result = match job {
                    Job::Sweep => engine.sweep_for(now, together).await,
                    Job::Tick => engine.tick_for(now, together).await,
                };
                (account, result)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut report = FleetReport::default();
        for (account, why) in &self.unreachable {
            report
                .accounts
                .push(AccountOutcome::failed(account.clone(), why.clone()));
        }
        for (account, result) in results {
            match result {
                Ok(r) => add_account_run(&mut report.run, &mut report.accounts, account, r),
                Err(e) => {
                    warn!(%account, error = %e, "account failed; the others go on");
                    report
                        .accounts
                        .push(AccountOutcome::failed(account, e.to_string()));
                }
            }
        }
        report.accounts.sort_by(|a, b| a.account.cmp(&b.account));
        if together {
            let accounts: Vec<String> = self
                .engines
                .iter()
                .map(|e| e.account().to_string())
                .collect();
            if let Some(sender) = self.engines.iter().find(|e| e.notify.is_some()) {
                sender.flush_owners_of(&accounts, now).await;
            }
        }
        info!(
            accounts = total + self.unreachable.len(),
            failed = report.failed_accounts(),
            "run over all accounts finished"
        );
        report
    }
}
