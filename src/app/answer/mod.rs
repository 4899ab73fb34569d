//! Owners answering from their messages (docs/design.md, 'Answers'): the page a signed link
//! opens, and the POST from that page (or a Slack button) that acts. One function,
//! [`AnswerService::handle`], serves both carriers (`dormant serve` and the Lambda's function
//! URL), so both run the same checks.
//!
//! A GET never acts. A POST acts only when, in this order: the token verifies (signature,
//! expiry), the identity is still the one it was issued for (unique id), still at the stage it
//! was issued at, and the token's id is claimed for the first time (a conditional write). The
//! action goes through the operator commands (`exempt`, `approve`, `undo`) of an engine whose
//! actor is the link's recipient, so the audit trail names who answered.
//!
//! - this file: the flow; `http.rs`: request, response, form decoding, escaping;
//! - `page.rs`: the HTML; `links.rs`: the links messages carry.

use async_trait::async_trait;
use chrono::NaiveDate;

use crate::app::output::{HistoryEntry, StatusReport};
use crate::app::Engine;
use crate::domain::answer::{
    verify, verify_slack, AnswerAction, Claims, Refusal, SigningKeys, ANSWER_PATH,
};
use crate::domain::{IdentityArg, Outcome, Stage, Subject, Timestamp};
use crate::error::Error;
use crate::ports::{Iam, PortResult, Store};

pub mod http;
mod links;
mod page;

pub use http::{HttpRequest, HttpResponse, CONTENT_SECURITY_POLICY};
pub use links::SignedLinks;

/// The path Slack's interactivity requests are sent to.
pub const SLACK_PATH: &str = "/slack";

/// Single use: each token id can be claimed once.
#[async_trait]
pub trait AnswerLedger: Send + Sync {
    /// `true` the first time `token_id` is claimed; the claim is kept until `expires_at`.
    async fn claim_answer(
        &self,
        token_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> PortResult<bool>;
    /// Gives the claim back when the action failed, so the owner can try the link again.
    async fn release_answer(&self, token_id: &str) -> PortResult<()>;
}

/// The engine of an account, acting as `actor` (the recipient a link was issued to).
#[async_trait]
pub trait AnswerEngines<I, S>: Send + Sync {
    async fn engine_as(&self, account: &str, actor: &str) -> Result<Engine<I, S>, Error>;
}

/// The answer service as the Lambda holds it (its engines' types erased).
#[async_trait]
pub trait AnswerHandler: Send + Sync {
    async fn answer(&self, req: &HttpRequest, now: Timestamp) -> HttpResponse;
}

#[async_trait]
impl<I: Iam, S: Store> AnswerHandler for AnswerService<'_, I, S> {
    async fn answer(&self, req: &HttpRequest, now: Timestamp) -> HttpResponse {
        self.handle(req, now).await
    }
}

/// What answers are checked against.
pub struct AnswerService<'a, I, S> {
    pub keys: &'a SigningKeys,
    /// `None`: Slack's requests are refused.
    pub slack_secret: Option<&'a [u8]>,
    pub engines: &'a dyn AnswerEngines<I, S>,
    pub ledger: &'a dyn AnswerLedger,
}

/// What an owner sees after answering, or why nothing happened.
type Answered = Result<Answer, Refusal>;

/// An answer taken: what was done, or that the change failed for now (recorded, and retried by
/// the controller).
pub(super) struct Answer {
    pub(super) text: String,
    pub(super) finished: bool,
}

