//! The answer page: server-rendered HTML, no script, no external asset, every value escaped.

use super::http::{escape, HttpResponse};
use super::{latest_until, View};
use crate::domain::answer::{AnswerAction, Claims, Refusal, ANSWER_PATH};
use crate::domain::time::fmt_time;
use crate::domain::Timestamp;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;line-height:1.5}\
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.5rem}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ccc;vertical-align:top}\
th{width:11rem}code{overflow-wrap:anywhere}\
.refused{border-left:4px solid #b00020;padding:.5rem 1rem;background:#fdecea}\
.done{border-left:4px solid #1b6e20;padding:.5rem 1rem;background:#e8f5e9}\
form{margin-top:1rem;padding:1rem;border:1px solid #ccc}label{display:block;margin-top:.5rem;font-weight:600}\
input[type=text],input[type=date]{font:inherit;padding:.3rem;width:100%;max-width:24rem}\
small{display:block;color:#444}button{display:block;font:inherit;margin-top:1rem;padding:.5rem 1.2rem;border:2px solid #0b3d91;background:#0b3d91;color:#fff;cursor:pointer}\
button:focus{outline:3px solid #f9a825;outline-offset:2px}";

/// A whole document around `main`.
fn document(title: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\">\
<title>{} — dormant</title><style>{STYLE}</style></head>\
<body><main>{main}</main></body></html>\n",
        escape(title)
    )
}

pub(super) fn message(title: &str, text: &str) -> String {
    document(
        title,
        &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(text)),
    )
}

pub(super) fn refused(refusal: &Refusal) -> HttpResponse {
    HttpResponse::html(
        refusal.status(),
        document(
            "Nothing was changed",
            &format!(
                "<h1>Nothing was changed</h1><p class=\"refused\" role=\"alert\">{}</p>",
                escape(&refusal.to_string())
            ),
        ),
    )
}

pub(super) fn outcome(outcome: &Result<super::Answer, Refusal>) -> HttpResponse {
    match outcome {
        Ok(answer) => {
            let title = if answer.finished {
                "Done"
            } else {
                "Answer recorded"
            };
            HttpResponse::html(
                200,
                document(
                    title,
                    &format!(
                        "<h1>{title}</h1><p class=\"done\" role=\"status\">{}</p>",
                        escape(&answer.text)
                    ),
                ),
            )
        }
        Err(r) => refused(r),
    }
}

fn row(th: &str, td: &str) -> String {
    format!(
        "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
        escape(th),
        td
    )
}

pub(super) fn identity(claims: &Claims, token: &str, look: &View, now: Timestamp) -> HttpResponse {
    let p = &look.subject.principal;
    let s = &look.status;
    let mut main = format!(
        "<h1>{} <code>{}</code></h1>\
<p>dormant found this {} unused. You received this link as <strong>{}</strong>; \
what you answer is recorded under that name.</p>",
        escape(s.kind),
        escape(&p.path_and_name()),
        escape(s.kind),
        escape(&claims.recipient)
    );
    main.push_str("<h2>Identity</h2><table>");
    main.push_str(&row(
        "ARN",
        &format!("<code>{}</code>", escape(&look.subject.id())),
    ));
    main.push_str(&row(
        "Unique id",
        &format!("<code>{}</code>", escape(&claims.unique_id)),
    ));
    main.push_str(&row("Account", &escape(&p.account)));
    main.push_str(&row("Stage", &escape(s.stage.as_str())));
    for (k, v) in &look.tags {
        main.push_str(&row(&format!("Tag {k}"), &escape(v)));
    }
    main.push_str("</table><h2>Evidence</h2><table>");
    main.push_str(&row(
        "Last used",
        &escape(
            s.last_used_at
                .as_deref()
                .unwrap_or("never (as far as IAM recorded)"),
        ),
    ));
    main.push_str(&row("Why", &escape(&s.reason)));
    main.push_str(&row("Exempt", if s.exempt { "yes" } else { "no" }));
    main.push_str("</table><h2>Schedule</h2><table>");
    let next = match (&s.next_step, &s.next_due_at) {
        (Some(step), Some(at)) => format!("{} at {}", step.as_str(), at),
        (Some(step), None) => step.as_str().to_string(),
        _ => "nothing scheduled".to_string(),
    };
    main.push_str(&row("Next step", &escape(&next)));
    main.push_str(&row(
        "This link expires",
        &escape(&fmt_time(claims.expires())),
    ));
    main.push_str("</table><h2>History</h2>");
    if look.history.is_empty() {
        main.push_str("<p>No entries yet.</p>");
    } else {
        main.push_str("<table><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Step</th><th scope=\"col\">By</th><th scope=\"col\">Why</th></tr></thead><tbody>");
        for h in look.history.iter().rev().take(20) {
            main.push_str(&format!(
                "<tr><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>",
                escape(&h.at),
                escape(&h.step),
                escape(h.outcome.as_str()),
                escape(&h.actor),
                escape(&h.reason)
            ));
        }
        main.push_str("</tbody></table>");
    }
    main.push_str(&form(claims, token, look.max_days, now));
    HttpResponse::html(200, document(&format!("{} {}", s.kind, p.name), &main))
}

fn form(claims: &Claims, token: &str, max_days: i64, now: Timestamp) -> String {
    let action = claims.action;
    let mut f = format!(
        "<h2>Your answer</h2><form method=\"post\" action=\"{ANSWER_PATH}\">\
<input type=\"hidden\" name=\"t\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"{}\">",
        escape(token),
        action.as_str()
    );
    match action {
        AnswerAction::Keep => {
            let latest = latest_until(max_days, now).format("%Y-%m-%d").to_string();
            let tomorrow = (now + chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
            f.push_str(&format!(
                "<p>Keep it: dormant exempts it until the date below (at most {max_days} days) and releases anything it changed.</p>\
<label for=\"reason\">Why is it still needed?</label>\
<input type=\"text\" id=\"reason\" name=\"reason\" required maxlength=\"200\" pattern=\"[A-Za-z0-9 _.:/=+\\-@]+\" \
aria-describedby=\"reason-help\"><small id=\"reason-help\">Letters, digits, spaces and _ . : / = + - @ (it is stored as an IAM tag).</small>\
<label for=\"until\">Keep until</label>\
<input type=\"date\" id=\"until\" name=\"until\" value=\"{latest}\" min=\"{tomorrow}\" max=\"{latest}\" required>"
            ));
        }
        AnswerAction::Approve => f.push_str(
            "<p>Approve the deletion: the next run snapshots it and deletes it. It can be restored from the snapshot.</p>",
        ),
        AnswerAction::Undo => f.push_str(
            "<p>Undo: dormant reverses what it changed now, and leaves the identity alone for the cool-off period.</p>",
        ),
    }
    f.push_str(&format!(
        "<button type=\"submit\">{}</button></form>",
        escape(action.label())
    ));
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::output::{HistoryEntry, StatusReport};
    use crate::domain::{Outcome, Principal, Stage, Subject};

    /// Identity names are limited by IAM, tag values less so elsewhere (and moto refuses what
    /// IAM refuses): every value reaches the page through `escape`, tested here with markup.
    #[test]
    fn hostile_values_never_become_markup() {
        let hostile = "\"><script>alert(1)</script><img src=x onerror='y'>";
        let subject = Subject::whole(Principal::role("123456789012", "/", "svc"));
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let claims = Claims::issue(
            AnswerAction::Keep,
            &subject,
            hostile,
            Stage::Noticed,
            hostile,
            now + chrono::Duration::days(3),
            now,
        );
        let view = View {
            subject,
            status: StatusReport {
                identity: hostile.into(),
                kind: "role",
                stage: Stage::Noticed,
                next_step: None,
                next_due_at: Some(hostile.into()),
                exempt: false,
                reason: hostile.into(),
                last_used_at: Some(hostile.into()),
            },
            history: vec![HistoryEntry {
                at: hostile.into(),
                step: hostile.into(),
                outcome: Outcome::Done,
                actor: hostile.into(),
                reason: hostile.into(),
                event_id: None,
            }],
            tags: [(hostile.to_string(), hostile.to_string())].into(),
            max_days: 30,
        };
        let page = identity(&claims, hostile, &view, now).body;
        assert!(
            !page.contains("<script") && !page.contains("<img"),
            "{page}"
        );
        assert!(!page.contains("onerror='"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let refusal = refused(&Refusal::Refused(hostile.into())).body;
        assert!(!refusal.contains("<script"));
    }
}
