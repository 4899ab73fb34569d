#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! The limits of telling owners: a digest too big for its channel goes out in parts, a message
//! that keeps failing is dead-lettered, and a tag cannot send to a channel or topic the
//! configuration lacks.

use std::collections::BTreeMap;
use std::sync::Arc;

use dormant::app::engine::{DEFAULT_MAX_ATTEMPTS, NOTIFY_AUDIT_STEP};
use dormant::domain::Outcome;
use dormant::ports::Store;

use crate::support::emulator::{emulator, Fault};
use crate::support::owner_messages::{arn, Setup};

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

/// Near the run's deadline, owner messages are left queued for the next run rather than cut off
/// between a send and its marking.
#[tokio::test]
async fn near_the_deadline_messages_wait_for_the_next_run() {
    use dormant::app::deadline::{self, Deadline};
    let s = Setup::new().await;
    s.a.role("late-etl", 120, &[]).await;
    let engine = s.engine().await;
    let close = Some(Deadline::after(std::time::Duration::from_secs(4)));
    let report = deadline::within(close, engine.sweep(s.a.day(0)))
        .await
        .unwrap();
    assert_eq!(report.actions.len(), 1, "{report:?}");
    assert!(s.emails().is_empty(), "{:?}", s.emails());
    engine.tick(s.a.day(0)).await.unwrap();
    let emails = s.emails();
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert!(emails[0].2.contains(&arn(&s.a, "late-etl")));
}
