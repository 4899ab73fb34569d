//! The one owner of an account's stored circuit breaker. Every change is a read-modify-write
//! conditional on the stored version, retried on a lost race, so concurrent runs (a long sweep
//! and a tick, two fanned-out invocations) never lose a trip or a quarantine count.

use tracing::warn;

use crate::domain::{BreakerState, Timestamp};
use crate::error::Result;
use crate::ports::{ErrorKind, PortError, Store};

/// Lost races tolerated before giving up (each one means another writer made progress).
const ATTEMPTS: usize = 16;

pub struct Breaker<'a, S: ?Sized> {
    store: &'a S,
    account: &'a str,
    /// Serialises this process's updates (the identities of one run are worked on
    /// concurrently), so that only other processes' writes cost a retry.
    turn: Option<&'a tokio::sync::Mutex<()>>,
}

impl<'a, S: Store + ?Sized> Breaker<'a, S> {
    pub fn new(store: &'a S, account: &'a str) -> Self {
        Breaker {
            store,
            account,
            turn: None,
        }
    }

    pub fn serialised_by(mut self, turn: &'a tokio::sync::Mutex<()>) -> Self {
        self.turn = Some(turn);
        self
    }

    pub async fn state(&self) -> Result<BreakerState> {
        Ok(self.store.breaker(self.account).await?)
    }

    /// Applies `change` to the stored state; `change` returns whether it changed anything (no
    /// write otherwise). Returns what `change` returned on the state that was written.
    async fn update(&self, change: impl Fn(&mut BreakerState) -> bool) -> Result<bool> {
        let _turn = match self.turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        };
        for _ in 0..ATTEMPTS {
            let mut state = self.store.breaker(self.account).await?;
            if !change(&mut state) {
                return Ok(false);
            }
            match self.store.save_breaker(self.account, &state).await {
                Ok(()) => return Ok(true),
                Err(e) if e.kind == ErrorKind::Conflict => continue,
                Err(e) => return Err(e.into()),
            }
        }
        warn!(
            account = self.account,
            "breaker: too many concurrent updates"
        );
        Err(PortError::new(
            ErrorKind::Transient,
            "PutItem",
            format!(
                "breaker of account {}: still changing under concurrent runs after {ATTEMPTS} attempts",
                self.account
            ),
        )
        .into())
    }

    /// Trips the breaker; `true` if this call tripped it (it was not tripped before).
    pub async fn trip(&self, cause: &str, now: Timestamp) -> Result<bool> {
        self.update(|b| b.trip(cause, now)).await
    }

    pub async fn count_quarantine(&self, now: Timestamp) -> Result<()> {
        self.update(|b| {
            b.count_quarantine(now);
            true
        })
        .await
        .map(drop)
    }

    /// The quarantine fraction's denominator, from a sweep's bulk read.
    pub async fn set_identities(&self, identities: u32) -> Result<()> {
        self.update(|b| {
            let changed = b.identities != identities;
            b.identities = identities;
            changed
        })
        .await
        .map(drop)
    }

    /// The operator's reset, kept with who did it and why; returns the state as stored after it.
    pub async fn reset(&self, by: &str, reason: &str, now: Timestamp) -> Result<BreakerState> {
        // Recorded even when it was not tripped: the operator's act is what the record keeps.
        self.update(|b| {
            b.reset();
            b.last_reset = Some(crate::domain::breaker::Reset {
                by: by.to_string(),
                reason: reason.to_string(),
                at: now,
            });
            true
        })
        .await?;
        self.state().await
    }
}
