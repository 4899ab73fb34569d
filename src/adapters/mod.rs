//! Thin adapters from the ports to the AWS SDK. Each maps SDK errors to [`PortError`] and retries
//! what is worth retrying; no decisions are made here.

pub mod access_advisor;
pub mod access_analyzer;
pub mod clock;
pub mod dynamo;
pub mod events;
pub mod iam;
pub mod messenger;
pub mod metrics;
pub mod organizations;
pub mod paging;
pub mod rate;
pub mod retry;
pub mod secrets;
pub mod security_hub;
pub mod sqs;
pub mod ssm;

pub use crate::ports::{ErrorKind, PortError, PortResult};
