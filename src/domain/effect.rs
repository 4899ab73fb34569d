//! The exact IAM changes a step makes. The core lists them; the executor carries them out, each
//! one idempotently, in order.

use serde::{Deserialize, Serialize};

use super::stage::Step;
use super::subject::PrincipalKind;

pub use super::quarantine::QUARANTINE_POLICY_NAME;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "effect")]
pub enum Effect {
    PutTags {
        tags: Vec<(String, String)>,
    },
    RemoveTags {
        keys: Vec<String>,
    },
    PutQuarantinePolicy,
    DeleteQuarantinePolicy,
    DeactivateKeys {
        key_ids: Vec<String>,
    },
    ReactivateKeys {
        key_ids: Vec<String>,
    },
    /// Store everything `restore` needs, before anything is torn down.
    TakeSnapshot,
    /// Ordered teardown of everything attached, then `DeleteUser`/`DeleteRole`.
    DeletePrincipal,
    DeleteAccessKey {
        key_id: String,
    },
    DeleteLoginProfile,
}

impl Effect {
    /// The IAM actions this effect needs on a principal of `kind`.
    pub fn permissions(&self, kind: PrincipalKind) -> &'static [&'static str] {
        use PrincipalKind::{Role, User};
        match (self, kind) {
            (Effect::PutTags { .. }, Role) => &["iam:TagRole"],
            (Effect::PutTags { .. }, User) => &["iam:TagUser"],
            (Effect::RemoveTags { .. }, Role) => &["iam:UntagRole"],
            (Effect::RemoveTags { .. }, User) => &["iam:UntagUser"],
            // The managed deny policy: attached only after its document is checked, never a
            // policy document written (docs/design.md, 'The quarantine policy').
            (Effect::PutQuarantinePolicy, Role) => &[
                "iam:ListAttachedRolePolicies",
                "iam:GetPolicy",
                "iam:GetPolicyVersion",
                "iam:AttachRolePolicy",
            ],
            (Effect::PutQuarantinePolicy, User) => &[
                "iam:ListAttachedUserPolicies",
                "iam:GetPolicy",
                "iam:GetPolicyVersion",
                "iam:AttachUserPolicy",
            ],
            // Also an earlier version's inline deny, read first: dormant never deletes an inline
            // policy it did not write.
            (Effect::DeleteQuarantinePolicy, Role) => &[
                "iam:ListAttachedRolePolicies",
                "iam:DetachRolePolicy",
                "iam:ListRolePolicies",
                "iam:GetRolePolicy",
                "iam:DeleteRolePolicy",
            ],
            (Effect::DeleteQuarantinePolicy, User) => &[
                "iam:ListAttachedUserPolicies",
                "iam:DetachUserPolicy",
                "iam:ListUserPolicies",
                "iam:GetUserPolicy",
                "iam:DeleteUserPolicy",
            ],
            (Effect::DeactivateKeys { .. } | Effect::ReactivateKeys { .. }, _) => {
                &["iam:UpdateAccessKey"]
            }
            (Effect::TakeSnapshot, Role) => &[
                "iam:GetRole",
                "iam:ListRolePolicies",
                "iam:GetRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:ListInstanceProfilesForRole",
                "iam:ListRoleTags",
            ],
            (Effect::TakeSnapshot, User) => &[
                "iam:GetUser",
                "iam:ListUserPolicies",
                "iam:GetUserPolicy",
                "iam:ListAttachedUserPolicies",
                "iam:ListGroupsForUser",
                "iam:ListUserTags",
                "iam:ListAccessKeys",
                "iam:GetLoginProfile",
                "iam:ListSSHPublicKeys",
                "iam:GetSSHPublicKey",
                "iam:ListSigningCertificates",
                "iam:ListServiceSpecificCredentials",
                "iam:ListMFADevices",
            ],
            (Effect::DeletePrincipal, Role) => &[
                "iam:ListInstanceProfilesForRole",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:ListRolePolicies",
                "iam:DeleteRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:DetachRolePolicy",
                "iam:DeleteRole",
            ],
            (Effect::DeletePrincipal, User) => &[
                "iam:DeleteLoginProfile",
                "iam:ListAccessKeys",
                "iam:DeleteAccessKey",
                "iam:ListSigningCertificates",
                "iam:DeleteSigningCertificate",
                "iam:ListSSHPublicKeys",
                "iam:DeleteSSHPublicKey",
                "iam:ListServiceSpecificCredentials",
                "iam:DeleteServiceSpecificCredential",
                "iam:ListMFADevices",
                "iam:DeactivateMFADevice",
                "iam:ListUserPolicies",
                "iam:DeleteUserPolicy",
                "iam:ListAttachedUserPolicies",
                "iam:DetachUserPolicy",
                "iam:ListGroupsForUser",
                "iam:RemoveUserFromGroup",
                "iam:DeleteUser",
            ],
            (Effect::DeleteAccessKey { .. }, _) => &["iam:DeleteAccessKey"],
            (Effect::DeleteLoginProfile, _) => &["iam:DeleteLoginProfile"],
        }
    }

    /// A change of dormant's own tags: the controller always makes it itself (it holds
    /// `TagUser`/`UntagUser` for them), also for a step handed to SSM, whose documents act under
    /// the same guards and write no credential tags.
    pub fn is_tag_change(&self) -> bool {
        matches!(self, Effect::PutTags { .. } | Effect::RemoveTags { .. })
    }

    /// Turning keys on or off, deleting a key or a password: granted to dormant's roles (and
    /// SSM's) only on a user carrying `dormant:stage` or `dormant:credentials`.
    pub fn needs_user_marker(&self) -> bool {
        matches!(
            self,
            Effect::DeactivateKeys { .. }
                | Effect::ReactivateKeys { .. }
                | Effect::DeleteAccessKey { .. }
                | Effect::DeleteLoginProfile
        )
    }

    /// Effects that cannot be reversed by `undo`.
    pub fn is_irreversible(&self) -> bool {
        match self {
            Effect::DeletePrincipal
            | Effect::DeleteAccessKey { .. }
            | Effect::DeleteLoginProfile => true,
            Effect::PutTags { .. }
            | Effect::RemoveTags { .. }
            | Effect::PutQuarantinePolicy
            | Effect::DeleteQuarantinePolicy
            | Effect::DeactivateKeys { .. }
            | Effect::ReactivateKeys { .. }
            | Effect::TakeSnapshot => false,
        }
    }
}

