#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! The operator's first afternoon, against the emulator: identities as the tool prints them,
//! messages that are true, readable tables, filters and confirmations, a safe first run,
//! completions and the man page, and report rows per credential.

#[path = "cli_operator/op.rs"]
pub(crate) mod op;

use std::process::Stdio;

use crate::support::account::{Account, TRUST};
use crate::support::emulator::emulator;
use chrono::Duration;
use op::{err, iam_writes, out, Op};
use serde_json::Value;

async fn role_at(a: &Account, path: &str, name: &str, created_days_ago: i64) {
    a.iam
        .create_role()
        .role_name(name)
        .path(path)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    emulator().backdate_role(
        &a.id,
        name,
        Some(a.now - Duration::days(created_days_ago)),
        None,
    );
}

#[tokio::test]
async fn identities_are_taken_as_printed_and_a_miss_suggests_the_nearest() {
    let a = Account::new().await;
    role_at(&a, "/ops/team/", "deploy", 200).await;
    a.role("Old-App-Role", 200, &[]).await;
    a.user("keyholder", 200).await;
    let key = a.key("keyholder", 200, 150).await;
    let op = Op::new(&a);
    op.json(0, &["sweep"]);

    // The list prints role/PATH/NAME, and that is what status takes.
    let list = op.run(1, &["list"]);
    assert!(
        out(&list).contains("role/ops/team/deploy"),
        "{}",
        out(&list)
    );
    let (code, status) = op.json(1, &["status", "role/ops/team/deploy"]);
    assert_eq!(code, 0, "{status}");
    assert_eq!(
        status["identity"],
        format!("arn:aws:iam::{}:role/ops/team/deploy", a.id)
    );
    let (code, _) = op.json(1, &["history", "role/ops/team/deploy"]);
    assert_eq!(code, 0);
    let (code, _) = op.json(1, &["status", "role/deploy"]);
    assert_eq!(code, 0, "without its path the name is looked up");

    // A wrong path is a miss, and the miss names the real one.
    let wrong = op.run(1, &["status", "role/ops/deploy"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        err(&wrong).contains("did you mean role/ops/team/deploy?"),
        "{}",
        err(&wrong)
    );
    let typo = op.run(1, &["status", "role/old-app-role"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        err(&typo).contains("did you mean role/Old-App-Role?"),
        "{}",
        err(&typo)
    );
    let stranger = op.run(1, &["status", "role/payments-batch-nightly"]);
    assert_eq!(stranger.status.code(), Some(1));
    assert!(
        !err(&stranger).contains("did you mean"),
        "{}",
        err(&stranger)
    );

    // A key the user does not have is as unknown as a role that does not exist.
    let ghost = op.run(1, &["status", "user/keyholder/key/AKIAIOSFODNN7EXAMPLE"]);
    assert_eq!(ghost.status.code(), Some(1), "{}", err(&ghost));
    assert!(
        err(&ghost).contains("does not exist") && err(&ghost).contains(&key),
        "names the keys it has: {}",
        err(&ghost)
    );
    let ghost = op.run(
        1,
        &[
            "history",
            &format!(
                "arn:aws:iam::{}:user/keyholder/key/AKIAIOSFODNN7EXAMPLE",
                a.id
            ),
        ],
    );
    assert_eq!(ghost.status.code(), Some(1), "{}", err(&ghost));
    let (code, real) = op.json(1, &["status", &format!("user/keyholder/key/{key}")]);
    assert_eq!(code, 0, "{real}");
    assert_eq!(real["kind"], "access_key");
}

#[tokio::test]
async fn refusals_counts_breaker_report_and_history_say_what_is_true() {
    let a = Account::new().await;
    a.role("idle-a", 200, &[]).await;
    a.role("idle-b", 200, &[]).await;
    a.role("kept", 200, &[("dormant:exempt", "true")]).await;
    let op = Op::new(&a);
    // An observing dry run (it records its notes) and a real sweep at the same instant: the
    // history keeps their order.
    op.config("dry_run = true\n[breaker]\nmax_actions_per_run = 1\n");
    op.json(0, &["sweep"]);
    op.config("[breaker]\nmax_actions_per_run = 1\n");
    let sweep = op.run(0, &["--yes", "sweep"]);
    assert_eq!(sweep.status.code(), Some(0), "{}", err(&sweep));
    assert!(
        out(&sweep).contains("evaluated 3 identities: 2 steps taken"),
        "{}",
        out(&sweep)
    );
    let (_, history) = op.json(0, &["history", "role/idle-a"]);
    let outcomes: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["dry_run", "done"], "{history}");

    // Refusals on an exempt identity say it is exempt, not that there is nothing to undo.
    for args in [
        vec!["--yes", "approve", "role/kept", "--reason", "r"],
        vec!["--yes", "restore", "role/kept", "--reason", "r"],
    ] {
        let o = op.run(1, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", err(&o));
        assert!(
            err(&o).contains("exempt by tag dormant:exempt") && !err(&o).contains("undo"),
            "{args:?}: {}",
            err(&o)
        );
    }

    // An empty filtered list says so in text; JSON stays [].
    let none = op.run(1, &["list", "--stage", "quarantined"]);
    assert_eq!(out(&none).trim(), "no identity at stage quarantined");
    let (_, json) = op.json(1, &["list", "--stage", "quarantined"]);
    assert_eq!(json, serde_json::json!([]));

    // The breaker trips on the second quarantine; its text has the JSON's numbers.
    let tick = op.run(7, &["--yes", "tick"]);
    assert_eq!(tick.status.code(), Some(3), "{}", out(&tick));
    assert!(
        out(&tick).contains("1 step taken, 1 skipped; CIRCUIT BREAKER TRIPPED"),
        "{}",
        out(&tick)
    );
    let (_, state) = op.json(7, &["breaker", "status"]);
    assert_eq!(state["tripped"], true, "{state}");
    let text = out(&op.run(7, &["breaker", "status"]));
    let cause = state["cause"].as_str().unwrap();
    assert!(text.contains(cause), "{text}");
    assert_eq!(state["quarantines_last_24h"], 1);
    assert!(text.contains("1 quarantine in the last 24 h"), "{text}");
    let clears = (a.now + Duration::days(8))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    assert!(
        text.contains(&format!("the window clears at {clears}")),
        "{text}"
    );

    // --output json makes the report JSON; disagreeing flags are bad usage.
    let (code, report) = op.json(7, &["report"]);
    assert_eq!(code, 0);
    assert!(report.as_array().is_some_and(|r| r.len() == 3), "{report}");
    let both = op.run(7, &["--output", "json", "report", "--format", "csv"]);
    assert_eq!(both.status.code(), Some(2));
    assert!(err(&both).contains("disagree"), "{}", err(&both));
    let csv = op.run(7, &["report", "--format", "csv"]);
    assert!(
        out(&csv).starts_with("account,identity,kind,"),
        "{}",
        out(&csv)
    );
}

#[tokio::test]
async fn tables_are_short_by_default_wide_on_request_and_plain_off_a_terminal() {
    let a = Account::new().await;
    a.role("idle", 200, &[]).await;
    role_at(&a, "/ops/", "deploy", 200).await;
    let op = Op::new(&a);

    let sweep = op.run(0, &["--yes", "sweep"]);
    assert!(err(&sweep).is_empty(), "quiet by default: {}", err(&sweep));
    let verbose = op.run(0, &["-v", "--yes", "sweep"]);
    assert!(err(&verbose).contains("INFO"), "{}", err(&verbose));
    assert!(!err(&verbose).contains('\u{1b}'), "no ANSI off a terminal");
    let debug = op
        .command(0, &["--yes", "tick"])
        .env("DORMANT_LOG", "debug")
        .output()
        .unwrap();
    assert!(err(&debug).contains("DEBUG"), "DORMANT_LOG overrides");

    let list = out(&op.run(1, &["list"]));
    assert!(list.starts_with(&format!("account {}\n", a.id)), "{list}");
    assert!(
        list.contains("role/idle") && list.contains("role/ops/deploy"),
        "{list}"
    );
    assert!(!list.contains("arn:aws:iam"), "{list}");
    assert!(!list.contains('\u{1b}'), "no colour when piped: {list:?}");
    let wide = out(&op.run(1, &["--wide", "list"]));
    assert!(
        wide.contains(&format!("arn:aws:iam::{}:role/ops/deploy", a.id)),
        "{wide}"
    );
    let (_, json) = op.json(1, &["list"]);
    assert!(
        json[0]["identity"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:iam::"),
        "JSON keeps full ARNs: {json}"
    );

    if let Some((code, shown)) = op.on_terminal(1, &["list"], "", &[]) {
        assert_eq!(code, 0, "{shown}");
        assert!(
            shown.contains("\u{1b}["),
            "stages in colour on a terminal: {shown:?}"
        );
        let (_, plain) = op
            .on_terminal(1, &["list"], "", &[("NO_COLOR", "1")])
            .unwrap();
        assert!(!plain.contains("\u{1b}["), "NO_COLOR: {plain:?}");
    }
}

#[tokio::test]
async fn list_filters_combine() {
    let a = Account::new().await;
    a.role("idle-app", 200, &[]).await;
    role_at(&a, "/batch/", "idle-batch", 200).await;
    a.user("idle-person", 200).await;
    let op = Op::new(&a);
    op.json(0, &["sweep"]);
    let names = |args: &[&str]| -> Vec<String> {
        let (code, v) = op.json(1, &[&["list"], args].concat());
        assert_eq!(code, 0, "{args:?}: {v}");
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["identity"]
                    .as_str()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(names(&["--kind", "user"]), ["user/idle-person"]);
    assert_eq!(names(&["--kind", "role"]).len(), 2);
    assert_eq!(names(&["--name", "idle-b*"]), ["role/batch/idle-batch"]);
    assert_eq!(names(&["--name", "batch/*"]), ["role/batch/idle-batch"]);
    assert_eq!(
        names(&["--kind", "role", "--name", "*-app"]),
        ["role/idle-app"]
    );
    assert_eq!(names(&["--account", &a.id]).len(), 3);
    // Notices were due 7 days after day 0.
    let due = (a.now + Duration::days(8)).format("%Y-%m-%d").to_string();
    assert_eq!(names(&["--due-before", &due]).len(), 3);
    let early = (a.now + Duration::days(2)).to_rfc3339();
    assert!(names(&["--due-before", &early]).is_empty());

    let other = op.run(1, &["list", "--account", "999999999999"]);
    assert_eq!(other.status.code(), Some(2), "{}", err(&other));
    let bad = op.run(1, &["list", "--due-before", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    let none = op.run(1, &["list", "--kind", "user", "--name", "nobody"]);
    assert_eq!(out(&none).trim(), "no tracked identity matches the filters");
}

#[tokio::test]
async fn commands_that_delete_or_reset_ask_on_a_terminal_and_need_yes_without_one() {
    let a = Account::new().await;
    a.role("doomed", 200, &[]).await;
    let op = Op::new(&a);
    op.config("[ladder]\ndelete = \"approval\"\n");
    op.json(0, &["sweep"]);
    // No deletion due: a tick runs without asking.
    for day in [7, 23, 40] {
        let tick = op.run(day, &["tick"]);
        assert_eq!(tick.status.code(), Some(0), "day {day}: {}", err(&tick));
    }
    let (_, status) = op.json(40, &["status", "role/doomed"]);
    assert_eq!(status["stage"], "pending_delete", "{status}");

    // No terminal, no --yes: refused, saying what it would do and naming --yes.
    emulator().clear_requests(&a.id);
    let approve = op.run(40, &["approve", "role/doomed", "--reason", "owner agreed"]);
    assert_eq!(approve.status.code(), Some(2), "{}", err(&approve));
    assert!(
        err(&approve).contains("--yes") && err(&approve).contains("deletion of role/doomed"),
        "{}",
        err(&approve)
    );
    let reset = op.run(40, &["breaker", "reset", "--reason", "x"]);
    assert_eq!(reset.status.code(), Some(2));
    assert!(err(&reset).contains("--yes"), "{}", err(&reset));

    // On a terminal: "n" changes nothing, "y" approves.
    if let Some((code, shown)) = op.on_terminal(
        40,
        &["approve", "role/doomed", "--reason", "owner agreed"],
        "n\n",
        &[],
    ) {
        assert_eq!(code, 1, "{shown}");
        assert!(shown.contains("Go ahead? [y/N]"), "{shown}");
        assert!(shown.contains("not confirmed"), "{shown}");
        let (code, shown) = op
            .on_terminal(
                40,
                &["approve", "role/doomed", "--reason", "owner agreed"],
                "y\n",
                &[],
            )
            .unwrap();
        assert_eq!(code, 0, "{shown}");
    } else {
        let (code, _) = op.json(40, &["approve", "role/doomed", "--reason", "owner agreed"]);
        assert_eq!(code, 0);
    }
    assert!(iam_writes(&a.id).is_empty(), "{:?}", iam_writes(&a.id));

    // A tick that would delete asks too.
    let tick = op.run(41, &["tick"]);
    assert_eq!(tick.status.code(), Some(2), "{}", err(&tick));
    assert!(
        err(&tick).contains("delete 1 identity (role/doomed)") && err(&tick).contains("--yes"),
        "{}",
        err(&tick)
    );
    assert!(a.iam.get_role().role_name("doomed").send().await.is_ok());
    let (code, _) = op.json(41, &["tick"]);
    assert_eq!(code, 0);
    assert!(a.iam.get_role().role_name("doomed").send().await.is_err());

    let restore = op.run(42, &["restore", "role/doomed", "--reason", "needed"]);
    assert_eq!(restore.status.code(), Some(2), "{}", err(&restore));
    assert!(
        err(&restore).contains("from its snapshot"),
        "{}",
        err(&restore)
    );
    let (code, restored) = op.json(42, &["restore", "role/doomed", "--reason", "needed"]);
    assert_eq!(code, 0, "{restored}");
}

#[tokio::test]
async fn init_writes_a_starter_configuration_and_a_first_real_sweep_asks() {
    let account = emulator().new_account();
    let op = Op::bare(&account);
    let init = op.run(0, &["init"]);
    assert_eq!(init.status.code(), Some(0), "{}", err(&init));
    assert!(
        out(&init).contains("wrote ./dormant.toml"),
        "{}",
        out(&init)
    );
    let written = std::fs::read_to_string(op.dir.join("dormant.toml")).unwrap();
    assert!(written.contains("\ndry_run = true"), "{written}");
    // Again: the table exists, the file is not touched (a dry_run file does not stop init).
    std::fs::write(op.dir.join("dormant.toml"), "dry_run = true # mine\n").unwrap();
    let (code, again) = op.json(0, &["init"]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["config_written"], Value::Null);
    assert_eq!(
        std::fs::read_to_string(op.dir.join("dormant.toml")).unwrap(),
        "dry_run = true # mine\n"
    );
    let (code, _) = op.json(0, &["--config", "dormant.toml", "init"]);
    assert_eq!(code, 0);

    let iam = aws_sdk_iam::Client::new(&emulator().sdk_config_for(&account).await);
    iam.create_role()
        .role_name("idle")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    emulator().backdate_role(&account, "idle", Some(op.now - Duration::days(200)), None);

    // dry_run = false and no dry run ever: the first real sweep is refused without --yes.
    op.config("");
    emulator().clear_requests(&account);
    let first = op.run(0, &["sweep"]);
    assert_eq!(first.status.code(), Some(2), "{}", err(&first));
    assert!(
        err(&first).contains("--dry-run sweep") && err(&first).contains("--yes"),
        "{}",
        err(&first)
    );
    assert!(
        iam_writes(&account).is_empty(),
        "{:?}",
        iam_writes(&account)
    );

    // After a dry run it just runs.
    let dry = op.run(0, &["--dry-run", "sweep"]);
    assert_eq!(dry.status.code(), Some(0), "{}", err(&dry));
    let real = op.run(0, &["sweep"]);
    assert_eq!(real.status.code(), Some(0), "{}", err(&real));
    assert!(out(&real).contains("1 step taken"), "{}", out(&real));
}

#[test]
fn completions_and_the_man_page_need_no_configuration() {
    let op = Op::bare("completions");
    op.config("[ladder\n");
    for (shell, mark) in [
        ("bash", "_dormant()"),
        ("zsh", "#compdef dormant"),
        ("fish", "complete -c dormant"),
    ] {
        let o = op.run(0, &["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", err(&o));
        assert!(out(&o).contains(mark), "{shell}");
        assert!(out(&o).contains("breaker"), "{shell} completes subcommands");
    }
    // A reader that stops early (`| head`) is no crash.
    let mut child = op
        .command(0, &["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let closed = child.wait_with_output().unwrap();
    assert!(!err(&closed).contains("panicked"), "{}", err(&closed));
    let man = op.run(0, &["man"]);
    assert_eq!(man.status.code(), Some(0), "{}", err(&man));
    assert!(
        out(&man).starts_with(".ie") || out(&man).contains(".TH dormant"),
        "{}",
        out(&man)
    );
    assert!(out(&man).contains("sweep"));
}

#[tokio::test]
async fn the_report_has_a_row_per_access_key_and_password() {
    let a = Account::new().await;
    a.user("two-keys", 300).await;
    let used = a.key("two-keys", 300, 1).await;
    let idle = a.key("two-keys", 250, 200).await;
    a.iam
        .update_access_key()
        .user_name("two-keys")
        .access_key_id(&idle)
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .unwrap();
    a.iam
        .create_login_profile()
        .user_name("two-keys")
        .password("Correct-Horse-9")
        .send()
        .await
        .unwrap();
    let op = Op::new(&a);
    op.json(0, &["sweep"]);

    let (code, report) = op.json(1, &["report"]);
    assert_eq!(code, 0, "{report}");
    let rows = report.as_array().unwrap();
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["credential_id"] == id)
            .unwrap_or_else(|| panic!("no row for {id}: {report}"))
    };
    assert_eq!(rows.len(), 4, "user, two keys, password: {report}");
    assert_eq!(row(&used)["kind"], "access_key");
    assert_eq!(row(&used)["active"], true);
    assert_eq!(row(&idle)["active"], false);
    assert_eq!(
        row(&idle)["identity"],
        format!("arn:aws:iam::{}:user/two-keys/key/{idle}", a.id)
    );
    assert!(
        row(&idle)["days_inactive"].as_i64().unwrap() >= 200,
        "{report}"
    );
    assert_eq!(row("password")["kind"], "password");
    assert_eq!(row("password")["active"], true);
    let user = rows.iter().find(|r| r["kind"] == "user").unwrap();
    assert!(user.get("credential_id").is_none(), "{user}");

    let csv = out(&op.run(1, &["report"]));
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",credential_id,active"),
        "{csv}"
    );
    assert!(csv.contains(&format!("/key/{idle},access_key,")), "{csv}");
}
