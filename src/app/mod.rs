//! The application: drives the pure core through the ports. `engine` runs sweeps and ticks;
//! `commands` holds the operator commands shared by the CLI and the Lambda.

pub mod accounts;
pub mod breaker;
pub mod commands;
pub mod engine;
pub mod fanout;
pub mod fleet;
pub mod output;
mod run;
pub mod wiring;

pub use engine::Engine;
