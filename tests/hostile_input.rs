#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to one instant
//! Hostile and broken input. Each case ends in a clear error or a reasoned skip: never a panic,
//! never a stack overflow, never a partial change in IAM or DynamoDB.
//!
//! - events: oversized (> 256 KiB), nested 10,000 deep (as bytes: serde_json's recursion limit;
//!   as a `Value` built in memory: no recursion in dormant), wrong types, hostile names;
//! - identities: maximum-length names, 512-character paths of odd characters, 50 tags, an
//!   exemption whose date is not a date;
//! - configuration: contradictory or out-of-range values, each refused naming its field;
//! - IAM failing under a sweep: the bulk read or the credential report refused; a listing that
//!   ends early (moto never paginates `GetAccountAuthorizationDetails`, so a wrapper around the
//!   IAM port drops the last principal, as a lost last page would).

use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::Duration;
use dormant::adapters::iam::AwsIam;
use dormant::app::event::{handle_event, EventError};
use dormant::app::Engine;
use dormant::config::Config;
use dormant::domain::{
    Effect, Facts, Outcome, Policy, Principal, PrincipalKind, RestoreOutcome, Snapshot, Stage,
    Subject, Timestamp,
};
use dormant::inbound::eventbridge::{
    classify_all, classify_all_bytes, classify_bytes, MAX_EVENT_BYTES,
};
use dormant::ports::{ErrorKind, Iam, PortError, PortResult, Store};
use serde_json::{json, Value};

use crate::support::account::{as_refs, steps_done};
use crate::support::emulated_world::{is_mutating, World};
use crate::support::emulator::{emulator, Fault};
use crate::support::events::{fixture, rules};

/// The Access Analyzer unused-role finding, about `role` in this account.
fn unused_role_event(w: &World, id: &str, role_path_and_name: &str) -> Value {
    let mut e = fixture("access-analyzer-unused-role.json");
    e["id"] = Value::from(id);
    e["detail"]["resource"] =
        Value::from(format!("arn:aws:iam::{}:role/{role_path_and_name}", w.id));
    e["detail"]["accountId"] = Value::from(w.id.clone());
    e
}

/// What `handle` must do with a broken event: refuse it as malformed (never retried), saying
/// `expect`, without a single AWS call.
async fn assert_refused(w: &World, event: &Value, expect: &str) {
    let fleet = w.fleet(Policy::default()).await;
    w.drain_requests();
    let result = handle_event(event, &fleet, &rules(), None, w.at(0, 0)).await;
    match result {
        Err(e @ EventError::Malformed { .. }) => {
            assert!(!e.is_retryable(), "{e}");
            assert!(
                e.to_string().contains(expect),
                "the reason should mention {expect:?}: {e}"
            );
        }
        other => panic!("expected a malformed-event error mentioning {expect:?}, got {other:?}"),
    }
    assert_eq!(
        w.drain_requests(),
        Vec::<Value>::new(),
        "a refused event makes no AWS call at all"
    );
}

// ---- events ---------------------------------------------------------------------------------

/// Over EventBridge's 256 KiB an event cannot be real: refused before any AWS call, by the
/// Lambda's `handle`, by the byte classifier and by `dormant handle-event`. Just under the limit
/// the same event is processed.
#[tokio::test]
async fn an_event_over_256_kib_is_refused_before_any_aws_call() {
    let w = World::new().await;
    w.role_with("/", "padded", 200, None, &[]).await;
    let mut event = unused_role_event(&w, "huge-1", "padded");
    event["detail"]["padding"] = Value::from("x".repeat(MAX_EVENT_BYTES));
    assert_refused(&w, &event, "256 KiB").await;

    let bytes = serde_json::to_vec(&event).unwrap();
    assert!(bytes.len() > MAX_EVENT_BYTES);
    let verdicts = classify_all_bytes(&bytes, &rules());
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0].outcome(), "invalid", "{:?}", verdicts[0]);
    assert!(verdicts[0].reason().contains(&bytes.len().to_string()));

    let dormant = w.dormant();
    let path = dormant.write("huge.json", &bytes);
    let out = dormant.run(&["handle-event", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("malformed") && stderr.contains("256 KiB"),
        "{stderr}"
    );

    // Just under the limit: an ordinary event.
    let room = MAX_EVENT_BYTES
        - serde_json::to_vec(&unused_role_event(&w, "huge-2", "padded"))
            .unwrap()
            .len()
        - 64;
    let mut event = unused_role_event(&w, "huge-2", "padded");
    event["detail"]["padding"] = Value::from("x".repeat(room));
    assert!(serde_json::to_vec(&event).unwrap().len() <= MAX_EVENT_BYTES);
    let fleet = w.fleet(Policy::default()).await;
    let r = handle_event(&event, &fleet, &rules(), None, w.at(0, 0))
        .await
        .unwrap();
    assert_eq!(r.run.actions[0].outcome, Outcome::Done, "{r:?}");
    assert_eq!(r.run.actions[0].step.as_str(), "notice");
}

