//! Telling each identity's owner (docs/design.md, 'Owners and messages'): who the owner is
//! (tags, a routing table, fallbacks), what one message per recipient holds, and how it reads.
//! Pure: no I/O, no clock. The engine queues an [`OutboxEntry`] per (identity, step,
//! recipient) when a step is committed; the adapters send the [`Digest`]s.
//!
//! - this file: recipients and owner resolution;
//! - `digest.rs`: what a message says about one identity, and the grouping per recipient;
//! - `render.rs`: the templates (plain text and HTML email, Slack Block Kit, SNS);
//! - `parts.rs`: a digest split into messages each channel accepts (Slack blocks, SNS bytes).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod digest;
mod parts;
mod render;

pub use digest::{digests, ActionLink, Digest, DigestItem, OutboxEntry};
pub use parts::{size, Part, EMAIL_MAX_BYTES, SLACK_MAX_BLOCKS, SNS_MAX_BYTES};
pub use render::{Rendered, TemplateError, Templates, TEMPLATE_FILES};

/// Failed attempts to send a message (one per run) before it is dead-lettered, by default
/// (`[notify] max_attempts`): a day of hourly runs rides out an outage of Slack or SES.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// Tag keys read for the owner, in order, by default.
pub const DEFAULT_OWNER_TAGS: [&str; 5] = ["dormant:owner", "owner", "Owner", "team", "contact"];

/// Where a message goes: an email address (SES), a Slack channel (its incoming webhook), or an
/// SNS topic. Written `alice@example.com`, `slack:#channel`, `sns:arn:aws:sns:…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Recipient {
    Email(String),
    /// The channel name as configured (`#team-a`); its webhook URL comes from the settings.
    Slack(String),
    /// A topic ARN.
    Sns(String),
}

impl Recipient {
    /// The channel it goes through, for logs and the audit trail.
    pub fn channel(&self) -> &'static str {
        match self {
            Recipient::Email(_) => "email",
            Recipient::Slack(_) => "slack",
            Recipient::Sns(_) => "sns",
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::Email(a) => f.write_str(a),
            Recipient::Slack(c) => write!(f, "slack:{c}"),
            Recipient::Sns(t) => write!(f, "sns:{t}"),
        }
    }
}

impl From<Recipient> for String {
    fn from(r: Recipient) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for Recipient {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl FromStr for Recipient {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(channel) = s.strip_prefix("slack:") {
            let ok = channel.len() > 1
                && channel.len() <= 81
                && channel.starts_with('#')
                && channel[1..]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            return if ok {
                Ok(Recipient::Slack(channel.to_string()))
            } else {
                Err(format!(
                    "'{s}' is not a Slack channel (slack:#name, lower-case letters, digits, - _ .)"
                ))
            };
        }
        if let Some(arn) = s.strip_prefix("sns:") {
            let parts: Vec<&str> = arn.split(':').collect();
            let ok = parts.len() == 6
                && parts[0] == "arn"
                && parts[1].starts_with("aws")
                && parts[2] == "sns"
                && parts[4].len() == 12
                && parts[4].bytes().all(|b| b.is_ascii_digit())
                && !parts[5].is_empty();
            return if ok {
                Ok(Recipient::Sns(arn.to_string()))
            } else {
                Err(format!(
                    "'{s}' is not an SNS topic (sns:arn:aws:sns:REGION:ACCOUNT:NAME)"
                ))
            };
        }
        if is_email(s) {
            return Ok(Recipient::Email(s.to_string()));
        }
        Err(format!(
            "'{s}' is not a recipient (an email address, slack:#channel or sns:TOPIC_ARN)"
        ))
    }
}

/// `local@domain.tld`, no spaces, no angle brackets or quotes (nothing a header could be bent with).
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let clean = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+-_".contains(c))
    };
    clean(local)
        && clean(domain)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

/// How owners are found: the checked `[notify]` owner settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// Tag keys read for the owner, first match wins.
    pub owner_tags: Vec<String>,
    /// Tag value or account id → recipient.
    pub routes: BTreeMap<String, Recipient>,
    /// Per account: where identities without a resolvable owner go.
    pub account_fallback: BTreeMap<String, Recipient>,
    /// Everywhere else: where identities without a resolvable owner go.
    pub fallback: Option<Recipient>,
    /// The security team's feed: gets every message, owner or not.
    pub feed: Option<Recipient>,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            owner_tags: DEFAULT_OWNER_TAGS.iter().map(|s| s.to_string()).collect(),
            routes: BTreeMap::new(),
            account_fallback: BTreeMap::new(),
            fallback: None,
            feed: None,
        }
    }
}

