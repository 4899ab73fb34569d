//! Security Hub reporting (docs/design.md, 'Security Hub'): after a change is committed, the
//! subject's own finding is imported and the workflow of its findings updated, in batches at
//! the end of the run (or of every 100). Like the events, it never blocks, reorders or undoes a
//! step: a failure is logged and written to the subject's audit trail.

use tracing::{debug, warn};

use crate::domain::security_hub::{self, HubReport, HubTarget};
use crate::domain::{AuditEntry, Outcome, Record, Stage, Step, Subject, Timestamp};
use crate::ports::{Iam, Store};

use super::super::run::Run;
use super::Engine;

/// The audit trail's step name for a Security Hub failure.
pub const HUB_AUDIT_STEP: &str = "security_hub";

impl<I: Iam, S: Store> Engine<I, S> {
    /// Queues what Security Hub learns from a committed change of `before` into `after`; a full
    /// batch goes out at once. Nothing in a dry run or without `[security_hub]`.
    pub(super) async fn tell_hub(
        &self,
        run: &Run,
        before: Stage,
        after: &Record,
        step: Option<Step>,
        reason: &str,
        now: Timestamp,
    ) {
        let Some(hub) = &self.hub else { return };
        if self.policy.dry_run {
            return;
        }
        let target = HubTarget {
            partition: self.iam.partition(),
            region: hub.region(),
        };
        let report = security_hub::report(before, after, step, reason, target, now);
        if let Some(batch) = run.queue_hub(report) {
            // Boxed: this sits inside every step's future, which is deep enough already.
            Box::pin(self.flush_hub(batch)).await;
        }
    }

    /// Imports the findings, then updates the workflows (an update of dormant's own finding
    /// needs it imported). Failures are logged and audited per subject.
    pub(crate) async fn flush_hub(&self, reports: Vec<HubReport>) {
        let Some(hub) = &self.hub else { return };
        if reports.is_empty() {
            return;
        }
        let mut failures: Vec<(&HubReport, String)> = Vec::new();
        let findings: Vec<_> = reports.iter().map(|r| r.finding.clone()).collect();
        match hub.import(&findings).await {
            Ok(failed) => {
                for f in failed {
                    let of = reports.iter().find(|r| r.finding.id == f.finding_id);
                    match of {
                        Some(r) => failures.push((r, format!("BatchImportFindings: {}", f.error))),
                        None => {
                            warn!(finding = %f.finding_id, error = %f.error, "Security Hub refused a finding dormant did not send")
                        }
                    }
                }
            }
            Err(e) => failures.extend(reports.iter().map(|r| (r, e.to_string()))),
        }
        let updates: Vec<_> = reports.iter().flat_map(|r| r.updates.clone()).collect();
        if !updates.is_empty() {
            match hub.update_workflow(&updates).await {
                Ok(failed) => {
                    for f in failed {
                        let of = reports
                            .iter()
                            .find(|r| r.updates.iter().any(|u| u.finding.id == f.finding_id));
                        if let Some(r) = of {
                            failures.push((
                                r,
                                format!("BatchUpdateFindings of {}: {}", f.finding_id, f.error),
                            ));
                        }
                    }
                }
                Err(e) => failures.extend(
                    reports
                        .iter()
                        .filter(|r| !r.updates.is_empty())
                        .map(|r| (r, e.to_string())),
                ),
            }
        }
        debug!(
            findings = reports.len(),
            updates = updates.len(),
            failed = failures.len(),
            "reported to Security Hub"
        );
        for (report, why) in failures {
            self.hub_failed(&report.subject, report.at, &why).await;
        }
    }

    async fn hub_failed(&self, subject: &Subject, at: Timestamp, why: &str) {
        // The log line is what the CDK app's metric filter counts.
        warn!(identity = %subject, error = %why, "Security Hub reporting failed; the step stands");
        let entry = AuditEntry {
            at,
            step: HUB_AUDIT_STEP.to_string(),
            outcome: Outcome::Failed,
            actor: self.actor.clone(),
            reason: format!("reporting to Security Hub failed (the step stands): {why}"),
            event_id: None,
        };
        if let Err(e) = self.store.append_audit(subject, &entry).await {
            warn!(identity = %subject, error = %e, "could not audit the Security Hub failure");
        }
    }
}
