//! The engine: load → read facts → decide → (confirm) → write intent → execute → commit → audit.
//!
//! - `mod.rs`: the engine's set-up and the runs: `sweep`, `tick`, `evaluate` (events, commands).
//! - `step.rs`: the one path from a decision to IAM, for every step (fresh, resumed, undo,
//!   nominated by an event), and its one failure handler.
//! - `notice.rs`: a sweep's notices, committed in batches.
//! - `fallback.rs`: steps handed to SSM Automation, polled, and stopped for an undo.
//! - `confirm.rs`: the Access Advisor confirmation before an access-cutting step.
//! - `hub.rs`: Security Hub reporting after each committed change.
//! - `notify.rs`: owner messages: queued after each committed step, sent as digests at the end.
//!
//! A sweep decides a notice on its bulk read; every other step is preceded by a fresh read of
//! that principal.

mod confirm;
mod fallback;
mod hub;
mod marker;
mod notice;
mod notify;
mod pass;
mod step;

pub use fallback::FallbackSetup;
pub use notify::{NotifySetup, DEFAULT_MAX_ATTEMPTS, NOTIFY_AUDIT_STEP, SEND_LEASE};

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use std::sync::Arc;

use tracing::{info, warn};

use crate::domain::ladder::cooloff_covers;
use crate::domain::security_hub::HubFindingRef;
use crate::domain::OutboundEvent;
use crate::domain::{
    decide, dormant_subjects, AuditEntry, Budget, Facts, Outcome, Policy, Principal, PrincipalKind,
    Record, Scope, Stage, Step, Subject, Timestamp,
};
use crate::error::{Error, Result};
use crate::ports::{AccessAdvisor, Iam, Publisher, SecurityHub, Store};

use super::breaker::Breaker;
use super::deadline;
use super::output::RunReport;
use super::run::Run;
use super::Mode;

/// Who the audit trail names for the controller's own steps.
pub const CONTROLLER: &str = "controller";

/// The ports and policy for one account.
pub struct Engine<I, S> {
    pub iam: I,
    pub store: S,
    pub policy: Policy,
    /// `controller`, or the operator's ARN for CLI commands.
    pub actor: String,
    /// Where step events go; `None` publishes nothing (local runs without a bus).
    pub publisher: Option<Arc<dyn Publisher>>,
    /// SSM Automation, for steps the controller cannot (or is configured not to) take directly.
    pub fallback: Option<FallbackSetup>,
    /// How many identities of the account are worked on at once.
    pub concurrency: usize,
    /// IAM Access Advisor, asked before access-cutting steps when
    /// `inactivity.confirm_with_access_advisor` is on.
    pub advisor: Option<Arc<dyn AccessAdvisor>>,
    /// Security Hub in this account (`[security_hub] enabled`): dormant's findings and the
    /// workflow of the findings that nominated.
    pub hub: Option<Arc<dyn SecurityHub>>,
    /// Owner messages (`[notify] enabled`).
    pub notify: Option<NotifySetup>,
    /// Serialises this engine's breaker updates (see [`Breaker`]).
    breaker_turn: tokio::sync::Mutex<()>,
    /// A preview (`--dry-run`): see [`Engine::previewing`].
    preview: bool,
    /// The wall clock (`--now` in a simulation): whether an intent's lease still holds, which
    /// a batched commit relies on ('Batched notices'). `None`: every step commits at once.
    wall_clock: Option<WallClock>,
    /// The unique id an owner's link was issued for: commands refuse whatever else now has the
    /// name (see [`Engine::answering_for`]).
    pub(crate) link_unique_id: Option<String>,
}