/// Who an identity's messages go to, and how that was found (the message and the report say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// `None`: no owner and no fallback; only the feed (if any) hears of it.
    pub recipient: Option<Recipient>,
    /// How: `tag owner=team-a`, `account 123456789012`, or why the fallback was used.
    pub how: String,
    /// Whether the fallback was used (no resolvable owner).
    pub fallback: bool,
    /// Owner tags whose value named a recipient the configuration does not (`owner=sns:…`),
    /// each with why it was refused: the audit trail says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
}

impl Routing {
    /// The recipients the operator named (routes, account fallbacks, the fallback): the only ones
    /// signed answer links go to. A recipient taken straight from a tag value is whoever could
    /// write that tag, and must not be able to keep or undo with it.
    pub fn configured_recipients(&self) -> std::collections::BTreeSet<String> {
        self.routes
            .values()
            .chain(self.account_fallback.values())
            .chain(self.fallback.iter())
            .map(Recipient::to_string)
            .collect()
    }

    /// Whether a recipient written straight into a tag may be told: any email address, but a
    /// Slack channel or SNS topic only if the configuration names it (a route, a fallback, the
    /// feed). Anything else cannot be sent to (no webhook) or is not the operator's to publish
    /// to, and would fail on every run.
    fn tag_may_name(&self, r: &Recipient) -> Result<(), String> {
        match r {
            Recipient::Email(_) => Ok(()),
            Recipient::Slack(_) | Recipient::Sns(_) => {
                let configured = self
                    .routes
                    .values()
                    .chain(self.account_fallback.values())
                    .chain(self.fallback.iter())
                    .chain(self.feed.iter())
                    .any(|c| c == r);
                if configured {
                    Ok(())
                } else {
                    Err(format!(
                        "{r} is not a {} the configuration names (notify routes, fallbacks, feed)",
                        match r {
                            Recipient::Slack(_) => "Slack channel",
                            _ => "SNS topic",
                        }
                    ))
                }
            }
        }
    }

