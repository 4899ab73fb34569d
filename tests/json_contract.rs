#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! The JSON contract, recorded: a small ladder walk's `sweep`, `tick`, `status`, `list`, `history`,
//! `report`, `permissions`, `event classify`, `breaker status` and `undo` output (and the text
//! form of the read-only ones) compared with files under `tests/fixtures/contract/`.
//! Run with `DORMANT_BLESS=1` to record them again after a deliberate change to the contract
//! (and say so in CHANGELOG.md): a reshaping of the code must leave them byte-identical.

use std::path::PathBuf;

use crate::support::account::Account;
use crate::support::cli::dormant_in;
use crate::support::emulator::emulator;
use serde_json::Value;

struct Run<'a> {
    account: &'a Account,
    dir: PathBuf,
}

impl Run<'_> {
    fn json(&self, day: i64, args: &[&str]) -> (i32, Value) {
        let out = self.run(day, &[&["--output", "json", "--yes"], args].concat());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not JSON ({e}): {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), value)
    }

    /// The text output, with what differs between runs replaced line by line.
    fn text(&self, day: i64, args: &[&str]) -> String {
        let out = self.run(day, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .replace(&self.account.id, "<account>")
            .lines()
            .map(|l| placeholder(l.trim_end()) + "\n")
            .collect()
    }

    fn run(&self, day: i64, args: &[&str]) -> std::process::Output {
        let now = self.account.day(day).to_rfc3339();
        dormant_in(&self.dir, &self.account.id)
            .args(["--now", now.as_str()])
            .args(args)
            .output()
            .unwrap()
    }
}

/// What differs between runs (account, dates, IAM's generated ids, run ids) becomes a
/// placeholder; everything else is the contract.
fn normalise(value: &mut Value, account: &str) {
    match value {
        Value::String(s) => *s = placeholder(&s.replace(account, "<account>")),
        Value::Array(items) => items.iter_mut().for_each(|v| normalise(v, account)),
        Value::Object(fields) => {
            for (key, v) in fields.iter_mut() {
                if key.ends_with("_ms") && v.is_number() {
                    *v = Value::String("<ms>".into());
                } else {
                    normalise(v, account);
                }
            }
        }
        _ => {}
    }
}

fn placeholder(s: &str) -> String {
    if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
        return "<time>".into();
    }
    for prefix in ["AROA", "AIDA", "AKIA", "ANPA"] {
        if s.len() > 12 && s.starts_with(prefix) && s.chars().all(|c| c.is_ascii_alphanumeric()) {
            return format!("<{prefix}>");
        }
    }
    let is_uuid = s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        });
    if is_uuid {
        return "<uuid>".into();
    }
    // Dates inside sentences ("due 2026-12-13T…") and ids inside ARNs and reasons.
    let mut out = String::with_capacity(s.len());
    const BREAKS: [char; 5] = [' ', '/', ',', '(', ')'];
    for word in s.split_inclusive(BREAKS) {
        let (body, tail) = match word.char_indices().last() {
            Some((i, c)) if BREAKS.contains(&c) => word.split_at(i),
            _ => (word, ""),
        };
        let replaced = if body.is_empty() || body == s {
            body.to_string()
        } else {
            placeholder(body)
        };
        out.push_str(&replaced);
        out.push_str(tail);
    }
    out
}

fn check(name: &str, mut value: Value, account: &str) {
    normalise(&mut value, account);
    let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
    compare(&format!("{name}.json"), &text);
}

fn compare(file: &str, text: &str) {
    let name = file;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/contract")
        .join(file);
    if std::env::var_os("DORMANT_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let recorded = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (record it with DORMANT_BLESS=1)", path.display()));
    assert_eq!(
        text,
        recorded,
        "{name}: the JSON output differs from {}",
        path.display()
    );
}

#[tokio::test]
async fn sweep_tick_status_list_history_report_and_permissions_keep_their_recorded_shape() {
    let account = Account::new().await;
    let dir = std::env::temp_dir().join(format!("dormant-contract-{}", account.id));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dormant.toml"), "").unwrap();
    let run = Run {
        account: &account,
        dir,
    };

    account
        .role("contract-role", 200, &[("team", "payments")])
        .await;
    account.user("contract-user", 200).await;
    account.key("contract-user", 200, 150).await;
    account.role("contract-used", 200, &[]).await;
    emulator().backdate_role(&account.id, "contract-used", None, Some(account.day(-1)));

    let events = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events");
    let classify = events.join("access-analyzer-unused-role.json");
    let walk: [(&str, i64, &[&str]); 13] = [
        ("sweep", 0, &["sweep"]),
        ("status", 1, &["status", "role/contract-role"]),
        ("list", 1, &["list"]),
        ("tick-quarantine", 7, &["tick"]),
        ("tick-keys", 21, &["tick"]),
        ("history", 21, &["history", "role/contract-role"]),
        ("list-later", 21, &["list"]),
        ("report", 21, &["report", "--format", "json"]),
        ("permissions", 0, &["permissions"]),
        (
            "classify",
            0,
            &["event", "classify", classify.to_str().unwrap()],
        ),
        ("breaker", 21, &["breaker", "status"]),
        (
            "undo",
            22,
            &["undo", "role/contract-role", "--reason", "the contract"],
        ),
        ("status-after-undo", 22, &["status", "role/contract-role"]),
    ];
    for (name, day, args) in walk {
        let (code, value) = run.json(day, args);
        assert_eq!(code, 0, "{name}: {value}");
        check(name, value, &account.id);
        // The text form too, of the commands that change nothing.
        let mutates = matches!(args[0], "sweep" | "tick" | "undo" | "report");
        if !mutates {
            compare(&format!("{name}.txt"), &run.text(day, args));
        }
    }
}
