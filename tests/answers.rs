#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Owners answering from their messages (issue 19, items 3-5), against emulated IAM and
//! DynamoDB: the page a signed link opens changes nothing; the POST from it keeps, approves or
//! undoes through the operator commands, with the recipient as the actor in the audit trail;
//! forged, expired, reused, wrong-stage and wrong-identity links change nothing and say why;
//! Slack's buttons act only when Slack signed the request.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::iam::AwsIam;
use dormant::app::answer::{AnswerEngines, AnswerService, HttpRequest, HttpResponse};
use dormant::app::Engine;
use dormant::domain::answer::{
    answer_url, sign, slack_signature, AnswerAction, Claims, SigningKey, SigningKeys,
};
use dormant::domain::{DeleteMode, Policy, Principal, Stage, Subject};
use dormant::error::Error;
use dormant::ports::Store;

use crate::support::account::{Account, TestEngine};
use crate::support::emulator::{emulator, Fault};

pub const OWNER: &str = "owner@example.com";
const SLACK_SECRET: &[u8] = b"slack-signing-secret-for-the-tests";

pub fn keys() -> SigningKeys {
    SigningKeys {
        current: SigningKey::new(vec![7u8; 32]).unwrap(),
        previous: None,
    }
}

/// Engines over the emulated account, acting as whoever the link names.
pub struct Engines<'a> {
    pub a: &'a Account,
    pub policy: Policy,
}

#[async_trait]
impl AnswerEngines<AwsIam, DynamoStore> for Engines<'_> {
    async fn engine_as(
        &self,
        account: &str,
        actor: &str,
    ) -> Result<Engine<AwsIam, DynamoStore>, Error> {
        assert_eq!(account, self.a.id);
        let mut engine = self.a.engine(self.policy.clone()).await;
        engine.actor = actor.to_string();
        Ok(engine)
    }
}

pub struct Fixture {
    pub a: Account,
    pub policy: Policy,
    pub store: DynamoStore,
    pub subject: Subject,
    pub unique_id: String,
}

impl Fixture {
    /// A role unused for 120 days, swept on day 0 (noticed), then ticked on `ticks` days.
    pub async fn role(name: &str, policy: Policy, ticks: &[i64]) -> Fixture {
        let a = Account::new().await;
        a.role(name, 120, &[]).await;
        let unique_id = a.role_id(name).await;
        let engine = a.engine(policy.clone()).await;
        engine.sweep(a.day(0)).await.unwrap();
        for d in ticks {
            engine.tick(a.day(*d)).await.unwrap();
        }
        let store = a.store().await;
        Fixture {
            subject: Subject::whole(Principal::role(&a.id, "/", name)),
            a,
            policy,
            store,
            unique_id,
        }
    }

    pub async fn engine(&self) -> TestEngine {
        self.a.engine(self.policy.clone()).await
    }

    pub async fn stage(&self) -> Stage {
        self.store.load(&self.subject).await.unwrap().unwrap().stage
    }

    /// A link for `action`, issued when the identity entered its current stage (as the step's
    /// message is), valid until day 400.
    pub async fn link(&self, action: AnswerAction) -> String {
        let record = self.store.load(&self.subject).await.unwrap().unwrap();
        let issued = record.stage_since.unwrap_or(self.a.day(0));
        let claims = Claims::issue(
            action,
            &self.subject,
            &self.unique_id,
            record.stage,
            OWNER,
            self.a.day(400),
            issued,
        );
        sign(&keys().current, &claims)
    }

    pub fn link_at(
        &self,
        action: AnswerAction,
        stage: Stage,
        expires: DateTime<Utc>,
        keys: &SigningKeys,
    ) -> String {
        let claims = Claims::issue(
            action,
            &self.subject,
            &self.unique_id,
            stage,
            OWNER,
            expires,
            self.a.day(0),
        );
        sign(&keys.current, &claims)
    }