/// `[[[[…]]]]` 10,000 deep.
fn deep_array_text(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// The same as a `Value`, built without recursion.
fn deep_array_value(depth: usize) -> Value {
    let mut v = json!([]);
    for _ in 1..depth {
        v = Value::Array(vec![v]);
    }
    v
}

/// serde_json drops a `Value` recursively: take a deep one apart level by level first, so that
/// the test harness itself cannot overflow its stack.
fn dismantle(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// As bytes, nesting hits serde_json's recursion limit: a clear "not JSON" refusal. As a `Value`
/// already in memory (how `handle` receives it), dormant walks it without recursion: the
/// classification runs on a 256 KiB stack, and a deep value in a field dormant reads is refused
/// naming that field.
#[tokio::test]
async fn an_event_nested_10000_deep_is_refused_without_exhausting_the_stack() {
    let w = World::new().await;
    w.role_with("/", "nested", 200, None, &[]).await;
    let mut text = serde_json::to_string(&unused_role_event(&w, "deep-1", "nested")).unwrap();
    let at = text.rfind('}').unwrap();
    text.insert_str(at, &format!(",\"deep\":{}", deep_array_text(10_000)));
    for verdict in [
        classify_bytes(text.as_bytes(), &rules()),
        classify_all_bytes(text.as_bytes(), &rules()).remove(0),
    ] {
        assert_eq!(verdict.outcome(), "invalid");
        assert!(
            verdict.reason().contains("recursion limit"),
            "{}",
            verdict.reason()
        );
    }
    let dormant = w.dormant();
    let path = dormant.write("deep.json", text.as_bytes());
    let out = dormant.run(&["handle-event", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A malformed event, like any other `handle-event` refuses (`event classify` agrees).
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("recursion limit"), "{stderr}");
    let out = dormant.run_with_stdin(
        &["--output", "json", "event", "classify", "-"],
        text.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "invalid", "{v}");

    // In memory: deep values where dormant reads (the resource, the findings list, the whole
    // detail) and where it does not.
    let rules = rules();
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "detail.resource",
            deep_array_value(10_000),
            Some("detail.resource"),
        ),
        ("detail", deep_object_value(10_000), Some("detail.")),
        ("detail.unread", deep_array_value(10_000), None),
    ];
    for (field, deep, expect) in cases {
        let mut event = unused_role_event(&w, "deep-2", "nested");
        match field {
            "detail" => event["detail"] = deep,
            "detail.resource" => event["detail"]["resource"] = deep,
            _ => event["detail"]["unread"] = deep,
        }
        // Classification alone, on a small stack: any recursion over the value would overflow.
        let verdicts = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn({
                let rules = rules.clone();
                move || {
                    let verdicts: Vec<(String, String)> = classify_all(&event, &rules)
                        .iter()
                        .map(|c| (c.outcome().to_string(), c.reason().to_string()))
                        .collect();
                    dismantle(event);
                    verdicts
                }
            })
            .unwrap()
            .join()
            .expect("classifying a deep value must not overflow the stack");
        match expect {
            Some(name) => {
                assert_eq!(verdicts[0].0, "invalid", "{field}: {verdicts:?}");
                assert!(verdicts[0].1.contains(name), "{field}: {verdicts:?}");
            }
            None => assert_eq!(verdicts[0].0, "candidate", "{field}: {verdicts:?}"),
        }
    }
    // And through `handle`: refused with no AWS call.
    let mut event = unused_role_event(&w, "deep-3", "nested");
    event["detail"]["resource"] = deep_array_value(10_000);
    assert_refused(&w, &event, "detail.resource").await;
    dismantle(event);
}

fn deep_object_value(depth: usize) -> Value {
    let mut v = json!({});
    for _ in 1..depth {
        // Not `json!({"a": v})`: that serialises `v` again, recursively.
        let mut map = serde_json::Map::new();
        map.insert("a".to_string(), v);
        v = Value::Object(map);
    }
    v
}

/// A field of the wrong type makes the event malformed, and the reason names the field by its
/// JSON path; nothing reaches AWS.
#[tokio::test]
async fn events_with_fields_of_the_wrong_type_are_refused_naming_the_field() {
    let w = World::new().await;
    w.role_with("/", "typed", 200, None, &[]).await;
    let aa = unused_role_event(&w, "types", "typed");
    let mut sh = fixture("securityhub-iam8-user.json");
    sh["detail"]["findings"][0]["Resources"][0]["Id"] =
        Value::from(format!("arn:aws:iam::{}:user/typed-user", w.id));
    let config = fixture("config-user-noncompliant-aida.json");
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Value, Edit, &str)> = vec![
        (
            "id as a number",
            aa.clone(),
            |e| e["id"] = json!(42),
            "id must be a string",
        ),
        (
            "empty id",
            aa.clone(),
            |e| e["id"] = json!(""),
            "\"id\" is missing or empty",
        ),
        (
            "source as null",
            aa.clone(),
            |e| e["source"] = Value::Null,
            "\"source\" is missing",
        ),
        (
            "detail-type as an array",
            aa.clone(),
            |e| e["detail-type"] = json!(["x"]),
            "detail-type must be a string",
        ),
        (
            "account of 11 digits",
            aa.clone(),
            |e| e["account"] = json!("12345678901"),
            "\"account\" must be a 12-digit",
        ),
        (
            "account as a number",
            aa.clone(),
            |e| e["account"] = json!(123_456_789_012_u64),
            "account must be a string",
        ),
        (
            "detail as a string",
            aa.clone(),
            |e| e["detail"] = json!("{}"),
            "\"detail\" must be an object",
        ),
        (
            "detail.resource as a number",
            aa.clone(),
            |e| e["detail"]["resource"] = json!(7),
            "detail.resource",
        ),
        (
            "detail.status as an array",
            aa.clone(),
            |e| e["detail"]["status"] = json!(["ACTIVE"]),
            "detail.status",
        ),
        (
            "detail.findingType as an object",
            aa.clone(),
            |e| e["detail"]["findingType"] = json!({}),
            "detail.findingType",
        ),
        (
            "findings as an object",
            sh.clone(),
            |e| e["detail"]["findings"] = json!({}),
            "detail.findings",
        ),
        (
            "a finding as a string",
            sh.clone(),
            |e| e["detail"]["findings"][0] = json!("IAM.8"),
            "detail.findings[0]",
        ),
        (
            "Resources as a string",
            sh.clone(),
            |e| e["detail"]["findings"][0]["Resources"] = json!("x"),
            "Resources",
        ),
        (
            "Compliance.Status as a number",
            sh.clone(),
            |e| e["detail"]["findings"][0]["Compliance"]["Status"] = json!(1),
            "Compliance.Status",
        ),
        (
            "complianceType as a boolean",
            config.clone(),
            |e| e["detail"]["newEvaluationResult"]["complianceType"] = json!(false),
            "complianceType",
        ),
        (
            "resourceId as an array",
            config.clone(),
            |e| e["detail"]["resourceId"] = json!(["AIDA"]),
            "resourceId",
        ),
    ];
    for (what, mut event, edit, field) in cases {
        edit(&mut event);
        let fleet = w.fleet(Policy::default()).await;
        w.drain_requests();
        match handle_event(&event, &fleet, &rules(), None, w.at(0, 0)).await {
            Err(e @ EventError::Malformed { .. }) => {
                assert!(!e.is_retryable(), "{what}: {e}");
                assert!(
                    e.to_string().contains(field),
                    "{what}: should say {field:?}: {e}"
                );
            }
            other => panic!("{what}: expected malformed naming {field}, got {other:?}"),
        }
        assert!(w.drain_requests().is_empty(), "{what}: no AWS call");
    }
    // Not an object at all.
    for top in [
        json!([]),
        json!("event"),
        json!(42),
        Value::Null,
        json!(true),
    ] {
        assert_refused(&w, &top, "must be a JSON object").await;
    }
}

