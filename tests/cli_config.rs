//! `dormant config`: the configuration as dormant reads it, and with `--defaults` the built-in
//! defaults (what the CDK app's mirror of the configuration is checked against, in
//! `cdk/test/config.test.ts`). Neither calls AWS.

use dormant::config::{Config, RawConfig};
use serde_json::Value;

use crate::support::cli::{stderr, Dormant};
use crate::support::emulator::emulator;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The defaults it prints are the parser's: as JSON they are `RawConfig::default()`, and as TOML
/// they read back as an empty file reads; a broken file does not stop them.
#[test]
fn config_defaults_are_the_parsers_own_and_read_back_unchanged() {
    let cli = Dormant::in_new_account();
    cli.config("[ladder\n");
    let out = cli.run(&["config", "--defaults", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json, serde_json::to_value(RawConfig::default()).unwrap());
    assert_eq!(json["ladder"]["to_delete_days"], 16);
    assert_eq!(json["inactivity"]["min_age_days"], Value::Null);

    let out = cli.run(&["config", "--defaults"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let toml = stdout(&out);
    assert_eq!(
        RawConfig::from_toml(&toml).unwrap(),
        RawConfig::from_toml("").unwrap(),
        "{toml}"
    );
    assert!(Config::from_toml(&toml).is_ok(), "{toml}");
    assert!(emulator().requests(cli.account()).is_empty(), "no AWS call");
}

/// Without `--defaults`: the file, every key it leaves out filled in; a broken file is refused
/// as every command refuses it (exit 2, naming the field).
#[test]
fn config_shows_the_file_with_the_defaults_filled_in_and_refuses_a_broken_one() {
    let cli = Dormant::in_new_account();
    cli.config("dry_run = true\n[breaker]\nmin_count = 9\n");
    let out = cli.run(&["config", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["breaker"]["min_count"], 9);
    assert_eq!(json["breaker"]["max_actions_per_run"], 25, "a default");
    let text = stdout(&cli.run(&["config"]));
    assert!(text.contains("min_count = 9"), "{text}");

    cli.config("[breaker]\nmin_count = 0\n");
    let out = cli.run(&["config"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("breaker.min_count"),
        "{}",
        stderr(&out)
    );
    assert!(emulator().requests(cli.account()).is_empty(), "no AWS call");
}