    pub async fn call(&self, req: HttpRequest, now: DateTime<Utc>) -> HttpResponse {
        let engines = Engines {
            a: &self.a,
            policy: self.policy.clone(),
        };
        let keys = keys();
        let svc = AnswerService {
            keys: &keys,
            slack_secret: Some(SLACK_SECRET),
            engines: &engines,
            ledger: &self.store,
        };
        svc.handle(&req, now).await
    }

    pub async fn get(&self, token: &str, now: DateTime<Utc>) -> HttpResponse {
        let url = answer_url("http://127.0.0.1:1", token);
        let query = url.split_once('?').unwrap().1.to_string();
        self.call(
            HttpRequest {
                method: "GET".into(),
                path: "/answer".into(),
                query,
                ..HttpRequest::default()
            },
            now,
        )
        .await
    }

    pub async fn post(&self, token: &str, fields: &str, now: DateTime<Utc>) -> HttpResponse {
        self.call(
            HttpRequest {
                method: "POST".into(),
                path: "/answer".into(),
                headers: vec![(
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                )],
                body: format!("t={token}{fields}").into_bytes(),
                ..HttpRequest::default()
            },
            now,
        )
        .await
    }

    pub async fn slack(
        &self,
        token: &str,
        signed_at: i64,
        secret: &[u8],
        now: DateTime<Utc>,
    ) -> HttpResponse {
        let payload = serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U1", "username": "ana"},
            "actions": [{"action_id": "answer", "value": token}],
        });
        let body = format!(
            "payload={}",
            percent_encoding::utf8_percent_encode(
                &payload.to_string(),
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        let ts = signed_at.to_string();
        let sig = slack_signature(secret, &ts, body.as_bytes());
        self.call(
            HttpRequest {
                method: "POST".into(),
                path: "/slack".into(),
                headers: vec![
                    ("x-slack-request-timestamp".into(), ts),
                    ("x-slack-signature".into(), sig),
                ],
                body: body.into_bytes(),
                ..HttpRequest::default()
            },
            now,
        )
        .await
    }

    /// The actors of the audit entries written after `n` entries.
    pub async fn actors_after(&self, n: usize) -> Vec<(String, String)> {
        let h = self.store.history(&self.subject).await.unwrap();
        h[n..]
            .iter()
            .map(|e| (e.step.clone(), e.actor.clone()))
            .collect()
    }

    pub async fn history_len(&self) -> usize {
        self.store.history(&self.subject).await.unwrap().len()
    }
}

fn approval_policy() -> Policy {
    let mut p = Policy::default();
    p.ladder.delete = DeleteMode::Approval;
    p
}

