//! What `decide` returns. The shape admits only possible cases: a step always carries its
//! effects, its gate and the record to commit; bookkeeping carries only a record.

use serde::{Deserialize, Serialize};

use super::breaker::Trip;
use super::effect::Effect;
use super::exemption::Exemption;
use super::facts::Activity;
use super::record::Record;
use super::stage::Step;
use super::time::Timestamp;

/// Whether a chosen step may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "gate")]
pub enum Gate {
    Proceed,
    /// Dry-run: record what would happen, change nothing.
    DryRun,
    /// The circuit breaker stops this step (and trips, if it had not already).
    Breaker(Trip),
}

/// A step chosen to be taken now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    pub step: Step,
    pub gate: Gate,
    /// The IAM changes, in order (may be empty: a request for approval only tags).
    pub effects: Vec<Effect>,
    /// The record to commit once every effect is done.
    pub after: Record,
    /// When the intent this step completes was first written: a resumed step. It passed the same
    /// guards as a fresh one, on the facts read for this run.
    pub resumes: Option<Timestamp>,
    /// Why the step cannot be carried out (a guarded call dormant's roles would be refused, its
    /// effects left out): the engine records the failure on the intent and calls nothing.
    pub blocked: Option<String>,
}

/// What to do with one subject now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing now: waiting for a due date, another run's intent, or nothing ever.
    Wait,
    /// Store this record; IAM is not touched (an exemption noted, an identity gone).
    Record(Box<Record>),
    /// Take a step.
    Step(Box<PlannedStep>),
}

/// What to do now. Like kube-rs's `Action`, a value; only the engine causes side effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// Why, in words (goes to logs, audit, events and `status`).
    pub reason: String,
    /// The next step and when it is due, seen from the state after this decision.
    pub next: Option<(Step, Timestamp)>,
    /// The last sign of life the decision was based on.
    pub activity: Option<Activity>,
    pub exemption: Option<Exemption>,
}

impl Decision {
    pub(crate) fn nothing(reason: impl Into<String>) -> Self {
        Decision {
            action: Action::Wait,
            reason: reason.into(),
            next: None,
            activity: None,
            exemption: None,
        }
    }

    pub(crate) fn bookkeeping(after: Record) -> Self {
        let mut d = Decision::nothing(after.reason.clone());
        d.action = Action::Record(Box::new(after));
        d
    }

    pub(crate) fn taking(planned: PlannedStep, reason: String) -> Self {
        let mut d = Decision::nothing(reason);
        d.next = planned.after.next_step.zip(planned.after.next_due_at);
        d.action = Action::Step(Box::new(planned));
        d
    }

    pub(crate) fn with_context(
        mut self,
        activity: Option<Activity>,
        exemption: Option<Exemption>,
    ) -> Self {
        self.activity = activity;
        self.exemption = exemption;
        self
    }

    /// The chosen step, if any.
    pub fn planned(&self) -> Option<&PlannedStep> {
        match &self.action {
            Action::Step(p) => Some(p),
            Action::Wait | Action::Record(_) => None,
        }
    }

    pub fn step(&self) -> Option<Step> {
        self.planned().map(|p| p.step)
    }

    pub fn gate(&self) -> Option<&Gate> {
        self.planned().map(|p| &p.gate)
    }

    /// The IAM changes this decision makes (none for waiting and bookkeeping).
    pub fn effects(&self) -> &[Effect] {
        self.planned().map_or(&[], |p| p.effects.as_slice())
    }

    /// Why the planned step cannot be carried out (see [`PlannedStep::blocked`]).
    pub fn blocked(&self) -> Option<&str> {
        self.planned().and_then(|p| p.blocked.as_deref())
    }

    /// The record this decision stores, if any.
    pub fn after(&self) -> Option<&Record> {
        match &self.action {
            Action::Step(p) => Some(&p.after),
            Action::Record(r) => Some(r),
            Action::Wait => None,
        }
    }

    pub(crate) fn after_mut(&mut self) -> Option<&mut Record> {
        match &mut self.action {
            Action::Step(p) => Some(&mut p.after),
            Action::Record(r) => Some(r),
            Action::Wait => None,
        }
    }

    /// A step was chosen and may change IAM now.
    pub fn acts(&self) -> bool {
        self.gate() == Some(&Gate::Proceed)
    }
}
