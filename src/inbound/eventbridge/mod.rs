//! EventBridge event → [`Classification`] (docs/design.md, 'Event sources'). Parse and validate only: no I/O, no
//! clock, never panics, whatever the JSON.
//!
//! The envelope must carry string `id`, `source`, `detail-type`, a 12-digit `account` and an
//! object `detail`, else the event is [`Classification::Invalid`]. Sources and detail types that
//! dormant does not handle are [`Classification::Ignored`], with the reason, so that EventBridge
//! does not retry them. The shapes follow what AWS publishes; `tests/fixtures/events/README.md`
//! lists the sources.
//!
//! Reading rules used throughout: a missing or `null` field is "absent"; a field of the wrong type
//! makes the event invalid, and the reason names it by its JSON path.
//!
//! This file: the entry points, the envelope and the routing, and the schedule; one file per other
//! source (`aws_config`, `access_analyzer`, `security_hub`, `cloudtrail`), and the shared readers
//! of identities (`identity`) and JSON paths (`json`).

use serde_json::{Map, Value};

use crate::config::Config;
use crate::domain::finding::{Classification, Finding, Nominee, Source};
use crate::domain::subject::{
    is_access_key_id, is_account_id, is_iam_name, partition_of_region, Principal, PrincipalKind,
    Scope,
};

mod access_analyzer;
mod aws_config;
mod cloudtrail;
mod identity;
mod json;
mod security_hub;

use access_analyzer::*;
use aws_config::*;
use cloudtrail::*;
use identity::*;
use json::*;
use security_hub::*;

/// EventBridge's own limit on an event (PutEvents entry size); larger input cannot be real.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// What classification needs from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassifyRules {
    /// AWS Config rule names that count as inactivity rules (`sources.config_rules`), matched
    /// exactly.
    pub config_rules: Vec<String>,
}

impl ClassifyRules {
    pub fn from_config(config: &Config) -> Self {
        ClassifyRules {
            config_rules: config.config_rules.clone(),
        }
    }
}

/// Classifies raw bytes: over [`MAX_EVENT_BYTES`] or not JSON is [`Classification::Invalid`].
pub fn classify_bytes(bytes: &[u8], rules: &ClassifyRules) -> Classification {
    match parse_bytes(bytes) {
        Ok(event) => summarise(evaluate(&event, rules, false)),
        Err(reason) => unparsed(reason),
    }
}

/// Classifies one event into one verdict. An event with several findings (Security Hub's
/// `detail.findings[]`) yields its first candidate, and the reason says which of how many; use
/// [`classify_all`] to get every finding.
pub fn classify(event: &Value, rules: &ClassifyRules) -> Classification {
    summarise(evaluate(event, rules, true))
}

/// One verdict per finding in the event, in order (one for events that carry a single
/// nomination). Envelope problems yield a single [`Classification::Invalid`].
pub fn classify_all(event: &Value, rules: &ClassifyRules) -> Vec<Classification> {
    expand(evaluate(event, rules, true))
}

/// [`classify_all`] on raw bytes.
pub fn classify_all_bytes(bytes: &[u8], rules: &ClassifyRules) -> Vec<Classification> {
    match parse_bytes(bytes) {
        Ok(event) => expand(evaluate(&event, rules, false)),
        Err(reason) => vec![unparsed(reason)],
    }
}

/// The `event classify` output: `{"outcome", "source", "identity", "finding", "reason"}`, plus
/// `event_id` and `account` (null when unknown).
/// What `dormant event classify` prints: the verdict on one event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClassificationReport<'a> {
    pub outcome: &'static str,
    pub source: Option<&'static str>,
    pub identity: Option<String>,
    pub finding: Option<&'a str>,
    pub reason: &'a str,
    pub event_id: Option<&'a str>,
    pub account: Option<&'a str>,
}

impl<'a> ClassificationReport<'a> {
    pub fn of(c: &'a Classification) -> Self {
        let candidate = c.candidate();
        ClassificationReport {
            outcome: c.outcome(),
            source: c.source().map(Source::as_str),
            identity: candidate.and_then(Finding::identity),
            finding: candidate.map(|f| f.finding.as_str()),
            reason: c.reason(),
            event_id: c.event_id(),
            account: candidate.and_then(|f| f.nominee.account()),
        }
    }
}

