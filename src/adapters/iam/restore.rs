//! `restore`: a deleted principal recreated from its snapshot, as far as IAM allows, and never
//! onto an identity that is someone else's.
//!
//! `CreateRole`/`CreateUser` is the existence check: it either creates the identity, with the
//! restore marker tag ([`RESTORED_FROM_TAG`]) in the same call, or fails with
//! `EntityAlreadyExists` having changed nothing. Only then is the holder of the name read and
//! judged ([`Snapshot::holder`]): an earlier, interrupted restore of this snapshot is finished,
//! anyone else's identity is left alone ([`RestoreOutcome::NameTaken`]). A look before creating
//! would leave a window in which someone else could take the name; a marker written after
//! creating would leave one in which our own identity could not be recognised.

use std::future::Future;

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::Tag;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use tracing::{info, warn};

use super::twin::Identity;
use super::{classify, missing, AwsIam};
use crate::domain::{
    Holder, NameHolder, Principal, PrincipalKind, RestoreOutcome, RestoreReport, Snapshot,
};
use crate::ports::{ErrorKind, PortError, PortResult};

mod credentials;

/// Who the restore goes on with.
enum Target {
    /// Created by this restore or an earlier, interrupted one of the same snapshot.
    Created(String),
    /// The snapshot's own identity, never deleted after all: its own access goes back on it.
    Original(String),
    /// Anyone else's: left alone.
    Stranger(String),
}

impl AwsIam {
    pub(super) async fn restore_snapshot(&self, s: &Snapshot) -> PortResult<RestoreOutcome> {
        let mut outcome = self.restore_identity(s).await?;
        match &mut outcome {
            RestoreOutcome::Restored(report) => {
                report.not_restored.extend(s.not_restorable());
                info!(
                    principal = %s.principal.arn(),
                    unique_id = report.unique_id.as_deref().unwrap_or(""),
                    restored = report.restored.len(),
                    not_restored = report.not_restored.len(),
                    "restore done"
                );
            }
            RestoreOutcome::NameTaken { unique_id } => warn!(
                principal = %s.principal.arn(),
                holder = %unique_id,
                "restore refused: the name belongs to another identity; nothing changed"
            ),
        }
        Ok(outcome)
    }

