//! Inbound events: EventBridge JSON → domain findings (parse and validate only).
