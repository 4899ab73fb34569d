//! Shared set-up for the integration tests (`tests/tests.rs` declares it once for every area):
//! the emulator, one emulated account ([`account::Account`]) and the `dormant` runner built on
//! it, the chaos suite's emulated world, story and fault plan, the decision core simulated in memory, the event
//! fixtures and fakes of ports.
#![allow(dead_code)]

pub mod account;
pub mod chaos_plan;
pub mod chaos_story;
pub mod cli;
pub mod core_sim;
pub mod emulated_world;
pub mod emulator;
pub mod events;
pub mod fakes;
pub mod owner_messages;
pub mod webhook;