    /// The owner of an identity of `account` with these tags: the first owner tag whose value
    /// routes (through the table, or as a recipient itself that [`Self::tag_may_name`]), else
    /// the account's route, else the account's fallback, else the global one.
    pub fn owner(&self, account: &str, tags: &BTreeMap<String, String>) -> Owner {
        let mut unroutable = Vec::new();
        let mut refused = Vec::new();
        for key in &self.owner_tags {
            let Some(value) = tags.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
                continue;
            };
            let routed = match self.routes.get(value) {
                Some(r) => Some(r.clone()),
                None => match value.parse::<Recipient>() {
                    Ok(r) => match self.tag_may_name(&r) {
                        Ok(()) => Some(r),
                        Err(why) => {
                            refused.push(format!("tag {key}={value} refused: {why}"));
                            None
                        }
                    },
                    Err(_) => None,
                },
            };
            match routed {
                Some(r) => {
                    return Owner {
                        recipient: Some(r),
                        how: format!("tag {key}={value}"),
                        fallback: false,
                        refused,
                    }
                }
                None => unroutable.push(format!("{key}={value}")),
            }
        }
        if let Some(r) = self.routes.get(account) {
            return Owner {
                recipient: Some(r.clone()),
                how: format!("account {account}"),
                fallback: false,
                refused,
            };
        }
        let why = if !refused.is_empty() {
            refused.join("; ")
        } else if unroutable.is_empty() {
            "no owner tag".to_string()
        } else {
            format!("no route for tag {}", unroutable.join(", "))
        };
        let recipient = self
            .account_fallback
            .get(account)
            .or(self.fallback.as_ref())
            .cloned();
        Owner {
            how: match &recipient {
                Some(_) => format!("fallback: {why}"),
                None => format!("no owner and no fallback: {why}"),
            },
            recipient,
            fallback: true,
            refused,
        }
    }

    /// Everyone who hears of an identity with this owner: the owner (or fallback) and the feed.
    pub fn recipients(&self, owner: &Owner) -> Vec<Recipient> {
        let mut all: Vec<Recipient> = owner.recipient.iter().cloned().collect();
        if let Some(feed) = &self.feed {
            if !all.contains(feed) {
                all.push(feed.clone());
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn routing() -> Routing {
        Routing {
            routes: [
                ("team-a".to_string(), "slack:#team-a".parse().unwrap()),
                (
                    "222222222222".to_string(),
                    "ops-b@example.com".parse().unwrap(),
                ),
            ]
            .into(),
            account_fallback: [("333333333333".to_string(), "c@example.com".parse().unwrap())]
                .into(),
            fallback: Some("secops@example.com".parse().unwrap()),
            ..Routing::default()
        }
    }

    #[test]
    fn recipients_parse_and_print_back() {
        for s in [
            "alice@example.com",
            "slack:#team-a",
            "sns:arn:aws:sns:us-east-1:123456789012:feed",
        ] {
            assert_eq!(s.parse::<Recipient>().unwrap().to_string(), s);
        }
        for bad in [
            "alice",
            "a@b",
            "\"x\"<a@example.com>",
            "a@example.com\r\nBcc: evil@example.com",
            "slack:team",
            "slack:#Team A",
            "sns:arn:aws:sqs:us-east-1:123456789012:q",
        ] {
            assert!(bad.parse::<Recipient>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_owner_tag_that_routes_wins() {
        let r = routing();
        let o = r.owner(
            "111111111111",
            &tags(&[("owner", "team-a"), ("team", "x@example.com")]),
        );
        assert_eq!(o.recipient, Some(Recipient::Slack("#team-a".into())));
        assert_eq!(o.how, "tag owner=team-a");
        assert!(!o.fallback);
        // dormant:owner comes first; an address is its own route.
        let o = r.owner(
            "111111111111",
            &tags(&[("owner", "team-a"), ("dormant:owner", "bob@example.com")]),
        );
        assert_eq!(
            o.recipient,
            Some(Recipient::Email("bob@example.com".into()))
        );
        // A value that does not route is passed over.
        let o = r.owner(
            "111111111111",
            &tags(&[("owner", "nobody-knows"), ("contact", "c@example.com")]),
        );
        assert_eq!(o.how, "tag contact=c@example.com");
    }

    #[test]
    fn no_owner_goes_to_the_account_route_then_the_fallbacks_and_says_so() {
        let r = routing();
        let o = r.owner("222222222222", &tags(&[]));
        assert_eq!(
            (o.recipient.unwrap().to_string(), o.fallback),
            ("ops-b@example.com".into(), false)
        );
        let o = r.owner("333333333333", &tags(&[("owner", "<script>")]));
        assert_eq!(o.recipient.unwrap().to_string(), "c@example.com");
        assert!(o.fallback);
        assert_eq!(o.how, "fallback: no route for tag owner=<script>");
        let o = r.owner("444444444444", &tags(&[]));
        assert_eq!(o.recipient.unwrap().to_string(), "secops@example.com");
        assert_eq!(o.how, "fallback: no owner tag");
        let none = Routing::default().owner("444444444444", &tags(&[]));
        assert_eq!(none.recipient, None);
        assert_eq!(none.how, "no owner and no fallback: no owner tag");
    }

    #[test]
    fn a_tag_naming_an_unconfigured_channel_or_topic_is_refused_and_says_why() {
        let mut r = routing();
        r.feed = Some(
            "sns:arn:aws:sns:us-east-1:123456789012:feed"
                .parse()
                .unwrap(),
        );
        for value in [
            "slack:#elsewhere",
            "sns:arn:aws:sns:us-east-1:999999999999:theirs",
        ] {
            let o = r.owner("333333333333", &tags(&[("owner", value)]));
            assert_eq!(
                o.recipient.as_ref().unwrap().to_string(),
                "c@example.com",
                "{value}"
            );
            assert!(o.fallback);
            assert_eq!(o.refused.len(), 1, "{o:?}");
            assert!(o.refused[0].starts_with(&format!("tag owner={value} refused: ")));
            assert!(
                o.how.contains(value) && o.how.contains("refused"),
                "{}",
                o.how
            );
        }
        // Configured ones (a route's channel, the feed) and any address may be named.
        for value in [
            "slack:#team-a",
            "sns:arn:aws:sns:us-east-1:123456789012:feed",
            "x@example.com",
        ] {
            let o = r.owner("333333333333", &tags(&[("owner", value)]));
            assert_eq!(o.recipient.unwrap().to_string(), value);
            assert!(!o.fallback && o.refused.is_empty());
        }
        // A refused tag passes over to the next owner tag that routes.
        let o = r.owner(
            "333333333333",
            &tags(&[("owner", "slack:#elsewhere"), ("team", "team-a")]),
        );
        assert_eq!(o.how, "tag team=team-a");
        assert_eq!(o.refused.len(), 1);
    }

    #[test]
    fn the_feed_hears_of_everything_once() {
        let mut r = routing();
        r.feed = Some(
            "sns:arn:aws:sns:us-east-1:123456789012:feed"
                .parse()
                .unwrap(),
        );
        let o = r.owner("444444444444", &tags(&[]));
        assert_eq!(r.recipients(&o).len(), 2);
        let none = Routing {
            feed: r.feed.clone(),
            ..Routing::default()
        };
        assert_eq!(
            none.recipients(&none.owner("1", &tags(&[]))),
            vec![r.feed.clone().unwrap()]
        );
    }
}
