//! Owners' answers under the answers function's own role (cdk/lib/answers.ts): an owner's Keep
//! and Undo succeed under `dormant-answers` in both accounts, as the answers function builds its
//! engines (assuming `dormant-answers`, not `dormant-member`, in the member account), and that
//! role is refused what only the controller may do.

use chrono::{DateTime, Duration, Utc};
use dormant::adapters::retry::RetryPolicy;
use dormant::answers::FactoryEngines;
use dormant::app::answer::{AnswerService, HttpRequest, HttpResponse};
use dormant::domain::answer::{sign, AnswerAction, Claims, SigningKey, SigningKeys};
use dormant::domain::PrincipalKind::{self, Role, User};
use dormant::domain::{Principal, Stage, Subject};
use dormant::ports::Store;
use dormant::wiring::{Actor, EngineFactory};

use super::deployment::{admin_iam, enforcing, key_status, session, Deployment};
use crate::support::account::create_policy_with;

pub(super) const OWNER: &str = "owner@example.com";

/// The answers function, as src/bin/lambda.rs builds it: its own role in the controller
/// account, `dormant-answers` assumed in members.
pub(super) struct AnswersFunction {
    pub(super) factory: EngineFactory,
    keys: SigningKeys,
}

impl AnswersFunction {
    pub(super) async fn new(d: &Deployment, config: &dormant::config::Config) -> Self {
        let admin = enforcing().sdk_config_for(&d.controller).await;
        let answers_sdk = session(&admin, &d.controller, "dormant-answers").await;
        let factory =
            EngineFactory::new(config, &answers_sdk, Actor::Controller, RetryPolicy::fast())
                .await
                .unwrap();
        AnswersFunction {
            factory,
            keys: keys(),
        }
    }

    pub(super) fn sign(&self, claims: &Claims) -> String {
        sign(&self.keys.current, claims)
    }

    pub(super) async fn handle(&self, req: &HttpRequest, at: DateTime<Utc>) -> HttpResponse {
        let engines = FactoryEngines::new(&self.factory).assuming("dormant-answers");
        let store = self.factory.store();
        let svc = AnswerService {
            keys: &self.keys,
            slack_secret: None,
            engines: &engines,
            ledger: &store,
        };
        svc.handle(req, at).await
    }
}

fn keys() -> SigningKeys {
    SigningKeys {
        current: SigningKey::new(vec![9u8; 32]).unwrap(),
        previous: None,
    }
}

pub(super) fn post(token: &str, fields: &str) -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        path: "/answer".into(),
        query: String::new(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: format!("t={token}&{fields}").into_bytes(),
    }
}

#[tokio::test]
async fn an_owners_keep_and_undo_succeed_under_the_answers_role_in_both_accounts() {
    let d = Deployment::new().await;
    let mut ids = Vec::new();
    for account in [&d.controller, &d.member] {
        ids.push((account.clone(), "kept", d.role(account, "kept", 200).await));
        ids.push((
            account.clone(),
            "undone",
            d.role(account, "undone", 200).await,
        ));
    }
    let now = Utc::now();
    let config = d.config("", "");
    // The controller takes them up the ladder: all noticed, then quarantined.
    let live = d.assembly(&config).await;
    live.fleet.sweep(now).await;
    let later = now + Duration::days(8);
    live.fleet.tick(later).await;
    d.assert_nothing_refused("notice, quarantine (controller)");

    let answers = AnswersFunction::new(&d, &config).await;
    let store = answers.factory.store();
    let at = later + Duration::hours(1);
    for (account, name, unique_id) in &ids {
        let subject = Subject::whole(Principal::role(account, "/", name));
        let record = store.load(&subject).await.unwrap().unwrap();
        assert_eq!(record.stage, Stage::Quarantined, "{subject}: {record:?}");
        let action = if *name == "kept" {
            AnswerAction::Keep
        } else {
            AnswerAction::Undo
        };
        let claims = Claims::issue(
            action,
            &subject,
            unique_id,
            record.stage,
            OWNER,
            at + Duration::days(7),
            record.stage_since.unwrap_or(now),
        );
        let token = answers.sign(&claims);
        let fields = match action {
            AnswerAction::Keep => "action=keep&reason=still+needed",
            _ => "action=undo",
        };
        let page = answers.handle(&post(&token, fields), at).await;
        d.assert_nothing_refused(&format!("{action:?} of {subject}"));
        assert_eq!(page.status, 200, "{subject}: {}", page.body);
        let after = store.load(&subject).await.unwrap().unwrap();
        let expected = match action {
            AnswerAction::Keep => Stage::Exempt,
            _ => Stage::Released,
        };
        assert_eq!(after.stage, expected, "{subject}: {after:?}");
    }
    // The member account was reached through its answers role, never the member role.
    let answers_calls: Vec<String> = enforcing()
        .requests(&d.member)
        .into_iter()
        .filter_map(|r| r["caller"].as_str().map(str::to_string))
        .filter(|c| c.contains(":assumed-role/dormant-answers/"))
        .collect();
    assert!(
        !answers_calls.is_empty(),
        "no call as the member's answers role"
    );
}

