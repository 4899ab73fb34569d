//! The IAM adapter against the moto emulator: every read and effect, checked by reading IAM
//! state back through the SDK and the emulator's request log. Each test has an account of its own.

use std::collections::BTreeMap;

use aws_sdk_iam::types::StatusType;
use chrono::{DateTime, Utc};
use dormant::domain::quarantine::{
    self, LEGACY_QUARANTINE_POLICY_DOCUMENT, QUARANTINE_POLICY_NAME,
};
use dormant::domain::{Effect, Facts, Principal, PrincipalKind};
use dormant::ports::{ErrorKind, Iam};
use serde_json::{json, Value};

use crate::support::account::{ctx, encoded_trust, is_no_such_entity, Ctx, ALLOW_S3};
use crate::support::emulator::{emulator, Fault};

// A self-signed certificate (moto parses signing certificates) and an SSH public key.
const CERT_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDETCCAfmgAwIBAgIUJlz5JPgzDeWLr/ZUkZbtl0RUkhEwDQYJKoZIhvcNAQEL\n\
BQAwFzEVMBMGA1UEAwwMZG9ybWFudC10ZXN0MCAXDTI2MTEyMzE0MDUyMFoYDzIx\n\
MjYxMDMwMTQwNTIwWjAXMRUwEwYDVQQDDAxkb3JtYW50LXRlc3QwggEiMA0GCSqG\n\
SIb3DQEBAQUAA4IBDwAwggEKAoIBAQCY7zA2LLCtFWalM+/1jeXh0SV3xLbuTjdE\n\
AsXtmG/Nr+GvLw68JFaIAhVgSsN55LacL4mgaOQunP0nfWlRSGab0811gvwc0PGT\n\
5JuTxtonMddqos9zEola5roa1+xYErKDd9YitRhlQiH2On4fZXtL1rxN23ZXIkm7\n\
6dIwShynufTcwKsNqkddpRjqoJT5GygJHQrr2tnwmHbw9yVq7EcL8TkPtu1p7ZGc\n\
MK9BjYnUGP7SlspyDOL9rmFAMDT0JLKxD93nNNbw7GL720hF6sp7VUACDLky067z\n\
pmvm5yGbUOybxQxFtz/dsJ12GVt2U7Js22+FNQyQD2FsSlhAG4rZAgMBAAGjUzBR\n\
MB0GA1UdDgQWBBRpPs7/j5i/6lOnH53imFwhB3uQDTAfBgNVHSMEGDAWgBRpPs7/\n\
j5i/6lOnH53imFwhB3uQDTAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUA\n\
A4IBAQB5SGkiCpKwt68HFdA0470NLozmgheq8MSJyc8Qp8Gjdw5JTE2hQtZ99I//\n\
NLlAKTdKrvWcmCfGN74warqJxTO74fF45WTy88fG2ex8HQqsEq4UUvWV8X/jVSfM\n\
Z5N1pzco7JgDZN2yMWgfPlB0kPBq9YKPs+e4P6M6KPZl6ryv6wkToNfvke7NBVFX\n\
/TdXwyggRBUwsG4xYH/7iaaIGpeSnSESTMSs8xrF6drOQBqHYhBEziOanajf5rRW\n\
ZSAgRfQmD1MeI6wJwylVuxrb+3dpmyum510w58Qybb4VkThWt05YldcAMCwmXui0\n\
RD0WiscMHFNq87ANHb0AB6jR1wsD\n\
-----END CERTIFICATE-----\n\
";
const SSH_PUBLIC_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCzIqDxLjak7Upt0tpDwuf89QLr2yVhk4Bix/fo8I4aSnnIK9RLMA06kLAqqYVCNk0y2aKhtHL0l8Myy6SX0xlyioToIDHZUL9MqTQMc7/7F+YreKAuhOnmzLmfKXZRyBOhMiN3mlYSlDSUfDlZUeCj0eWoEVuhtGs5wFe11JCbVqNX6ITYQCT5XJ//X6km+sO79WSO2GK7fX/EucuV4lkFFjz/enMcNfpVGx1nAhsh3n8STnLslzNcs5ggKsqazAm4kLv1tMgEVOhz7EaFmAeRqJvhFyVDINyxb6QH94IJXdYVJ3jry5h2o3bv6GmN44trRGOQl7m/15I4LLvWx+in dormant-test";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

