//! [`Iam`] over the AWS SDK: bulk and single reads turned into [`Facts`], idempotent effects,
//! snapshots. Every call goes through [`RetryPolicy::run`] with [`classify`]; no decisions here.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::{EntityType, ReportStateType, RoleDetail, StatusType, Tag, UserDetail};
use aws_sdk_iam::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use tracing::{debug, info, warn};

use super::retry::{classify, RetryPolicy};
use super::{ErrorKind, PortError, PortResult};
use crate::domain::quarantine::is_quarantine_name;
use crate::domain::{
    AccessKey, Effect, Facts, LoginProfile, Principal, PrincipalKind, RestoreOutcome,
    ServiceCredential, Snapshot, Timestamp,
};
use crate::ports::Iam;

mod quarantine;
mod restore;
mod snapshot;

/// AWS usually finishes a credential report within seconds; past this we give up for this run.
const REPORT_POLLS: usize = 20;
const REPORT_POLL_INTERVAL: Duration = Duration::from_millis(500);

pub struct AwsIam {
    client: Client,
    account: String,
    retry: RetryPolicy,
}

impl AwsIam {
    pub fn new(client: Client, account: impl Into<String>, retry: RetryPolicy) -> Self {
        AwsIam {
            client,
            account: account.into(),
            retry,
        }
    }

    /// One SDK call, with our retries and error classification.
    async fn call<T, E, F, Fut>(&self, op: &'static str, f: F) -> PortResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        debug!(operation = op, account = %self.account, "IAM call");
        self.retry
            .run(|| {
                let fut = f();
                async move { fut.await.map_err(|e| classify(op, e)) }
            })
            .await
    }

