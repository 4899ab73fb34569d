//! Time in the core: instants are passed in, never read (docs/design.md, 'Decisions and guards').

use chrono::{DateTime, Utc};

pub type Timestamp = DateTime<Utc>;

/// `2026-01-31T12:00:00Z`: the one format for times in reasons, tags and output.
pub fn fmt_time(t: Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