impl Ctx {
    /// The operations this account sent, in order, with their faults.
    fn operations(&self) -> Vec<(String, Option<String>)> {
        emulator()
            .requests(&self.id)
            .iter()
            .map(|r| {
                (
                    r["operation"].as_str().unwrap().to_string(),
                    r["fault"].as_str().map(str::to_string),
                )
            })
            .collect()
    }
}

fn tag_map(tags: &[(&str, &str)]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn by_name(facts: &[Facts], kind: PrincipalKind, name: &str) -> Facts {
    facts
        .iter()
        .find(|f| f.principal.kind == kind && f.principal.name == name)
        .unwrap_or_else(|| panic!("no {kind:?} {name} in {facts:#?}"))
        .clone()
}

#[tokio::test]
async fn bulk_facts_reads_roles_users_and_the_credential_report() {
    let cx = ctx().await;
    let emu = emulator();
    cx.create_role("/svc/", "app-used", &[("team", "payments")])
        .await;
    cx.create_role("/", "app-idle", &[]).await;
    // Written by a version before policy ownership: still dormant's.
    cx.put_role_policy(
        "app-idle",
        QUARANTINE_POLICY_NAME,
        LEGACY_QUARANTINE_POLICY_DOCUMENT,
    )
    .await;
    emu.backdate_role(
        &cx.id,
        "app-used",
        Some(at("2023-01-02T03:04:05Z")),
        Some(at("2024-06-01T12:00:00Z")),
    );
    emu.backdate_role(&cx.id, "app-idle", Some(at("2022-05-06T00:00:00Z")), None);

    cx.create_user("/people/", "alice", &[("dormant:exempt", "true")])
        .await;
    let k1 = cx.create_key("alice").await;
    let k2 = cx.create_key("alice").await;
    cx.deactivate_key("alice", &k2).await;
    cx.console("alice").await;
    emu.backdate_user(
        &cx.id,
        "alice",
        Some(at("2021-01-01T00:00:00Z")),
        Some(at("2024-02-03T04:05:06Z")),
    );
    emu.backdate_access_key(
        &cx.id,
        "alice",
        &k1,
        Some(at("2021-02-01T00:00:00Z")),
        Some(at("2024-05-05T05:05:05Z")),
    );
    emu.backdate_access_key(&cx.id, "alice", &k2, Some(at("2021-03-01T00:00:00Z")), None);
    cx.create_user("/", "bob", &[]).await;
    emu.backdate_user(&cx.id, "bob", Some(at("2020-07-07T07:07:07Z")), None);

    let facts = cx.iam.bulk_facts().await.unwrap();
    assert_eq!(facts.len(), 4, "{facts:#?}");
    assert!(facts.iter().all(|f| f.bulk && f.principal.account == cx.id));

    let used = by_name(&facts, PrincipalKind::Role, "app-used");
    assert_eq!(used.principal.path, "/svc/");
    assert_eq!(used.created_at, at("2023-01-02T03:04:05Z"));
    assert_eq!(used.role_last_used, Some(at("2024-06-01T12:00:00Z")));
    assert_eq!(used.tags, tag_map(&[("team", "payments")]));
    assert!(!used.has_quarantine_policy);

    let idle = by_name(&facts, PrincipalKind::Role, "app-idle");
    assert_eq!(idle.principal.path, "/");
    assert_eq!(idle.created_at, at("2022-05-06T00:00:00Z"));
    assert_eq!(idle.role_last_used, None);
    assert!(idle.has_quarantine_policy);

    let alice = by_name(&facts, PrincipalKind::User, "alice");
    assert_eq!(alice.principal.path, "/people/");
    assert_eq!(alice.created_at, at("2021-01-01T00:00:00Z"));
    assert_eq!(alice.tags, tag_map(&[("dormant:exempt", "true")]));
    assert_eq!(alice.password_last_used, Some(at("2024-02-03T04:05:06Z")));
    // moto reports the user's CreateDate as password_last_changed.
    assert_eq!(
        alice.login_profile.as_ref().map(|p| p.created_at),
        Some(at("2021-01-01T00:00:00Z"))
    );
    let keys: Vec<_> = alice
        .access_keys
        .iter()
        .map(|k| (k.id.to_string(), k.active, k.created_at, k.last_used_at))
        .collect();
    assert_eq!(
        keys,
        vec![
            (
                "slot1".to_string(),
                true,
                at("2021-02-01T00:00:00Z"),
                Some(at("2024-05-05T05:05:05Z"))
            ),
            ("slot2".to_string(), false, at("2021-03-01T00:00:00Z"), None),
        ]
    );
    assert!(!alice.has_quarantine_policy);

    let bob = by_name(&facts, PrincipalKind::User, "bob");
    assert_eq!(bob.created_at, at("2020-07-07T07:07:07Z"));
    assert!(bob.tags.is_empty());
    assert_eq!(bob.login_profile, None);
    assert_eq!(bob.password_last_used, None);
    assert!(bob.access_keys.is_empty());
}

#[tokio::test]
async fn fresh_facts_reads_real_key_ids_and_dates() {
    let cx = ctx().await;
    let emu = emulator();
    cx.create_user("/ops/", "carol", &[("owner", "carol@example.com")])
        .await;
    let used = cx.create_key("carol").await;
    let never = cx.create_key("carol").await;
    emu.backdate_user(
        &cx.id,
        "carol",
        Some(at("2022-01-01T00:00:00Z")),
        Some(at("2023-03-03T03:03:03Z")),
    );
    emu.backdate_access_key(
        &cx.id,
        "carol",
        &used,
        Some(at("2022-02-02T00:00:00Z")),
        Some(at("2024-03-01T12:00:00Z")),
    );
    emu.backdate_access_key(
        &cx.id,
        "carol",
        &never,
        Some(at("2022-04-04T00:00:00Z")),
        None,
    );

    let facts = cx
        .iam
        .fresh_facts(PrincipalKind::User, "carol")
        .await
        .unwrap()
        .unwrap();
    assert!(!facts.bulk);
    assert_eq!(facts.principal, Principal::user(&cx.id, "/ops/", "carol"));
    assert_eq!(facts.created_at, at("2022-01-01T00:00:00Z"));
    assert_eq!(facts.tags, tag_map(&[("owner", "carol@example.com")]));
    assert_eq!(facts.password_last_used, Some(at("2023-03-03T03:03:03Z")));
    assert_eq!(facts.login_profile, None);
    assert!(!facts.has_quarantine_policy);
    let key = facts.access_key(&used).unwrap();
    assert!(key.active);
    assert_eq!(key.created_at, at("2022-02-02T00:00:00Z"));
    assert_eq!(key.last_used_at, Some(at("2024-03-01T12:00:00Z")));
    let key = facts.access_key(&never).unwrap();
    assert_eq!(key.created_at, at("2022-04-04T00:00:00Z"));
    assert_eq!(key.last_used_at, None);
    assert_eq!(facts.access_keys.len(), 2);

    cx.console("carol").await;
    cx.iam
        .apply(&cx.user_principal("carol"), &Effect::PutQuarantinePolicy)
        .await
        .unwrap();
    let facts = cx
        .iam
        .fresh_facts(PrincipalKind::User, "carol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        facts.login_profile.map(|p| p.created_at),
        Some(at("2022-01-01T00:00:00Z"))
    );
    assert!(facts.has_quarantine_policy);

    cx.create_role("/", "svc", &[("a", "b")]).await;
    emu.backdate_role(
        &cx.id,
        "svc",
        Some(at("2021-01-01T00:00:00Z")),
        Some(at("2024-01-01T00:00:00Z")),
    );
    let role = cx
        .iam
        .fresh_facts(PrincipalKind::Role, "svc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(role.created_at, at("2021-01-01T00:00:00Z"));
    assert_eq!(role.role_last_used, Some(at("2024-01-01T00:00:00Z")));
    assert_eq!(role.tags, tag_map(&[("a", "b")]));
    assert!(!role.bulk && !role.has_quarantine_policy);

    assert_eq!(
        cx.iam
            .fresh_facts(PrincipalKind::User, "nobody")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        cx.iam
            .fresh_facts(PrincipalKind::Role, "nobody")
            .await
            .unwrap(),
        None
    );
}

/// Only the exact deny-all dormant writes (for this principal, or the one earlier versions wrote
/// everywhere) is dormant's: an operator's policy under the name, or dormant's copied from another
/// role, is not, in bulk and fresh reads alike, and release leaves it.
#[tokio::test]
async fn a_policy_named_like_the_quarantine_is_dormants_only_if_dormant_wrote_it() {
    let cx = ctx().await;
    for name in ["own", "legacy", "foreign", "copied"] {
        cx.create_role("/", name, &[]).await;
    }
    cx.iam
        .apply(&cx.role_principal("own"), &Effect::PutQuarantinePolicy)
        .await
        .unwrap();
    let put = |role: &'static str, doc: String| {
        let sdk = cx.sdk.clone();
        async move {
            sdk.put_role_policy()
                .role_name(role)
                .policy_name(QUARANTINE_POLICY_NAME)
                .policy_document(doc)
                .send()
                .await
                .unwrap();
        }
    };
    put("legacy", LEGACY_QUARANTINE_POLICY_DOCUMENT.to_string()).await;
    put(
        "foreign",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#
            .to_string(),
    )
    .await;
    put("copied", quarantine::document(&cx.role_principal("own"))).await;

    let bulk = cx.iam.bulk_facts().await.unwrap();
    for (name, dormants) in [
        ("own", true),
        ("legacy", true),
        ("foreign", false),
        ("copied", false),
    ] {
        let fresh = cx
            .iam
            .fresh_facts(PrincipalKind::Role, name)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fresh.has_quarantine_policy, dormants, "fresh {name}");
        let b = by_name(&bulk, PrincipalKind::Role, name);
        assert_eq!(b.has_quarantine_policy, dormants, "bulk {name}");
        cx.iam
            .apply(&cx.role_principal(name), &Effect::DeleteQuarantinePolicy)
            .await
            .unwrap();
        assert_eq!(
            cx.role_policies(name).await.is_empty(),
            dormants,
            "{name}: release deletes only dormant's"
        );
    }
}

