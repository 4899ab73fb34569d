//! `AwsIam::restore` against the moto emulator: a principal is dumped through the SDK, snapshotted,
//! deleted with the real teardown, restored, and dumped again. Each test has an account of its own.

mod support;

use std::collections::BTreeMap;

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::Tag;
use aws_sdk_iam::Client;
use chrono::{DateTime, Utc};
use dormant::adapters::iam::AwsIam;
use dormant::adapters::retry::RetryPolicy;
use dormant::domain::quarantine::{
    self, LEGACY_QUARANTINE_POLICY_DOCUMENT, QUARANTINE_POLICY_NAME,
};
use dormant::domain::{Effect, Principal, RestoreReport, Snapshot};
use dormant::ports::{ErrorKind, Iam};
use serde_json::{json, Value};
use support::emulator::{emulator, Fault};

const ALLOW_S3: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// Dormant's own stage tags as the ladder leaves them on a principal about to be deleted, plus an
/// owner's `dormant:exempt-reason` (the owner's, so restored).
const STAGE_TAGS: &[(&str, &str)] = &[
    ("dormant:stage", "pending_delete"),
    ("dormant:next-step", "delete"),
    ("dormant:next-step-at", "2025-01-01T00-00-00Z"),
];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Ctx {
    account: String,
    sdk: Client,
    iam: AwsIam,
}

async fn ctx() -> Ctx {
    let account = emulator().new_account();
    let sdk = Client::new(&emulator().sdk_config_for(&account).await);
    let iam = AwsIam::new(sdk.clone(), account.clone(), RetryPolicy::fast());
    Ctx { account, sdk, iam }
}

/// Everything restorable about a role, read straight from IAM (not through the adapter).
#[derive(Debug, Clone, PartialEq)]
struct RoleDump {
    path: String,
    description: Option<String>,
    max_session_duration: Option<i32>,
    permissions_boundary: Option<String>,
    trust_policy: Value,
    tags: BTreeMap<String, String>,
    inline: BTreeMap<String, Value>,
    attached: Vec<String>,
    instance_profiles: Vec<String>,
}

/// Everything restorable about a user. (moto drops a user's permissions boundary, so it is not
/// compared here; the role test covers boundaries.)
#[derive(Debug, Clone, PartialEq)]
struct UserDump {
    path: String,
    tags: BTreeMap<String, String>,
    inline: BTreeMap<String, Value>,
    attached: Vec<String>,
    groups: Vec<String>,
}

impl RoleDump {
    /// What restore should bring back: all but dormant's stage tags and quarantine policy.
    fn without_dormant(mut self) -> Self {
        self.tags.retain(|k, _| !is_stage_tag(k));
        self.inline.remove(QUARANTINE_POLICY_NAME);
        self
    }
}

impl UserDump {
    fn without_dormant(mut self) -> Self {
        self.tags.retain(|k, _| !is_stage_tag(k));
        self.inline.remove(QUARANTINE_POLICY_NAME);
        self
    }
}

fn is_stage_tag(k: &str) -> bool {
    matches!(
        k,
        "dormant:stage" | "dormant:next-step" | "dormant:next-step-at"
    ) || k.starts_with("dormant:key:")
        || k.starts_with("dormant:password:")
}

