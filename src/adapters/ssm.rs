//! [`Fallback`] over SSM Automation (docs/design.md, 'SSM Automation fallback'): `StartAutomationExecution` runs one of
//! the `remediation-docs/` documents, `GetAutomationExecution` tells where it stands.

use async_trait::async_trait;
use aws_sdk_ssm::types::AutomationExecutionStatus as Sdk;
use aws_sdk_ssm::Client;
use tracing::{debug, warn};

use super::retry::{classify, RetryPolicy};
use super::{ErrorKind, PortError, PortResult};
use crate::domain::{AutomationRequest, AutomationStatus};
use crate::ports::Fallback;

const START: &str = "StartAutomationExecution";
const GET: &str = "GetAutomationExecution";
const STOP: &str = "StopAutomationExecution";
/// SSM allows a limited number of concurrent executions per account. Waiting a few hundred
/// milliseconds will not free a slot, so it is not retried here, but it is worth trying again on
/// a later tick.
const LIMIT_EXCEEDED: &str = "AutomationExecutionLimitExceededException";

pub struct SsmFallback {
    client: Client,
    retry: RetryPolicy,
}

impl SsmFallback {
    pub fn new(client: Client, retry: RetryPolicy) -> Self {
        SsmFallback { client, retry }
    }
}

#[async_trait]
impl Fallback for SsmFallback {
    async fn start(&self, request: &AutomationRequest) -> PortResult<String> {
        let c = &self.client;
        // One token for every attempt (ours and a later tick's after a crash between starting and
        // recording the id): SSM then answers a repeated start with the execution it already has
        // instead of launching the document twice.
        let token = client_token(request);
        let out = self
            .retry
            .call(START, || {
                c.start_automation_execution()
                    .document_name(&request.document)
                    .set_parameters(Some(
                        request
                            .parameters
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ))
                    .client_token(&token)
                    .send()
            })
            .await
            .map_err(|mut e| {
                if e.message.starts_with(LIMIT_EXCEEDED) {
                    e.kind = ErrorKind::Transient;
                }
                e
            })?;
        let id = out.automation_execution_id().ok_or_else(|| {
            PortError::new(
                ErrorKind::Permanent,
                START,
                format!("no execution id in the answer for {}", request.document),
            )
        })?;
        debug!(document = %request.document, execution_id = %id, client_token = %token, "automation started");
        Ok(id.to_string())
    }

    async fn status(&self, execution_id: &str) -> PortResult<AutomationStatus> {
        let c = &self.client;
        let out = self
            .retry
            .run(|| {
                let fut = c
                    .get_automation_execution()
                    .automation_execution_id(execution_id)
                    .send();
                async move {
                    fut.await.map_err(|e| {
                        // `classify` knows IAM's NoSuchEntity, not SSM's own not-found code.
                        let not_found = e
                            .as_service_error()
                            .is_some_and(|se| se.is_automation_execution_not_found_exception());
                        let mut err = classify(GET, e);
                        if not_found {
                            err.kind = ErrorKind::NotFound;
                        }
                        err
                    })
                }
            })
            .await?;
        let execution = out.automation_execution().ok_or_else(|| {
            PortError::new(
                ErrorKind::Permanent,
                GET,
                format!("no execution in the answer for {execution_id}"),
            )
        })?;
        let status = match execution.automation_execution_status() {
            Some(s) => map_status(s, execution.failure_message()),
            None => {
                warn!(
                    execution_id,
                    "automation execution without a status; treating it as running"
                );
                AutomationStatus::Running
            }
        };
        debug!(execution_id, ?status, "automation status");
        Ok(status)
    }

