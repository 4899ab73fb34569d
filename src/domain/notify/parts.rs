//! Splitting a digest into messages each channel accepts. Slack refuses a message of more than
//! 50 blocks, SNS one over 256 KB; both refusals would repeat on every run. A digest that does
//! not fit is sent as parts ("part k of n"), each a run of whole items; an item that does not
//! fit even alone is a part of its own that fails (and is dead-lettered by the engine).

use std::ops::Range;

use super::digest::{ActionLink, Digest};
use super::render::{Rendered, TemplateError, Templates};
use super::Recipient;

/// Slack's limit on blocks in one message.
pub const SLACK_MAX_BLOCKS: usize = 50;
/// SNS's limit on a message (UTF-8 bytes).
pub const SNS_MAX_BYTES: usize = 256 * 1024;
/// Subject and bodies of one email. SES takes up to 40 MB once MIME-encoded (base64 or
/// quoted-printable adds about a third, for each of the two bodies), and many receiving servers
/// refuse mail over 10-25 MB: 10 MB of content keeps well inside both.
pub const EMAIL_MAX_BYTES: usize = 10 * 1024 * 1024;

/// One message of a digest: `items` are the digest's items it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub items: Range<usize>,
    pub message: Result<Rendered, TemplateError>,
}

/// How big a message is for its channel, and the channel's limit, in the same unit.
pub fn size(recipient: &Recipient, m: &Rendered) -> (usize, usize) {
    match recipient {
        Recipient::Slack(_) => (
            m.slack
                .as_ref()
                .and_then(|j| j.get("blocks"))
                .and_then(|b| b.as_array())
                .map_or(0, Vec::len),
            SLACK_MAX_BLOCKS,
        ),
        Recipient::Sns(_) => (m.text.len(), SNS_MAX_BYTES),
        Recipient::Email(_) => (
            m.subject.len() + m.text.len() + m.html.as_ref().map_or(0, String::len),
            EMAIL_MAX_BYTES,
        ),
    }
}

fn too_big(recipient: &Recipient, (got, limit): (usize, usize)) -> TemplateError {
    let (name, unit) = match recipient {
        Recipient::Slack(_) => ("slack.json", "blocks"),
        Recipient::Sns(_) => ("sns.txt", "bytes"),
        Recipient::Email(_) => ("email.html", "bytes"),
    };
    TemplateError {
        name: name.to_string(),
        message: format!(
            "one identity alone renders to {got} {unit}, over the channel's limit of {limit}"
        ),
    }
}

