#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! `--dry-run` on the command line is a preview: every command that takes it either runs and
//! changes nothing anywhere (IAM, the table, events, automation) or refuses with exit 2 naming
//! the flag. And the first real sweep's question still knows a preview happened.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Duration;
use serde_json::{json, Value};

use crate::support::account::{Account, ALLOW_S3};
use crate::support::cli::{stderr, Dormant};
use crate::support::events::fixture;

/// Every leaf command of the clap definition, as its words (`["breaker", "reset"]`).
fn leaf_commands() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut here = path.to_vec();
            here.push(sub.get_name().to_string());
            if sub.has_subcommands() {
                walk(sub, &here, out);
            } else {
                out.push(here);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &<dormant::cli::Cli as clap::CommandFactory>::command(),
        &[],
        &mut out,
    );
    out
}

/// Everything about the account's identities that anyone could change: roles and users with
/// their ids, paths, tags, inline policy documents, attached policies, instance profiles,
/// groups, access keys and their status, console passwords; and the customer managed policies.
async fn iam_dump(a: &Account) -> Value {
    let iam = &a.iam;
    let mut roles = BTreeMap::new();
    for r in iam
        .list_roles()
        .max_items(1000)
        .send()
        .await
        .unwrap()
        .roles()
    {
        let name = r.role_name();
        let role = iam.get_role().role_name(name).send().await.unwrap();
        let role = role.role().unwrap();
        let attached = a.attached_role_policies(name).await;
        let profiles: Vec<String> = iam
            .list_instance_profiles_for_role()
            .role_name(name)
            .send()
            .await
            .unwrap()
            .instance_profiles()
            .iter()
            .map(|p| p.instance_profile_name().to_string())
            .collect();
        roles.insert(
            name.to_string(),
            json!({
                "id": role.role_id(),
                "path": role.path(),
                "description": role.description(),
                "max_session": role.max_session_duration(),
                "trust": role.assume_role_policy_document(),
                "boundary": role.permissions_boundary().and_then(|b| b.permissions_boundary_arn()),
                "tags": a.role_tags(name).await,
                "inline": a.role_policy_documents(name).await,
                "attached": attached,
                "profiles": profiles,
            }),
        );
    }
    let mut users = BTreeMap::new();
    for u in iam
        .list_users()
        .max_items(1000)
        .send()
        .await
        .unwrap()
        .users()
    {
        let name = u.user_name();
        let mut inline = BTreeMap::new();
        let names = iam
            .list_user_policies()
            .user_name(name)
            .send()
            .await
            .unwrap();
        for policy in names.policy_names() {
            let doc = iam
                .get_user_policy()
                .user_name(name)
                .policy_name(policy)
                .send()
                .await
                .unwrap();
            inline.insert(policy.clone(), doc.policy_document().to_string());
        }
        let attached: Vec<String> = iam
            .list_attached_user_policies()
            .user_name(name)
            .send()
            .await
            .unwrap()
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect();
        let groups: Vec<String> = iam
            .list_groups_for_user()
            .user_name(name)
            .send()
            .await
            .unwrap()
            .groups()
            .iter()
            .map(|g| g.group_name().to_string())
            .collect();
        let keys: BTreeMap<String, String> = a
            .key_statuses(name)
            .await
            .into_iter()
            .map(|(k, s)| (k, s.as_str().to_string()))
            .collect();
        users.insert(
            name.to_string(),
            json!({
                "id": u.user_id(),
                "path": u.path(),
                "tags": a.user_tags(name).await,
                "inline": inline,
                "attached": attached,
                "groups": groups,
                "keys": keys,
                "console": a.has_console(name).await,
            }),
        );
    }
    let policies: Vec<Value> = iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .unwrap()
        .policies()
        .iter()
        .map(|p| json!([p.arn(), p.default_version_id(), p.attachment_count()]))
        .collect();
    json!({"roles": roles, "users": users, "policies": policies})
}

