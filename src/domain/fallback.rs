//! The SSM Automation fallback (docs/design.md, 'SSM Automation fallback'): which document carries out a step when the
//! controller cannot act directly, and with which parameters. The documents live in
//! `remediation-docs/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::effect::Effect;
use super::record::Step;
use super::subject::{Scope, Subject};

/// One Automation execution to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationRequest {
    pub document: String,
    pub parameters: BTreeMap<String, Vec<String>>,
    /// Identifies this attempt (not sent as a parameter): SSM's idempotency token is derived
    /// from it, so retries of one start are deduplicated but a later attempt runs again.
    pub attempt: String,
}

/// Where an execution stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum AutomationStatus {
    /// Pending, InProgress, Waiting…
    Running,
    Succeeded,
    /// Failed, TimedOut, Cancelled…, with the reason SSM gives.
    Failed(String),
}

/// The documents that carry out `step` for `subject`, or `None` when no document covers it (the
/// step's failure is then recorded as is). `effects` supplies the recorded data (key ids).
pub fn automation_for(
    subject: &Subject,
    step: Step,
    effects: &[Effect],
    automation_role: &str,
    attempt: &str,
) -> Option<Vec<AutomationRequest>> {
    let request = |document: &str, key_ids: Option<&[String]>| {
        let mut parameters = BTreeMap::new();
        parameters.insert(
            "AutomationAssumeRole".to_string(),
            vec![automation_role.to_string()],
        );
        parameters.insert(
            "PrincipalKind".to_string(),
            vec![subject.principal.kind.as_str().to_string()],
        );
        parameters.insert(
            "PrincipalName".to_string(),
            vec![subject.principal.name.clone()],
        );
        if let Some(ids) = key_ids {
            parameters.insert("AccessKeyIds".to_string(), ids.to_vec());
        }
        AutomationRequest {
            document: document.to_string(),
            parameters,
            attempt: attempt.to_string(),
        }
    };
    let keys_in = |pick: fn(&Effect) -> Option<&Vec<String>>| -> Vec<String> {
        effects.iter().filter_map(pick).flatten().cloned().collect()
    };
    match (step, &subject.scope) {
        (Step::Quarantine, Scope::Whole) => Some(vec![request("Dormant-QuarantineIdentity", None)]),
        (Step::DeactivateKeys, _) => {
            let ids = keys_in(|e| match e {
                Effect::DeactivateKeys { key_ids } => Some(key_ids),
                _ => None,
            });
            // The document requires at least one key id; with none there is nothing to hand over.
            (!ids.is_empty()).then(|| vec![request("Dormant-DeactivateAccessKeys", Some(&ids))])
        }
        (Step::Delete, Scope::Whole) => Some(vec![request("Dormant-DeleteIdentity", None)]),
        (Step::Release, _) => {
            let ids = keys_in(|e| match e {
                Effect::ReactivateKeys { key_ids } => Some(key_ids),
                _ => None,
            });
            let mut docs = Vec::new();
            if subject.scope == Scope::Whole {
                docs.push(request("Dormant-ReleaseIdentity", None));
            }
            if !ids.is_empty() {
                docs.push(request("Dormant-ReactivateAccessKeys", Some(&ids)));
            }
            (!docs.is_empty()).then_some(docs)
        }
        (Step::Quarantine, Scope::AccessKey(_) | Scope::Password)
        | (Step::Delete, Scope::AccessKey(_) | Scope::Password)
        | (Step::Notice | Step::RequestApproval, _) => None,
    }
}
