//! `dormant` finds AWS IAM identities nobody uses any more and takes them out of service in
//! graduated, reversible steps: notice, quarantine, deactivate keys, delete.
//!
//! - [`domain`]: the pure decision core (`decide(record, facts, policy, budget, now)`).
//! - [`config`]: the configuration file, validated into a [`domain::Policy`].

pub mod adapters;
pub mod answers;
pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod inbound;
pub mod lambda;
pub mod ports;
pub mod wiring;