/// Every item of dormant's table (a full Scan), ordered by key.
async fn table_dump(a: &Account) -> Vec<BTreeMap<String, String>> {
    let ddb = aws_sdk_dynamodb::Client::new(&a.sdk().await);
    let mut items = Vec::new();
    let mut start: Option<std::collections::HashMap<String, AttributeValue>> = None;
    for _ in 0..1000 {
        let page = ddb
            .scan()
            .table_name("dormant")
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        for item in page.items() {
            items.push(
                item.iter()
                    .map(|(k, v)| (k.clone(), format!("{v:?}")))
                    .collect::<BTreeMap<_, _>>(),
            );
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    items.sort_by(|x, y| (&x["pk"], &x["sk"]).cmp(&(&y["pk"], &y["sk"])));
    items
}

/// Requests that write something, in any service: everything but reads. (Generating the
/// credential report or an Access Advisor report is how IAM is read.)
fn writes(a: &Account) -> Vec<String> {
    const READS: &[&str] = &[
        "Get",
        "List",
        "Describe",
        "Query",
        "Scan",
        "BatchGet",
        "GenerateCredentialReport",
        "GenerateServiceLastAccessedDetails",
    ];
    a.requests()
        .iter()
        .filter_map(|r| r["operation"].as_str().map(str::to_string))
        .filter(|op| !READS.iter().any(|p| op.starts_with(p)))
        .collect()
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// An account with identities at every stage (`delete = "approval"`): `newbie` noticed, `cut`
/// quarantined (with an inline and a managed policy of its own), `pending` and the user
/// `keyholder` (with an idle access key and a console password) pending deletion, `doomed`
/// deleted with its snapshot, `kept` exempt by tag (and so never tracked). Day 45 has a
/// quarantine due.
async fn an_account_at_every_stage() -> (Account, Dormant) {
    let a = Account::new().await;
    let cli = a.dormant();
    cli.config("[ladder]\ndelete = \"approval\"\n");
    a.role("doomed", 200, &[]).await;
    a.role("pending", 200, &[]).await;
    a.role("kept", 200, &[("dormant:exempt", "true")]).await;
    a.user_with("/", "keyholder", 200, Some(150), true).await;
    a.key("keyholder", 200, 150).await;
    let managed = a.create_policy("reader", ALLOW_S3).await;
    a.attach_role_policy("pending", &managed).await;
    for day in [0, 7, 14, 23] {
        let (code, report) = cli.json(day, &["sweep"]);
        assert_eq!(code, 0, "day {day}: {report}");
    }
    a.role("cut", 200, &[]).await;
    a.put_role_policy("cut", "app", ALLOW_S3).await;
    a.attach_role_policy("cut", &managed).await;
    cli.json(30, &["sweep"]);
    let (code, approved) = cli.json(37, &["approve", "role/doomed", "--reason", "owner agreed"]);
    assert_eq!(code, 0, "{approved}");
    cli.json(37, &["sweep"]);
    a.role("newbie", 200, &[]).await;
    cli.json(38, &["sweep"]);

    let (_, list) = cli.json(38, &["list"]);
    let stage = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["identity"].as_str().unwrap().ends_with(name))
            .map(|r| r["stage"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    for (name, want) in [
        (":role/newbie", "noticed"),
        (":role/cut", "quarantined"),
        (":role/pending", "pending_delete"),
        (":user/keyholder", "pending_delete"),
        (":role/doomed", "deleted"),
    ] {
        assert_eq!(stage(name), want, "{name}: {list}");
    }
    assert!(!a.role_exists("doomed").await);
    (a, cli)
}

#[tokio::test]
async fn every_command_under_dry_run_changes_nothing_anywhere_or_refuses() {
    let (a, cli) = an_account_at_every_stage().await;
    let until = (a.now + Duration::days(75)).format("%Y-%m-%d").to_string();
    let mut nominating = fixture("config-role-by-name.json");
    nominating["account"] = json!(a.id);
    nominating["detail"]["awsAccountId"] = json!(a.id);
    nominating["detail"]["resourceId"] = json!("newbie");
    let role_event = cli.write("nominates-newbie.json", nominating.to_string().as_bytes());
    let mut scheduled = fixture("schedule-sweep.json");
    scheduled["account"] = json!(a.id);
    let sweep_event = cli.write("scheduled-sweep.json", scheduled.to_string().as_bytes());
    let (role_event, sweep_event) = (
        role_event.to_str().unwrap().to_string(),
        sweep_event.to_str().unwrap().to_string(),
    );

    // Each command as a preview runs it, and whether its output must show a step it would take;
    // and the commands that refuse it.
    let runs: Vec<(Vec<&str>, bool)> = vec![
        (vec!["sweep"], true),
        (vec!["tick"], true),
        (vec!["list"], false),
        (vec!["status", "role/cut"], false),
        (vec!["history", "role/cut"], false),
        (vec!["dead-letters"], false),
        (vec!["undo", "role/cut", "--reason", "preview"], true),
        (vec!["restore", "role/doomed", "--reason", "preview"], true),
        (
            vec![
                "exempt",
                "role/newbie",
                "--until",
                &until,
                "--reason",
                "preview",
            ],
            true,
        ),
        (vec!["approve", "role/pending", "--reason", "preview"], true),
        (vec!["handle-event", &role_event], true),
        (vec!["handle-event", &sweep_event], true),
        (vec!["event", "classify", &role_event], false),
        (vec!["report"], false),
        (vec!["plan"], false),
        (vec!["permissions"], false),
        (vec!["breaker", "status"], false),
        (vec!["completions", "bash"], false),
        (vec!["man"], false),
        (vec!["config"], false),
    ];
    let refused: Vec<Vec<&str>> = vec![
        vec!["init"],
        vec!["serve"],
        vec!["breaker", "reset", "--reason", "preview"],
    ];

    // Every command of the clap definition is run or refused here, and each invocation is one
    // of its commands: a new command must be added to one of the lists.
    let leaves = leaf_commands();
    let is = |args: &[&str], leaf: &[String]| {
        args.len() >= leaf.len() && leaf.iter().zip(args).all(|(l, a)| l == a)
    };
    let invocations: Vec<&[&str]> = runs
        .iter()
        .map(|(args, _)| args.as_slice())
        .chain(refused.iter().map(Vec::as_slice))
        .collect();
    for leaf in &leaves {
        assert!(
            invocations.iter().any(|args| is(args, leaf)),
            "`dormant {}` takes --dry-run: run it in this test, or list it as refused",
            leaf.join(" ")
        );
    }
    for args in &invocations {
        assert!(
            leaves.iter().any(|leaf| is(args, leaf)),
            "no such command: {args:?}"
        );
    }

    let iam_before = iam_dump(&a).await;
    let table_before = table_dump(&a).await;
    assert!(table_before.len() > 10, "{table_before:?}");
    a.clear_requests();
    let day = cli.at(45);
    for (args, shows_a_step) in &runs {
        // No --yes and no terminal: a preview never asks.
        let mut all = vec!["--dry-run", "--output", "json", "--now", day.as_str()];
        all.extend_from_slice(args);
        let stdout = ok(&cli.run(&all), &args.join(" "));
        if *shows_a_step {
            assert!(stdout.contains("\"dry_run\""), "{args:?}: {stdout}");
        }
    }
    for args in &refused {
        let mut all = vec!["--dry-run", "--now", day.as_str()];
        all.extend_from_slice(args);
        let out = cli.run(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--dry-run"),
            "{args:?}: {}",
            stderr(&out)
        );
    }

    assert_eq!(writes(&a), Vec::<String>::new(), "no write in any service");
    assert_eq!(iam_dump(&a).await, iam_before, "IAM is as it was");
    assert_eq!(table_dump(&a).await, table_before, "the table is as it was");

    // The same event delivered for real afterwards is processed, not taken for a duplicate.
    let (code, real) = cli.json(45, &["handle-event", &role_event]);
    assert_eq!(code, 0, "{real}");
    assert_ne!(real["duplicate"], json!(true), "{real}");
    assert!(real.to_string().contains("\"done\""), "{real}");
}

#[tokio::test]
async fn the_first_real_sweep_asks_unless_a_dry_run_was_seen_here_or_in_the_table() {
    // No dry run ever: asked (refused without a terminal or --yes).
    let a = Account::new().await;
    a.role("idle", 200, &[]).await;
    let cli = a.dormant();
    let now = cli.at(0);
    let first = cli.run(&["--now", &now, "sweep"]);
    assert_eq!(first.status.code(), Some(2), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("--dry-run sweep"),
        "{}",
        stderr(&first)
    );

    // A preview writes nothing in the table, yet counts: it is noted on this machine.
    ok(&cli.run(&["--now", &now, "--dry-run", "sweep"]), "preview");
    assert!(
        table_dump(&a).await.is_empty(),
        "{:?}",
        table_dump(&a).await
    );
    let note = cli.dir.join(".state/dry-runs/dormant").join(&a.id);
    assert!(note.is_file(), "{}", note.display());
    let real = ok(&cli.run(&["--now", &now, "sweep"]), "real sweep");
    assert!(real.contains("1 step taken"), "{real}");

    // A preview that cannot keep its note says so and still succeeds; the real sweep asks.
    let b = Account::new().await;
    b.role("idle", 200, &[]).await;
    let cli = b.dormant();
    let blocked = cli.write("not-a-directory", b"");
    let out = cli
        .command()
        .args(["--now", &now, "--dry-run", "sweep"])
        .env("DORMANT_STATE_DIR", &blocked)
        .output()
        .unwrap();
    ok(&out, "preview without a state directory");
    assert!(
        stderr(&out).contains("could not note the dry run"),
        "{}",
        stderr(&out)
    );
    let asked = cli
        .command()
        .args(["--now", &now, "sweep"])
        .env("DORMANT_STATE_DIR", &blocked)
        .output()
        .unwrap();
    assert_eq!(asked.status.code(), Some(2), "{}", stderr(&asked));

    // An observing run (dry_run = true in the file) keeps its trail in the table: notes and
    // the marker, which the first real sweep counts, from any machine.
    let c = Account::new().await;
    c.role("idle", 200, &[]).await;
    let cli = c.dormant();
    cli.config("dry_run = true\n");
    ok(&cli.run(&["--now", &now, "sweep"]), "observing sweep");
    let items = table_dump(&c).await;
    assert!(
        items.iter().any(|i| i["pk"].contains("DRYRUN#")),
        "{items:?}"
    );
    assert!(
        items
            .iter()
            .any(|i| i.get("entry").is_some_and(|e| e.contains("dry_run"))),
        "{items:?}"
    );
    assert!(!cli.dir.join(".state").exists());
    cli.config("");
    let real = ok(
        &cli.run(&["--now", &now, "sweep"]),
        "real sweep after observing",
    );
    assert!(real.contains("1 step taken"), "{real}");
}
