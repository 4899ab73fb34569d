//! Text for HTML, attribute values included: identity names and tag values are chosen by
//! whoever can tag an identity and must never become markup. One escaper for the answer pages
//! and the HTML email.

/// HTML's five: enough in text and quoted attributes (minijinja's own also escapes `/`, which
/// makes ARNs and URLs unreadable in the source and in tests).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn leaves_no_markup() {
        let hostile = r#"<script>alert('x')</script>" onmouseover="x"&"#;
        let e = super::escape(hostile);
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
        assert_eq!(super::escape("a&b é"), "a&amp;b é");
    }
}
