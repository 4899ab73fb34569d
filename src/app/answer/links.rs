//! The signed links owners' messages carry (docs/design.md, 'Answers').

use std::collections::BTreeSet;

use crate::domain::answer::{links_for, SigningKey};
use crate::domain::notify::{ActionLink, DigestItem, Recipient};
use crate::ports::ActionLinks;

/// Signed links in owners' messages ([`ActionLinks`]): minted with the current
/// key, pointing at `base_url`.
pub struct SignedLinks {
    pub base_url: String,
    pub key: SigningKey,
    /// Deletions wait for an approval, so a pending deletion offers "Approve deletion".
    pub approval: bool,
    /// The recipients links go to: those the operator configured
    /// ([`crate::domain::notify::Routing::configured_recipients`]), never one taken from a tag.
    pub trusted: BTreeSet<String>,
}

impl ActionLinks for SignedLinks {
    fn links(&self, item: &DigestItem, recipient: &Recipient) -> Vec<ActionLink> {
        if !self.trusted.contains(&recipient.to_string()) {
            return Vec::new();
        }
        links_for(item, recipient, &self.base_url, &self.key, self.approval)
    }
}
