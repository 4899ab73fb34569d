//! The messages, from template files the operator can override (`[notify] templates`): plain
//! text and HTML email, Slack Block Kit, SNS. Every value is escaped for where it lands: HTML in
//! the HTML email, Slack mrkdwn inside JSON strings in Block Kit (identity names and tag values
//! are chosen by whoever can tag an identity). The defaults are compiled in.

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, Value};
use serde::Serialize;

use super::digest::{ActionLink, Digest, DigestItem};
use crate::domain::time::fmt_time;
use crate::domain::Step;

/// The template files, by name, with their compiled-in defaults.
pub const TEMPLATE_FILES: [(&str, &str); 5] = [
    (
        "email_subject.txt",
        include_str!("../../../templates/notify/email_subject.txt"),
    ),
    (
        "email.txt",
        include_str!("../../../templates/notify/email.txt"),
    ),
    (
        "email.html",
        include_str!("../../../templates/notify/email.html"),
    ),
    (
        "slack.json",
        include_str!("../../../templates/notify/slack.json"),
    ),
    ("sns.txt", include_str!("../../../templates/notify/sns.txt")),
];

/// A template that does not compile or render, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {name}: {message}")]
pub struct TemplateError {
    pub name: String,
    pub message: String,
}

/// One digest, ready for its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line (email subject, SNS subject).
    pub subject: String,
    pub text: String,
    /// Email only.
    pub html: Option<String>,
    /// Slack only: the Block Kit payload, checked to be JSON.
    pub slack: Option<serde_json::Value>,
}

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

/// Slack's mrkdwn control characters (`&`, `<`, `>`), escaped as Slack asks.
pub fn escape_mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `.html` → HTML; `.json` → Slack (mrkdwn, then JSON string contents); anything else raw.
fn escape_for(name: &str) -> AutoEscape {
    if name.ends_with(".html") {
        AutoEscape::Html
    } else if name.ends_with(".json") {
        AutoEscape::Custom("slack")
    } else {
        AutoEscape::None
    }
}

fn formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    let write = |out: &mut Output, s: &str| {
        out.write_str(s)
            .map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
    };
    let text = if value.is_none() || value.is_undefined() {
        String::new()
    } else {
        value.to_string()
    };
    match state.auto_escape() {
        AutoEscape::Html if !value.is_safe() => {
            return write(out, &crate::domain::html::escape(&text))
        }
        AutoEscape::Custom("slack") => {}
        _ => return minijinja::escape_formatter(out, state, value),
    }
    let text = if value.is_safe() {
        text
    } else {
        escape_mrkdwn(&text)
    };
    // Inside a JSON string: the quotes come from the template.
    let json = serde_json::to_string(&text)
        .map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))?;
    write(out, &json[1..json.len() - 1])
}

/// What the templates see of one identity.
#[derive(Serialize)]
struct ItemView<'a> {
    short: &'a str,
    arn: &'a str,
    identity: &'a str,
    account: &'a str,
    scope: Option<&'a str>,
    what: &'static str,
    stage: String,
    at: String,
    last_used: String,
    evidence: &'a str,
    next: String,
    owner: &'a str,
    fallback: bool,
    links: &'a [ActionLink],
    /// What the security team can run when there are no links.
    commands: Vec<String>,
}

fn commands(item: &DigestItem) -> Vec<String> {
    let id = &item.identity;
    let mut c = vec![format!(
        "dormant exempt {id} --until YYYY-MM-DD --reason \"still needed: why\""
    )];
    match item.step {
        Step::RequestApproval => c.push(format!("dormant approve {id}")),
        Step::Delete => c.push(format!("dormant restore {id}")),
        Step::Release => c.clear(),
        Step::Notice | Step::Quarantine | Step::DeactivateKeys => {
            c.push(format!("dormant undo {id}"))
        }
    }
    c
}

