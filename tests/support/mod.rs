//! Shared support for integration tests. Include it with `mod support;`.
//!
//! Every test binary compiles its own copy and uses only part of it.
#![allow(dead_code)]

pub mod account;
pub mod cli;
pub mod core_sim;
pub mod emulated_world;
pub mod emulator;
pub mod events;
pub mod fakes;
