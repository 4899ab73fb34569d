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
//! Size: about 1,400 lines of code for five sources in one file. Splitting it per source
//! (config, access_analyzer, security_hub, cloudtrail, schedule) is planned with the shape work
//! of the code-you-can-change issue; it was not done here to keep this change to the guards.

use serde_json::{Map, Value};

use crate::config::Config;
use crate::domain::finding::{Classification, Finding, Nominee, Source};
use crate::domain::subject::{
    is_access_key_id, is_account_id, is_iam_name, Principal, PrincipalKind, Scope,
};

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
            identity: candidate.and_then(|f| f.nominee.identity()),
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
    let cx = Cx {
        source: src,
        id: e.event_id.as_deref().unwrap_or_default(),
        account,
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
// AWS Config: `Config Rules Compliance Change`.

fn config(cx: &Cx, detail: &Value) -> Parsed<Outcome> {
    const QUALIFIER: [&str; 3] = [
        "newEvaluationResult",
        "evaluationResultIdentifier",
        "evaluationResultQualifier",
    ];
    let rule = required(
        str_at(detail, "detail", &["configRuleName"]),
        "detail.configRuleName",
    )?;
    // Not our rule: nothing else about the event matters.
    if !cx.rules.config_rules.iter().any(|r| r == rule) {
        return Ok(Outcome::Skip(format!(
            "AWS Config rule {} is not one of the configured inactivity rules (sources.config_rules)",
            quote(rule)
        )));
    }
    let compliance = required(
        str_at(detail, "detail", &["newEvaluationResult", "complianceType"]),
        "detail.newEvaluationResult.complianceType",
    )?;
    if compliance != "NON_COMPLIANT" {
        return Ok(Outcome::Skip(format!(
            "rule {rule} reports {}: only NON_COMPLIANT nominates",
            quote(compliance)
        )));
    }
    let resource_type = match str_at(detail, "detail", &["resourceType"])? {
        Some(t) => t,
        None => required(
            str_at(
                detail,
                "detail",
                &[QUALIFIER[0], QUALIFIER[1], QUALIFIER[2], "resourceType"],
            ),
            "detail.resourceType",
        )?,
    };
    let kind = match resource_type {
        "AWS::IAM::User" => PrincipalKind::User,
        "AWS::IAM::Role" => PrincipalKind::Role,
        other => {
            return Ok(Outcome::Skip(format!(
                "resource type {} is not an IAM user or role",
                quote(other)
            )))
        }
    };
    let resource_id = match str_at(detail, "detail", &["resourceId"])? {
        Some(r) => r,
        None => required(
            str_at(
                detail,
                "detail",
                &[QUALIFIER[0], QUALIFIER[1], QUALIFIER[2], "resourceId"],
            ),
            "detail.resourceId",
        )?,
    };
    // `awsAccountId` is the evaluated resource's account; it wins over the envelope's.
    let account = account_or(
        str_at(detail, "detail", &["awsAccountId"])?,
        "detail.awsAccountId",
        cx.account,
    )?;
    let nominee = if resource_id.starts_with("arn:") {
        principal_nominee(
            iam_arn(resource_id, "detail.resourceId", kind)?,
            Scope::Whole,
        )
    } else if let Some(id_kind) = unique_id_kind(resource_id) {
        match id_kind {
            Some(k) if k == kind => Nominee::UniqueId {
                account: account.to_string(),
                kind,
                unique_id: resource_id.to_string(),
            },
            Some(k) => {
                return Err(format!(
                    "detail.resourceId {resource_id} is a {} id but the resource type is {resource_type}",
                    k.as_str()
                ))
            }
            None => {
                return Err(format!(
                    "detail.resourceId {resource_id} is the unique id of neither a user nor a role"
                ))
            }
        }
    } else if is_iam_name(resource_id) {
        // Some custom rules report the name rather than the unique id.
        Nominee::Principal {
            account: account.to_string(),
            kind,
            path: None,
            name: resource_id.to_string(),
            scope: Scope::Whole,
        }
    } else {
        return Err(format!(
            "detail.resourceId {} is neither an IAM unique id, an IAM ARN nor an IAM name",
            quote(resource_id)
        ));
    };
    let annotation = match str_at(detail, "detail", &["newEvaluationResult", "annotation"]) {
        Ok(Some(a)) if !a.is_empty() => format!(": {}", quote(a)),
        _ => String::new(),
    };
    let reason = format!(
        "AWS Config rule {rule} found {} {resource_id} NON_COMPLIANT{annotation}",
        kind.as_str()
    );
    Ok(Outcome::Candidate(cx.finding(nominee, rule, reason)))
}

// ---------------------------------------------------------------------------------------------
// IAM Access Analyzer: `Unused Access Finding for IAM entities`.

fn access_analyzer(cx: &Cx, detail: &Value) -> Parsed<Outcome> {
    enum Want {
        Role,
        Key,
        Password,
    }
    let finding_type = required(
        str_at(detail, "detail", &["findingType"]),
        "detail.findingType",
    )?;
    let want = match finding_type {
        "UnusedIAMRole" => Want::Role,
        "UnusedIAMUserAccessKey" => Want::Key,
        "UnusedIAMUserPassword" => Want::Password,
        "UnusedPermission" => {
            return Ok(Outcome::Skip(
                "UnusedPermission findings are out of scope: dormant retires unused identities and credentials, not permissions".to_string(),
            ))
        }
        other => {
            return Ok(Outcome::Skip(format!(
                "finding type {} is not an unused role, access key or password",
                quote(other)
            )))
        }
    };
    if let Some(error) = present(detail, "error") {
        return Ok(Outcome::Skip(format!(
            "Access Analyzer could not analyze the resource (error {})",
            describe(error)
        )));
    }
    if bool_at(detail, "detail", "isDeleted")? == Some(true) {
        return Ok(Outcome::Skip("the finding was deleted".to_string()));
    }
    let status = required(str_at(detail, "detail", &["status"]), "detail.status")?;
    if status != "ACTIVE" {
        return Ok(Outcome::Skip(format!(
            "finding status is {}: only ACTIVE nominates",
            quote(status)
        )));
    }
    let resource = required(str_at(detail, "detail", &["resource"]), "detail.resource")?;
    let kind = match want {
        Want::Role => PrincipalKind::Role,
        Want::Key | Want::Password => PrincipalKind::User,
    };
    // The ARN's account wins over `accountId`/`resourceOwnerAccount` and the envelope's.
    let principal = iam_arn(resource, "detail.resource", kind)?;
    let finding_id = match str_at(detail, "detail", &["findingId"])? {
        Some(id) => Some(id),
        None => str_at(detail, "detail", &["id"])?,
    };
    let analyzer = match cx.event.get("resources") {
        Some(Value::Array(rs)) => rs.iter().find_map(Value::as_str),
        _ => None,
    };
    let nominee = match want {
        Want::Role => principal_nominee(principal, Scope::Whole),
        Want::Password => principal_nominee(principal, Scope::Password),
        // The event does not carry the key id; GetFindingV2's details would.
        Want::Key => match key_in_finding_details(detail)? {
            Some(key) => principal_nominee(principal, Scope::AccessKey(key.to_string())),
            None => Nominee::AccessKeyOf {
                account: principal.account,
                path: Some(principal.path),
                user: principal.name,
            },
        },
    };
    let reason = format!("IAM Access Analyzer reports {finding_type} for {resource}");
    let mut f = cx.finding(nominee, finding_type, reason);
    f.analyzer_finding_id = finding_id.map(str::to_string);
    f.analyzer_arn = analyzer.map(str::to_string);
    Ok(Outcome::Candidate(f))
}

/// `detail.findingDetails[].unusedIamUserAccessKeyDetails.accessKeyId`, the `GetFindingV2` shape,
/// in case an event ever carries it.
fn key_in_finding_details(detail: &Value) -> Parsed<Option<&str>> {
    let Some(Value::Array(items)) = present(detail, "findingDetails") else {
        return Ok(None);
    };
    for (i, item) in items.iter().enumerate() {
        let path = format!("detail.findingDetails[{i}]");
        if let Some(key) = str_at(
            item,
            &path,
            &["unusedIamUserAccessKeyDetails", "accessKeyId"],
        )? {
            if !is_access_key_id(key) {
                return Err(format!("{path}: {} is not an access key id", quote(key)));
            }
            return Ok(Some(key));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Security Hub: `Security Hub Findings - Imported` (ASFF) and `Findings Imported V2` (OCSF).

/// The controls that mean "unused credentials".
const SECURITY_CONTROLS: [&str; 2] = ["IAM.8", "IAM.22"];

type FindingParser = fn(&Cx, &Value, &str) -> Parsed<Outcome>;

fn security_hub(cx: &Cx, detail: &Value, parse: FindingParser) -> Vec<Parsed<Outcome>> {
    match present(detail, "findings") {
        Some(Value::Array(findings)) if findings.is_empty() => {
            vec![Ok(Outcome::Skip(
                "the event carries no findings".to_string(),
            ))]
        }
        Some(Value::Array(findings)) => findings
            .iter()
            .enumerate()
            .map(|(i, f)| parse(cx, f, &format!("detail.findings[{i}]")))
            .collect(),
        Some(other) => vec![Err(format!(
            "detail.findings must be an array, not {}",
            type_name(other)
        ))],
        None => vec![Err("detail.findings is missing".to_string())],
    }
}

/// A control finding's control, as the reason names it.
struct Control {
    label: String,
    in_scope: bool,
}

/// CIS AWS Foundations Benchmark numbers are per version: 1.12 is "credentials unused for 45
/// days" in v1.4.0 and v3.0.0 but "no root access key" in v1.2.0 (Security Hub maps it to IAM.4).
fn cis_control(version: &str, number: &str) -> Control {
    let in_scope = matches!(
        (version, number),
        ("1.2.0", "1.3") | ("1.4.0", "1.12") | ("3.0.0", "1.12") | ("5.0.0", "1.11")
    );
    Control {
        label: format!("CIS {number}"),
        in_scope,
    }
}

/// `(version, number)` from `…cis-aws-foundations-benchmark/v/1.2.0/rule/1.3` or
/// `…cis-aws-foundations-benchmark/v/1.4.0/1.12`.
fn cis_generator(generator: &str) -> Option<(&str, &str)> {
    let (_, rest) = generator.split_once("cis-aws-foundations-benchmark/v/")?;
    let (version, rest) = rest.split_once('/')?;
    let number = rest.strip_prefix("rule/").unwrap_or(rest);
    let number = number.split('/').next().unwrap_or(number);
    (!version.is_empty() && !number.is_empty()).then_some((version, number))
}

/// The standard's version from `ProductFields.StandardsArn`/`StandardsGuideArn` (CIS only).
fn cis_version_of(standards_arn: &str) -> Option<&str> {
    let (_, rest) = standards_arn.split_once("cis-aws-foundations-benchmark/v/")?;
    rest.split('/').next().filter(|v| !v.is_empty())
}

fn asff_control(f: &Value, path: &str) -> Parsed<Option<Control>> {
    let security_control = str_at(f, path, &["Compliance", "SecurityControlId"])?;
    let generator = str_at(f, path, &["GeneratorId"])?;
    let product_control = str_at(f, path, &["ProductFields", "ControlId"])?;
    let rule_id = str_at(f, path, &["ProductFields", "RuleId"])?;
    let standards = match str_at(f, path, &["ProductFields", "StandardsArn"])? {
        Some(s) => Some(s),
        None => str_at(f, path, &["ProductFields", "StandardsGuideArn"])?,
    };
    let cis = generator.and_then(cis_generator).or_else(|| {
        let version = standards.and_then(cis_version_of)?;
        Some((version, rule_id.or(product_control)?))
    });
    let cis = cis.map(|(version, number)| cis_control(version, number));
    // The cross-standard id is authoritative when present; the CIS number only names it.
    if let Some(id) = security_control {
        let in_scope = SECURITY_CONTROLS.contains(&id);
        let label = match cis {
            Some(c) if c.in_scope && in_scope => c.label,
            _ => id.to_string(),
        };
        return Ok(Some(Control { label, in_scope }));
    }
    if let Some(c) = cis {
        return Ok(Some(c));
    }
    // `security-control/IAM.8`, `aws-foundational-security-best-practices/v/1.0.0/IAM.8`.
    let named = generator
        .and_then(|g| g.rsplit('/').next())
        .filter(|g| SECURITY_CONTROLS.contains(g))
        .or(product_control);
    Ok(named.or(generator).map(|label| Control {
        label: label.to_string(),
        in_scope: SECURITY_CONTROLS.contains(&label),
    }))
}

fn scope_skip(label: &str) -> Outcome {
    Outcome::Skip(format!(
        "control {} is not an unused-credentials control (IAM.8, IAM.22, CIS 1.3 in v1.2.0, CIS 1.12 in v1.4.0/v3.0.0)",
        quote(label)
    ))
}

fn asff(cx: &Cx, f: &Value, path: &str) -> Parsed<Outcome> {
    if !f.is_object() {
        return Err(format!("{path} must be an object, not {}", type_name(f)));
    }
    let Some(control) = asff_control(f, path)? else {
        return Ok(Outcome::Skip(
            "not a control finding (no Compliance.SecurityControlId or GeneratorId)".to_string(),
        ));
    };
    if !control.in_scope {
        return Ok(scope_skip(&control.label));
    }
    let label = control.label;
    match str_at(f, path, &["Compliance", "Status"])? {
        Some("FAILED") => {}
        Some(other) => {
            return Ok(Outcome::Skip(format!(
                "{label}: Compliance.Status is {}: only FAILED nominates",
                quote(other)
            )))
        }
        None => {
            return Ok(Outcome::Skip(format!(
                "{label}: no Compliance.Status: only FAILED nominates"
            )))
        }
    }
    if str_at(f, path, &["Workflow", "Status"])? == Some("SUPPRESSED") {
        return Ok(Outcome::Skip(format!(
            "{label}: the finding is suppressed (Workflow.Status SUPPRESSED)"
        )));
    }
    if str_at(f, path, &["RecordState"])? == Some("ARCHIVED") {
        return Ok(Outcome::Skip(format!(
            "{label}: the finding is archived (RecordState ARCHIVED)"
        )));
    }
    let finding_account = account_or(
        str_at(f, path, &["AwsAccountId"])?,
        &format!("{path}.AwsAccountId"),
        cx.account,
    )?;
    let resources = required_array(f, path, "Resources")?;
    let mut seen = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let rpath = format!("{path}.Resources[{i}]");
        let rtype = required(str_at(r, &rpath, &["Type"]), &format!("{rpath}.Type"))?;
        let nominee = match rtype {
            "AwsIamUser" => asff_principal(r, &rpath, PrincipalKind::User, finding_account)?,
            "AwsIamRole" => asff_principal(r, &rpath, PrincipalKind::Role, finding_account)?,
            "AwsIamAccessKey" => match asff_access_key(r, &rpath, finding_account)? {
                Ok(n) => n,
                Err(skip) => return Ok(Outcome::Skip(format!("{label}: {skip}"))),
            },
            other => {
                seen.push(other);
                continue;
            }
        };
        let what = nominee.identity().unwrap_or_default();
        let reason = format!("Security Hub {label} FAILED for {what}");
        return Ok(Outcome::Candidate(cx.finding(nominee, &label, reason)));
    }
    Ok(Outcome::Skip(no_iam_resource(&label, &seen)))
}

fn no_iam_resource(label: &str, seen: &[&str]) -> String {
    match seen.first() {
        Some(t) => format!(
            "{label}: resource type {} is not an IAM user, role or access key",
            quote(t)
        ),
        None => format!("{label}: the finding names no resource"),
    }
}

/// An `AwsIamUser`/`AwsIamRole` resource: the ARN in `Id`, else the name and path in `Details`.
fn asff_principal(r: &Value, path: &str, kind: PrincipalKind, account: &str) -> Parsed<Nominee> {
    if let Some(id) = str_at(r, path, &["Id"])? {
        if id.starts_with("arn:") {
            return Ok(principal_nominee(
                iam_arn(id, &format!("{path}.Id"), kind)?,
                Scope::Whole,
            ));
        }
    }
    let (details, name_field) = match kind {
        PrincipalKind::User => ("AwsIamUser", "UserName"),
        PrincipalKind::Role => ("AwsIamRole", "RoleName"),
    };
    let name = str_at(r, path, &["Details", details, name_field])?.ok_or_else(|| {
        format!("{path} has neither an IAM ARN in Id nor Details.{details}.{name_field}")
    })?;
    let iam_path = str_at(r, path, &["Details", details, "Path"])?;
    principal_by_name(
        account,
        kind,
        iam_path,
        name,
        Scope::Whole,
        &format!("{path}.Details.{details}"),
    )
}

/// An `AwsIamAccessKey` resource. Inner `Err`: a key dormant does not manage (not a user's).
fn asff_access_key(r: &Value, path: &str, account: &str) -> Parsed<Result<Nominee, String>> {
    // `AwsIamAccessKey` is the ASFF key; the API type is `AwsIamAccessKeyDetails`.
    let details = if present(r, "Details")
        .and_then(|d| present(d, "AwsIamAccessKey"))
        .is_some()
    {
        "AwsIamAccessKey"
    } else {
        "AwsIamAccessKeyDetails"
    };
    let dpath = format!("{path}.Details.{details}");
    let field = |name: &str| str_at(r, path, &["Details", details, name]);
    if let Some(t) = field("PrincipalType")? {
        if !matches!(t, "IAMUser" | "User") {
            return Ok(Err(format!(
                "the access key belongs to a {}, not an IAM user",
                quote(t)
            )));
        }
    }
    let account = account_or(field("AccountId")?, &format!("{dpath}.AccountId"), account)?;
    let user = match field("PrincipalName")? {
        Some(u) => u,
        None => field("UserName")?
            .ok_or_else(|| format!("{dpath} names no user (PrincipalName or UserName)"))?,
    };
    let key = match field("AccessKeyId")? {
        Some(k) => Some(k),
        // Ids seen in the wild: the bare key id, or `AWS::IAM::AccessKey:AKIA…`.
        None => str_at(r, path, &["Id"])?.and_then(|id| id.rsplit([':', '/']).next()),
    };
    if let Some(k) = key.filter(|k| k.starts_with("ASIA")) {
        return Ok(Err(format!(
            "{k} is a temporary (session) key: it expires on its own"
        )));
    }
    let nominee = match key.filter(|k| is_access_key_id(k)) {
        Some(k) => principal_by_name(
            account,
            PrincipalKind::User,
            None,
            user,
            Scope::AccessKey(k.to_string()),
            &dpath,
        )?,
        None => {
            if !is_iam_name(user) {
                return Err(format!("{dpath}: {} is not an IAM user name", quote(user)));
            }
            Nominee::AccessKeyOf {
                account: account.to_string(),
                path: None,
                user: user.to_string(),
            }
        }
    };
    Ok(Ok(nominee))
}

fn ocsf(cx: &Cx, f: &Value, path: &str) -> Parsed<Outcome> {
    if !f.is_object() {
        return Err(format!("{path} must be an object, not {}", type_name(f)));
    }
    let control = match str_at(f, path, &["compliance", "control"])? {
        Some(c) => Some(c),
        // `arn:…:security-control/IAM.8/finding/…`
        None => str_at(f, path, &["finding_info", "uid"])?.and_then(|uid| {
            let (_, rest) = uid.split_once("security-control/")?;
            rest.split('/').next()
        }),
    };
    let Some(label) = control else {
        return Ok(Outcome::Skip(
            "not a control finding (no compliance.control)".to_string(),
        ));
    };
    if !SECURITY_CONTROLS.contains(&label) {
        return Ok(scope_skip(label));
    }
    let status = str_at(f, path, &["compliance", "status"])?;
    let status_id = int_at(f, path, &["compliance", "status_id"])?;
    let failed = match status {
        Some(s) => s.eq_ignore_ascii_case("fail") || s.eq_ignore_ascii_case("failed"),
        None => status_id == Some(3),
    };
    if !failed {
        return Ok(Outcome::Skip(format!(
            "{label}: compliance.status is {}: only Fail nominates",
            status.map(quote).unwrap_or_else(|| "missing".to_string())
        )));
    }
    // OCSF finding status: 3 Suppressed, 5 Archived, 6 Deleted (the V2 twins of Workflow.Status
    // SUPPRESSED and RecordState ARCHIVED).
    let finding_status = str_at(f, path, &["status"])?;
    let finding_status_id = int_at(f, path, &["status_id"])?;
    let closed = match finding_status {
        Some(s) => ["suppressed", "archived", "deleted"]
            .iter()
            .any(|c| s.eq_ignore_ascii_case(c)),
        None => matches!(finding_status_id, Some(3 | 5 | 6)),
    };
    if closed {
        return Ok(Outcome::Skip(format!(
            "{label}: the finding is {}",
            finding_status
                .map(quote)
                .unwrap_or_else(|| "suppressed or archived".to_string())
        )));
    }
    let finding_account = match str_at(f, path, &["cloud", "account", "uid"])? {
        Some(a) => account_or(Some(a), &format!("{path}.cloud.account.uid"), cx.account)?,
        None => cx.account,
    };
    let resources = required_array(f, path, "resources")?;
    let mut seen = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let rpath = format!("{path}.resources[{i}]");
        let rtype = required(str_at(r, &rpath, &["type"]), &format!("{rpath}.type"))?;
        let kind = match rtype {
            "AWS::IAM::User" | "AwsIamUser" => Some(PrincipalKind::User),
            "AWS::IAM::Role" | "AwsIamRole" => Some(PrincipalKind::Role),
            "AWS::IAM::AccessKey" | "AwsIamAccessKey" => None,
            other => {
                seen.push(other);
                continue;
            }
        };
        let account = match str_at(r, &rpath, &["owner", "account", "uid"])? {
            Some(a) => account_or(
                Some(a),
                &format!("{rpath}.owner.account.uid"),
                finding_account,
            )?,
            None => finding_account,
        };
        let nominee = match kind {
            Some(kind) => ocsf_principal(r, &rpath, kind, account)?,
            None => ocsf_access_key(r, &rpath, account)?,
        };
        let what = nominee.identity().unwrap_or_default();
        let reason = format!("Security Hub {label} failed for {what}");
        return Ok(Outcome::Candidate(cx.finding(nominee, label, reason)));
    }
    Ok(Outcome::Skip(no_iam_resource(label, &seen)))
}

/// OCSF resource: an ARN in `uid` or `uid_alt`, else a unique id or a name in `uid`/`name`.
fn ocsf_principal(r: &Value, path: &str, kind: PrincipalKind, account: &str) -> Parsed<Nominee> {
    let uid = str_at(r, path, &["uid"])?;
    let uid_alt = str_at(r, path, &["uid_alt"])?;
    for (field, value) in [("uid", uid), ("uid_alt", uid_alt)] {
        if let Some(arn) = value.filter(|v| v.starts_with("arn:")) {
            return Ok(principal_nominee(
                iam_arn(arn, &format!("{path}.{field}"), kind)?,
                Scope::Whole,
            ));
        }
    }
    if let Some(id) = uid {
        if let Some(id_kind) = unique_id_kind(id) {
            return match id_kind {
                Some(k) if k == kind => Ok(Nominee::UniqueId {
                    account: account.to_string(),
                    kind,
                    unique_id: id.to_string(),
                }),
                _ => Err(format!(
                    "{path}.uid {id} is not the unique id of a {}",
                    kind.as_str()
                )),
            };
        }
    }
    let name = match str_at(r, path, &["name"])? {
        Some(n) => n,
        None => uid.ok_or_else(|| format!("{path} has no uid, uid_alt or name"))?,
    };
    principal_by_name(account, kind, None, name, Scope::Whole, path)
}

fn ocsf_access_key(r: &Value, path: &str, account: &str) -> Parsed<Nominee> {
    let key = [str_at(r, path, &["uid"])?, str_at(r, path, &["uid_alt"])?]
        .into_iter()
        .flatten()
        .find(|k| is_access_key_id(k));
    let mut user = None;
    for p in [
        &["data", "PrincipalName"][..],
        &["data", "UserName"],
        &["data", "AwsIamAccessKey", "PrincipalName"],
    ] {
        if let Some(u) = str_at(r, path, p)? {
            user = Some(u);
            break;
        }
    }
    let user = user.ok_or_else(|| format!("{path} names no user owning the access key"))?;
    match key {
        Some(k) => principal_by_name(
            account,
            PrincipalKind::User,
            None,
            user,
            Scope::AccessKey(k.to_string()),
            path,
        ),
        None if is_iam_name(user) => Ok(Nominee::AccessKeyOf {
            account: account.to_string(),
            path: None,
            user: user.to_string(),
        }),
        None => Err(format!("{path}: {} is not an IAM user name", quote(user))),
    }
}

// ---------------------------------------------------------------------------------------------
// CloudTrail: `AWS API Call via CloudTrail` for the IAM tag calls.

fn cloudtrail(cx: &Cx, detail: &Value) -> Parsed<Outcome> {
    let event_name = required(str_at(detail, "detail", &["eventName"]), "detail.eventName")?;
    if let Some(src) = str_at(detail, "detail", &["eventSource"])? {
        if src != "iam.amazonaws.com" {
            return Ok(Outcome::Skip(format!(
                "API calls to {} are not IAM calls",
                quote(src)
            )));
        }
    }
    let (kind, name_field, untag) = match event_name {
        "TagRole" => (PrincipalKind::Role, "roleName", false),
        "UntagRole" => (PrincipalKind::Role, "roleName", true),
        "TagUser" => (PrincipalKind::User, "userName", false),
        "UntagUser" => (PrincipalKind::User, "userName", true),
        other => {
            return Ok(Outcome::Skip(format!(
                "IAM call {} does not change a role's or user's tags",
                quote(other)
            )))
        }
    };
    if let Some(code) = present(detail, "errorCode") {
        return Ok(Outcome::Skip(format!(
            "the {event_name} call failed ({}): nothing changed",
            describe(code)
        )));
    }
    let params = match present(detail, "requestParameters") {
        Some(p @ Value::Object(_)) => p,
        Some(other) => {
            return Err(format!(
                "detail.requestParameters must be an object, not {}",
                type_name(other)
            ))
        }
        None => return Err("detail.requestParameters is missing".to_string()),
    };
    let keys = tag_keys(params, untag)?;
    let dormant: Vec<&str> = keys.iter().copied().filter(|k| is_dormant_tag(k)).collect();
    if dormant.is_empty() {
        return Ok(Outcome::Skip(if keys.is_empty() {
            format!("{event_name} changed no tags")
        } else {
            format!("not a dormant:* tag (changed {})", list(&keys))
        }));
    }
    let name = required(
        str_at(params, "detail.requestParameters", &[name_field]),
        &format!("detail.requestParameters.{name_field}"),
    )?;
    // The account that received the call owns the principal.
    let account = match str_at(detail, "detail", &["recipientAccountId"])? {
        Some(a) => account_or(Some(a), "detail.recipientAccountId", cx.account)?,
        None => account_or(
            str_at(detail, "detail", &["userIdentity", "accountId"])?,
            "detail.userIdentity.accountId",
            cx.account,
        )?,
    };
    let nominee = principal_by_name(
        account,
        kind,
        None,
        name,
        Scope::Whole,
        "detail.requestParameters",
    )?;
    let reason = format!(
        "{event_name} changed {} on {}/{name}: re-evaluate now",
        list(&dormant),
        kind.as_str()
    );
    Ok(Outcome::Candidate(cx.finding(nominee, event_name, reason)))
}

/// `requestParameters.tags[].key` (Tag*) or `requestParameters.tagKeys[]` (Untag*).
fn tag_keys(params: &Value, untag: bool) -> Parsed<Vec<&str>> {
    let field = if untag { "tagKeys" } else { "tags" };
    let items = required_array(params, "detail.requestParameters", field)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("detail.requestParameters.{field}[{i}]");
            if untag {
                item.as_str()
                    .ok_or_else(|| format!("{path} must be a string, not {}", type_name(item)))
            } else {
                required(str_at(item, &path, &["key"]), &format!("{path}.key"))
            }
        })
        .collect()
}

