//! dormant's quarantine policy in IAM: found by its name and recognised by its document, so that
//! an operator's inline policy that happens to carry the name is never overwritten or deleted.

use aws_sdk_iam::types::PolicyDetail;
use tracing::{info, warn};

use super::{decode_document, AwsIam};
use crate::adapters::{ErrorKind, PortError, PortResult};
use crate::domain::quarantine::{self, is_quarantine_name, QUARANTINE_POLICY_NAMES};
use crate::domain::Principal;

impl AwsIam {
    /// One inline policy's document (URL-decoded), `None` when there is no such policy.
    async fn inline_document_if_any(
        &self,
        p: &Principal,
        policy: &str,
    ) -> PortResult<Option<String>> {
        match self.inline_document(p, policy).await {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// For each of dormant's policy names the principal has (of `names`, its inline policies):
    /// the name and whether the policy under it is dormant's.
    pub(super) async fn quarantine_policies(
        &self,
        p: &Principal,
        names: &[String],
    ) -> PortResult<Vec<(String, bool)>> {
        let mut found = Vec::new();
        for name in names.iter().filter(|n| is_quarantine_name(n)) {
            if let Some(doc) = self.inline_document_if_any(p, name).await? {
                found.push((name.clone(), quarantine::is_dormants(p, &doc)));
            }
        }
        Ok(found)
    }

    /// Whether dormant's quarantine policy is attached, on a fresh read of its policy names.
    pub(super) async fn has_own_quarantine(
        &self,
        p: &Principal,
        names: &[String],
    ) -> PortResult<bool> {
        let found = self.quarantine_policies(p, names).await?;
        Ok(found.iter().any(|(_, own)| *own))
    }

    /// Puts dormant's policy under the first of its names that is free, unless dormant's policy is
    /// already there. A name held by a policy dormant did not write is left alone; when both are,
    /// the step fails with nothing changed.
    pub(super) async fn put_quarantine(&self, p: &Principal) -> PortResult<()> {
        let names = self.inline_names(p).await?;
        let found = self.quarantine_policies(p, &names).await?;
        if let Some((name, _)) = found.iter().find(|(_, own)| *own) {
            info!(principal = %p.arn(), policy = %name, "quarantine policy already in place");
            return Ok(());
        }
        let Some(name) = QUARANTINE_POLICY_NAMES
            .iter()
            .find(|n| !found.iter().any(|(f, _)| f == *n))
        else {
            return Err(PortError::new(
                ErrorKind::Permanent,
                "PutRolePolicy/PutUserPolicy",
                format!(
                    "inline policies {} exist on {} and were not written by dormant; dormant \
                     overwrites neither: rename one of them",
                    QUARANTINE_POLICY_NAMES.join(" and "),
                    p.arn()
                ),
            ));
        };
        if let Some((taken, _)) = found.first() {
            warn!(principal = %p.arn(), policy = %taken, "an inline policy dormant did not write has its name; using another");
        }
        let document = quarantine::document(p);
        self.put_inline(p, name, &document).await
    }

    /// Deletes dormant's quarantine policy wherever it is; a policy of the same name that dormant
    /// did not write stays.
    pub(super) async fn delete_quarantine(&self, p: &Principal) -> PortResult<()> {
        let names = match self.inline_names(p).await {
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        for (name, own) in self.quarantine_policies(p, &names).await? {
            if own {
                self.delete_inline(p, &name).await?;
            } else {
                info!(principal = %p.arn(), policy = %name, "not dormant's policy; left in place");
            }
        }
        Ok(())
    }
}

/// Whether a bulk read's inline policies include dormant's quarantine policy (their documents come
/// URL-encoded in `GetAccountAuthorizationDetails`).
pub(super) fn bulk_has_own_quarantine(p: &Principal, policies: &[PolicyDetail]) -> bool {
    policies.iter().any(|d| {
        d.policy_name().is_some_and(is_quarantine_name)
            && d.policy_document()
                .and_then(|doc| decode_document("GetAccountAuthorizationDetails", doc).ok())
                .is_some_and(|doc| quarantine::is_dormants(p, &doc))
    })
}