    /// A creating call: `Some(output)` if it created, `None` if IAM answered
    /// `EntityAlreadyExists` (nothing changed; the caller finds out whose it is).
    async fn create<T, E, F, Fut>(
        &self,
        p: &Principal,
        op: &'static str,
        f: F,
    ) -> PortResult<Option<T>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        info!(principal = %p.arn(), operation = op, "IAM change");
        self.retry
            .run(|| {
                let fut = f();
                async move {
                    match fut.await {
                        Ok(out) => Ok(Some(out)),
                        Err(e) if e.code() == Some("EntityAlreadyExists") => Ok(None),
                        Err(e) => Err(classify(op, e)),
                    }
                }
            })
            .await
    }

    /// After `EntityAlreadyExists`: whose the name is.
    async fn target(&self, s: &Snapshot) -> PortResult<Target> {
        let p = &s.principal;
        let read = self.identity(p.kind, &p.name).await.map(|i| {
            let created = i.created_at().ok();
            (i.unique_id().to_string(), i.path().to_string(), created)
        });
        let (unique_id, path, created_at) = match read {
            Ok(found) => found,
            // Deleted since, or IAM's eventual consistency: nothing was changed; try again.
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Err(PortError::new(
                    ErrorKind::Transient,
                    &e.operation,
                    format!(
                        "IAM said {} exists but cannot find it now; nothing was changed, run restore again",
                        p.arn()
                    ),
                ))
            }
            Err(e) => return Err(e),
        };
        let holder = NameHolder {
            unique_id,
            tags: self.listed_tags(p).await?,
            path,
            created_at,
        };
        Ok(match s.holder(&holder) {
            Holder::EarlierRestore => {
                info!(principal = %p.arn(), unique_id = %holder.unique_id, "finishing an earlier restore");
                Target::Created(holder.unique_id)
            }
            Holder::Original => Target::Original(holder.unique_id),
            Holder::Stranger => Target::Stranger(holder.unique_id),
        })
    }

    /// `CreateRole`/`CreateUser` with all it can set, then what both kinds have, then what only
    /// a role or only a user has.
    async fn restore_identity(&self, s: &Snapshot) -> PortResult<RestoreOutcome> {
        let p = &s.principal;
        let target = match self.create_identity(s).await? {
            Some(unique_id) => Target::Created(unique_id),
            None => self.target(s).await?,
        };
        let mut report = match begin_report(s, target) {
            Ok(report) => report,
            Err(unique_id) => return Ok(RestoreOutcome::NameTaken { unique_id }),
        };

        for (policy, doc) in s.owner_inline_policies() {
            // Putting a policy replaces a same-named one: a second run changes nothing.
            self.put_inline(p, policy, doc).await?;
            report.restored.push(format!("inline policy {policy}"));
        }
        for arn in s.owner_attached_policies() {
            // Attaching an attached policy is a no-op in IAM.
            let done = self.attach(p, arn).await;
            optional(
                &mut report,
                done,
                format!("managed policy {arn}"),
                "the policy no longer exists",
            )?;
        }
        match p.kind {
            PrincipalKind::Role => {
                for profile in &s.instance_profiles {
                    self.restore_instance_profile(p, profile, &mut report)
                        .await?;
                }
            }
            PrincipalKind::User => {
                let c = &self.client;
                for group in &s.groups {
                    // Adding a member twice is a no-op in IAM.
                    let done = self
                        .change(p, "AddUserToGroup", group, || {
                            c.add_user_to_group()
                                .user_name(&p.name)
                                .group_name(group)
                                .send()
                        })
                        .await;
                    let line = format!("group {group}");
                    optional(&mut report, done, line, "the group no longer exists")?;
                }
                self.restore_public_credentials(s, &mut report).await?;
            }
        }
        Ok(RestoreOutcome::Restored(report))
    }

    /// The identity's new unique id, or `None` if IAM answered `EntityAlreadyExists`. Boundary
    /// and tags go into the creating call itself, so the identity never exists without its
    /// boundary or the restore marker, even for a moment.
    async fn create_identity(&self, s: &Snapshot) -> PortResult<Option<String>> {
        let p = &s.principal;
        let (c, name, boundary) = (&self.client, p.name.as_str(), &s.permissions_boundary);
        let (op, noun) = match p.kind {
            PrincipalKind::Role => ("CreateRole", "Role"),
            PrincipalKind::User => ("CreateUser", "User"),
        };
        let created = match p.kind {
            PrincipalKind::Role => {
                let trust = s.trust_policy.as_deref().ok_or_else(|| {
                    PortError::new(
                        ErrorKind::Permanent,
                        op,
                        format!("the snapshot of {} has no trust policy", p.arn()),
                    )
                })?;
                let request = c
                    .create_role()
                    .role_name(name)
                    .path(&p.path)
                    .assume_role_policy_document(trust)
                    .set_permissions_boundary(boundary.clone())
                    .set_description(s.description.clone())
                    .set_max_session_duration(s.max_session_duration)
                    .set_tags(sdk_tags(s, op)?);
                let out = self.create(p, op, || request.clone().send()).await?;
                out.map(|o| o.role.map(Identity::Role))
            }
            PrincipalKind::User => {
                let request = c
                    .create_user()
                    .user_name(name)
                    .path(&p.path)
                    .set_permissions_boundary(boundary.clone())
                    .set_tags(sdk_tags(s, op)?);
                let out = self.create(p, op, || request.clone().send()).await?;
                out.map(|o| o.user.map(Identity::User))
            }
        };
        match created {
            Some(Some(identity)) => Ok(Some(identity.unique_id().to_string())),
            Some(None) => Err(missing(op, noun)),
            None => Ok(None),
        }
    }

    /// An instance profile holds at most one role and IAM answers `LimitExceeded` to adding the
    /// same role twice, so look first: already in it counts as restored; another role in it, or
    /// the profile gone, goes to `not_restored` (creating or emptying profiles is not ours to do).
    async fn restore_instance_profile(
        &self,
        p: &Principal,
        profile: &str,
        report: &mut RestoreReport,
    ) -> PortResult<()> {
        let c = &self.client;
        let role = p.name.as_str();
        let line = format!("instance profile {profile}");
        let out = match self
            .call("GetInstanceProfile", || {
                c.get_instance_profile()
                    .instance_profile_name(profile)
                    .send()
            })
            .await
        {
            Ok(out) => out,
            Err(e) if e.kind == ErrorKind::NotFound => {
                report
                    .not_restored
                    .push(format!("{line}: the instance profile no longer exists"));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let holders: Vec<&str> = out
            .instance_profile()
            .map(|ip| ip.roles().iter().map(|r| r.role_name()).collect())
            .unwrap_or_default();
        if holders.contains(&role) {
            report.restored.push(line);
            return Ok(());
        }
        if let Some(other) = holders.first() {
            report.not_restored.push(format!(
                "{line}: it now holds role {other} (an instance profile holds one role)"
            ));
            return Ok(());
        }
        let done = self
            .change(p, "AddRoleToInstanceProfile", profile, || {
                c.add_role_to_instance_profile()
                    .instance_profile_name(profile)
                    .role_name(role)
                    .send()
            })
            .await;
        optional(report, done, line, "the instance profile no longer exists")
    }
}

/// The first lines of a report: the principal and, if this restore (or an interrupted one of
/// the same snapshot) created it, what `CreateRole`/`CreateUser` set with it. A stranger's
/// identity gets no report: its unique id, for the refusal.
fn begin_report(s: &Snapshot, target: Target) -> Result<RestoreReport, String> {
    let p = &s.principal;
    let kind = p.kind.as_str();
    let mut report = RestoreReport::default();
    match target {
        Target::Original(id) => {
            report.restored.push(format!(
                "{kind} {}: not recreated, the original identity (unique id {id}) still exists",
                p.path_and_name()
            ));
            report.unique_id = Some(id);
        }
        Target::Created(id) => {
            report
                .restored
                .push(format!("{kind} {}", p.path_and_name()));
            if s.trust_policy.is_some() {
                report.restored.push("trust policy".to_string());
            }
            if let Some(d) = &s.description {
                report.restored.push(format!("description {d:?}"));
            }
            if let Some(secs) = s.max_session_duration {
                report
                    .restored
                    .push(format!("max session duration {secs} s"));
            }
            if let Some(b) = &s.permissions_boundary {
                report.restored.push(format!("permissions boundary {b}"));
            }
            for k in s.owner_tags().keys() {
                report.restored.push(format!("tag {k}"));
            }
            report.unique_id = Some(id);
        }
        Target::Stranger(id) => return Err(id),
    }
    Ok(report)
}

/// The tags `CreateRole`/`CreateUser` sets, as SDK tags; `None` for none.
fn sdk_tags(s: &Snapshot, op: &str) -> PortResult<Option<Vec<Tag>>> {
    let tags = s
        .creation_tags()
        .into_iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| PortError::new(ErrorKind::Permanent, op, e.to_string()))
        })
        .collect::<PortResult<Vec<Tag>>>()?;
    Ok((!tags.is_empty()).then_some(tags))
}

/// An optional piece of a restore: done, or gone (`NotFound`, e.g. a deleted group) and listed
/// with why. Any other error is returned: the restore is incomplete and a rerun finishes it.
fn optional(
    report: &mut RestoreReport,
    done: PortResult<()>,
    line: String,
    why_missing: &str,
) -> PortResult<()> {
    match done {
        Ok(()) => report.restored.push(line),
        Err(e) if e.kind == ErrorKind::NotFound => {
            warn!(target = %line, error = %e, "not restored");
            report.not_restored.push(format!("{line}: {why_missing}"));
        }
        Err(e) => return Err(e),
    }
    Ok(())
}
