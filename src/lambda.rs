//! Event handling shared by the Lambda and `dormant handle-event`: one EventBridge event in, a
//! run report out; or, when the sweep is fanned out, one batch of SQS sweep requests in, the
//! messages to retry out. Generic over the ports, so it is tested without AWS; `bin/lambda.rs`
//! only wires it up.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::app::engine::Nomination;
use crate::app::fanout::SweepFanOut;
use crate::app::fleet::{add_account_run, AccountOutcome, Engines, Fleet};
use crate::app::output::{ActionReport, RunReport};
use crate::domain::finding::{Classification, Finding, Nominee};
use crate::domain::{Outcome, PrincipalKind, Scope, Step, Timestamp};
use crate::error::Error;
use crate::inbound::eventbridge::{classify_all, ClassifyRules};
use crate::inbound::sqs;
use crate::ports::{Iam, Store};

/// A handler failure, classified for the Lambda runtime (and so for EventBridge's retries).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event can never be processed: do not retry.
    #[error("malformed event {id}: {reason}")]
    Malformed { id: String, reason: String },
    #[error(transparent)]
    Failed(#[from] Error),
}

impl HandlerError {
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Malformed { .. } => false,
            HandlerError::Failed(e) => e.is_retryable(),
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: if e.is_retryable() {
                "Retryable"
            } else {
                "NonRetryable"
            }
            .to_string(),
            error_message: e.to_string(),
        }
    }
}

/// What handling one event did: the run report of docs/design.md, 'Operator commands', plus why an event was
/// ignored or a duplicate.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventReport {
    #[serde(flatten)]
    pub run: RunReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// A fanned-out sweep: the accounts a sweep request was queued for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queued: Vec<String>,
}

/// Processes one EventBridge event exactly as the Lambda does without fan-out: a scheduled sweep
/// sweeps every account here.
pub async fn handle<I: Iam + 'static, S: Store + 'static>(
    event: &Value,
    fleet: &Fleet<I, S>,
    rules: &ClassifyRules,
    now: Timestamp,
) -> Result<EventReport, HandlerError> {
    handle_with(event, fleet, rules, None, now).await
}

/// [`handle`], with a scheduled sweep queued per account through `fanout` when given.
pub async fn handle_with<I: Iam + 'static, S: Store + 'static>(
    event: &Value,
    fleet: &Fleet<I, S>,
    rules: &ClassifyRules,
    fanout: Option<&dyn SweepFanOut>,
    now: Timestamp,
) -> Result<EventReport, HandlerError> {
    let verdicts = classify_all(event, rules);
    let id = verdicts
        .iter()
        .find_map(Classification::event_id)
        .or_else(|| event.get("id").and_then(Value::as_str))
        .unwrap_or("(no id)")
        .to_string();
    let candidates: Vec<&Finding> = verdicts
        .iter()
        .filter_map(Classification::candidate)
        .collect();
    if candidates.is_empty() {
        if let Some(invalid) = verdicts
            .iter()
            .find(|v| matches!(v, Classification::Invalid { .. }))
        {
            warn!(event_id = %id, reason = invalid.reason(), "malformed event");
            return Err(HandlerError::Malformed {
                id,
                reason: invalid.reason().to_string(),
            });
        }
        let reason = verdicts
            .first()
            .map(|v| v.reason().to_string())
            .unwrap_or_else(|| "nothing in the event concerns dormant".to_string());
        info!(event_id = %id, %reason, "event ignored");
        return Ok(EventReport {
            ignored: Some(reason),
            ..EventReport::default()
        });
    }
    // Dedup lives in the controller's table, which every engine shares.
    let Some(any) = fleet.engines.first() else {
        return Err(HandlerError::Failed(Error::Rejected(
            "no account is reachable".to_string(),
        )));
    };
    // A dry run claims nothing: the real delivery of the same event must still be processed.
    let dry_run = any.policy.dry_run;
    if !dry_run && !any.store.claim_event(&id, now).await.map_err(Error::from)? {
        info!(event_id = %id, "duplicate delivery; already processed");
        return Ok(EventReport {
            duplicate: true,
            ..EventReport::default()
        });
    }
    match process(fleet, fanout, &candidates, &id, now).await {
        Ok((report, queued)) => Ok(EventReport {
            run: report,
            queued,
            ..EventReport::default()
        }),
        Err(e) => {
            // Give the claim back, or EventBridge's retry would be taken for a duplicate.
            if dry_run {
                return Err(e.into());
            }
            if let Err(release) = any.store.release_event(&id).await {
                warn!(event_id = %id, error = %release, "could not release the event claim; its retry will be skipped");
            }
            Err(e.into())
        }
    }
}

