#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! The `dormant` binary as operators and scripts use it: `--help`, configuration errors, exit
//! codes and the JSON contract of docs/design.md, 'Operator commands', against the emulator.

use std::collections::BTreeSet;

use chrono::Duration;
use serde_json::{json, Value};

use crate::support::account::{Account, ALLOW_ALL, ALLOW_S3};
use crate::support::cli::{stderr, Dormant};
use crate::support::emulator::emulator;
use crate::support::events::fixture;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn help_lists_the_commands_that_exist_and_each_explains_itself() {
    let cli = Dormant::in_new_account();
    let out = cli.run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "init",
        "sweep",
        "tick",
        "list",
        "status",
        "history",
        "undo",
        "restore",
        "exempt",
        "approve",
        "report",
        "handle-event",
        "event",
        "permissions",
        "config",
        "breaker",
    ] {
        assert!(
            help.contains(&format!("  {cmd}")),
            "--help lacks {cmd}:\n{help}"
        );
        let sub = cli.run(&[cmd, "--help"]);
        assert!(sub.status.success(), "{cmd} --help");
        assert!(
            String::from_utf8_lossy(&sub.stdout).len() > 80,
            "{cmd} --help says something"
        );
    }
}

#[test]
fn a_bad_configuration_exits_2_naming_the_field_and_touches_nothing() {
    let cli = Dormant::in_new_account();
    for (text, field) in [
        (
            "[ladder]\nnotice_to_quarantine_days = -3",
            "ladder.notice_to_quarantine_days",
        ),
        ("[ladder]\nquarantine_days = 3", "ladder.quarantine_days"),
        (
            "[exemptions]\nglobs = [\"/ok\", \"/bad[\"]",
            "exemptions.globs[1]",
        ),
        (
            "[breaker]\nmax_quarantine_fraction = 2.0",
            "breaker.max_quarantine_fraction",
        ),
        ("dry_run = \"yes\"", "dry_run"),
        ("[ladder\n", "line"),
    ] {
        cli.config(text);
        let out = cli.run(&["sweep"]);
        assert_eq!(out.status.code(), Some(2), "{text}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(field),
            "{text}: stderr should name {field}: {}",
            stderr(&out)
        );
    }
    assert!(
        emulator().requests(cli.account()).is_empty(),
        "no AWS call with a bad configuration"
    );

    let out = cli.run(&["--config", "/nonexistent/dormant.toml", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/dormant.toml"));
    let out = cli.run(&["--now", "yesterday", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RFC 3339"));
}

#[tokio::test]
async fn json_output_follows_the_contract() {
    let a = Account::without_table().await;
    let cli = a.dormant();
    a.role("contract", 200, &[]).await;
    assert!(cli.run(&["init"]).status.success());

    emulator().clear_requests(&a.id);
    let (code, sweep) = cli.json(0, &["sweep"]);
    assert_eq!(code, 0);
    assert!(
        set(&["evaluated", "actions", "breaker_tripped"]).is_subset(&keys(&sweep)),
        "{sweep}"
    );
    assert_eq!(sweep["accounts"][0]["account"], a.id.as_str());
    // The run reports its own cost: the same IAM requests the emulator saw.
    let iam_seen = emulator()
        .requests(&a.id)
        .iter()
        .filter(|r| r["service"] == "iam")
        .count() as u64;
    let iam_reported: u64 = sweep["api_calls"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("iam:"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(iam_reported, iam_seen, "{}", sweep["api_calls"]);
    assert_eq!(sweep["api_calls"]["iam:GetAccountAuthorizationDetails"], 1);
    assert_eq!(sweep["evaluated"], 1);
    assert_eq!(sweep["breaker_tripped"], false);
    let action = &sweep["actions"][0];
    assert_eq!(
        keys(action),
        set(&["identity", "step", "outcome", "reason"])
    );
    let arn = format!("arn:aws:iam::{}:role/contract", a.id);
    assert_eq!(action["identity"], arn.as_str());
    assert_eq!(action["step"], "notice");
    assert_eq!(action["outcome"], "done");

    let status_fields = set(&[
        "identity",
        "kind",
        "stage",
        "next_step",
        "next_due_at",
        "exempt",
        "reason",
        "last_used_at",
    ]);
    let (code, status) = cli.json(1, &["status", "role/contract"]);
    assert_eq!(code, 0);
    assert_eq!(keys(&status), status_fields);
    assert_eq!(status["kind"], "role");
    assert_eq!(status["stage"], "noticed");
    assert_eq!(status["next_step"], "quarantine");
    assert!(status["next_due_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(status["exempt"], false);
    assert_eq!(status["last_used_at"], Value::Null);
    let (_, by_arn) = cli.json(1, &["status", &arn]);
    assert_eq!(by_arn["identity"], status["identity"]);

    let (code, list) = cli.json(1, &["list"]);
    assert_eq!(code, 0);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(keys(&list[0]), status_fields);
    let (_, none) = cli.json(1, &["list", "--stage", "quarantined"]);
    assert_eq!(none, Value::Array(vec![]));

    let (_, tick) = cli.json(7, &["tick"]);
    assert_eq!(tick["actions"][0]["step"], "quarantine");
    let (code, history) = cli.json(7, &["history", "role/contract"]);
    assert_eq!(code, 0);
    let h = history.as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        keys(&h[0]),
        set(&["at", "step", "outcome", "actor", "reason", "event_id"])
    );
    assert_eq!(
        (h[0]["step"].as_str(), h[1]["step"].as_str()),
        (Some("notice"), Some("quarantine"))
    );

    let (code, perms) = cli.json(0, &["permissions"]);
    assert_eq!(code, 0);
    let all: Vec<&str> = perms["all"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(all.contains(&"iam:AttachRolePolicy") && all.contains(&"iam:DeleteUser"));
    assert!(
        !all.contains(&"iam:PutRolePolicy"),
        "the controller writes no policy document"
    );
    assert!(all
        .iter()
        .all(|a| a.starts_with("iam:") && !a.contains('*')));
}

#[tokio::test]
async fn unknown_identities_and_refused_commands_exit_1_and_change_nothing() {
    let a = Account::without_table().await;
    let cli = a.dormant();
    a.role("tracked", 200, &[]).await;
    a.role("untracked", 200, &[]).await;
    assert!(cli.run(&["init"]).status.success());
    a.tag_role("untracked", &[("dormant:exempt", "true")]).await;
    cli.json(0, &["sweep"]);

    let out = cli.run(&["status", "role/ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    let out = cli.run(&["undo", "role/untracked", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not tracked"), "{}", stderr(&out));

    let out = cli.run(&["approve", "role/tracked", "--reason", "done with it"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not pending_delete"),
        "{}",
        stderr(&out)
    );

    emulator().clear_requests(&a.id);
    let past = (a.now - Duration::days(2)).format("%Y-%m-%d").to_string();
    let out = cli.run(&[
        "exempt",
        "role/tracked",
        "--until",
        &past,
        "--reason",
        "too late",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("in the past"), "{}", stderr(&out));
    let out = cli.run(&["restore", "role/tracked", "--reason", "needed again"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not deleted"), "{}", stderr(&out));
    let mutating: Vec<Value> = emulator()
        .requests(&a.id)
        .into_iter()
        .filter(|r| {
            let op = r["operation"].as_str().unwrap_or("");
            ["Tag", "Untag", "Put", "Delete", "Update", "Create"]
                .iter()
                .any(|p| op.starts_with(p))
        })
        .collect();
    assert!(
        mutating.is_empty(),
        "refused commands changed nothing: {mutating:?}"
    );
}

#[tokio::test]
async fn undo_releases_a_quarantined_role_once() {
    let a = Account::without_table().await;
    let cli = a.dormant();
    a.role("oops", 200, &[]).await;
    assert!(cli.run(&["init"]).status.success());
    cli.json(0, &["sweep"]);
    cli.json(7, &["tick"]);
    let iam = &a.iam;
    assert!(a.role_quarantined("oops").await);

    let (code, undo) = cli.json(
        8,
        &["undo", "role/oops", "--reason", "still needed by billing"],
    );
    assert_eq!(code, 0, "{undo}");
    assert_eq!(undo["outcome"], "done");
    assert_eq!(undo["stage"], "released");
    assert!(!a.role_quarantined("oops").await);
    let tags = iam.list_role_tags().role_name("oops").send().await.unwrap();
    assert!(tags.tags().iter().all(|t| !t.key().starts_with("dormant:")));

    let out = cli.run(&["undo", "role/oops", "--reason", "again"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already released"),
        "{}",
        stderr(&out)
    );
    let (_, history) = cli.json(8, &["history", "role/oops"]);
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["step"], "release");
    assert!(last["reason"]
        .as_str()
        .unwrap()
        .contains("still needed by billing"));
    assert!(
        last["actor"].as_str().unwrap().contains(&a.id),
        "the operator is recorded: {last}"
    );
}

#[tokio::test]
async fn exempt_releases_a_quarantined_role_and_approval_gates_deletion() {
    let a = Account::without_table().await;
    let cli = a.dormant();
    cli.config("[ladder]\ndelete = \"approval\"\n");
    a.role("keepme", 200, &[]).await;
    a.role("deleteme", 200, &[]).await;
    assert!(cli.run(&["init"]).status.success());
    cli.json(0, &["sweep"]);
    cli.json(7, &["tick"]);

    let until = (a.now + Duration::days(90)).format("%Y-%m-%d").to_string();
    let (code, ex) = cli.json(
        8,
        &[
            "exempt",
            "role/keepme",
            "--until",
            &until,
            "--reason",
            "DR drill in Q3",
        ],
    );
    assert_eq!(code, 0, "{ex}");
    assert_eq!(ex["stage"], "exempt");
    let iam = &a.iam;
    assert!(!a.role_quarantined("keepme").await);
    let tags: Vec<(String, String)> = iam
        .list_role_tags()
        .role_name("keepme")
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    assert!(tags.contains(&("dormant:exempt-until".into(), until.clone())));
    assert!(tags.contains(&("dormant:exempt-reason".into(), "DR drill in Q3".into())));

    let (_, t) = cli.json(23, &["tick"]);
    assert_eq!(t["actions"][0]["step"], "request_approval");
    let (_, t) = cli.json(40, &["tick"]);
    assert!(
        t["actions"].as_array().unwrap().is_empty(),
        "no deletion without approval"
    );
    assert!(iam.get_role().role_name("deleteme").send().await.is_ok());
    let (code, ap) = cli.json(
        41,
        &["approve", "role/deleteme", "--reason", "owner agreed"],
    );
    assert_eq!(code, 0, "{ap}");
    let (_, t) = cli.json(41, &["tick"]);
    assert_eq!(t["actions"][0]["step"], "delete");
    assert!(iam.get_role().role_name("deleteme").send().await.is_err());
}

#[tokio::test]
async fn delete_then_restore_brings_the_role_back_and_says_what_it_could_not() {
    let a = Account::without_table().await;
    let cli = a.dormant();
    a.role("phoenix", 200, &[]).await;
    a.tag_role("phoenix", &[("team", "payments")]).await;
    a.put_role_policy("phoenix", "read", ALLOW_S3).await;
    let iam = &a.iam;
    assert!(cli.run(&["init"]).status.success());
    for (day, cmd) in [(0, "sweep"), (7, "tick"), (23, "tick")] {
        cli.json(day, &[cmd]);
    }
    assert!(
        iam.get_role().role_name("phoenix").send().await.is_err(),
        "deleted"
    );

    let (code, restored) = cli.json(24, &["restore", "role/phoenix", "--reason", "needed again"]);
    assert_eq!(code, 0, "{restored}");
    assert_eq!(restored["outcome"], "done");
    assert_eq!(restored["stage"], "released");
    assert_eq!(
        restored["not_restored"],
        Value::Array(vec![]),
        "a role has no secrets to lose"
    );
    assert!(
        restored["restored"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("inline policy read")),
        "{restored}"
    );
    let role = iam.get_role().role_name("phoenix").send().await.unwrap();
    let tags: Vec<(String, String)> = iam
        .list_role_tags()
        .role_name("phoenix")
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    assert_eq!(
        tags,
        vec![("team".to_string(), "payments".to_string())],
        "the owner's tags, not dormant's"
    );
    assert!(role.role().is_some());
    assert_eq!(
        iam.list_role_policies()
            .role_name("phoenix")
            .send()
            .await
            .unwrap()
            .policy_names(),
        ["read".to_string()],
        "no quarantine policy comes back"
    );
    assert!(!a.role_quarantined("phoenix").await, "nor the managed one");

    let out = cli.run(&[
        "--yes",
        "restore",
        "role/phoenix",
        "--reason",
        "needed again",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "restoring a restored role is refused"
    );
    assert!(stderr(&out).contains("not deleted"));
}

/// dormant deleted `phoenix`; then someone created a new role of that name with their own trust,
/// tags and policy. `restore` would hand the old role's access to it: it refuses, exit 1, and
/// changes nothing in IAM or in dormant's record.
#[tokio::test]
async fn restore_refuses_a_role_someone_else_created_under_the_deleted_name() {
    let a = Account::without_table().await;
    let cli = a.dormant();
    a.role("phoenix", 200, &[]).await;
    a.put_role_policy("phoenix", "admin", ALLOW_ALL).await;
    let iam = &a.iam;
    assert!(cli.run(&["init"]).status.success());
    for (day, cmd) in [(0, "sweep"), (7, "tick"), (23, "tick")] {
        cli.json(day, &[cmd]);
    }
    assert!(
        iam.get_role().role_name("phoenix").send().await.is_err(),
        "deleted"
    );
    let newcomer_trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role()
        .role_name("phoenix")
        .assume_role_policy_document(newcomer_trust)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("team")
                .value("newcomer")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    a.put_role_policy("phoenix", "read", ALLOW_S3).await;
    let state = || async {
        let role = iam.get_role().role_name("phoenix").send().await.unwrap();
        let role = role.role().unwrap();
        let tags = iam
            .list_role_tags()
            .role_name("phoenix")
            .send()
            .await
            .unwrap();
        let inline = iam
            .list_role_policies()
            .role_name("phoenix")
            .send()
            .await
            .unwrap();
        let attached = iam
            .list_attached_role_policies()
            .role_name("phoenix")
            .send()
            .await
            .unwrap();
        (
            role.role_id().to_string(),
            role.assume_role_policy_document().map(str::to_string),
            tags.tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect::<Vec<_>>(),
            inline.policy_names().to_vec(),
            attached.attached_policies().len(),
        )
    };
    let before = state().await;
    assert_eq!(before.3, vec!["read".to_string()]);
    emulator().clear_requests(&a.id);

    let out = cli.run(&[
        "--yes",
        "restore",
        "role/phoenix",
        "--reason",
        "needed again",
    ]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("another identity"), "{err}");
    assert!(
        err.contains(&before.0),
        "names the holder's unique id: {err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(
        state().await,
        before,
        "the newcomer keeps exactly its own role"
    );
    let mutating: Vec<Value> = emulator()
        .requests(&a.id)
        .into_iter()
        .filter(|r| r["service"] == "iam")
        .filter(|r| {
            let op = r["operation"].as_str().unwrap_or("");
            !op.starts_with("Get") && !op.starts_with("List")
        })
        .collect();
    assert_eq!(mutating.len(), 1, "{mutating:?}");
    assert_eq!(mutating[0]["operation"], "CreateRole");
    assert_ne!(mutating[0]["status"], 200);
    let (_, history) = cli.json(24, &["history", "role/phoenix"]);
    assert!(
        !history.to_string().contains("restore"),
        "no restore recorded: {history}"
    );
}

#[tokio::test]
async fn the_compliance_report_streams_every_identity_as_csv_or_json() {
    let a = Account::without_table().await;
    let cli = a.dormant();
    a.role("audited", 200, &[]).await;
    a.create_user("/", "quiet-user", &[]).await;
    assert!(cli.run(&["init"]).status.success());
    cli.json(0, &["sweep"]);
    let now = cli.at(1);
    let out = cli.run(&["--now", &now, "report"]);
    assert!(out.status.success());
    let csv = String::from_utf8_lossy(&out.stdout);
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "account,identity,kind,path,created_at,last_used_at,evidence,days_inactive,stage,next_step,next_due_at,exempt,exemption,exempt_until,exempt_reason,credential_id,active");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{csv}");
    let audited = rows.iter().find(|r| r.contains("role/audited")).unwrap();
    assert!(
        audited.contains(",noticed,quarantine,") && audited.contains(",201,"),
        "{audited}"
    );

    let (code, json) = cli.json(1, &["report", "--format", "json"]);
    assert_eq!(code, 0);
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let user = rows.iter().find(|r| r["kind"] == "user").unwrap();
    assert_eq!(user["stage"], "clean");
    assert_eq!(user["evidence"], "never used (CreateDate)");
}

#[tokio::test]
async fn a_dry_run_claims_no_event_and_refuses_commands_that_only_change_state() {
    let a = Account::without_table().await;
    let cli = a.dormant();
    cli.run(&["init"]);
    a.role("legacy-app", 200, &[]).await;
    // A Config finding about the role, delivered once to a dry run and once for real.
    let mut event = fixture("cloudtrail-tagrole-dormant-exempt.json");
    event["account"] = json!(a.id);
    event["detail"]["recipientAccountId"] = json!(a.id);
    event["detail"]["requestParameters"]["roleName"] = json!("legacy-app");
    event["detail"]["requestParameters"]["tags"] = json!([{"key": "dormant:stage", "value": "x"}]);
    let file = cli.dir.join("event.json");
    std::fs::write(&file, event.to_string()).unwrap();
    let file = file.to_str().unwrap();

    let (code, dry) = cli.json(0, &["--dry-run", "handle-event", file]);
    assert_eq!(code, 0, "{dry}");
    assert_ne!(dry["duplicate"], json!(true), "{dry}");
    let (code, real) = cli.json(0, &["handle-event", file]);
    assert_eq!(code, 0, "{real}");
    assert_ne!(
        real["duplicate"],
        json!(true),
        "the dry run did not take the real delivery's place: {real}"
    );

    for args in [
        vec!["--dry-run", "init"],
        vec!["--dry-run", "breaker", "reset", "--reason", "x"],
    ] {
        let out = cli.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--dry-run"), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn exempting_a_credential_is_refused_rather_than_widened_to_its_user() {
    let a = Account::without_table().await;
    let cli = a.dormant();
    cli.run(&["init"]);
    a.create_user("/", "svc", &[]).await;
    let key_id = a.create_key("svc").await;
    let until = (a.now + Duration::days(30)).format("%Y-%m-%d").to_string();
    let who = format!("user/svc/key/{key_id}");
    let out = cli.run(&["exempt", &who, "--until", &until, "--reason", "batch"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("whole user"), "{stderr}");
    let tags = a.user_tags("svc").await;
    assert!(tags.is_empty(), "nothing written: {tags:?}");
}

#[test]
fn a_silent_endpoint_fails_within_the_configured_timeout_instead_of_hanging() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < until {
            if let Ok((stream, _)) = listener.accept() {
                open.push(stream);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    let cli = Dormant::in_new_account();
    cli.config("[timeouts]\nconnect_secs = 1\nread_secs = 1\noperation_secs = 2\n");
    let started = std::time::Instant::now();
    let out = cli
        .command()
        .args(["list"])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env_remove("AWS_MAX_ATTEMPTS")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(!out.status.success());
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("timeout") || stderr.contains("timed out"),
        "{stderr}"
    );
    drop(held);
}

#[tokio::test]
async fn a_sweep_the_breaker_stopped_exits_3() {
    let a = Account::without_table().await;
    let cli = a.dormant();
    cli.config("[breaker]\nmax_actions_per_run = 1\n");
    cli.run(&["init"]);
    for name in ["idle-a", "idle-b"] {
        a.role(name, 200, &[]).await;
    }
    let (code, first) = cli.json(0, &["sweep"]);
    assert_eq!(code, 0, "notices only: {first}");
    let (code, second) = cli.json(7, &["sweep"]);
    assert_eq!(second["breaker_tripped"], true, "{second}");
    assert_eq!(code, 3, "{second}");
}

#[test]
fn a_missing_table_says_to_run_init_in_words_and_in_json() {
    let cli = Dormant::in_new_account();
    let out = cli.run(&["list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run `dormant init`"), "{stderr}");
    let out = cli.run(&["--output", "json", "list"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["exit_code"], 1, "{doc}");
    assert!(
        doc["hint"].as_str().unwrap().contains("dormant init"),
        "{doc}"
    );
}

#[test]
fn commands_that_change_what_dormant_does_need_a_reason_and_keep_it() {
    let cli = Dormant::in_new_account();
    cli.run(&["init"]);
    for args in [
        vec!["approve", "role/x"],
        vec!["restore", "role/x"],
        vec!["breaker", "reset"],
    ] {
        let out = cli.run(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: a missing --reason is bad usage"
        );
    }
    let out = cli.run(&["breaker", "reset", "--reason", "  "]);
    assert_eq!(out.status.code(), Some(2), "an empty reason is refused");
    let (code, state) = cli.json(
        0,
        &[
            "breaker",
            "reset",
            "--reason",
            "false alarm: planned clean-up",
        ],
    );
    assert_eq!(code, 0, "{state}");
    assert_eq!(
        state["last_reset"]["reason"], "false alarm: planned clean-up",
        "{state}"
    );
    assert!(
        state["last_reset"]["by"]
            .as_str()
            .is_some_and(|b| !b.is_empty()),
        "{state}"
    );
    let (_, status) = cli.json(0, &["breaker", "status"]);
    assert_eq!(
        status["last_reset"], state["last_reset"],
        "kept with the breaker"
    );
}

#[test]
fn classify_and_handle_event_agree_on_an_empty_or_malformed_file_and_no_aws_call_is_made() {
    let cli = Dormant::in_new_account();
    for (name, bytes) in [("empty.json", &b""[..]), ("cut.json", &b"{\"id\": "[..])] {
        let path = cli.write(name, bytes);
        let path = path.to_str().unwrap();
        let out = cli.run(&["--output", "json", "event", "classify", path]);
        assert!(out.status.success(), "{}", stderr(&out));
        let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(verdict["outcome"], "invalid", "{verdict}");
        let reason = verdict["reason"].as_str().unwrap().to_string();

        emulator().clear_requests(cli.account());
        let out = cli.run(&["handle-event", path]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("malformed event {path}: {reason}")),
            "{name}: the same reason as classify ({reason}): {}",
            stderr(&out)
        );
        assert!(
            emulator().requests(cli.account()).is_empty(),
            "{name}: nothing sent to AWS"
        );
    }
}
