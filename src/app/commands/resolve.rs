//! What the operator typed → the subject it names: by ARN, `role/NAME` or `role/PATH/NAME`; a
//! miss is an error that suggests the nearest name, and a credential that neither exists nor
//! was ever tracked is a miss like a role that does not exist.

use super::*;

impl<I: Iam, S: Store> Engine<I, S> {
    /// Turns what the operator typed into a subject, reading IAM for the path when only a name
    /// was given. A deleted identity is found among the tracked records.
    pub async fn resolve(&self, arg: &IdentityArg) -> Result<(Subject, Option<Facts>)> {
        let (subject, facts) = match arg {
            IdentityArg::Subject(subject) => {
                if subject.principal.account != self.account() {
                    return Err(Error::Usage(format!(
                        "{subject} is in account {}, but dormant is running in account {}",
                        subject.principal.account,
                        self.account()
                    )));
                }
                if subject.principal.partition != self.iam.partition() {
                    return Err(Error::Usage(format!(
                        "{subject} is in partition {}, but account {} is in {}",
                        subject.principal.partition,
                        self.account(),
                        self.iam.partition()
                    )));
                }
                let p = &subject.principal;
                let facts = self
                    .iam
                    .fresh_facts(p.kind, &p.name)
                    .await?
                    .filter(|f| f.principal.path == p.path);
                if facts.is_none() && self.store.load_principal(p).await?.is_empty() {
                    return Err(self.missing(p.kind, Some(&p.path), &p.name).await);
                }
                (subject.clone(), facts)
            }
            IdentityArg::Name {
                kind,
                path,
                name,
                scope,
            } => {
                let facts = self
                    .iam
                    .fresh_facts(*kind, name)
                    .await?
                    .filter(|f| path.as_ref().is_none_or(|p| f.principal.path == *p));
                let principal = match &facts {
                    Some(f) => f.principal.clone(),
                    None => self.tracked_principal(*kind, path.as_deref(), name).await?,
                };
                let subject = Subject {
                    principal,
                    scope: scope.clone(),
                };
                (subject, facts)
            }
        };
        self.check_link_identity(&subject, facts.as_ref())?;
        self.credential_exists(&subject, facts.as_ref()).await?;
        Ok((subject, facts))
    }

    /// For an engine answering a link (`Engine::answering_for`): refuses unless IAM's identity
    /// under the name is the one the link was issued for. Checked on every read a command acts
    /// on; IAM has no condition on a unique id, so the call after the read is the only window.
    pub(crate) fn check_link_identity(
        &self,
        subject: &Subject,
        facts: Option<&Facts>,
    ) -> Result<()> {
        let Some(want) = &self.link_unique_id else {
            return Ok(());
        };
        let now_is = facts.and_then(|f| f.unique_id.as_deref());
        if now_is == Some(want.as_str()) {
            return Ok(());
        }
        Err(Error::Rejected(format!(
            "{subject} is no longer the identity the link was issued for (unique id {want}; IAM \
             now has {}); nothing was changed",
            now_is.unwrap_or("no such identity")
        )))
    }

    async fn tracked_principal(
        &self,
        kind: PrincipalKind,
        path: Option<&str>,
        name: &str,
    ) -> Result<Principal> {
        let found = self
            .store
            .list(self.account(), None)
            .await?
            .into_iter()
            .map(|r| r.subject.principal)
            .find(|p| p.kind == kind && p.name == name && path.is_none_or(|want| p.path == want));
        match found {
            Some(p) => Ok(p),
            None => Err(self.missing(kind, path, name).await),
        }
    }

    /// An access key or password the user does not have, and dormant never tracked, is as
    /// unknown as a role that does not exist (it used to read as a clean, untracked subject).
    async fn credential_exists(&self, subject: &Subject, facts: Option<&Facts>) -> Result<()> {
        let Some(facts) = facts else { return Ok(()) };
        let present = match &subject.scope {
            Scope::Whole => return Ok(()),
            Scope::AccessKey(id) => facts.access_key(id).is_some(),
            Scope::Password => facts.login_profile.is_some(),
        };
        if present || self.store.load(subject).await?.is_some() {
            return Ok(());
        }
        let user = facts.principal.short();
        let has = match &subject.scope {
            Scope::AccessKey(_) if facts.access_keys.is_empty() => {
                format!("{user} has no access keys")
            }
            Scope::AccessKey(_) => format!(
                "{user} has {}",
                facts
                    .access_keys
                    .iter()
                    .map(|k| format!("{user}/key/{}", k.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => format!("{user} has no console password"),
        };
        Err(Error::NotFound(format!(
            "{} does not exist in IAM in account {} and dormant has never tracked it: {has}",
            subject.short(),
            self.account()
        )))
    }

    /// The not-found error for a role or user, with the nearest existing name when one is close.
    async fn missing(&self, kind: PrincipalKind, path: Option<&str>, name: &str) -> Error {
        let typed = match path {
            Some(path) => format!("{}{path}{name}", kind.as_str()),
            None => format!("{}/{name}", kind.as_str()),
        };
        let mut msg = format!(
            "{typed} does not exist in IAM in account {} and dormant has never tracked it",
            self.account()
        );
        if let Some(near) = self.nearest(kind, name).await {
            msg.push_str(&format!("; did you mean {near}?"));
        }
        Error::NotFound(msg)
    }

    /// The closest name of that kind in IAM or among the tracked records. Only on a miss: it
    /// reads IAM in bulk; a failure just means no suggestion.
    async fn nearest(&self, kind: PrincipalKind, name: &str) -> Option<String> {
        let mut known: Vec<Principal> = match self.iam.bulk_facts().await {
            Ok(all) => all.into_iter().map(|f| f.principal).collect(),
            Err(e) => {
                tracing::debug!(error = %e, "no suggestion: IAM could not be listed");
                Vec::new()
            }
        };
        if let Ok(records) = self.store.list(self.account(), None).await {
            known.extend(records.into_iter().map(|r| r.subject.principal));
        }
        nearest_name(kind, name, &known).map(|p| p.short())
    }
}

/// The principal of `kind` whose name is closest to `typed` (case ignored), if it is close
/// enough to be a typo: at most a third of the name's length apart, and at least 2 allowed.
pub(super) fn nearest_name<'a>(
    kind: PrincipalKind,
    typed: &str,
    known: &'a [Principal],
) -> Option<&'a Principal> {
    let typed = typed.to_lowercase();
    let limit = (typed.chars().count() / 3).max(2);
    known
        .iter()
        .filter(|p| p.kind == kind)
        .map(|p| (strsim::levenshtein(&typed, &p.name.to_lowercase()), p))
        .filter(|(d, _)| *d <= limit)
        .min_by(|(a, p), (b, q)| a.cmp(b).then_with(|| p.name.cmp(&q.name)))
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_or_a_change_of_case_finds_the_name_and_a_stranger_finds_none() {
        let known = vec![
            Principal::role("123456789012", "/", "Old-App-Role"),
            Principal::role("123456789012", "/ops/", "deploy"),
            Principal::user("123456789012", "/", "old-app-rol"),
        ];
        let near = |typed| nearest_name(PrincipalKind::Role, typed, &known).map(|p| p.short());
        assert_eq!(near("old-app-role").as_deref(), Some("role/Old-App-Role"));
        assert_eq!(near("Old-Ap-Role").as_deref(), Some("role/Old-App-Role"));
        assert_eq!(near("deplyo").as_deref(), Some("role/ops/deploy"));
        assert_eq!(near("payments-batch"), None);
    }
}
