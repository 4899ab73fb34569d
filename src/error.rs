//! The crate's error type. Each variant says whose fault it is, which decides the exit code and,
//! in the Lambda, whether EventBridge should retry.

use crate::config::ConfigError;
use crate::domain::RefusedBecause;
use crate::ports::PortError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration: exit 2.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad command-line input (an identity that does not parse, a date in the past): exit 2.
    #[error("{0}")]
    Usage(String),
    /// The identity is neither in IAM nor tracked: exit 1.
    #[error("{0}")]
    NotFound(String),
    /// The command does not apply to the identity's state; nothing was changed: exit 1.
    #[error(transparent)]
    Refused(#[from] RefusedBecause),
    /// The operator's request cannot be honoured as given (a date in the past); nothing changed:
    /// exit 1.
    #[error("{0}")]
    Rejected(String),
    /// AWS said no or was unavailable: exit 1.
    #[error("AWS error: {0}")]
    Port(#[from] PortError),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            Error::NotFound(_) | Error::Refused(_) | Error::Rejected(_) | Error::Port(_) => 1,
        }
    }

    /// Whether the same input could succeed later (the Lambda tells EventBridge to retry).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Port(e) => e.is_retryable(),
            Error::Config(_)
            | Error::Usage(_)
            | Error::NotFound(_)
            | Error::Refused(_)
            | Error::Rejected(_) => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
