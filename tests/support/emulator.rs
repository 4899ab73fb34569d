//! A moto-based AWS emulator for integration tests (see `tests/emulator/README.md`).
//!
//! One emulator process for the test binary ([`emulator()`]); tests stay independent by each
//! working in an account of its own ([`Emulator::new_account`]), so they can run in parallel.
//! Faults and the request log are scoped by account for the same reason.

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::config::Credentials;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// moto's default account: what requests land in when nothing says otherwise.
pub const DEFAULT_ACCOUNT: &str = "123456789012";
/// Per-test accounts are numbered from here (well away from moto's default).
const ACCOUNT_BASE: u64 = 200_000_000_000;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the launcher's stderr to keep for panic messages.
const LOG_LINES: usize = 60;

/// A fault the emulator returns instead of (or, for latency, before) the real response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `Throttling` (query protocols, HTTP 400) / `ThrottlingException` (JSON protocols).
    Throttle,
    /// HTTP 500 `InternalFailure`.
    Http500,
    /// `AccessDenied` (HTTP 403) / `AccessDeniedException` (HTTP 400).
    AccessDenied,
    /// The real response, delayed.
    Latency(Duration),
}

/// A running `tests/emulator/launcher.py`.
pub struct Emulator {
    port: u16,
    // Held, never written: the launcher exits when this pipe closes, i.e. when we do.
    child: Mutex<Child>,
    port_file: PathBuf,
    log: Arc<Mutex<VecDeque<String>>>,
    next_account: AtomicU64,
}

/// The emulator shared by all tests of the test binary, started on first use.
///
/// Statics are never dropped; the launcher notices the closed stdin pipe when the test
/// process exits and shuts itself down.
pub fn emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(Emulator::start)
}

impl Emulator {
    /// Starts a private emulator. Prefer the shared [`emulator()`]; this one is killed on drop.
    pub fn start() -> Emulator {
        Emulator::start_with(&[])
    }

    /// A private emulator that authorises requests made with moto-issued credentials against
    /// their policies (`--enforce`, tests/emulator/README.md); 12-digit keys stay unchecked.
    pub fn start_enforcing() -> Emulator {
        Emulator::start_with(&["--enforce"])
    }

