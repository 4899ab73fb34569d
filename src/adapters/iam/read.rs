//! Reads: the bulk read (`GetAccountAuthorizationDetails` + the credential report) and a fresh
//! read of one principal, turned into [`Facts`], and the listings the other parts share.

use aws_sdk_iam::operation::list_service_specific_credentials::ListServiceSpecificCredentialsOutput;

use super::twin::Identity;
use super::*;

impl AwsIam {
    pub(super) async fn authorization_details(
        &self,
    ) -> PortResult<(Vec<RoleDetail>, Vec<UserDetail>)> {
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
                    let page = (
                        o.role_detail_list.unwrap_or_default(),
                        o.user_detail_list.unwrap_or_default(),
                    );
                    (vec![page], o.is_truncated, o.marker)
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
    pub(super) async fn credential_report(&self) -> PortResult<HashMap<String, ReportRow>> {
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

    pub(super) fn role_facts(&self, r: &RoleDetail) -> PortResult<Option<Facts>> {
        const OP: &str = "GetAccountAuthorizationDetails";
        let (Some(name), Some(created)) = (r.role_name(), r.create_date()) else {
            warn!(role = ?r.role_name(), "role without a name or CreateDate in the bulk read; skipped");
            return Ok(None);
        };
        let principal = self.principal(PrincipalKind::Role, r.path().unwrap_or("/"), name);
        let own = quarantine::bulk_has_own_quarantine(
            &principal,
            r.role_policy_list(),
            r.attached_managed_policies(),
        );
        let mut facts = base_facts(
            principal,
            r.role_id(),
            to_chrono(OP, created)?,
            r.tags(),
            true,
        );
        facts.has_quarantine_policy = own;
        facts.role_last_used = r
            .role_last_used()
            .and_then(|u| u.last_used_date())
            .map(|t| to_chrono(OP, t))
            .transpose()?;
        Ok(Some(facts))
    }

    pub(super) fn user_facts(
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
        let own = quarantine::bulk_has_own_quarantine(
            &principal,
            u.user_policy_list(),
            u.attached_managed_policies(),
        );
        let mut facts = base_facts(principal, u.user_id(), created_at, u.tags(), true);
        facts.has_quarantine_policy = own;
        if let Some(row) = row {
            facts.password_last_used = row.password_last_used;
            facts.login_profile = row.password_enabled.then(|| LoginProfile {
                created_at: row.password_last_changed.unwrap_or(created_at),
            });
            facts.access_keys = row.access_keys.clone();
        }
        Ok(Some(facts))
    }

    // ---- single reads -----------------------------------------------------------------------

    pub(super) async fn fresh(&self, kind: PrincipalKind, name: &str) -> PortResult<Facts> {
        let identity = self.identity(kind, name).await?;
        let principal = self.principal(kind, identity.path(), identity.name());
        let created_at = identity.created_at()?;
        // GetRole/GetUser carry the tags: no ListRoleTags/ListUserTags per re-read.
        let id = Some(identity.unique_id());
        let mut facts = base_facts(principal, id, created_at, identity.tags(), false);
        match &identity {
            Identity::Role(role) => {
                facts.role_last_used = role
                    .role_last_used()
                    .and_then(|u| u.last_used_date())
                    .map(|t| to_chrono("GetRole", t))
                    .transpose()?;
            }
            Identity::User(user) => {
                facts.password_last_used = user
                    .password_last_used()
                    .map(|t| to_chrono("GetUser", t))
                    .transpose()?;
                facts.access_keys = self.fresh_access_keys(name, created_at).await?;
                facts.login_profile = self
                    .login_profile_created(name)
                    .await?
                    .map(|created_at| LoginProfile { created_at });
            }
        }
        let inline = self.inline_names(&facts.principal).await?;
        facts.has_quarantine_policy =
            Box::pin(self.has_own_quarantine(&facts.principal, &inline)).await?;
        Ok(facts)
    }

    /// A user's keys with their last use; a key without `CreateDate` counts from the user's.
    async fn fresh_access_keys(
        &self,
        user: &str,
        created_at: Timestamp,
    ) -> PortResult<Vec<AccessKey>> {
        let c = &self.client;
        let mut access_keys = Vec::new();
        for meta in self.list_access_keys(user).await? {
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
                id: KeyId::Id(id.to_string()),
                active: meta.status() == Some(&StatusType::Active),
                created_at: meta
                    .create_date()
                    .map(|t| to_chrono("ListAccessKeys", t))
                    .transpose()?
                    .unwrap_or(created_at),
                last_used_at: last_used,
            });
        }
        Ok(access_keys)
    }

    /// The login profile's creation date, `None` if the user has no console password.
    pub(super) async fn login_profile_created(&self, user: &str) -> PortResult<Option<Timestamp>> {
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

    pub(super) async fn role_instance_profiles(&self, role: &str) -> PortResult<Vec<String>> {
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
                (names, o.is_truncated, o.marker)
            },
        )
        .await
    }

    pub(super) async fn user_groups(&self, user: &str) -> PortResult<Vec<String>> {
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
                (names, o.is_truncated, o.marker)
            },
        )
        .await
    }

    pub(super) async fn list_access_keys(
        &self,
        user: &str,
    ) -> PortResult<Vec<aws_sdk_iam::types::AccessKeyMetadata>> {
        let c = &self.client;
        self.paged(
            "ListAccessKeys",
            |m| c.list_access_keys().user_name(user).set_marker(m).send(),
            |o| (o.access_key_metadata, o.is_truncated, o.marker),
        )
        .await
    }

    /// Service-specific credentials (CodeCommit, Keyspaces, Bedrock...).
    ///
    /// moto does not implement this listing: it answers HTTP 500 with an HTML page and no error
    /// code (see [`is_unimplemented`]). Such an unparseable answer is taken as "none" with a
    /// warning, so the teardown works against the emulator. This cannot hide credentials in
    /// AWS: there `DeleteUser` refuses (`DeleteConflict`) a user that still has any, and that
    /// error is reported. Coded errors (throttling, AccessDenied...) are handled as usual.
    pub(super) async fn service_specific_credentials(
        &self,
        user: &str,
    ) -> PortResult<Vec<ServiceCredential>> {
        const OP: &str = "ListServiceSpecificCredentials";
        let c = &self.client;
        let fetch = |marker: Option<String>| {
            self.retry.run(move || {
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
        };
        let split = |page: Option<ListServiceSpecificCredentialsOutput>| {
            let Some(o) = page else {
                warn!(user, "ListServiceSpecificCredentials gave an unparseable answer (not implemented by this endpoint?); assuming none");
                return (Vec::new(), None);
            };
            let creds = o
                .service_specific_credentials()
                .iter()
                .map(|s| ServiceCredential {
                    id: s.service_specific_credential_id().to_string(),
                    service: s.service_name().to_string(),
                })
                .collect();
            (creds, next_marker(o.is_truncated, o.marker))
        };
        all_pages(OP, "marker", fetch, split).await
    }
}

/// Facts with what every identity has; the rest is the caller's, by kind.
fn base_facts(
    principal: Principal,
    unique_id: Option<&str>,
    created_at: Timestamp,
    tags: &[Tag],
    bulk: bool,
) -> Facts {
    Facts {
        principal,
        unique_id: unique_id.map(str::to_string),
        created_at,
        tags: tag_map(tags),
        role_last_used: None,
        password_last_used: None,
        login_profile: None,
        access_keys: Vec::new(),
        has_quarantine_policy: false,
        advisor_last_used: None,
        bulk,
    }
}