/// [`ClassificationReport`] as JSON.
pub fn classification_json(c: &Classification) -> Value {
    serde_json::to_value(ClassificationReport::of(c)).unwrap_or(Value::Null)
}

fn parse_bytes(bytes: &[u8]) -> Parsed<Value> {
    // Checked before parsing so that an oversized payload costs nothing.
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(too_big(bytes.len()));
    }
    serde_json::from_slice(bytes).map_err(|e| format!("not a JSON event: {e}"))
}

fn unparsed(reason: String) -> Classification {
    Classification::Invalid {
        source: None,
        event_id: None,
        reason,
    }
}

fn too_big(size: usize) -> String {
    format!("the event is {size} bytes; EventBridge events are at most {MAX_EVENT_BYTES} (256 KiB)")
}

// ---------------------------------------------------------------------------------------------
// Evaluation: the event's context plus one outcome per finding.

/// A finding's verdict; `Err` in [`Parsed`] is the malformed case.
enum Outcome {
    Candidate(Box<Finding>),
    Skip(String),
}

/// `Err(reason)`: malformed.
type Parsed<T> = Result<T, String>;

struct Evaluated {
    source: Option<Source>,
    event_id: Option<String>,
    outcomes: Vec<Parsed<Outcome>>,
}

fn summarise(e: Evaluated) -> Classification {
    let total = e.outcomes.len();
    let mut first_skip = None;
    let mut first_bad = None;
    for (i, outcome) in e.outcomes.into_iter().enumerate() {
        match outcome {
            Ok(Outcome::Candidate(mut f)) => {
                if total > 1 {
                    f.reason = format!("{} (finding {} of {total} in the event)", f.reason, i + 1);
                }
                return Classification::Candidate(*f);
            }
            Ok(Outcome::Skip(r)) => {
                first_skip.get_or_insert(r);
            }
            Err(r) => {
                first_bad.get_or_insert(r);
            }
        }
    }
    let several = |r: String| {
        if total > 1 {
            format!(
                "{r} (and none of the other {} findings nominates)",
                total - 1
            )
        } else {
            r
        }
    };
    // A usable-but-uninteresting finding beats a malformed one: no retry either way.
    match (first_skip, first_bad) {
        (Some(reason), _) => Classification::Ignored {
            source: e.source,
            event_id: e.event_id,
            reason: several(reason),
        },
        (None, Some(reason)) => Classification::Invalid {
            source: e.source,
            event_id: e.event_id,
            reason: several(reason),
        },
        (None, None) => Classification::Ignored {
            source: e.source,
            event_id: e.event_id,
            reason: "the event carries no findings".to_string(),
        },
    }
}

fn expand(e: Evaluated) -> Vec<Classification> {
    let total = e.outcomes.len();
    e.outcomes
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| {
            let of = |r: String| {
                if total > 1 {
                    format!("{r} (finding {} of {total} in the event)", i + 1)
                } else {
                    r
                }
            };
            match outcome {
                Ok(Outcome::Candidate(mut f)) => {
                    f.reason = of(std::mem::take(&mut f.reason));
                    Classification::Candidate(*f)
                }
                Ok(Outcome::Skip(reason)) => Classification::Ignored {
                    source: e.source,
                    event_id: e.event_id.clone(),
                    reason: of(reason),
                },
                Err(reason) => Classification::Invalid {
                    source: e.source,
                    event_id: e.event_id.clone(),
                    reason: of(reason),
                },
            }
        })
        .collect()
}

/// Which parser an envelope goes to.
#[derive(Clone, Copy)]
enum Route {
    Config,
    AccessAnalyzer,
    SecurityHubAsff,
    SecurityHubOcsf,
    CloudTrail,
    Schedule,
}

