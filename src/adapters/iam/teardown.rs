//! Ordered teardown before `DeleteUser`/`DeleteRole`: IAM refuses to delete an identity with
//! anything attached. `NoSuchEntity` counts as done (see `AwsIam::remove`); dormant's deny goes
//! last, so a teardown cut short leaves the identity denied.

use super::*;

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

    /// IAM refuses to delete a user with anything attached, so detach everything first, in the
    /// order of docs/design.md, 'Steps in flight'.
    pub(super) async fn delete_user(&self, p: &Principal) -> PortResult<()> {
        let c = &self.client;
        let user = p.name.as_str();
        self.delete_login_profile(p).await?;
        for key in self.list_access_keys(user).await? {
            if let Some(id) = key.access_key_id() {
                self.delete_access_key(p, id).await?;
            }
        }
        let certs: Vec<String> = self
            .signing_certificates(user)
            .await?
            .into_iter()
            .map(|cert| cert.id)
            .collect();
        for id in &certs {
            self.remove(p, "DeleteSigningCertificate", id, || {
                c.delete_signing_certificate()
                    .user_name(user)
                    .certificate_id(id)
                    .send()
            })
            .await?;
        }
        let ssh_keys = self.ssh_public_key_ids(user).await?;
        for id in &ssh_keys {
            self.remove(p, "DeleteSSHPublicKey", id, || {
                c.delete_ssh_public_key()
                    .user_name(user)
                    .ssh_public_key_id(id)
                    .send()
            })
            .await?;
        }
        for cred in self.service_specific_credentials(user).await? {
            self.remove(p, "DeleteServiceSpecificCredential", &cred.id, || {
                c.delete_service_specific_credential()
                    .user_name(user)
                    .service_specific_credential_id(&cred.id)
                    .send()
            })
            .await?;
        }
        let mfa = self.mfa_serials(user).await?;
        for serial in &mfa {
            self.remove(p, "DeactivateMFADevice", serial, || {
                c.deactivate_mfa_device()
                    .user_name(user)
                    .serial_number(serial)
                    .send()
            })
            .await?;
        }
        let (deny, inline): (Vec<String>, Vec<String>) = self
            .user_policy_names(user)
            .await?
            .into_iter()
            .partition(|n| is_quarantine_name(n));
        for policy in inline {
            self.delete_inline_policy(p, &policy).await?;
        }
        for arn in self.user_attached_arns(user).await? {
            self.remove(p, "DetachUserPolicy", &arn, || {
                c.detach_user_policy()
                    .user_name(user)
                    .policy_arn(&arn)
                    .send()
            })
            .await?;
        }
        for group in self.user_groups(user).await? {
            self.remove(p, "RemoveUserFromGroup", &group, || {
                c.remove_user_from_group()
                    .user_name(user)
                    .group_name(&group)
                    .send()
            })
            .await?;
        }
        // The deny goes last: a teardown cut short leaves the user denied, never stripped of
        // its deny with allows still attached.
        for policy in deny {
            self.delete_inline_policy(p, &policy).await?;
        }
        self.remove(p, "DeleteUser", user, || {
            c.delete_user().user_name(user).send()
        })
        .await
    }

    pub(super) async fn delete_role(&self, p: &Principal) -> PortResult<()> {
        let c = &self.client;
        let role = p.name.as_str();
        for profile in self.role_instance_profiles(role).await? {
            self.remove(p, "RemoveRoleFromInstanceProfile", &profile, || {
                c.remove_role_from_instance_profile()
                    .role_name(role)
                    .instance_profile_name(&profile)
                    .send()
            })
            .await?;
        }
        let (deny, inline): (Vec<String>, Vec<String>) = self
            .role_policy_names(role)
            .await?
            .into_iter()
            .partition(|n| is_quarantine_name(n));
        for policy in inline {
            self.delete_inline_policy(p, &policy).await?;
        }
        for arn in self.role_attached_arns(role).await? {
            self.remove(p, "DetachRolePolicy", &arn, || {
                c.detach_role_policy()
                    .role_name(role)
                    .policy_arn(&arn)
                    .send()
            })
            .await?;
        }
        // The deny goes last (see `delete_user`).
        for policy in deny {
            self.delete_inline_policy(p, &policy).await?;
        }
        self.remove(p, "DeleteRole", role, || {
            c.delete_role().role_name(role).send()
        })
        .await
    }
}