#[tokio::test]
async fn the_answers_role_is_refused_what_only_the_controller_may_do() {
    let d = Deployment::new().await;
    d.role(&d.member, "victim", 200).await;
    let admin = enforcing().sdk_config_for(&d.controller).await;
    let answers = session(&admin, &d.controller, "dormant-answers").await;
    let sts = aws_sdk_sts::Client::new(&answers);
    // It cannot become the controller's member role, ...
    let err = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{}:role/dormant-member", d.member))
        .role_session_name("escalate")
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("AccessDenied"), "{err:?}");
    // ... and under its own role in the member account it can neither quarantine nor delete.
    let in_member = session(
        &enforcing().sdk_config_for(&d.member).await,
        &d.member,
        "dormant-answers",
    )
    .await;
    let iam = aws_sdk_iam::Client::new(&in_member);
    let quarantine = dormant::domain::quarantine::policy_arn("aws", &d.member);
    let err = iam
        .attach_role_policy()
        .role_name("victim")
        .policy_arn(quarantine)
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("AccessDenied"), "{err:?}");
    let err = iam
        .delete_role()
        .role_name("victim")
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("AccessDenied"), "{err:?}");
    // Nor send to the sweep queue in the controller's account.
    let err = aws_sdk_sqs::Client::new(&answers)
        .send_message()
        .queue_url(&d.queue_url)
        .message_body("{}")
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("AccessDenied"), "{err:?}");
    assert!(d.exists(&d.member, "role", "victim").await);
}