impl Templates {
    /// `digest` as messages its channel accepts: one when it fits, else parts in item order,
    /// each saying which part of how many it is. `links[i]` are the links of `items[i]`.
    pub fn render_parts(&self, digest: &Digest, links: &[Vec<ActionLink>]) -> Vec<Part> {
        let n = digest.items.len();
        let to = &digest.recipient;
        let render = |r: &Range<usize>, part: usize, parts: usize| {
            let links = links.get(r.clone()).unwrap_or(&[]);
            self.render_part(to, &digest.items[r.clone()], links, part, parts)
        };
        let fits = |m: &Rendered| {
            let (got, limit) = size(to, m);
            got <= limit
        };
        let whole = match render(&(0..n), 1, 1) {
            Ok(m) if !fits(&m) && n > 1 => m,
            message => {
                return vec![Part {
                    items: 0..n,
                    message: message.and_then(|m| {
                        if fits(&m) {
                            Ok(m)
                        } else {
                            Err(too_big(to, size(to, &m)))
                        }
                    }),
                }]
            }
        };
        // A first guess from the whole, then halves of what still does not fit. Ranges are
        // measured numbered `n of n` (the most digits the numbering can take).
        let (got, limit) = size(to, &whole);
        let guess = got.div_ceil(limit.max(1)).clamp(2, n);
        let mut todo: Vec<Range<usize>> = (0..guess)
            .rev()
            .map(|k| (k * n / guess)..((k + 1) * n / guess))
            .filter(|r| !r.is_empty())
            .collect();
        let mut ranges = Vec::new();
        // Bounded: every round either keeps a range or halves one (at most 2n rounds).
        while let Some(r) = todo.pop() {
            let keep = r.len() == 1 || matches!(render(&r, n, n), Ok(m) if fits(&m));
            if keep {
                ranges.push(r);
            } else {
                let mid = r.start + r.len() / 2;
                todo.push(mid..r.end);
                todo.push(r.start..mid);
            }
        }
        let parts = ranges.len();
        ranges
            .into_iter()
            .enumerate()
            .map(|(k, r)| {
                let message = render(&r, k + 1, parts).and_then(|m| {
                    if fits(&m) {
                        Ok(m)
                    } else {
                        Err(too_big(to, size(to, &m)))
                    }
                });
                Part { items: r, message }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::notify::digest::tests::item;
    use crate::domain::Step;

    fn digest(to: &str, n: usize) -> Digest {
        Digest {
            recipient: to.parse().unwrap(),
            items: (0..n)
                .map(|i| item(&format!("role-{i:03}"), Step::Notice))
                .collect(),
        }
    }

    fn templates() -> Templates {
        Templates::new(&BTreeMap::new()).unwrap()
    }

    fn all_items_in_order(parts: &[Part], n: usize) {
        let mut next = 0;
        for p in parts {
            assert_eq!(p.items.start, next, "{:?}", p.items);
            next = p.items.end;
        }
        assert_eq!(next, n);
    }

    #[test]
    fn a_digest_that_fits_is_one_message() {
        let parts = templates().render_parts(&digest("slack:#ops", 20), &[]);
        assert_eq!(parts.len(), 1);
        let m = parts[0].message.as_ref().unwrap();
        assert!(!m.text.contains("part 1"), "{}", m.text);
    }

    #[test]
    fn slack_parts_stay_within_50_blocks_and_carry_every_item_numbered() {
        let d = digest("slack:#ops", 60);
        let parts = templates().render_parts(&d, &[]);
        assert!(parts.len() >= 3, "{}", parts.len());
        all_items_in_order(&parts, 60);
        for (k, p) in parts.iter().enumerate() {
            let m = p.message.as_ref().unwrap();
            let blocks = m.slack.as_ref().unwrap()["blocks"]
                .as_array()
                .unwrap()
                .len();
            assert!(blocks <= SLACK_MAX_BLOCKS, "{blocks}");
            let header = format!("(part {} of {})", k + 1, parts.len());
            assert!(m.text.contains(&header), "{header} in {}", m.text);
            for i in p.items.clone() {
                assert!(m.text.contains(&d.items[i].short));
            }
        }
    }

    #[test]
    fn sns_parts_stay_within_256_kb() {
        // A big first sweep: enough identities that one message would be over the limit.
        let d = digest("sns:arn:aws:sns:us-east-1:123456789012:feed", 2000);
        let whole = templates().render(&d, &[]).unwrap();
        assert!(whole.text.len() > SNS_MAX_BYTES, "{}", whole.text.len());
        let parts = templates().render_parts(&d, &[]);
        assert!(parts.len() >= 2);
        all_items_in_order(&parts, 2000);
        for p in &parts {
            let m = p.message.as_ref().unwrap();
            assert!(m.text.len() <= SNS_MAX_BYTES);
            assert!(m.text.contains(&format!("of {}", parts.len())));
            assert!(m.subject.contains("part"), "{}", m.subject);
        }
    }

    #[test]
    fn an_item_too_big_alone_fails_on_its_own() {
        // An override that renders one identity past SNS's limit: that item fails, the rest go.
        let big = BTreeMap::from([(
            "sns.txt".to_string(),
            "{% for i in items %}{{ i.short }}{% if i.short == 'role/role-001' %}{{ 'x' * 300000 }}{% endif %}\n{% endfor %}"
                .to_string(),
        )]);
        let t = Templates::new(&big).unwrap();
        let parts = t.render_parts(
            &digest("sns:arn:aws:sns:us-east-1:123456789012:feed", 3),
            &[],
        );
        all_items_in_order(&parts, 3);
        let failed: Vec<_> = parts.iter().filter(|p| p.message.is_err()).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].items, 1..2);
        assert!(parts.iter().filter(|p| p.message.is_ok()).count() >= 1);
    }
}
