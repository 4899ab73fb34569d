//! The shells of the answer service (`app::answer`): engines from the [`EngineFactory`] acting
//! as a link's recipient, and `dormant serve`'s small HTTP/1.1 server on loopback. Both
//! carriers call the same [`AnswerService::handle`].

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::adapters::clock::Clock;
use crate::adapters::dynamo::DynamoStore;
use crate::adapters::iam::AwsIam;
use crate::adapters::secrets::load_secrets;
use crate::app::answer::{AnswerEngines, AnswerService, HttpRequest, HttpResponse};
use crate::app::engine::FallbackSetup;
use crate::app::Engine;
use crate::config::Answers;
use crate::error::Error;
use crate::wiring::EngineFactory;

/// Engines of the factory's accounts, acting as the link's recipient.
pub struct FactoryEngines<'a> {
    factory: &'a EngineFactory,
    /// The role assumed in member accounts instead of the one `accounts[].role` names (the
    /// answers function's own role there, which can do only what answers do); `None`: that one.
    member_role_name: Option<String>,
}

impl<'a> FactoryEngines<'a> {
    pub fn new(factory: &'a EngineFactory) -> Self {
        FactoryEngines {
            factory,
            member_role_name: None,
        }
    }

    /// Assumes the role `name` in member accounts (same account and partition as the configured
    /// role) rather than the configured one.
    pub fn assuming(mut self, name: &str) -> Self {
        self.member_role_name = Some(name.to_string());
        self
    }
}

/// `role_arn` with its path and name replaced by `name` (the stacks give the answers role no path).
fn renamed_role(role_arn: &str, name: &str) -> String {
    match role_arn.split_once(":role/") {
        Some((head, _)) => format!("{head}:role/{name}"),
        None => role_arn.to_string(),
    }
}

#[async_trait]
impl AnswerEngines<AwsIam, DynamoStore> for FactoryEngines<'_> {
    async fn engine_as(
        &self,
        account: &str,
        actor: &str,
    ) -> Result<Engine<AwsIam, DynamoStore>, Error> {
        let members = self.factory.accounts().await?;
        let mut member = members
            .iter()
            .find(|m| m.id == account)
            .ok_or_else(|| {
                Error::Rejected(format!("account {account} is not one dormant manages"))
            })?
            .clone();
        if let (Some(name), Some(role)) = (&self.member_role_name, &member.role_arn) {
            member.role_arn = Some(renamed_role(role, name));
        }
        let mut engine = self
            .factory
            .engine(&member)
            .await
            .map_err(Error::Rejected)?;
        engine.actor = actor.to_string();
        // The answers role may stop an execution an Undo reverses, never start one.
        engine.fallback = engine.fallback.take().map(FallbackSetup::stop_only);
        Ok(engine)
    }
}

/// Requests larger than this are refused (a form is a few hundred bytes).
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// A connection that has not sent its request by then is closed.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `dormant serve` may listen on `addr`: loopback only, unless explicitly allowed.
pub fn listen_allowed(addr: &SocketAddr, allow_non_loopback: bool) -> Result<(), Error> {
    if addr.ip().is_loopback() || allow_non_loopback {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--listen {addr} is not a loopback address: the page acts on identities, so it is served on 127.0.0.1 unless --allow-non-loopback says otherwise"
        )))
    }
}

/// Serves `svc` on `listener` until the process ends: one request per connection.
pub async fn serve<I, S>(listener: TcpListener, svc: &AnswerService<'_, I, S>, clock: Clock)
where
    I: crate::ports::Iam,
    S: crate::ports::Store,
{
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        // One at a time: a loopback demo server; the Lambda carries real traffic.
        let response = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
            Ok(Ok(req)) => svc.handle(&req, clock.now()).await,
            Ok(Err(status)) => HttpResponse::html(status, String::new()),
            Err(_) => HttpResponse::html(408, String::new()),
        };
        let _ = write_response(&mut stream, &response).await;
    }
}

async fn read_request(stream: &mut TcpStream) -> Result<HttpRequest, u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(413);
        }
        let n = stream.read(&mut chunk).await.map_err(|_| 400u16)?;
        if n == 0 {
            return Err(400);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| 400u16)?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (
        first.next().unwrap_or_default(),
        first.next().unwrap_or("/"),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if length > MAX_REQUEST_BYTES {
        return Err(413);
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.map_err(|_| 400u16)?;
        if n == 0 {
            return Err(400);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(HttpRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body,
    })
}

async fn write_response(stream: &mut TcpStream, r: &HttpResponse) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (k, v) in &r.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        r.body.len()
    ));
    stream.write_all(out.as_bytes()).await?;
    stream.write_all(r.body.as_bytes()).await?;
    stream.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        _ => "",
    }
}

/// `dormant serve`: the answer page on `listen`, with the configured keys, until stopped.
pub async fn run_serve(
    answers: Option<&Answers>,
    factory: &EngineFactory,
    listen: SocketAddr,
    allow_non_loopback: bool,
    clock: Clock,
) -> Result<(), Error> {
    listen_allowed(&listen, allow_non_loopback)?;
    let answers = answers.ok_or_else(|| {
        Error::Usage(
            "serve needs [answers] key_source (and base_url, for the links) in the configuration"
                .to_string(),
        )
    })?;
    let secrets = load_secrets(answers, &factory.ssm()).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen on {listen}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Usage(format!("cannot listen on {listen}: {e}")))?;
    // The one line a script waits for before it opens links.
    println!(
        "serving answers on http://{bound} (links: {})",
        answers
            .base_url
            .as_deref()
            .unwrap_or("none: [answers] base_url is not set")
    );
    let store = factory.store();
    let engines = FactoryEngines::new(factory);
    let svc = AnswerService {
        keys: &secrets.keys,
        slack_secret: secrets.slack.as_deref(),
        engines: &engines,
        ledger: &store,
    };
    serve(listener, &svc, clock).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answers_role_replaces_only_the_role_name() {
        assert_eq!(
            renamed_role(
                "arn:aws-cn:iam::222233334444:role/ops/dormant-member",
                "dormant-answers"
            ),
            "arn:aws-cn:iam::222233334444:role/dormant-answers"
        );
        assert_eq!(
            renamed_role("arn:aws:iam::222233334444:role/dormant-member", "x"),
            "arn:aws:iam::222233334444:role/x"
        );
    }

    #[test]
    fn serve_listens_on_loopback_unless_allowed() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(listen_allowed(&lo, false).is_ok());
        assert!(listen_allowed(&"[::1]:1".parse().unwrap(), false).is_ok());
        assert!(listen_allowed(&any, false)
            .unwrap_err()
            .to_string()
            .contains("--allow-non-loopback"));
        assert!(listen_allowed(&any, true).is_ok());
    }
}