/// The answers role serves the internet: it must not be able to put an identity under the
/// guards that open keys and policies (`dormant:stage`, `dormant:credentials`, in any spelling),
/// so what those guards allow reaches only identities dormant itself marked. Nor may it delete an
/// inline policy, detach anything but dormant's quarantine, or tag a protected role.
#[tokio::test]
async fn the_answers_role_cannot_mark_an_identity_or_open_what_it_did_not_close() {
    use aws_sdk_iam::types::StatusType;
    let d = Deployment::new().await;
    let admin = admin_iam(&d.member).await;
    d.role(&d.member, "guarded", 200).await;
    d.role(&d.member, "marked", 200).await;
    d.user(&d.member, "idle-user", 200).await;
    d.role(&d.member, "OrganizationAccountAccessRole", 1).await;
    // A human's inline deny and managed policy on a role dormant marked; a key a human turned off.
    tag_as(&admin, Role, "marked", "dormant:stage", "noticed")
        .await
        .unwrap();
    admin
        .put_role_policy()
        .role_name("marked")
        .policy_name("incident-deny")
        .policy_document(DENY_ALL)
        .send()
        .await
        .unwrap();
    let managed = create_policy_with(&admin, "incident-managed-deny", DENY_ALL).await;
    admin
        .attach_role_policy()
        .role_name("marked")
        .policy_arn(&managed)
        .send()
        .await
        .unwrap();
    let key = admin
        .list_access_keys()
        .user_name("idle-user")
        .send()
        .await
        .unwrap()
        .access_key_metadata()[0]
        .access_key_id()
        .unwrap()
        .to_string();
    admin
        .update_access_key()
        .user_name("idle-user")
        .access_key_id(&key)
        .status(StatusType::Inactive)
        .send()
        .await
        .unwrap();

    let in_member = session(
        &enforcing().sdk_config_for(&d.member).await,
        &d.member,
        "dormant-answers",
    )
    .await;
    let iam = aws_sdk_iam::Client::new(&in_member);
    for key_name in ["dormant:stage", "Dormant:Stage", "dormant:next-step"] {
        let r = tag_as(&iam, Role, "guarded", key_name, "noticed").await;
        refused(&format!("TagRole {key_name}"), &r);
    }
    for key_name in [
        "dormant:credentials",
        "dormant:stage",
        "DORMANT:CREDENTIALS",
    ] {
        let r = tag_as(&iam, User, "idle-user", key_name, "true").await;
        refused(&format!("TagUser {key_name}"), &r);
    }
    let r = turn_key_on(&iam, "idle-user", &key).await;
    refused("UpdateAccessKey Active on an unmarked user", &r);
    let r = iam
        .delete_role_policy()
        .role_name("marked")
        .policy_name("incident-deny")
        .send()
        .await;
    refused("DeleteRolePolicy on a marked role", &r);
    let r = iam
        .detach_role_policy()
        .role_name("marked")
        .policy_arn(&managed)
        .send()
        .await;
    refused("DetachRolePolicy of a human's policy", &r);
    let r = tag_as(
        &iam,
        Role,
        "OrganizationAccountAccessRole",
        "dormant:exempt",
        "true",
    )
    .await;
    refused("TagRole dormant:exempt on a protected role", &r);
    // A noticed user (dormant's stage tag, but its keys are not dormant's to turn on): a key a
    // human turned off stays off.
    let stage = "noticed next quarantine at 2026-01-01T00:00:00Z";
    tag_as(&admin, User, "idle-user", "dormant:stage", stage)
        .await
        .unwrap();
    let r = turn_key_on(&iam, "idle-user", &key).await;
    refused("UpdateAccessKey Active on a noticed user", &r);
    // Nor through the credentials marker, which any user with an unused key carries.
    let marker = "access keys or password on the dormant ladder";
    tag_as(&admin, User, "idle-user", "dormant:credentials", marker)
        .await
        .unwrap();
    let r = turn_key_on(&iam, "idle-user", &key).await;
    refused(
        "UpdateAccessKey Active on a user carrying the credentials marker",
        &r,
    );
    // A quarantine a human put on (no stage tag), or on a role dormant only noticed, stays.
    let quarantine = dormant::domain::quarantine::policy_arn("aws", &d.member);
    for role in ["guarded", "marked"] {
        admin
            .attach_role_policy()
            .role_name(role)
            .policy_arn(&quarantine)
            .send()
            .await
            .unwrap();
        let r = iam
            .detach_role_policy()
            .role_name(role)
            .policy_arn(&quarantine)
            .send()
            .await;
        refused(
            &format!("DetachRolePolicy of the quarantine from {role}"),
            &r,
        );
    }
    // Someone's exemption is not ended: not overwritten with "false" or a date alone, ...
    for tags in [
        vec![tag("dormant:exempt", "false")],
        vec![tag("dormant:exempt-until", "2000-01-01")],
    ] {
        let r = iam
            .tag_role()
            .role_name("guarded")
            .set_tags(Some(tags.clone()))
            .send()
            .await;
        refused(&format!("TagRole {tags:?}"), &r);
    }
    // ... nor removed.
    tag_as(&admin, Role, "guarded", "dormant:exempt", "true")
        .await
        .unwrap();
    let r = iam
        .untag_role()
        .role_name("guarded")
        .tag_keys("dormant:exempt")
        .send()
        .await;
    refused("UntagRole dormant:exempt", &r);
    // What Keep does write and remove is still allowed.
    iam.tag_role()
        .role_name("guarded")
        .tags(tag("dormant:exempt", "true"))
        .tags(tag("dormant:exempt-until", "2099-01-01"))
        .tags(tag("dormant:exempt-reason", "still needed"))
        .send()
        .await
        .unwrap();
    iam.untag_role()
        .role_name("guarded")
        .tag_keys("Dormant:Exempt-Until")
        .send()
        .await
        .unwrap();

    // Nothing changed: the key is off, the human's policies are in place.
    assert_eq!(
        key_status(&admin, "idle-user", None).await,
        Some(StatusType::Inactive)
    );
    let inline = admin
        .list_role_policies()
        .role_name("marked")
        .send()
        .await
        .unwrap();
    assert_eq!(inline.policy_names(), ["incident-deny"]);
    let attached = admin
        .list_attached_role_policies()
        .role_name("marked")
        .send()
        .await
        .unwrap();
    // The human's policy and the quarantine put on by hand above.
    assert_eq!(attached.attached_policies().len(), 2);
    let ignored = d.ignored_conditions();
    assert!(
        ignored.is_empty(),
        "conditions the emulator did not check: {ignored:?}"
    );
}

const DENY_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;

fn tag(key: &str, value: &str) -> aws_sdk_iam::types::Tag {
    aws_sdk_iam::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .unwrap()
}

/// One tag on role or user `name`, written by `iam`'s caller.
async fn tag_as(
    iam: &aws_sdk_iam::Client,
    kind: PrincipalKind,
    name: &str,
    key: &str,
    value: &str,
) -> Result<(), String> {
    match kind {
        Role => iam
            .tag_role()
            .role_name(name)
            .tags(tag(key, value))
            .send()
            .await
            .map(drop)
            .map_err(|e| format!("{e:?}")),
        User => iam
            .tag_user()
            .user_name(name)
            .tags(tag(key, value))
            .send()
            .await
            .map(drop)
            .map_err(|e| format!("{e:?}")),
    }
}

/// `user`'s key turned back on by `iam`'s caller.
async fn turn_key_on(iam: &aws_sdk_iam::Client, user: &str, key: &str) -> Result<(), String> {
    iam.update_access_key()
        .user_name(user)
        .access_key_id(key)
        .status(aws_sdk_iam::types::StatusType::Active)
        .send()
        .await
        .map(drop)
        .map_err(|e| format!("{e:?}"))
}

/// Fails unless the answers role's call `what` was refused by IAM (AccessDenied).
fn refused<T: std::fmt::Debug, E: std::fmt::Debug>(what: &str, r: &Result<T, E>) {
    match r {
        Ok(out) => panic!("{what}: allowed to the answers role: {out:?}"),
        Err(e) => assert!(format!("{e:?}").contains("AccessDenied"), "{what}: {e:?}"),
    }
}