/// Every IAM action any step may need; `dormant permissions` prints this and the CDK role is checked
/// against it.
pub fn all_permissions() -> Vec<(Step, PrincipalKind, Vec<&'static str>)> {
    let sample = [
        Effect::PutTags { tags: vec![] },
        Effect::RemoveTags { keys: vec![] },
        Effect::PutQuarantinePolicy,
        Effect::DeleteQuarantinePolicy,
        Effect::DeactivateKeys { key_ids: vec![] },
        Effect::ReactivateKeys { key_ids: vec![] },
        Effect::TakeSnapshot,
        Effect::DeletePrincipal,
        Effect::DeleteAccessKey {
            key_id: String::new(),
        },
        Effect::DeleteLoginProfile,
    ];
    let step_effects = |step: Step| -> Vec<&Effect> {
        sample
            .iter()
            .filter(|e| match step {
                // Every tagging step also removes the old three-tag form where it finds it.
                Step::Notice | Step::RequestApproval => {
                    matches!(e, Effect::PutTags { .. } | Effect::RemoveTags { .. })
                }
                Step::Quarantine => matches!(
                    e,
                    Effect::PutTags { .. }
                        | Effect::RemoveTags { .. }
                        | Effect::PutQuarantinePolicy
                ),
                Step::DeactivateKeys => matches!(
                    e,
                    Effect::PutTags { .. }
                        | Effect::RemoveTags { .. }
                        | Effect::DeactivateKeys { .. }
                ),
                Step::Delete => matches!(
                    e,
                    Effect::TakeSnapshot
                        | Effect::DeletePrincipal
                        | Effect::DeleteAccessKey { .. }
                        | Effect::DeleteLoginProfile
                        | Effect::RemoveTags { .. }
                ),
                Step::Release => matches!(
                    e,
                    Effect::RemoveTags { .. }
                        | Effect::DeleteQuarantinePolicy
                        | Effect::ReactivateKeys { .. }
                ),
            })
            .collect()
    };
    let mut out = Vec::new();
    for step in Step::ALL {
        for kind in [PrincipalKind::Role, PrincipalKind::User] {
            let mut actions: Vec<&'static str> = step_effects(step)
                .into_iter()
                // Roles have no access keys or console password.
                .filter(|e| {
                    kind == PrincipalKind::User
                        || !matches!(
                            e,
                            Effect::DeactivateKeys { .. }
                                | Effect::ReactivateKeys { .. }
                                | Effect::DeleteAccessKey { .. }
                                | Effect::DeleteLoginProfile
                        )
                })
                .flat_map(|e| e.permissions(kind).iter().copied())
                .collect();
            actions.sort_unstable();
            actions.dedup();
            out.push((step, kind, actions));
        }
    }
    out
}

/// The read-only IAM actions of the Access Advisor confirmation
/// (`inactivity.confirm_with_access_advisor`); listed whether or not it is switched on.
pub const ADVISOR_PERMISSIONS: &[&str] = &[
    "iam:GenerateServiceLastAccessedDetails",
    "iam:GetServiceLastAccessedDetails",
];

/// The read-only IAM actions every evaluation needs (bulk reads for sweeps, fresh reads before a
/// step).
pub const EVALUATE_PERMISSIONS: &[&str] = &[
    "iam:GenerateCredentialReport",
    "iam:GetAccessKeyLastUsed",
    "iam:GetAccountAuthorizationDetails",
    "iam:GetCredentialReport",
    "iam:GetLoginProfile",
    "iam:GetRole",
    // Whether an inline policy named like dormant's quarantine policy is dormant's.
    "iam:GetRolePolicy",
    "iam:GetUser",
    "iam:GetUserPolicy",
    "iam:ListAccessKeys",
    // Whether dormant's quarantine policy is attached.
    "iam:ListAttachedRolePolicies",
    "iam:ListAttachedUserPolicies",
    "iam:ListRolePolicies",
    "iam:ListUserPolicies",
];
