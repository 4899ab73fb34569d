//! The SSM Automation fallback (docs/design.md, 'SSM Automation fallback'): which document carries out a step when the
//! controller cannot act directly, and with which parameters. The documents live in
//! `remediation-docs/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::effect::Effect;
use super::facts::Facts;
use super::stage::Step;
use super::subject::{Scope, Subject};

/// The Automation documents in `remediation-docs/`, each named after its file, and the step each
/// carries: the one list config validation, the engine and the CDK checks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    QuarantineIdentity,
    DeactivateAccessKeys,
    DeleteIdentity,
    ReleaseIdentity,
    ReactivateAccessKeys,
}

impl Document {
    pub const ALL: [Document; 5] = [
        Document::QuarantineIdentity,
        Document::DeactivateAccessKeys,
        Document::DeleteIdentity,
        Document::ReleaseIdentity,
        Document::ReactivateAccessKeys,
    ];

    /// The document's name in SSM (and its file name in `remediation-docs/`, plus `.yaml`).
    pub fn name(self) -> &'static str {
        match self {
            Document::QuarantineIdentity => "Dormant-QuarantineIdentity",
            Document::DeactivateAccessKeys => "Dormant-DeactivateAccessKeys",
            Document::DeleteIdentity => "Dormant-DeleteIdentity",
            Document::ReleaseIdentity => "Dormant-ReleaseIdentity",
            Document::ReactivateAccessKeys => "Dormant-ReactivateAccessKeys",
        }
    }

    pub fn step(self) -> Step {
        match self {
            Document::QuarantineIdentity => Step::Quarantine,
            Document::DeactivateAccessKeys => Step::DeactivateKeys,
            Document::DeleteIdentity => Step::Delete,
            Document::ReleaseIdentity | Document::ReactivateAccessKeys => Step::Release,
        }
    }
}

/// Whether some document can carry `step` (`fallback.ssm_steps` may only name these).
pub fn has_document(step: Step) -> bool {
    Document::ALL.iter().any(|d| d.step() == step)
}

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
    let request = |document: Document, key_ids: Option<&[String]>| {
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
            document: document.name().to_string(),
            parameters,
            attempt: attempt.to_string(),
        }
    };
    let keys_in = |pick: fn(&Effect) -> Option<&Vec<String>>| -> Vec<String> {
        effects.iter().filter_map(pick).flatten().cloned().collect()
    };
    match (step, &subject.scope) {
        (Step::Quarantine, Scope::Whole) => Some(vec![request(Document::QuarantineIdentity, None)]),
        (Step::DeactivateKeys, _) => {
            let ids = keys_in(|e| match e {
                Effect::DeactivateKeys { key_ids } => Some(key_ids),
                _ => None,
            });
            // The document requires at least one key id; with none there is nothing to hand over.
            (!ids.is_empty()).then(|| vec![request(Document::DeactivateAccessKeys, Some(&ids))])
        }
        (Step::Delete, Scope::Whole) => Some(vec![request(Document::DeleteIdentity, None)]),
        (Step::Release, _) => {
            let ids = keys_in(|e| match e {
                Effect::ReactivateKeys { key_ids } => Some(key_ids),
                _ => None,
            });
            let mut docs = Vec::new();
            if subject.scope == Scope::Whole {
                // A quarantine someone else attached is not dormant's to detach: the document
                // detaches only when the release the controller decided does.
                let mut release = request(Document::ReleaseIdentity, None);
                release.parameters.insert(
                    DETACH_QUARANTINE.to_string(),
                    vec![detaches_quarantine(effects).to_string()],
                );
                docs.push(release);
            }
            if !ids.is_empty() {
                docs.push(request(Document::ReactivateAccessKeys, Some(&ids)));
            }
            (!docs.is_empty()).then_some(docs)
        }
        (Step::Quarantine, Scope::AccessKey(_) | Scope::Password)
        | (Step::Delete, Scope::AccessKey(_) | Scope::Password)
        | (Step::Notice | Step::RequestApproval, _) => None,
    }
}

