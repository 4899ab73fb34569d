//! `AwsIam::restore` against the moto emulator: a principal is dumped through the SDK, snapshotted,
//! deleted with the real teardown, restored, and dumped again. Each test has an account of its own.

use std::collections::BTreeMap;

use aws_sdk_iam::types::StatusType;
use chrono::{DateTime, Utc};
use dormant::domain::quarantine::{
    self, LEGACY_QUARANTINE_POLICY_DOCUMENT, QUARANTINE_POLICY_NAME,
};
use dormant::domain::tag::RESTORED_FROM_TAG;
use dormant::domain::{Effect, Principal, RestoreOutcome, RestoreReport, Snapshot};
use dormant::ports::{ErrorKind, Iam};
use serde_json::{json, Value};

use crate::support::account::{
    ctx, decode_document, is_no_such_entity, tag_map, Ctx, ALLOW_S3, TRUST,
};
use crate::support::emulator::{emulator, Fault};

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
    /// What restore should bring back: all but dormant's stage tags and quarantine policy, plus
    /// the restore marker (`dormant restore` removes it once the record is saved).
    fn restored_from(mut self, snap: &Snapshot) -> Self {
        self.tags.retain(|k, _| !is_stage_tag(k));
        self.tags
            .insert(RESTORED_FROM_TAG.to_string(), snap.restore_marker());
        self.inline.remove(QUARANTINE_POLICY_NAME);
        let own = quarantine::policy_arn_for(&snap.principal);
        self.attached.retain(|arn| *arn != own);
        self
    }
}