/// What every parser needs from the envelope.
struct Cx<'a> {
    source: Source,
    id: &'a str,
    /// The envelope's account: the fallback when the detail names none.
    account: &'a str,
    /// The partition of the envelope's region.
    partition: &'static str,
    event: &'a Map<String, Value>,
    rules: &'a ClassifyRules,
}

impl Cx<'_> {
    fn finding(&self, nominee: Nominee, finding: &str, reason: String) -> Box<Finding> {
        Box::new(Finding {
            source: self.source,
            event_id: self.id.to_string(),
            nominee,
            finding: finding.to_string(),
            reason,
            analyzer_finding_id: None,
            analyzer_arn: None,
            observed_last_used: None,
            sent_from: self.account.to_string(),
            partition: self.partition.to_string(),
            hub_finding: None,
        })
    }
}

fn evaluate(event: &Value, rules: &ClassifyRules, check_size: bool) -> Evaluated {
    let mut e = Evaluated {
        source: None,
        event_id: None,
        outcomes: Vec::new(),
    };
    if check_size {
        if let Some(size) = json_size_over(event, MAX_EVENT_BYTES) {
            e.outcomes.push(Err(too_big(size)));
            return e;
        }
    }
    let Some(obj) = event.as_object() else {
        e.outcomes.push(Err(format!(
            "the event must be a JSON object, not {}",
            type_name(event)
        )));
        return e;
    };
    // The id first, so that every later complaint can be logged against it.
    match str_at(event, "", &["id"]) {
        Ok(Some(id)) if !id.is_empty() => e.event_id = Some(id.to_string()),
        Ok(_) => {
            e.outcomes
                .push(Err("\"id\" is missing or empty".to_string()));
            return e;
        }
        Err(r) => {
            e.outcomes.push(Err(r));
            return e;
        }
    }
    let header = (|| -> Parsed<(&str, &str, &str, &Value)> {
        let source = required(str_at(event, "", &["source"]), "\"source\"")?;
        let detail_type = required(str_at(event, "", &["detail-type"]), "\"detail-type\"")?;
        let account = required(str_at(event, "", &["account"]), "\"account\"")?;
        if !is_account_id(account) {
            return Err(format!(
                "\"account\" must be a 12-digit AWS account id, not {}",
                quote(account)
            ));
        }
        let detail = match obj.get("detail") {
            Some(d @ Value::Object(_)) => d,
            Some(other) => {
                return Err(format!(
                    "\"detail\" must be an object, not {}",
                    type_name(other)
                ))
            }
            None => return Err("\"detail\" is missing".to_string()),
        };
        Ok((source, detail_type, account, detail))
    })();
    let (source, detail_type, account, detail) = match header {
        Ok(h) => h,
        Err(r) => {
            e.outcomes.push(Err(r));
            return e;
        }
    };
    let (src, route) = match route(source, detail_type) {
        Ok(r) => r,
        Err((src, reason)) => {
            e.source = src;
            e.outcomes.push(Ok(Outcome::Skip(reason)));
            return e;
        }
    };
    e.source = Some(src);
    // The envelope's region names the partition of the identities the event is about.
    let region = obj
        .get("region")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let cx = Cx {
        source: src,
        id: e.event_id.as_deref().unwrap_or_default(),
        account,
        partition: partition_of_region(region),
        event: obj,
        rules,
    };
    e.outcomes = match route {
        Route::Config => vec![config(&cx, detail)],
        Route::AccessAnalyzer => vec![access_analyzer(&cx, detail)],
        Route::SecurityHubAsff => security_hub(&cx, detail, asff),
        Route::SecurityHubOcsf => security_hub(&cx, detail, ocsf),
        Route::CloudTrail => vec![cloudtrail(&cx, detail)],
        Route::Schedule => vec![schedule(&cx, detail)],
    };
    e
}