fn decode(doc: &str) -> Value {
    let text = percent_encoding::percent_decode_str(doc)
        .decode_utf8()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn sdk_tags(tags: &[(&str, &str)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
        .collect()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn is_no_such_entity<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("NoSuchEntity")
}

impl Ctx {
    async fn create_policy(&self, name: &str) -> String {
        self.sdk
            .create_policy()
            .policy_name(name)
            .policy_document(ALLOW_S3)
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap()
            .arn()
            .unwrap()
            .to_string()
    }

    async fn create_instance_profile(&self, name: &str, role: &str) {
        self.sdk
            .create_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
            .unwrap();
        self.sdk
            .add_role_to_instance_profile()
            .instance_profile_name(name)
            .role_name(role)
            .send()
            .await
            .unwrap();
    }

    async fn put_role_policy(&self, role: &str, name: &str, doc: &str) {
        self.sdk
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(doc)
            .send()
            .await
            .unwrap();
    }

    async fn put_user_policy(&self, user: &str, name: &str, doc: &str) {
        self.sdk
            .put_user_policy()
            .user_name(user)
            .policy_name(name)
            .policy_document(doc)
            .send()
            .await
            .unwrap();
    }

    async fn create_group_with(&self, group: &str, user: &str) {
        self.sdk
            .create_group()
            .group_name(group)
            .send()
            .await
            .unwrap();
        self.sdk
            .add_user_to_group()
            .group_name(group)
            .user_name(user)
            .send()
            .await
            .unwrap();
    }

    async fn create_key(&self, user: &str) -> String {
        self.sdk
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap()
            .access_key()
            .unwrap()
            .access_key_id()
            .to_string()
    }

    async fn dump_role(&self, name: &str) -> RoleDump {
        let c = &self.sdk;
        let out = c.get_role().role_name(name).send().await.unwrap();
        let role = out.role().unwrap();
        let tags = c.list_role_tags().role_name(name).send().await.unwrap();
        let mut inline = BTreeMap::new();
        let names = c.list_role_policies().role_name(name).send().await.unwrap();
        for policy in names.policy_names() {
            let doc = c
                .get_role_policy()
                .role_name(name)
                .policy_name(policy)
                .send()
                .await
                .unwrap();
            inline.insert(policy.clone(), decode(doc.policy_document()));
        }
        let attached = c
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .unwrap();
        let profiles = c
            .list_instance_profiles_for_role()
            .role_name(name)
            .send()
            .await
            .unwrap();
        RoleDump {
            path: role.path().to_string(),
            description: role.description().map(str::to_string),
            max_session_duration: role.max_session_duration(),
            permissions_boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_string),
            trust_policy: decode(role.assume_role_policy_document().unwrap()),
            tags: tag_map(tags.tags()),
            inline,
            attached: sorted(
                attached
                    .attached_policies()
                    .iter()
                    .map(|p| p.policy_arn().unwrap().to_string())
                    .collect(),
            ),
            instance_profiles: sorted(
                profiles
                    .instance_profiles()
                    .iter()
                    .map(|p| p.instance_profile_name().to_string())
                    .collect(),
            ),
        }
    }

    async fn dump_user(&self, name: &str) -> UserDump {
        let c = &self.sdk;
        let out = c.get_user().user_name(name).send().await.unwrap();
        let user = out.user().unwrap();
        let tags = c.list_user_tags().user_name(name).send().await.unwrap();
        let mut inline = BTreeMap::new();
        let names = c.list_user_policies().user_name(name).send().await.unwrap();
        for policy in names.policy_names() {
            let doc = c
                .get_user_policy()
                .user_name(name)
                .policy_name(policy)
                .send()
                .await
                .unwrap();
            inline.insert(policy.clone(), decode(doc.policy_document()));
        }
        let attached = c
            .list_attached_user_policies()
            .user_name(name)
            .send()
            .await
            .unwrap();
        let groups = c
            .list_groups_for_user()
            .user_name(name)
            .send()
            .await
            .unwrap();
        UserDump {
            path: user.path().to_string(),
            tags: tag_map(tags.tags()),
            inline,
            attached: sorted(
                attached
                    .attached_policies()
                    .iter()
                    .map(|p| p.policy_arn().unwrap().to_string())
                    .collect(),
            ),
            groups: sorted(
                groups
                    .groups()
                    .iter()
                    .map(|g| g.group_name().to_string())
                    .collect(),
            ),
        }
    }

    /// Snapshot, then the real teardown; asserts the principal is gone.
    async fn snapshot_and_delete(&self, p: &Principal) -> Snapshot {
        let snap = self
            .iam
            .snapshot(p, at("2025-01-01T00:00:00Z"))
            .await
            .unwrap();
        self.iam.apply(p, &Effect::DeletePrincipal).await.unwrap();
        let gone = match p.kind {
            dormant::domain::PrincipalKind::Role => self
                .sdk
                .get_role()
                .role_name(&p.name)
                .send()
                .await
                .map(drop)
                .map_err(|e| is_no_such_entity(&e.into_service_error())),
            dormant::domain::PrincipalKind::User => self
                .sdk
                .get_user()
                .user_name(&p.name)
                .send()
                .await
                .map(drop)
                .map_err(|e| is_no_such_entity(&e.into_service_error())),
        };
        assert_eq!(gone, Err(true), "{} was not deleted", p.arn());
        snap
    }

    fn count(&self, operation: &str) -> usize {
        emulator().count_requests(&self.account, operation)
    }
}

/// A role with everything a snapshot holds, quarantined and stage-tagged the way dormant leaves
/// it before deletion. Returns the managed policy ARNs (boundary, attached).
async fn loaded_role(cx: &Ctx, name: &str) -> (String, String) {
    let boundary = cx.create_policy(&format!("{name}-boundary")).await;
    let attached = cx.create_policy(&format!("{name}-attached")).await;
    // Spaces, '+', '%' and '/' make the URL-encoding round trip visible.
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "Lambda and CI",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringLike": {"aws:PrincipalTag/team": "a+b %20 c/d"}}
        }]
    });
    let mut tags = vec![
        ("team", "data"),
        ("cost-center", "42"),
        ("dormant:exempt-reason", "kept: the owner's tag"),
    ];
    tags.extend_from_slice(STAGE_TAGS);
    cx.sdk
        .create_role()
        .role_name(name)
        .path("/app/")
        .assume_role_policy_document(trust.to_string())
        .description("Runs the nightly job")
        .max_session_duration(7200)
        .permissions_boundary(&boundary)
        .set_tags(Some(sdk_tags(&tags)))
        .send()
        .await
        .unwrap();
    let inline = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::bucket with space/*"}]});
    cx.put_role_policy(name, "data-access", &inline.to_string())
        .await;
    // Quarantined by a version before policy ownership.
    cx.put_role_policy(
        name,
        QUARANTINE_POLICY_NAME,
        LEGACY_QUARANTINE_POLICY_DOCUMENT,
    )
    .await;
    cx.sdk
        .attach_role_policy()
        .role_name(name)
        .policy_arn(&attached)
        .send()
        .await
        .unwrap();
    cx.create_instance_profile(&format!("{name}-ip"), name)
        .await;
    (boundary, attached)
}

/// A user with two keys, a console password, two groups, inline and attached policies,
/// quarantined and stage-tagged (whole-user, key-level and password-level tags).
async fn loaded_user(cx: &Ctx, name: &str) -> (Vec<String>, String) {
    cx.sdk
        .create_user()
        .user_name(name)
        .path("/people/")
        .send()
        .await
        .unwrap();
    let keys = vec![cx.create_key(name).await, cx.create_key(name).await];
    let key_stage = format!("dormant:key:{}:stage", keys[0]);
    let mut tags = vec![
        ("owner", "dana@example.com"),
        ("dormant:exempt-reason", "kept: the owner's tag"),
        (key_stage.as_str(), "noticed"),
        ("dormant:password:stage", "noticed"),
    ];
    tags.extend_from_slice(STAGE_TAGS);
    cx.sdk
        .tag_user()
        .user_name(name)
        .set_tags(Some(sdk_tags(&tags)))
        .send()
        .await
        .unwrap();
    cx.sdk
        .create_login_profile()
        .user_name(name)
        .password("Correct-Horse-Battery-9")
        .send()
        .await
        .unwrap();
    for group in ["readers", "writers"] {
        cx.create_group_with(group, name).await;
    }
    cx.put_user_policy(name, "inline", ALLOW_S3).await;
    let quarantine = quarantine::document(&Principal::user(&cx.account, "/people/", name));
    cx.put_user_policy(name, QUARANTINE_POLICY_NAME, &quarantine)
        .await;
    let attached = cx.create_policy("user-attached").await;
    cx.sdk
        .attach_user_policy()
        .user_name(name)
        .policy_arn(&attached)
        .send()
        .await
        .unwrap();
    (keys, attached)
}

fn has(lines: &[String], line: &str) -> bool {
    lines.iter().any(|l| l == line)
}

#[tokio::test]
async fn a_deleted_role_comes_back_without_dormants_changes() {
    let cx = ctx().await;
    let (boundary, attached) = loaded_role(&cx, "keeper").await;
    let before = cx.dump_role("keeper").await;
    assert_eq!(before.inline.len(), 2);
    assert_eq!(before.tags.len(), 6);
    let principal = Principal::role(&cx.account, "/app/", "keeper");
    let snap = cx.snapshot_and_delete(&principal).await;

    let report = cx.iam.restore(&snap).await.unwrap();

    let after = cx.dump_role("keeper").await;
    let expected = before.clone().without_dormant();
    assert_eq!(after, expected);
    // The dump really had something to strip, and kept the owner's dormant:exempt-reason.
    assert_ne!(before, expected);
    assert!(after.tags.contains_key("dormant:exempt-reason"));
    assert_eq!(after.max_session_duration, Some(7200));
    assert_eq!(
        after.permissions_boundary.as_deref(),
        Some(boundary.as_str())
    );
    assert_eq!(after.instance_profiles, vec!["keeper-ip".to_string()]);
    assert!(report.not_restored.is_empty(), "{report:#?}");
    for line in [
        "role /app/keeper".to_string(),
        "trust policy".to_string(),
        "inline policy data-access".to_string(),
        format!("managed policy {attached}"),
        format!("permissions boundary {boundary}"),
        "instance profile keeper-ip".to_string(),
        "tag team".to_string(),
        "tag dormant:exempt-reason".to_string(),
    ] {
        assert!(has(&report.restored, &line), "no {line:?} in {report:#?}");
    }
    assert!(
        !report
            .restored
            .iter()
            .any(|l| l.contains(QUARANTINE_POLICY_NAME) || l.starts_with("tag dormant:stage")),
        "{report:#?}"
    );
}

#[tokio::test]
async fn a_deleted_user_comes_back_except_keys_and_password() {
    let cx = ctx().await;
    let (keys, attached) = loaded_user(&cx, "dana").await;
    let before = cx.dump_user("dana").await;
    assert_eq!(before.tags.len(), 7);
    assert_eq!(before.groups.len(), 2);
    let principal = Principal::user(&cx.account, "/people/", "dana");
    let snap = cx.snapshot_and_delete(&principal).await;
    assert_eq!(sorted(snap.access_key_ids.clone()), sorted(keys.clone()));

    let report = cx.iam.restore(&snap).await.unwrap();

    let after = cx.dump_user("dana").await;
    assert_eq!(after, before.clone().without_dormant());
    assert_eq!(
        after.tags.keys().cloned().collect::<Vec<_>>(),
        vec!["dormant:exempt-reason".to_string(), "owner".to_string()]
    );
    let mut expected_missing: Vec<String> = snap
        .access_key_ids
        .iter()
        .map(|id| format!("access key {id}: secret keys cannot be recreated; create a new key"))
        .collect();
    expected_missing.push("console password: cannot be recreated; set a new one".to_string());
    assert_eq!(report.not_restored, expected_missing);
    for line in [
        "user /people/dana".to_string(),
        "inline policy inline".to_string(),
        format!("managed policy {attached}"),
        "group readers".to_string(),
        "group writers".to_string(),
        "tag owner".to_string(),
    ] {
        assert!(has(&report.restored, &line), "no {line:?} in {report:#?}");
    }
    // Nothing of the credentials was invented.
    let listed = cx
        .sdk
        .list_access_keys()
        .user_name("dana")
        .send()
        .await
        .unwrap();
    assert!(listed.access_key_metadata().is_empty());
    let err = cx
        .sdk
        .get_login_profile()
        .user_name("dana")
        .send()
        .await
        .unwrap_err();
    assert!(is_no_such_entity(&err.into_service_error()));
}

#[tokio::test]
async fn restoring_twice_changes_nothing_the_second_time() {
    let cx = ctx().await;
    loaded_role(&cx, "twice").await;
    loaded_user(&cx, "dana").await;
    let role = Principal::role(&cx.account, "/app/", "twice");
    let user = Principal::user(&cx.account, "/people/", "dana");
    let role_snap = cx.snapshot_and_delete(&role).await;
    let user_snap = cx.snapshot_and_delete(&user).await;

    let first_role = cx.iam.restore(&role_snap).await.unwrap();
    let first_user = cx.iam.restore(&user_snap).await.unwrap();
    let role_dump = cx.dump_role("twice").await;
    let user_dump = cx.dump_user("dana").await;
    let adds = cx.count("AddRoleToInstanceProfile");

    let second_role = cx.iam.restore(&role_snap).await.unwrap();
    let second_user = cx.iam.restore(&user_snap).await.unwrap();

    assert_eq!(second_role, first_role);
    assert_eq!(second_user, first_user);
    assert_eq!(cx.dump_role("twice").await, role_dump);
    assert_eq!(cx.dump_user("dana").await, user_dump);
    // Both runs asked to create; the second was told it exists and went on.
    assert_eq!(cx.count("CreateRole"), 2 + 1, "one from the setup");
    assert_eq!(cx.count("CreateUser"), 2 + 1, "one from the setup");
    // The role was seen in its instance profile: no second add (IAM would refuse it).
    assert_eq!(cx.count("AddRoleToInstanceProfile"), adds);
    let ip = cx
        .sdk
        .get_instance_profile()
        .instance_profile_name("twice-ip")
        .send()
        .await
        .unwrap();
    let roles: Vec<_> = ip
        .instance_profile()
        .unwrap()
        .roles()
        .iter()
        .map(|r| r.role_name().to_string())
        .collect();
    assert_eq!(roles, vec!["twice".to_string()]);
    for group in ["readers", "writers"] {
        let g = cx.sdk.get_group().group_name(group).send().await.unwrap();
        let members: Vec<_> = g.users().iter().map(|u| u.user_name()).collect();
        assert_eq!(members, vec!["dana"], "{group}");
    }
}

/// An operator's policy that only shares the quarantine policy's name is the owner's: restored.
/// dormant's own, under the second name, is not.
#[tokio::test]
async fn an_operators_policy_named_like_the_quarantine_is_restored_and_dormants_is_not() {
    let cx = ctx().await;
    cx.sdk
        .create_role()
        .role_name("shared-name")
        .assume_role_policy_document(TRUST_POLICY)
        .send()
        .await
        .unwrap();
    cx.put_role_policy("shared-name", QUARANTINE_POLICY_NAME, ALLOW_S3)
        .await;
    let principal = Principal::role(&cx.account, "/", "shared-name");
    cx.iam
        .apply(&principal, &Effect::PutQuarantinePolicy)
        .await
        .unwrap();
    let before = cx.dump_role("shared-name").await;
    assert_eq!(
        before.inline.keys().collect::<Vec<_>>(),
        [QUARANTINE_POLICY_NAME, "DormantQuarantineDenyAll-2"]
    );

    let snap = cx.snapshot_and_delete(&principal).await;
    cx.iam.restore(&snap).await.unwrap();

    let after = cx.dump_role("shared-name").await;
    assert_eq!(
        after.inline,
        BTreeMap::from([(
            QUARANTINE_POLICY_NAME.to_string(),
            serde_json::from_str::<Value>(ALLOW_S3).unwrap()
        )])
    );
}

#[tokio::test]
async fn missing_pieces_are_listed_and_the_rest_restored() {
    let cx = ctx().await;
    let (keys, _) = loaded_user(&cx, "dana").await;
    let user = Principal::user(&cx.account, "/people/", "dana");
    let snap = cx.snapshot_and_delete(&user).await;
    // Meanwhile someone deleted a group.
    cx.sdk
        .delete_group()
        .group_name("writers")
        .send()
        .await
        .unwrap();

    let report = cx.iam.restore(&snap).await.unwrap();

    let after = cx.dump_user("dana").await;
    assert_eq!(after.groups, vec!["readers".to_string()]);
    assert_eq!(after.inline.keys().collect::<Vec<_>>(), vec!["inline"]);
    assert_eq!(after.attached.len(), 1);
    assert!(has(&report.restored, "group readers"), "{report:#?}");
    assert!(!report.restored.iter().any(|l| l.contains("writers")));
    assert_eq!(
        report.not_restored[0],
        "group writers: the group no longer exists"
    );
    assert_eq!(report.not_restored.len(), 1 + keys.len() + 1);

    // A role whose managed policy and one instance profile were deleted, and whose other
    // instance profile was given to another role.
    let (_, attached) = loaded_role(&cx, "keeper").await;
    cx.create_instance_profile("keeper-ip2", "keeper").await;
    let role = Principal::role(&cx.account, "/app/", "keeper");
    let snap = cx.snapshot_and_delete(&role).await;
    assert_eq!(snap.instance_profiles.len(), 2);
    cx.sdk
        .delete_policy()
        .policy_arn(&attached)
        .send()
        .await
        .unwrap();
    cx.sdk
        .delete_instance_profile()
        .instance_profile_name("keeper-ip")
        .send()
        .await
        .unwrap();
    cx.sdk
        .create_role()
        .role_name("usurper")
        .assume_role_policy_document(TRUST_POLICY)
        .send()
        .await
        .unwrap();
    cx.sdk
        .add_role_to_instance_profile()
        .instance_profile_name("keeper-ip2")
        .role_name("usurper")
        .send()
        .await
        .unwrap();

    let report = cx.iam.restore(&snap).await.unwrap();

    assert_eq!(
        sorted(report.not_restored.clone()),
        sorted(vec![
            format!("managed policy {attached}: the policy no longer exists"),
            "instance profile keeper-ip: the instance profile no longer exists".to_string(),
            "instance profile keeper-ip2: it now holds role usurper (an instance profile holds one role)"
                .to_string(),
        ])
    );
    let after = cx.dump_role("keeper").await;
    assert!(after.attached.is_empty() && after.instance_profiles.is_empty());
    assert_eq!(after.inline.keys().collect::<Vec<_>>(), vec!["data-access"]);
    assert!(has(&report.restored, "role /app/keeper"));
}

#[tokio::test]
async fn a_failing_call_stops_the_restore_and_a_rerun_finishes_it() {
    let cx = ctx().await;
    let emu = emulator();
    loaded_role(&cx, "keeper").await;
    let before = cx.dump_role("keeper").await;
    let role = Principal::role(&cx.account, "/app/", "keeper");
    let snap = cx.snapshot_and_delete(&role).await;

    // Throttling is retried; AccessDenied is an error.
    emu.inject_fault(&cx.account, "iam", "CreateRole", Fault::Throttle, 2);
    emu.inject_fault(&cx.account, "iam", "PutRolePolicy", Fault::AccessDenied, 1);
    let err = cx.iam.restore(&snap).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
    assert_eq!(err.operation, "PutRolePolicy");
    assert_eq!(cx.count("CreateRole"), 1 + 3, "setup + two throttled + one");
    // The role exists, half restored.
    cx.sdk.get_role().role_name("keeper").send().await.unwrap();

    let report = cx.iam.restore(&snap).await.unwrap();
    assert!(report.not_restored.is_empty(), "{report:#?}");
    assert_eq!(cx.dump_role("keeper").await, before.without_dormant());
}

#[tokio::test]
async fn a_snapshot_without_anything_optional_restores_a_bare_role() {
    let cx = ctx().await;
    let snap = Snapshot {
        principal: Principal::role(&cx.account, "/", "bare"),
        taken_at: at("2025-01-01T00:00:00Z"),
        created_at: None,
        tags: BTreeMap::new(),
        description: None,
        max_session_duration: None,
        permissions_boundary: None,
        trust_policy: Some(TRUST_POLICY.to_string()),
        inline_policies: BTreeMap::new(),
        attached_policy_arns: vec![],
        groups: vec![],
        instance_profiles: vec![],
        access_key_ids: vec![],
        had_login_profile: false,
    };
    let report = cx.iam.restore(&snap).await.unwrap();
    assert_eq!(
        report,
        RestoreReport {
            restored: vec!["role /bare".to_string(), "trust policy".to_string()],
            not_restored: vec![],
        }
    );
    let dump = cx.dump_role("bare").await;
    assert_eq!(
        dump.trust_policy,
        serde_json::from_str::<Value>(TRUST_POLICY).unwrap()
    );
    assert!(dump.tags.is_empty());

    // A role cannot be created without a trust policy: an error, not a guess.
    let mut broken = snap.clone();
    broken.principal = Principal::role(&cx.account, "/", "broken");
    broken.trust_policy = None;
    let err = cx.iam.restore(&broken).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
}