/// IAM tag keys are case-insensitive for uniqueness, so `Dormant:Exempt` counts too (the
/// exemption check reads it the same way).
fn is_dormant_tag(key: &str) -> bool {
    crate::domain::tag::is_dormant_key(key)
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

// ---------------------------------------------------------------------------------------------
// Identities.

/// `Some(Some(kind))` for `AIDA…`/`AROA…`, `Some(None)` for another IAM unique id prefix, `None`
/// for anything that does not look like a unique id (so it may be a name).
fn unique_id_kind(s: &str) -> Option<Option<PrincipalKind>> {
    const OTHERS: [&str; 9] = [
        "ABIA", "ACCA", "AGPA", "AIPA", "AKIA", "ANPA", "ANVA", "APKA", "ASIA",
    ];
    let shaped = (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !shaped {
        return None;
    }
    match s.get(..4) {
        Some("AIDA") => Some(Some(PrincipalKind::User)),
        Some("AROA") => Some(Some(PrincipalKind::Role)),
        Some(p) if OTHERS.contains(&p) => Some(None),
        _ => None,
    }
}

/// IAM paths: `/`, or `/` + segments of printable ASCII + `/`, at most 512 characters.
fn is_iam_path(p: &str) -> bool {
    p.len() <= 512
        && p.starts_with('/')
        && p.ends_with('/')
        && p.bytes().all(|b| (0x21..=0x7e).contains(&b))
        && !p.contains("//")
}

/// A role or user ARN of the expected kind, with a valid name and path.
fn iam_arn(arn: &str, field: &str, kind: PrincipalKind) -> Parsed<Principal> {
    let p = Principal::from_arn(arn)
        .map_err(|_| format!("{field} {} is not an IAM role or user ARN", quote(arn)))?;
    if p.kind != kind {
        return Err(format!(
            "{field} {} names a {}, expected a {}",
            quote(arn),
            p.kind.as_str(),
            kind.as_str()
        ));
    }
    if !is_iam_name(&p.name) || !is_iam_path(&p.path) {
        return Err(format!(
            "{field} {} has an invalid IAM name or path",
            quote(arn)
        ));
    }
    Ok(p)
}

fn principal_nominee(p: Principal, scope: Scope) -> Nominee {
    Nominee::Principal {
        account: p.account,
        kind: p.kind,
        path: Some(p.path),
        name: p.name,
        scope,
    }
}

fn principal_by_name(
    account: &str,
    kind: PrincipalKind,
    path: Option<&str>,
    name: &str,
    scope: Scope,
    field: &str,
) -> Parsed<Nominee> {
    if !is_iam_name(name) {
        return Err(format!("{field}: {} is not an IAM name", quote(name)));
    }
    if let Some(p) = path.filter(|p| !is_iam_path(p)) {
        return Err(format!("{field}: {} is not an IAM path", quote(p)));
    }
    Ok(Nominee::Principal {
        account: account.to_string(),
        kind,
        path: path.map(str::to_string),
        name: name.to_string(),
        scope,
    })
}

/// The given account if present (it must be valid), else the fallback.
fn account_or<'a>(given: Option<&'a str>, field: &str, fallback: &'a str) -> Parsed<&'a str> {
    match given {
        Some(a) if is_account_id(a) => Ok(a),
        Some(a) => Err(format!(
            "{field} must be a 12-digit AWS account id, not {}",
            quote(a)
        )),
        None => Ok(fallback),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON access.

/// A field that is present and not `null`.
fn present<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn join(base: &str, keys: &[&str]) -> String {
    let mut path = base.to_string();
    for k in keys {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(k);
    }
    path
}

/// The value at `keys` under `v`: `Ok(None)` when absent anywhere along the way, `Err` when an
/// intermediate value is not an object.
fn value_at<'a>(v: &'a Value, base: &str, keys: &[&str]) -> Parsed<Option<&'a Value>> {
    let mut cur = v;
    for (i, k) in keys.iter().enumerate() {
        match cur {
            Value::Object(m) => match m.get(*k).filter(|x| !x.is_null()) {
                Some(next) => cur = next,
                None => return Ok(None),
            },
            other => {
                return Err(format!(
                    "{} must be an object, not {}",
                    if i == 0 {
                        base.to_string()
                    } else {
                        join(base, &keys[..i])
                    },
                    type_name(other)
                ))
            }
        }
    }
    Ok(Some(cur))
}

/// `base.key`, which must be present and an array.
fn required_array<'a>(v: &'a Value, base: &str, key: &str) -> Parsed<&'a Vec<Value>> {
    match present(v, key) {
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(format!(
            "{base}.{key} must be an array, not {}",
            type_name(other)
        )),
        None => Err(format!("{base}.{key} is missing")),
    }
}

