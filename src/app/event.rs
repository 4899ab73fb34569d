//! One EventBridge event in, a run report out: the event handling the Lambda and `dormant
//! handle-event` share (docs/design.md, 'Event sources'). Generic over the ports, so it is tested
//! without AWS.

use serde_json::Value;
use tracing::{info, warn};

use crate::app::engine::Nomination;
use crate::app::fanout::SweepFanOut;
use crate::app::fleet::{Fleet, FleetSource};
use crate::app::output::{ActionReport, RunReport};
use crate::domain::finding::{Classification, Finding, Nominee};
use crate::domain::{Outcome, PrincipalKind, Scope, Step, Timestamp};
use crate::error::Error;
use crate::inbound::eventbridge::{classify_all, ClassifyRules};
use crate::ports::{Iam, Store};

/// Why an event was not handled, classified for retries (the Lambda's error type, and so
/// EventBridge's retry, follows it).
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The event can never be processed: do not retry.
    #[error("malformed event {id}: {reason}")]
    Malformed { id: String, reason: String },
    #[error(transparent)]
    Failed(#[from] Error),
}

impl EventError {
    pub fn is_retryable(&self) -> bool {
        match self {
            EventError::Malformed { .. } => false,
            EventError::Failed(e) => e.is_retryable(),
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

/// Handles one EventBridge event: classifies it, claims it once (dedup in the controller's
/// table), and nominates what it names; a scheduled sweep is queued per account through `fanout`
/// when given, else swept here.
pub async fn handle_event<I: Iam + 'static, S: Store + 'static>(
    event: &Value,
    fleet: &dyn FleetSource<I, S>,
    rules: &ClassifyRules,
    fanout: Option<&dyn SweepFanOut>,
    now: Timestamp,
) -> Result<EventReport, EventError> {
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
            return Err(EventError::Malformed {
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
    // Only an event dormant acts on needs the engines (the Lambda builds them on first use).
    let fleet = fleet.fleet().await?;
    // Dedup lives in the controller's table, which every engine shares.
    let Some(any) = fleet.engines.first() else {
        return Err(EventError::Failed(Error::Rejected(
            "no account is reachable".to_string(),
        )));
    };
    // Only a run that acts claims the event: after a dry run (observed or previewed) the real
    // delivery of the same event must still be processed.
    let claims = any.mode().acts();
    if claims && !any.store.claim_event(&id, now).await.map_err(Error::from)? {
        info!(event_id = %id, "duplicate delivery; already processed");
        return Ok(EventReport {
            duplicate: true,
            ..EventReport::default()
        });
    }
    match nominate_all(fleet, fanout, &candidates, &id, now).await {
        Ok((report, queued)) => Ok(EventReport {
            run: report,
            queued,
            ..EventReport::default()
        }),
        Err(e) => {
            // Give the claim back, or EventBridge's retry would be taken for a duplicate.
            if !claims {
                return Err(e.into());
            }
            if let Err(release) = any.store.release_event(&id).await {
                warn!(event_id = %id, error = %release, "could not release the event claim; its retry will be skipped");
            }
            Err(e.into())
        }
    }
}

async fn nominate_all<I: Iam + 'static, S: Store + 'static>(
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
        report.add(part);
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
        // The event's region is in another partition than the account dormant manages under
        // that id: not the same account.
        Ok(e) if e.iam.partition() != finding.partition => Err(Error::Rejected(format!(
            "the event is from partition {}, account {account} is managed in {}",
            finding.partition,
            e.iam.partition()
        ))),
        other => other,
    };
    let engine = match engine {
        Ok(e) => e,
        Err(e) => {
            let reason = format!("not acted on: {e}");
            warn!(%event_id, %reason, "skipped");
            return Ok(RunReport {
                evaluated: 0,
                actions: vec![ActionReport {
                    identity: finding.identity().unwrap_or_default(),
                    step: Step::Notice,
                    outcome: Outcome::Skipped,
                    reason,
                }],
                breaker_tripped: false,
                unfinished: 0,
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
        note: join_notes(
            finding.sender_note(),
            enriched.as_ref().and_then(Finding::observation),
        ),
        hub_finding: finding.hub_finding.clone(),
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

fn join_notes(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}
