//! The progress bar of a sweep or tick on a terminal (indicatif, on stderr): identities done of
//! those to go through, steps taken, IAM throttles, ETA. Never on a pipe or with `--output json`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::app::progress::Progress;
use crate::wiring::AccountLimits;

pub struct Bar {
    bar: ProgressBar,
    steps: AtomicU64,
    limits: AccountLimits,
}

impl Bar {
    /// A bar, when stderr is a terminal and the output is not JSON.
    pub fn on_terminal(json: bool, limits: AccountLimits) -> Option<Arc<Bar>> {
        (!json && std::io::stderr().is_terminal()).then(|| Arc::new(Bar::new(limits)))
    }

    fn new(limits: AccountLimits) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} identities, {msg}, ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        let this = Bar {
            bar,
            steps: AtomicU64::new(0),
            limits,
        };
        this.refresh();
        this
    }

    fn refresh(&self) {
        let throttles = self.limits.stats().throttles;
        let steps = self.steps.load(Ordering::Relaxed);
        self.bar
            .set_message(format!("{steps} steps taken, {throttles} throttled"));
    }

    /// Takes the bar off the terminal (before the report is printed).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn add_total(&self, n: usize) {
        self.bar.inc_length(n as u64);
    }

    fn identity_done(&self) {
        self.bar.inc(1);
        self.refresh();
    }

    fn step_taken(&self) {
        self.steps.fetch_add(1, Ordering::Relaxed);
    }
}
