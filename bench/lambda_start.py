"""Lambda cold start benchmark; `bench/lambda-start.sh` builds dormant-lambda, starts the emulator
and calls this. Not part of the tests. Standard library only.

A minimal fake Lambda Runtime API (the 2018-06-01 interface: `invocation/next`, `.../response`,
`.../error`, `init/error`) runs on a free loopback port. For each run the function process is
started against it, as Lambda would start it, with the AWS SDK pointed at the emulator:

- start-to-ready: from spawning the process to its first `GET /runtime/invocation/next`, i.e.
  after configuration, SDK set-up and the cold-start `sts:GetCallerIdentity`;
- first invocation: from answering that `next` with an EventBridge event that is classified and
  ignored (no IAM or DynamoDB call) to receiving the function's response;
- peak RSS: `VmHWM` of `/proc/<pid>/status`, read once the response has arrived.

The process is then killed (a real Lambda would freeze it in its next `next`). The peer is what a
user would otherwise deploy, a Python Lambda: a minimal runtime-API loop that imports boto3,
creates the clients dormant creates (sts, iam, dynamodb, events), does the same cold-start
GetCallerIdentity, then answers events. It is a lower bound for a real Python Lambda, which
also loads the AWS runtime interface client (awslambdaric) before the handler module.

Runs alternate between the two, after one untimed warm-up run of each (page cache).
"""

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PREFIX = "/2018-06-01/runtime"

PEER = r'''
import http.client, json, os
import boto3
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
clients = {name: boto3.client(name) for name in ("sts", "iam", "dynamodb", "events")}
clients["sts"].get_caller_identity()
IN_SCOPE = {"UnusedIAMRole", "UnusedIAMUserAccessKey", "UnusedIAMUserPassword"}

def handle(event):
    detail = event.get("detail") or {}
    if event.get("source") == "aws.access-analyzer" and detail.get("findingType") not in IN_SCOPE:
        return {"ignored": "finding type %s is out of scope" % detail.get("findingType")}
    return {"ignored": "nothing in the event concerns dormant"}

conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    rid, event = r.getheader("Lambda-Runtime-Aws-Request-Id"), json.loads(r.read())
    body = json.dumps(handle(event)).encode()
    conn.request("POST", "/2018-06-01/runtime/invocation/%s/response" % rid, body=body)
    conn.getresponse().read()
'''


class Run:
    """What the fake runtime API saw of one function process."""

    def __init__(self, event, account):
        self.event, self.account = event, account
        self.request_id = str(uuid.uuid4())
        self.t_ready = self.t_served = self.t_done = None
        self.outcome = None  # "response", "error" or "init_error"
        self.body = None
        self.ready = threading.Event()
        self.done = threading.Event()
        self.finished = threading.Event()  # the run is over: release a long-polling `next`
        self.lock = threading.Lock()


class RuntimeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    current = None  # the Run in progress, set by the driver

    def log_message(self, *args):
        pass

    def _reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self):
        now = time.monotonic()
        run = RuntimeApi.current
        if self.path != f"{PREFIX}/invocation/next" or run is None:
            return self._reply(404, b'{"errorType":"NotFound"}')
        with run.lock:
            first = run.t_ready is None
            if first:
                run.t_ready = now
        if not first:
            # Long poll, as Lambda does between invocations, until the run ends.
            run.finished.wait(120)
            self.close_connection = True
            return
        run.ready.set()
        body = json.dumps(run.event).encode()
        deadline = int(time.time() * 1000) + 900_000
        headers = [
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", run.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
            ("Lambda-Runtime-Invoked-Function-Arn",
             f"arn:aws:lambda:us-east-1:{run.account}:function:dormant"),
            ("Lambda-Runtime-Trace-Id",
             f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
             f"Parent={uuid.uuid4().hex[:16]};Sampled=0"),
        ]
        run.t_served = time.monotonic()
        self._reply(200, body, headers)

    def do_POST(self):
        now = time.monotonic()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        run = RuntimeApi.current
        path = self.path
        if run is None:
            return self._reply(404)
        if path == f"{PREFIX}/init/error":
            outcome = "init_error"
        elif path == f"{PREFIX}/invocation/{run.request_id}/response":
            outcome = "response"
        elif path == f"{PREFIX}/invocation/{run.request_id}/error":
            outcome = "error"
        else:
            return self._reply(404, b'{"errorType":"NotFound"}')
        with run.lock:
            if run.outcome is None:
                run.outcome, run.body, run.t_done = outcome, body, now
        self._reply(202, b'{"status":"OK"}', [("Content-Type", "application/json")])
        run.done.set()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A killed function drops its idle keep-alive connections: expected, not worth a trace.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def emulator_calls(endpoint, account, method="GET"):
    req = urllib.request.Request(f"{endpoint}/_dormant/requests?account={account}", method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


class InitFailed(Exception):
    pass


def measure(argv, env, event, account, endpoint, timeout):
    """One cold start: spawn, wait for `next`, serve the event, wait for the answer."""
    run = Run(event, account)
    RuntimeApi.current = run
    emulator_calls(endpoint, account, "DELETE")
    err = tempfile.TemporaryFile()
    t_spawn = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                            start_new_session=True)
    try:
        deadline = t_spawn + timeout
        while not run.ready.is_set() and not run.done.is_set():
            if proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                raise InitFailed(f"not ready within {timeout:.0f} s")
            run.ready.wait(0.005)
        if run.outcome == "init_error" or not run.ready.is_set():
            code = proc.poll()
            why = (f"reported an init error: {run.body.decode(errors='replace')}"
                   if run.outcome == "init_error" else f"exited with status {code} before ready")
            raise InitFailed(why + _tail(err))
        if not run.done.wait(max(0.0, deadline - time.monotonic()) + timeout):
            raise InitFailed(f"no response to the first invocation within {timeout:.0f} s"
                             + _tail(err))
        if run.outcome != "response":
            raise InitFailed(f"the first invocation failed ({run.outcome}): "
                             f"{run.body.decode(errors='replace')}" + _tail(err))
        rss = vm_hwm_kib(proc.pid)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        run.finished.set()
        RuntimeApi.current = None
        err.close()
    calls = emulator_calls(endpoint, account)
    return {
        "ready_ms": (run.t_ready - t_spawn) * 1000,
        "invoke_ms": (run.t_done - run.t_served) * 1000,
        "rss_mib": rss / 1024,
        "response": json.loads(run.body or b"null"),
        "calls": sorted(f"{c['service']}:{c['operation']}" for c in calls),
    }