/// Names IAM would never accept (non-ASCII, control and bidi characters, spaces, 65 characters)
/// in each place an event names an identity: refused as malformed before any AWS call. An
/// exemption date written with non-ASCII digits is not a date: the exemption is ignored and the
/// reason says so.
#[tokio::test]
async fn hostile_names_in_events_are_refused_and_odd_exemption_dates_are_explained() {
    let w = World::new().await;
    let bad_names = [
        "rôle-ünïcode".to_string(),
        "emoji-🚀".to_string(),
        "rtl-\u{202E}evil".to_string(),
        "zero\u{200B}width".to_string(),
        "nul\u{0}byte".to_string(),
        "with space".to_string(),
        "x".repeat(65),
    ];
    for name in &bad_names {
        assert_refused(
            &w,
            &unused_role_event(&w, "names-aa", name),
            "detail.resource",
        )
        .await;

        let mut sh = fixture("securityhub-iam8-user.json");
        sh["detail"]["findings"][0]["Resources"][0]["Id"] =
            Value::from(format!("arn:aws:iam::{}:user/{name}", w.id));
        assert_refused(&w, &sh, "Resources").await;

        let mut ct = fixture("cloudtrail-tagrole-dormant-exempt.json");
        ct["detail"]["requestParameters"]["roleName"] = Value::from(name.as_str());
        ct["detail"]["recipientAccountId"] = Value::from(w.id.clone());
        assert_refused(&w, &ct, "is not an IAM name").await;
    }
    // `role/../../etc` is the legal path `/../../` and the name `etc`: looked up literally, and a
    // finding about a role that does not exist is a no-op.
    let fleet = w.fleet(Policy::default()).await;
    let engine = &fleet.engines[0];
    w.drain_requests();
    let r = handle_event(
        &unused_role_event(&w, "names-dots", "../../etc"),
        &fleet,
        &rules(),
        None,
        w.at(0, 0),
    )
    .await
    .unwrap();
    assert!(r.run.actions.is_empty() && r.run.evaluated == 0, "{r:?}");
    let iam: Vec<Value> = w
        .drain_requests()
        .into_iter()
        .filter(|r| r["service"] == "iam")
        .collect();
    assert!(
        iam.iter()
            .all(|r| r["operation"] == "GetRole" && r["RoleName"] == "etc"),
        "{iam:?}"
    );

    // A unique id that is not one (Config): skipped with the reason, or refused; never a lookup.
    let mut config = fixture("config-user-noncompliant-aida.json");
    config["detail"]["resourceId"] = Value::from("AIDA\u{FF21}\u{FF22}ÜNÏCODE");
    w.drain_requests();
    let r = handle_event(&config, &fleet, &rules(), None, w.at(0, 0)).await;
    assert!(
        matches!(&r, Err(EventError::Malformed { .. }))
            || r.as_ref().is_ok_and(|r| r.ignored.is_some()),
        "{r:?}"
    );
    assert!(w.drain_requests().iter().all(|r| r["service"] != "iam"));

    // The owner's exemption with a date in full-width digits (and a reason with non-ASCII
    // letters, which IAM allows): not a date, so the exemption holds (for `max_days` at most)
    // and the record says why.
    w.role_with(
        "/",
        "odd-exemption",
        200,
        None,
        &[
            ("dormant:exempt", "true"),
            ("dormant:exempt-until", "２０９９-01-01"),
            ("dormant:exempt-reason", "Zoë's Überprüfung"),
        ],
    )
    .await;
    let r = engine.sweep(w.at(0, 0)).await.unwrap();
    assert!(
        !r.actions
            .iter()
            .any(|a| a.identity.ends_with("role/odd-exemption") && a.outcome == Outcome::Done),
        "{r:?}"
    );
    let record = engine
        .store
        .load(&Subject::whole(Principal::role(
            &w.id,
            "/",
            "odd-exemption",
        )))
        .await
        .unwrap()
        .expect("the exemption is recorded");
    assert_eq!(record.stage, Stage::Exempt);
    assert!(
        record.reason.contains("is not a date") && record.reason.contains("Zoë's Überprüfung"),
        "{}",
        record.reason
    );
}