fn str_at<'a>(v: &'a Value, base: &str, keys: &[&str]) -> Parsed<Option<&'a str>> {
    match value_at(v, base, keys)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "{} must be a string, not {}",
            join(base, keys),
            type_name(other)
        )),
    }
}

fn int_at(v: &Value, base: &str, keys: &[&str]) -> Parsed<Option<i64>> {
    match value_at(v, base, keys)? {
        None => Ok(None),
        Some(n) => n.as_i64().map(Some).ok_or_else(|| {
            format!(
                "{} must be an integer, not {}",
                join(base, keys),
                type_name(n)
            )
        }),
    }
}

fn bool_at(v: &Value, base: &str, key: &str) -> Parsed<Option<bool>> {
    match present(v, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(format!(
            "{} must be a boolean, not {}",
            join(base, &[key]),
            type_name(other)
        )),
    }
}

/// `Err` when the field is absent, naming it.
fn required<'a>(found: Parsed<Option<&'a str>>, field: &str) -> Parsed<&'a str> {
    found?.ok_or_else(|| format!("{field} is missing"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Untrusted text in a reason: quoted, escaped and cut to a readable length.
fn quote(s: &str) -> String {
    const MAX_CHARS: usize = 80;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// A value of any type, for a reason.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        other => type_name(other).to_string(),
    }
}

/// At most a few quoted items.
fn list(items: &[&str]) -> String {
    const MAX_ITEMS: usize = 5;
    let mut out: Vec<String> = items.iter().take(MAX_ITEMS).map(|s| quote(s)).collect();
    if items.len() > MAX_ITEMS {
        out.push(format!("and {} more", items.len() - MAX_ITEMS));
    }
    out.join(", ")
}

/// `Some(size)` once the value's compact JSON encoding is known to exceed `cap` bytes. Iterative,
/// so that a deeply nested value built in memory cannot overflow the stack, and it stops early.
fn json_size_over(v: &Value, cap: usize) -> Option<usize> {
    fn str_len(s: &str) -> usize {
        2 + s
            .chars()
            .map(|c| match c {
                '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
                c if (c as u32) < 0x20 => 6,
                c => c.len_utf8(),
            })
            .sum::<usize>()
    }
    let mut total = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        let own = match v {
            Value::Null | Value::Bool(true) => 4,
            Value::Bool(false) => 5,
            Value::Number(n) => n.to_string().len(),
            Value::String(s) => str_len(s),
            Value::Array(items) => {
                stack.extend(items.iter());
                2 + items.len().saturating_sub(1)
            }
            Value::Object(m) => {
                for (k, v) in m {
                    // The key and its colon.
                    total = total.saturating_add(str_len(k) + 1);
                    if total > cap {
                        return Some(total);
                    }
                    stack.push(v);
                }
                2 + m.len().saturating_sub(1)
            }
        };
        total = total.saturating_add(own);
        if total > cap {
            return Some(total);
        }
    }
    None
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