async fn process<I: Iam + 'static, S: Store + 'static>(
    fleet: &Fleet<I, S>,
    fanout: Option<&dyn SweepFanOut>,
    candidates: &[&Finding],
    id: &str,
    now: Timestamp,
) -> Result<(RunReport, Vec<String>), Error> {
    let mut report = RunReport::default();
    let mut queued = Vec::new();
    for finding in candidates {
        info!(event_id = %id, source = finding.source.as_str(), finding = %finding.finding, "nominated");
        if let (Nominee::Sweep, Some(fanout)) = (&finding.nominee, fanout) {
            queued.extend(fanout.fan_out(id).await?);
            continue;
        }
        let part = nominate(fleet, finding, id, now).await?;
        report.evaluated += part.evaluated;
        report.actions.extend(part.actions);
        report.breaker_tripped |= part.breaker_tripped;
    }
    if report.failed() > 0 {
        warn!(event_id = %id, failed = report.failed(), "some steps failed; they are recorded and retried on the next run");
    }
    Ok((report, queued))
}

async fn nominate<I: Iam + 'static, S: Store + 'static>(
    fleet: &Fleet<I, S>,
    finding: &Finding,
    event_id: &str,
    now: Timestamp,
) -> Result<RunReport, Error> {
    let account = match &finding.nominee {
        Nominee::Sweep => return Ok(fleet.sweep(now).await.run),
        Nominee::Tick => return Ok(fleet.tick(now).await.run),
        Nominee::Principal { account, .. }
        | Nominee::UniqueId { account, .. }
        | Nominee::AccessKeyOf { account, .. } => account,
    };
    let engine = match fleet.engine(account) {
        Ok(e) => e,
        Err(e) => {
            let reason = format!("not acted on: {e}");
            warn!(%event_id, %reason, "skipped");
            return Ok(RunReport {
                evaluated: 0,
                actions: vec![ActionReport {
                    identity: finding.nominee.identity().unwrap_or_default(),
                    step: Step::Notice,
                    outcome: Outcome::Skipped,
                    reason,
                }],
                breaker_tripped: false,
            });
        }
    };
    let enriched = enrich(fleet, finding, event_id).await;
    let finding = enriched.as_ref().unwrap_or(finding);
    let (kind, name, scope) = match &finding.nominee {
        Nominee::Sweep | Nominee::Tick => return Ok(RunReport::default()),
        Nominee::Principal {
            kind, name, scope, ..
        } => (*kind, name.clone(), Some(scope.clone())),
        // Without the key id, every credential of the user is judged.
        Nominee::AccessKeyOf { user, .. } => (PrincipalKind::User, user.clone(), None),
        Nominee::UniqueId {
            kind, unique_id, ..
        } => match engine.iam.name_by_unique_id(*kind, unique_id).await? {
            Some(name) => (*kind, name, None),
            None => {
                info!(%event_id, %unique_id, "no such identity any more; nothing to do");
                return Ok(RunReport::default());
            }
        },
    };
    let nomination = Nomination {
        kind,
        name: &name,
        scope: scope.filter(|s| *s != Scope::Whole),
        event_id: Some(event_id),
        note: enriched.as_ref().and_then(Finding::observation),
    };
    engine.evaluate_nominated(nomination, now).await
}

/// An Access Analyzer finding with `GetFindingV2`'s details (key id, last access). Enrichment only
/// adds information, so any failure (denied, throttled past the retries, finding gone) is logged
/// and the nomination goes on without it.
async fn enrich<I: Iam + 'static, S: Store + 'static>(
    fleet: &Fleet<I, S>,
    finding: &Finding,
    event_id: &str,
) -> Option<Finding> {
    let (Some(analyzer), Some(arn), Some(id)) = (
        &fleet.analyzer,
        &finding.analyzer_arn,
        &finding.analyzer_finding_id,
    ) else {
        return None;
    };
    match analyzer.unused_access(arn, id).await {
        Ok(details) => match finding.enriched(&details) {
            Ok(f) => {
                info!(%event_id, finding_id = %id, nominee = ?f.nominee, last_accessed = ?f.observed_last_used, "enriched with GetFindingV2");
                Some(f)
            }
            Err(why) => {
                warn!(%event_id, finding_id = %id, %why, "GetFindingV2 details set aside; going on without them");
                None
            }
        },
        Err(e) => {
            warn!(%event_id, finding_id = %id, error = %e, "could not enrich the finding with GetFindingV2; going on without it");
            None
        }
    }
}

/// Whether a Lambda payload is an SQS event (the sweep queue's event source mapping).
pub fn is_sqs_event(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

/// A message that is never retried: it can never succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedMessage {
    pub message_id: String,
    pub reason: String,
}

/// What one batch from the sweep queue did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueReport {
    #[serde(flatten)]
    pub run: RunReport,
    /// One line per account swept (or that failed), by account.
    pub accounts: Vec<AccountOutcome>,
    /// Messages whose account failed: handed back to SQS to be retried alone.
    pub retry: Vec<String>,
    /// Malformed messages, and requests for an account dormant does not manage: not retried.
    pub rejected: Vec<RejectedMessage>,
}