// ---- identities -------------------------------------------------------------------------------

/// A 512-character path of every character IAM allows in one (printable ASCII but `/` inside
/// segments): `!"#$%&'()*+,-.:;<=>?@[\]^_`{|}~` and alphanumerics.
fn odd_path() -> String {
    let odd = "odd!\"#$%&'()*+,-.:;<=>?@[\\]^_`{|}~AZaz09";
    let mut path = format!("/{odd}/");
    let filler = 512 - path.len() - 1;
    path.push_str(&"q".repeat(filler));
    path.push('/');
    assert_eq!(path.len(), 512);
    path
}

/// A 64-character role and user (the maximum) under a 512-character path of odd characters walk
/// the whole ladder, are deleted with a snapshot and restored under the same path and name; an
/// event naming the role by ARN finds it.
#[tokio::test]
async fn maximum_length_names_and_odd_paths_walk_the_ladder_and_are_restored() {
    let w = World::new().await;
    let path = odd_path();
    let role = format!("r{}", "=,.@_-+".repeat(9))
        .chars()
        .take(64)
        .collect::<String>();
    let user = format!("u{}", "A1-b2_c3.".repeat(8))
        .chars()
        .take(64)
        .collect::<String>();
    assert_eq!((role.len(), user.len()), (64, 64));
    w.role_with(&path, &role, 200, None, &[("team", "edge")])
        .await;
    w.user_with(&path, &user, 400, Some(200), true).await;
    w.key(&user, "edge-key", 300, Some(200), true).await;
    let mut policy = Policy::default();
    policy.breaker.min_count = 100;
    let fleet = w.fleet(policy).await;
    let engine = &fleet.engines[0];

    // The role is nominated by an event naming it by ARN, path included.
    let event = unused_role_event(&w, "edge-1", &format!("{}{role}", &path[1..]));
    let r = handle_event(&event, &fleet, &rules(), None, w.at(0, 0))
        .await
        .unwrap();
    assert_eq!(r.run.actions.len(), 1, "{r:?}");
    assert_eq!(r.run.actions[0].outcome, Outcome::Done, "{r:?}");
    let subject_role = Subject::whole(Principal::role(&w.id, &path, &role));
    let subject_user = Subject::whole(Principal::user(&w.id, &path, &user));
    assert_eq!(
        engine
            .store
            .load(&subject_role)
            .await
            .unwrap()
            .unwrap()
            .stage,
        Stage::Noticed
    );

    for (day, sweep) in [(0, true), (7, true), (14, false), (23, false), (30, false)] {
        let r = if sweep {
            engine.sweep(w.at(day, 1)).await
        } else {
            engine.tick(w.at(day, 1)).await
        }
        .unwrap();
        assert_eq!(r.failed(), 0, "day {day}: {r:?}");
    }
    for subject in [&subject_role, &subject_user] {
        let record = engine.store.load(subject).await.unwrap().unwrap();
        assert_eq!(record.stage, Stage::Deleted, "{subject}");
        let done = steps_done(engine, subject).await;
        assert_eq!(
            done.first().map(String::as_str),
            Some("notice"),
            "{subject}"
        );
        assert_eq!(done.last().map(String::as_str), Some("delete"), "{subject}");
    }
    assert!(w.role_state(&role).await.is_none() && w.user_state(&user).await.is_none());

    for (kind, name) in [("role", &role), ("user", &user)] {
        let report = engine
            .restore(
                &format!("{kind}/{name}").parse().unwrap(),
                "needed again",
                w.at(31, 0),
            )
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(report.outcome, Outcome::Done, "{report:?}");
    }
    let got = w.iam.get_role().role_name(&role).send().await.unwrap();
    assert_eq!(got.role().unwrap().path(), path);
    let got = w.iam.get_user().user_name(&user).send().await.unwrap();
    assert_eq!(got.user().unwrap().path(), path);
    assert_eq!(
        w.role_state(&role).await.unwrap()["tags"],
        json!({"team": "edge"}),
        "restored with the owner's tags and none of dormant's"
    );
}

