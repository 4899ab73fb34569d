#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Telling owners: digests per recipient through the emulator's SES (sent emails read back
//! from moto), SNS (through an SQS subscription) and a Slack webhook on a loopback port; no
//! second message when a run faulted after sending; a failed send never blocks a step, is
//! audited, and goes out on the next run, until it is dead-lettered; a digest too big for its
//! channel goes out in parts; a tag cannot send to a channel or topic the configuration lacks.

use std::collections::BTreeMap;
use std::sync::Arc;

use dormant::adapters::messenger::AwsMessenger;
use dormant::adapters::retry::RetryPolicy;
use dormant::app::engine::{NotifySetup, DEFAULT_MAX_ATTEMPTS, NOTIFY_AUDIT_STEP, SEND_LEASE};
use dormant::domain::notify::{Recipient, Routing, Templates};
use dormant::domain::{Outcome, Policy, Stage};
use dormant::ports::Store;

use crate::support::account::{Account, TestEngine};
use crate::support::emulator::{emulator, Fault};
use crate::support::webhook::Webhook;

const SENDER: &str = "dormant@example.com";
const HOSTILE: &str = "\"><img src=x onerror=alert(1)><script>alert(2)</script>";

/// An account with SES's sender verified (as the CDK configures it), an SNS topic feeding an
/// SQS queue, and a Slack webhook on a loopback port.
struct Setup {
    a: Account,
    topic: String,
    queue: String,
    slack: Webhook,
}

impl Setup {
    async fn new() -> Setup {
        let a = Account::new().await;
        let sdk = a.sdk().await;
        aws_sdk_sesv2::Client::new(&sdk)
            .create_email_identity()
            .email_identity(SENDER)
            .send()
            .await
            .unwrap();
        let sns = aws_sdk_sns::Client::new(&sdk);
        let topic = sns
            .create_topic()
            .name("security-feed")
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_string();
        let (queue, queue_arn) = a.queue("feed").await;
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        let slack = Webhook::start().await;
        Setup {
            a,
            topic,
            queue,
            slack,
        }
    }

    fn routing(&self) -> Routing {
        Routing {
            routes: [("team-a".to_string(), "slack:#team-a".parse().unwrap())].into(),
            fallback: Some("secops@example.com".parse().unwrap()),
            feed: Some(Recipient::Sns(self.topic.clone())),
            ..Routing::default()
        }
    }

    async fn engine(&self) -> TestEngine {
        self.engine_with(self.routing()).await
    }

    async fn engine_with(&self, routing: Routing) -> TestEngine {
        self.engine_linked(routing, Arc::new(dormant::ports::NoLinks))
            .await
    }

    async fn engine_linked(
        &self,
        routing: Routing,
        links: Arc<dyn dormant::ports::ActionLinks>,
    ) -> TestEngine {
        self.engine_custom(routing, links, BTreeMap::new(), DEFAULT_MAX_ATTEMPTS)
            .await
    }

    /// With template overrides and `[notify] max_attempts`.
    async fn engine_custom(
        &self,
        routing: Routing,
        links: Arc<dyn dormant::ports::ActionLinks>,
        templates: BTreeMap<String, String>,
        max_attempts: u32,
    ) -> TestEngine {
        let sdk = self.a.sdk().await;
        let messenger = AwsMessenger::new(
            aws_sdk_sesv2::Client::new(&sdk),
            aws_sdk_sns::Client::new(&sdk),
            Some(SENDER.to_string()),
            [("#team-a".to_string(), self.slack.url.clone())].into(),
            RetryPolicy::fast(),
        )
        .unwrap();
        let templates = Templates::new(&templates).unwrap();
        self.a.engine(Policy::default()).await.with_notify(
            NotifySetup::new(routing, Arc::new(templates), Arc::new(messenger))
                .with_links(links)
                .with_max_attempts(max_attempts),
        )
    }