    async fn stop(&self, execution_id: &str) -> PortResult<()> {
        let c = &self.client;
        let stopped = self
            .retry
            .call(STOP, || {
                c.stop_automation_execution()
                    .automation_execution_id(execution_id)
                    .send()
            })
            .await;
        match stopped {
            Ok(_) => {
                debug!(execution_id, "automation stop requested");
                Ok(())
            }
            // SSM refuses to stop an execution that has already ended: nothing to stop.
            Err(e)
                if e.kind == ErrorKind::Permanent
                    && e.message.contains("InvalidAutomationStatusUpdate") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// SSM's execution status in the three cases the engine tells apart. Anything that is not
/// terminal is `Running` (the next tick polls again); any terminal state but success is a failure,
/// including the ambiguous ones (`Exited`), so a step is never taken as done when it may not be.
fn map_status(status: &Sdk, failure_message: Option<&str>) -> AutomationStatus {
    match status {
        Sdk::Pending
        | Sdk::Inprogress
        | Sdk::Waiting
        | Sdk::Scheduled
        | Sdk::RunbookInprogress
        | Sdk::PendingApproval
        | Sdk::Approved
        | Sdk::PendingChangeCalendarOverride
        | Sdk::ChangeCalendarOverrideApproved
        // On its way to `Cancelled`; reported as such on a later poll.
        | Sdk::Cancelling => AutomationStatus::Running,
        Sdk::Success | Sdk::CompletedWithSuccess => AutomationStatus::Succeeded,
        Sdk::Failed
        | Sdk::Timedout
        | Sdk::Cancelled
        | Sdk::Rejected
        | Sdk::ChangeCalendarOverrideRejected
        | Sdk::CompletedWithFailure
        | Sdk::Exited => AutomationStatus::Failed(match failure_message {
            Some(m) if !m.is_empty() => format!("{}: {m}", status.as_str()),
            _ => status.as_str().to_string(),
        }),
        // A status newer than this SDK: keep polling rather than guess an outcome.
        other => {
            warn!(status = other.as_str(), "unknown automation status; treating it as running");
            AutomationStatus::Running
        }
    }
}

/// The idempotency token for `request`: a hash of the document and the parameters (in key
/// order, each value list as given, since that is what SSM receives), laid out as a UUID because
/// SSM insists on that format (36 characters, hex groups 8-4-4-4-12). FNV-1a rather than std's
/// hasher, whose output may change between Rust releases: the token must survive a redeploy.
pub fn client_token(request: &AutomationRequest) -> String {
    let mut h = Fnv128::new();
    h.field(b"dormant-ssm-v1");
    h.field(request.document.as_bytes());
    // One token per attempt: a retried call is deduplicated, a later re-run is not.
    h.field(request.attempt.as_bytes());
    for (key, values) in &request.parameters {
        h.field(key.as_bytes());
        h.write(&(values.len() as u64).to_be_bytes());
        for v in values {
            h.field(v.as_bytes());
        }
    }
    // Version 8 (custom) and the RFC 9562 variant, so it is a well-formed UUID too.
    let x = (h.0 & !(0xf << 76) & !(0b11 << 62)) | (0x8 << 76) | (0b10 << 62);
    let hex = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// 128-bit FNV-1a.
struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;

    fn new() -> Self {
        Fnv128(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Length-prefixed, so `("ab", "c")` and `("a", "bc")` hash differently.
    fn field(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_be_bytes());
        self.write(bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn request(doc: &str, params: &[(&str, &[&str])]) -> AutomationRequest {
        AutomationRequest {
            document: doc.to_string(),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect::<BTreeMap<_, _>>(),
            attempt: "attempt-1".to_string(),
        }
    }

    fn is_uuid(s: &str) -> bool {
        let groups: Vec<&str> = s.split('-').collect();
        s.len() == 36
            && groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && groups
                .iter()
                .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
    }

    #[test]
    fn token_is_a_stable_uuid_that_tells_requests_apart() {
        let a = request(
            "Dormant-DeactivateAccessKeys",
            &[("AccessKeyIds", &["AKIA1", "AKIA2"])],
        );
        let t = client_token(&a);
        assert!(is_uuid(&t), "{t}");
        assert_eq!(&t[14..15], "8", "version nibble: {t}");
        assert!(matches!(&t[19..20], "8" | "9" | "a" | "b"), "variant: {t}");
        // Pinned: a change here would let a start retried across a deploy launch twice.
        assert_eq!(t, "1f804fb6-cf79-849a-ae90-e819d24a5c06");
        assert_eq!(t, client_token(&a.clone()));
        let later = AutomationRequest {
            attempt: "attempt-2".to_string(),
            ..a.clone()
        };
        assert_ne!(t, client_token(&later), "a later attempt must run again");
        assert_ne!(
            t,
            client_token(&request(
                "Dormant-DeactivateAccessKeys",
                &[("AccessKeyIds", &["AKIA2", "AKIA1"])]
            ))
        );
        assert_ne!(
            t,
            client_token(&request(
                "Dormant-ReactivateAccessKeys",
                &[("AccessKeyIds", &["AKIA1", "AKIA2"])]
            ))
        );
        assert_ne!(
            client_token(&request("D", &[("K", &["ab", "c"])])),
            client_token(&request("D", &[("K", &["a", "bc"])]))
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(
            map_status(&Sdk::Inprogress, None),
            AutomationStatus::Running
        );
        assert_eq!(
            map_status(&Sdk::Cancelling, None),
            AutomationStatus::Running
        );
        assert_eq!(
            map_status(&Sdk::CompletedWithSuccess, None),
            AutomationStatus::Succeeded
        );
        assert_eq!(
            map_status(&Sdk::Exited, None),
            AutomationStatus::Failed("Exited".into())
        );
        assert_eq!(
            map_status(&Sdk::Failed, Some("Step fails")),
            AutomationStatus::Failed("Failed: Step fails".into())
        );
        assert_eq!(
            map_status(&Sdk::from("SomethingNew"), None),
            AutomationStatus::Running
        );
    }
}
