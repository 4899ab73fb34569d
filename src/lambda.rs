//! Event handling shared by the Lambda and `dormant handle-event`: one EventBridge event in, a
//! run report out. Generic over the ports, so it is tested without AWS; `bin/lambda.rs` only
//! wires it up.

use serde_json::Value;
use tracing::{info, warn};

use crate::app::engine::Nomination;
use crate::app::fleet::Fleet;
use crate::app::output::{ActionReport, RunReport};
use crate::domain::finding::{Classification, Finding, Nominee};
use crate::domain::{Outcome, PrincipalKind, Scope, Step, Timestamp};
use crate::error::Error;
use crate::inbound::eventbridge::{classify_all, ClassifyRules};
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

/// What handling one event did: the run report of DESIGN section 7, plus why an event was
/// ignored or a duplicate.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventReport {
    #[serde(flatten)]
    pub run: RunReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Processes one EventBridge event exactly as the Lambda does.
pub async fn handle<I: Iam + 'static, S: Store + 'static>(
    event: &Value,
    fleet: &Fleet<I, S>,
    rules: &ClassifyRules,
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
    if !any.store.claim_event(&id, now).await.map_err(Error::from)? {
        info!(event_id = %id, "duplicate delivery; already processed");
        return Ok(EventReport {
            duplicate: true,
            ..EventReport::default()
        });
    }
    match process(fleet, &candidates, &id, now).await {
        Ok(report) => Ok(EventReport {
            run: report,
            ..EventReport::default()
        }),
        Err(e) => {
            // Give the claim back, or EventBridge's retry would be taken for a duplicate.
            if let Err(release) = any.store.release_event(&id).await {
                warn!(event_id = %id, error = %release, "could not release the event claim; its retry will be skipped");
            }
            Err(e.into())
        }
    }
}

async fn process<I: Iam + 'static, S: Store + 'static>(
    fleet: &Fleet<I, S>,
    candidates: &[&Finding],
    id: &str,
    now: Timestamp,
) -> Result<RunReport, Error> {
    let mut report = RunReport::default();
    for finding in candidates {
        info!(event_id = %id, source = finding.source.as_str(), finding = %finding.finding, "nominated");
        let part = nominate(fleet, finding, id, now).await?;
        report.evaluated += part.evaluated;
        report.actions.extend(part.actions);
        report.breaker_tripped |= part.breaker_tripped;
    }
    if report.failed() > 0 {
        warn!(event_id = %id, failed = report.failed(), "some steps failed; they are recorded and retried on the next run");
    }
    Ok(report)
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
