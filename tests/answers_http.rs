//! The answer service's carriers (issue 19, item 4): `dormant serve`'s HTTP server over a real
//! socket on 127.0.0.1, the signing key read from an SSM SecureString, and `serve` refusing a
//! non-loopback address.

use dormant::adapters::clock::Clock;
use dormant::adapters::secrets::read_secret;
use dormant::answers::serve;
use dormant::app::answer::AnswerService;
use dormant::config::KeySource;
use dormant::domain::answer::AnswerAction;
use dormant::domain::{Policy, Stage};
use dormant::ports::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::answers::{keys, Engines, Fixture, OWNER};
use crate::support::cli::stderr;

/// One request over a fresh connection; the whole response back.
async fn exchange(port: u16, request: String) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn serve_answers_get_and_post_over_http_on_loopback() {
    let f = Fixture::role("served", Policy::default(), &[]).await;
    let token = f.link(AnswerAction::Keep).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let engines = Engines {
        a: &f.a,
        policy: f.policy.clone(),
    };
    let keys = keys();
    let svc = AnswerService {
        keys: &keys,
        slack_secret: None,
        engines: &engines,
        ledger: &f.store,
    };
    let client = async {
        let page = exchange(
            port,
            format!("GET /answer?t={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        )
        .await;
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("x-frame-options: DENY"));
        assert!(page.contains("<form method=\"post\" action=\"/answer\">"));
        let body = format!("t={token}&action=keep&reason=demo+service&until=");
        let done = exchange(
            port,
            format!(
                "POST /answer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(done.starts_with("HTTP/1.1 200 OK\r\n"), "{done}");
        let again = exchange(
            port,
            format!(
                "POST /answer HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(again.starts_with("HTTP/1.1 409"), "{again}");
        let missing = exchange(port, "GET /elsewhere HTTP/1.1\r\n\r\n".to_string()).await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    };
    tokio::select! {
        _ = serve(listener, &svc, Clock::fixed(f.a.day(1))) => unreachable!("serve returned"),
        _ = client => {}
    }
    assert_ne!(f.stage().await, Stage::Noticed);
    let last = f.store.history(&f.subject).await.unwrap();
    assert!(last.iter().any(|e| e.step == "exempt" && e.actor == OWNER));
}

#[tokio::test]
async fn the_signing_key_is_read_from_an_ssm_secure_string() {
    let f = Fixture::role("keyed", Policy::default(), &[]).await;
    let ssm = aws_sdk_ssm::Client::new(&f.a.sdk().await);
    let key = "k".repeat(40);
    ssm.put_parameter()
        .name("/dormant/answer-key")
        .value(&key)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let read = read_secret(&KeySource::Ssm("/dormant/answer-key".into()), &ssm)
        .await
        .unwrap();
    assert_eq!(read, key.as_bytes());
    let missing = read_secret(&KeySource::Ssm("/dormant/none".into()), &ssm)
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("/dormant/none"), "{missing}");
}

#[test]
fn serve_refuses_a_non_loopback_address_and_needs_answers_configured() {
    let d = crate::support::cli::Dormant::in_new_account();
    let o = d.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a loopback address"),
        "{}",
        stderr(&o)
    );
    let o = d.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("[answers]"), "{}", stderr(&o));
}