/// Reads the wall clock; handed in by the composition root (the engine never reads it itself).
pub type WallClock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// What an event nominated, for [`Engine::evaluate_nominated`].
#[derive(Debug, Clone)]
pub struct Nomination<'a> {
    pub kind: PrincipalKind,
    pub name: &'a str,
    /// A credential-level finding names one key or the password: only that credential is newly
    /// put on the ladder (the whole principal and what is already tracked are judged as always).
    pub scope: Option<Scope>,
    pub event_id: Option<&'a str>,
    /// What the source observed (e.g. Access Analyzer's last access), added to the audit entries
    /// of this run. Information only: the decision rests on IAM.
    pub note: Option<String>,
    /// The Security Hub finding that nominated it: its workflow follows the ladder.
    pub hub_finding: Option<HubFindingRef>,
}

/// Identities worked on at once by default: enough to hide IAM's latency, few enough to stay
/// clear of its rate limits (throttling is retried with backoff anyway).
pub const DEFAULT_IDENTITY_CONCURRENCY: usize = 8;

impl<I: Iam, S: Store> Engine<I, S> {
    pub fn new(iam: I, store: S, policy: Policy, actor: impl Into<String>) -> Self {
        Engine {
            iam,
            store,
            policy,
            actor: actor.into(),
            publisher: None,
            fallback: None,
            concurrency: DEFAULT_IDENTITY_CONCURRENCY,
            advisor: None,
            hub: None,
            notify: None,
            breaker_turn: tokio::sync::Mutex::new(()),
            preview: false,
            wall_clock: None,
            link_unique_id: None,
        }
    }

    /// An engine carrying out an owner's answer to a link issued for `unique_id`: every
    /// command's `resolve` refuses an identity that is not (or no longer) that one, so an
    /// identity re-created under the name after the page's checks is never changed.
    pub fn answering_for(mut self, unique_id: impl Into<String>) -> Self {
        self.link_unique_id = Some(unique_id.into());
        self
    }

    /// Lets a sweep commit its notices in batches while their leases hold by `clock`.
    pub fn with_wall_clock(mut self, clock: WallClock) -> Self {
        self.wall_clock = Some(clock);
        self
    }

    /// A preview (`--dry-run`, [`Mode::Preview`]): decides as a dry run and writes nothing at
    /// all, not even the dry run's notes. The shells also hand it read-only adapters.
    pub fn previewing(mut self) -> Self {
        self.policy.dry_run = true;
        self.preview = true;
        self
    }

    /// What this engine's runs may change.
    pub fn mode(&self) -> Mode {
        if self.preview {
            Mode::Preview
        } else {
            Mode::of(&self.policy)
        }
    }

    pub fn with_advisor(mut self, advisor: Arc<dyn AccessAdvisor>) -> Self {
        self.advisor = Some(advisor);
        self
    }

    pub fn with_security_hub(mut self, hub: Arc<dyn SecurityHub>) -> Self {
        self.hub = Some(hub);
        self
    }

    pub fn with_notify(mut self, notify: NotifySetup) -> Self {
        self.notify = Some(notify);
        self
    }

    pub fn with_concurrency(mut self, identities: usize) -> Self {
        self.concurrency = identities.max(1);
        self
    }

    pub fn with_fallback(mut self, fallback: FallbackSetup) -> Self {
        self.fallback = Some(fallback);
        self
    }