    fn start_with(extra: &[&str]) -> Emulator {
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = std::env::var_os("DORMANT_TEST_PYTHON")
            .map_or_else(|| manifest_dir.join(".venv/bin/python"), PathBuf::from);
        assert!(
            python.exists(),
            "no Python for the AWS emulator at {} — run the project's test script, or create the \
             venv: `python3 -m venv .venv && .venv/bin/pip install -r tests/emulator/requirements.txt` \
             (or point DORMANT_TEST_PYTHON at a Python with those packages)",
            python.display()
        );
        let launcher = manifest_dir.join("tests/emulator/launcher.py");
        let port_file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "dormant-emulator-{}-{}.port",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_file(&port_file);

        let mut child = Command::new(&python)
            .arg(&launcher)
            .args(["--port", "0", "--port-file"])
            .arg(&port_file)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} {}: {e}",
                    python.display(),
                    launcher.display()
                )
            });
        // Drained by a thread, not a file: nothing to clean up after a run, and a full pipe
        // can never stall the emulator. Kept for panic messages; DORMANT_EMULATOR_LOG=1 echoes it.
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        let echo = std::env::var_os("DORMANT_EMULATOR_LOG").is_some_and(|v| v == "1");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    // Not eprintln!: libtest would file it under whichever test started us.
                    let _ = writeln!(std::io::stderr(), "[emulator] {line}");
                }
                let mut log = sink.lock().unwrap();
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        let mut emulator = Emulator {
            port: 0,
            child: Mutex::new(child),
            port_file,
            log,
            next_account: AtomicU64::new(0),
        };
        emulator.port = emulator.wait_until_ready();
        emulator
    }

    fn wait_until_ready(&self) -> u16 {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.lock().unwrap().try_wait().unwrap() {
                panic!(
                    "the AWS emulator exited during start-up ({status}):\n{}",
                    self.log_tail()
                );
            }
            let port = fs::read_to_string(&self.port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            if let Some(port) = port {
                if let Ok((200, _)) = http(port, "GET", "/_dormant/health", None) {
                    return port;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the AWS emulator did not start within {STARTUP_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines the launcher wrote to stderr (moto tracebacks, start-up errors).
    pub fn log_tail(&self) -> String {
        // Give the reader thread a moment to catch up with a process that just died.
        std::thread::sleep(Duration::from_millis(50));
        self.log
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, for `endpoint_url` or `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A fresh, unique 12-digit account id. Requests signed with it as the access key id land
    /// in that account (the launcher maps it to moto's `x-moto-account-id`).
    pub fn new_account(&self) -> String {
        (ACCOUNT_BASE + self.next_account.fetch_add(1, Ordering::Relaxed)).to_string()
    }

    /// Config for moto's default account, SDK retries off.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_for(DEFAULT_ACCOUNT).await
    }

    /// Config for `account`, SDK retries off (an error shows on the first attempt).
    pub async fn sdk_config_for(&self, account: &str) -> SdkConfig {
        self.sdk_config_with_retry(account, RetryConfig::disabled())
            .await
    }

    /// Config for `account` with the given retry policy, e.g.
    /// `RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(10))`.
    pub async fn sdk_config_with_retry(&self, account: &str, retry: RetryConfig) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .credentials_provider(Credentials::new(
                account,
                "dormant-test-secret",
                None,
                None,
                "dormant-test",
            ))
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .retry_config(retry)
            .load()
            .await
    }

    /// Sets a role's `CreateDate` and `RoleLastUsed.LastUsedDate`; `None` leaves a field as it is.
    pub fn backdate_role(
        &self,
        account: &str,
        role: &str,
        created: Option<DateTime<Utc>>,
        last_used: Option<DateTime<Utc>>,
    ) {
        self.backdate(
            json!({"account": account, "kind": "role", "name": role}),
            created,
            last_used,
        );
    }

    /// Sets a user's `CreateDate` and `PasswordLastUsed`; `None` leaves a field as it is.
    pub fn backdate_user(
        &self,
        account: &str,
        user: &str,
        created: Option<DateTime<Utc>>,
        password_last_used: Option<DateTime<Utc>>,
    ) {
        self.backdate(
            json!({"account": account, "kind": "user", "name": user}),
            created,
            password_last_used,
        );
    }

    /// Sets an access key's `CreateDate` and last-used date (service `iam`, region `us-east-1`).
    pub fn backdate_access_key(
        &self,
        account: &str,
        user: &str,
        key_id: &str,
        created: Option<DateTime<Utc>>,
        last_used: Option<DateTime<Utc>>,
    ) {
        let request =
            json!({"account": account, "kind": "access_key", "name": user, "key_id": key_id});
        self.backdate(request, created, last_used);
    }

    /// Sets a user's `PasswordLastUsed` (moto has no separate login-profile create date).
    pub fn backdate_password(&self, account: &str, user: &str, last_used: DateTime<Utc>) {
        self.backdate(
            json!({"account": account, "kind": "login_profile", "name": user}),
            None,
            Some(last_used),
        );
    }

    fn backdate(
        &self,
        mut request: Value,
        created: Option<DateTime<Utc>>,
        last_used: Option<DateTime<Utc>>,
    ) {
        let stamp = |t: DateTime<Utc>| json!(t.to_rfc3339_opts(SecondsFormat::Micros, true));
        if let Some(t) = created {
            request["created"] = stamp(t);
        }
        if let Some(t) = last_used {
            request["last_used"] = stamp(t);
        }
        if let Err((status, body)) = self.try_backdate(&request) {
            panic!("backdating {request} failed with HTTP {status}: {body}");
        }
    }

    /// The raw `POST /_dormant/iam/backdate` (body as in the README); `Err((status, body))` if
    /// the emulator refuses, e.g. 404 for an unknown role. `"last_used": null` clears the date.
    pub fn try_backdate(&self, request: &Value) -> Result<(), (u16, Value)> {
        match self.control("POST", "/_dormant/iam/backdate", Some(request)) {
            (200, _) => Ok(()),
            (status, body) => Err((status, body)),
        }
    }

    /// The next `count` requests from `account` for `operation` (e.g. `PutRolePolicy`,
    /// `"*"` for any) of `service` (the `SigV4` signing name: `iam`, `dynamodb`, `events`, `sts`,
    /// `ssm`, `sqs`, `securityhub`) get `fault`.
    pub fn inject_fault(
        &self,
        account: &str,
        service: &str,
        operation: &str,
        fault: Fault,
        count: u32,
    ) {
        self.inject_fault_on(account, service, operation, None, None, fault, count);
    }

    /// [`Emulator::inject_fault`] narrowed to requests naming `target` (an IAM `RoleName`,
    /// `UserName` or `AccessKeyId`, a DynamoDB item's `pk`) and, when given, DynamoDB items whose sort key starts
    /// with `sk`.
    #[allow(clippy::too_many_arguments)]
    pub fn inject_fault_on(
        &self,
        account: &str,
        service: &str,
        operation: &str,
        target: Option<&str>,
        sk: Option<&str>,
        fault: Fault,
        count: u32,
    ) {
        let mut request =
            json!({"account": account, "service": service, "operation": operation, "count": count});
        if let Some(t) = target {
            request["target"] = json!(t);
        }
        if let Some(k) = sk {
            request["sk"] = json!(k);
        }
        request["fault"] = json!(match fault {
            Fault::Throttle => "throttle",
            Fault::Http500 => "http500",
            Fault::AccessDenied => "access_denied",
            Fault::Latency(_) => "latency",
        });
        if let Fault::Latency(delay) = fault {
            request["latency_ms"] = json!(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        }
        self.expect_ok("POST", "/_dormant/faults", Some(&request));
    }

    /// Faults injected for `account` and not yet used up.
    pub fn faults(&self, account: &str) -> Vec<Value> {
        self.expect_list(&format!("/_dormant/faults?account={account}"))
    }

    /// Queues faults again as [`Emulator::faults`] listed them (in that order, with what was
    /// left of each): to set them aside while a test's own calls run.
    pub fn requeue_faults(&self, faults: &[Value]) {
        for f in faults {
            self.expect_ok("POST", "/_dormant/faults", Some(f));
        }
    }

    pub fn clear_faults(&self, account: &str) {
        self.expect_ok(
            "DELETE",
            &format!("/_dormant/faults?account={account}"),
            None,
        );
    }

    /// The AWS requests made from `account`, oldest first. Each entry has `account`, `service`,
    /// `operation`, `status`, `fault` (null or the fault kind) and, for IAM, whichever of
    /// `RoleName`, `UserName`, `AccessKeyId`, `PolicyName`, `PolicyArn` the request carried.
    pub fn requests(&self, account: &str) -> Vec<Value> {
        self.expect_list(&format!("/_dormant/requests?account={account}"))
    }

    /// How many requests `account` made for `operation` (faulted ones included).
    pub fn count_requests(&self, account: &str, operation: &str) -> usize {
        self.requests(account)
            .iter()
            .filter(|r| r["operation"] == operation)
            .count()
    }

    /// The most requests of `entries` (from [`Emulator::requests`]) in flight at one instant,
    /// counting those with the same `key` once; requests `key` maps to `None` are left out.
    /// E.g. keyed by account: how many accounts were being worked on at once.
    pub fn peak_in_flight(entries: &[Value], key: impl Fn(&Value) -> Option<String>) -> usize {
        let mut edges: Vec<(f64, bool, String)> = Vec::new();
        for e in entries {
            let (Some(start), Some(end), Some(k)) =
                (e["started"].as_f64(), e["ended"].as_f64(), key(e))
            else {
                continue;
            };
            edges.push((start, true, k.clone()));
            edges.push((end, false, k));
        }
        // At the same instant an answer leaves before the next request arrives.
        edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut open: std::collections::BTreeMap<String, usize> = Default::default();
        let mut peak = 0;
        for (_, starts, k) in edges {
            let n = open.entry(k.clone()).or_default();
            if starts {
                *n += 1;
            } else {
                *n -= 1;
                if *n == 0 {
                    open.remove(&k);
                }
            }
            peak = peak.max(open.len());
        }
        peak
    }

    pub fn clear_requests(&self, account: &str) {
        self.expect_ok(
            "DELETE",
            &format!("/_dormant/requests?account={account}"),
            None,
        );
    }

    /// Wipes all moto state, faults and the request log — of every account, so of every test
    /// running in parallel in this binary: only for tests that hold a lock of their own.
    pub fn reset(&self) {
        self.expect_ok("POST", "/_dormant/reset", None);
    }

    /// Any control endpoint: `(status, JSON body)`.
    pub fn control(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        http(self.port, method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path} on the emulator: {e}"))
    }

    fn expect_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        match self.control(method, path, body) {
            (200, out) => out,
            (status, out) => panic!("{method} {path} on the emulator: HTTP {status}: {out}"),
        }
    }

    fn expect_list(&self, path: &str) -> Vec<Value> {
        match self.expect_ok("GET", path, None) {
            Value::Array(items) => items,
            other => panic!("GET {path} on the emulator: expected a list, got {other}"),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let _ = fs::remove_file(&self.port_file);
    }
}

/// A minimal HTTP/1.1 exchange with the control endpoints (one request per connection).
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let bad = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{what}: {response:?}"),
        )
    };
    let (head, payload) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let value = if payload.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(payload).map_err(|_| bad("not JSON"))?
    };
    Ok((status, value))
}

impl Emulator {
    /// The SSM Automation executions started in `account` (the launcher records them; moto has
    /// none): `document`, `parameters`, `status`.
    pub fn automations(&self, account: &str) -> Vec<Value> {
        self.expect_list(&format!("/_dormant/automations?account={account}"))
    }

    /// What `GetAutomationExecution` answers from now on for `account`'s executions.
    pub fn set_automation_status(&self, account: &str, status: &str) {
        let (code, body) = self.control(
            "POST",
            "/_dormant/automations/status",
            Some(&json!({"account": account, "status": status})),
        );
        assert_eq!(code, 200, "{body}");
    }
}

/// One of IAM's request rate limits in the emulator: a token bucket of `burst` requests refilled
/// at `per_second` (tests/emulator/README.md, 'Rate limits').
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    pub fn new(per_second: f64, burst: f64) -> Self {
        Rate { per_second, burst }
    }

    fn json(rate: Option<Rate>) -> Value {
        rate.map_or(
            Value::Null,
            |r| json!({"rate": r.per_second, "burst": r.burst}),
        )
    }
}

impl Emulator {
    /// Throttles `account`'s IAM reads (`Get*`, `List*`, `Generate*`, `Simulate*`) and writes
    /// (everything else) like AWS, each class with its own bucket; `None` lifts that limit.
    pub fn set_iam_rates(&self, account: &str, read: Option<Rate>, write: Option<Rate>) {
        let body =
            json!({"account": account, "read": Rate::json(read), "write": Rate::json(write)});
        self.expect_ok("POST", "/_dormant/iam/rate", Some(&body));
    }

    /// Changes `account`'s IAM write rate `after` from now (the rate lowered in the middle of a
    /// run).
    pub fn set_iam_write_rate_after(&self, account: &str, write: Rate, after: Duration) {
        let body = json!({"account": account, "write": Rate::json(Some(write)),
                          "after_seconds": after.as_secs_f64()});
        self.expect_ok("POST", "/_dormant/iam/rate", Some(&body));
    }

    /// `account`'s IAM buckets: `{"read": {"rate", "burst", "allowed", "throttled"}, "write": …}`
    /// (a class without a limit is absent).
    pub fn iam_rates(&self, account: &str) -> Value {
        let all = self.expect_ok(
            "GET",
            &format!("/_dormant/iam/rate?account={account}"),
            None,
        );
        all["accounts"][account].clone()
    }
}
