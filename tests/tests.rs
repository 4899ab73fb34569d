//! dormant's integration tests: one test binary (one link after a change to the library, one
//! emulator process for the whole run), one module per area. Run an area with
//! `cargo test --test integration <module>::` (e.g. `chaos::`), one test with its full path.
//!
//! Shared set-up lives in `support/` (the emulator, the emulated account, the `dormant` runner,
//! the two simulated worlds); fixtures in `fixtures/`, the emulator itself in `emulator/`.

mod support;

// The decision core in memory: stories with a fake clock, and properties.
mod answers;
mod answers_browser;
mod answers_http;
mod exempt_unfinished;
mod exemptions;
mod ladder;
mod ladder_properties;
mod ladder_recreated;
mod ladder_unmarked;

// Events: the classifier over real event shapes (no AWS), and end to end through the binary.
mod events_classify;
mod events_end_to_end;
mod events_properties;

// The adapters against the emulator (IAM, DynamoDB, EventBridge) or mocked answers (SSM, Access
// Analyzer, Access Advisor).
mod adapters_access;
mod adapters_dynamo;
mod adapters_events;
mod adapters_iam;
mod adapters_restore;
mod adapters_ssm;

// The engine against the emulator: the ladder, its guards and calls, a step cut short at each
// request, tags, re-created identities, Access Advisor confirmation and the SSM fallback.
mod engine_calls;
mod engine_confirm;
mod engine_fallback;
mod engine_guards;
mod engine_interrupted;
mod engine_ladder;
mod engine_notices;
mod engine_protected;
mod engine_recreated;
mod engine_tags;
mod quarantine_policy;

// Many accounts: a fleet assumed through STS, an organization fanned out through SQS, the
// Lambda's cold start, partitions, the fallback and events across accounts.
mod events_across_accounts;
mod fallback_accounts;
mod fanout;
mod fanout_cold_start;
mod fleet;
mod partitions;

// Security Hub as the dashboard: dormant's findings read back from the emulator along the
// ladder; BatchUpdateFindings (which moto lacks) against mocked answers.
mod security_hub;

// Owners and messages: digests per recipient over SES, SNS and a loopback Slack webhook.
mod notify;
mod notify_limits;

// The `dormant` binary: operator commands, the recorded JSON contract, the CDK's permissions.
mod cli;
mod cli_config;
mod cli_dry_run;
mod cli_operator;
mod cli_plan;
mod json_contract;
mod permissions;

// The deployed roles' policies, enforced by the emulator.
mod enforcement;

// IAM's rate limits: the emulator's buckets, dormant's shared limiter, deadlines.
mod rate_limits;

// Reliability: seeded faults and crashes, duplicate and concurrent delivery, undo under fault,
// the bugs these found; hostile input.
mod chaos;
mod chaos_delivery;
mod chaos_regressions;
mod chaos_undo;
mod hostile_input;

// The emulator harness itself, the dependency direction of `src/`, and this file.
mod emulator_roundtrip;
mod layers;

/// With one test binary, a suite file that is not declared above would never run: refuse that.
#[test]
fn every_suite_file_is_a_module_of_this_binary() {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let declared = std::fs::read_to_string(here.join("tests.rs")).unwrap();
    for entry in std::fs::read_dir(&here).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(module) = name.strip_suffix(".rs").filter(|m| *m != "tests") {
            assert!(
                declared.contains(&format!("\nmod {module};")),
                "tests/{name} is not declared in tests/tests.rs, so it never runs"
            );
        }
    }
}
