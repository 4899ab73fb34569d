//! Shared support for integration tests. Include it with `mod support;`.
//!
//! Every test binary compiles its own copy and uses only part of it.
#![allow(dead_code)]

pub mod emulator;

pub mod account;

pub mod core_sim;
