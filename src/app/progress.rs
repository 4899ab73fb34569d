//! Progress of a long run, for whoever shows it (the CLI's progress bar): identities to go
//! through, identities done, steps taken. Like the deadline, it belongs to the invocation, not to
//! the engine: [`within`] sets it around a run, and the run reports to [`current`].

use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    static PROGRESS: Arc<dyn Progress>;
}

/// What a run tells about its progress. Called from concurrent workers: cheap, no I/O.
pub trait Progress: Send + Sync {
    /// `n` more identities to go through (a sweep pass of one account has begun).
    fn add_total(&self, n: usize);
    /// One identity gone through.
    fn identity_done(&self);
    /// One step taken (committed).
    fn step_taken(&self);
}

/// Runs `run` reporting to `progress` (if any).
pub async fn within<F: Future>(progress: Option<Arc<dyn Progress>>, run: F) -> F::Output {
    match progress {
        Some(p) => PROGRESS.scope(p, run).await,
        None => run.await,
    }
}

/// The progress [`within`] set for this task, if any.
pub fn current() -> Option<Arc<dyn Progress>> {
    PROGRESS.try_with(Arc::clone).ok()
}
