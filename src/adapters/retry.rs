//! Error classification and bounded retries shared by every adapter.

use std::future::Future;
use std::time::Duration;

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use backon::{ExponentialBuilder, Retryable};
use tracing::warn;

use super::rate::Limiter;
use super::{ErrorKind, PortError, PortResult};

/// Throttles in a row one request waits out through its limiter before it counts as a failed
/// attempt (then [`RetryPolicy`] backs off and tries again).
const PACED_RETRIES: u32 = 10;

/// Turns any SDK error into a [`PortError`] that keeps the AWS error code.
pub fn classify<E>(operation: &str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let (code, message) = match &err {
        SdkError::ServiceError(se) => (
            se.err().code().map(str::to_string),
            se.err()
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| se.err().to_string()),
        ),
        other => (
            other.code().map(str::to_string),
            format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(other)
            ),
        ),
    };
    let kind = kind_of(code.as_deref(), status, &err);
    let timed_out = match &err {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout(),
        _ => false,
    };
    let message = match (code, timed_out) {
        (Some(c), _) => format!("{c}: {message}"),
        (None, true) => format!(
            "no answer in time from the endpoint (AWS_ENDPOINT_URL or the region's): {message}; \
             the limits are [timeouts] in the configuration"
        ),
        (None, false) => message,
    };
    PortError::new(kind, operation, message)
}

/// Whether the service said "too fast" (the codes the SDKs' retry classifiers treat as
/// throttling, or HTTP 429).
pub fn is_throttling<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    matches!(
        err.code(),
        Some(
            "Throttling"
                | "ThrottlingException"
                | "ThrottledException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "RequestThrottled"
                | "RequestThrottledException"
                | "SlowDown"
        )
    ) || err
        .raw_response()
        .is_some_and(|r| r.status().as_u16() == 429)
}

fn kind_of<E>(
    code: Option<&str>,
    status: Option<u16>,
    err: &SdkError<E, HttpResponse>,
) -> ErrorKind {
    match code {
        Some(
            "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException"
            | "RequestThrottled"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "InternalFailure"
            | "InternalServerError"
            | "InternalError"
            | "InternalServerException"
            | "ServiceFailure",
        ) => ErrorKind::Transient,
        Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation") => {
            ErrorKind::AccessDenied
        }
        Some("NoSuchEntity" | "ResourceNotFoundException") => ErrorKind::NotFound,
        Some("ConditionalCheckFailedException" | "TransactionConflictException") => {
            ErrorKind::Conflict
        }
        _ => match (status, err) {
            (Some(s), _) if s >= 500 || s == 429 => ErrorKind::Transient,
            (_, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)) => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        },
    }
}

/// How hard to retry transient errors. Tests shorten it.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_times: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_times: 5,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Quick retries for tests against the emulator.
    pub fn fast() -> Self {
        RetryPolicy {
            max_times: 5,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
        }
    }

    /// Runs `op`, retrying transient failures with exponential backoff and jitter.
    pub async fn run<T, F, Fut>(&self, op: F) -> PortResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = PortResult<T>>,
    {
        op.retry(
            ExponentialBuilder::default()
                .with_jitter()
                .with_min_delay(self.min_delay)
                .with_max_delay(self.max_delay)
                .with_max_times(self.max_times),
        )
        .when(PortError::is_retryable)
        .notify(|e: &PortError, after: Duration| {
            warn!(operation = %e.operation, error = %e.message, retry_in_ms = after.as_millis() as u64, "transient AWS error; retrying");
        })
        .await
    }

    /// One SDK call (`f` builds and sends the request), retried as [`run`](Self::run) does, its
    /// error classified under `op`.
    pub async fn call<T, E, F, Fut>(&self, op: &str, f: F) -> PortResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.run(|| {
            let fut = f();
            async move { fut.await.map_err(|e| classify(op, e)) }
        })
        .await
    }

    /// [`call`](Self::call), paced by `limiter` (shared by every worker of the account): each
    /// attempt waits for its slot, and a throttle slows the limiter down for everyone and is
    /// sent again through it, not after a backoff of its own.
    pub async fn call_limited<T, E, F, Fut>(
        &self,
        op: &str,
        limiter: &Limiter,
        f: F,
    ) -> PortResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let f = &f;
        self.run(|| async move {
            let mut throttles = 0;
            loop {
                let ticket = limiter.acquire().await;
                match f().await {
                    Err(e) if is_throttling(&e) => {
                        limiter.throttled(ticket);
                        throttles += 1;
                        if throttles >= PACED_RETRIES {
                            return Err(classify(op, e));
                        }
                    }
                    other => {
                        limiter.accepted(ticket);
                        return other.map_err(|e| classify(op, e));
                    }
                }
            }
        })
        .await
    }
}
