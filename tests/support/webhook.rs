//! A Slack incoming webhook stand-in: an HTTP/1.1 server on a free 127.0.0.1 port that keeps
//! every POSTed body and answers `200 ok` (or a queued failure status). Like Slack, a message of
//! more than 50 blocks is refused (`400 invalid_blocks`) and not kept. Stops when dropped.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct Webhook {
    pub url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    /// Statuses to answer with before answering 200 again.
    failures: Arc<Mutex<Vec<u16>>>,
    task: JoinHandle<()>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/services/T0/B0/hook",
            listener.local_addr().unwrap()
        );
        let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
        let failures: Arc<Mutex<Vec<u16>>> = Arc::default();
        let (b, f) = (bodies.clone(), failures.clone());
        let task = tokio::spawn(async move {
            // Bounded: a test sends a handful; the task ends with the test's runtime anyway.
            for _ in 0..1000 {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (b, f) = (b.clone(), f.clone());
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut socket).await else {
                        return;
                    };
                    let status = {
                        let mut f = f.lock().unwrap();
                        if !f.is_empty() {
                            f.remove(0)
                        } else if too_many_blocks(&body) {
                            400
                        } else {
                            b.lock().unwrap().push(body);
                            200
                        }
                    };
                    let text = if status == 200 { "ok" } else { "failed" };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Webhook {
            url,
            bodies,
            failures,
            task,
        }
    }

    /// The JSON bodies received, in order.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }

    /// The next requests are answered with these statuses (and not kept).
    pub fn fail_with(&self, statuses: &[u16]) {
        self.failures.lock().unwrap().extend_from_slice(statuses);
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body of one request (headers up to a blank line, then `content-length` bytes).
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf[header_end..]).into_owned())
}

/// Slack's limit: at most 50 blocks in a message.
fn too_many_blocks(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|j| j["blocks"].as_array().map(Vec::len))
        .is_some_and(|n| n > 50)
}
