//! IAM's role/user twins (`TagRole`/`TagUser`, `PutRolePolicy`/`PutUserPolicy`...): each pair
//! differs only in its request builder and name setter, and [`twin!`] writes the call once for
//! both. Everything else (teardown, snapshot, restore, quarantine) is written once over a
//! [`Principal`] with these, and [`Identity`] stands for what `GetRole` or `GetUser` answered.

use aws_sdk_iam::types::{Role, User};

use super::*;

/// Runs `$body` on the side of the pair `$p.kind` says, with `$op` the operation's name and
/// `$b()` its request builder, the principal's name set. The body is expanded once per side
/// (their builder and output types differ), so it can use only what the twins share.
macro_rules! twin {
    (
        $iam:expr, $p:expr,
        ($role_op:literal, $role:ident),
        ($user_op:literal, $user:ident),
        |$op:ident, $b:ident| $body:expr $(,)?
    ) => {{
        let (client, name) = (&$iam.client, $p.name.as_str());
        match $p.kind {
            PrincipalKind::Role => {
                let ($op, $b) = ($role_op, || client.$role().role_name(name));
                $body
            }
            PrincipalKind::User => {
                let ($op, $b) = ($user_op, || client.$user().user_name(name));
                $body
            }
        }
    }};
}

/// A role or a user as IAM describes it (`GetRole`, `ListRoles`...).
pub(super) enum Identity {
    Role(Role),
    User(User),
}

impl Identity {
    pub(super) fn unique_id(&self) -> &str {
        match self {
            Identity::Role(r) => r.role_id(),
            Identity::User(u) => u.user_id(),
        }
    }

    pub(super) fn name(&self) -> &str {
        match self {
            Identity::Role(r) => r.role_name(),
            Identity::User(u) => u.user_name(),
        }
    }

    pub(super) fn path(&self) -> &str {
        match self {
            Identity::Role(r) => r.path(),
            Identity::User(u) => u.path(),
        }
    }

    /// `CreateDate`; an error names the `Get` it came from.
    pub(super) fn created_at(&self) -> PortResult<Timestamp> {
        match self {
            Identity::Role(r) => to_chrono("GetRole", r.create_date()),
            Identity::User(u) => to_chrono("GetUser", u.create_date()),
        }
    }

    pub(super) fn permissions_boundary(&self) -> Option<&str> {
        let boundary = match self {
            Identity::Role(r) => r.permissions_boundary(),
            Identity::User(u) => u.permissions_boundary(),
        };
        boundary.and_then(|b| b.permissions_boundary_arn())
    }

    /// The tags `GetRole`/`GetUser` carry (a listing's identities have none).
    pub(super) fn tags(&self) -> &[Tag] {
        match self {
            Identity::Role(r) => r.tags(),
            Identity::User(u) => u.tags(),
        }
    }
}

impl AwsIam {
    /// `GetRole` or `GetUser`.
    pub(super) async fn identity(&self, kind: PrincipalKind, name: &str) -> PortResult<Identity> {
        let c = &self.client;
        match kind {
            PrincipalKind::Role => {
                let out = self.call("GetRole", || c.get_role().role_name(name).send());
                let role = out.await?.role.ok_or_else(|| missing("GetRole", "Role"))?;
                Ok(Identity::Role(role))
            }
            PrincipalKind::User => {
                let out = self.call("GetUser", || c.get_user().user_name(name).send());
                let user = out.await?.user.ok_or_else(|| missing("GetUser", "User"))?;
                Ok(Identity::User(user))
            }
        }
    }

    /// Every role or every user (`ListRoles`/`ListUsers`, 1,000 a page: the most IAM allows).
    pub(super) async fn identities(&self, kind: PrincipalKind) -> PortResult<Vec<Identity>> {
        let c = &self.client;
        match kind {
            PrincipalKind::Role => {
                let list = |m| c.list_roles().set_marker(m).max_items(1000).send();
                let roles = self.paged("ListRoles", list, |o| (o.roles, o.is_truncated, o.marker));
                Ok(roles.await?.into_iter().map(Identity::Role).collect())
            }
            PrincipalKind::User => {
                let list = |m| c.list_users().set_marker(m).max_items(1000).send();
                let users = self.paged("ListUsers", list, |o| (o.users, o.is_truncated, o.marker));
                Ok(users.await?.into_iter().map(Identity::User).collect())
            }
        }
    }

