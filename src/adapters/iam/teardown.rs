//! Ordered teardown before `DeleteUser`/`DeleteRole`: IAM refuses to delete an identity with
//! anything attached. Each kind has a table of steps, run in order (as Cloud Custodian's
//! `UserDelete.ORDERED_OPTIONS`), each naming the IAM actions it needs. `NoSuchEntity` counts as
//! done (see `AwsIam::remove`); dormant's deny goes last, so a teardown cut short leaves the
//! identity denied, never stripped of its deny with allows still attached.

use super::*;
use crate::domain::quarantine::policy_arn_for;

/// What one step takes off the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    LoginProfile,
    AccessKeys,
    SigningCertificates,
    SshPublicKeys,
    ServiceSpecificCredentials,
    MfaDevices,
    /// Every inline policy but dormant's deny, which the step keeps for [`Part::DenyPolicy`].
    InlinePolicies,
    /// Every managed policy but dormant's quarantine policy, kept for [`Part::DenyPolicy`].
    ManagedPolicies,
    Groups,
    InstanceProfiles,
    DenyPolicy,
    /// `DeleteUser`/`DeleteRole` itself.
    Identity,
}

struct Step {
    part: Part,
    /// The IAM actions the step calls; a test holds them to `Effect::DeletePrincipal`'s.
    #[cfg_attr(not(test), allow(dead_code))]
    actions: &'static [&'static str],
}

/// A user's teardown, in the order of docs/design.md, 'Steps in flight'.
const USER_TEARDOWN: &[Step] = &[
    Step {
        part: Part::LoginProfile,
        actions: &["iam:DeleteLoginProfile"],
    },
    Step {
        part: Part::AccessKeys,
        actions: &["iam:ListAccessKeys", "iam:DeleteAccessKey"],
    },
    Step {
        part: Part::SigningCertificates,
        actions: &[
            "iam:ListSigningCertificates",
            "iam:DeleteSigningCertificate",
        ],
    },
    Step {
        part: Part::SshPublicKeys,
        actions: &["iam:ListSSHPublicKeys", "iam:DeleteSSHPublicKey"],
    },
    Step {
        part: Part::ServiceSpecificCredentials,
        actions: &[
            "iam:ListServiceSpecificCredentials",
            "iam:DeleteServiceSpecificCredential",
        ],
    },
    Step {
        part: Part::MfaDevices,
        actions: &["iam:ListMFADevices", "iam:DeactivateMFADevice"],
    },
    Step {
        part: Part::InlinePolicies,
        actions: &["iam:ListUserPolicies", "iam:DeleteUserPolicy"],
    },
    Step {
        part: Part::ManagedPolicies,
        actions: &["iam:ListAttachedUserPolicies", "iam:DetachUserPolicy"],
    },
    Step {
        part: Part::Groups,
        actions: &["iam:ListGroupsForUser", "iam:RemoveUserFromGroup"],
    },
    Step {
        part: Part::DenyPolicy,
        actions: &["iam:DetachUserPolicy", "iam:DeleteUserPolicy"],
    },
    Step {
        part: Part::Identity,
        actions: &["iam:DeleteUser"],
    },
];

/// A role's teardown.
const ROLE_TEARDOWN: &[Step] = &[
    Step {
        part: Part::InstanceProfiles,
        actions: &[
            "iam:ListInstanceProfilesForRole",
            "iam:RemoveRoleFromInstanceProfile",
        ],
    },
    Step {
        part: Part::InlinePolicies,
        actions: &["iam:ListRolePolicies", "iam:DeleteRolePolicy"],
    },
    Step {
        part: Part::ManagedPolicies,
        actions: &["iam:ListAttachedRolePolicies", "iam:DetachRolePolicy"],
    },
    Step {
        part: Part::DenyPolicy,
        actions: &["iam:DetachRolePolicy", "iam:DeleteRolePolicy"],
    },
    Step {
        part: Part::Identity,
        actions: &["iam:DeleteRole"],
    },
];

fn teardown(kind: PrincipalKind) -> &'static [Step] {
    match kind {
        PrincipalKind::Role => ROLE_TEARDOWN,
        PrincipalKind::User => USER_TEARDOWN,
    }
}

/// dormant's own deny, found by the policy steps and taken off last.
#[derive(Default)]
struct KeptDeny {
    /// Inline policies an earlier version wrote.
    inline: Vec<String>,
    /// The managed quarantine policy, when attached.
    managed: Option<String>,
}

impl AwsIam {
    pub(super) async fn delete_access_key(&self, p: &Principal, key_id: &str) -> PortResult<()> {
        let c = &self.client;
        let user = p.name.as_str();
        self.remove(p, "DeleteAccessKey", key_id, || {
            c.delete_access_key()
                .user_name(user)
                .access_key_id(key_id)
                .send()
        })
        .await
    }

    pub(super) async fn delete_login_profile(&self, p: &Principal) -> PortResult<()> {
        let c = &self.client;
        let user = p.name.as_str();
        self.remove(p, "DeleteLoginProfile", user, || {
            c.delete_login_profile().user_name(user).send()
        })
        .await
    }

