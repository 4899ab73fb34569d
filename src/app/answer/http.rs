//! The answer service's HTTP, independent of what carries it (`dormant serve`'s hyper server or
//! a Lambda function URL event): a request in, a response out, with the page's security headers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use percent_encoding::percent_decode_str;
use serde_json::Value;

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

pub use crate::domain::html::escape;

/// Whether a Lambda payload is a function URL request (API Gateway v2 shape).
pub fn is_function_url_event(payload: &Value) -> bool {
    payload["requestContext"]["http"]["method"].is_string()
}

/// A function URL event as a request.
pub fn from_function_url(payload: &Value) -> Result<HttpRequest, String> {
    let method = payload["requestContext"]["http"]["method"]
        .as_str()
        .ok_or("no requestContext.http.method")?;
    let body = payload["body"].as_str().unwrap_or_default();
    let body = if payload["isBase64Encoded"].as_bool().unwrap_or(false) {
        STANDARD
            .decode(body)
            .map_err(|e| format!("body is not base64: {e}"))?
    } else {
        body.as_bytes().to_vec()
    };
    let headers = payload["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(HttpRequest {
        method: method.to_ascii_uppercase(),
        path: payload["rawPath"].as_str().unwrap_or("/").to_string(),
        query: payload["rawQueryString"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        headers,
        body,
    })
}

/// A response as the function URL expects it.
pub fn to_function_url(response: &HttpResponse) -> Value {
    let headers: serde_json::Map<String, Value> = response
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    serde_json::json!({
        "statusCode": response.status,
        "headers": headers,
        "body": response.body,
        "isBase64Encoded": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_url_events_round_trip() {
        let event = serde_json::json!({
            "version": "2.0", "rawPath": "/answer", "rawQueryString": "t=abc.def",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            "requestContext": {"http": {"method": "POST", "path": "/answer"}},
            "body": STANDARD.encode("t=abc.def"), "isBase64Encoded": true
        });
        assert!(is_function_url_event(&event));
        assert!(!is_function_url_event(&serde_json::json!({"Records": []})));
        let req = from_function_url(&event).unwrap();
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/answer")
        );
        assert_eq!(req.query_param("t").as_deref(), Some("abc.def"));
        assert_eq!(req.form_param("t").as_deref(), Some("abc.def"));
        assert_eq!(
            req.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let out = to_function_url(&HttpResponse::html(410, "gone".into()));
        assert_eq!(out["statusCode"], 410);
        assert_eq!(out["headers"]["x-frame-options"], "DENY");
    }

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
