#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Telling owners: digests per recipient through the emulator's SES (sent emails read back
//! from moto), SNS (through an SQS subscription) and a Slack webhook on a loopback port; no
//! second message when a run faulted after sending; a failed send never blocks a step, is
//! audited, and goes out on the next run. (Sizes, dead letters and refused tags:
//! tests/notify_limits.rs.)

use std::sync::Arc;

use dormant::app::engine::{NOTIFY_AUDIT_STEP, SEND_LEASE};
use dormant::app::fleet::Fleet;
use dormant::domain::{Outcome, Policy, Stage};
use dormant::ports::Store;

use crate::support::account::Account;
use crate::support::emulator::{emulator, Fault};
use crate::support::owner_messages::{arn, Setup};

const HOSTILE: &str = "\"><img src=x onerror=alert(1)><script>alert(2)</script>";

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

/// A run over several accounts tells each recipient once: one digest of its identities in every
/// account, not one per account.
#[tokio::test]
async fn a_fleet_run_sends_one_digest_per_recipient_across_accounts() {
    let s = Setup::new().await;
    let member = Account::without_table().await;
    s.a.role("controller-side", 120, &[]).await;
    member.role("member-side", 120, &[]).await;
    let fleet = Fleet {
        engines: vec![
            Arc::new(s.engine().await),
            Arc::new(s.member_engine(&member).await),
        ],
        unreachable: Vec::new(),
        concurrency: 2,
        analyzer: None,
    };
    let report = fleet.sweep(s.a.day(0)).await;
    assert_eq!(report.run.actions.len(), 2, "{report:?}");
    let emails = s.emails();
    assert_eq!(emails.len(), 1, "one digest for the fallback: {emails:?}");
    let (to, subject, body) = &emails[0];
    assert_eq!(to, "secops@example.com");
    assert!(subject.contains("2 unused identities"), "{subject}");
    assert!(body.contains(&arn(&s.a, "controller-side")), "{body}");
    assert!(body.contains(&arn(&member, "member-side")), "{body}");
    assert_eq!(s.feed().await.len(), 1, "the feed too hears once");
    // Both accounts' outboxes are empty: nothing is sent again.
    fleet.tick(s.a.day(1)).await;
    assert_eq!(s.emails().len(), 1);
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
