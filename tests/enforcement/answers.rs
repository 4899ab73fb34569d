//! Owners' answers under the answers function's own role (cdk/lib/answers.ts): an owner's Keep
//! and Undo succeed under `dormant-answers` in both accounts, as the answers function builds its
//! engines (assuming `dormant-answers`, not `dormant-member`, in the member account), and that
//! role is refused what only the controller may do.

use chrono::{Duration, Utc};
use dormant::adapters::retry::RetryPolicy;
use dormant::answers::FactoryEngines;
use dormant::app::answer::{AnswerService, HttpRequest};
use dormant::domain::answer::{sign, AnswerAction, Claims, SigningKey, SigningKeys};
use dormant::domain::{Principal, Stage, Subject};
use dormant::ports::Store;
use dormant::wiring::{Actor, EngineFactory};

use super::deployment::{enforcing, session, Deployment};

const OWNER: &str = "owner@example.com";

fn keys() -> SigningKeys {
    SigningKeys {
        current: SigningKey::new(vec![9u8; 32]).unwrap(),
        previous: None,
    }
}

fn post(token: &str, fields: &str) -> HttpRequest {
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

    // The answers function, as src/bin/lambda.rs builds it.
    let admin = enforcing().sdk_config_for(&d.controller).await;
    let answers_sdk = session(&admin, &d.controller, "dormant-answers").await;
    let factory = EngineFactory::new(
        &config,
        &answers_sdk,
        Actor::Controller,
        RetryPolicy::fast(),
    )
    .await
    .unwrap();
    let engines = FactoryEngines::new(&factory).assuming("dormant-answers");
    let store = factory.store();
    let keys = keys();
    let svc = AnswerService {
        keys: &keys,
        slack_secret: None,
        engines: &engines,
        ledger: &store,
    };
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
        let token = sign(&keys.current, &claims);
        let fields = match action {
            AnswerAction::Keep => "action=keep&reason=still+needed",
            _ => "action=undo",
        };
        let page = svc.handle(&post(&token, fields), at).await;
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
    let quarantine = format!(
        "arn:aws:iam::{}:policy/dormant/DormantQuarantineDenyAll",
        d.member
    );
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
