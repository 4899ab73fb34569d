//! Client-side rate limiting of IAM: one limiter per account and API class (reads, writes),
//! shared by every worker of that account, that finds the rate IAM allows ([`aimd`]) and paces
//! requests to it, so that a throttle slows every worker rather than one retried request.
//! docs/design.md, 'Rate limits', says why this and not the SDK's adaptive retry mode.

mod aimd;

pub use aimd::RateStats;

use std::sync::{Mutex, PoisonError};

use tokio::time::{Duration, Instant};

use aimd::Aimd;

/// The class of an IAM operation, each with its own limit (AWS throttles them separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiClass {
    Read,
    Write,
}

impl ApiClass {
    /// IAM's reads are its `Get*`, `List*`, `Generate*` and `Simulate*` operations.
    pub fn of(operation: &str) -> Self {
        const READS: [&str; 4] = ["Get", "List", "Generate", "Simulate"];
        if READS.iter().any(|p| operation.starts_with(p)) {
            ApiClass::Read
        } else {
            ApiClass::Write
        }
    }
}

/// One limiter: a rate finder and the clock it runs on.
#[derive(Debug)]
pub struct Limiter {
    epoch: Instant,
    aimd: Mutex<Aimd>,
}

/// A slot taken from a [`Limiter`]; tell it how the request went.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    sent: f64,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            epoch: Instant::now(),
            aimd: Mutex::new(Aimd::default()),
        }
    }
}

impl Limiter {
    /// Waits for this request's slot.
    pub async fn acquire(&self) -> Ticket {
        let now = self.now();
        let sent = self.lock().reserve(now);
        if sent > now {
            tokio::time::sleep_until(self.epoch + Duration::from_secs_f64(sent)).await;
        }
        Ticket { sent }
    }

    /// The request was answered, not throttled (an error other than a throttle included).
    pub fn accepted(&self, ticket: Ticket) {
        let now = self.now();
        self.lock().accepted(ticket.sent, now);
    }

    /// The request was throttled: everyone slows down.
    pub fn throttled(&self, ticket: Ticket) {
        let now = self.now();
        self.lock().throttled(ticket.sent, now);
    }

    pub fn stats(&self) -> RateStats {
        self.lock().stats()
    }

    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Aimd> {
        // Every change is a few numbers: a panic elsewhere cannot leave them half-written.
        self.aimd.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The limiters of one account's IAM.
#[derive(Debug, Default)]
pub struct IamLimits {
    pub read: Limiter,
    pub write: Limiter,
}

impl IamLimits {
    pub fn of(&self, class: ApiClass) -> &Limiter {
        match class {
            ApiClass::Read => &self.read,
            ApiClass::Write => &self.write,
        }
    }

    /// Both classes together.
    pub fn stats(&self) -> RateStats {
        let (r, w) = (self.read.stats(), self.write.stats());
        RateStats {
            requests: r.requests + w.requests,
            throttles: r.throttles + w.throttles,
            rate: w.rate.or(r.rate),
        }
    }
}