#[tokio::test]
async fn the_page_shows_the_identity_and_never_acts() {
    let f = Fixture::role("reports-etl", Policy::default(), &[]).await;
    let token = f.link(AnswerAction::Keep).await;
    let before = f.history_len().await;
    emulator().clear_requests(&f.a.id);
    for _ in 0..3 {
        let page = f.get(&token, f.a.day(1)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("reports-etl") && page.body.contains(&f.unique_id));
        assert!(page.body.contains("<button type=\"submit\">Keep</button>"));
        assert!(page.body.contains("name=\"reason\""));
        assert_eq!(
            page.header("content-security-policy"),
            Some("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
        );
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
    }
    assert_eq!(f.stage().await, Stage::Noticed);
    assert_eq!(f.history_len().await, before, "a GET writes nothing");
    assert!(f.a.mutations_of("reports-etl").is_empty());
    // The same link still acts once posted: GETs did not use it up.
    let done = f
        .post(&token, "&reason=quarterly+report&until=", f.a.day(1))
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
}

#[tokio::test]
async fn keep_exempts_until_the_date_given_and_the_recipient_is_the_actor() {
    let f = Fixture::role("legacy-api", Policy::default(), &[7]).await;
    assert_eq!(f.stage().await, Stage::Quarantined);
    let token = f.link(AnswerAction::Keep).await;
    let until = (f.a.day(8) + Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    let before = f.history_len().await;
    let r = f
        .post(
            &token,
            &format!("&reason=still+used+by+billing&until={until}"),
            f.a.day(8),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Done"));
    let tags = f.a.role_tags("legacy-api").await;
    assert_eq!(tags.get("dormant:exempt-until"), Some(&until), "{tags:?}");
    assert_eq!(
        tags.get("dormant:exempt-reason").map(String::as_str),
        Some("still used by billing")
    );
    assert!(matches!(f.stage().await, Stage::Exempt | Stage::Released));
    let actors = f.actors_after(before).await;
    assert!(
        actors.contains(&("exempt".to_string(), OWNER.to_string())),
        "{actors:?}"
    );
}

#[tokio::test]
async fn keep_refuses_a_date_past_max_days_or_no_reason_and_the_link_stays_usable() {
    let f = Fixture::role("batch", Policy::default(), &[]).await;
    emulator().clear_requests(&f.a.id);
    let token = f.link(AnswerAction::Keep).await;
    let too_far = (f.a.day(1) + Duration::days(f.policy.exemptions.max_duration.num_days() + 2))
        .format("%Y-%m-%d")
        .to_string();
    let r = f
        .post(&token, &format!("&reason=x&until={too_far}"), f.a.day(1))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("exemptions.max_days"), "{}", r.body);
    let r = f.post(&token, "&reason=+&until=", f.a.day(1)).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("needs a reason"));
    assert!(f.a.mutations_of("batch").is_empty());
    assert_eq!(f.stage().await, Stage::Noticed);
    let r = f.post(&token, "&reason=ok&until=", f.a.day(1)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn undo_releases_and_the_audit_names_the_recipient() {
    let f = Fixture::role("deploy-old", Policy::default(), &[7]).await;
    assert_eq!(f.stage().await, Stage::Quarantined);
    let token = f.link(AnswerAction::Undo).await;
    let before = f.history_len().await;
    let r = f.post(&token, "", f.a.day(8)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(f.stage().await, Stage::Released);
    let actors = f.actors_after(before).await;
    assert!(!actors.is_empty());
    assert!(actors.iter().all(|(_, by)| by == OWNER), "{actors:?}");
    let h = f.store.history(&f.subject).await.unwrap();
    let reason = &h.last().unwrap().reason;
    assert!(
        reason.contains(&format!("answered from the link sent to {OWNER} (link ")),
        "{reason}"
    );
    // The link's id, so the entry can be matched with the message that carried it.
    let id = reason.split("(link ").nth(1).unwrap_or_default();
    assert!(
        id.len() > 16 && id[..32].chars().all(|c| c.is_ascii_hexdigit()),
        "{reason}"
    );
}

#[tokio::test]
async fn approve_records_the_recipients_approval_of_a_pending_deletion() {
    let f = Fixture::role("old-ci", approval_policy(), &[7, 23, 40, 60]).await;
    assert_eq!(f.stage().await, Stage::PendingDelete);
    let token = f.link(AnswerAction::Approve).await;
    let r = f.post(&token, "", f.a.day(61)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let record = f.store.load(&f.subject).await.unwrap().unwrap();
    assert_eq!(record.approval.map(|a| a.by).as_deref(), Some(OWNER));
    assert!(
        f.a.role_exists("old-ci").await,
        "approval alone deletes nothing"
    );
    f.engine().await.tick(f.a.day(62)).await.unwrap();
    assert!(!f.a.role_exists("old-ci").await, "the next tick deletes");
}

#[tokio::test]
async fn a_reused_link_changes_nothing_the_second_time() {
    let f = Fixture::role("twice", Policy::default(), &[7]).await;
    let token = f.link(AnswerAction::Undo).await;
    assert_eq!(f.post(&token, "", f.a.day(8)).await.status, 200);
    let n = f.history_len().await;
    emulator().clear_requests(&f.a.id);
    let again = f.post(&token, "", f.a.day(8)).await;
    assert_eq!(again.status, 409, "{}", again.body);
    // Stage moved on (released), so the stage check refuses first; a link reused at the same
    // stage is refused by the claim: see the Keep case below.
    assert!(again.body.contains("Nothing was changed"));
    assert_eq!(f.history_len().await, n);
    assert!(f.a.mutations_of("twice").is_empty());

    let g = Fixture::role("kept-twice", Policy::default(), &[]).await;
    let first = g.link(AnswerAction::Keep).await;
    // Exempting a noticed role releases it; claim the same token twice at once instead.
    let (x, y) = tokio::join!(
        g.post(&first, "&reason=a&until=", g.a.day(1)),
        g.post(&first, "&reason=b&until=", g.a.day(1))
    );
    let mut statuses = [x.status, y.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", x.body, y.body);
    let used = if x.status == 409 { &x } else { &y };
    assert!(
        used.body.contains("already used") || used.body.contains("it is now"),
        "{}",
        used.body
    );
}

#[tokio::test]
async fn forged_and_expired_links_are_refused_and_say_why() {
    let f = Fixture::role("forgery", Policy::default(), &[7]).await;
    let other = SigningKeys {
        current: SigningKey::new(vec![9u8; 32]).unwrap(),
        previous: None,
    };
    let forged = f.link_at(AnswerAction::Undo, Stage::Quarantined, f.a.day(30), &other);
    let expired = f.link_at(AnswerAction::Undo, Stage::Quarantined, f.a.day(8), &keys());
    emulator().clear_requests(&f.a.id);
    let n = f.history_len().await;
    for (token, status, says) in [
        (forged.as_str(), 403, "signature does not match"),
        (expired.as_str(), 410, "expired"),
        ("not-a-token", 400, "not one dormant issued"),
    ] {
        for r in [
            f.get(token, f.a.day(8)).await,
            f.post(token, "", f.a.day(8)).await,
        ] {
            assert_eq!(r.status, status, "{}", r.body);
            assert!(r.body.contains(says), "{}", r.body);
            assert!(r.body.contains("Nothing was changed"));
        }
    }
    // A tampered token: one character of the claims changed.
    let good = f.link(AnswerAction::Undo).await;
    let tampered = format!("{}x{}", &good[..5], &good[6..]);
    assert_eq!(f.post(&tampered, "", f.a.day(8)).await.status / 100, 4);
    assert_eq!(f.stage().await, Stage::Quarantined);
    assert_eq!(f.history_len().await, n);
    assert!(f.a.mutations_of("forgery").is_empty());
}

#[tokio::test]
async fn a_link_issued_at_an_earlier_stage_is_refused() {
    let f = Fixture::role("moved-on", Policy::default(), &[]).await;
    let at_notice = f.link(AnswerAction::Undo).await;
    f.engine().await.tick(f.a.day(7)).await.unwrap();
    assert_eq!(f.stage().await, Stage::Quarantined);
    emulator().clear_requests(&f.a.id);
    let r = f.post(&at_notice, "", f.a.day(8)).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body
            .contains("issued while the identity was noticed, but it is now quarantined"),
        "{}",
        r.body
    );
    assert_eq!(f.stage().await, Stage::Quarantined);
    assert!(f.a.mutations_of("moved-on").is_empty());
}

/// Review (links): a link is bound to the pass of the stage it was issued in. After an undo and
/// a new ladder the identity is `noticed` again, and the first notice's Keep link is void.
#[tokio::test]
async fn a_link_from_an_earlier_pass_of_the_same_stage_is_refused() {
    let f = Fixture::role("twice", Policy::default(), &[]).await;
    let first = f.link(AnswerAction::Keep).await;
    let engine = f.engine().await;
    engine
        .undo(&"role/twice".parse().unwrap(), "owner asked", f.a.day(1))
        .await
        .unwrap();
    assert_eq!(f.stage().await, Stage::Released);
    let mut day = 2;
    while f.stage().await != Stage::Noticed {
        assert!(day < 200, "never noticed again");
        engine.sweep(f.a.day(day)).await.unwrap();
        day += 1;
    }
    emulator().clear_requests(&f.a.id);
    let until = (f.a.day(day) + Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    let fields = format!("&reason=still+used&until={until}");
    let r = f.post(&first, &fields, f.a.day(day)).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("an earlier time"), "{}", r.body);
    assert_eq!(f.stage().await, Stage::Noticed);
    assert!(f.a.mutations_of("twice").is_empty());
}

#[tokio::test]
async fn a_role_recreated_under_the_same_name_is_not_the_links_identity() {
    let f = Fixture::role("reborn", Policy::default(), &[]).await;
    let token = f.link(AnswerAction::Keep).await;
    let new_id = f.a.recreate_role("reborn").await;
    assert_ne!(new_id, f.unique_id);
    emulator().clear_requests(&f.a.id);
    for r in [
        f.get(&token, f.a.day(1)).await,
        f.post(&token, "&reason=mine&until=", f.a.day(1)).await,
    ] {
        assert_eq!(r.status, 409, "{}", r.body);
        assert!(
            r.body
                .contains("no longer the identity this link was issued for"),
            "{}",
            r.body
        );
    }
    assert!(
        f.a.mutations_of("reborn").is_empty(),
        "the new role is not touched"
    );
    assert!(!f.a.role_tags("reborn").await.contains_key("dormant:exempt"));
}

/// The role is re-created after the page's checks, while the answer is being claimed: the
/// command itself refuses the new role (it checks the link's unique id again).
#[tokio::test]
async fn a_role_recreated_while_the_answer_is_taken_is_not_changed() {
    let f = Fixture::role("reborn-late", Policy::default(), &[]).await;
    let token = f.link(AnswerAction::Keep).await;
    let slow = Fault::Latency(std::time::Duration::from_secs(3));
    emulator().inject_fault_on(
        &f.a.id,
        "dynamodb",
        "PutItem",
        None,
        Some("ANSWER"),
        slow,
        1,
    );
    let answer = f.post(&token, "&reason=mine&until=", f.a.day(1));
    let recreate = async {
        // Once the slowed claim has arrived, the page's checks are done.
        for _ in 0..300 {
            if emulator().faults(&f.a.id).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        f.a.recreate_role("reborn-late").await
    };
    let (r, new_id) = tokio::join!(answer, recreate);
    assert_ne!(new_id, f.unique_id);
    assert!(
        emulator().faults(&f.a.id).is_empty(),
        "the claim was slowed"
    );
    assert_ne!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains("no longer the identity the link was issued for"),
        "{}",
        r.body
    );
    assert!(
        f.a.role_tags("reborn-late").await.is_empty(),
        "the new role is not touched"
    );
}

#[tokio::test]
async fn tag_values_are_shown_escaped_on_the_page() {
    // IAM (and moto) refuse markup in tag values; what they allow still goes through `escape`
    // (markup itself is tested on the page renderer, `page::tests`).
    let f = Fixture::role("tagged", Policy::default(), &[]).await;
    f.a.tag_role("tagged", &[("owner", "a+b=c@x.example/ops")])
        .await;
    let token = f.link(AnswerAction::Keep).await;
    let page = f.get(&token, f.a.day(1)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<th scope=\"row\">Tag owner</th><td>a+b=c@x.example/ops</td>"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn slack_buttons_act_only_when_slack_signed_the_request() {
    let f = Fixture::role("slack-role", Policy::default(), &[7]).await;
    let token = f.link(AnswerAction::Undo).await;
    let now = f.a.day(8);
    emulator().clear_requests(&f.a.id);
    let bad = f
        .slack(&token, now.timestamp(), b"not-the-secret", now)
        .await;
    assert_eq!(bad.status, 401, "{}", bad.body);
    let stale = f
        .slack(&token, now.timestamp() - 301, SLACK_SECRET, now)
        .await;
    assert_eq!(stale.status, 401);
    assert!(stale.body.contains("five minutes"));
    assert!(f.a.mutations_of("slack-role").is_empty());
    assert_eq!(f.stage().await, Stage::Quarantined);
    let ok = f
        .slack(&token, now.timestamp() - 10, SLACK_SECRET, now)
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(f.stage().await, Stage::Released, "{}", ok.body);
    let again = f.slack(&token, now.timestamp(), SLACK_SECRET, now).await;
    assert!(again.body.contains("nothing was changed"), "{}", again.body);
}
