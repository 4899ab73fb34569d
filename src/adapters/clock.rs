//! The one place that reads the wall clock.

use crate::domain::Timestamp;

/// `--now` when given (tests, demos), else the system clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    fixed: Option<Timestamp>,
}

impl Clock {
    pub fn system() -> Self {
        Clock { fixed: None }
    }

    pub fn fixed(at: Timestamp) -> Self {
        Clock { fixed: Some(at) }
    }

    #[allow(clippy::disallowed_methods)] // the only sanctioned wall-clock read
    pub fn now(&self) -> Timestamp {
        self.fixed.unwrap_or_else(chrono::Utc::now)
    }
}
