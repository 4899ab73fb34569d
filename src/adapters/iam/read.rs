//! Reads: the bulk read (`GetAccountAuthorizationDetails` + the credential report) and a fresh
//! read of one principal, turned into [`Facts`], and the listings the other parts share.

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

    pub(super) async fn fresh_role(&self, name: &str) -> PortResult<Facts> {
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

    pub(super) async fn fresh_user(&self, name: &str) -> PortResult<Facts> {
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

    pub(super) async fn role_policy_names(&self, role: &str) -> PortResult<Vec<String>> {
        let c = &self.client;
        self.paged(
            "ListRolePolicies",
            |m| c.list_role_policies().role_name(role).set_marker(m).send(),
            |o| (o.policy_names, next_marker(o.is_truncated, o.marker)),
        )
        .await
    }

    pub(super) async fn user_policy_names(&self, user: &str) -> PortResult<Vec<String>> {
        let c = &self.client;
        self.paged(
            "ListUserPolicies",
            |m| c.list_user_policies().user_name(user).set_marker(m).send(),
            |o| (o.policy_names, next_marker(o.is_truncated, o.marker)),
        )
        .await
    }

    pub(super) async fn role_attached_arns(&self, role: &str) -> PortResult<Vec<String>> {
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

    pub(super) async fn user_attached_arns(&self, user: &str) -> PortResult<Vec<String>> {
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
                (names, next_marker(o.is_truncated, o.marker))
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
                (names, next_marker(o.is_truncated, o.marker))
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
            |o| (o.access_key_metadata, next_marker(o.is_truncated, o.marker)),
        )
        .await
    }

    pub(super) async fn user_tags(&self, user: &str) -> PortResult<BTreeMap<String, String>> {
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

    pub(super) async fn role_tags(&self, role: &str) -> PortResult<BTreeMap<String, String>> {
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
    pub(super) async fn service_specific_credentials(
        &self,
        user: &str,
    ) -> PortResult<Vec<ServiceCredential>> {
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
}