    /// Every page of a `Marker`/`IsTruncated` listing. `split` returns a page's items and the
    /// marker of the next page (`None` when not truncated).
    async fn paged<O, T, E, F, Fut, S>(
        &self,
        op: &'static str,
        f: F,
        split: S,
    ) -> PortResult<Vec<T>>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<O, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        S: Fn(O) -> (Vec<T>, Option<String>),
    {
        let mut all = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self.call(op, || f(marker.clone())).await?;
            let (items, next) = split(out);
            all.extend(items);
            match next {
                // A server repeating a marker would otherwise loop forever.
                Some(m) if marker.as_deref() == Some(m.as_str()) => {
                    return Err(PortError::new(
                        ErrorKind::Permanent,
                        op,
                        "the same pagination marker twice",
                    ))
                }
                Some(m) => marker = Some(m),
                None => return Ok(all),
            }
        }
    }

    /// A mutating call; every error, `NoSuchEntity` included, is the caller's.
    async fn change<T, E, F, Fut>(
        &self,
        p: &Principal,
        op: &'static str,
        what: &str,
        f: F,
    ) -> PortResult<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        info!(principal = %p.arn(), operation = op, target = what, "IAM change");
        self.call(op, f).await.map(drop)
    }

    /// A removal: `NoSuchEntity` means it is already gone, which is what we wanted.
    async fn remove<T, E, F, Fut>(
        &self,
        p: &Principal,
        op: &'static str,
        what: &str,
        f: F,
    ) -> PortResult<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match self.change(p, op, what, f).await {
            Err(e) if e.kind == ErrorKind::NotFound => {
                info!(principal = %p.arn(), operation = op, target = what, "already gone");
                Ok(())
            }
            other => other,
        }
    }

    fn principal(&self, kind: PrincipalKind, path: &str, name: &str) -> Principal {
        Principal::new(&self.account, kind, path, name)
    }

    // ---- bulk reads -------------------------------------------------------------------------

    async fn authorization_details(&self) -> PortResult<(Vec<RoleDetail>, Vec<UserDetail>)> {
        let c = &self.client;
        let pages = self
            .paged(
                "GetAccountAuthorizationDetails",
                |marker| {
                    c.get_account_authorization_details()
                        .filter(EntityType::Role)
                        .filter(EntityType::User)
                        // The default page is 100 entries; 1,000 is the most IAM allows.
                        .max_items(1000)
                        .set_marker(marker)
                        .send()
                },
                |o| {
                    let next = next_marker(o.is_truncated, o.marker);
                    let page = (
                        o.role_detail_list.unwrap_or_default(),
                        o.user_detail_list.unwrap_or_default(),
                    );
                    (vec![page], next)
                },
            )
            .await?;
        let mut roles = Vec::new();
        let mut users = Vec::new();
        for (r, u) in pages {
            roles.extend(r);
            users.extend(u);
        }
        Ok((roles, users))
    }

    /// The credential report by user name. Generation is asynchronous in AWS: poll, bounded.
    async fn credential_report(&self) -> PortResult<HashMap<String, ReportRow>> {
        let c = &self.client;
        let mut complete = false;
        for poll in 0..REPORT_POLLS {
            let out = self
                .call("GenerateCredentialReport", || {
                    c.generate_credential_report().send()
                })
                .await?;
            if out.state() == Some(&ReportStateType::Complete) {
                complete = true;
                break;
            }
            debug!(poll, state = ?out.state(), "credential report not ready yet");
            tokio::time::sleep(REPORT_POLL_INTERVAL).await;
        }
        if !complete {
            return Err(PortError::new(
                ErrorKind::Transient,
                "GenerateCredentialReport",
                format!("the credential report was not ready after {REPORT_POLLS} polls"),
            ));
        }
        let out = self
            .call("GetCredentialReport", || c.get_credential_report().send())
            .await?;
        // The SDK has already base64-decoded the Blob.
        let content = out.content().ok_or_else(|| {
            PortError::new(
                ErrorKind::Permanent,
                "GetCredentialReport",
                "the response has no Content",
            )
        })?;
        let text = std::str::from_utf8(content.as_ref()).map_err(|e| {
            PortError::new(
                ErrorKind::Permanent,
                "GetCredentialReport",
                format!("not UTF-8: {e}"),
            )
        })?;
        parse_credential_report(text)
    }

    fn role_facts(&self, r: &RoleDetail) -> PortResult<Option<Facts>> {
        const OP: &str = "GetAccountAuthorizationDetails";
        let (Some(name), Some(created)) = (r.role_name(), r.create_date()) else {
            warn!(role = ?r.role_name(), "role without a name or CreateDate in the bulk read; skipped");
            return Ok(None);
        };
        let principal = self.principal(PrincipalKind::Role, r.path().unwrap_or("/"), name);
        Ok(Some(Facts {
            has_quarantine_policy: quarantine::bulk_has_own_quarantine(
                &principal,
                r.role_policy_list(),
            ),
            principal,
            unique_id: r.role_id().map(str::to_string),
            created_at: to_chrono(OP, created)?,
            tags: tag_map(r.tags()),
            role_last_used: r
                .role_last_used()
                .and_then(|u| u.last_used_date())
                .map(|t| to_chrono(OP, t))
                .transpose()?,
            password_last_used: None,
            login_profile: None,
            access_keys: Vec::new(),
            advisor_last_used: None,
            bulk: true,
        }))
    }

    fn user_facts(
        &self,
        u: &UserDetail,
        report: &HashMap<String, ReportRow>,
    ) -> PortResult<Option<Facts>> {
        const OP: &str = "GetAccountAuthorizationDetails";
        let Some(name) = u.user_name() else {
            warn!("user without a name in the bulk read; skipped");
            return Ok(None);
        };
        let row = report.get(name);
        let created_at = match (u.create_date(), row.and_then(|r| r.created_at)) {
            (Some(t), _) => to_chrono(OP, t)?,
            (None, Some(t)) => t,
            (None, None) => {
                warn!(
                    user = name,
                    "user without a CreateDate in the bulk read; skipped"
                );
                return Ok(None);
            }
        };
        // A report generated before the user existed has no row (AWS keeps reports for up
        // to 4 hours): no password or key facts then. Bulk facts only nominate; the engine
        // re-reads with `fresh_facts` before acting.
        if row.is_none() {
            debug!(user = name, "user not in the credential report yet");
        }
        let principal = self.principal(PrincipalKind::User, u.path().unwrap_or("/"), name);
        Ok(Some(Facts {
            has_quarantine_policy: quarantine::bulk_has_own_quarantine(
                &principal,
                u.user_policy_list(),
            ),
            principal,
            unique_id: u.user_id().map(str::to_string),
            created_at,
            tags: tag_map(u.tags()),
            role_last_used: None,
            password_last_used: row.and_then(|r| r.password_last_used),
            login_profile: row.filter(|r| r.password_enabled).map(|r| LoginProfile {
                created_at: r.password_last_changed.unwrap_or(created_at),
            }),
            access_keys: row.map(|r| r.access_keys.clone()).unwrap_or_default(),
            advisor_last_used: None,
            bulk: true,
        }))
    }

    // ---- single reads -----------------------------------------------------------------------

    async fn fresh_role(&self, name: &str) -> PortResult<Facts> {
        const OP: &str = "GetRole";
        let c = &self.client;
        let out = self
            .call(OP, || c.get_role().role_name(name).send())
            .await?;
        let role = out.role().ok_or_else(|| missing(OP, "Role"))?;
        let inline = self.role_policy_names(name).await?;
        let principal = self.principal(PrincipalKind::Role, role.path(), role.role_name());
        Ok(Facts {
            has_quarantine_policy: self.has_own_quarantine(&principal, &inline).await?,
            principal,
            unique_id: Some(role.role_id().to_string()),
            created_at: to_chrono(OP, role.create_date())?,
            tags: tag_map(role.tags()),
            role_last_used: role
                .role_last_used()
                .and_then(|u| u.last_used_date())
                .map(|t| to_chrono(OP, t))
                .transpose()?,
            password_last_used: None,
            login_profile: None,
            access_keys: Vec::new(),
            advisor_last_used: None,
            bulk: false,
        })
    }

    async fn fresh_user(&self, name: &str) -> PortResult<Facts> {
        const OP: &str = "GetUser";
        let c = &self.client;
        let out = self
            .call(OP, || c.get_user().user_name(name).send())
            .await?;
        let user = out.user().ok_or_else(|| missing(OP, "User"))?;
        let created_at = to_chrono(OP, user.create_date())?;
        // GetUser carries the user's tags (as GetRole does): no ListUserTags per re-read.
        let tags = tag_map(user.tags());
        let mut access_keys = Vec::new();
        for meta in self.list_access_keys(name).await? {
            let Some(id) = meta.access_key_id() else {
                continue;
            };
            let last_used = match self
                .call("GetAccessKeyLastUsed", || {
                    c.get_access_key_last_used().access_key_id(id).send()
                })
                .await
            {
                Ok(o) => o
                    .access_key_last_used()
                    .and_then(|u| u.last_used_date())
                    .map(|t| to_chrono("GetAccessKeyLastUsed", t))
                    .transpose()?,
                // Deleted between the listing and now: it is no longer a key of this user.
                Err(e) if e.kind == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            access_keys.push(AccessKey {
                id: id.to_string(),
                active: meta.status() == Some(&StatusType::Active),
                created_at: meta
                    .create_date()
                    .map(|t| to_chrono("ListAccessKeys", t))
                    .transpose()?
                    .unwrap_or(created_at),
                last_used_at: last_used,
            });
        }
        let login_profile = self
            .login_profile_created(name)
            .await?
            .map(|created_at| LoginProfile { created_at });
        let inline = self.user_policy_names(name).await?;
        let principal = self.principal(PrincipalKind::User, user.path(), user.user_name());
        Ok(Facts {
            has_quarantine_policy: self.has_own_quarantine(&principal, &inline).await?,
            principal,
            unique_id: Some(user.user_id().to_string()),
            created_at,
            tags,
            role_last_used: None,
            password_last_used: user
                .password_last_used()
                .map(|t| to_chrono(OP, t))
                .transpose()?,
            login_profile,
            access_keys,
            advisor_last_used: None,
            bulk: false,
        })
    }

    /// The login profile's creation date, `None` if the user has no console password.
    async fn login_profile_created(&self, user: &str) -> PortResult<Option<Timestamp>> {
        let c = &self.client;
        match self
            .call("GetLoginProfile", || {
                c.get_login_profile().user_name(user).send()
            })
            .await
        {
            Ok(o) => o
                .login_profile()
                .map(|p| to_chrono("GetLoginProfile", p.create_date()))
                .transpose(),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ---- listings ---------------------------------------------------------------------------

    async fn role_policy_names(&self, role: &str) -> PortResult<Vec<String>> {
        let c = &self.client;
        self.paged(
            "ListRolePolicies",
            |m| c.list_role_policies().role_name(role).set_marker(m).send(),
            |o| (o.policy_names, next_marker(o.is_truncated, o.marker)),
        )
        .await
    }

    async fn user_policy_names(&self, user: &str) -> PortResult<Vec<String>> {
        let c = &self.client;
        self.paged(
            "ListUserPolicies",
            |m| c.list_user_policies().user_name(user).set_marker(m).send(),
            |o| (o.policy_names, next_marker(o.is_truncated, o.marker)),
        )
        .await
    }

    async fn role_attached_arns(&self, role: &str) -> PortResult<Vec<String>> {
        let c = &self.client;
        self.paged(
            "ListAttachedRolePolicies",
            |m| {
                c.list_attached_role_policies()
                    .role_name(role)
                    .set_marker(m)
                    .send()
            },
            |o| {
                (
                    policy_arns(o.attached_policies.unwrap_or_default()),
                    next_marker(o.is_truncated, o.marker),
                )
            },
        )
        .await
    }

    async fn user_attached_arns(&self, user: &str) -> PortResult<Vec<String>> {
        let c = &self.client;
        self.paged(
            "ListAttachedUserPolicies",
            |m| {
                c.list_attached_user_policies()
                    .user_name(user)
                    .set_marker(m)
                    .send()
            },
            |o| {
                (
                    policy_arns(o.attached_policies.unwrap_or_default()),
                    next_marker(o.is_truncated, o.marker),
                )
            },
        )
        .await
    }

    async fn role_instance_profiles(&self, role: &str) -> PortResult<Vec<String>> {
        let c = &self.client;
        self.paged(
            "ListInstanceProfilesForRole",
            |m| {
                c.list_instance_profiles_for_role()
                    .role_name(role)
                    .set_marker(m)
                    .send()
            },
            |o| {
                let names = o
                    .instance_profiles
                    .into_iter()
                    .map(|p| p.instance_profile_name)
                    .collect();
                (names, next_marker(o.is_truncated, o.marker))
            },
        )
        .await
    }

    async fn user_groups(&self, user: &str) -> PortResult<Vec<String>> {
        let c = &self.client;
        self.paged(
            "ListGroupsForUser",
            |m| {
                c.list_groups_for_user()
                    .user_name(user)
                    .set_marker(m)
                    .send()
            },
            |o| {
                let names = o.groups.into_iter().map(|g| g.group_name).collect();
                (names, next_marker(o.is_truncated, o.marker))
            },
        )
        .await
    }

    async fn list_access_keys(
        &self,
        user: &str,
    ) -> PortResult<Vec<aws_sdk_iam::types::AccessKeyMetadata>> {
        let c = &self.client;
        self.paged(
            "ListAccessKeys",
            |m| c.list_access_keys().user_name(user).set_marker(m).send(),
            |o| (o.access_key_metadata, next_marker(o.is_truncated, o.marker)),
        )
        .await
    }

    async fn user_tags(&self, user: &str) -> PortResult<BTreeMap<String, String>> {
        let c = &self.client;
        let tags = self
            .paged(
                "ListUserTags",
                |m| c.list_user_tags().user_name(user).set_marker(m).send(),
                |o| (o.tags, next_marker(o.is_truncated, o.marker)),
            )
            .await?;
        Ok(tag_map(&tags))
    }

    async fn role_tags(&self, role: &str) -> PortResult<BTreeMap<String, String>> {
        let c = &self.client;
        let tags = self
            .paged(
                "ListRoleTags",
                |m| c.list_role_tags().role_name(role).set_marker(m).send(),
                |o| (o.tags, next_marker(o.is_truncated, o.marker)),
            )
            .await?;
        Ok(tag_map(&tags))
    }

    /// Service-specific credentials (CodeCommit, Keyspaces, Bedrock...).
    ///
    /// moto does not implement this listing: it answers HTTP 500 with an HTML page and no error
    /// code (see [`is_unimplemented`]). Such an unparseable answer is taken as "none" with a
    /// warning, so the teardown works against the emulator. This cannot hide credentials in
    /// AWS: there `DeleteUser` refuses (`DeleteConflict`) a user that still has any, and that
    /// error is reported. Coded errors (throttling, AccessDenied...) are handled as usual.
    async fn service_specific_credentials(&self, user: &str) -> PortResult<Vec<ServiceCredential>> {
        const OP: &str = "ListServiceSpecificCredentials";
        let c = &self.client;
        let mut ids = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .retry
                .run(|| {
                    let fut = c
                        .list_service_specific_credentials()
                        .user_name(user)
                        .set_marker(marker.clone())
                        .send();
                    async move {
                        match fut.await {
                            Ok(o) => Ok(Some(o)),
                            Err(e) if is_unimplemented(&e) => Ok(None),
                            Err(e) => Err(classify(OP, e)),
                        }
                    }
                })
                .await?;
            let Some(o) = page else {
                warn!(user, "ListServiceSpecificCredentials gave an unparseable answer (not implemented by this endpoint?); assuming none");
                return Ok(ids);
            };
            ids.extend(
                o.service_specific_credentials()
                    .iter()
                    .map(|s| ServiceCredential {
                        id: s.service_specific_credential_id().to_string(),
                        service: s.service_name().to_string(),
                    }),
            );
            match next_marker(o.is_truncated, o.marker) {
                Some(m) if marker.as_deref() == Some(m.as_str()) => {
                    return Err(PortError::new(
                        ErrorKind::Permanent,
                        OP,
                        "the same pagination marker twice",
                    ))
                }
                Some(m) => marker = Some(m),
                None => return Ok(ids),
            }
        }
    }

    // ---- effects ----------------------------------------------------------------------------

    async fn put_tags(&self, p: &Principal, tags: &[(String, String)]) -> PortResult<()> {
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
        let c = &self.client;
        let name = p.name.as_str();
        match p.kind {
            PrincipalKind::Role => {
                self.change(p, "TagRole", &keys, || {
                    c.tag_role()
                        .role_name(name)
                        .set_tags(Some(tags.clone()))
                        .send()
                })
                .await
            }
            PrincipalKind::User => {
                self.change(p, "TagUser", &keys, || {
                    c.tag_user()
                        .user_name(name)
                        .set_tags(Some(tags.clone()))
                        .send()
                })
                .await
            }
        }
    }

    /// Tags of a principal that no longer exists are gone too.
    async fn remove_tags(&self, p: &Principal, keys: &[String]) -> PortResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let c = &self.client;
        let name = p.name.as_str();
        let what = keys.join(",");
        match p.kind {
            PrincipalKind::Role => {
                self.remove(p, "UntagRole", &what, || {
                    c.untag_role()
                        .role_name(name)
                        .set_tag_keys(Some(keys.to_vec()))
                        .send()
                })
                .await
            }
            PrincipalKind::User => {
                self.remove(p, "UntagUser", &what, || {
                    c.untag_user()
                        .user_name(name)
                        .set_tag_keys(Some(keys.to_vec()))
                        .send()
                })
                .await
            }
        }
    }

    async fn delete_inline_policy(&self, p: &Principal, policy: &str) -> PortResult<()> {
        let c = &self.client;
        let name = p.name.as_str();
        match p.kind {
            PrincipalKind::Role => {
                self.remove(p, "DeleteRolePolicy", policy, || {
                    c.delete_role_policy()
                        .role_name(name)
                        .policy_name(policy)
                        .send()
                })
                .await
            }
            PrincipalKind::User => {
                self.remove(p, "DeleteUserPolicy", policy, || {
                    c.delete_user_policy()
                        .user_name(name)
                        .policy_name(policy)
                        .send()
                })
                .await
            }
        }
    }

    async fn set_keys(&self, p: &Principal, key_ids: &[String], active: bool) -> PortResult<()> {
        if key_ids.is_empty() {
            return Ok(());
        }
        if p.kind != PrincipalKind::User {
            return Err(PortError::new(
                ErrorKind::Permanent,
                "UpdateAccessKey",
                format!("{} is a role: roles have no access keys", p.arn()),
            ));
        }
        let c = &self.client;
        let user = p.name.as_str();
        let status = if active {
            StatusType::Active
        } else {
            StatusType::Inactive
        };
        for id in key_ids {
            let result = self
                .change(p, "UpdateAccessKey", &format!("{id}={status}"), || {
                    c.update_access_key()
                        .user_name(user)
                        .access_key_id(id)
                        .status(status.clone())
                        .send()
                })
                .await;
            match result {
                Err(e) if e.kind == ErrorKind::NotFound && active => {
                    warn!(principal = %p.arn(), key = %id, "access key was deleted: it cannot be reactivated");
                }
                // A deleted key is as inactive as it gets.
                Err(e) if e.kind == ErrorKind::NotFound => {
                    info!(principal = %p.arn(), key = %id, "access key already deleted");
                }
                other => other?,
            }
        }
        Ok(())
    }

    async fn delete_access_key(&self, p: &Principal, key_id: &str) -> PortResult<()> {
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

    async fn delete_login_profile(&self, p: &Principal) -> PortResult<()> {
        let c = &self.client;
        let user = p.name.as_str();
        self.remove(p, "DeleteLoginProfile", user, || {
            c.delete_login_profile().user_name(user).send()
        })
        .await
    }

    /// IAM refuses to delete a user with anything attached, so detach everything first, in the
    /// order of docs/design.md, 'Steps in flight'.
    async fn delete_user(&self, p: &Principal) -> PortResult<()> {
        let c = &self.client;
        let user = p.name.as_str();
        self.delete_login_profile(p).await?;
        for key in self.list_access_keys(user).await? {
            if let Some(id) = key.access_key_id() {
                self.delete_access_key(p, id).await?;
            }
        }
        let certs = self
            .paged(
                "ListSigningCertificates",
                |m| {
                    c.list_signing_certificates()
                        .user_name(user)
                        .set_marker(m)
                        .send()
                },
                |o| {
                    let ids = o
                        .certificates
                        .into_iter()
                        .map(|s| s.certificate_id)
                        .collect();
                    (ids, next_marker(o.is_truncated, o.marker))
                },
            )
            .await?;
        for id in &certs {
            self.remove(p, "DeleteSigningCertificate", id, || {
                c.delete_signing_certificate()
                    .user_name(user)
                    .certificate_id(id)
                    .send()
            })
            .await?;
        }
        let ssh_keys = self
            .paged(
                "ListSSHPublicKeys",
                |m| {
                    c.list_ssh_public_keys()
                        .user_name(user)
                        .set_marker(m)
                        .send()
                },
                |o| {
                    let ids = o
                        .ssh_public_keys
                        .unwrap_or_default()
                        .into_iter()
                        .map(|k| k.ssh_public_key_id)
                        .collect();
                    (ids, next_marker(o.is_truncated, o.marker))
                },
            )
            .await?;
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
        let mfa = self
            .paged(
                "ListMFADevices",
                |m| c.list_mfa_devices().user_name(user).set_marker(m).send(),
                |o| {
                    let serials = o.mfa_devices.into_iter().map(|d| d.serial_number).collect();
                    (serials, next_marker(o.is_truncated, o.marker))
                },
            )
            .await?;
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

    async fn delete_role(&self, p: &Principal) -> PortResult<()> {
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

#[async_trait]
impl Iam for AwsIam {
    fn account(&self) -> &str {
        &self.account
    }

    async fn bulk_facts(&self) -> PortResult<Vec<Facts>> {
        let (roles, users) = self.authorization_details().await?;
        let report = if users.is_empty() {
            HashMap::new()
        } else {
            self.credential_report().await?
        };
        let mut facts = Vec::with_capacity(roles.len() + users.len());
        for r in &roles {
            facts.extend(self.role_facts(r)?);
        }
        for u in &users {
            facts.extend(self.user_facts(u, &report)?);
        }
        debug!(account = %self.account, roles = roles.len(), users = users.len(), "bulk read");
        Ok(facts)
    }

    async fn name_by_unique_id(
        &self,
        kind: PrincipalKind,
        unique_id: &str,
    ) -> PortResult<Option<String>> {
        // IAM has no lookup by unique id: list and match (one call per 1,000 identities).
        let c = &self.client;
        let found = match kind {
            PrincipalKind::Role => {
                self.paged(
                    "ListRoles",
                    |m| c.list_roles().set_marker(m).max_items(1000).send(),
                    |o| {
                        let ids = o
                            .roles
                            .into_iter()
                            .map(|r| (r.role_id, r.role_name))
                            .collect();
                        (ids, next_marker(o.is_truncated, o.marker))
                    },
                )
                .await?
            }
            PrincipalKind::User => {
                self.paged(
                    "ListUsers",
                    |m| c.list_users().set_marker(m).max_items(1000).send(),
                    |o| {
                        let ids = o
                            .users
                            .into_iter()
                            .map(|u| (u.user_id, u.user_name))
                            .collect();
                        (ids, next_marker(o.is_truncated, o.marker))
                    },
                )
                .await?
            }
        };
        Ok(found
            .into_iter()
            .find(|(id, _)| id == unique_id)
            .map(|(_, name)| name))
    }

    async fn fresh_facts(&self, kind: PrincipalKind, name: &str) -> PortResult<Option<Facts>> {
        let read = match kind {
            PrincipalKind::Role => self.fresh_role(name).await,
            PrincipalKind::User => self.fresh_user(name).await,
        };
        match read {
            Ok(f) => Ok(Some(f)),
            // Gone, possibly half-way through the reads: either way it no longer exists.
            Err(e) if e.kind == ErrorKind::NotFound => {
                debug!(kind = kind.as_str(), name, "principal not found");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn access_keys(&self, user: &str) -> PortResult<Vec<AccessKey>> {
        let mut keys = Vec::new();
        for meta in self.list_access_keys(user).await? {
            let (Some(id), Some(created)) = (meta.access_key_id(), meta.create_date()) else {
                continue;
            };
            keys.push(AccessKey {
                id: id.to_string(),
                active: meta.status() == Some(&StatusType::Active),
                created_at: to_chrono("ListAccessKeys", created)?,
                last_used_at: None,
            });
        }
        Ok(keys)
    }

    async fn apply(&self, principal: &Principal, effect: &Effect) -> PortResult<()> {
        match effect {
            Effect::PutTags { tags } => self.put_tags(principal, tags).await,
            Effect::RemoveTags { keys } => self.remove_tags(principal, keys).await,
            Effect::PutQuarantinePolicy => self.put_quarantine(principal).await,
            Effect::DeleteQuarantinePolicy => self.delete_quarantine(principal).await,
            Effect::DeactivateKeys { key_ids } => self.set_keys(principal, key_ids, false).await,
            Effect::ReactivateKeys { key_ids } => self.set_keys(principal, key_ids, true).await,
            // Not an IAM change: the engine calls `snapshot` and stores the result itself.
            Effect::TakeSnapshot => Ok(()),
            Effect::DeletePrincipal => {
                let result = match principal.kind {
                    PrincipalKind::User => self.delete_user(principal).await,
                    PrincipalKind::Role => self.delete_role(principal).await,
                };
                match result {
                    // A listing found the principal already gone.
                    Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
                    other => other,
                }
            }
            Effect::DeleteAccessKey { key_id } => {
                if principal.kind != PrincipalKind::User {
                    return Err(PortError::new(
                        ErrorKind::Permanent,
                        "DeleteAccessKey",
                        format!("{} is a role: roles have no access keys", principal.arn()),
                    ));
                }
                self.delete_access_key(principal, key_id).await
            }
            Effect::DeleteLoginProfile => {
                if principal.kind != PrincipalKind::User {
                    return Err(PortError::new(
                        ErrorKind::Permanent,
                        "DeleteLoginProfile",
                        format!("{} is a role: roles have no login profile", principal.arn()),
                    ));
                }
                self.delete_login_profile(principal).await
            }
        }
    }

    async fn snapshot(&self, principal: &Principal, now: Timestamp) -> PortResult<Snapshot> {
        match principal.kind {
            PrincipalKind::Role => self.snapshot_role(principal, now).await,
            PrincipalKind::User => self.snapshot_user(principal, now).await,
        }
    }

    async fn restore(&self, snapshot: &Snapshot) -> PortResult<RestoreOutcome> {
        self.restore_snapshot(snapshot).await
    }
}

// ---- helpers ------------------------------------------------------------------------------------

/// An SDK date as chrono. Outside chrono's range (±262,000 years) it is a malformed response.
pub(crate) fn to_chrono(op: &str, t: &aws_smithy_types::DateTime) -> PortResult<Timestamp> {
    DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())
        .ok_or_else(|| PortError::new(ErrorKind::Permanent, op, format!("date out of range: {t}")))
}

fn next_marker(truncated: bool, marker: Option<String>) -> Option<String> {
    if truncated {
        marker
    } else {
        None
    }
}

fn missing(op: &str, what: &str) -> PortError {
    PortError::new(
        ErrorKind::Permanent,
        op,
        format!("the response has no {what}"),
    )
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn policy_arns(attached: Vec<aws_sdk_iam::types::AttachedPolicy>) -> Vec<String> {
    attached.into_iter().filter_map(|p| p.policy_arn).collect()
}

/// IAM returns policy documents URL-encoded (RFC 3986).
fn decode_document(op: &str, doc: &str) -> PortResult<String> {
    percent_decode_str(doc)
        .decode_utf8()
        .map(|d| d.into_owned())
        .map_err(|e| {
            PortError::new(
                ErrorKind::Permanent,
                op,
                format!("policy document is not UTF-8: {e}"),
            )
        })
}

/// An answer with no AWS error in it: what an endpoint that does not implement the operation
/// gives. moto answers HTTP 500 `text/html`, which the SDK surfaces as a `ServiceError` with no
/// code. AWS's own 5xx answers are XML and stay ordinary (retried) errors.
fn is_unimplemented<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ResponseError(_) => true,
        SdkError::ServiceError(se) => {
            se.err().code().is_none()
                && se.raw().status().as_u16() >= 500
                && !se
                    .raw()
                    .headers()
                    .get("content-type")
                    .is_some_and(|ct| ct.contains("xml"))
        }
        _ => false,
    }
}

// ---- credential report --------------------------------------------------------------------------

/// One user's row of the credential report, in domain terms.
#[derive(Debug, Clone, PartialEq, Default)]
struct ReportRow {
    created_at: Option<Timestamp>,
    password_enabled: bool,
    password_last_used: Option<Timestamp>,
    password_last_changed: Option<Timestamp>,
    /// Keys in slots 1 and 2, ids `slot1`/`slot2` (the report has no key ids).
    access_keys: Vec<AccessKey>,
}

/// Parses the report CSV by header names. Values have no commas except in user names (IAM
/// allows `,` in names), which also show up in the ARN: see [`split_row`].
fn parse_credential_report(text: &str) -> PortResult<HashMap<String, ReportRow>> {
    const OP: &str = "GetCredentialReport";
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| PortError::new(ErrorKind::Permanent, OP, "empty credential report"))?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let user_col = col("user").ok_or_else(|| {
        PortError::new(
            ErrorKind::Permanent,
            OP,
            "credential report without a `user` column",
        )
    })?;
    let mut rows = HashMap::new();
    for line in lines {
        let Some(fields) = split_row(line, header.len()) else {
            warn!(
                line,
                "credential report row with an unexpected number of fields; skipped"
            );
            continue;
        };
        let get = |name: &str| col(name).and_then(|i| fields.get(i)).map(String::as_str);
        let date = |name: &str| get(name).and_then(report_date);
        let flag = |name: &str| get(name) == Some("true");
        let mut access_keys = Vec::new();
        for slot in 1..=2 {
            // An empty slot has `last_rotated` N/A; an inactive key still has its date.
            if let Some(created_at) = date(&format!("access_key_{slot}_last_rotated")) {
                access_keys.push(AccessKey {
                    id: format!("slot{slot}"),
                    active: flag(&format!("access_key_{slot}_active")),
                    created_at,
                    last_used_at: date(&format!("access_key_{slot}_last_used_date")),
                });
            }
        }
        let user = fields[user_col].clone();
        rows.insert(
            user,
            ReportRow {
                created_at: date("user_creation_time"),
                password_enabled: flag("password_enabled"),
                password_last_used: date("password_last_used"),
                password_last_changed: date("password_last_changed"),
                access_keys,
            },
        );
    }
    Ok(rows)
}

/// Splits a report row into `columns` fields. A user name with commas (legal in IAM) adds the
/// same commas to the `arn` column; the name never contains `:`, so `,arn:` marks where the ARN
/// starts. `None` if the row cannot be made to fit.
fn split_row(line: &str, columns: usize) -> Option<Vec<String>> {
    let fields: Vec<&str> = line.split(',').collect();
    if fields.len() == columns {
        return Some(fields.into_iter().map(str::to_string).collect());
    }
    let extra = fields.len().checked_sub(columns)?;
    if columns < 2 {
        return None;
    }
    let head = fields[..2 + extra].join(",");
    let at = head.find(",arn:")?;
    let mut out = vec![head[..at].to_string(), head[at + 1..].to_string()];
    out.extend(fields[2 + extra..].iter().map(|s| s.to_string()));
    Some(out)
}

/// A report date, or `None` for `N/A`, `no_information`, `not_supported` and anything else
/// that is not a date.
fn report_date(value: &str) -> Option<Timestamp> {
    match value {
        "N/A" | "no_information" | "not_supported" | "" => None,
        v => match DateTime::parse_from_rfc3339(v) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                warn!(value = v, error = %e, "unreadable date in the credential report; ignored");
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    fn t(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn report_rows_by_header_name() {
        let text = format!(
            "{HEADER}\n\
             <root_account>,arn:aws:iam::123456789012:root,2020-01-01T00:00:00+00:00,not_supported,2024-01-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n\
             alice,arn:aws:iam::123456789012:user/alice,2021-01-01T00:00:00+00:00,true,no_information,2021-02-01T00:00:00+00:00,N/A,false,true,2021-03-01T00:00:00+00:00,2024-05-01T10:00:00+00:00,us-east-1,s3,false,2021-04-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,false,N/A\n\
             bob,arn:aws:iam::123456789012:user/ops/bob,2022-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"
        );
        let rows = parse_credential_report(&text).unwrap();
        let alice = &rows["alice"];
        assert!(alice.password_enabled);
        assert_eq!(alice.password_last_used, None);
        assert_eq!(alice.password_last_changed, Some(t("2021-02-01T00:00:00Z")));
        assert_eq!(
            alice.access_keys,
            vec![
                AccessKey {
                    id: "slot1".into(),
                    active: true,
                    created_at: t("2021-03-01T00:00:00Z"),
                    last_used_at: Some(t("2024-05-01T10:00:00Z")),
                },
                AccessKey {
                    id: "slot2".into(),
                    active: false,
                    created_at: t("2021-04-01T00:00:00Z"),
                    last_used_at: None,
                },
            ]
        );
        let bob = &rows["bob"];
        assert!(!bob.password_enabled);
        assert!(bob.access_keys.is_empty());
        assert_eq!(bob.created_at, Some(t("2022-01-01T00:00:00Z")));
    }

    #[test]
    fn commas_in_user_names_survive() {
        let row = "a,b,arn:aws:iam::123456789012:user/a,b,2021-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A";
        let rows = parse_credential_report(&format!("{HEADER}\n{row}\n")).unwrap();
        assert_eq!(rows["a,b"].created_at, Some(t("2021-01-01T00:00:00Z")));
    }

    #[test]
    fn policy_documents_are_percent_decoded() {
        let doc = "%7B%22Version%22%3A%222012-10-17%22%7D";
        assert_eq!(
            decode_document("x", doc).unwrap(),
            r#"{"Version":"2012-10-17"}"#
        );
    }
}
