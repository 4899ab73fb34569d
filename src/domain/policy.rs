//! The validated policy the core decides with. Built from the configuration file by
//! `crate::config`; everything here is already checked, so the core never fails on it.

use chrono::Duration;
use globset::{Glob, GlobSet, GlobSetBuilder};

use super::subject::PrincipalKind;

#[derive(Debug, Clone)]
pub struct Policy {
    pub dry_run: bool,
    pub inactivity: Inactivity,
    pub ladder: Ladder,
    pub exemptions: Exemptions,
    pub breaker: BreakerLimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inactivity {
    /// Users and roles idle this long are dormant.
    pub threshold: Duration,
    /// Single access keys and passwords idle this long are dormant (IAM.22 / CIS 1.12).
    pub key_threshold: Duration,
    /// Never act on a principal younger than this.
    pub min_age: Duration,
    /// Ask Access Advisor before a step that cuts access; a later `LastAuthenticated` counts as
    /// use, and no answer means no step.
    pub confirm_with_access_advisor: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ladder {
    pub notice_to_quarantine: Duration,
    pub quarantine_to_keys: Duration,
    pub to_delete: Duration,
    pub delete: DeleteMode,
    pub cooloff: Duration,
}

/// Whether the last, irreversible rung runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    Enabled,
    Approval,
    Never,
}

impl DeleteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteMode::Enabled => "enabled",
            DeleteMode::Approval => "approval",
            DeleteMode::Never => "never",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Exemptions {
    patterns: Vec<String>,
    globs: GlobSet,
    pub require_until: bool,
    pub max_duration: Duration,
    /// Accounts whose identities are never acted on.
    pub accounts: Vec<String>,
    /// dormant's own identities, always protected by name in every account: the roles the
    /// configuration names (member roles, the SSM automation role) and, filled in at start-up,
    /// the identity it runs as.
    pub controller: Vec<(PrincipalKind, String)>,
}

impl Exemptions {
    /// Compiles fnmatch-style globs (`*` crosses `/`, as in Python's fnmatch and the AWS
    /// `iam-role-last-used` rule). On error, returns the pattern that failed and why.
    pub fn new(
        patterns: &[String],
        require_until: bool,
        max_duration: Duration,
        accounts: Vec<String>,
    ) -> Result<Self, (String, String)> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let glob = Glob::new(p).map_err(|e| (p.clone(), e.kind().to_string()))?;
            builder.add(glob);
        }
        let globs = builder
            .build()
            .map_err(|e| (patterns.join(", "), e.to_string()))?;
        Ok(Exemptions {
            patterns: patterns.to_vec(),
            globs,
            require_until,
            max_duration,
            accounts,
            controller: Vec::new(),
        })
    }

    /// The first configured glob that matches `path_and_name`.
    pub fn matching_glob(&self, path_and_name: &str) -> Option<&str> {
        self.globs
            .matches(path_and_name)
            .first()
            .map(|&i| self.patterns[i].as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerLimits {
    pub max_actions_per_run: u32,
    pub max_quarantine_fraction: f64,
    pub min_count: u32,
}

impl Default for Policy {
    /// The defaults of docs/design.md, 'Configuration'.
    fn default() -> Self {
        Policy {
            dry_run: false,
            inactivity: Inactivity {
                threshold: Duration::days(90),
                key_threshold: Duration::days(45),
                min_age: Duration::days(90),
                confirm_with_access_advisor: false,
            },
            ladder: Ladder {
                notice_to_quarantine: Duration::days(7),
                quarantine_to_keys: Duration::days(7),
                to_delete: Duration::days(16),
                delete: DeleteMode::Enabled,
                cooloff: Duration::days(30),
            },
            exemptions: Exemptions {
                patterns: Vec::new(),
                globs: GlobSet::empty(),
                require_until: false,
                max_duration: Duration::days(365),
                accounts: Vec::new(),
                controller: Vec::new(),
            },
            breaker: BreakerLimits {
                max_actions_per_run: 25,
                max_quarantine_fraction: 0.10,
                min_count: 5,
            },
        }
    }
}