/// IAM's quota of 50 tags per role or user (moto does not enforce it; the emulator's harness now
/// does too): `TagRole`/`TagUser` that would leave more than 50 fail as AWS fails them
/// (`LimitExceeded`, not retryable).
struct TagQuota {
    inner: AwsIam,
}

#[async_trait]
impl Iam for TagQuota {
    fn account(&self) -> &str {
        self.inner.account()
    }
    async fn bulk_facts(&self) -> PortResult<Vec<Facts>> {
        self.inner.bulk_facts().await
    }
    async fn name_by_unique_id(
        &self,
        kind: PrincipalKind,
        unique_id: &str,
    ) -> PortResult<Option<String>> {
        self.inner.name_by_unique_id(kind, unique_id).await
    }
    async fn fresh_facts(&self, kind: PrincipalKind, name: &str) -> PortResult<Option<Facts>> {
        self.inner.fresh_facts(kind, name).await
    }
    async fn apply(&self, principal: &Principal, effect: &Effect) -> PortResult<()> {
        if let Effect::PutTags { tags } = effect {
            let current = self
                .inner
                .fresh_facts(principal.kind, &principal.name)
                .await?
                .map(|f| f.tags)
                .unwrap_or_default();
            let mut keys: std::collections::BTreeSet<&str> =
                current.keys().map(String::as_str).collect();
            keys.extend(tags.iter().map(|(k, _)| k.as_str()));
            if keys.len() > 50 {
                let (op, quota) = match principal.kind {
                    PrincipalKind::Role => ("TagRole", "TagsPerRole"),
                    PrincipalKind::User => ("TagUser", "TagsPerUser"),
                };
                return Err(PortError::new(
                    ErrorKind::Permanent,
                    op,
                    format!("LimitExceeded: Cannot exceed quota for {quota}: 50"),
                ));
            }
        }
        self.inner.apply(principal, effect).await
    }
    async fn snapshot(&self, principal: &Principal, now: Timestamp) -> PortResult<Snapshot> {
        self.inner.snapshot(principal, now).await
    }
    async fn restore(&self, snapshot: &Snapshot) -> PortResult<RestoreOutcome> {
        self.inner.restore(snapshot).await
    }
}

/// A role with 50 tags of its owner's has no room for dormant's stage tag: the notice is taken
/// without it (no tag call IAM would refuse), nothing changes in IAM and the record says its state
/// is in DynamoDB only. With 47 the tag fits, and the role walks the whole ladder; deleted and
/// restored, it gets its owner's 47 tags back and none of dormant's.
#[tokio::test]
async fn fifty_owner_tags_leave_no_room_and_the_notice_is_taken_without_a_tag() {
    let w = World::new().await;
    let tags = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("owner-tag-{i:02}"), format!("v{i}")))
            .collect()
    };
    let (full, fits) = (tags(50), tags(47));
    w.role_with("/", "tag-full", 200, None, &as_refs(&full))
        .await;
    w.role_with("/", "tag-fits", 200, None, &as_refs(&fits))
        .await;
    let before = w.role_state("tag-full").await.unwrap();
    let engine = Engine::new(
        TagQuota {
            inner: w.adapter().await,
        },
        w.store().await,
        Policy::default(),
        "controller",
    );

    let r = engine.sweep(w.at(0, 0)).await.unwrap();
    assert_eq!(r.failed(), 0, "{r:?}");
    let full_action = r
        .actions
        .iter()
        .find(|a| a.identity.ends_with("role/tag-full"))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(full_action.outcome, Outcome::Done, "{full_action:?}");
    assert!(
        full_action
            .reason
            .ends_with("no room for dormant's tag (50 of 50 used); state kept in DynamoDB only"),
        "{full_action:?}"
    );
    assert_eq!(
        w.role_state("tag-full").await.unwrap(),
        before,
        "no tag written"
    );
    let record = engine
        .store
        .load(&Subject::whole(Principal::role(&w.id, "/", "tag-full")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.stage, Stage::Noticed);
    assert!(record.pending.is_none());

    let state = w.role_state("tag-fits").await.unwrap();
    assert_eq!(state["tags"].as_object().unwrap().len(), 48);
    assert!(state["tags"]["dormant:stage"]
        .as_str()
        .is_some_and(|v| v.starts_with("noticed next quarantine at ")));
    for day in [7, 23] {
        let r = engine.tick(w.at(day, 0)).await.unwrap();
        assert!(
            r.actions
                .iter()
                .any(|a| a.identity.ends_with("role/tag-fits") && a.outcome == Outcome::Done),
            "day {day}: {r:?}"
        );
    }
    assert!(w.role_state("tag-fits").await.is_none(), "deleted");
    engine
        .restore(
            &"role/tag-fits".parse().unwrap(),
            "needed again",
            w.at(24, 0),
        )
        .await
        .unwrap();
    let restored = w.role_state("tag-fits").await.unwrap();
    let expected: serde_json::Map<String, Value> = fits
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    assert_eq!(restored["tags"], Value::Object(expected));
}

