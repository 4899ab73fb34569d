//! dormant's integration tests: one test binary (one link after a change to the library, one
//! emulator process for the whole run), one module per area. Run an area with
//! `cargo test --test integration <module>::` (e.g. `chaos::`), one test with its full path.
//!
//! Shared set-up lives in `support/` (the emulator, the emulated account, the `dormant` runner,
//! the two simulated worlds); fixtures in `fixtures/`, the emulator itself in `emulator/`.

mod support;

// The decision core in memory: stories with a fake clock, and properties.
mod exemptions;
mod ladder;
mod ladder_properties;
mod ladder_recreated;

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

// The engine against the emulator: the ladder, its guards and calls, tags, re-created
// identities, Access Advisor confirmation and the SSM fallback.
mod engine_calls;
mod engine_confirm;
mod engine_fallback;
mod engine_guards;
mod engine_ladder;
mod engine_recreated;
mod engine_tags;

// Many accounts: a fleet assumed through STS, an organization fanned out through SQS.
mod fanout;
mod fleet;

// The `dormant` binary: operator commands, the recorded JSON contract, the CDK's permissions.
mod cli;
mod json_contract;
mod permissions;

// Reliability: seeded faults and crashes, duplicate and concurrent delivery; hostile input.
mod chaos;
mod hostile_input;

// The emulator harness itself, and the dependency direction of `src/`.
mod emulator_roundtrip;
mod layers;