impl<I: Iam, S: Store> AnswerService<'_, I, S> {
    /// One request: the page (GET), the answer (POST), Slack's button (POST /slack).
    pub async fn handle(&self, req: &HttpRequest, now: Timestamp) -> HttpResponse {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET" | "HEAD", ANSWER_PATH) => self.page(req, now).await,
            ("POST", ANSWER_PATH) => {
                let outcome = self.answer_form(req, now).await;
                page::outcome(&outcome)
            }
            ("POST", SLACK_PATH) => self.slack(req, now).await,
            ("GET", "/") => page::refused(&Refusal::Malformed),
            (_, ANSWER_PATH | SLACK_PATH) => {
                let mut r = HttpResponse::html(
                    405,
                    page::message("Method not allowed", "Only GET and POST are answered here."),
                );
                r.headers.push(("allow".into(), "GET, POST".into()));
                r
            }
            _ => HttpResponse::html(404, page::message("Not found", "There is nothing here.")),
        }
    }

    /// The page a link opens: the identity, its evidence, history and schedule, and the
    /// link's button. Changes nothing.
    async fn page(&self, req: &HttpRequest, now: Timestamp) -> HttpResponse {
        let token = req.query_param("t").unwrap_or_default();
        let claims = match verify(self.keys, &token, now) {
            Ok(c) => c,
            Err(refusal) => return page::refused(&refusal),
        };
        match self.look(&claims, now).await {
            Ok(look) => page::identity(&claims, &token, &look.view, now),
            Err(refusal) => page::refused(&refusal),
        }
    }

    /// The POST from the page: the form carries the token (unguessable and bound to the
    /// recipient, so it is the form's CSRF token too).
    async fn answer_form(&self, req: &HttpRequest, now: Timestamp) -> Answered {
        let token = req.form_param("t").ok_or(Refusal::BadForm)?;
        let claims = verify(self.keys, &token, now)?;
        if let Some(a) = req.form_param("action") {
            if AnswerAction::parse(&a) != Some(claims.action) {
                return Err(Refusal::BadForm);
            }
        }
        let keep = match claims.action {
            AnswerAction::Keep => Some(Keep {
                reason: req.form_param("reason").unwrap_or_default(),
                until: req.form_param("until").unwrap_or_default(),
            }),
            _ => None,
        };
        self.act(&claims, keep, now).await
    }

    /// Slack's button: the signed token is the button's value, the request is Slack's (its
    /// signature, within five minutes), and the answer is the same as the page's.
    async fn slack(&self, req: &HttpRequest, now: Timestamp) -> HttpResponse {
        let reply = |text: String| {
            HttpResponse::json(
                200,
                serde_json::json!({"replace_original": false, "text": text}),
            )
        };
        let Some(secret) = self.slack_secret else {
            return HttpResponse::json(
                403,
                serde_json::json!({"text": "Slack answers are not configured"}),
            );
        };
        if let Err(e) = verify_slack(
            secret,
            req.header("x-slack-request-timestamp"),
            req.header("x-slack-signature"),
            &req.body,
            now,
        ) {
            return HttpResponse::json(401, serde_json::json!({"text": e.to_string()}));
        }
        let payload: serde_json::Value = match req
            .form_param("payload")
            .and_then(|p| serde_json::from_str(&p).ok())
        {
            Some(p) => p,
            None => return reply(Refusal::Malformed.to_string()),
        };
        let token = payload["actions"][0]["value"].as_str().unwrap_or_default();
        let user = payload["user"]["username"]
            .as_str()
            .or(payload["user"]["name"].as_str())
            .unwrap_or("a Slack user");
        let claims = match verify(self.keys, token, now) {
            Ok(c) => c,
            Err(r) => return reply(r.to_string()),
        };
        // A button has no form: Keep from Slack is the longest exemption allowed, its reason
        // the Slack user's answer.
        let keep = (claims.action == AnswerAction::Keep).then(|| Keep {
            reason: format!("kept from Slack by {}", tag_safe(user)),
            until: String::new(),
        });
        match self.act(&claims, keep, now).await {
            Ok(done) => reply(done.text),
            Err(r) => reply(r.to_string()),
        }
    }

    /// The identity as it is now, refused if it is not the one, or not at the stage, the link
    /// was issued for.
    async fn look(&self, claims: &Claims, now: Timestamp) -> Result<Look<I, S>, Refusal> {
        let subject = claims.subject()?;
        let engine = self
            .engines
            .engine_as(&subject.principal.account, &claims.recipient)
            .await
            .map_err(|e| Refusal::Refused(e.to_string()))?;
        let arg = IdentityArg::Subject(subject.clone());
        let (_, facts) = engine
            .resolve(&arg)
            .await
            .map_err(|e| Refusal::Refused(e.to_string()))?;
        let tags = facts.as_ref().map(|f| f.tags.clone()).unwrap_or_default();
        let same = facts
            .as_ref()
            .and_then(|f| f.unique_id.as_deref())
            .is_some_and(|id| id == claims.unique_id);
        if !same {
            return Err(Refusal::WrongIdentity(subject.id()));
        }
        let record = engine
            .store
            .load(&subject)
            .await
            .map_err(|e| Refusal::Refused(e.to_string()))?;
        if record
            .as_ref()
            .and_then(|r| r.unique_id.as_deref())
            .is_some_and(|id| id != claims.unique_id)
        {
            return Err(Refusal::WrongIdentity(subject.id()));
        }
        let stage = record.as_ref().map_or(Stage::Clean, |r| r.stage);
        if stage != claims.stage {
            return Err(Refusal::WrongStage {
                issued: claims.stage,
                now: stage,
            });
        }
        if claims.stage_entered_since(record.as_ref().and_then(|r| r.stage_since)) {
            return Err(Refusal::StageAgain(stage));
        }
        let status = engine
            .status(&arg, now)
            .await
            .map_err(|e| Refusal::Refused(e.to_string()))?;
        let history = engine.history(&arg).await.unwrap_or_default();
        let max_days = engine.policy.exemptions.max_duration.num_days();
        Ok(Look {
            engine: engine.answering_for(claims.unique_id.clone()),
            view: View {
                subject,
                status,
                history,
                tags,
                max_days,
            },
        })
    }

    /// The checks, the single-use claim, then the operator command.
    async fn act(&self, claims: &Claims, keep: Option<Keep>, now: Timestamp) -> Answered {
        let look = self.look(claims, now).await?;
        let keep = keep
            .map(|k| k.checked(look.view.max_days, now))
            .transpose()?;
        let claimed = self
            .ledger
            .claim_answer(&claims.token_id, claims.expires(), now)
            .await
            .map_err(|e| {
                Refusal::Refused(format!(
                    "cannot record the answer: {e}; nothing was changed"
                ))
            })?;
        if !claimed {
            return Err(Refusal::Used);
        }
        let arg = IdentityArg::Subject(look.view.subject.clone());
        // The link's id lets an operator match the audit entry with the message that carried it.
        let via = format!(
            "answered from the link sent to {} (link {})",
            claims.recipient, claims.token_id
        );
        let done = match (claims.action, keep) {
            (AnswerAction::Keep, Some((until, reason))) => {
                look.engine
                    .exempt(&arg, until, &reason, Some(&via), now)
                    .await
            }
            (AnswerAction::Keep, None) => Err(Error::Usage("a reason is needed".into())),
            (AnswerAction::Approve, _) => look.engine.approve(&arg, &via, now).await,
            (AnswerAction::Undo, _) => look.engine.undo(&arg, &via, now).await,
        };
        match done {
            // The answer stands (the claim is kept): a failed step is recorded and retried.
            Ok(report) if report.outcome == Outcome::Failed => Ok(Answer {
                text: format!(
                    "{}: your {} is recorded as answered by {}, but the change could not be made \
                     yet: {}. dormant's controller retries it and the security team sees the \
                     failure in the identity's history",
                    report.identity, report.command, claims.recipient, report.reason
                ),
                finished: false,
            }),
            Ok(report) => Ok(Answer {
                text: format!(
                    "{}: {} — {} (recorded as answered by {})",
                    report.identity, report.command, report.reason, claims.recipient
                ),
                finished: true,
            }),
            Err(e) => {
                // Nothing (or not all) was done: the owner may try the link again.
                let _ = self.ledger.release_answer(&claims.token_id).await;
                Err(Refusal::Refused(format!("{e}; the link can be used again")))
            }
        }
    }
}

