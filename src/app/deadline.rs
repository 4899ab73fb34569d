//! A run's deadline (docs/design.md, 'Deadlines'): the time by which it must be over (the Lambda
//! context's less a margin, or the CLI's `--deadline`), and the estimate of how long one more
//! identity takes, so a run stops starting identities whose steps would not finish in time.
//!
//! The deadline belongs to the invocation, not to the engine (an engine outlives many Lambda
//! invocations): [`within`] sets it around a run, and [`current`] reads it where the run starts.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tokio::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Deadline;
}

/// How many recent identities the estimate looks at.
const RECENT: usize = 16;
/// Time kept back from the deadline for what follows the last step (the run's events and audit
/// entries, the answer).
const FINISH: Duration = Duration::from_millis(300);

/// The moment by which a run must be over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: std::time::Duration) -> Self {
        Deadline {
            at: Instant::now() + budget,
        }
    }

    /// The time left (zero once past).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// Runs `run` with `deadline` (if any) as the deadline of every engine run inside it.
pub async fn within<F: Future>(deadline: Option<Deadline>, run: F) -> F::Output {
    match deadline {
        Some(d) => DEADLINE.scope(d, run).await,
        None => run.await,
    }
}

/// The deadline [`within`] set for this task, if any.
pub fn current() -> Option<Deadline> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Decides, for a run with a deadline, whether another identity may start: only when twice the
/// longest of the recent identities' times (pacing by the rate limiter included) still fits.
#[derive(Debug)]
pub struct Pace {
    deadline: Deadline,
    recent: Mutex<VecDeque<Duration>>,
}

impl Pace {
    pub fn new(deadline: Deadline) -> Self {
        Pace {
            deadline,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        }
    }

    /// Whether an identity started now would finish before the deadline.
    pub fn may_start(&self) -> bool {
        let longest = self.lock().iter().max().copied().unwrap_or(Duration::ZERO);
        self.deadline.remaining() > longest * 2 + FINISH
    }

    /// How long one identity took.
    pub fn took(&self, time: Duration) {
        let mut recent = self.lock();
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(time);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Duration>> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_starting_when_the_slowest_recent_identity_would_not_fit() {
        let pace = Pace::new(Deadline::after(Duration::from_secs(10)));
        assert!(pace.may_start(), "nothing measured yet, 10 s left");
        pace.took(Duration::from_millis(100));
        pace.took(Duration::from_secs(4));
        assert!(pace.may_start(), "2 × 4 s + finish fits in 10 s");
        pace.took(Duration::from_millis(4900));
        assert!(!pace.may_start(), "2 × 4.9 s + finish does not");
        for _ in 0..RECENT {
            pace.took(Duration::from_millis(100));
        }
        assert!(pace.may_start(), "only the recent identities count");
    }

    #[tokio::test]
    async fn the_deadline_is_the_tasks() {
        assert_eq!(current(), None);
        let d = Deadline::after(Duration::from_secs(5));
        let seen = within(Some(d), async { current() }).await;
        assert_eq!(seen, Some(d));
        assert_eq!(within(None, async { current() }).await, None);
    }
}
