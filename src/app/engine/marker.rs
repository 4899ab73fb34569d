//! The user's credentials marker (`dormant:credentials`, docs/design.md, 'Permissions') decided
//! once per user after all its subjects are decided: a subject's own step sees only one read of
//! the user's tags, so two credential ladders ending in one pass each see the other's tag and
//! neither removes the marker; and the tag of a credential deleted outside dormant keeps it
//! forever. Here the user's tags are read again and the stored records say what is still on the
//! ladder.

use tracing::info;

use crate::domain::tag::{self, CREDENTIALS_TAG};
use crate::domain::{Effect, Facts, Outcome, Principal, PrincipalKind, Scope, Subject, Timestamp};
use crate::error::Result;
use crate::ports::{Iam, Store};

use super::super::run::Run;
use super::Engine;

/// Whether [`Engine::settle_credentials_marker`] is worth a fresh read of the user, after a pass
/// over its subjects decided on `facts`: a ladder of the user ended in this run
/// (`ladder_ended`), or the facts show a tag of a credential the user no longer has, or the
/// marker with no credential's tag beside it (left by an earlier version). Anything else costs
/// no further call.
pub(super) fn worth_settling(facts: &Facts, ladder_ended: bool) -> bool {
    let marked = tag::has_credentials_marker(&facts.tags);
    let credential_tags = facts
        .tags
        .keys()
        .any(|k| tag::credential_of_tag(k).is_some());
    facts.principal.kind == PrincipalKind::User
        && ((ladder_ended && credential_tags)
            || (marked && !credential_tags)
            || !orphan_tags(facts).is_empty())
}

/// The progress tags of credentials the user no longer has (deleted outside dormant).
fn orphan_tags(facts: &Facts) -> Vec<String> {
    facts
        .tags
        .keys()
        .filter(|k| match tag::credential_of_tag(k) {
            Some(Scope::AccessKey(id)) => !facts
                .access_keys
                .iter()
                .any(|key| key.id.to_string().eq_ignore_ascii_case(&id)),
            Some(Scope::Password) => facts.login_profile.is_none(),
            Some(Scope::Whole) | None => false,
        })
        .cloned()
        .collect()
}

impl<I: Iam, S: Store> Engine<I, S> {
    /// Removes, on a fresh read of the user, the progress tags of its credentials that no longer
    /// exist, and the credentials marker when no record of the user is on dormant's ladder or has
    /// a step in flight. Audited on the user.
    pub(super) async fn settle_credentials_marker(
        &self,
        run: &Run,
        principal: &Principal,
        now: Timestamp,
    ) -> Result<()> {
        if self.policy.dry_run || !self.mode().writes() || principal.kind != PrincipalKind::User {
            return Ok(());
        }
        let Some(facts) = self
            .iam
            .fresh_facts(principal.kind, &principal.name)
            .await?
        else {
            return Ok(());
        };
        let orphans = orphan_tags(&facts);
        let marked = tag::has_credentials_marker(&facts.tags);
        if orphans.is_empty() && !marked {
            return Ok(());
        }
        let mut keys = orphans.clone();
        let mut said = Vec::new();
        if !orphans.is_empty() {
            said.push(format!(
                "removed the tags of credentials deleted outside dormant: {}",
                orphans.join(", ")
            ));
        }
        if marked {
            let records = self.store.load_principal(principal).await?;
            let busy: Vec<String> = records
                .iter()
                .filter(|r| r.stage.is_on_ladder() || r.pending.is_some())
                .map(|r| r.subject.id())
                .collect();
            if busy.is_empty() {
                keys.push(CREDENTIALS_TAG.to_string());
                said.push(format!(
                    "removed the user's {CREDENTIALS_TAG} marker: no record of the user is on \
                     dormant's ladder or has a step in flight"
                ));
            } else if !orphans.is_empty() {
                said.push(format!(
                    "the user's {CREDENTIALS_TAG} marker kept for {}",
                    busy.join(", ")
                ));
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        self.iam
            .apply(principal, &Effect::RemoveTags { keys })
            .await?;
        let reason = said.join("; ");
        info!(identity = %principal.arn(), %reason, "credentials marker settled");
        let user = Subject::whole(principal.clone());
        self.audit(&user, "untag", Outcome::Done, &reason, run, now)
            .await
    }
}
