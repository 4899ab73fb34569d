//! The ladder's stages and the steps between them: names, order, and which steps an SSM
//! Automation document can carry (docs/design.md, 'The ladder').

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a subject stands. Names are exact (snake_case in the CLI and DynamoDB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Clean,
    Noticed,
    Quarantined,
    KeysDeactivated,
    PendingDelete,
    Deleted,
    Released,
    Exempt,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Clean,
        Stage::Noticed,
        Stage::Quarantined,
        Stage::KeysDeactivated,
        Stage::PendingDelete,
        Stage::Deleted,
        Stage::Released,
        Stage::Exempt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Clean => "clean",
            Stage::Noticed => "noticed",
            Stage::Quarantined => "quarantined",
            Stage::KeysDeactivated => "keys_deactivated",
            Stage::PendingDelete => "pending_delete",
            Stage::Deleted => "deleted",
            Stage::Released => "released",
            Stage::Exempt => "exempt",
        }
    }

    /// Stages in which dormant has changed something in IAM that a release must undo.
    pub fn is_on_ladder(self) -> bool {
        match self {
            Stage::Noticed | Stage::Quarantined | Stage::KeysDeactivated | Stage::PendingDelete => {
                true
            }
            Stage::Clean | Stage::Deleted | Stage::Released | Stage::Exempt => false,
        }
    }

    /// Position on the ladder; off-ladder stages count as the bottom rung.
    pub fn rung(self) -> u8 {
        match self {
            Stage::Clean | Stage::Released | Stage::Exempt => 0,
            Stage::Noticed => 1,
            Stage::Quarantined => 2,
            Stage::KeysDeactivated => 3,
            Stage::PendingDelete => 4,
            Stage::Deleted => 5,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Stage::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown stage '{s}' (expected one of {})", names.join(", "))
            })
    }
}

/// A step dormant takes. Each changes IAM (except in dry-run) and is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Notice,
    Quarantine,
    DeactivateKeys,
    /// Marks a subject `pending_delete` and asks for approval (`delete = "approval"`).
    RequestApproval,
    Delete,
    /// Reverses what dormant changed (used again, exemption, or operator undo).
    Release,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Notice,
        Step::Quarantine,
        Step::DeactivateKeys,
        Step::RequestApproval,
        Step::Delete,
        Step::Release,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Notice => "notice",
            Step::Quarantine => "quarantine",
            Step::DeactivateKeys => "deactivate_keys",
            Step::RequestApproval => "request_approval",
            Step::Delete => "delete",
            Step::Release => "release",
        }
    }

    /// Steps that take access away. Only these count against, and are stopped by, the circuit
    /// breaker: notices only tag, and releases only give back what dormant took.
    pub fn cuts_access(self) -> bool {
        match self {
            Step::Quarantine | Step::DeactivateKeys | Step::Delete => true,
            Step::Notice | Step::RequestApproval | Step::Release => false,
        }
    }

    /// The `detail-type` of the event published when the step is done.
    pub fn event_detail_type(self) -> &'static str {
        match self {
            Step::Notice => "Identity Noticed",
            Step::Quarantine => "Identity Quarantined",
            Step::DeactivateKeys => "Access Keys Deactivated",
            Step::RequestApproval => "Deletion Approval Requested",
            Step::Delete => "Identity Deleted",
            Step::Release => "Identity Released",
        }
    }
}

impl FromStr for Step {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Step::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Step::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown step '{s}' (expected one of {})", names.join(", "))
            })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
