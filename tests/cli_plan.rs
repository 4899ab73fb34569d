#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! `dormant plan` against the emulator: the calendar of the ladder from one read of IAM and the
//! table, with nothing written anywhere.

use crate::cli_operator::op::{err, iam_writes, out, Op};
use crate::support::account::Account;
use crate::support::emulator::emulator;
use chrono::Duration;
use serde_json::Value;

/// DynamoDB writes the emulator saw in this account.
fn table_writes(account: &str) -> Vec<String> {
    emulator()
        .requests(account)
        .into_iter()
        .filter_map(|r| r["operation"].as_str().map(str::to_string))
        .filter(|op| {
            [
                "PutItem",
                "UpdateItem",
                "DeleteItem",
                "BatchWriteItem",
                "TransactWriteItems",
            ]
            .contains(&op.as_str())
        })
        .collect()
}

/// The steps of one identity (its ARN ends with `suffix`), as `(day from now, step)`.
fn steps_of(plan: &Value, suffix: &str, now: chrono::DateTime<chrono::Utc>) -> Vec<(i64, String)> {
    plan.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["identity"].as_str().unwrap().ends_with(suffix) && !r["step"].is_null())
        .map(|r| {
            let at = chrono::DateTime::parse_from_rfc3339(r["at"].as_str().unwrap()).unwrap();
            let days = (at.with_timezone(&chrono::Utc) - now).num_hours() as f64 / 24.0;
            (days.round() as i64, r["step"].as_str().unwrap().to_string())
        })
        .collect()
}

