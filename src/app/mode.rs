//! What a run may change (docs/design.md, 'Dry run'). The decision core only sees
//! `Policy::dry_run` (take steps or not); whether a run that takes none leaves a trace is the
//! application's, and this is the one place that says so.

use crate::domain::Policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `dry_run = false`: takes the steps that are due.
    Act,
    /// `dry_run = true` in the configuration (a deployed controller observing): decides and
    /// records what it would do (audit notes, the dry-run marker item); changes nothing in IAM.
    Observe,
    /// `--dry-run` on the command line: decides and reports, and writes nothing anywhere (no IAM,
    /// no item in the table, no event, no automation). Its report is the only record.
    Preview,
}

impl Mode {
    /// The mode a configuration asks for: only the command line asks for a preview.
    pub fn of(policy: &Policy) -> Mode {
        if policy.dry_run {
            Mode::Observe
        } else {
            Mode::Act
        }
    }

    /// Whether steps are taken (the core's `Policy::dry_run` is the opposite).
    pub fn acts(self) -> bool {
        self == Mode::Act
    }

    /// Whether dormant's own records may be written (the table, events): all but a preview.
    pub fn writes(self) -> bool {
        self != Mode::Preview
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_never_asks_for_a_preview() {
        let mut policy = Policy::default();
        assert_eq!(Mode::of(&policy), Mode::Act);
        policy.dry_run = true;
        assert_eq!(Mode::of(&policy), Mode::Observe);
        assert!(Mode::Observe.writes() && !Mode::Observe.acts());
        assert!(!Mode::Preview.writes() && !Mode::Preview.acts());
    }
}