impl UserDump {
    fn restored_from(mut self, snap: &Snapshot) -> Self {
        self.tags.retain(|k, _| !is_stage_tag(k));
        self.tags
            .insert(RESTORED_FROM_TAG.to_string(), snap.restore_marker());
        self.inline.remove(QUARANTINE_POLICY_NAME);
        let own = quarantine::policy_arn_for(&snap.principal);
        self.attached.retain(|arn| *arn != own);
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

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

impl Ctx {
    async fn dump_role(&self, name: &str) -> RoleDump {
        let c = &self.sdk;
        let out = c.get_role().role_name(name).send().await.unwrap();
        let role = out.role().unwrap();
        let tags = c.list_role_tags().role_name(name).send().await.unwrap();
        let inline = self.role_policy_documents(name).await;
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
            trust_policy: decode_document(role.assume_role_policy_document().unwrap()),
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
            inline.insert(policy.clone(), decode_document(doc.policy_document()));
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
        emulator().count_requests(&self.id, operation)
    }

    /// A restore that is expected to go ahead.
    async fn restore(&self, snap: &Snapshot) -> RestoreReport {
        match self.iam.restore(snap).await.unwrap() {
            RestoreOutcome::Restored(report) => report,
            other => panic!("restore of {} refused: {other:?}", snap.principal.arn()),
        }
    }
}

/// A role with everything a snapshot holds, quarantined and stage-tagged the way dormant leaves
/// it before deletion. Returns the managed policy ARNs (boundary, attached).
async fn loaded_role(cx: &Ctx, name: &str) -> (String, String) {
    let boundary = cx
        .create_policy(&format!("{name}-boundary"), ALLOW_S3)
        .await;
    let attached = cx
        .create_policy(&format!("{name}-attached"), ALLOW_S3)
        .await;
    let mut tags = vec![
        ("team", "data"),
        ("cost-center", "42"),
        ("dormant:exempt-reason", "kept: the owner's tag"),
    ];
    tags.extend_from_slice(STAGE_TAGS);
    cx.described_role(name, &boundary, &tags).await;
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
    cx.attach_role_policy(name, &attached).await;
    // And by this version.
    cx.attach_role_policy(name, &cx.quarantine_arn()).await;
    cx.instance_profile_with(&format!("{name}-ip"), name).await;
    (boundary, attached)
}

/// A user with two keys, a console password, two groups, inline and attached policies,
/// quarantined and stage-tagged (whole-user, key-level and password-level tags).
async fn loaded_user(cx: &Ctx, name: &str) -> (Vec<String>, String) {
    cx.create_user("/people/", name, &[]).await;
    let keys = vec![cx.create_key(name).await, cx.create_key(name).await];
    let key_stage = format!("dormant:key:{}:stage", keys[0]);
    let mut tags = vec![
        ("owner", "dana@example.com"),
        ("dormant:exempt-reason", "kept: the owner's tag"),
        (key_stage.as_str(), "noticed"),
        ("dormant:password:stage", "noticed"),
    ];
    tags.extend_from_slice(STAGE_TAGS);
    cx.tag_user(name, &tags).await;
    cx.console(name).await;
    for group in ["readers", "writers"] {
        cx.group_with(group, name).await;
    }
    cx.put_user_policy(name, "inline", ALLOW_S3).await;
    let quarantine = quarantine::document(&Principal::user(&cx.id, "/people/", name));
    cx.put_user_policy(name, QUARANTINE_POLICY_NAME, &quarantine)
        .await;
    let attached = cx.create_policy("user-attached", ALLOW_S3).await;
    cx.attach_user_policy(name, &attached).await;
    cx.attach_user_policy(name, &cx.quarantine_arn()).await;
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
    let principal = Principal::role(&cx.id, "/app/", "keeper");
    let snap = cx.snapshot_and_delete(&principal).await;

    let report = cx.restore(&snap).await;

    let after = cx.dump_role("keeper").await;
    let expected = before.clone().restored_from(&snap);
    assert_eq!(after, expected);
    // A new identity (IAM never reuses unique ids), and the report says which.
    let new_id = cx.role_id("keeper").await;
    assert_eq!(report.unique_id.as_deref(), Some(new_id.as_str()));
    assert_ne!(snap.unique_id, Some(new_id));
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
    let principal = Principal::user(&cx.id, "/people/", "dana");
    let snap = cx.snapshot_and_delete(&principal).await;
    assert_eq!(sorted(snap.access_key_ids.clone()), sorted(keys.clone()));

    let report = cx.restore(&snap).await;

    let after = cx.dump_user("dana").await;
    assert_eq!(after, before.clone().restored_from(&snap));
    assert_eq!(
        after.tags.keys().cloned().collect::<Vec<_>>(),
        vec![
            "dormant:exempt-reason".to_string(),
            RESTORED_FROM_TAG.to_string(),
            "owner".to_string()
        ]
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
    let role = Principal::role(&cx.id, "/app/", "twice");
    let user = Principal::user(&cx.id, "/people/", "dana");
    let role_snap = cx.snapshot_and_delete(&role).await;
    let user_snap = cx.snapshot_and_delete(&user).await;

    let first_role = cx.restore(&role_snap).await;
    let first_user = cx.restore(&user_snap).await;
    let role_dump = cx.dump_role("twice").await;
    let user_dump = cx.dump_user("dana").await;
    let adds = cx.count("AddRoleToInstanceProfile");

    let second_role = cx.restore(&role_snap).await;
    let second_user = cx.restore(&user_snap).await;

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
/// dormant's own (its managed policy, and an earlier version's inline one) is not.
#[tokio::test]
async fn an_operators_policy_named_like_the_quarantine_is_restored_and_dormants_is_not() {
    let cx = ctx().await;
    cx.create_role("/", "shared-name", &[]).await;
    cx.put_role_policy("shared-name", QUARANTINE_POLICY_NAME, ALLOW_S3)
        .await;
    let principal = Principal::role(&cx.id, "/", "shared-name");
    cx.put_role_policy(
        "shared-name",
        "DormantQuarantineDenyAll-2",
        &quarantine::document(&principal),
    )
    .await;
    cx.iam
        .apply(&principal, &Effect::PutQuarantinePolicy)
        .await
        .unwrap();
    let before = cx.dump_role("shared-name").await;
    assert_eq!(
        before.inline.keys().collect::<Vec<_>>(),
        [QUARANTINE_POLICY_NAME, "DormantQuarantineDenyAll-2"]
    );
    assert_eq!(
        cx.attached_role_policies("shared-name").await,
        [cx.quarantine_arn()]
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
    assert!(
        cx.attached_role_policies("shared-name").await.is_empty(),
        "restore does not bring dormant's quarantine back"
    );
}

#[tokio::test]
async fn missing_pieces_are_listed_and_the_rest_restored() {
    let cx = ctx().await;
    let (keys, _) = loaded_user(&cx, "dana").await;
    let user = Principal::user(&cx.id, "/people/", "dana");
    let snap = cx.snapshot_and_delete(&user).await;
    // Meanwhile someone deleted a group.
    cx.sdk
        .delete_group()
        .group_name("writers")
        .send()
        .await
        .unwrap();

    let report = cx.restore(&snap).await;

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
    cx.instance_profile_with("keeper-ip2", "keeper").await;
    let role = Principal::role(&cx.id, "/app/", "keeper");
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
    cx.create_role("/", "usurper", &[]).await;
    cx.sdk
        .add_role_to_instance_profile()
        .instance_profile_name("keeper-ip2")
        .role_name("usurper")
        .send()
        .await
        .unwrap();

    let report = cx.restore(&snap).await;

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
    let role = Principal::role(&cx.id, "/app/", "keeper");
    let snap = cx.snapshot_and_delete(&role).await;

    // Throttling is retried; AccessDenied is an error.
    emu.inject_fault(&cx.id, "iam", "CreateRole", Fault::Throttle, 2);
    emu.inject_fault(&cx.id, "iam", "PutRolePolicy", Fault::AccessDenied, 1);
    let err = cx.iam.restore(&snap).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
    assert_eq!(err.operation, "PutRolePolicy");
    assert_eq!(cx.count("CreateRole"), 1 + 3, "setup + two throttled + one");
    // The role exists, half restored.
    cx.sdk.get_role().role_name("keeper").send().await.unwrap();

    let first_id = cx.role_id("keeper").await;

    // The rerun finds the role the first run created (by its marker) and finishes it.
    let report = cx.restore(&snap).await;
    assert!(report.not_restored.is_empty(), "{report:#?}");
    assert_eq!(cx.dump_role("keeper").await, before.restored_from(&snap));
    assert_eq!(report.unique_id, Some(first_id.clone()));
    assert_eq!(cx.role_id("keeper").await, first_id);
}

#[tokio::test]
async fn a_snapshot_without_anything_optional_restores_a_bare_role() {
    let cx = ctx().await;
    let snap = Snapshot {
        principal: Principal::role(&cx.id, "/", "bare"),
        unique_id: None,
        taken_at: at("2025-01-01T00:00:00Z"),
        created_at: None,
        tags: BTreeMap::new(),
        description: None,
        max_session_duration: None,
        permissions_boundary: None,
        trust_policy: Some(TRUST.to_string()),
        inline_policies: BTreeMap::new(),
        attached_policy_arns: vec![],
        groups: vec![],
        instance_profiles: vec![],
        access_key_ids: vec![],
        had_login_profile: false,
        ssh_public_keys: vec![],
        signing_certificates: vec![],
        service_specific_credentials: vec![],
        mfa_devices: vec![],
    };
    let report = cx.restore(&snap).await;
    assert_eq!(
        report,
        RestoreReport {
            unique_id: Some(cx.role_id("bare").await),
            restored: vec!["role /bare".to_string(), "trust policy".to_string()],
            not_restored: vec![],
        }
    );
    let dump = cx.dump_role("bare").await;
    assert_eq!(
        dump.trust_policy,
        serde_json::from_str::<Value>(TRUST).unwrap()
    );
    // Only the marker (a snapshot from before unique ids were recorded says "unknown").
    assert_eq!(
        dump.tags.into_iter().collect::<Vec<_>>(),
        vec![(
            RESTORED_FROM_TAG.to_string(),
            "unknown@2025-01-01T00:00:00.000000Z".to_string()
        )]
    );

    // A role cannot be created without a trust policy: an error, not a guess.
    let mut broken = snap.clone();
    broken.principal = Principal::role(&cx.id, "/", "broken");
    broken.trust_policy = None;
    let err = cx.iam.restore(&broken).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
}

// ---- someone else's identity under the old name ------------------------------------------------

/// The calls since the last `clear_requests` that could have changed IAM, with their HTTP status.
fn mutations(cx: &Ctx) -> Vec<(String, i64)> {
    const READS: &[&str] = &["Get", "List"];
    emulator()
        .requests(&cx.id)
        .into_iter()
        .filter(|r| r["service"] == "iam")
        .map(|r| {
            (
                r["operation"].as_str().unwrap_or("").to_string(),
                r["status"].as_i64().unwrap_or(0),
            )
        })
        .filter(|(op, _)| !READS.iter().any(|p| op.starts_with(p)))
        .collect()
}

/// A role dormant deleted, and a role of the same name that someone else created afterwards, with
/// its own path, trust, tags and policy, and even a marker from some other restore: restore must
/// not hand the deleted role's policies and instance profile to it.
#[tokio::test]
async fn a_same_named_role_created_by_someone_else_is_left_untouched() {
    let cx = ctx().await;
    loaded_role(&cx, "keeper").await;
    let role = Principal::role(&cx.id, "/app/", "keeper");
    let snap = cx.snapshot_and_delete(&role).await;
    cx.create_role(
        "/other/",
        "keeper",
        &[
            ("team", "stranger"),
            (RESTORED_FROM_TAG, "AROAOTHER@2024-01-01T00:00:00.000000Z"),
        ],
    )
    .await;
    cx.put_role_policy("keeper", "own", ALLOW_S3).await;
    let stranger = cx.dump_role("keeper").await;
    let stranger_id = cx.role_id("keeper").await;
    emulator().clear_requests(&cx.id);

    let outcome = cx.iam.restore(&snap).await.unwrap();

    assert_eq!(
        outcome,
        RestoreOutcome::NameTaken {
            unique_id: stranger_id.clone()
        }
    );
    assert_eq!(cx.dump_role("keeper").await, stranger);
    assert_eq!(cx.role_id("keeper").await, stranger_id);
    // One attempt to create, refused by IAM; nothing else.
    let changes = mutations(&cx);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].0, "CreateRole");
    assert_ne!(changes[0].1, 200, "{changes:?}");
    let ip = cx
        .sdk
        .get_instance_profile()
        .instance_profile_name("keeper-ip")
        .send()
        .await
        .unwrap();
    assert!(ip.instance_profile().unwrap().roles().is_empty());
}

#[tokio::test]
async fn a_same_named_user_created_by_someone_else_is_left_untouched() {
    let cx = ctx().await;
    loaded_user(&cx, "dana").await;
    cx.sdk
        .upload_ssh_public_key()
        .user_name("dana")
        .ssh_public_key_body(SSH_A)
        .send()
        .await
        .unwrap();
    let user = Principal::user(&cx.id, "/people/", "dana");
    let snap = cx.snapshot_and_delete(&user).await;
    // Another Dana, with the old owner's tag copied over.
    cx.create_user("/", "dana", &[("owner", "dana@example.com")])
        .await;
    let stranger = cx.dump_user("dana").await;
    let stranger_id = cx.user_id("dana").await;
    emulator().clear_requests(&cx.id);

    let outcome = cx.iam.restore(&snap).await.unwrap();

    assert_eq!(
        outcome,
        RestoreOutcome::NameTaken {
            unique_id: stranger_id
        }
    );
    assert_eq!(cx.dump_user("dana").await, stranger);
    assert!(stranger.groups.is_empty() && stranger.inline.is_empty());
    let keys = cx
        .sdk
        .list_ssh_public_keys()
        .user_name("dana")
        .send()
        .await
        .unwrap();
    assert!(keys.ssh_public_keys().is_empty());
    let changes = mutations(&cx);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].0, "CreateUser");
}

/// A snapshot of a role that is still there (its teardown stopped after removing the policies):
/// the same unique id, so it is the role's own access that goes back, on the same role.
#[tokio::test]
async fn the_original_identity_gets_its_own_access_back() {
    let cx = ctx().await;
    let (_, attached) = loaded_role(&cx, "keeper").await;
    let role = Principal::role(&cx.id, "/app/", "keeper");
    let snap = cx
        .iam
        .snapshot(&role, at("2025-01-01T00:00:00Z"))
        .await
        .unwrap();
    let id = cx.role_id("keeper").await;
    assert_eq!(snap.unique_id.as_deref(), Some(id.as_str()));
    cx.sdk
        .delete_role_policy()
        .role_name("keeper")
        .policy_name("data-access")
        .send()
        .await
        .unwrap();
    cx.sdk
        .detach_role_policy()
        .role_name("keeper")
        .policy_arn(&attached)
        .send()
        .await
        .unwrap();

    let report = cx.restore(&snap).await;

    assert_eq!(report.unique_id.as_deref(), Some(id.as_str()));
    assert_eq!(cx.role_id("keeper").await, id);
    assert_eq!(
        report.restored[0],
        format!(
            "role /app/keeper: not recreated, the original identity (unique id {id}) still exists"
        )
    );
    let after = cx.dump_role("keeper").await;
    assert!(after.inline.contains_key("data-access"));
    // dormant's quarantine, still on the half-deleted role, is the ladder's to release.
    assert_eq!(after.attached, vec![cx.quarantine_arn(), attached]);
}

// ---- credentials: public material back, secrets named -----------------------------------------

const SSH_A: &str = include_str!("fixtures/credentials/ssh-a.pub");
const SSH_B: &str = include_str!("fixtures/credentials/ssh-b.pub");
const CERT_A: &str = include_str!("fixtures/credentials/signing-a.pem");
const CERT_B: &str = include_str!("fixtures/credentials/signing-b.pem");

impl Ctx {
    /// The user's SSH keys and signing certificates as body (trimmed) → active.
    async fn public_credentials(
        &self,
        user: &str,
    ) -> (BTreeMap<String, bool>, BTreeMap<String, bool>) {
        let c = &self.sdk;
        let mut keys = BTreeMap::new();
        let listed = c
            .list_ssh_public_keys()
            .user_name(user)
            .send()
            .await
            .unwrap();
        for k in listed.ssh_public_keys() {
            let got = c
                .get_ssh_public_key()
                .user_name(user)
                .ssh_public_key_id(k.ssh_public_key_id())
                .encoding(aws_sdk_iam::types::EncodingType::Ssh)
                .send()
                .await
                .unwrap();
            let key = got.ssh_public_key().unwrap();
            keys.insert(
                key.ssh_public_key_body().trim().to_string(),
                key.status() == &StatusType::Active,
            );
        }
        let certs = c
            .list_signing_certificates()
            .user_name(user)
            .send()
            .await
            .unwrap()
            .certificates()
            .iter()
            .map(|cert| {
                (
                    cert.certificate_body().trim().to_string(),
                    cert.status() == &StatusType::Active,
                )
            })
            .collect();
        (keys, certs)
    }