impl Templates {
    /// The defaults, each replaced by `overrides[name]` when given. Every template is compiled
    /// now: a broken override is an error at start-up, naming the file.
    pub fn new(overrides: &BTreeMap<String, String>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(escape_for);
        env.set_formatter(formatter);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, default) in TEMPLATE_FILES {
            let source = overrides
                .get(name)
                .cloned()
                .unwrap_or_else(|| default.to_string());
            env.add_template_owned(name, source)
                .map_err(|e| TemplateError {
                    name: name.to_string(),
                    message: e.to_string(),
                })?;
        }
        if let Some(unknown) = overrides
            .keys()
            .find(|k| !TEMPLATE_FILES.iter().any(|(n, _)| n == k))
        {
            return Err(TemplateError {
                name: unknown.clone(),
                message: format!(
                    "not a template dormant uses (expected one of {})",
                    TEMPLATE_FILES.map(|(n, _)| n).join(", ")
                ),
            });
        }
        Ok(Templates { env })
    }

    /// Renders `digest` for its recipient's channel; `links[i]` are the links of `items[i]`.
    pub fn render(
        &self,
        digest: &Digest,
        links: &[Vec<ActionLink>],
    ) -> Result<Rendered, TemplateError> {
        self.render_part(&digest.recipient, &digest.items, links, 1, 1)
    }

    /// Renders `items` (part `part` of `parts` of a digest) for `recipient`'s channel;
    /// `links[i]` are the links of `items[i]`. The templates see `part` and `parts`.
    pub(super) fn render_part(
        &self,
        recipient: &super::Recipient,
        items: &[DigestItem],
        links: &[Vec<ActionLink>],
        part: usize,
        parts: usize,
    ) -> Result<Rendered, TemplateError> {
        let none: Vec<ActionLink> = Vec::new();
        let items: Vec<ItemView<'_>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| ItemView {
                short: &item.short,
                arn: &item.arn,
                identity: &item.identity,
                account: &item.account,
                scope: item.scope.as_deref(),
                what: item.what(),
                stage: item.stage.to_string(),
                at: fmt_time(item.at),
                last_used: item
                    .last_used
                    .map(fmt_time)
                    .unwrap_or_else(|| "never".to_string()),
                evidence: &item.evidence,
                next: item.next(),
                owner: &item.owner,
                fallback: item.fallback,
                links: links.get(i).map(Vec::as_slice).unwrap_or(&none),
                commands: commands(item),
            })
            .collect();
        let ctx = minijinja::context! {
            recipient => recipient.to_string(),
            count => items.len(),
            part => part,
            parts => parts,
            items => Value::from_serialize(&items),
        };
        let render = |name: &str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| TemplateError {
                    name: name.to_string(),
                    message: e.to_string(),
                })
        };
        // One line, short enough for SNS (100) and any mail header.
        let subject: String = render("email_subject.txt")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(100)
            .collect();
        let (text, html, slack) = match recipient {
            super::Recipient::Email(_) => (render("email.txt")?, Some(render("email.html")?), None),
            super::Recipient::Sns(_) => (render("sns.txt")?, None, None),
            super::Recipient::Slack(_) => {
                let raw = render("slack.json")?;
                let json: serde_json::Value =
                    serde_json::from_str(&raw).map_err(|e| TemplateError {
                        name: "slack.json".to_string(),
                        message: format!("does not render to JSON: {e}"),
                    })?;
                (raw, None, Some(json))
            }
        };
        Ok(Rendered {
            subject,
            text,
            html,
            slack,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notify::{digests, OutboxEntry, Owner, Recipient};
    use crate::domain::{Principal, Record, Stage, Subject};
    use chrono::TimeZone;

    const HOSTILE: &str = "\"><img src=x onerror=alert(1)><script>alert(2)</script>&";

    fn digest(to: &str) -> Digest {
        let at = chrono::Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let mut r = Record::new(Subject::whole(Principal::role(
            "111111111111",
            "/",
            "deploy",
        )));
        r.stage = Stage::Noticed;
        r.next_step = Some(Step::Quarantine);
        r.next_due_at = Some(at + chrono::Duration::days(7));
        r.reason = format!("unused since tag {HOSTILE}");
        let owner = Owner {
            recipient: None,
            how: format!("tag owner={HOSTILE}"),
            fallback: false,
            refused: Vec::new(),
        };
        let recipient: Recipient = to.parse().unwrap();
        digests(&[OutboxEntry {
            item: DigestItem::of(Step::Notice, &r, &owner, at),
            recipient,
        }])
        .remove(0)
    }

    fn templates() -> Templates {
        Templates::new(&BTreeMap::new()).unwrap()
    }

    #[test]
    fn html_escapes_every_value() {
        let out = templates().render(&digest("a@example.com"), &[]).unwrap();
        let html = out.html.unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("role/deploy"));
        assert!(
            html.contains("2026-03-08T00:00:00Z"),
            "the next step's date"
        );
        // Without links, the commands.
        assert!(out
            .text
            .contains("dormant undo arn:aws:iam::111111111111:role/deploy"));
        assert!(!out.subject.contains('\n'));
    }

    #[test]
    fn slack_escapes_mrkdwn_inside_valid_json() {
        let out = templates().render(&digest("slack:#ops"), &[]).unwrap();
        let json = out.slack.unwrap().to_string();
        assert!(!json.contains("<script>"), "{json}");
        assert!(!json.contains("<img"), "{json}");
        assert!(json.contains("&lt;script&gt;"));
        assert!(json.contains("&amp;"));
    }

    #[test]
    fn links_replace_the_commands_when_present() {
        let link = ActionLink {
            action: "keep".into(),
            label: "Keep it".into(),
            url: "https://dormant.example.com/a?t=x&y=\"z\"".into(),
        };
        let out = templates()
            .render(&digest("a@example.com"), &[vec![link]])
            .unwrap();
        let html = out.html.unwrap();
        assert!(
            html.contains("https://dormant.example.com/a?t=x&amp;y=&quot;z&quot;"),
            "{html}"
        );
        assert!(!out.text.contains("dormant undo"));
        let slack = templates()
            .render(&digest("slack:#ops"), &[vec![]])
            .unwrap();
        assert!(slack.text.contains("dormant undo"));
    }

    #[test]
    fn overrides_replace_a_template_and_bad_ones_are_named() {
        let mine = BTreeMap::from([(
            "sns.txt".to_string(),
            "{{ count }} for {{ recipient }}".to_string(),
        )]);
        let t = Templates::new(&mine).unwrap();
        let out = t
            .render(&digest("sns:arn:aws:sns:us-east-1:123456789012:feed"), &[])
            .unwrap();
        assert_eq!(
            out.text,
            "1 for sns:arn:aws:sns:us-east-1:123456789012:feed"
        );
        let bad = BTreeMap::from([("email.html".to_string(), "{% if %}".to_string())]);
        assert_eq!(Templates::new(&bad).unwrap_err().name, "email.html");
        let unknown = BTreeMap::from([("emial.html".to_string(), "x".to_string())]);
        assert_eq!(Templates::new(&unknown).unwrap_err().name, "emial.html");
        let not_json =
            BTreeMap::from([("slack.json".to_string(), "{{ count }} items".to_string())]);
        let t = Templates::new(&not_json).unwrap();
        assert_eq!(
            t.render(&digest("slack:#ops"), &[]).unwrap_err().name,
            "slack.json"
        );
    }
}