def _tail(f, n=2000):
    f.seek(0)
    text = f.read().decode(errors="replace").strip()
    return f"\n--- its output (last {n} chars) ---\n{text[-n:]}" if text else " (no output)"


def pct(values, p):
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lambda-bin", required=True, help="path to dormant-lambda")
    ap.add_argument("--profile", default="debug", help="build profile, for the report")
    ap.add_argument("--endpoint", required=True, help="the emulator, http://127.0.0.1:PORT")
    ap.add_argument("--peer-python", default=sys.executable, help="python with boto3")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds, per wait")
    ap.add_argument("--event", default="tests/fixtures/events/access-analyzer-unused-permission.json")
    ap.add_argument("--config", default='{"table": "dormant-bench"}',
                    help="DORMANT_CONFIG (the Lambda reads its configuration as JSON)")
    args = ap.parse_args()
    endpoint = args.endpoint.rstrip("/")
    event = json.loads(Path(args.event).read_text())

    server = Server(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"127.0.0.1:{server.server_address[1]}"

    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DORMANT_"))}
    base.update({
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_FUNCTION_NAME": "dormant",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/dormant",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    tools = {
        # One account per tool, so each run's AWS calls can be read from the emulator's log.
        "dormant-lambda": ([os.path.abspath(args.lambda_bin)], "300000000001",
                           {"DORMANT_CONFIG": args.config, "DORMANT_LOG": "warn"}),
        "python+boto3": ([args.peer_python, "-c", PEER], "300000000002", {}),
    }
    results = {name: [] for name in tools}
    load = os.getloadavg()
    try:
        for i in range(args.runs + 1):  # run 0 is the warm-up
            for name, (argv, account, extra) in tools.items():
                env = dict(base, AWS_ACCESS_KEY_ID=account, **extra)
                r = measure(argv, env, event, account, endpoint, args.timeout)
                if i > 0:
                    results[name].append(r)
                print(f"  {'warm-up' if i == 0 else f'run {i}'}: {name:15} "
                      f"ready {r['ready_ms']:7.1f} ms  invoke {r['invoke_ms']:6.2f} ms  "
                      f"RSS {r['rss_mib']:6.1f} MiB  calls {','.join(r['calls']) or '-'}",
                      file=sys.stderr)
    except InitFailed as e:
        print(f"error: {name} {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        server.shutdown()

    d = results["dormant-lambda"][0]
    print(f"\ndormant-lambda ({args.profile} build), {args.runs} cold starts each, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} before the runs, "
          f"event {Path(args.event).name}")
    print(f"  its response: {json.dumps(d['response'])}")
    print(f"  its AWS calls per cold start + invocation: {', '.join(d['calls']) or 'none'}")
    print()
    metrics = [("start-to-ready (ms)", "ready_ms", "{:.1f}"),
               ("first invocation (ms)", "invoke_ms", "{:.2f}"),
               ("peak RSS (MiB)", "rss_mib", "{:.1f}")]
    head = f"| {'metric':24} | {'tool':15} | {'median':>8} | {'p90':>8} | {'min':>8} |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for label, key, fmt in metrics:
        for name in tools:
            v = [r[key] for r in results[name]]
            cells = [fmt.format(x) for x in (statistics.median(v), pct(v, 90), min(v))]
            print(f"| {label:24} | {name:15} | {cells[0]:>8} | {cells[1]:>8} | {cells[2]:>8} |")
    print()
    for label, key, _ in metrics:
        a = statistics.median(r[key] for r in results["dormant-lambda"])
        b = statistics.median(r[key] for r in results["python+boto3"])
        print(f"  {label:24} dormant-lambda / python+boto3 (medians) = {a / b:.2f}x")


if __name__ == "__main__":
    main()
