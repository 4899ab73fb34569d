//! [`Iam`] over the AWS SDK: bulk and single reads turned into [`Facts`], idempotent effects,
//! snapshots. Every call goes through [`RetryPolicy`] with [`classify`]; no decisions here.
//!
//! - this file: the call helpers (`call`, `paged`, `change`, `remove`), the effects, `impl Iam`;
//! - `twin.rs`: the role/user operation pairs, each written once for both kinds;
//! - `read.rs`: bulk and fresh reads and the shared listings; `credential_report.rs`: its CSV;
//! - `quarantine.rs`: dormant's own deny policy; `teardown.rs`: the ordered delete;
//! - `snapshot.rs` and `restore.rs`: what a delete keeps and how it comes back.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
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

use super::paging::all_pages;
use super::rate::{ApiClass, IamLimits};
use super::retry::{classify, RetryPolicy};
use super::{ErrorKind, PortError, PortResult};
use crate::domain::quarantine::is_quarantine_name;
use crate::domain::subject::DEFAULT_PARTITION;
use crate::domain::{
    AccessKey, Effect, Facts, KeyId, LoginProfile, Principal, PrincipalKind, RestoreOutcome,
    ServiceCredential, Snapshot, Timestamp,
};
use crate::ports::Iam;
use credential_report::{parse_credential_report, ReportRow};

mod credential_report;
mod quarantine;
mod read;
mod restore;
mod snapshot;
mod teardown;
mod twin;

/// AWS usually finishes a credential report within seconds; past this we give up for this run.
const REPORT_POLLS: usize = 20;
const REPORT_POLL_INTERVAL: Duration = Duration::from_millis(500);

pub struct AwsIam {
    client: Client,
    account: String,
    /// Of the ARNs this adapter names principals with (the caller's, `aws` unless set).
    partition: String,
    retry: RetryPolicy,
    /// A preview's IAM (`--dry-run`): effects and restores are refused.
    read_only: bool,
    /// The account's IAM rate limits, shared by every worker; `None` leaves pacing to retries.
    limits: Option<Arc<IamLimits>>,
}

impl AwsIam {
    pub fn new(client: Client, account: impl Into<String>, retry: RetryPolicy) -> Self {
        AwsIam {
            client,
            account: account.into(),
            partition: DEFAULT_PARTITION.to_string(),
            retry,
            read_only: false,
            limits: None,
        }
    }

    /// An adapter that refuses every change (effects, restores) and only reads: a preview
    /// (`--dry-run`) changes nothing, and if a code path ever tried, it fails loudly here.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    fn writable(&self, what: &str) -> PortResult<()> {
        if self.read_only {
            Err(PortError::new(
                ErrorKind::Permanent,
                what,
                "refused: a preview (--dry-run) changes nothing in IAM",
            ))
        } else {
            Ok(())
        }
    }

    /// Paces every call by the account's limiters (one per API class, shared with every other
    /// client of the account that holds the same `limits`).
    pub fn with_limits(mut self, limits: Arc<IamLimits>) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The partition of the account (`aws-cn`, `aws-us-gov`, …), for the ARNs of its principals.
    pub fn in_partition(mut self, partition: &str) -> Self {
        self.partition = partition.to_string();
        self
    }

    /// One SDK call, with our retries and error classification.
    async fn call<T, E, F, Fut>(&self, op: &'static str, f: F) -> PortResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        debug!(operation = op, account = %self.account, "IAM call");
        match &self.limits {
            Some(limits) => {
                let limiter = limits.of(ApiClass::of(op));
                self.retry.call_limited(op, limiter, f).await
            }
            None => self.retry.call(op, f).await,
        }
    }

    /// Every page of a `Marker`/`IsTruncated` listing. `split` returns a page's items,
    /// `IsTruncated` and `Marker`.
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
        S: Fn(O) -> (Vec<T>, bool, Option<String>),
    {
        let f = &f;
        let fetch = |marker: Option<String>| self.call(op, move || f(marker.clone()));
        let split = |o| {
            let (items, truncated, marker) = split(o);
            (items, next_marker(truncated, marker))
        };
        all_pages(op, "marker", fetch, split).await
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
        Principal::new(&self.account, kind, path, name).in_partition(&self.partition)
    }

    // ---- effects ----------------------------------------------------------------------------

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
        let status = status(active);
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
}

#[async_trait]
impl Iam for AwsIam {
    fn account(&self) -> &str {
        &self.account
    }

    fn partition(&self) -> &str {
        &self.partition
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
        Ok(self
            .identities(kind)
            .await?
            .iter()
            .find(|i| i.unique_id() == unique_id)
            .map(|i| i.name().to_string()))
    }

    async fn fresh_facts(&self, kind: PrincipalKind, name: &str) -> PortResult<Option<Facts>> {
        match self.fresh(kind, name).await {
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
                id: KeyId::Id(id.to_string()),
                active: meta.status() == Some(&StatusType::Active),
                created_at: to_chrono("ListAccessKeys", created)?,
                last_used_at: None,
            });
        }
        Ok(keys)
    }

    async fn apply(&self, principal: &Principal, effect: &Effect) -> PortResult<()> {
        if *effect != Effect::TakeSnapshot {
            self.writable("apply")?;
        }
        match effect {
            Effect::PutTags { tags } => self.tag(principal, tags).await,
            Effect::RemoveTags { keys } => self.untag(principal, keys).await,
            // Boxed: these futures are large, and the engine's whole step is one future.
            Effect::PutQuarantinePolicy => Box::pin(self.put_quarantine(principal)).await,
            Effect::DeleteQuarantinePolicy => Box::pin(self.delete_quarantine(principal)).await,
            Effect::DeactivateKeys { key_ids } => self.set_keys(principal, key_ids, false).await,
            Effect::ReactivateKeys { key_ids } => self.set_keys(principal, key_ids, true).await,
            // Not an IAM change: the engine calls `snapshot` and stores the result itself.
            Effect::TakeSnapshot => Ok(()),
            Effect::DeletePrincipal => {
                match Box::pin(self.tear_down(principal)).await {
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
        self.take_snapshot(principal, now).await
    }

    async fn restore(&self, snapshot: &Snapshot) -> PortResult<RestoreOutcome> {
        self.writable("restore")?;
        self.restore_snapshot(snapshot).await
    }
}

// ---- helpers ------------------------------------------------------------------------------------

/// An SDK date as chrono. Outside chrono's range (±262,000 years) it is a malformed response.
pub(crate) fn to_chrono(op: &str, t: &aws_smithy_types::DateTime) -> PortResult<Timestamp> {
    DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())
        .ok_or_else(|| PortError::new(ErrorKind::Permanent, op, format!("date out of range: {t}")))
}

fn status(active: bool) -> StatusType {
    if active {
        StatusType::Active
    } else {
        StatusType::Inactive
    }
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
                    id: KeyId::Slot(1),
                    active: true,
                    created_at: t("2021-03-01T00:00:00Z"),
                    last_used_at: Some(t("2024-05-01T10:00:00Z")),
                },
                AccessKey {
                    id: KeyId::Slot(2),
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
