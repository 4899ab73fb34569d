//! The answer service's carriers (issue 19, item 4): `dormant serve`'s HTTP server over a real
//! socket on 127.0.0.1, the signing key read from an SSM SecureString, and `serve` refusing a
//! non-loopback address.

use dormant::adapters::clock::Clock;
use dormant::adapters::secrets::read_secret;
use dormant::answers::serve;
use dormant::app::answer::AnswerService;
use dormant::config::KeySource;
use dormant::domain::answer::{sign, verify, AnswerAction, Claims, SigningKey};
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

/// The stack's key is a Secrets Manager secret, read through SSM's reference path (one SSM
/// client, one grant); a rotated-in key and the previous one are both read.
#[tokio::test]
async fn the_signing_keys_are_read_from_secrets_manager_through_ssm() {
    let f = Fixture::role("secret-keyed", Policy::default(), &[]).await;
    let sdk = f.a.sdk().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    for (name, value) in [
        ("AnswerSigningKey-new", "n".repeat(64)),
        ("AnswerSigningKey-old", "o".repeat(64)),
    ] {
        secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let answers = dormant::config::Answers {
        key: KeySource::SecretsManager("AnswerSigningKey-new".into()),
        previous_key: Some(KeySource::SecretsManager("AnswerSigningKey-old".into())),
        base_url: None,
        slack_signing_secret: None,
    };
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let loaded = dormant::adapters::secrets::load_secrets(&answers, &ssm)
        .await
        .unwrap();
    let token = |key: &SigningKey| {
        let claims = Claims::issue(
            AnswerAction::Keep,
            &f.subject,
            &f.unique_id,
            Stage::Noticed,
            "a@example.com",
            f.a.day(3),
            f.a.day(0),
        );
        sign(key, &claims)
    };
    let new = SigningKey::new("n".repeat(64).into_bytes()).unwrap();
    let old = SigningKey::new("o".repeat(64).into_bytes()).unwrap();
    let other = SigningKey::new("x".repeat(64).into_bytes()).unwrap();
    assert!(verify(&loaded.keys, &token(&new), f.a.day(1)).is_ok());
    assert!(
        verify(&loaded.keys, &token(&old), f.a.day(1)).is_ok(),
        "the previous key still verifies"
    );
    assert!(verify(&loaded.keys, &token(&other), f.a.day(1)).is_err());

    let missing = read_secret(&KeySource::SecretsManager("no-such-secret".into()), &ssm)
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("no-such-secret"), "{missing}");
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

/// Review 5: an answer key that cannot be read turns the links off, not dormant: the sweep
/// notices and tells the owner (without links), and says why on stderr.
#[tokio::test]
async fn an_unreadable_answer_key_turns_the_links_off_and_the_ladder_goes_on() {
    let a = crate::support::account::Account::without_table().await;
    let cli = a.dormant();
    a.role("forgotten", 200, &[]).await;
    cli.config(
        "[notify]\nenabled = true\nfallback = \"security@example.com\"\n\
         email_from = \"dormant@example.com\"\n\n\
         [answers]\nbase_url = \"https://answers.example/\"\n\
         key_source = \"ssm:/dormant/no-such-key\"\n",
    );
    assert!(cli.run(&["init"]).status.success());
    let now = cli.at(0);
    let o = cli.run(&["--output", "json", "--now", &now, "--yes", "sweep"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sweep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(sweep["actions"][0]["step"], "notice", "{sweep}");
    assert_eq!(sweep["actions"][0]["outcome"], "done", "{sweep}");
    let err = stderr(&o);
    assert!(
        err.contains("carry no links") && err.contains("/dormant/no-such-key"),
        "{err}"
    );
}

/// A function URL request (API Gateway v2 shape) for `path?query`, with a form `body`.
fn url_event(method: &str, query: &str, body: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "2.0", "rawPath": "/answer", "rawQueryString": query,
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "requestContext": {"requestId": "req-1", "http": {"method": method, "path": "/answer"}},
        "body": body, "isBase64Encoded": false
    })
}

#[tokio::test]
async fn the_function_url_reaches_only_the_answers_function_and_events_only_the_controller() {
    use dormant::adapters::retry::RetryPolicy;
    use dormant::config::Config;
    use dormant::inbound::eventbridge::ClassifyRules;
    use dormant::lambda::{invoke, ColdStart, Function};
    use dormant::wiring::{Actor, EngineFactory, LazyFleet, OnDemand};

    let f = Fixture::role("routed", Policy::default(), &[]).await;
    assert_eq!(f.stage().await, Stage::Noticed);
    let token = f.link(AnswerAction::Keep).await;
    let config = Config::from_toml("").unwrap();
    let factory = EngineFactory::new(
        &config,
        &f.a.sdk().await,
        Actor::Controller,
        RetryPolicy::fast(),
    )
    .await
    .unwrap();
    let (fleet, on_demand) = (LazyFleet::new(&factory), OnDemand::new(&factory, None));
    let rules = ClassifyRules::from_config(&config);
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
    let answers = ColdStart {
        function: Function::Answers,
        fleet: &fleet,
        rules: &rules,
        engines: &on_demand,
        fanout: None,
        concurrency: 1,
        answers: Some(&svc),
    };
    let controller = ColdStart {
        function: Function::Controller,
        ..answers
    };
    let day = f.a.day(1);
    let tick = serde_json::json!({"version": "0", "id": "tick-routed", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": f.a.id, "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {"action": "tick"}});
    let history = f.history_len().await;

    // The controller refuses an owner's request: a failed invocation, nothing done.
    let get = url_event("GET", &format!("t={token}"), "");
    let refused = invoke(get.clone(), &controller, day).await.unwrap_err();
    assert!(!refused.is_retryable(), "{refused}");
    let text = refused.to_string();
    assert!(
        text.contains("function-URL request") && text.contains("controller"),
        "{text}"
    );
    // The answers function refuses an event: nothing swept, ticked or written.
    let refused = invoke(tick.clone(), &answers, day).await.unwrap_err();
    assert!(!refused.is_retryable(), "{refused}");
    assert!(refused.to_string().contains("answers"), "{refused}");
    assert!(refused.to_string().contains("tick-routed"), "{refused}");
    let batch = serde_json::json!({"Records": [{"messageId": "m-1", "body": "{}", "eventSource": "aws:sqs"}]});
    assert!(invoke(batch, &answers, day).await.is_err());
    assert_eq!(f.history_len().await, history, "nothing was recorded");
    assert_eq!(f.stage().await, Stage::Noticed);

    // The answers function serves the page and the answer.
    let page = invoke(get, &answers, day).await.unwrap();
    assert_eq!(page["statusCode"], 200, "{page}");
    assert!(page["body"].as_str().unwrap().contains("routed"), "{page}");
    let kept = invoke(
        url_event(
            "POST",
            "",
            &format!("t={token}&action=keep&reason=nightly+report"),
        ),
        &answers,
        day,
    )
    .await
    .unwrap();
    assert_eq!(kept["statusCode"], 200, "{kept}");
    assert_eq!(f.stage().await, Stage::Exempt);
    // And the controller still handles events.
    invoke(tick, &controller, day).await.unwrap();
}