/// The identity as the page shows it, with the engine that read it.
struct Look<I, S> {
    engine: Engine<I, S>,
    view: View,
}

/// What the page shows.
pub(crate) struct View {
    subject: Subject,
    status: StatusReport,
    history: Vec<HistoryEntry>,
    /// The identity's tags as IAM has them: the owner's (or anyone's) words, escaped.
    tags: std::collections::BTreeMap<String, String>,
    max_days: i64,
}

/// Keep's form fields, as given.
struct Keep {
    reason: String,
    /// `YYYY-MM-DD`; empty: the latest allowed.
    until: String,
}

impl Keep {
    fn checked(self, max_days: i64, now: Timestamp) -> Result<(NaiveDate, String), Refusal> {
        let reason = self.reason.trim().to_string();
        if reason.is_empty() {
            return Err(Refusal::Invalid(
                "Keep needs a reason (it is recorded with your name)".into(),
            ));
        }
        let latest = latest_until(max_days, now);
        let until = if self.until.trim().is_empty() {
            latest
        } else {
            NaiveDate::parse_from_str(self.until.trim(), "%Y-%m-%d").map_err(|_| {
                Refusal::Invalid(format!(
                    "'{}' is not a date (YYYY-MM-DD)",
                    self.until.trim()
                ))
            })?
        };
        if until > latest {
            return Err(Refusal::Invalid(format!(
                "{until} is more than {max_days} days away (exemptions.max_days); the latest is {latest}"
            )));
        }
        if until < now.date_naive() {
            return Err(Refusal::Invalid(format!("{until} is in the past")));
        }
        Ok((until, reason))
    }
}

/// The last day an exemption may run to: an exemption runs to the end of its date, which must
/// be at most `exemptions.max_days` from now.
pub fn latest_until(max_days: i64, now: Timestamp) -> NaiveDate {
    let day = (now + chrono::Duration::days(max_days)).date_naive();
    day.pred_opt().unwrap_or(day)
}

/// A Slack user name in an IAM tag value (letters, digits, spaces and `_ . : / = + - @`).
fn tag_safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric() || " _.:/=+-@".contains(*c))
        .take(64)
        .collect()
}