// ---- configuration ----------------------------------------------------------------------------

/// Contradictory, out-of-range and mistyped values are refused at start-up, and the error names
/// the field (and says what is wrong with it).
#[test]
fn contradictory_or_out_of_range_configs_are_refused_naming_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        // (TOML, the field, something the message must say)
        ("[exemptions]\nrequire_until = true\nmax_days = 0", "exemptions.max_days", "at least 1"),
        ("[exemptions]\nmax_days = -365", "exemptions.max_days", "-365"),
        ("[ladder]\nnotice_to_quarantine_days = -7", "ladder.notice_to_quarantine_days", "-7"),
        ("[ladder]\nquarantine_to_keys_days = -1", "ladder.quarantine_to_keys_days", "-1"),
        ("[ladder]\nto_delete_days = -16", "ladder.to_delete_days", "-16"),
        ("[ladder]\ncooloff_days = -30", "ladder.cooloff_days", "-30"),
        ("[ladder]\nto_delete_days = 99999", "ladder.to_delete_days", "3650"),
        ("[ladder]\ndelete = \"ENABLED\"", "ladder.delete", "ENABLED"),
        ("[ladder]\ndelete = \"sometimes\"", "ladder.delete", "sometimes"),
        ("[inactivity]\nthreshold_days = 0", "inactivity.threshold_days", "at least 1"),
        ("[inactivity]\nkey_threshold_days = -45", "inactivity.key_threshold_days", "-45"),
        ("[inactivity]\nmin_age_days = -1", "inactivity.min_age_days", "-1"),
        ("[inactivity]\nthreshold_days = 9223372036854775807", "inactivity.threshold_days", "3650"),
        ("[inactivity]\nthreshold_days = 90.5", "inactivity.threshold_days", ""),
        ("[inactivity]\nthreshold_days = \"90\"", "inactivity.threshold_days", ""),
        ("[breaker]\nmax_quarantine_fraction = 0.0", "breaker.max_quarantine_fraction", "more than 0"),
        ("[breaker]\nmax_quarantine_fraction = -0.5", "breaker.max_quarantine_fraction", "-0.5"),
        ("[breaker]\nmax_quarantine_fraction = nan", "breaker.max_quarantine_fraction", "NaN"),
        ("[breaker]\nmax_quarantine_fraction = inf", "breaker.max_quarantine_fraction", "inf"),
        ("[breaker]\nmax_quarantine_fraction = 1.0000001", "breaker.max_quarantine_fraction", "at most 1"),
        ("[breaker]\nmax_actions_per_run = 0", "breaker.max_actions_per_run", "at least 1"),
        ("[breaker]\nmin_count = -5", "breaker.min_count", "-5"),
        ("[breaker]\nmax_actions_per_run = 4294967296", "breaker.max_actions_per_run", "4294967296"),
        ("table = \"\"", "table", "DynamoDB table name"),
        ("event_bus = \"  \"", "event_bus", "empty"),
        ("dry_run = \"yes\"", "dry_run", ""),
        ("[[accounts]]\nid = \"12345678901x\"", "accounts[0].id", "12-digit"),
        ("[[accounts]]\nid = \"111122223333\"\n[[accounts]]\nid = \"111122223333\"", "accounts[1].id", "twice"),
        ("[[accounts]]\nid = \"111122223333\"\nrole = \"not-an-arn\"", "accounts[0].role", "not-an-arn"),
        ("[exemptions]\nglobs = [\"breakglass\"]", "exemptions.globs[0]", "never matches"),
        ("[exemptions]\nglobs = [\"/ok\", \"/bad[\"]", "exemptions.globs[1]", "/bad["),
        ("[exemptions]\naccounts = [\"abc\"]", "exemptions.accounts[0]", "abc"),
        ("[fallback]\nssm_steps = [\"delete\"]", "fallback.automation_role", "required"),
        ("[fallback]\nssm_steps = [\"notice\"]\nautomation_role = \"arn:aws:iam::111122223333:role/a\"", "fallback.ssm_steps[0]", "notice"),
        ("[sources]\nconfig_rules = [\"\"]", "sources.config_rules[0]", "empty"),
        ("[ladder]\nnotice_days = 3", "ladder.notice_days", "notice_to_quarantine_days"),
    ];
    for (text, field, says) in cases {
        let e = Config::from_toml(text)
            .map(|_| ())
            .expect_err(&format!("{text:?} must be refused"));
        assert_eq!(e.field, *field, "{text:?}: {e}");
        let shown = e.to_string();
        assert!(
            shown.contains(field),
            "{text:?}: the message names the field: {shown}"
        );
        assert!(
            shown.contains(says),
            "{text:?}: the message should say {says:?}: {shown}"
        );
    }

    // The same refusals for the Lambda's JSON form.
    for (json, field) in [
        (
            r#"{"exemptions": {"require_until": true, "max_days": 0}}"#,
            "exemptions.max_days",
        ),
        (
            r#"{"breaker": {"max_quarantine_fraction": 0}}"#,
            "breaker.max_quarantine_fraction",
        ),
        (r#"{"ladder": {"cooloff_days": -1}}"#, "ladder.cooloff_days"),
        (
            r#"{"inactivity": {"threshold_days": 1e3}}"#,
            "inactivity.threshold_days",
        ),
    ] {
        let e = Config::from_json(json).map(|_| ()).unwrap_err();
        assert_eq!(e.field, field, "{json}: {e}");
    }

    // Syntax errors give the line; nesting 10,000 deep hits the parsers' recursion limits.
    let e = Config::from_toml("dry_run = true\ndry_run = false")
        .map(|_| ())
        .unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
    let e = Config::from_toml(&format!("x = {}", deep_array_text(10_000)))
        .map(|_| ())
        .unwrap_err();
    assert!(e.to_string().contains("recursion"), "{e}");
    // In JSON every level is typed, so a deep value is refused at its first level, naming it.
    let e = Config::from_json(&format!("{{\"ladder\": {}}}", deep_array_text(10_000)))
        .map(|_| ())
        .unwrap_err();
    assert!(e.field.starts_with("ladder"), "{e}");
    let e = Config::from_json(&deep_array_text(10_000))
        .map(|_| ())
        .unwrap_err();
    assert!(!e.to_string().is_empty());
}