fn row_of<'a>(plan: &'a Value, suffix: &str) -> &'a Value {
    plan.as_array()
        .unwrap()
        .iter()
        .find(|r| r["identity"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no row for {suffix}: {plan}"))
}

async fn fleet(a: &Account) -> String {
    a.role("idle", 200, &[]).await;
    a.role("busy", 200, &[]).await;
    emulator().backdate_role(&a.id, "busy", None, Some(a.now - Duration::days(1)));
    a.role("kept", 200, &[("dormant:exempt", "true")]).await;
    a.user("keyholder", 200).await;
    a.key("keyholder", 200, 150).await;
    // Used yesterday with one key; the other key idle 60 days: that key walks its own ladder.
    a.user("twokeys", 200).await;
    a.key("twokeys", 200, 1).await;
    a.key("twokeys", 100, 60).await
}

#[tokio::test]
async fn plan_is_the_calendar_of_the_ladder_and_changes_nothing() {
    let a = Account::new().await;
    let idle_key = fleet(&a).await;
    let op = Op::new(&a);
    emulator().clear_requests(&a.id);

    let (code, plan) = op.json(0, &["plan"]);
    assert_eq!(code, 0, "{plan}");
    // Defaults: notice now, quarantine 7 days later, keys 7 after that, delete 16 after the
    // previous step.
    assert_eq!(
        steps_of(&plan, ":role/idle", op.now),
        [
            (0, "notice".into()),
            (7, "quarantine".into()),
            (23, "delete".into())
        ]
    );
    assert_eq!(
        steps_of(&plan, ":user/keyholder", op.now),
        [
            (0, "notice".into()),
            (7, "quarantine".into()),
            (14, "deactivate_keys".into()),
            (30, "delete".into())
        ],
        "{plan}"
    );
    assert_eq!(
        steps_of(&plan, &format!(":user/twokeys/key/{idle_key}"), op.now),
        [
            (0, "notice".into()),
            (7, "deactivate_keys".into()),
            (23, "delete".into())
        ],
        "{plan}"
    );
    // The user and the key it uses are left alone: a principal with steps has no quiet row.
    assert!(steps_of(&plan, ":user/twokeys", op.now).is_empty());
    assert!(
        !plan
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["identity"].as_str().unwrap().ends_with(":user/twokeys")),
        "{plan}"
    );

    // Used and exempt identities: no step, and why.
    let busy = row_of(&plan, ":role/busy");
    assert!(busy["at"].is_null() && busy["step"].is_null(), "{busy}");
    assert!(
        busy["reason"].as_str().unwrap().contains("used at"),
        "{busy}"
    );
    let kept = row_of(&plan, ":role/kept");
    assert!(kept["step"].is_null(), "{kept}");
    assert!(
        kept["reason"].as_str().unwrap().contains("exempt"),
        "{kept}"
    );

    // JSON shape: an array of {at, identity, kind, step, reason}, steps by date first.
    for row in plan.as_array().unwrap() {
        let mut keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(keys, ["at", "identity", "kind", "reason", "step"], "{row}");
        assert!(row["identity"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:iam::"));
    }
    let dates: Vec<&str> = plan
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["at"].as_str())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
    assert_eq!(
        row_of(&plan, &format!("key/{idle_key}"))["kind"],
        "access_key"
    );

    // The table: short names, dates, and the count.
    let table = op.run(0, &["plan"]);
    assert_eq!(table.status.code(), Some(0), "{}", err(&table));
    let text = out(&table);
    let day23 = (op.now + Duration::days(23)).format("%Y-%m-%d").to_string();
    assert!(
        text.contains("role/idle") && !text.contains("arn:aws"),
        "{text}"
    );
    assert!(text.contains(&day23), "{text}");
    assert!(
        text.contains(
            "3 notices, 2 quarantines, 2 key deactivations, 3 deletions in the next 30 days"
        ),
        "{text}"
    );
    let wide = out(&op.run(0, &["--wide", "plan"]));
    assert!(
        wide.contains(&format!("arn:aws:iam::{}:role/idle", a.id)),
        "{wide}"
    );

    // --days 10 cuts the later steps off.
    let (_, short) = op.json(0, &["plan", "--days", "10"]);
    assert_eq!(
        steps_of(&short, ":role/idle", op.now),
        [(0, "notice".into()), (7, "quarantine".into())]
    );
    let text = out(&op.run(0, &["--dry-run", "plan", "--days", "10"]));
    assert!(
        text.contains(
            "3 notices, 2 quarantines, 1 key deactivation, 0 deletions in the next 10 days"
        ),
        "{text}"
    );

    // Nothing written: not in IAM, not in the table.
    assert_eq!(iam_writes(&a.id), Vec::<String>::new());
    assert_eq!(table_writes(&a.id), Vec::<String>::new());
    let (_, list) = op.json(0, &["list"]);
    assert_eq!(list, Value::Array(vec![]), "nothing tracked");
}

#[tokio::test]
async fn plan_follows_the_table_and_the_delete_mode() {
    let a = Account::new().await;
    a.role("idle", 200, &[]).await;
    let op = Op::new(&a);
    let sweep = op.run(0, &["--yes", "sweep"]);
    assert_eq!(sweep.status.code(), Some(0), "{}", err(&sweep));
    let tags_before = a
        .iam
        .list_role_tags()
        .role_name("idle")
        .send()
        .await
        .unwrap();
    emulator().clear_requests(&a.id);

    // Noticed on day 0: seen from day 3, the quarantine is still due on day 7.
    let (code, plan) = op.json(3, &["plan"]);
    assert_eq!(code, 0, "{plan}");
    assert_eq!(
        steps_of(&plan, ":role/idle", op.now),
        [(7, "quarantine".into()), (23, "delete".into())]
    );

    op.config("[ladder]\ndelete = \"approval\"\n");
    let (_, plan) = op.json(3, &["plan"]);
    assert_eq!(
        steps_of(&plan, ":role/idle", op.now),
        [(7, "quarantine".into()), (23, "request_approval".into())]
    );
    op.config("[ladder]\ndelete = \"never\"\n");
    let (_, plan) = op.json(3, &["plan", "--days", "3650"]);
    assert_eq!(
        steps_of(&plan, ":role/idle", op.now),
        [(7, "quarantine".into())]
    );

    assert_eq!(iam_writes(&a.id), Vec::<String>::new());
    assert_eq!(table_writes(&a.id), Vec::<String>::new());
    let tags_after = a
        .iam
        .list_role_tags()
        .role_name("idle")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_before.tags(), tags_after.tags());
}

#[tokio::test]
async fn plan_refuses_days_out_of_range() {
    let a = Account::new().await;
    let op = Op::new(&a);
    for days in ["0", "3651", "-1"] {
        let o = op.run(0, &["plan", &format!("--days={days}")]);
        assert_eq!(o.status.code(), Some(2), "{days}: {}", err(&o));
        assert!(err(&o).contains("1..=3650"), "{}", err(&o));
    }
}
