//! Inbound events: EventBridge JSON → domain findings (parse and validate only).

pub mod eventbridge;
pub mod sqs;

pub use eventbridge::{
    classification_json, classify, classify_all, classify_all_bytes, classify_bytes, ClassifyRules,
    MAX_EVENT_BYTES,
};