impl QueueReport {
    /// The Lambda's answer to SQS (`ReportBatchItemFailures`): only the failed messages return to
    /// the queue; the others are deleted.
    pub fn batch_response(&self) -> SqsBatchResponse {
        let mut r = SqsBatchResponse::default();
        for id in &self.retry {
            r.add_failure(id.clone());
        }
        r
    }
}

/// Sweeps the accounts a batch of sweep requests names, `concurrency` at a time (an account named
/// twice is swept once). An account that fails (AssumeRole denied, a throttling storm) has its
/// messages retried; a malformed message is reported, logged with its message id and dropped.
pub async fn handle_queue<I, S, E>(
    event: &SqsEvent,
    engines: &E,
    concurrency: usize,
    now: Timestamp,
) -> QueueReport
where
    I: Iam + 'static,
    S: Store + 'static,
    E: Engines<I, S> + ?Sized,
{
    let mut report = QueueReport::default();
    // account -> the ids of the messages asking for it
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, message) in event.records.iter().enumerate() {
        let Some(id) = message.message_id.clone().filter(|i| !i.is_empty()) else {
            // SQS always sets it; without one the message cannot even be named for a retry.
            error!(index = n, "SQS record without a messageId; dropped");
            report.rejected.push(RejectedMessage {
                message_id: format!("(record {n}, no messageId)"),
                reason: "no messageId".to_string(),
            });
            continue;
        };
        match sqs::decode(message.body.as_deref().unwrap_or_default()) {
            Ok(request) => {
                info!(message_id = %id, account = %request.account, run = %request.run, "sweep request");
                wanted.entry(request.account).or_default().push(id);
            }
            Err(reason) => {
                error!(message_id = %id, %reason, "malformed sweep request; not retried");
                report.rejected.push(RejectedMessage {
                    message_id: id,
                    reason: format!(
                        "malformed message {}: {reason}",
                        message.message_id.as_deref().unwrap_or_default()
                    ),
                });
            }
        }
    }
    let results: Vec<(String, Vec<String>, Result<RunReport, Error>)> = stream::iter(wanted)
        .map(|(account, ids)| async move {
            let result = match engines.engine_for(&account).await {
                Ok(engine) => engine.sweep(now).await,
                Err(e) => Err(e),
            };
            (account, ids, result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (account, ids, result) in results {
        match result {
            Ok(r) => add_account_run(&mut report.run, &mut report.accounts, account, r),
            // Not an account dormant manages: a retry would be refused the same way.
            Err(e @ Error::Usage(_)) => {
                error!(%account, error = %e, "sweep request refused; not retried");
                for id in ids {
                    report.rejected.push(RejectedMessage {
                        message_id: id,
                        reason: e.to_string(),
                    });
                }
                report
                    .accounts
                    .push(AccountOutcome::failed(account, e.to_string()));
            }
            Err(e) => {
                warn!(%account, error = %e, "account failed; its messages go back to the queue");
                report.retry.extend(ids);
                report
                    .accounts
                    .push(AccountOutcome::failed(account, e.to_string()));
            }
        }
    }
    report.accounts.sort_by(|a, b| a.account.cmp(&b.account));
    report.retry.sort();
    report
}

/// What the Lambda handles events with, wired once at cold start.
pub struct Services<'a, I, S, E: ?Sized> {
    pub fleet: &'a Fleet<I, S>,
    pub rules: &'a ClassifyRules,
    /// Engines for the accounts of queued sweep requests.
    pub engines: &'a E,
    /// `Some` when the scheduled sweep fans out through the sweep queue.
    pub fanout: Option<&'a dyn SweepFanOut>,
    pub concurrency: usize,
}

/// One Lambda invocation: an SQS batch from the sweep queue (answered with `batchItemFailures`)
/// or an EventBridge event (answered with its report).
pub async fn dispatch<I, S, E>(
    payload: Value,
    services: &Services<'_, I, S, E>,
    now: Timestamp,
) -> Result<Value, HandlerError>
where
    I: Iam + 'static,
    S: Store + 'static,
    E: Engines<I, S> + ?Sized,
{
    let answer = if is_sqs_event(&payload) {
        let event: SqsEvent =
            serde_json::from_value(payload).map_err(|e| HandlerError::Malformed {
                id: "(SQS batch)".to_string(),
                reason: e.to_string(),
            })?;
        let report = handle_queue(&event, services.engines, services.concurrency, now).await;
        serde_json::to_value(report.batch_response())
    } else {
        let report = handle_with(
            &payload,
            services.fleet,
            services.rules,
            services.fanout,
            now,
        )
        .await?;
        serde_json::to_value(report)
    };
    answer.map_err(|e| {
        HandlerError::Failed(Error::Rejected(format!("cannot serialize the answer: {e}")))
    })
}