    /// Everything attached, then the identity, step by step in its kind's table.
    pub(super) async fn tear_down(&self, p: &Principal) -> PortResult<()> {
        // Dormant's deny, found among the policies and removed after everything else.
        let mut deny = KeptDeny::default();
        for step in teardown(p.kind) {
            self.take_off(p, step.part, &mut deny).await?;
        }
        Ok(())
    }

    async fn take_off(&self, p: &Principal, part: Part, deny: &mut KeptDeny) -> PortResult<()> {
        let c = &self.client;
        let name = p.name.as_str();
        match part {
            Part::LoginProfile => self.delete_login_profile(p).await?,
            Part::AccessKeys => {
                for key in self.list_access_keys(name).await? {
                    if let Some(id) = key.access_key_id() {
                        self.delete_access_key(p, id).await?;
                    }
                }
            }
            Part::SigningCertificates => {
                for cert in self.signing_certificates(name).await? {
                    self.remove(p, "DeleteSigningCertificate", &cert.id, || {
                        c.delete_signing_certificate()
                            .user_name(name)
                            .certificate_id(&cert.id)
                            .send()
                    })
                    .await?;
                }
            }
            Part::SshPublicKeys => {
                for id in self.ssh_public_key_ids(name).await? {
                    self.remove(p, "DeleteSSHPublicKey", &id, || {
                        c.delete_ssh_public_key()
                            .user_name(name)
                            .ssh_public_key_id(&id)
                            .send()
                    })
                    .await?;
                }
            }
            Part::ServiceSpecificCredentials => {
                for cred in self.service_specific_credentials(name).await? {
                    self.remove(p, "DeleteServiceSpecificCredential", &cred.id, || {
                        c.delete_service_specific_credential()
                            .user_name(name)
                            .service_specific_credential_id(&cred.id)
                            .send()
                    })
                    .await?;
                }
            }
            Part::MfaDevices => {
                for serial in self.mfa_serials(name).await? {
                    self.remove(p, "DeactivateMFADevice", &serial, || {
                        c.deactivate_mfa_device()
                            .user_name(name)
                            .serial_number(&serial)
                            .send()
                    })
                    .await?;
                }
            }
            Part::InlinePolicies => {
                let (own, others): (Vec<String>, Vec<String>) = self
                    .inline_names(p)
                    .await?
                    .into_iter()
                    .partition(|n| is_quarantine_name(n));
                deny.inline = own;
                for policy in others {
                    self.delete_inline(p, &policy).await?;
                }
            }
            Part::ManagedPolicies => {
                let own = policy_arn_for(p);
                for arn in self.attached_arns(p).await? {
                    if arn == own {
                        deny.managed = Some(arn);
                    } else {
                        self.detach(p, &arn).await?;
                    }
                }
            }
            Part::Groups => {
                for group in self.user_groups(name).await? {
                    self.remove(p, "RemoveUserFromGroup", &group, || {
                        c.remove_user_from_group()
                            .user_name(name)
                            .group_name(&group)
                            .send()
                    })
                    .await?;
                }
            }
            Part::InstanceProfiles => {
                for profile in self.role_instance_profiles(name).await? {
                    self.remove(p, "RemoveRoleFromInstanceProfile", &profile, || {
                        c.remove_role_from_instance_profile()
                            .role_name(name)
                            .instance_profile_name(&profile)
                            .send()
                    })
                    .await?;
                }
            }
            Part::DenyPolicy => {
                for policy in std::mem::take(&mut deny.inline) {
                    self.delete_inline(p, &policy).await?;
                }
                if let Some(arn) = deny.managed.take() {
                    self.detach(p, &arn).await?;
                }
            }
            Part::Identity => self.delete_identity(p).await?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_granted_by_the_delete_permissions() {
        for kind in [PrincipalKind::Role, PrincipalKind::User] {
            let granted = Effect::DeletePrincipal.permissions(kind);
            for step in teardown(kind) {
                for action in step.actions {
                    assert!(
                        granted.contains(action),
                        "{kind:?} teardown step {:?} needs {action}, which DeletePrincipal does not list",
                        step.part
                    );
                }
            }
        }
    }

    #[test]
    fn the_deny_goes_last_before_the_delete_and_after_the_policies_it_is_found_among() {
        for kind in [PrincipalKind::Role, PrincipalKind::User] {
            let parts: Vec<Part> = teardown(kind).iter().map(|s| s.part).collect();
            assert_eq!(parts[parts.len() - 2..], [Part::DenyPolicy, Part::Identity]);
            assert!(parts.contains(&Part::InlinePolicies));
        }
        let user: Vec<Part> = USER_TEARDOWN.iter().map(|s| s.part).collect();
        assert_eq!(
            user,
            [
                Part::LoginProfile,
                Part::AccessKeys,
                Part::SigningCertificates,
                Part::SshPublicKeys,
                Part::ServiceSpecificCredentials,
                Part::MfaDevices,
                Part::InlinePolicies,
                Part::ManagedPolicies,
                Part::Groups,
                Part::DenyPolicy,
                Part::Identity,
            ]
        );
    }
}