    /// The emails moto's SES kept: (to, subject, body).
    fn emails(&self) -> Vec<(String, String, String)> {
        let (status, sent) = emulator().control(
            "GET",
            &format!("/_dormant/ses/sent?account={}", self.a.id),
            None,
        );
        assert_eq!(status, 200, "{sent}");
        let mut out: Vec<_> = sent
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let to = m["destinations"]["ToAddresses"][0]
                    .as_str()
                    .unwrap()
                    .to_string();
                let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                (to, s("subject"), s("body"))
            })
            .collect();
        out.sort();
        out
    }

    /// Every message the feed's queue has (each SNS publish, raw).
    async fn feed(&self) -> Vec<String> {
        let sqs = aws_sdk_sqs::Client::new(&self.a.sdk().await);
        let mut out = Vec::new();
        for _ in 0..5 {
            let got = sqs
                .receive_message()
                .queue_url(&self.queue)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = got.messages();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                out.push(m.body().unwrap_or_default().to_string());
                sqs.delete_message()
                    .queue_url(&self.queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        out
    }
}

fn arn(a: &Account, name: &str) -> String {
    format!("arn:aws:iam::{}:role/{name}", a.id)
}

#[tokio::test]
async fn each_recipient_gets_one_digest_by_email_slack_and_sns() {
    let s = Setup::new().await;
    let a = &s.a;
    a.role("billing-etl", 120, &[("owner", "alice@example.com")])
        .await;
    a.role("team-job", 120, &[("team", "team-a")]).await;
    a.role("orphan", 120, &[]).await;
    a.role("hostile", 120, &[("owner", HOSTILE)]).await;
    let engine = s.engine().await;

    let report = engine.sweep(a.day(0)).await.unwrap();
    assert_eq!(report.actions.len(), 4, "{report:?}");

    let emails = s.emails();
    let to: Vec<_> = emails.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(to, ["alice@example.com", "secops@example.com"], "one each");
    let (_, subject, alice) = &emails[0];
    assert!(subject.contains("1 unused identity"), "{subject}");
    assert!(alice.contains(&arn(a, "billing-etl")));
    assert!(!alice.contains("orphan") && !alice.contains("team-job"));
    assert!(alice.contains("tag owner=alice@example.com"));
    // The next step and its date: quarantine a week after the notice.
    let due = dormant::domain::fmt_time(a.day(7));
    assert!(alice.contains(&format!("quarantine on {due}")), "{alice}");
    let (_, subject, secops) = &emails[1];
    assert!(subject.contains("2 unused identities"), "{subject}");
    assert!(secops.contains(&arn(a, "orphan")) && secops.contains(&arn(a, "hostile")));
    assert!(secops.contains("fallback: no owner tag"));
    // The hostile tag value is shown, escaped: never as markup.
    assert!(
        !secops.contains("<script>") && !secops.contains("<img"),
        "{secops}"
    );
    assert!(secops.contains("&lt;script&gt;"));

    let slack = s.slack.received();
    assert_eq!(slack.len(), 1, "{slack:?}");
    let text = slack[0].to_string();
    assert!(
        text.contains("role/team-job") && !text.contains("billing-etl"),
        "{text}"
    );
    assert!(text.contains("tag team=team-a"));

    let feed = s.feed().await;
    assert_eq!(
        feed.len(),
        1,
        "the feed gets one digest of everything: {feed:?}"
    );
    for name in ["billing-etl", "team-job", "orphan", "hostile"] {
        assert!(feed[0].contains(&arn(a, name)), "{name} in {}", feed[0]);
    }

    // Nothing new to tell: nothing sent again.
    engine.sweep(a.day(1)).await.unwrap();
    assert_eq!(s.emails().len(), 2);
    assert_eq!(s.slack.received().len(), 1);
    assert!(s.feed().await.is_empty());
    assert!(engine.store.outbox(&a.id).await.unwrap().is_empty());

    // The quarantine a week later is told as well, with the next step.
    engine.tick(a.day(7)).await.unwrap();
    let emails = s.emails();
    assert_eq!(emails.len(), 4, "{emails:?}");
    let alice: Vec<_> = emails
        .iter()
        .filter(|e| e.0 == "alice@example.com")
        .collect();
    assert!(
        alice.iter().any(|e| e.2.contains("quarantined")),
        "{alice:?}"
    );
}

#[tokio::test]
async fn a_run_that_faulted_after_sending_does_not_send_again() {
    let s = Setup::new().await;
    let a = &s.a;
    a.role("billing-etl", 120, &[("owner", "alice@example.com")])
        .await;
    let engine = s.engine().await;
    // Every attempt to mark the message sent fails: the run ends as if it crashed after SES took it.
    emulator().inject_fault_on(
        &a.id,
        "dynamodb",
        "UpdateItem",
        Some(&format!("SENT#{}", a.id)),
        None,
        Fault::Http500,
        50,
    );
    engine.sweep(a.day(0)).await.unwrap();
    emulator().clear_faults(&a.id);
    assert_eq!(s.emails().len(), 1);
    assert_eq!(
        engine.store.outbox(&a.id).await.unwrap().len(),
        2,
        "still queued (email and feed)"
    );

    // A retried run within the lease: the claim stands, nothing is sent twice.
    engine
        .tick(a.day(0) + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(s.emails().len(), 1);
    assert_eq!(
        s.feed().await.len(),
        1,
        "the feed's publish went out once, in the first run"
    );

    // The step itself stood all along.
    let record = engine
        .store
        .load(&a.role_subject("billing-etl"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.stage, Stage::Noticed);

    // A claim is given up only after the lease: a crashed send is then sent again, not lost.
    engine
        .tick(a.day(0) + SEND_LEASE + chrono::Duration::minutes(6))
        .await
        .unwrap();
    assert_eq!(s.emails().len(), 2, "re-sent once the lease ran out");
    assert!(engine.store.outbox(&a.id).await.unwrap().is_empty());
    engine.tick(a.day(1)).await.unwrap();
    assert_eq!(s.emails().len(), 2);
}

#[tokio::test]
async fn a_failed_send_does_not_block_the_step_is_audited_and_goes_out_next_run() {
    let s = Setup::new().await;
    let a = &s.a;
    a.role("billing-etl", 120, &[("owner", "alice@example.com")])
        .await;
    a.role("team-job", 120, &[("team", "team-a")]).await;
    let engine = s.engine().await;
    emulator().inject_fault(&a.id, "ses", "SendEmail", Fault::Http500, 50);
    s.slack.fail_with(&[500; 6]);

    let report = engine.sweep(a.day(0)).await.unwrap();
    emulator().clear_faults(&a.id);
    assert!(
        report.actions.iter().all(|r| r.outcome == Outcome::Done),
        "{report:?}"
    );
    assert!(s.emails().is_empty());
    assert!(s.slack.received().is_empty());
    assert_eq!(
        s.feed().await.len(),
        1,
        "the feed is not held up by the failed email"
    );
    for name in ["billing-etl", "team-job"] {
        let subject = a.role_subject(name);
        let record = engine.store.load(&subject).await.unwrap().unwrap();
        assert_eq!(record.stage, Stage::Noticed, "the step stands");
        let history = engine.store.history(&subject).await.unwrap();
        let failed: Vec<_> = history
            .iter()
            .filter(|e| e.step == NOTIFY_AUDIT_STEP && e.outcome == Outcome::Failed)
            .collect();
        assert_eq!(failed.len(), 1, "{history:?}");
        assert!(
            failed[0].reason.contains("retried next run"),
            "{}",
            failed[0].reason
        );
    }

    // The next run sends what failed, once.
    engine
        .tick(a.day(0) + chrono::Duration::hours(1))
        .await
        .unwrap();
    let emails = s.emails();
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert!(emails[0].2.contains(&arn(a, "billing-etl")));
    assert_eq!(s.slack.received().len(), 1);
    assert!(s.feed().await.is_empty(), "the feed was told already");
    engine.tick(a.day(1)).await.unwrap();
    assert_eq!(s.emails().len(), 1);
}

#[tokio::test]
async fn a_dry_run_tells_nobody() {
    let s = Setup::new().await;
    let a = &s.a;
    a.role("billing-etl", 120, &[("owner", "alice@example.com")])
        .await;
    let mut engine = s.engine().await;
    engine.policy.dry_run = true;
    engine.sweep(a.day(0)).await.unwrap();
    assert!(s.emails().is_empty());
    assert!(s.feed().await.is_empty());
    assert!(engine.store.outbox(&a.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn slack_messages_stay_valid_json_with_mrkdwn_escaped_for_any_owner_tag() {
    // Hostile owner tags that route (the routing table names them): the Slack payload shows
    // each, escaped, and stays valid JSON (the renderer checks it parses; the webhook again).
    let s = Setup::new().await;
    let a = &s.a;
    let values = ["\\", "\"", "*bold* `code`", "a\nb", "<!channel>", HOSTILE];
    let mut routing = s.routing();
    for (i, v) in values.iter().enumerate() {
        a.role(&format!("r{i}"), 120, &[("owner", v)]).await;
        routing
            .routes
            .insert(v.trim().to_string(), "slack:#team-a".parse().unwrap());
    }
    let engine = s.engine_with(routing).await;
    engine.sweep(a.day(0)).await.unwrap();
    let got = s.slack.received();
    assert_eq!(got.len(), 1, "one digest for the channel");
    let text = got[0].to_string();
    assert!(
        !text.contains("<!channel>") && !text.contains("<script>"),
        "{text}"
    );
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    let blocks = got[0]["blocks"].as_array().unwrap();
    assert!(
        blocks.len() > values.len(),
        "a section per identity: {text}"
    );
}

#[tokio::test]
async fn the_owner_hears_of_each_step_down_to_the_delete_and_of_the_restore() {
    let s = Setup::new().await;
    let a = &s.a;
    a.role("billing-etl", 120, &[("owner", "alice@example.com")])
        .await;
    let engine = s.engine().await;
    engine.sweep(a.day(0)).await.unwrap();
    // Bounded: the default ladder deletes within 30 days.
    for day in 1..=40 {
        engine.tick(a.day(day)).await.unwrap();
        if !a.role_exists("billing-etl").await {
            break;
        }
    }
    assert!(
        !a.role_exists("billing-etl").await,
        "deleted along the ladder"
    );
    let bodies: Vec<String> = s.emails().into_iter().map(|e| e.2).collect();
    assert!(
        bodies.iter().any(|b| b.contains("quarantined")),
        "{bodies:?}"
    );
    assert!(
        bodies.iter().any(|b| b.contains("deletion on")),
        "warned before the delete"
    );
    assert!(bodies
        .iter()
        .any(|b| b.contains("deleted (a snapshot is kept")));
    let before = bodies.len();

    let subject = a.role_subject("billing-etl");
    engine
        .restore(
            &dormant::domain::IdentityArg::Subject(subject),
            "still needed",
            a.day(41),
        )
        .await
        .unwrap();
    let bodies: Vec<String> = s.emails().into_iter().map(|e| e.2).collect();
    assert_eq!(bodies.len(), before + 1, "one message for the restore");
    assert!(
        bodies.iter().any(|b| b.contains("restored by")),
        "{bodies:?}"
    );
}

/// With `[answers]`, an owner's digest carries signed links (Keep, Undo) bound to them, when
/// the operator's routing named them; a recipient written straight into a tag and the security
/// feed get none. The Keep link from the email read back from SES exempts the
/// identity, with the owner as the actor, once.
#[tokio::test]
async fn an_owners_digest_carries_signed_links_that_act_for_that_owner_once() {
    use dormant::app::answer::SignedLinks;
    use dormant::app::answer::{AnswerService, HttpRequest};
    use dormant::domain::answer::{verify, AnswerAction};

    let s = Setup::new().await;
    let a = &s.a;
    a.role("billing-etl", 120, &[("owner", "billing")]).await;
    // A recipient written straight into a tag is whoever could write the tag: no links for them.
    a.role("self-routed", 120, &[("owner", "mallory@example.com")])
        .await;
    let keys = crate::answers::keys();
    let base = "http://127.0.0.1:1";
    let mut routing = s.routing();
    routing
        .routes
        .insert("billing".into(), "alice@example.com".parse().unwrap());
    let links = SignedLinks {
        base_url: base.to_string(),
        key: keys.current.clone(),
        approval: false,
        trusted: routing.configured_recipients(),
    };
    let engine = s.engine_linked(routing, Arc::new(links)).await;
    engine.sweep(a.day(0)).await.unwrap();

    let emails = s.emails();
    let (_, _, alice) = emails
        .iter()
        .find(|e| e.0 == "alice@example.com")
        .expect("alice's digest");
    let prefix = format!("{base}/answer?t=");
    let mut tokens: Vec<String> = alice
        .split(prefix.as_str())
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
                .collect()
        })
        .collect();
    tokens.sort();
    tokens.dedup();
    let claims: Vec<_> = tokens
        .iter()
        .map(|t| {
            (
                t.clone(),
                verify(&keys, t, a.day(0)).expect("signed with the key"),
            )
        })
        .collect();
    let mut actions: Vec<_> = claims.iter().map(|(_, c)| c.action).collect();
    actions.sort_by_key(|a| a.as_str());
    assert_eq!(actions, [AnswerAction::Keep, AnswerAction::Undo], "{alice}");
    for (_, c) in &claims {
        assert_eq!(c.recipient, "alice@example.com");
        assert_eq!(c.stage, Stage::Noticed);
        assert_eq!(c.unique_id, a.role_id("billing-etl").await);
        assert_eq!(
            c.expires().timestamp(),
            a.day(7).timestamp(),
            "expires when the quarantine is due"
        );
    }
    // The audit trail says who was told and which answers they were handed.
    let history = engine
        .store
        .history(&a.role_subject("billing-etl"))
        .await
        .unwrap();
    assert!(
        history.iter().any(|e| e.step == NOTIFY_AUDIT_STEP
            && e.outcome == Outcome::Done
            && e.reason == "told alice@example.com of the notice step, with links: keep, undo"),
        "{history:?}"
    );
    let mallory = emails
        .iter()
        .find(|e| e.0 == "mallory@example.com")
        .expect("a tag's own recipient is still told");
    assert!(
        !mallory.2.contains("/answer?t="),
        "but gets no links: {}",
        mallory.2
    );
    let feed = s.feed().await;
    assert!(
        feed.iter().all(|m| !m.contains("/answer?t=")),
        "a topic's readers get no links: {feed:?}"
    );

    let keep = &claims
        .iter()
        .find(|(_, c)| c.action == AnswerAction::Keep)
        .unwrap()
        .0;
    let engines = crate::answers::Engines {
        a,
        policy: Policy::default(),
    };
    let store = a.store().await;
    let service = AnswerService {
        keys: &keys,
        slack_secret: None,
        engines: &engines,
        ledger: &store,
    };
    let until = (a.day(1) + chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    let post = HttpRequest {
        method: "POST".into(),
        path: "/answer".into(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: format!("t={keep}&reason=billing+still+needs+it&until={until}").into_bytes(),
        ..HttpRequest::default()
    };
    let r = service.handle(&post, a.day(1)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tags = a.role_tags("billing-etl").await;
    assert_eq!(tags.get("dormant:exempt-until"), Some(&until), "{tags:?}");
    let subject = dormant::domain::Subject::whole(dormant::domain::Principal::role(
        &a.id,
        "/",
        "billing-etl",
    ));
    let history = store.history(&subject).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.step == "exempt" && e.actor == "alice@example.com"),
        "{history:?}"
    );
    let again = service.handle(&post, a.day(1)).await;
    assert_ne!(again.status, 200, "a link acts once: {}", again.body);
}

/// An owner tag may name an email address, or a channel or topic the configuration names; a
/// `slack:`/`sns:` value naming anything else is refused (it would fail on every run): the
/// fallback is told instead, and the audit trail says which value was refused and why.
#[tokio::test]
async fn a_tag_naming_an_unconfigured_channel_or_topic_is_refused_and_the_fallback_told() {
    let s = Setup::new().await;
    let a = &s.a;
    let foreign = format!("sns:arn:aws:sns:us-east-1:{}:not-configured", a.id);
    a.role("to-slack", 120, &[("owner", "slack:#not-configured")])
        .await;
    a.role("to-sns", 120, &[("owner", foreign.as_str())]).await;
    a.role("configured", 120, &[("owner", "slack:#team-a")])
        .await;
    let engine = s.engine().await;
    engine.sweep(a.day(0)).await.unwrap();

    let emails = s.emails();
    let secops: Vec<_> = emails
        .iter()
        .filter(|e| e.0 == "secops@example.com")
        .collect();
    assert_eq!(secops.len(), 1, "{emails:?}");
    for name in ["to-slack", "to-sns"] {
        assert!(
            secops[0].2.contains(&arn(a, name)),
            "{name}: {}",
            secops[0].2
        );
        let history = engine.store.history(&a.role_subject(name)).await.unwrap();
        let refused: Vec<_> = history
            .iter()
            .filter(|e| e.step == NOTIFY_AUDIT_STEP && e.reason.contains("refused"))
            .collect();
        assert_eq!(refused.len(), 1, "{history:?}");
        assert!(
            refused[0].reason.contains("is not a") && refused[0].reason.contains("fallback"),
            "{}",
            refused[0].reason
        );
        // Nothing was left queued for a recipient that can never be reached.
        assert!(history
            .iter()
            .all(|e| !(e.step == NOTIFY_AUDIT_STEP && e.outcome == Outcome::Failed)));
    }
    assert!(secops[0].2.contains("refused"), "the message says why");
    // A configured channel named in a tag is still the owner.
    let slack = s.slack.received();
    assert_eq!(slack.len(), 1);
    assert!(slack[0].to_string().contains("role/configured"));
    assert!(!secops[0].2.contains(&arn(a, "configured")));
    assert!(engine.store.outbox(&a.id).await.unwrap().is_empty());
}

/// A first sweep of 60 identities for one Slack channel is more than Slack's 50 blocks, and the
/// feed's digest (with an operator's verbose SNS template) more than SNS's 256 KB: each goes out
/// in parts the channel accepts, numbered, carrying every identity once.
#[tokio::test]
async fn a_digest_too_big_for_slack_or_sns_goes_out_in_parts_carrying_every_identity() {
    let s = Setup::new().await;
    let a = &s.a;
    let names: Vec<String> = (0..60).map(|i| format!("job-{i:02}")).collect();
    for name in &names {
        a.role(name, 120, &[("team", "team-a")]).await;
    }
    // About 6 KB per identity: 60 make some 340 KB.
    let verbose = BTreeMap::from([(
        "sns.txt".to_string(),
        "dormant: {{ count }} identities{% if parts > 1 %} (part {{ part }} of {{ parts }}){% endif %}\n\
         {% for i in items %}{% for n in range(150) %}{{ i.arn }} {% endfor %}\n{% endfor %}"
            .to_string(),
    )]);
    let engine = s
        .engine_custom(
            s.routing(),
            Arc::new(dormant::ports::NoLinks),
            verbose,
            DEFAULT_MAX_ATTEMPTS,
        )
        .await;
    engine.sweep(a.day(0)).await.unwrap();

    let slack = s.slack.received();
    assert!(slack.len() >= 2, "{} Slack messages", slack.len());
    let mut seen = Vec::new();
    for (k, m) in slack.iter().enumerate() {
        let blocks = m["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50, "part {k}: {} blocks", blocks.len());
        let text = m.to_string();
        assert!(
            text.contains(&format!("part {} of {}", k + 1, slack.len())),
            "{text}"
        );
        seen.extend(
            names
                .iter()
                .filter(|n| text.contains(&format!("role/{n}*"))),
        );
    }
    seen.sort();
    let all: Vec<&String> = names.iter().collect();
    assert_eq!(seen, all, "every identity, once");

    let feed = s.feed().await;
    assert!(feed.len() >= 2, "{} SNS messages", feed.len());
    let mut seen = Vec::new();
    for m in &feed {
        assert!(m.len() <= 256 * 1024, "{} bytes", m.len());
        assert!(m.contains(&format!("of {})", feed.len())), "numbered");
        seen.extend(names.iter().filter(|n| m.contains(&format!("role/{n} "))));
    }
    seen.sort();
    assert_eq!(seen, all, "every identity, once");
    assert!(engine.store.outbox(&a.id).await.unwrap().is_empty());
    for name in ["job-00", "job-59"] {
        let history = engine.store.history(&a.role_subject(name)).await.unwrap();
        assert!(
            history.iter().any(|e| e.step == NOTIFY_AUDIT_STEP
                && e.outcome == Outcome::Done
                && e.reason.contains("slack:#team-a")
                && e.reason.contains(" of ")),
            "{history:?}"
        );
    }
}

/// A message that keeps failing is tried once per run up to `[notify] max_attempts`, then
/// dead-lettered: audited as failed with the recipient and the last error, listed as a dead
/// letter, and not sent on the next run even when it would now go through. A permanent refusal
/// (Slack's 4xx other than 429) is dead-lettered at once.
#[tokio::test]
async fn a_message_failing_max_attempts_times_is_dead_lettered_audited_and_not_sent_again() {
    let s = Setup::new().await;
    let a = &s.a;
    a.role("billing-etl", 120, &[("owner", "alice@example.com")])
        .await;
    a.role("team-job", 120, &[("team", "team-a")]).await;
    let engine = s
        .engine_custom(
            s.routing(),
            Arc::new(dormant::ports::NoLinks),
            BTreeMap::new(),
            3,
        )
        .await;
    emulator().inject_fault(&a.id, "ses", "SendEmail", Fault::Http500, 1000);
    s.slack.fail_with(&[404]);
    let alice = a.role_subject("billing-etl");
    let failed = |history: &[dormant::domain::AuditEntry]| {
        history
            .iter()
            .filter(|e| e.step == NOTIFY_AUDIT_STEP && e.outcome == Outcome::Failed)
            .map(|e| e.reason.clone())
            .collect::<Vec<_>>()
    };

    engine.sweep(a.day(0)).await.unwrap();
    // Slack refused for good: dead at once.
    let job = engine
        .store
        .history(&a.role_subject("team-job"))
        .await
        .unwrap();
    let job = failed(&job);
    assert_eq!(job.len(), 1, "{job:?}");
    assert!(
        job[0].contains("slack:#team-a") && job[0].contains("dead-lettered"),
        "{}",
        job[0]
    );
    for run in 1..3 {
        let history = engine.store.history(&alice).await.unwrap();
        let reasons = failed(&history);
        assert_eq!(reasons.len(), run, "{reasons:?}");
        assert!(
            reasons[run - 1].contains(&format!("attempt {run} of 3")),
            "{}",
            reasons[run - 1]
        );
        engine
            .tick(a.day(0) + chrono::Duration::hours(run as i64))
            .await
            .unwrap();
    }
    let reasons = failed(&engine.store.history(&alice).await.unwrap());
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    let last = &reasons[2];
    assert!(
        last.contains("alice@example.com")
            && last.contains("failed 3 times")
            && last.contains("dead-lettered")
            && last.contains("SendEmail"),
        "the recipient and the last error: {last}"
    );
    let dead = engine.store.dead_letters(&a.id).await.unwrap();
    let mut dead_to: Vec<_> = dead.iter().map(|d| d.entry.recipient.to_string()).collect();
    dead_to.sort();
    assert_eq!(dead_to, ["alice@example.com", "slack:#team-a"], "{dead:?}");
    let alice_dead = dead
        .iter()
        .find(|d| d.entry.recipient.to_string() == "alice@example.com")
        .unwrap();
    assert_eq!(alice_dead.attempts, 3);
    assert!(
        alice_dead.last_error.contains("SendEmail"),
        "{alice_dead:?}"
    );
    assert!(engine.store.outbox(&a.id).await.unwrap().is_empty());

    // SES and Slack work again: a dead letter is not sent on the next runs.
    emulator().clear_faults(&a.id);
    engine
        .tick(a.day(0) + chrono::Duration::hours(4))
        .await
        .unwrap();
    engine.tick(a.day(1)).await.unwrap();
    assert!(s.emails().is_empty(), "{:?}", s.emails());
    assert!(s.slack.received().is_empty());
    assert_eq!(
        failed(&engine.store.history(&alice).await.unwrap()).len(),
        3
    );
    assert_eq!(engine.store.dead_letters(&a.id).await.unwrap().len(), 2);

    // The operator sees them: `dormant dead-letters`.
    let cli = crate::support::cli::Dormant::new(&a.id, a.day(0));
    let (code, rows) = cli.json(1, &["dead-letters"]);
    assert_eq!(code, 0, "{rows}");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows
        .iter()
        .any(|r| r["entry"]["recipient"] == "alice@example.com"
            && r["attempts"] == 3
            && r["last_error"].as_str().unwrap().contains("SendEmail")));
}