/// `Err`: not ours, with the source when it is one of ours but another detail type.
fn route(source: &str, detail_type: &str) -> Result<(Source, Route), (Option<Source>, String)> {
    let known = match source {
        "aws.config" => Source::Config,
        "aws.access-analyzer" => Source::AccessAnalyzer,
        "aws.securityhub" => Source::SecurityHub,
        "aws.iam" => Source::CloudTrail,
        "aws.events" | "aws.scheduler" => Source::Schedule,
        _ => {
            return Err((
                None,
                format!(
                    "events from {} / {} are not an input dormant handles",
                    quote(source),
                    quote(detail_type)
                ),
            ))
        }
    };
    let route = match (known, detail_type) {
        (Source::Config, "Config Rules Compliance Change") => Route::Config,
        (Source::AccessAnalyzer, "Unused Access Finding for IAM entities") => Route::AccessAnalyzer,
        (Source::SecurityHub, "Security Hub Findings - Imported") => Route::SecurityHubAsff,
        (Source::SecurityHub, "Findings Imported V2") => Route::SecurityHubOcsf,
        (Source::CloudTrail, "AWS API Call via CloudTrail") => Route::CloudTrail,
        (Source::Schedule, "Scheduled Event") => Route::Schedule,
        _ => {
            return Err((
                Some(known),
                format!(
                    "{source} events of type {} are not an input dormant handles",
                    quote(detail_type)
                ),
            ))
        }
    };
    Ok((known, route))
}

// ---------------------------------------------------------------------------------------------
// Schedule: `Scheduled Event` with `detail.action`.

fn schedule(cx: &Cx, detail: &Value) -> Parsed<Outcome> {
    let action = str_at(detail, "detail", &["action"])?
        .ok_or("a scheduled event needs detail.action = \"sweep\" or \"tick\"")?;
    let (nominee, reason) = match action {
        "sweep" => (
            Nominee::Sweep,
            "scheduled sweep: evaluate every identity".to_string(),
        ),
        "tick" => (
            Nominee::Tick,
            "scheduled tick: advance identities whose next step is due".to_string(),
        ),
        other => {
            return Err(format!(
                "unknown detail.action {} (expected sweep or tick)",
                quote(other)
            ))
        }
    };
    Ok(Outcome::Candidate(cx.finding(nominee, action, reason)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn size_estimate_matches_serde_json() {
        let v = json!({"a": [1, -2.5, true, false, null, "x\"\\\n\u{1}é"], "b": {}, "c": []});
        let exact = serde_json::to_string(&v).unwrap().len();
        assert_eq!(json_size_over(&v, exact), None);
        assert_eq!(json_size_over(&v, exact - 1), Some(exact));
    }

    #[test]
    fn cis_numbers_depend_on_the_version() {
        assert!(cis_control("1.2.0", "1.3").in_scope);
        assert!(!cis_control("1.2.0", "1.12").in_scope);
        assert!(cis_control("1.4.0", "1.12").in_scope);
        assert_eq!(
            cis_generator(
                "arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0/rule/1.3"
            ),
            Some(("1.2.0", "1.3"))
        );
        assert_eq!(
            cis_generator("cis-aws-foundations-benchmark/v/1.4.0/1.12"),
            Some(("1.4.0", "1.12"))
        );
    }

    #[test]
    fn unique_ids_and_keys() {
        assert_eq!(
            unique_id_kind("AIDACKCEVSQ6C2EXAMPLE"),
            Some(Some(PrincipalKind::User))
        );
        assert_eq!(
            unique_id_kind("AROAY66XCSFB4WL7AHL3V"),
            Some(Some(PrincipalKind::Role))
        );
        assert_eq!(unique_id_kind("AGPAEXAMPLEEXAMPLE1"), Some(None));
        assert_eq!(unique_id_kind("deploy-bot"), None);
        assert!(is_access_key_id("AKIAIOSFODNN7EXAMPLE"));
        assert!(!is_access_key_id("ASIAIOSFODNN7EXAMPLE"));
        assert!(is_dormant_tag("Dormant:Exempt"));
        assert!(!is_dormant_tag("dormant"));
        assert!(!is_dormant_tag("dörmant:x"));
    }

    #[test]
    fn quoting_cuts_on_a_char_boundary() {
        let long = "é".repeat(200);
        let q = quote(&long);
        assert!(q.ends_with('…'));
        assert!(q.chars().count() < 90);
    }
}