    pub fn with_publisher(mut self, publisher: Arc<dyn Publisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// Publishes dormant's own events at once. A failure is logged and never undoes a committed
    /// step.
    pub(crate) async fn publish(&self, events: Vec<OutboundEvent>) {
        let Some(p) = &self.publisher else { return };
        if events.is_empty() || !self.mode().writes() {
            return;
        }
        if let Err(e) = p.publish(&events).await {
            warn!(error = %e, events = events.len(), "could not publish dormant events; the steps stand");
        }
    }

    /// Queues a step event for the run; a full batch goes out at once, the rest in `finish`.
    pub(crate) async fn emit(&self, run: &Run, event: OutboundEvent) {
        if let Some(batch) = run.queue_event(event) {
            self.publish(batch).await;
        }
    }

    /// Publishes what is still queued and writes the queued dry-run audit entries. Every run
    /// ends here, also when it failed half-way, so nothing queued is dropped.
    pub(crate) async fn finish(&self, run: Run) -> Result<RunReport> {
        if let Some(now) = run.now {
            // First: a committed notice adds an event, a finding and an owner's message. A
            // notice decided again after a lost race commits at once from here on.
            run.stop_batching_notices();
            Box::pin(self.commit_queued_notices(&run, now)).await;
        }
        let (events, audits) = run.drain();
        self.publish(events).await;
        // Boxed, as in `tell_hub`: every run's future holds this one.
        Box::pin(self.flush_hub(run.drain_hub())).await;
        if let Some(now) = run.now {
            if !run.messages_left_to_fleet {
                Box::pin(self.flush_owners(now)).await;
            }
        }
        self.store.append_audits(&audits).await?;
        Ok(run.into_report())
    }

    pub fn account(&self) -> &str {
        self.iam.account()
    }

    /// The account's circuit breaker, as stored.
    pub fn breaker(&self) -> Breaker<'_, S> {
        Breaker::new(&self.store, self.iam.account()).serialised_by(&self.breaker_turn)
    }

    pub(crate) async fn start_run(&self, event_id: Option<&str>, now: Timestamp) -> Result<Run> {
        let breaker = self.breaker().state().await?;
        let budget = Budget {
            tripped: breaker.tripped,
            actions_this_run: 0,
            quarantines_in_window: breaker.quarantines_within_day(now),
            identities_in_account: breaker.identities,
        };
        Ok(Run::new(budget, event_id.map(str::to_string))
            .with_deadline(deadline::current())
            .at(now))
    }

    /// Evaluates every identity in the account and takes whatever step is due.
    pub async fn sweep(&self, now: Timestamp) -> Result<RunReport> {
        self.sweep_for(now, false).await
    }

    /// [`Engine::sweep`]; `in_fleet`: the owner messages are left queued for the fleet run
    /// over several accounts that sends them all at its end (`Fleet::run`).
    pub(crate) async fn sweep_for(&self, now: Timestamp, in_fleet: bool) -> Result<RunReport> {
        let mut run = self.start_run(None, now).await?;
        run.messages_left_to_fleet = in_fleet;
        let result = self.sweep_in_run(&run, now).await;
        let report = self.finish(run).await;
        if self.mode() == Mode::Observe && result.is_ok() {
            // Only the CLI's first-run question reads it: a failure here costs nothing else.
            // (A preview writes nothing: the CLI notes it on the operator's machine.)
            if let Err(e) = self.store.note_dry_run(self.account(), now).await {
                warn!(error = %e, "could not note the dry-run sweep");
            }
        }
        result.and(report)
    }

    async fn sweep_in_run(&self, run: &Run, now: Timestamp) -> Result<()> {
        let bulk = self.iam.bulk_facts().await?;
        let identities = u32::try_from(bulk.len()).unwrap_or(u32::MAX);
        run.state().budget.identities_in_account = identities;
        if !self.policy.dry_run {
            self.breaker().set_identities(identities).await?;
        }
        info!(
            account = self.account(),
            identities, "sweep: read IAM in bulk"
        );

        let mut tracked: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for r in self.store.list(self.account(), None).await? {
            tracked
                .entry(r.subject.principal.arn())
                .or_default()
                .push(r);
        }
        self.sweep_pass(run, bulk, tracked, now).await
    }

