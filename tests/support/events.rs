//! The event fixtures in `tests/fixtures/events/` and the classifier rules of the default
//! configuration.

use std::path::PathBuf;

use dormant::config::Config;
use dormant::inbound::eventbridge::ClassifyRules;
use serde_json::Value;

/// `tests/fixtures/events/`.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events")
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A fixture, parsed.
pub fn fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name)).unwrap()
}

/// The defaults of `[sources] config_rules`.
pub fn rules() -> ClassifyRules {
    ClassifyRules::from_config(&Config::from_toml("").unwrap())
}
