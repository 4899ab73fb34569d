//! `dormant plan`: the calendar of what the ladder will do to whom and when if nothing changes,
//! from one bulk read and the table, simulated in the core (`domain::ladder::forecast`). Nothing
//! is written anywhere.

use super::*;
use crate::domain::ladder::{forecast, Outlook};

/// One line of the plan: a step and when, or (`at` and `step` empty) an identity nothing
/// happens to within the window, with why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanRow {
    /// When the step falls due (RFC 3339); a step already due is taken at the next run.
    pub at: Option<String>,
    pub identity: String,
    pub kind: &'static str,
    pub step: Option<Step>,
    pub reason: String,
    #[serde(skip)]
    pub due: Option<Timestamp>,
}

impl<I: Iam, S: Store> Engine<I, S> {
    /// Every step the ladder would take from `now` to `until` (inclusive), oldest first, then
    /// the identities nothing happens to, by name. Reads IAM in bulk (plus one `ListAccessKeys`
    /// per user with keys, to name them) and the table; writes nothing.
    pub async fn plan(&self, now: Timestamp, until: Timestamp) -> Result<Vec<PlanRow>> {
        let bulk = self.iam.bulk_facts().await?;
        let mut tracked: std::collections::BTreeMap<String, Vec<Record>> = Default::default();
        for r in self.store.list(self.account(), None).await? {
            tracked
                .entry(r.subject.principal.arn())
                .or_default()
                .push(r);
        }
        let mut rows = Vec::new();
        for facts in &bulk {
            let records = tracked.remove(&facts.principal.arn()).unwrap_or_default();
            let facts = self.with_key_ids(facts).await;
            let outlooks = forecast(&facts, &records, &self.policy, now, until);
            rows.extend(rows_of(outlooks));
        }
        // Tracked principals the listing did not show: a sweep looks again before it stops
        // tracking them; nothing is taken from them.
        for r in tracked.values().flatten() {
            if r.stage != Stage::Deleted && r.subject.scope == Scope::Whole {
                rows.push(PlanRow {
                    at: None,
                    identity: r.subject.id(),
                    kind: r.subject.kind().as_str(),
                    step: None,
                    reason: "not in IAM's listing: the next sweep looks again, and stops \
                             tracking it if it is gone"
                        .to_string(),
                    due: None,
                });
            }
        }
        calendar(&mut rows);
        Ok(rows)
    }
}

/// The plan's order: steps by date (then identity), then the identities nothing happens to.
pub fn calendar(rows: &mut [PlanRow]) {
    rows.sort_by(|a, b| match (a.due, b.due) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.identity.cmp(&b.identity)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.identity.cmp(&b.identity),
    });
}

/// The rows of one principal: each step of each of its subjects, or, when none of them has a
/// step within the window, one row saying why of the whole role or user.
fn rows_of(outlooks: Vec<Outlook>) -> Vec<PlanRow> {
    if outlooks.iter().all(|o| o.steps.is_empty()) {
        return outlooks
            .into_iter()
            .find(|o| o.subject.scope == Scope::Whole)
            .map(|o| PlanRow {
                at: None,
                identity: o.subject.id(),
                kind: o.subject.kind().as_str(),
                step: None,
                reason: o.quiet,
                due: None,
            })
            .into_iter()
            .collect();
    }
    outlooks
        .into_iter()
        .flat_map(|o| {
            let identity = o.subject.id();
            let kind = o.subject.kind().as_str();
            o.steps.into_iter().map(move |(at, step, reason)| PlanRow {
                at: Some(fmt_time(at)),
                identity: identity.clone(),
                kind,
                step: Some(step),
                reason,
                due: Some(at),
            })
        })
        .collect()
}