    /// One principal of a sweep, decided on the bulk read where that is safe: a notice only
    /// tags, on facts read moments ago in this run (a stale fact is corrected by the release
    /// rule). Anything else (a later step, a stage change of a tracked identity) is decided
    /// again on a fresh read of the principal. Bulk facts name keys by report slot; one
    /// `ListAccessKeys` gives them ids where acting, or matching tracked keys, needs them.
    async fn sweep_principal(
        &self,
        run: &Run,
        bulk: &Facts,
        records: Vec<Record>,
        now: Timestamp,
    ) -> Result<()> {
        let is_key = |s: &Subject| matches!(s.scope, Scope::AccessKey(_));
        let tracks_keys = records
            .iter()
            .any(|r| r.stage != Stage::Deleted && is_key(&r.subject));
        let key_candidates = dormant_subjects(bulk, &self.policy, now).iter().any(is_key);
        let mut facts = bulk.clone();
        if facts.has_slot_keys() && (tracks_keys || (key_candidates && !self.policy.dry_run)) {
            let listed = self.iam.access_keys(&facts.principal.name).await?;
            match facts.with_key_ids(&listed) {
                Some(with_ids) => facts = with_ids,
                None => return self.sweep_fresh(run, &bulk.principal, records, now).await,
            }
        }
        let bulk_will_do = self
            .subjects(&facts, &records, None, now)
            .iter()
            .all(|subject| {
                let record = record_for(&records, subject);
                let decision = decide(
                    &record,
                    Some(&facts),
                    &self.policy,
                    &run.state().budget,
                    now,
                );
                match decision.step() {
                    Some(step) => step == Step::Notice,
                    None => decision.after().is_none(),
                }
            });
        if bulk_will_do {
            self.evaluate_fresh(run, Some(facts), records, None, now)
                .await
        } else {
            self.sweep_fresh(run, &bulk.principal, records, now).await
        }
    }

    /// Reads one principal afresh and decides for it and its tracked records.
    async fn sweep_fresh(
        &self,
        run: &Run,
        principal: &Principal,
        records: Vec<Record>,
        now: Timestamp,
    ) -> Result<()> {
        let fresh = self
            .iam
            .fresh_facts(principal.kind, &principal.name)
            .await?;
        self.evaluate_fresh(run, fresh, records, None, now).await
    }

    /// Every subject to decide for: the tracked ones, the whole principal and each credential
    /// these facts show dormant (with `only`, of the untracked credentials just that one).
    fn subjects(
        &self,
        facts: &Facts,
        records: &[Record],
        only: Option<&Scope>,
        now: Timestamp,
    ) -> BTreeSet<Subject> {
        let mut subjects: BTreeSet<Subject> = records.iter().map(|r| r.subject.clone()).collect();
        subjects.insert(Subject::whole(facts.principal.clone()));
        subjects.extend(
            dormant_subjects(facts, &self.policy, now)
                .into_iter()
                .filter(|s| only.is_none_or(|o| s.scope == Scope::Whole || s.scope == *o)),
        );
        subjects
    }

    /// Decides for the whole principal and each of its credentials on these facts (a fresh read,
    /// or the sweep's bulk read where that is enough; see `sweep_principal`).
    async fn evaluate_fresh(
        &self,
        run: &Run,
        fresh: Option<Facts>,
        records: Vec<Record>,
        only: Option<&Scope>,
        now: Timestamp,
    ) -> Result<()> {
        let subjects = match &fresh {
            Some(f) => self.subjects(f, &records, only, now),
            None => records.iter().map(|r| r.subject.clone()).collect(),
        };
        // The whole principal sorts first: when it is released now, its cool-off already covers
        // its credentials in this run.
        let mut whole = records
            .iter()
            .find(|r| r.subject.scope == Scope::Whole)
            .cloned();
        for subject in subjects {
            let record = record_for(&records, &subject);
            if let Some(until) = cooloff_covers(&record, whole.as_ref(), &self.policy, now) {
                tracing::debug!(identity = %subject, until = %until, "principal in cool-off; credential not nominated");
                continue;
            }
            let about = record.next_step.or(record.pending.as_ref().map(|i| i.step));
            let may_release = subject.scope == Scope::Whole && record.stage.is_on_ladder();
            if let Err(e) = self
                .decide_and_carry_out(run, record, fresh.as_ref(), now)
                .await
            {
                self.record_failure(run, &subject, about, &e);
            }
            if may_release && !self.policy.dry_run {
                whole = self.store.load(&subject).await?;
            }
        }
        let ended = |f: &Facts| {
            run.state()
                .ladders_ended
                .remove(&f.principal.arn())
                .is_some()
        };
        if let Some(facts) = fresh
            .as_ref()
            .filter(|f| marker::worth_settling(f, ended(f)))
        {
            // The marker stays for credentials on the ladder: their notices must be committed.
            self.commit_queued_notices(run, now).await;
            if let Err(e) = self
                .settle_credentials_marker(run, &facts.principal, now)
                .await
            {
                let whole = Subject::whole(facts.principal.clone());
                self.record_failure(run, &whole, None, &e);
            }
        }
        Ok(())
    }