    /// Uploads an SSH key and a certificate, each inactive when `active` is false; their ids.
    async fn upload_pair(
        &self,
        user: &str,
        ssh: &str,
        cert: &str,
        active: bool,
    ) -> (String, String) {
        let status = if active {
            StatusType::Active
        } else {
            StatusType::Inactive
        };
        let key = self
            .sdk
            .upload_ssh_public_key()
            .user_name(user)
            .ssh_public_key_body(ssh)
            .send()
            .await
            .unwrap()
            .ssh_public_key()
            .unwrap()
            .ssh_public_key_id()
            .to_string();
        let cert = self
            .sdk
            .upload_signing_certificate()
            .user_name(user)
            .certificate_body(cert)
            .send()
            .await
            .unwrap()
            .certificate()
            .unwrap()
            .certificate_id()
            .to_string();
        self.sdk
            .update_ssh_public_key()
            .user_name(user)
            .ssh_public_key_id(&key)
            .status(status.clone())
            .send()
            .await
            .unwrap();
        self.sdk
            .update_signing_certificate()
            .user_name(user)
            .certificate_id(&cert)
            .status(status)
            .send()
            .await
            .unwrap();
        (key, cert)
    }
}

#[tokio::test]
async fn ssh_keys_and_signing_certificates_come_back_with_their_status_and_secrets_are_named() {
    let cx = ctx().await;
    let emu = emulator();
    let (access_keys, _) = loaded_user(&cx, "dana").await;
    let (ssh_a, cert_a) = cx.upload_pair("dana", SSH_A, CERT_A, true).await;
    let (ssh_b, cert_b) = cx.upload_pair("dana", SSH_B, CERT_B, false).await;
    let serial = cx
        .sdk
        .create_virtual_mfa_device()
        .virtual_mfa_device_name("dana-phone")
        .send()
        .await
        .unwrap()
        .virtual_mfa_device()
        .unwrap()
        .serial_number()
        .to_string();
    cx.sdk
        .enable_mfa_device()
        .user_name("dana")
        .serial_number(&serial)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .unwrap();
    let before = cx.public_credentials("dana").await;
    assert_eq!(before.0.len(), 2);
    let user = Principal::user(&cx.id, "/people/", "dana");
    let mut snap = cx.snapshot_and_delete(&user).await;
    assert_eq!(snap.ssh_public_keys.len(), 2);
    assert_eq!(snap.signing_certificates.len(), 2);
    assert_eq!(snap.mfa_devices, vec![serial.clone()]);
    // moto has no ListServiceSpecificCredentials (see the mocked test below): add one by hand.
    assert!(snap.service_specific_credentials.is_empty());
    snap.service_specific_credentials
        .push(dormant::domain::ServiceCredential {
            id: "ACCAEXAMPLE1".into(),
            service: "codecommit.amazonaws.com".into(),
        });

    // Interrupted after the inactive key went up (IAM uploads keys active), before its status.
    emu.inject_fault(&cx.id, "iam", "UpdateSSHPublicKey", Fault::AccessDenied, 1);
    let err = cx.iam.restore(&snap).await.unwrap_err();
    assert_eq!(err.operation, "UpdateSSHPublicKey", "{err}");
    let report = cx.restore(&snap).await;

    assert_eq!(cx.public_credentials("dana").await, before);
    assert_eq!(
        cx.count("UploadSSHPublicKey"),
        2 + 2,
        "setup + once each, no duplicate"
    );
    assert_eq!(cx.count("UploadSigningCertificate"), 2 + 2);
    for (line, old) in [
        ("SSH public key", &ssh_a),
        ("SSH public key", &ssh_b),
        ("signing certificate", &cert_a),
        ("signing certificate", &cert_b),
    ] {
        let prefix = format!("{line} {old} as ");
        assert!(
            report.restored.iter().any(|l| l.starts_with(&prefix)),
            "no {prefix:?} in {report:#?}"
        );
    }
    assert!(report.restored.iter().any(
        |l| l.starts_with(&format!("SSH public key {ssh_b} as ")) && l.ends_with(" (inactive)")
    ));
    let mut expected: Vec<String> = access_keys
        .iter()
        .map(|id| format!("access key {id}: secret keys cannot be recreated; create a new key"))
        .collect();
    expected.push("console password: cannot be recreated; set a new one".to_string());
    expected.push("service-specific credential ACCAEXAMPLE1 (codecommit.amazonaws.com): its password cannot be recovered; create a new one".to_string());
    expected.push(format!(
        "MFA device {serial}: its secret seed cannot be read back; enrol a device again"
    ));
    assert_eq!(sorted(report.not_restored.clone()), sorted(expected));
    let devices = cx
        .sdk
        .list_mfa_devices()
        .user_name("dana")
        .send()
        .await
        .unwrap();
    assert!(devices.mfa_devices().is_empty(), "no device is made up");

    // Once more: everything is found, nothing uploaded or changed.
    let again = cx.restore(&snap).await;
    assert_eq!(again, report);
    assert_eq!(cx.count("UploadSSHPublicKey"), 4);
    assert_eq!(cx.count("UploadSigningCertificate"), 4);
    assert_eq!(cx.public_credentials("dana").await, before);
}

/// IAM refusing the material (here a certificate it cannot parse) costs that line, not the
/// restore: it is named in `not_restored` with IAM's reason.
#[tokio::test]
async fn material_iam_refuses_is_named_and_the_rest_restored() {
    let cx = ctx().await;
    loaded_user(&cx, "dana").await;
    cx.upload_pair("dana", SSH_A, CERT_A, true).await;
    let user = Principal::user(&cx.id, "/people/", "dana");
    let mut snap = cx.snapshot_and_delete(&user).await;
    snap.signing_certificates[0].body =
        "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n".into();
    let old = snap.signing_certificates[0].id.clone();

    let report = cx.restore(&snap).await;

    assert!(
        report.not_restored.iter().any(|l| l.starts_with(&format!(
            "signing certificate {old}: IAM refused the upload (MalformedCertificate"
        ))),
        "{report:#?}"
    );
    assert!(report
        .restored
        .iter()
        .any(|l| l.starts_with("SSH public key ")));
    assert_eq!(cx.public_credentials("dana").await.0.len(), 1);
}

/// `dormant permissions` is what the CDK grants: a snapshot must use no action that the
/// `TakeSnapshot` effect does not declare, or it is AccessDenied in AWS.
#[tokio::test]
async fn a_snapshot_calls_only_the_actions_take_snapshot_declares() {
    let cx = ctx().await;
    loaded_user(&cx, "dana").await;
    cx.upload_pair("dana", SSH_A, CERT_A, false).await;
    loaded_role(&cx, "keeper").await;
    for p in [
        Principal::user(&cx.id, "/people/", "dana"),
        Principal::role(&cx.id, "/app/", "keeper"),
    ] {
        emulator().clear_requests(&cx.id);
        cx.iam
            .snapshot(&p, at("2025-01-01T00:00:00Z"))
            .await
            .unwrap();
        let declared = Effect::TakeSnapshot.permissions(p.kind);
        let called: std::collections::BTreeSet<String> = emulator()
            .requests(&cx.id)
            .into_iter()
            .map(|r| format!("iam:{}", r["operation"].as_str().unwrap()))
            .collect();
        let undeclared: Vec<_> = called
            .iter()
            .filter(|a| !declared.contains(&a.as_str()))
            .collect();
        assert!(undeclared.is_empty(), "{}: {undeclared:?}", p.arn());
        if p.kind == dormant::domain::PrincipalKind::User {
            for a in [
                "iam:GetSSHPublicKey",
                "iam:ListSigningCertificates",
                "iam:ListMFADevices",
            ] {
                assert!(called.contains(a), "{a} was called: {called:?}");
            }
        }
    }
}

// ---- service-specific credentials: aws-smithy-mocks, because moto lacks the API ------------------
//
// moto answers `ListServiceSpecificCredentials` with an HTTP 500 HTML page (not implemented), so
// the snapshot's reading of them is tested against mocked IAM answers instead.

mod mocked {
    use aws_sdk_iam::config::retry::RetryConfig;
    use aws_sdk_iam::operation::get_login_profile::GetLoginProfileOutput;
    use aws_sdk_iam::operation::get_user::GetUserOutput;
    use aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput;
    use aws_sdk_iam::operation::list_attached_user_policies::ListAttachedUserPoliciesOutput;
    use aws_sdk_iam::operation::list_groups_for_user::ListGroupsForUserOutput;
    use aws_sdk_iam::operation::list_mfa_devices::ListMfaDevicesOutput;
    use aws_sdk_iam::operation::list_service_specific_credentials::{
        ListServiceSpecificCredentialsError, ListServiceSpecificCredentialsOutput,
    };
    use aws_sdk_iam::operation::list_signing_certificates::ListSigningCertificatesOutput;
    use aws_sdk_iam::operation::list_ssh_public_keys::ListSshPublicKeysOutput;
    use aws_sdk_iam::operation::list_user_policies::ListUserPoliciesOutput;
    use aws_sdk_iam::operation::list_user_tags::ListUserTagsOutput;
    use aws_sdk_iam::types::{LoginProfile, ServiceSpecificCredentialMetadata, StatusType, User};
    use aws_sdk_iam::Client;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;
    use aws_smithy_types::DateTime as SdkTime;
    use dormant::adapters::iam::AwsIam;
    use dormant::adapters::retry::RetryPolicy;
    use dormant::domain::{Principal, ServiceCredential};
    use dormant::ports::{ErrorKind, Iam};