/// Borderline but valid: every wait zero. A run still takes at most one step per identity, so
/// the ladder cannot collapse into one run.
#[tokio::test]
async fn zero_waits_still_take_one_step_per_run() {
    let w = World::new().await;
    w.role_with("/", "no-waiting", 200, None, &[]).await;
    let config = Config::from_toml(
        "[ladder]\nnotice_to_quarantine_days = 0\nquarantine_to_keys_days = 0\nto_delete_days = 0",
    )
    .unwrap();
    let engine = w.lambda_engine(config.policy).await;
    let now = w.at(0, 0);
    let mut taken = Vec::new();
    for n in 0..4 {
        let r = engine.sweep(now + Duration::minutes(n)).await.unwrap();
        let steps: Vec<String> = r
            .actions
            .iter()
            .filter(|a| a.outcome == Outcome::Done)
            .map(|a| a.step.as_str().to_string())
            .collect();
        assert!(steps.len() <= 1, "one step per run: {r:?}");
        taken.extend(steps);
    }
    assert_eq!(taken, vec!["notice", "quarantine", "delete"]);
}

// ---- IAM failing under a sweep ----------------------------------------------------------------

/// The bulk read or the credential report refused, or failing for longer than the retries: the
/// sweep fails with an error naming the call, and nothing is written, in IAM or DynamoDB. Once
/// IAM answers again, the same sweep goes through.
#[tokio::test]
async fn a_failing_bulk_read_fails_the_sweep_cleanly_with_nothing_changed() {
    let w = World::new().await;
    w.role_with("/", "bulk-idle", 200, None, &[]).await;
    w.user_with("/", "bulk-user", 400, Some(200), true).await;
    w.key("bulk-user", "bulk-key", 300, Some(200), true).await;
    let engine = w.lambda_engine(Policy::default()).await;
    let before = w.iam_state().await;
    for (op, fault, count) in [
        ("GetAccountAuthorizationDetails", Fault::Http500, 10),
        ("GetAccountAuthorizationDetails", Fault::AccessDenied, 1),
        ("GenerateCredentialReport", Fault::Throttle, 10),
        ("GetCredentialReport", Fault::AccessDenied, 1),
        ("GetCredentialReport", Fault::Http500, 10),
    ] {
        w.drain_requests();
        w.fault("iam", op, fault, count);
        let err = engine
            .sweep(w.at(0, 0))
            .await
            .expect_err("the sweep cannot read IAM");
        w.clear_faults();
        assert!(err.to_string().contains(op), "{op}: {err}");
        let requests = w.drain_requests();
        let writes: Vec<&Value> = requests
            .iter()
            .filter(|r| {
                (r["service"] == "iam" && r["operation"].as_str().is_some_and(is_mutating))
                    || r["operation"] == "PutItem"
            })
            .collect();
        assert!(
            writes.is_empty(),
            "{op} {fault:?}: nothing written: {writes:?}"
        );
        assert!(engine.store.list(&w.id, None).await.unwrap().is_empty());
        assert_eq!(w.iam_state().await, before, "{op}");
    }
    let r = engine.sweep(w.at(0, 1)).await.unwrap();
    assert_eq!(
        r.actions
            .iter()
            .filter(|a| a.outcome == Outcome::Done)
            .count(),
        2,
        "{r:?}"
    );
}