/// The parameter of `Dormant-ReleaseIdentity` saying whether it detaches the quarantine policy.
pub const DETACH_QUARANTINE: &str = "DetachQuarantine";

/// Whether a step's effects detach dormant's quarantine policy (a release of a quarantine dormant
/// attached, `domain::ladder::plan::release`).
fn detaches_quarantine(effects: &[Effect]) -> bool {
    effects.contains(&Effect::DeleteQuarantinePolicy)
}

/// Whether what `step`'s documents were to change is so in IAM, read afresh in the subject's own
/// account after every execution reported success: only then is the step committed. `fresh` is
/// `None` when the identity no longer exists, which is success only for the delete of a whole
/// identity (the step was decided on a read that found it). `unique_id` is the identity decided
/// on: a different one under the name means the document may have acted on someone else's.
pub fn landed(
    subject: &Subject,
    step: Step,
    effects: &[Effect],
    unique_id: Option<&str>,
    fresh: Option<&Facts>,
) -> Result<(), String> {
    let who = subject.principal.arn();
    let Some(facts) = fresh else {
        return match (step, &subject.scope) {
            (Step::Delete, Scope::Whole) => Ok(()),
            _ => Err(format!(
                "{who} no longer exists, so the {step} cannot have landed"
            )),
        };
    };
    if let (Some(decided), Some(now)) = (unique_id, facts.unique_id.as_deref()) {
        if decided != now {
            return Err(format!(
                "{who} is now {now}, not {decided} decided on: it was deleted and created again, \
                 and the document (which acts by name) may have changed the new identity: check \
                 it for dormant's deny policy and inactive keys"
            ));
        }
    }
    let key_ids = |pick: fn(&Effect) -> Option<&Vec<String>>| -> Vec<&String> {
        effects.iter().filter_map(pick).flatten().collect()
    };
    let key_active = |id: &str| facts.access_key(id).map(|k| k.active);
    match (step, &subject.scope) {
        (Step::Quarantine, Scope::Whole) if !facts.has_quarantine_policy => {
            Err(format!("{who} has no dormant deny policy"))
        }
        (Step::Delete, Scope::Whole) => Err(format!("{who} still exists")),
        (Step::DeactivateKeys, _) => {
            let ids = key_ids(|e| match e {
                Effect::DeactivateKeys { key_ids } => Some(key_ids),
                _ => None,
            });
            match ids.iter().find(|id| key_active(id) == Some(true)) {
                Some(id) => Err(format!("access key {id} of {who} is still active")),
                None => Ok(()),
            }
        }
        (Step::Release, scope) => {
            if *scope == Scope::Whole && detaches_quarantine(effects) && facts.has_quarantine_policy
            {
                return Err(format!("{who} still has dormant's deny policy"));
            }
            let ids = key_ids(|e| match e {
                Effect::ReactivateKeys { key_ids } => Some(key_ids),
                _ => None,
            });
            match ids.iter().find(|id| key_active(id) == Some(false)) {
                Some(id) => Err(format!("access key {id} of {who} is still inactive")),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccessKey, Principal};
    use chrono::{TimeZone, Utc};

    fn facts(unique_id: &str, quarantined: bool, keys: &[(&str, bool)]) -> Facts {
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        Facts {
            principal: Principal::user("123456789012", "/", "old-app"),
            unique_id: Some(unique_id.to_string()),
            created_at: at,
            tags: Default::default(),
            role_last_used: None,
            password_last_used: None,
            login_profile: None,
            access_keys: keys
                .iter()
                .map(|(id, active)| AccessKey {
                    id: id.to_string().into(),
                    active: *active,
                    created_at: at,
                    last_used_at: None,
                })
                .collect(),
            has_quarantine_policy: quarantined,
            advisor_last_used: None,
            bulk: false,
        }
    }

    #[test]
    fn a_reported_success_counts_only_when_iam_shows_the_change_on_the_identity_decided_on() {
        let user = Subject::whole(Principal::user("123456789012", "/", "old-app"));
        let quarantine = [Effect::PutQuarantinePolicy];
        let id = Some("AIDAOLD");
        let landed_on = |f: Option<&Facts>| landed(&user, Step::Quarantine, &quarantine, id, f);
        assert_eq!(landed_on(Some(&facts("AIDAOLD", true, &[]))), Ok(()));
        assert!(landed_on(Some(&facts("AIDAOLD", false, &[]))).is_err());
        assert!(landed_on(Some(&facts("AIDANEW", true, &[])))
            .unwrap_err()
            .contains("created again"));
        assert!(landed_on(None).unwrap_err().contains("no longer exists"));

        // Absent is what a delete wants; present is not.
        let delete = [Effect::DeletePrincipal];
        assert_eq!(landed(&user, Step::Delete, &delete, id, None), Ok(()));
        assert!(landed(
            &user,
            Step::Delete,
            &delete,
            id,
            Some(&facts("AIDAOLD", true, &[]))
        )
        .is_err());

        let keys = [Effect::DeactivateKeys {
            key_ids: vec!["AKIA1".into()],
        }];
        let still_on = facts("AIDAOLD", true, &[("AKIA1", true)]);
        assert!(landed(&user, Step::DeactivateKeys, &keys, id, Some(&still_on)).is_err());
        let off = facts("AIDAOLD", true, &[("AKIA1", false)]);
        assert_eq!(
            landed(&user, Step::DeactivateKeys, &keys, id, Some(&off)),
            Ok(())
        );

        let release = [
            Effect::DeleteQuarantinePolicy,
            Effect::ReactivateKeys {
                key_ids: vec!["AKIA1".into()],
            },
        ];
        assert!(landed(&user, Step::Release, &release, id, Some(&off)).is_err());
        let back = facts("AIDAOLD", false, &[("AKIA1", true)]);
        assert_eq!(
            landed(&user, Step::Release, &release, id, Some(&back)),
            Ok(())
        );
        // A release keeping an operator's quarantine lands with the policy still attached.
        let keep = [Effect::ReactivateKeys {
            key_ids: vec!["AKIA1".into()],
        }];
        let kept = facts("AIDAOLD", true, &[("AKIA1", true)]);
        assert_eq!(landed(&user, Step::Release, &keep, id, Some(&kept)), Ok(()));
    }

    #[test]
    fn the_release_document_detaches_the_quarantine_only_when_the_release_does() {
        let user = Subject::whole(Principal::user("123456789012", "/", "old-app"));
        let detach = |effects: &[Effect]| {
            let docs = automation_for(&user, Step::Release, effects, "arn:role", "a").unwrap();
            docs[0].parameters[DETACH_QUARANTINE].clone()
        };
        assert_eq!(detach(&[Effect::DeleteQuarantinePolicy]), vec!["true"]);
        assert_eq!(
            detach(&[Effect::RemoveTags {
                keys: vec!["dormant:stage".into()]
            }]),
            vec!["false"]
        );
    }

    #[test]
    fn every_document_is_a_file_in_remediation_docs_and_every_file_a_document() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("remediation-docs");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter_map(|f| f.strip_suffix(".yaml").map(str::to_string))
            .collect();
        files.sort();
        let mut names: Vec<String> = Document::ALL.iter().map(|d| d.name().to_string()).collect();
        names.sort();
        assert_eq!(files, names);
    }

    #[test]
    fn only_steps_that_change_access_have_a_document() {
        let carried: Vec<Step> = Step::ALL.into_iter().filter(|s| has_document(*s)).collect();
        assert_eq!(
            carried,
            [
                Step::Quarantine,
                Step::DeactivateKeys,
                Step::Delete,
                Step::Release
            ]
        );
    }
}
