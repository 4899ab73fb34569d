//! The application: drives the pure core through the ports. `engine` runs sweeps and ticks;
//! `commands` holds the operator commands shared by the CLI and the Lambda; `event` and
//! `sweep_queue` what an EventBridge event or a queued sweep request sets off. It knows the ports,
//! never the adapters (those are `crate::wiring`'s).

pub mod accounts;
pub mod answer;
pub mod breaker;
pub mod commands;
pub mod deadline;
pub mod engine;
pub mod event;
pub mod fanout;
pub mod fleet;
pub mod mode;
pub mod output;
pub mod progress;
mod run;
pub mod sweep_queue;

pub use engine::Engine;
pub use mode::Mode;