    use super::at;

    const ACCOUNT: &str = "111122223333";

    /// Every read of a user's snapshot, answered for a bare user with a console password, plus
    /// `credentials` for `ListServiceSpecificCredentials`.
    fn iam(credentials: Rule) -> AwsIam {
        let rules = [
            mock!(Client::get_user).then_output(|| {
                GetUserOutput::builder()
                    .user(
                        User::builder()
                            .path("/")
                            .user_name("dana")
                            .user_id("AIDAEXAMPLEEXAMPLE01")
                            .arn(format!("arn:aws:iam::{ACCOUNT}:user/dana"))
                            .create_date(SdkTime::from_secs(1_600_000_000))
                            .build()
                            .unwrap(),
                    )
                    .build()
            }),
            mock!(Client::list_user_policies).then_output(|| {
                ListUserPoliciesOutput::builder()
                    .set_policy_names(Some(vec![]))
                    .build()
                    .unwrap()
            }),
            mock!(Client::list_attached_user_policies)
                .then_output(|| ListAttachedUserPoliciesOutput::builder().build()),
            mock!(Client::list_groups_for_user).then_output(|| {
                ListGroupsForUserOutput::builder()
                    .set_groups(Some(vec![]))
                    .build()
                    .unwrap()
            }),
            mock!(Client::list_user_tags).then_output(|| {
                ListUserTagsOutput::builder()
                    .set_tags(Some(vec![]))
                    .build()
                    .unwrap()
            }),
            mock!(Client::list_access_keys).then_output(|| {
                ListAccessKeysOutput::builder()
                    .set_access_key_metadata(Some(vec![]))
                    .build()
                    .unwrap()
            }),
            mock!(Client::get_login_profile).then_output(|| {
                GetLoginProfileOutput::builder()
                    .login_profile(
                        LoginProfile::builder()
                            .user_name("dana")
                            .create_date(SdkTime::from_secs(1_600_000_000))
                            .build()
                            .unwrap(),
                    )
                    .build()
            }),
            mock!(Client::list_ssh_public_keys)
                .then_output(|| ListSshPublicKeysOutput::builder().build()),
            mock!(Client::list_signing_certificates).then_output(|| {
                ListSigningCertificatesOutput::builder()
                    .set_certificates(Some(vec![]))
                    .build()
                    .unwrap()
            }),
            mock!(Client::list_mfa_devices).then_output(|| {
                ListMfaDevicesOutput::builder()
                    .set_mfa_devices(Some(vec![]))
                    .build()
                    .unwrap()
            }),
            credentials,
        ];
        let refs: Vec<&Rule> = rules.iter().collect();
        let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &refs, |c| c
            .retry_config(RetryConfig::disabled()));
        AwsIam::new(client, ACCOUNT, RetryPolicy::fast())
    }