    pub(super) async fn tag(&self, p: &Principal, tags: &[(String, String)]) -> PortResult<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let tags = tags
            .iter()
            .map(|(k, v)| {
                Tag::builder().key(k).value(v).build().map_err(|e| {
                    PortError::new(ErrorKind::Permanent, "TagRole/TagUser", e.to_string())
                })
            })
            .collect::<PortResult<Vec<_>>>()?;
        let keys = tags.iter().map(|t| t.key()).collect::<Vec<_>>().join(",");
        let tags = Some(tags);
        twin!(
            self,
            p,
            ("TagRole", tag_role),
            ("TagUser", tag_user),
            |op, b| {
                self.change(p, op, &keys, || b().set_tags(tags.clone()).send())
                    .await
            }
        )
    }

    /// Tags of a principal that no longer exists are gone too.
    pub(super) async fn untag(&self, p: &Principal, keys: &[String]) -> PortResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let what = keys.join(",");
        let keys = Some(keys.to_vec());
        twin!(
            self,
            p,
            ("UntagRole", untag_role),
            ("UntagUser", untag_user),
            |op, b| {
                self.remove(p, op, &what, || b().set_tag_keys(keys.clone()).send())
                    .await
            }
        )
    }

    /// `ListRoleTags`/`ListUserTags`.
    pub(super) async fn listed_tags(&self, p: &Principal) -> PortResult<BTreeMap<String, String>> {
        let tags = twin!(
            self,
            p,
            ("ListRoleTags", list_role_tags),
            ("ListUserTags", list_user_tags),
            |op, b| {
                self.paged(
                    op,
                    |m| b().set_marker(m).send(),
                    |o| (o.tags, o.is_truncated, o.marker),
                )
                .await?
            }
        );
        Ok(tag_map(&tags))
    }

    /// The names of the principal's inline policies.
    pub(super) async fn inline_names(&self, p: &Principal) -> PortResult<Vec<String>> {
        twin!(
            self,
            p,
            ("ListRolePolicies", list_role_policies),
            ("ListUserPolicies", list_user_policies),
            |op, b| {
                self.paged(
                    op,
                    |m| b().set_marker(m).send(),
                    |o| (o.policy_names, o.is_truncated, o.marker),
                )
                .await
            }
        )
    }

    /// One inline policy's document, URL-decoded.
    pub(super) async fn inline_document(&self, p: &Principal, policy: &str) -> PortResult<String> {
        twin!(
            self,
            p,
            ("GetRolePolicy", get_role_policy),
            ("GetUserPolicy", get_user_policy),
            |op, b| {
                let out = self.call(op, || b().policy_name(policy).send()).await?;
                decode_document(op, out.policy_document())
            }
        )
    }

    /// Writes an inline policy, replacing one of the same name.
    pub(super) async fn put_inline(
        &self,
        p: &Principal,
        policy: &str,
        document: &str,
    ) -> PortResult<()> {
        twin!(
            self,
            p,
            ("PutRolePolicy", put_role_policy),
            ("PutUserPolicy", put_user_policy),
            |op, b| {
                self.change(p, op, policy, || {
                    b().policy_name(policy).policy_document(document).send()
                })
                .await
            }
        )
    }

    pub(super) async fn delete_inline(&self, p: &Principal, policy: &str) -> PortResult<()> {
        twin!(
            self,
            p,
            ("DeleteRolePolicy", delete_role_policy),
            ("DeleteUserPolicy", delete_user_policy),
            |op, b| {
                self.remove(p, op, policy, || b().policy_name(policy).send())
                    .await
            }
        )
    }

    /// The ARNs of the managed policies attached to the principal.
    pub(super) async fn attached_arns(&self, p: &Principal) -> PortResult<Vec<String>> {
        twin!(
            self,
            p,
            ("ListAttachedRolePolicies", list_attached_role_policies),
            ("ListAttachedUserPolicies", list_attached_user_policies),
            |op, b| {
                let arns = self.paged(
                    op,
                    |m| b().set_marker(m).send(),
                    |o| {
                        (
                            o.attached_policies.unwrap_or_default(),
                            o.is_truncated,
                            o.marker,
                        )
                    },
                );
                Ok(policy_arns(arns.await?))
            }
        )
    }

    pub(super) async fn attach(&self, p: &Principal, arn: &str) -> PortResult<()> {
        twin!(
            self,
            p,
            ("AttachRolePolicy", attach_role_policy),
            ("AttachUserPolicy", attach_user_policy),
            |op, b| self.change(p, op, arn, || b().policy_arn(arn).send()).await
        )
    }

    pub(super) async fn detach(&self, p: &Principal, arn: &str) -> PortResult<()> {
        twin!(
            self,
            p,
            ("DetachRolePolicy", detach_role_policy),
            ("DetachUserPolicy", detach_user_policy),
            |op, b| self.remove(p, op, arn, || b().policy_arn(arn).send()).await
        )
    }

    /// `DeleteRole`/`DeleteUser`, once nothing is attached any more.
    pub(super) async fn delete_identity(&self, p: &Principal) -> PortResult<()> {
        twin!(
            self,
            p,
            ("DeleteRole", delete_role),
            ("DeleteUser", delete_user),
            |op, b| self.remove(p, op, &p.name, || b().send()).await
        )
    }
}
