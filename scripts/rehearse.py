"""Deployment rehearsal: the Lambda zip, configured exactly as the synthesized DormantStack
template configures it, answers the events the stack's rules deliver, against the emulator.

Run by scripts/rehearse (which builds or zips the binary, synthesizes the template and starts nothing
itself). Steps:
1. the emulator (tests/emulator/launcher.py) on a free loopback port;
2. the resources the function's environment refers to (table, queues, roles, ...) created in it
   from their template properties, named as CloudFormation names them, and every Ref / Fn::GetAtt
   / Fn::Join / Fn::Sub of the environment resolved to them;
3. the zip's `bootstrap`, started with that environment and nothing else from this shell but the
   emulator's endpoint and credentials (as Lambda passes the role's), under a Lambda Runtime API
   served here on loopback with Lambda's real deadline (now + the function's Timeout; cargo lambda
   watch's emulator sends a fixed 1970 deadline, which dormant rightly treats as no time left);
4. one invocation per event source, each event built the way its rule delivers it (the schedule
   rules' input transformers applied to a raw scheduled event; the finding fixtures of
   tests/fixtures/events pointed at seeded identities and checked against the rule's pattern),
   and the state it must leave read back from the emulator (IAM tags, DynamoDB audit entries, the
   sweep queue, Security Hub findings). One line per event; the first failure stops the run;
5. the answers function (the template's second function, `DORMANT_FUNCTION=answers`, the same
   zip) started the same way: a signed link (minted with the key the template's secret holds)
   opened (GET) and answered (POST Keep) through function-URL requests, the exemption read back
   from IAM; then the answers function must fail a tick and the controller a link.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "events"
RAW_SCHEDULED = ROOT / "cdk" / "test" / "events" / "scheduled-event-raw.json"
ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "DormantStack"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
    "Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
INVOKE_TIMEOUT_S = 300  # one invocation; the function's own deadline is the template's Timeout


class Failed(Exception):
    pass


def iso(t):
    return t.isoformat().replace("+00:00", "Z")


def ago(days):
    return iso(NOW - timedelta(days=days))


# ---------------------------------------------------------------- the template's intrinsics ----

class Stack:
    """Creates, on first reference, the emulator resource behind a logical id, and resolves the
    intrinsic functions CloudFormation would resolve against it."""

    def __init__(self, template, sdk):
        self.template = template
        self.resources = template["Resources"]
        self.sdk = sdk
        self.made = {}  # logical id -> {"Ref": ..., attribute: ...}

    def pseudo(self, name):
        return {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": STACK,
                "AWS::NoValue": None}.get(name)

    def resolve(self, v):
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, a), = v.items()
            if k == "Ref":
                return self.ref(a)
            if k == "Fn::GetAtt":
                lid, attr = a if isinstance(a, list) else a.split(".", 1)
                return self.attr(lid, attr)
            if k == "Fn::Join":
                sep, items = a
                return sep.join(str(x) for x in self.resolve(items))
            if k == "Fn::Sub":
                text, names = (a, {}) if isinstance(a, str) else (a[0], self.resolve(a[1]))
                return self.sub(text, names)
            if k == "Fn::Select":
                return self.resolve(a[1])[int(self.resolve(a[0]))]
            if k == "Fn::Split":
                sep, text = a
                return str(self.resolve(text)).split(sep)
            if k.startswith("Fn::"):
                raise Failed(f"the rehearsal cannot resolve {k} (add it to scripts/rehearse.py)")
        return {k: self.resolve(x) for k, x in v.items()}

    def sub(self, text, names):
        out, i = [], 0
        while True:
            j = text.find("${", i)
            if j < 0:
                return "".join(out) + text[i:]
            end = text.index("}", j)
            out.append(text[i:j])
            name = text[j + 2:end]
            if name.startswith("!"):
                out.append("${" + name[1:] + "}")
            elif name in names:
                out.append(str(names[name]))
            elif "." in name:
                out.append(str(self.attr(*name.split(".", 1))))
            else:
                out.append(str(self.ref(name)))
            i = end + 1

    def ref(self, name):
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.template.get("Parameters", {}):
            raise Failed(f"the function's environment refers to the parameter {name}")
        return self.make(name)["Ref"]

    def attr(self, lid, attr):
        made = self.make(lid)
        if attr not in made:
            raise Failed(f"{lid}: the rehearsal has no {attr} for {self.resources[lid]['Type']}")
        return made[attr]

    def physical(self, lid):
        # CloudFormation's generated names: stack-logicalid-RANDOM.
        return f"{STACK}-{lid}-{uuid.uuid4().hex[:12].upper()}"

    def make(self, lid):
        if lid in self.made:
            return self.made[lid]
        if lid not in self.resources:
            raise Failed(f"the template has no resource {lid}")
        res = self.resources[lid]
        props = self.resolve(res.get("Properties", {}))
        kind = res["Type"]
        if kind == "AWS::DynamoDB::Table":
            name = props.get("TableName") or self.physical(lid)
            args = {k: props[k] for k in ("KeySchema", "AttributeDefinitions", "BillingMode",
                                         "GlobalSecondaryIndexes") if k in props}
            ddb = self.sdk("dynamodb")
            arn = ddb.create_table(TableName=name, **args)["TableDescription"]["TableArn"]
            ttl = props.get("TimeToLiveSpecification")
            if ttl:
                ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
            made = {"Ref": name, "Arn": arn}
        elif kind == "AWS::SQS::Queue":
            name = props.get("QueueName") or self.physical(lid)
            attrs = {}
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds"):
                if key in props:
                    attrs[key] = str(props[key])
            if "RedrivePolicy" in props:
                attrs["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
            sqs = self.sdk("sqs")
            url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            made = {"Ref": url, "QueueUrl": url, "Arn": arn, "QueueName": name}
        elif kind == "AWS::IAM::Role":
            name = props.get("RoleName") or self.physical(lid)[:64]
            role = self.sdk("iam").create_role(
                RoleName=name, Path=props.get("Path", "/"),
                AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))["Role"]
            made = {"Ref": name, "Arn": role["Arn"], "RoleId": role["RoleId"]}
        elif kind == "AWS::IAM::ManagedPolicy":
            name = props.get("ManagedPolicyName") or self.physical(lid)
            arn = self.sdk("iam").create_policy(
                PolicyName=name, Path=props.get("Path", "/"),
                PolicyDocument=json.dumps(props["PolicyDocument"]))["Policy"]["Arn"]
            made = {"Ref": arn}
        elif kind == "AWS::Logs::LogGroup":
            made = {"Ref": props.get("LogGroupName") or self.physical(lid)}
        elif kind == "AWS::SecretsManager::Secret":
            # CloudFormation's generated name has one `-` (CDK's secretName parse relies on it);
            # the value as GenerateSecretString would make it (letters and digits).
            name = props.get("Name") or f"{lid}-{uuid.uuid4().hex[:12]}"
            length = props.get("GenerateSecretString", {}).get("PasswordLength", 32)
            value = "".join(uuid.uuid4().hex for _ in range(length // 32 + 1))[:length]
            arn = self.sdk("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
            made = {"Ref": arn, "Id": arn, "Value": value}
        else:
            raise Failed(f"the function's environment refers to {lid} ({kind}), which the "
                         "rehearsal cannot create yet (add it to scripts/rehearse.py)")
        self.made[lid] = made
        return made


# -------------------------------------------------------------------- the Lambda Runtime API ----

class RuntimeApi:
    """Lambda's Runtime API on loopback, one function instance: an invocation waits in `pending`
    until the runtime asks for the next one, its answer comes back through `answers`."""

    def __init__(self, function_arn, timeout_s):
        self.pending = queue.Queue()
        self.answers = {}
        self.cond = threading.Condition()
        self.init_error = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    return self.reply(404)
                request_id, event = api.pending.get()
                deadline_ms = int((time.time() + timeout_s) * 1000)
                self.reply(200, json.dumps(event).encode(), [
                    ("Lambda-Runtime-Aws-Request-Id", request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
                    ("Lambda-Runtime-Invoked-Function-Arn", function_arn),
                    ("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"),
                    ("Content-Type", "application/json")])

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.strip("/").split("/")
                with api.cond:
                    if parts[-2:] == ["init", "error"]:
                        api.init_error = body.decode(errors="replace")
                    elif parts[-1] in ("response", "error") and len(parts) >= 2:
                        api.answers[parts[-2]] = (parts[-1], body.decode(errors="replace"))
                    else:
                        return self.reply(404)
                    api.cond.notify_all()
                self.reply(202, b'{"status":"OK"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(self, event, process):
        request_id = str(uuid.uuid4())
        self.pending.put((request_id, event))
        give_up = time.monotonic() + INVOKE_TIMEOUT_S
        with self.cond:
            while request_id not in self.answers:
                if self.init_error is not None:
                    raise Failed(f"the function failed to start: {self.init_error}")
                if process.poll() is not None:
                    raise Failed(f"the function exited ({process.returncode})")
                if time.monotonic() > give_up:
                    raise Failed(f"no answer within {INVOKE_TIMEOUT_S}s")
                self.cond.wait(0.5)
            kind, body = self.answers.pop(request_id)
        if kind == "error":
            raise Failed(f"the invocation failed: {body}")
        return json.loads(body) if body else None

    def close(self):
        self.server.shutdown()


# ------------------------------------------------------------------------ EventBridge rules ----

def matches(pattern, event):
    """EventBridge's matching for the operators the stack's patterns use."""
    for key, want in pattern.items():
        if key == "$or":
            if not any(matches(p, event) for p in want):
                return False
            continue
        have = event.get(key) if isinstance(event, dict) else None
        if isinstance(want, dict):
            if not isinstance(have, (dict, list)) or not (
                    any(matches(want, h) for h in have) if isinstance(have, list)
                    else matches(want, have)):
                return False
            continue
        values = have if isinstance(have, list) else [have]
        if not any(value_matches(w, v) for w in want for v in values):
            return False
    return True


def value_matches(w, v):
    if not isinstance(w, dict):
        return w == v
    (op, arg), = w.items()
    if op == "exists":
        return (v is not None) == arg
    if op == "prefix":
        if isinstance(arg, dict):  # {"prefix": {"equals-ignore-case": "..."}}
            return isinstance(v, str) and v.lower().startswith(arg["equals-ignore-case"].lower())
        return isinstance(v, str) and v.startswith(arg)
    if op == "anything-but":
        return v is not None and not (v in arg if isinstance(arg, list) else
                                      value_matches(arg, v) if isinstance(arg, dict) else v == arg)
    if op == "equals-ignore-case":
        return isinstance(v, str) and v.lower() == arg.lower()
    raise Failed(f"the rehearsal's pattern matcher has no {op!r}")


def rule_for(template, event):
    """The logical id of the one rule whose pattern matches `event`."""
    hits = [lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::Events::Rule"
            and "EventPattern" in r["Properties"] and matches(r["Properties"]["EventPattern"], event)]
    if len(hits) != 1:
        raise Failed(f"event {event['id']} matches {len(hits)} rules of the stack: {hits}")
    return hits[0]


def scheduled(template, lid):
    """What the schedule rule `lid` delivers: its input transformer over a raw scheduled event."""
    raw = json.loads(RAW_SCHEDULED.read_text())
    raw.update(id=str(uuid.uuid4()), account=ACCOUNT, region=REGION, time=iso(NOW),
               resources=[f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{STACK}-{lid}-REHEARSAL"])
    (target,) = template["Resources"][lid]["Properties"]["Targets"]
    transformer = target["InputTransformer"]
    text = transformer["InputTemplate"]
    for name, path in transformer["InputPathsMap"].items():
        value = raw
        for part in path.removeprefix("$.").split("."):
            value = value[part]
        text = text.replace(f"<{name}>", json.dumps(value))
    return json.loads(text)


def fixture(name, event_id):
    e = json.loads((FIXTURES / name).read_text())
    e.update(id=event_id, account=ACCOUNT, region=REGION, time=iso(NOW))
    return e


# -------------------------------------------------------------------------------- the run ----

def main():
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", required=True)
    ap.add_argument("--zip", required=True, help="an x86_64 Lambda zip (bootstrap inside): the release or the debug build")
    ap.add_argument("--python", default=sys.executable, help="runs the emulator")
    args = ap.parse_args()
    template = json.loads(Path(args.template).read_text())
    started, failed = [], True
    work = Path(tempfile.mkdtemp(prefix="dormant-rehearse-"))
    try:
        rc = run(template, args, work, started)
        failed = rc != 0
        return rc
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        log = work / "function.log"
        if log.exists():
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print("the function's last log lines:\n  " + "\n  ".join(tail), file=sys.stderr)
        return 1
    finally:
        for p in reversed(started):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        if failed:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(template, args, work, started):
    t0 = time.monotonic()
    # 1. The emulator.
    port_file = work / "emulator.port"
    emulator = subprocess.Popen(
        [args.python, str(ROOT / "tests/emulator/launcher.py"), "--port", "0",
         "--port-file", str(port_file), "--idle-exit", "900"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=open(work / "emulator.log", "w"))
    started.append(emulator)
    for _ in range(300):
        if port_file.exists() and port_file.read_text().strip():
            break
        if emulator.poll() is not None:
            raise Failed(f"the emulator exited: {(work / 'emulator.log').read_text()[-2000:]}")
        time.sleep(0.1)
    else:
        raise Failed("the emulator did not start within 30s")
    endpoint = f"http://127.0.0.1:{port_file.read_text().strip()}"
    creds = {"AWS_ACCESS_KEY_ID": ACCOUNT, "AWS_SECRET_ACCESS_KEY": "rehearsal",
             "AWS_SESSION_TOKEN": "rehearsal"}
    session = boto3.session.Session(aws_access_key_id=ACCOUNT, aws_secret_access_key="rehearsal",
                                    region_name=REGION)

    def sdk(service):
        return session.client(service, endpoint_url=endpoint)

    # 2. The function's environment, resolved against resources made from the template. With
    # owners' answers the template has a second function, the same zip: the answers function.
    functions = {lid: r["Properties"] for lid, r in template["Resources"].items()
                 if r["Type"] == "AWS::Lambda::Function"}
    role_of = {lid: p.get("Environment", {}).get("Variables", {}).get("DORMANT_FUNCTION", "controller")
               for lid, p in functions.items()}
    (fn_id,) = [lid for lid, r in role_of.items() if r == "controller"]
    answers_ids = [lid for lid, r in role_of.items() if r == "answers"]
    if not answers_ids:
        raise Failed("the template has no answers function: synthesize with -c answers=true")
    fn = functions[fn_id]
    stack = Stack(template, sdk)
    variables = stack.resolve(fn.get("Environment", {}).get("Variables", {}))
    # (The quarantine policy the stack deploys is created by the emulator in every account.)
    config = json.loads(variables["DORMANT_CONFIG"])
    table = config["table"]
    queue_url = variables.get("DORMANT_SWEEP_QUEUE_URL")
    if not queue_url:
        raise Failed("the template has no sweep queue: synthesize with -c sweepFanOut=true")
    print(f"environment: {', '.join(sorted(variables))} (table {table}, sweep queue "
          f"{queue_url.rsplit('/', 1)[-1]}, from {len(stack.made)} resources of the template)")

    # Identities, one per event source, each unused for long enough to be dormant.
    iam = sdk("iam")

    def backdate(**body):
        body["account"] = ACCOUNT
        req = urllib.request.Request(f"{endpoint}/_dormant/iam/backdate",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()

    def role(name, used=None):
        r = iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)["Role"]
        backdate(kind="role", name=name, created=ago(300), last_used=ago(used) if used else None)
        return r

    def user(name):
        u = iam.create_user(UserName=name)["User"]
        backdate(kind="user", name=name, created=ago(300))
        key = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
        backdate(kind="access_key", name=name, key_id=key, created=ago(300), last_used=ago(200))
        return u

    config_role = role("rehearsal-config-role")
    analyzer_role = role("rehearsal-analyzer-role")
    hub_user = user("rehearsal-hub-user")
    sweep_role = role("rehearsal-swept-role")
    role("rehearsal-busy-role", used=1)

    # 3. The zip's bootstrap under the Runtime API, with Lambda's environment.
    bootstrap_dir = work / "task"
    with zipfile.ZipFile(args.zip) as z:
        z.extractall(bootstrap_dir)
    bootstrap = bootstrap_dir / "bootstrap"
    bootstrap.chmod(0o755)

    def start(fn_id, fn, variables, log_name):
        name = fn.get("FunctionName") or stack.physical(fn_id)
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        api = RuntimeApi(arn, int(fn.get("Timeout", 3)))
        env = lambda_env(fn, name, variables, api)
        process = subprocess.Popen([str(bootstrap)], cwd=bootstrap_dir, env=env,
                                   stdin=subprocess.DEVNULL, stdout=open(work / log_name, "w"),
                                   stderr=subprocess.STDOUT)
        started.append(process)
        print(f"function: {name} ({fn.get('Runtime')}, {fn.get('MemorySize')} MB, timeout "
              f"{fn.get('Timeout')}s), bootstrap {bootstrap.stat().st_size / 1e6:.1f} MB, "
              f"Runtime API {api.address}")
        return api, process

    def lambda_env(fn, name, variables, api):
        log_group = stack.resolve(fn.get("LoggingConfig", {}).get("LogGroup")) or f"/aws/lambda/{name}"
        return {
            **variables,
            # What Lambda sets for a provided.al2023 function (the execution role's credentials here
            # are the emulator's account; the endpoint is the one variable Lambda would not set).
            "AWS_LAMBDA_RUNTIME_API": f"http://{api.address}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.get("MemorySize", 128)),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{NOW:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
            "LAMBDA_TASK_ROOT": str(bootstrap_dir), "LAMBDA_RUNTIME_DIR": str(bootstrap_dir),
            "TZ": ":UTC", "LANG": "en_US.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin",
            **creds,
            "AWS_ENDPOINT_URL": endpoint,
        }

    api, process = start(fn_id, fn, variables, "function.log")

    ddb, hub = sdk("dynamodb"), sdk("securityhub")

    def audit(arn_, event_id):
        """The audit entries for `event_id` of the identity `arn_` and its credentials (items
        under `ID#<account>#<arn>[/key/<id>|/password]`)."""
        prefix = f"ID#{ACCOUNT}#{arn_}"
        items, start = [], None
        while True:
            page = ddb.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        out = []
        for it in items:
            pk = it["pk"]["S"]
            if (pk == prefix or pk.startswith(prefix + "/")) and it.get("kind", {}).get("S") == "audit":
                entry = json.loads(it["entry"]["S"])
                if event_id is None or entry.get("event_id") == event_id:
                    out.append(entry)
        return out

    def stage_tag(kind, name_):
        tags = (iam.list_role_tags(RoleName=name_) if kind == "role"
                else iam.list_user_tags(UserName=name_))["Tags"]
        return {t["Key"]: t["Value"] for t in tags}.get("dormant:stage")

    def noticed(kind, ident, event_id):
        name_ = ident["RoleName" if kind == "role" else "UserName"]
        tag = stage_tag(kind, name_)
        if not (tag or "").startswith("noticed"):
            raise Failed(f"{kind} {name_}: dormant:stage is {tag!r}, want 'noticed ...'")
        entries = [e for e in audit(ident["Arn"], event_id)
                   if e["step"] == "notice" and e["outcome"] == "done"]
        if len(entries) != 1:
            raise Failed(f"{kind} {name_}: {len(entries)} notice audit entries for {event_id}")
        return f"{kind} {name_} noticed (tag {tag!r}, audit entry for {event_id or 'the run'})"

    log_seen = [0]

    def warnings():
        """The function's WARN/ERROR log lines since the last call, one per distinct message."""
        lines = (work / "function.log").read_text(errors="replace").splitlines()
        new, log_seen[0] = lines[log_seen[0]:], len(lines)
        out = {}
        for line in new:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("level") in ("WARN", "ERROR"):
                f = rec.get("fields", {})
                out.setdefault(f.get("message"), f.get("error") or f.get("operation") or "")
        return out

    def step(label, event, check):
        t = time.monotonic()
        rule = event.pop("_rule")
        answer = api.invoke(event, process)
        result = check(answer)
        print(f"ok  {label:<26} {rule:<34} {time.monotonic() - t:5.1f}s  {result}")
        for message, detail in warnings().items():
            print(f"      function warned: {message} ({detail[:110]})")

    events = []

    # Config: NON_COMPLIANT on the role, by unique id (AROA...) as Config reports it. (The user
    # fixture's AIDA id would not do: moto gives users no AIDA-form UserId.)
    e = fixture("config-role-noncompliant-aroa.json", "rehearsal-config")
    uid = config_role["RoleId"]
    e["detail"].update(resourceId=uid, awsAccountId=ACCOUNT, awsRegion=REGION)
    for which in ("newEvaluationResult", "oldEvaluationResult"):
        e["detail"][which]["evaluationResultIdentifier"]["evaluationResultQualifier"][
            "resourceId"] = uid
    events.append(("Config compliance change", e,
                   lambda a: noticed("role", config_role, "rehearsal-config")))

    # Access Analyzer: an unused role.
    e = fixture("access-analyzer-unused-role.json", "rehearsal-analyzer")
    e["detail"].update(resource=analyzer_role["Arn"], accountId=ACCOUNT)
    e["resources"] = [f"arn:aws:access-analyzer:{REGION}:{ACCOUNT}:analyzer/UnusedAccess"]
    events.append(("Access Analyzer finding", e,
                   lambda a: noticed("role", analyzer_role, "rehearsal-analyzer")))

    # Security Hub: IAM.8 on the user (the finding also exists in Security Hub, as it would).
    e = fixture("securityhub-iam8-user.json", "rehearsal-hub")
    f = e["detail"]["findings"][0]
    text = json.dumps(f).replace("111122223333", ACCOUNT).replace(
        "arn:aws:iam::" + ACCOUNT + ":user/sharrtest", hub_user["Arn"]).replace(
        "sharrtest", hub_user["UserName"]).replace("AIDACKCEVSQ6C2EXAMPLE", hub_user["UserId"])
    f = json.loads(text)
    e["detail"]["findings"] = [f]
    e["resources"] = [json.loads(json.dumps(r).replace("111122223333", ACCOUNT))
                      for r in e["resources"]]
    hub.batch_import_findings(Findings=[f])
    events.append(("Security Hub finding", e, lambda a: noticed("user", hub_user, "rehearsal-hub")))

    # CloudTrail TagRole: the analyzer role's owner exempts it (the tags are on the role, as the
    # event reports); the event releases it from the ladder.
    until = (NOW + timedelta(days=30)).date().isoformat()
    e = fixture("cloudtrail-tagrole-dormant-exempt.json", "rehearsal-tagrole")
    tags = [{"key": "dormant:exempt", "value": "true"}, {"key": "dormant:exempt-until", "value": until},
            {"key": "dormant:exempt-reason", "value": "deployment rehearsal"}]
    e["detail"].update(requestParameters={"roleName": analyzer_role["RoleName"], "tags": tags},
                       recipientAccountId=ACCOUNT, awsRegion=REGION, eventTime=iso(NOW))

    def tag_first():
        iam.tag_role(RoleName=analyzer_role["RoleName"],
                     Tags=[{"Key": t["key"], "Value": t["value"]} for t in tags])

    def exempted(a):
        tag = stage_tag("role", analyzer_role["RoleName"])
        if tag is not None:
            raise Failed(f"role {analyzer_role['RoleName']}: dormant:stage still {tag!r} after the exemption")
        entries = audit(analyzer_role["Arn"], "rehearsal-tagrole")
        if not entries:
            raise Failed("no audit entry for the TagRole event")
        return (f"role {analyzer_role['RoleName']} released to exempt "
                f"({', '.join(x['step'] + ' ' + x['outcome'] for x in entries)})")

    events.append(("CloudTrail TagRole", e, exempted, tag_first))

    # The daily sweep (fan-out): one request per account on the sweep queue.
    sqs = sdk("sqs")
    sweep_event = scheduled(template, lid_of(template, "SweepSchedule"))
    queued = []

    def swept_to_queue(a):
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                  AttributeNames=["All"], MessageAttributeNames=["All"])
        queued.extend(got.get("Messages", []))
        if len(queued) != 1:
            raise Failed(f"the sweep queued {len(queued)} requests, want 1 (one account): {a}")
        if stage_tag("role", sweep_role["RoleName"]) is not None:
            raise Failed("the fanned-out sweep swept the account itself")
        return f"1 sweep request queued ({queued[0]['Body'][:60]}...)"

    events.append(("scheduled sweep", sweep_event, swept_to_queue))

    # The queue's batch, as the event source mapping delivers it.
    def sqs_batch():
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        return {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {
                k: {"stringValue": v.get("StringValue"), "binaryValue": None,
                    "stringListValues": [], "binaryListValues": [], "dataType": v["DataType"]}
                for k, v in m.get("MessageAttributes", {}).items()},
            "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
            "awsRegion": REGION} for m in queued]}

    def batch_swept(a):
        if a != {"batchItemFailures": []}:
            raise Failed(f"batch answer {a}")
        for m in queued:  # what the event source mapping does with a successful batch
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        done = noticed("role", sweep_role, None)
        for kind, ident, event_id in (("role", config_role, "rehearsal-config"),
                                      ("user", hub_user, "rehearsal-hub")):
            noticed(kind, ident, event_id)  # still one notice each: the sweep did not repeat it
        if stage_tag("role", "rehearsal-busy-role") is not None:
            raise Failed("the busy role was tagged")
        if stage_tag("role", analyzer_role["RoleName"]) is not None:
            raise Failed("the exempt role was tagged again")
        return f"no failures; {done}; busy and exempt roles untouched"

    events.append(("SQS fan-out batch", None, batch_swept))

    tick_event = scheduled(template, lid_of(template, "TickSchedule"))

    def ticked(a):
        for kind, ident in (("role", config_role), ("user", hub_user), ("role", sweep_role)):
            n = ident["RoleName" if kind == "role" else "UserName"]
            if not (stage_tag(kind, n) or "").startswith("noticed"):
                raise Failed(f"{kind} {n} moved on at the tick, before its quarantine is due")
        return "nothing due yet: the noticed identities stay noticed"

    events.append(("scheduled tick", tick_event, ticked))

    # Security Hub: dormant's own finding for a noticed identity.
    def hub_imported(a):
        found = hub.get_findings(MaxResults=100)["Findings"]
        mine = {f["Id"]: f for f in found if f["ProductArn"] != "arn:aws:securityhub:us-east-1::product/aws/securityhub"}
        about = {arn_: [f for f in mine.values() if any(r["Id"] == arn_ for r in f["Resources"])]
                 for arn_ in (config_role["Arn"], hub_user["Arn"], sweep_role["Arn"])}
        missing = [arn_ for arn_, fs in about.items() if not fs]
        if missing:
            raise Failed(f"no dormant finding in Security Hub for {missing}; {len(mine)} in all")
        return (f"dormant's findings imported for the 3 noticed identities "
                f"({len(mine)} of dormant's in all)")

    print(f"emulator {endpoint}; 5 identities seeded; {time.monotonic() - t0:.1f}s")
    for label, event, check, *before in events:
        for b in before:
            b()
        if event is None:
            event = sqs_batch()
            event["_rule"] = f"SQS {queue_url.rsplit('/', 1)[-1][:30]}"
        elif "_rule" not in event:
            rule = (lid_of(template, "SweepSchedule") if event is sweep_event else
                    lid_of(template, "TickSchedule") if event is tick_event else
                    rule_for(template, event))
            event["_rule"] = rule
        step(label, event, check)
    print(f"ok  {'Security Hub':<26} {'(read back)':<34} {'':>6}  {hub_imported(None)}")
    answered = answers(template, functions, answers_ids[0], config, stack, start, api, process,
                       tick_event, config_role, stage_tag, iam)
    print(f"rehearsal passed: {len(events) + answered} invocations, {time.monotonic() - t0:.1f}s. The "
          "emulator has no Access Analyzer GetFindingV2 nor Security Hub BatchUpdateFindings: "
          "warnings about those are expected here")
    return 0


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def link_token(key, claims):
    """A signed answer link's token (src/domain/answer/token.rs `sign`): base64url of the claims'
    JSON, `.`, base64url of its HMAC-SHA-256 under the key."""
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    tag = hmac.new(key.encode(), body.encode(), hashlib.sha256).digest()
    return f"{body}.{b64url(tag)}"