    /// Takes the steps that are due, re-reading only those identities (the sparse due index).
    pub async fn tick(&self, now: Timestamp) -> Result<RunReport> {
        self.tick_for(now, false).await
    }

    /// [`Engine::tick`]; `in_fleet` as for [`Engine::sweep_for`].
    pub(crate) async fn tick_for(&self, now: Timestamp, in_fleet: bool) -> Result<RunReport> {
        let mut run = self.start_run(None, now).await?;
        run.messages_left_to_fleet = in_fleet;
        let result = self.tick_in_run(&run, now).await;
        let report = self.finish(run).await;
        result.and(report)
    }

    async fn tick_in_run(&self, run: &Run, now: Timestamp) -> Result<()> {
        let due = self.store.due(self.account(), now).await?;
        info!(account = self.account(), due = due.len(), "tick");
        let total = due.len();
        run.add_total(total);
        let started = std::sync::atomic::AtomicUsize::new(0);
        futures::stream::iter(due)
            // At the deadline the rest stays due, for the next run.
            .take_while(|_| {
                let go = run.may_start();
                if go {
                    started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                futures::future::ready(go)
            })
            .for_each_concurrent(self.concurrency, |record| async move {
                let began = std::time::Instant::now();
                run.count_evaluated(1);
                let subject = record.subject.clone();
                let about = record.next_step;
                let result = async {
                    let fresh = self
                        .iam
                        .fresh_facts(subject.principal.kind, &subject.principal.name)
                        .await?;
                    self.decide_and_carry_out(run, record, fresh.as_ref(), now)
                        .await
                }
                .await;
                if let Err(e) = result {
                    self.record_failure(run, &subject, about, &e);
                }
                run.identity_done(began.elapsed());
            })
            .await;
        let left = total - started.into_inner();
        if left > 0 {
            warn!(
                account = self.account(),
                left, "deadline: due steps left for the next run"
            );
            run.state().report.unfinished += left;
        }
        // Users a ladder of which ended in this tick: their marker is decided again.
        let users = std::mem::take(&mut run.state().ladders_ended);
        for user in users.values() {
            if !run.may_start() {
                break;
            }
            if let Err(e) = self.settle_credentials_marker(run, user, now).await {
                self.record_failure(run, &Subject::whole(user.clone()), None, &e);
            }
        }
        // What a sweep left at its deadline is the tick's too.
        self.continue_pass(run, now).await
    }

    /// Evaluates one principal now (an event nominated it, or an operator asked).
    pub async fn evaluate(
        &self,
        kind: PrincipalKind,
        name: &str,
        event_id: Option<&str>,
        now: Timestamp,
    ) -> Result<RunReport> {
        self.evaluate_nominated(
            Nomination {
                kind,
                name,
                scope: None,
                event_id,
                note: None,
                hub_finding: None,
            },
            now,
        )
        .await
    }

    /// Evaluates what an event nominated: the principal, narrowed to one credential when the
    /// finding names one.
    pub async fn evaluate_nominated(
        &self,
        nomination: Nomination<'_>,
        now: Timestamp,
    ) -> Result<RunReport> {
        let run = self.start_run(nomination.event_id, now).await?;
        let run =
            run.with_note(nomination.note.clone())
                .with_origin(
                    nomination
                        .hub_finding
                        .clone()
                        .map(|finding| super::run::Origin {
                            kind: nomination.kind,
                            name: nomination.name.to_string(),
                            scope: nomination.scope.clone().filter(|s| *s != Scope::Whole),
                            finding,
                        }),
                );
        let result = self.evaluate_in_run(&run, &nomination, now).await;
        let report = self.finish(run).await;
        result.and(report)
    }

    async fn evaluate_in_run(
        &self,
        run: &Run,
        nomination: &Nomination<'_>,
        now: Timestamp,
    ) -> Result<()> {
        // The whole principal is what a scope-less nomination names.
        let scope = nomination.scope.clone().filter(|s| *s != Scope::Whole);
        let name = nomination.name;
        let fresh = self.iam.fresh_facts(nomination.kind, name).await?;
        let Some(facts) = &fresh else {
            info!(%name, "identity no longer exists; nothing to do");
            return Ok(());
        };
        let records = self.store.load_principal(&facts.principal).await?;
        run.count_evaluated(1);
        let nominated = Subject {
            principal: facts.principal.clone(),
            scope: scope.clone().unwrap_or(Scope::Whole),
        };
        self.evaluate_fresh(run, fresh.clone(), records, scope.as_ref(), now)
            .await?;
        // An event only nominates: when IAM says otherwise, say why nothing happened.
        let quiet = run.state().report.actions.is_empty();
        if let (Some(event_id), true) = (run.event_id.as_deref(), quiet) {
            let record = self
                .store
                .load(&nominated)
                .await?
                .unwrap_or_else(|| Record::new(nominated.clone()));
            let decision = decide(
                &record,
                fresh.as_ref(),
                &self.policy,
                &run.state().budget,
                now,
            );
            let reason = format!(
                "event {event_id} nominated it; no action: {}",
                decision.reason
            );
            info!(identity = %nominated, %reason, "re-verified");
            let about = record.next_step.unwrap_or(Step::Notice);
            self.report(run, &nominated, about, Outcome::Skipped, &reason);
            if !self.policy.dry_run {
                self.audit(&nominated, "notice", Outcome::Skipped, &reason, run, now)
                    .await?;
            }
        }
        Ok(())
    }

    fn report(&self, run: &Run, subject: &Subject, step: Step, outcome: Outcome, reason: &str) {
        run.report(subject, step, outcome, reason);
    }

    /// An evaluation that failed before any step began (a read, the store): reported with the
    /// step it was about (a subject new to dormant can only be noticed).
    fn record_failure(&self, run: &Run, subject: &Subject, step: Option<Step>, e: &Error) {
        warn!(identity = %subject, error = %e, "evaluation failed");
        self.report(
            run,
            subject,
            step.unwrap_or(Step::Notice),
            Outcome::Failed,
            &e.to_string(),
        );
    }

    pub(crate) async fn audit(
        &self,
        subject: &Subject,
        step: &str,
        outcome: Outcome,
        reason: &str,
        run: &Run,
        now: Timestamp,
    ) -> Result<()> {
        if !self.mode().writes() {
            // A preview's report is its only record.
            return Ok(());
        }
        let entry = AuditEntry {
            at: now,
            step: step.to_string(),
            outcome,
            actor: self.actor.clone(),
            reason: run.with_note_on(reason),
            event_id: run.event_id.clone(),
        };
        if outcome == Outcome::DryRun {
            // Notes of what would happen: written in batches, at the latest when the run ends.
            if let Some(batch) = run.queue_audit(subject, entry) {
                self.store.append_audits(&batch).await?;
            }
            return Ok(());
        }
        self.store.append_audit(subject, &entry).await?;
        Ok(())
    }
}

/// The stored record of `subject`, or a new one.
fn record_for(records: &[Record], subject: &Subject) -> Record {
    records
        .iter()
        .find(|r| r.subject == *subject)
        .cloned()
        .unwrap_or_else(|| Record::new(subject.clone()))
}