/// The IAM port with a bulk listing that ends early: the last `lost` principals are missing, as
/// when the last page of `GetAccountAuthorizationDetails` is lost or a listing is eventually
/// consistent. Everything else goes to the real adapter.
struct EndsEarly {
    inner: AwsIam,
    lost: usize,
}

#[async_trait]
impl Iam for EndsEarly {
    fn account(&self) -> &str {
        self.inner.account()
    }
    async fn bulk_facts(&self) -> PortResult<Vec<Facts>> {
        let mut all = self.inner.bulk_facts().await?;
        let keep = all.len().saturating_sub(self.lost);
        all.truncate(keep);
        Ok(all)
    }
    async fn name_by_unique_id(
        &self,
        kind: PrincipalKind,
        unique_id: &str,
    ) -> PortResult<Option<String>> {
        self.inner.name_by_unique_id(kind, unique_id).await
    }
    async fn fresh_facts(&self, kind: PrincipalKind, name: &str) -> PortResult<Option<Facts>> {
        self.inner.fresh_facts(kind, name).await
    }
    async fn apply(&self, principal: &Principal, effect: &Effect) -> PortResult<()> {
        self.inner.apply(principal, effect).await
    }
    async fn snapshot(&self, principal: &Principal, now: Timestamp) -> PortResult<Snapshot> {
        self.inner.snapshot(principal, now).await
    }
    async fn restore(&self, snapshot: &Snapshot) -> PortResult<RestoreOutcome> {
        self.inner.restore(snapshot).await
    }
}

/// A tracked, quarantined role missing from one bulk listing is still there: a sweep must not
/// conclude from the listing alone that it was "removed outside dormant" (which marks it deleted,
/// after which dormant never looks at it again: quarantined for ever, never released or
/// advanced). It should re-read the role before writing anything about it.
#[tokio::test]
async fn a_bulk_listing_that_ends_early_does_not_mark_tracked_identities_deleted() {
    let w = World::new().await;
    w.role_with("/", "listed-last", 200, None, &[]).await;
    let honest = w.lambda_engine(Policy::default()).await;
    honest.sweep(w.at(0, 0)).await.unwrap();
    honest.tick(w.at(7, 0)).await.unwrap();
    let subject = Subject::whole(Principal::role(&w.id, "/", "listed-last"));
    assert_eq!(
        honest.store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Quarantined
    );

    let truncated = Engine::new(
        EndsEarly {
            inner: w.adapter().await,
            lost: 1,
        },
        w.store().await,
        Policy::default(),
        "controller",
    );
    let r = truncated.sweep(w.at(8, 0)).await.unwrap();
    assert!(
        w.role_state("listed-last").await.is_some(),
        "the role exists"
    );
    let record = truncated.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(
        record.stage,
        Stage::Quarantined,
        "a role that exists is not recorded deleted: {r:?}"
    );

    // Used again: an honest sweep must still release it.
    emulator().backdate_role(&w.id, "listed-last", None, Some(w.at(9, 0)));
    honest.sweep(w.at(10, 0)).await.unwrap();
    assert_eq!(
        honest.store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Released
    );
    assert_eq!(
        w.role_state("listed-last").await.unwrap()["policies"],
        json!([])
    );
}

/// Latency on the bulk read is only slowness: the sweep waits and succeeds.
#[tokio::test]
async fn a_slow_bulk_read_is_only_slow() {
    let w = World::new().await;
    w.role_with("/", "slow-idle", 200, None, &[]).await;
    let engine = w.lambda_engine(Policy::default()).await;
    w.fault(
        "iam",
        "GetAccountAuthorizationDetails",
        Fault::Latency(StdDuration::from_millis(300)),
        1,
    );
    let r = engine.sweep(w.at(0, 0)).await.unwrap();
    assert_eq!(r.actions.len(), 1, "{r:?}");
    assert_eq!(r.actions[0].outcome, Outcome::Done);
}