    fn credential(id: &str, service: &str) -> ServiceSpecificCredentialMetadata {
        ServiceSpecificCredentialMetadata::builder()
            .user_name("dana")
            .status(StatusType::Active)
            .service_user_name(format!("dana-at-{ACCOUNT}"))
            .create_date(SdkTime::from_secs(1_600_000_000))
            .service_specific_credential_id(id)
            .service_name(service)
            .build()
            .unwrap()
    }

    fn dana() -> Principal {
        Principal::user(ACCOUNT, "/", "dana")
    }

    #[tokio::test]
    async fn the_snapshot_records_service_specific_credentials_and_restore_names_them() {
        let listing = mock!(Client::list_service_specific_credentials)
            .match_requests(|r| r.user_name() == Some("dana"))
            .then_output(|| {
                ListServiceSpecificCredentialsOutput::builder()
                    .service_specific_credentials(credential(
                        "ACCAEXAMPLE1",
                        "codecommit.amazonaws.com",
                    ))
                    .service_specific_credentials(credential(
                        "ACCAEXAMPLE2",
                        "cassandra.amazonaws.com",
                    ))
                    .build()
            });
        let snap = iam(listing)
            .snapshot(&dana(), at("2025-01-01T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(
            snap.service_specific_credentials,
            vec![
                ServiceCredential {
                    id: "ACCAEXAMPLE1".into(),
                    service: "codecommit.amazonaws.com".into()
                },
                ServiceCredential {
                    id: "ACCAEXAMPLE2".into(),
                    service: "cassandra.amazonaws.com".into()
                },
            ]
        );
        assert_eq!(snap.unique_id.as_deref(), Some("AIDAEXAMPLEEXAMPLE01"));
        assert_eq!(
            snap.not_restorable(),
            vec![
                "console password: cannot be recreated; set a new one",
                "service-specific credential ACCAEXAMPLE1 (codecommit.amazonaws.com): its password cannot be recovered; create a new one",
                "service-specific credential ACCAEXAMPLE2 (cassandra.amazonaws.com): its password cannot be recovered; create a new one",
            ]
        );
    }

    /// An endpoint without the API (moto: HTTP 500, an HTML page, no error code) counts as "none",
    /// as in the teardown; in AWS the API exists and `DeleteUser` refuses a user that still has
    /// such credentials.
    #[tokio::test]
    async fn an_endpoint_without_the_api_gives_a_snapshot_without_them() {
        let listing = mock!(Client::list_service_specific_credentials).then_http_response(|| {
            let mut r = HttpResponse::new(
                StatusCode::try_from(500).unwrap(),
                SdkBody::from("<!doctype html><title>500 Internal Server Error</title>"),
            );
            r.headers_mut()
                .insert("content-type", "text/html; charset=utf-8");
            r
        });
        let snap = iam(listing)
            .snapshot(&dana(), at("2025-01-01T00:00:00Z"))
            .await
            .unwrap();
        assert!(snap.service_specific_credentials.is_empty());
        assert!(snap.had_login_profile);
    }

    /// A coded error is not "none": the snapshot fails (and no delete may follow it).
    #[tokio::test]
    async fn access_denied_on_the_listing_fails_the_snapshot() {
        let listing = mock!(Client::list_service_specific_credentials).then_error(|| {
            ListServiceSpecificCredentialsError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform iam:ListServiceSpecificCredentials")
                    .build(),
            )
        });
        let err = iam(listing)
            .snapshot(&dana(), at("2025-01-01T00:00:00Z"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
        assert_eq!(err.operation, "ListServiceSpecificCredentials");
    }
}
