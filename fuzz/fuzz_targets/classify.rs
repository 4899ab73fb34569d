//! Any bytes into the event classifier: it must never panic, and anything it does not nominate
//! must say why.

#![no_main]

use dormant::inbound::eventbridge::{
    classification_json, classify_all_bytes, classify_bytes, ClassifyRules,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rules = ClassifyRules {
        config_rules: vec![
            "iam-user-unused-credentials-check".into(),
            "iam-role-last-used".into(),
        ],
    };
    let c = classify_bytes(data, &rules);
    assert!(!c.reason().is_empty(), "{c:?}");
    let _ = classification_json(&c);
    for c in classify_all_bytes(data, &rules) {
        assert!(!c.reason().is_empty(), "{c:?}");
    }
});