#[tokio::test]
async fn effects_are_idempotent() {
    let cx = ctx().await;
    cx.create_role("/", "r", &[("keep", "1")]).await;
    let role = cx.role_principal("r");

    for _ in 0..2 {
        cx.iam
            .apply(&role, &Effect::PutQuarantinePolicy)
            .await
            .unwrap();
    }
    assert_eq!(
        cx.attached_role_policies("r").await,
        vec![cx.quarantine_arn()]
    );
    assert!(
        cx.role_policies("r").await.is_empty(),
        "no policy document is written"
    );
    assert_eq!(
        count(&cx.operations(), "AttachRolePolicy"),
        1,
        "the second put finds dormant's policy attached"
    );
    for _ in 0..2 {
        cx.iam
            .apply(&role, &Effect::DeleteQuarantinePolicy)
            .await
            .unwrap();
    }
    assert!(cx.attached_role_policies("r").await.is_empty());
    assert_eq!(
        count(&cx.operations(), "DetachRolePolicy"),
        1,
        "the second delete finds nothing of dormant's to detach"
    );

    let tags = vec![
        ("dormant:stage".to_string(), "noticed".to_string()),
        ("dormant:next-step".to_string(), "quarantine".to_string()),
    ];
    for _ in 0..2 {
        cx.iam
            .apply(&role, &Effect::PutTags { tags: tags.clone() })
            .await
            .unwrap();
    }
    assert_eq!(
        cx.role_tags("r").await,
        tag_map(&[
            ("keep", "1"),
            ("dormant:stage", "noticed"),
            ("dormant:next-step", "quarantine")
        ])
    );
    let remove = Effect::RemoveTags {
        keys: vec!["dormant:stage".into(), "dormant:next-step".into()],
    };
    for _ in 0..2 {
        cx.iam.apply(&role, &remove).await.unwrap();
    }
    assert_eq!(cx.role_tags("r").await, tag_map(&[("keep", "1")]));

    // Users: tags, quarantine, keys.
    cx.create_user("/", "u", &[]).await;
    let user = cx.user_principal("u");
    cx.iam
        .apply(&user, &Effect::PutTags { tags: tags.clone() })
        .await
        .unwrap();
    let out = cx.sdk.list_user_tags().user_name("u").send().await.unwrap();
    assert_eq!(out.tags().len(), 2);
    cx.iam.apply(&user, &remove).await.unwrap();
    let out = cx.sdk.list_user_tags().user_name("u").send().await.unwrap();
    assert!(out.tags().is_empty());
    cx.iam
        .apply(&user, &Effect::PutQuarantinePolicy)
        .await
        .unwrap();
    cx.iam
        .apply(&user, &Effect::PutQuarantinePolicy)
        .await
        .unwrap();
    assert_eq!(
        cx.attached_user_policies("u").await,
        vec![cx.quarantine_arn()]
    );
    cx.iam
        .apply(&user, &Effect::DeleteQuarantinePolicy)
        .await
        .unwrap();
    assert!(cx.attached_user_policies("u").await.is_empty());
    cx.iam
        .apply(&user, &Effect::DeleteQuarantinePolicy)
        .await
        .unwrap();
    let out = cx
        .sdk
        .list_user_policies()
        .user_name("u")
        .send()
        .await
        .unwrap();
    assert!(out.policy_names().is_empty());

    let k1 = cx.create_key("u").await;
    let k2 = cx.create_key("u").await;
    let both = vec![k1.clone(), k2.clone()];
    for _ in 0..2 {
        cx.iam
            .apply(
                &user,
                &Effect::DeactivateKeys {
                    key_ids: both.clone(),
                },
            )
            .await
            .unwrap();
    }
    let statuses = cx.key_statuses("u").await;
    assert_eq!(statuses[&k1], StatusType::Inactive);
    assert_eq!(statuses[&k2], StatusType::Inactive);
    cx.iam
        .apply(
            &user,
            &Effect::ReactivateKeys {
                key_ids: vec![k1.clone()],
            },
        )
        .await
        .unwrap();
    let statuses = cx.key_statuses("u").await;
    assert_eq!(statuses[&k1], StatusType::Active);
    assert_eq!(statuses[&k2], StatusType::Inactive);

    // A deleted key cannot come back; that is not an error, and nothing is recreated.
    for _ in 0..2 {
        cx.iam
            .apply(&user, &Effect::DeleteAccessKey { key_id: k2.clone() })
            .await
            .unwrap();
    }
    cx.iam
        .apply(
            &user,
            &Effect::ReactivateKeys {
                key_ids: vec![k2.clone()],
            },
        )
        .await
        .unwrap();
    cx.iam
        .apply(
            &user,
            &Effect::DeactivateKeys {
                key_ids: vec![k2.clone()],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        cx.key_statuses("u")
            .await
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        vec![k1.clone()]
    );

    cx.console("u").await;
    for _ in 0..2 {
        cx.iam
            .apply(&user, &Effect::DeleteLoginProfile)
            .await
            .unwrap();
    }
    let err = cx
        .sdk
        .get_login_profile()
        .user_name("u")
        .send()
        .await
        .unwrap_err();
    assert!(is_no_such_entity(&err.into_service_error()));

    // Not an IAM change: nothing is sent.
    let before = cx.operations().len();
    cx.iam.apply(&user, &Effect::TakeSnapshot).await.unwrap();
    assert_eq!(cx.operations().len(), before);

    // Tagging or quarantining someone who does not exist is an error, not a silent success.
    let ghost = cx.role_principal("ghost");
    let err = cx
        .iam
        .apply(&ghost, &Effect::PutQuarantinePolicy)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    cx.iam
        .apply(&ghost, &Effect::DeleteQuarantinePolicy)
        .await
        .unwrap();
}

/// Position of the last request for `op`; panics if there is none.
fn last(ops: &[(String, Option<String>)], op: &str) -> usize {
    ops.iter()
        .rposition(|(o, _)| o == op)
        .unwrap_or_else(|| panic!("no {op} in {ops:?}"))
}

fn count(ops: &[(String, Option<String>)], op: &str) -> usize {
    ops.iter().filter(|(o, _)| o == op).count()
}

#[tokio::test]
async fn delete_user_tears_everything_down_first() {
    let cx = ctx().await;
    cx.create_user("/", "doomed", &[("x", "y")]).await;
    cx.console("doomed").await;
    cx.create_key("doomed").await;
    cx.create_key("doomed").await;
    cx.sdk
        .upload_signing_certificate()
        .user_name("doomed")
        .certificate_body(CERT_PEM)
        .send()
        .await
        .unwrap();
    cx.sdk
        .upload_ssh_public_key()
        .user_name("doomed")
        .ssh_public_key_body(SSH_PUBLIC_KEY)
        .send()
        .await
        .unwrap();
    let mfa = cx
        .sdk
        .create_virtual_mfa_device()
        .virtual_mfa_device_name("doomed-mfa")
        .send()
        .await
        .unwrap();
    let serial = mfa
        .virtual_mfa_device()
        .unwrap()
        .serial_number()
        .to_string();
    cx.sdk
        .enable_mfa_device()
        .user_name("doomed")
        .serial_number(&serial)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .unwrap();
    cx.put_user_policy("doomed", "inline", ALLOW_S3).await;
    let arn = cx.create_policy("managed", ALLOW_S3).await;
    cx.attach_user_policy("doomed", &arn).await;
    for group in ["g1", "g2"] {
        cx.group_with(group, "doomed").await;
    }
    emulator().clear_requests(&cx.id);

    cx.iam
        .apply(&cx.user_principal("doomed"), &Effect::DeletePrincipal)
        .await
        .unwrap();

    let err = cx
        .sdk
        .get_user()
        .user_name("doomed")
        .send()
        .await
        .unwrap_err();
    assert!(is_no_such_entity(&err.into_service_error()));
    let ops = cx.operations();
    let delete = last(&ops, "DeleteUser");
    assert_eq!(count(&ops, "DeleteUser"), 1, "{ops:?}");
    for (op, n) in [
        ("DeleteLoginProfile", 1),
        ("DeleteAccessKey", 2),
        ("DeleteSigningCertificate", 1),
        ("DeleteSSHPublicKey", 1),
        ("DeactivateMFADevice", 1),
        ("DeleteUserPolicy", 1),
        ("DetachUserPolicy", 1),
        ("RemoveUserFromGroup", 2),
    ] {
        assert_eq!(count(&ops, op), n, "{op} in {ops:?}");
        assert!(last(&ops, op) < delete, "{op} after DeleteUser: {ops:?}");
    }
    // moto does not implement service-specific credentials (HTML 500): asked once, not retried,
    // taken as none.
    assert_eq!(count(&ops, "ListServiceSpecificCredentials"), 1, "{ops:?}");
    assert!(last(&ops, "ListServiceSpecificCredentials") < delete);
    for group in ["g1", "g2"] {
        let g = cx.sdk.get_group().group_name(group).send().await.unwrap();
        assert!(g.users().is_empty(), "{group} still has members");
    }
    // The managed policy itself stays; only the attachment went.
    cx.sdk.get_policy().policy_arn(&arn).send().await.unwrap();

    // Deleting again is done already.
    cx.iam
        .apply(&cx.user_principal("doomed"), &Effect::DeletePrincipal)
        .await
        .unwrap();
}

#[tokio::test]
async fn delete_role_tears_everything_down_first() {
    let cx = ctx().await;
    cx.create_role("/", "doomed", &[]).await;
    cx.instance_profile_with("ip", "doomed").await;
    cx.put_role_policy("doomed", "inline", ALLOW_S3).await;
    let arn = cx.create_policy("managed", ALLOW_S3).await;
    cx.attach_role_policy("doomed", &arn).await;
    emulator().clear_requests(&cx.id);

    cx.iam
        .apply(&cx.role_principal("doomed"), &Effect::DeletePrincipal)
        .await
        .unwrap();

    let err = cx
        .sdk
        .get_role()
        .role_name("doomed")
        .send()
        .await
        .unwrap_err();
    assert!(is_no_such_entity(&err.into_service_error()));
    let ops = cx.operations();
    let delete = last(&ops, "DeleteRole");
    for op in [
        "RemoveRoleFromInstanceProfile",
        "DeleteRolePolicy",
        "DetachRolePolicy",
    ] {
        assert_eq!(count(&ops, op), 1, "{op} in {ops:?}");
        assert!(last(&ops, op) < delete, "{op} after DeleteRole: {ops:?}");
    }
    let ip = cx
        .sdk
        .get_instance_profile()
        .instance_profile_name("ip")
        .send()
        .await
        .unwrap();
    assert!(ip.instance_profile().unwrap().roles().is_empty());

    cx.iam
        .apply(&cx.role_principal("doomed"), &Effect::DeletePrincipal)
        .await
        .unwrap();
}

#[tokio::test]
async fn snapshot_captures_what_restore_needs() {
    let cx = ctx().await;
    let trust = encoded_trust();
    let boundary = cx.create_policy("boundary", ALLOW_S3).await;
    let attached = cx.create_policy("attached", ALLOW_S3).await;
    cx.described_role(
        "keeper",
        &boundary,
        &[("team", "data"), ("cost-center", "42")],
    )
    .await;
    let inline_a = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::bucket with space/*"}]});
    let inline_b: Value = serde_json::from_str(ALLOW_S3).unwrap();
    for (name, doc) in [("a", &inline_a), ("b", &inline_b)] {
        cx.put_role_policy("keeper", name, &doc.to_string()).await;
    }
    cx.attach_role_policy("keeper", &attached).await;
    cx.instance_profile_with("keeper-ip", "keeper").await;
    emulator().backdate_role(&cx.id, "keeper", Some(at("2020-02-02T02:02:02Z")), None);

    let now = at("2025-01-01T00:00:00Z");
    let principal = Principal::role(&cx.id, "/app/", "keeper");
    let snap = cx.iam.snapshot(&principal, now).await.unwrap();
    assert_eq!(snap.principal, principal);
    assert_eq!(snap.taken_at, now);
    assert_eq!(snap.created_at, Some(at("2020-02-02T02:02:02Z")));
    assert_eq!(
        snap.tags,
        tag_map(&[("team", "data"), ("cost-center", "42")])
    );
    assert_eq!(snap.description.as_deref(), Some("Runs the nightly job"));
    assert_eq!(snap.max_session_duration, Some(7200));
    assert_eq!(
        snap.permissions_boundary.as_deref(),
        Some(boundary.as_str())
    );
    let decoded: Value = serde_json::from_str(snap.trust_policy.as_deref().unwrap()).unwrap();
    assert_eq!(decoded, trust);
    assert_eq!(snap.inline_policies.len(), 2);
    assert_eq!(
        serde_json::from_str::<Value>(&snap.inline_policies["a"]).unwrap(),
        inline_a
    );
    assert_eq!(
        serde_json::from_str::<Value>(&snap.inline_policies["b"]).unwrap(),
        inline_b
    );
    assert_eq!(snap.attached_policy_arns, vec![attached.clone()]);
    assert_eq!(snap.instance_profiles, vec!["keeper-ip".to_string()]);
    assert!(snap.groups.is_empty() && snap.access_key_ids.is_empty() && !snap.had_login_profile);

    // A user.
    cx.create_user("/people/", "dana", &[("owner", "dana")])
        .await;
    let key = cx.create_key("dana").await;
    cx.console("dana").await;
    cx.sdk
        .create_group()
        .group_name("readers")
        .send()
        .await
        .unwrap();
    cx.sdk
        .add_user_to_group()
        .group_name("readers")
        .user_name("dana")
        .send()
        .await
        .unwrap();
    cx.sdk
        .put_user_policy()
        .user_name("dana")
        .policy_name("inline")
        .policy_document(inline_a.to_string())
        .send()
        .await
        .unwrap();
    cx.sdk
        .attach_user_policy()
        .user_name("dana")
        .policy_arn(&attached)
        .send()
        .await
        .unwrap();
    let snap = cx
        .iam
        .snapshot(&cx.user_principal("dana"), now)
        .await
        .unwrap();
    assert_eq!(snap.principal, Principal::user(&cx.id, "/people/", "dana"));
    assert_eq!(snap.tags, tag_map(&[("owner", "dana")]));
    assert_eq!(snap.groups, vec!["readers".to_string()]);
    assert_eq!(snap.access_key_ids, vec![key]);
    assert!(snap.had_login_profile);
    assert_eq!(
        serde_json::from_str::<Value>(&snap.inline_policies["inline"]).unwrap(),
        inline_a
    );
    assert_eq!(snap.attached_policy_arns, vec![attached]);
    assert_eq!(snap.trust_policy, None);

    let err = cx
        .iam
        .snapshot(&cx.role_principal("ghost"), now)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    let err = cx
        .iam
        .snapshot(&cx.user_principal("ghost"), now)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn throttling_is_retried_and_access_denied_is_not() {
    let cx = ctx().await;
    let emu = emulator();
    cx.create_role("/", "r", &[]).await;
    cx.create_user("/", "u", &[]).await;
    emu.clear_requests(&cx.id);
    emu.inject_fault(
        &cx.id,
        "iam",
        "GetAccountAuthorizationDetails",
        Fault::Throttle,
        2,
    );

    let facts = cx.iam.bulk_facts().await.unwrap();
    assert_eq!(facts.len(), 2);
    let gaad: Vec<_> = cx
        .operations()
        .into_iter()
        .filter(|(op, _)| op == "GetAccountAuthorizationDetails")
        .map(|(_, fault)| fault)
        .collect();
    assert_eq!(
        gaad,
        vec![
            Some("throttle".to_string()),
            Some("throttle".to_string()),
            None
        ]
    );

    // A 5xx on a mutating call is retried too.
    emu.inject_fault(&cx.id, "iam", "TagRole", Fault::Http500, 1);
    let tags = Effect::PutTags {
        tags: vec![("k".into(), "v".into())],
    };
    cx.iam.apply(&cx.role_principal("r"), &tags).await.unwrap();
    assert_eq!(cx.role_tags("r").await, tag_map(&[("k", "v")]));
    assert_eq!(count(&cx.operations(), "TagRole"), 2);

    emu.inject_fault(&cx.id, "iam", "AttachRolePolicy", Fault::AccessDenied, 1);
    let err = cx
        .iam
        .apply(&cx.role_principal("r"), &Effect::PutQuarantinePolicy)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
    assert_eq!(err.operation, "AttachRolePolicy");
    assert_eq!(emu.count_requests(&cx.id, "AttachRolePolicy"), 1);
    assert!(cx.attached_role_policies("r").await.is_empty());
}
