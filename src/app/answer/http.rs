//! The answer service's HTTP, independent of what carries it (`dormant serve`'s hyper server or
//! a Lambda function URL event): a request in, a response out, with the page's security headers.

use percent_encoding::percent_decode_str;

/// One HTTP request, as either carrier hands it over.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: String,
    /// Names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        form_value(self.query.as_bytes(), name)
    }

    pub fn form_param(&self, name: &str) -> Option<String> {
        form_value(&self.body, name)
    }
}

/// One HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// No script, no external asset, no frame, forms post only back here.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

impl HttpResponse {
    /// An HTML page with the security headers.
    pub fn html(status: u16, body: String) -> Self {
        HttpResponse {
            status,
            headers: vec![
                ("content-type".into(), "text/html; charset=utf-8".into()),
                (
                    "content-security-policy".into(),
                    CONTENT_SECURITY_POLICY.into(),
                ),
                ("x-frame-options".into(), "DENY".into()),
                ("x-content-type-options".into(), "nosniff".into()),
                ("referrer-policy".into(), "no-referrer".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body,
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Self {
        HttpResponse {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body or query string.
pub fn form_value(encoded: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(encoded).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k)? == name).then(|| decode(v)).flatten()
    })
}

fn decode(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Text for HTML, attribute values included: identity names and tag values are the owner's (or
/// an attacker's) and must never become markup.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_decoded() {
        let body = b"t=abc.def&reason=needed+for+%3Cq4%3E&until=2027-01-02";
        assert_eq!(form_value(body, "t").as_deref(), Some("abc.def"));
        assert_eq!(
            form_value(body, "reason").as_deref(),
            Some("needed for <q4>")
        );
        assert_eq!(form_value(body, "missing"), None);
    }

    #[test]
    fn escape_leaves_no_markup() {
        let hostile = r#"<script>alert('x')</script>" onmouseover="x"&"#;
        let e = escape(hostile);
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
        assert_eq!(escape("a&b"), "a&amp;b");
    }
}