def url_event(method, query="", body=""):
    """A function URL request as Lambda delivers it (API Gateway v2 payload)."""
    return {"version": "2.0", "routeKey": "$default", "rawPath": "/answer", "rawQueryString": query,
            "headers": {"content-type": "application/x-www-form-urlencoded", "host": "answers.example"},
            "requestContext": {"requestId": str(uuid.uuid4()), "http": {
                "method": method, "path": "/answer", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1"}},
            "body": body, "isBase64Encoded": False}


def answers(template, functions, answers_id, config, stack, start, api, process, tick_event,
            role, stage_tag, iam):
    """The answers function (the same zip, `DORMANT_FUNCTION=answers`) serves an owner's link,
    page and Keep; it refuses the tick and the controller refuses the link. Returns the count of
    invocations."""
    fn = functions[answers_id]
    variables = stack.resolve(fn.get("Environment", {}).get("Variables", {}))
    if json.loads(variables["DORMANT_CONFIG"]) != config:
        raise Failed("the answers function's configuration is not the controller's")
    (key,) = [m["Value"] for m in stack.made.values() if "Value" in m]
    aapi, aprocess = start(answers_id, fn, variables, "answers.log")
    claims = {"a": "keep", "s": role["Arn"], "u": role["RoleId"], "g": "noticed",
              "r": "owner@example.com", "e": int((NOW + timedelta(days=7)).timestamp()),
              "t": "rehearsal-keep"}
    token = link_token(key, claims)

    def refused(who, a, event, process_, want):
        try:
            got = a.invoke(event, process_)
        except Failed as e:
            if want not in str(e):
                raise Failed(f"{who} refused, but not saying {want!r}: {e}")
            return
        raise Failed(f"{who} answered what it must refuse: {str(got)[:200]}")

    steps = [
        ("answer link GET", lambda: aapi.invoke(url_event("GET", f"t={token}"), aprocess),
         lambda a: (a["statusCode"] == 200 and role["RoleName"] in a["body"]
                    and "content-security-policy" in a["headers"]) or
         Failed(f"the page: {str(a)[:300]}")),
        ("answer link POST Keep", lambda: aapi.invoke(url_event(
            "POST", body=f"t={token}&action=keep&reason=rehearsal"), aprocess),
         lambda a: a["statusCode"] == 200 or Failed(f"Keep: {str(a)[:300]}")),
    ]
    for label, call, ok in steps:
        t = time.monotonic()
        a = call()
        verdict = ok(a)
        if isinstance(verdict, Failed):
            raise verdict
        print(f"ok  {label:<26} {'function URL ' + answers_id[:21]:<34} {time.monotonic() - t:5.1f}s  "
              f"{a['statusCode']} {a['headers'].get('content-type')}")
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role["RoleName"])["Tags"]}
    if tags.get("dormant:exempt") != "true" or stage_tag("role", role["RoleName"]) is not None:
        raise Failed(f"after Keep, role {role['RoleName']} has tags {tags}")
    print(f"ok  {'Keep (read back)':<26} {'(IAM)':<34} {'':>6}  role {role['RoleName']} "
          f"exempted by its owner, released (tags {sorted(tags)})")
    t = time.monotonic()
    tick = {k: v for k, v in tick_event.items() if k != "_rule"}
    refused("the answers function", aapi, tick, aprocess, "does not serve it")
    refused("the controller", api, url_event("GET", f"t={token}"), process, "function-URL request")
    print(f"ok  {'each refuses the other':<26} {'tick / function URL':<34} {time.monotonic() - t:5.1f}s  "
          "the answers function failed the tick, the controller the link")
    return 4


def lid_of(template, prefix):
    (lid,) = [k for k in template["Resources"] if k.startswith(prefix)
              and template["Resources"][k]["Type"] == "AWS::Events::Rule"]
    return lid


if __name__ == "__main__":
    sys.exit(main())
