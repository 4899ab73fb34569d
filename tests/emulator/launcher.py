"""moto in-process, plus loopback-only test controls under /_dormant/.

moto's own server cannot set dates (CreateDate, RoleLastUsed, PasswordLastUsed...)
or fail on purpose, but dormant's logic is all about dates and about surviving
throttling. So we run moto's WSGI app ourselves and put a small middleware in
front of it. See README.md in this directory for the endpoints.
"""

import argparse
import io
import json
import os
import re
import stat
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs

# Before moto is imported: loading the ~1,500 AWS managed policies costs a
# noticeable start-up delay that almost no test needs.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")

from moto.iam.models import AccessKeyLastUsed, get_account_id_from, iam_backends  # noqa: E402
from moto.moto_api._internal.models import moto_api_backend  # noqa: E402
from moto.utilities.utils import get_partition  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402

import authorize  # noqa: E402  (beside this file)

DEFAULT_ACCOUNT = "123456789012"
JSON_NAMESPACES = {"dynamodb": "com.amazonaws.dynamodb.v20120810", "events": "AWSEvents",
                   "ssm": "AmazonSSM", "sqs": "com.amazonaws.sqs"}
# Security Hub is REST-JSON: the path names the operation.
SECURITY_HUB_PATHS = {"/findings/import": "BatchImportFindings", "/findings": "GetFindings",
                      "/findings/batchupdate": "BatchUpdateFindings"}
SESV2_PATHS = {"/v2/email/outbound-emails": "SendEmail", "/v2/email/identities": "CreateEmailIdentity"}
LOGGED_FIELDS = ("RoleName", "UserName", "AccessKeyId", "PolicyName", "PolicyArn")
# (code, status, message) per fault kind; the codes are the ones the SDKs'
# retry classifiers know (Throttling/ThrottlingException = throttling error).
FAULTS = {
    "throttle": {"query": ("Throttling", 400, "Rate exceeded"),
                 "json": ("ThrottlingException", 400, "Rate exceeded")},
    "access_denied": {"query": ("AccessDenied", 403, "User is not authorized (injected)"),
                      "json": ("AccessDeniedException", 400, "User is not authorized (injected)")},
    "http500": {"query": ("InternalFailure", 500, "Internal failure (injected)"),
                "json": ("InternalFailure", 500, "Internal failure (injected)")},
}
# IAM's quota of tags per role or user; moto checks only the tags of one request.
TAGS_PER_IDENTITY = 50
# IAM's default quota of managed policies attached to one role or user; moto enforces none.
POLICIES_PER_IDENTITY = 10
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")
lock = threading.Lock()
faults = []     # dicts; "count" counts down to zero
requests = []   # the request log
automations = []  # SSM Automation executions (moto has none): what was started, where
impostors = {}    # account -> the account its GetCallerIdentity answers as (a misrouted role)
AUTOMATION_OPERATIONS = ("StartAutomationExecution", "GetAutomationExecution",
                         "StopAutomationExecution")
last_activity = [time.monotonic()]
enforce = [False]  # --enforce: requests with moto-issued credentials are authorised (authorize.py)
# IAM's request rate limits, per account and class ("read"/"write"): AWS throttles IAM with token
# buckets whose rates it does not publish. `default_rates` (the --iam-* flags) applies to an
# account until /_dormant/iam/rate sets its own; None = unlimited (the default: tests that do not
# ask for throttling never see it).
default_rates = {"read": None, "write": None}
buckets = {}  # (account, class) -> Bucket
READ_PREFIXES = ("Get", "List", "Generate", "Simulate")


class Bucket:
    """A token bucket: `burst` tokens, refilled at `rate` per second; a request takes one or is
    throttled (a throttled request takes none, as a refused one costs AWS nothing)."""

    def __init__(self, rate, burst):
        self.rate, self.burst = float(rate), float(burst)
        self.tokens, self.at = self.burst, time.monotonic()
        self.allowed = self.throttled = 0

    def take(self):
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.allowed += 1
            return True
        self.throttled += 1
        return False

    def set(self, rate, burst):
        """A new rate mid-run: the tokens earned so far stay (up to the new burst)."""
        self.take_nothing()
        self.rate, self.burst = float(rate), float(burst)
        self.tokens = min(self.tokens, self.burst)

    def take_nothing(self):
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def describe(self):
        return {"rate": self.rate, "burst": self.burst, "allowed": self.allowed,
                "throttled": self.throttled}


def iam_class(operation):
    return "read" if operation.startswith(READ_PREFIXES) else "write"


def rate_limited(account, operation):
    """True when IAM's bucket for this account and the operation's class has no token left.
    Called under `lock`."""
    cls = iam_class(operation)
    bucket = buckets.get((account, cls))
    if bucket is None:
        spec = default_rates[cls]
        if spec is None:
            return False
        bucket = buckets[(account, cls)] = Bucket(*spec)
    return not bucket.take()


def rate_spec(value, what):
    """{"rate": R, "burst": B} (burst default 2 R) -> (R, B); None -> None (unlimited)."""
    if value is None:
        return None
    rate = float(value["rate"])
    burst = float(value.get("burst", 2 * rate))
    if rate <= 0 or burst < 1:
        raise HttpError(400, f"{what}: rate must be > 0 and burst >= 1, got {value!r}")
    return rate, burst


def set_rates(body):
    """POST /_dormant/iam/rate: per account (or, without "account", the default for accounts
    that have no rate of their own yet), for "read" and/or "write"; a key left out is unchanged,
    null lifts the limit. Called under `lock`."""
    account = body.get("account")
    for cls in ("read", "write"):
        if cls not in body:
            continue
        spec = rate_spec(body[cls], cls)
        if account is None:
            default_rates[cls] = spec
            continue
        bucket = buckets.get((account, cls))
        if spec is None:
            buckets.pop((account, cls), None)
        elif bucket is None:
            buckets[(account, cls)] = Bucket(*spec)
        else:
            bucket.set(*spec)


def describe_rates(account):
    out = {"default": {cls: (None if s is None else {"rate": s[0], "burst": s[1]})
                       for cls, s in default_rates.items()}}
    for (acct, cls), bucket in buckets.items():
        if account in (None, acct):
            out.setdefault("accounts", {}).setdefault(acct, {})[cls] = bucket.describe()
    return out


def parse_time(value):
    """RFC3339 -> the naive UTC datetime moto stores everywhere."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def backdate(body):
    """Absent field = unchanged; "last_used": null = never used; "created": null = unchanged."""
    # IAM is global per partition; moto keys the aws partition's backend "global".
    partition = get_partition(body.get("region", "us-east-1"))
    backend = iam_backends[body.get("account", DEFAULT_ACCOUNT)][
        "global" if partition == "aws" else partition]
    kind, name = body.get("kind"), body.get("name")
    created = parse_time(body["created"]) if body.get("created") else None
    clear_used = "last_used" in body and body["last_used"] is None
    used = parse_time(body["last_used"]) if body.get("last_used") else None
    if kind == "role":
        role = next((r for r in backend.roles.values() if r.name == name), None)
        if role is None:
            raise HttpError(404, f"no role {name!r} in account {body.get('account', DEFAULT_ACCOUNT)}")
        role.create_date = created or role.create_date
        if used or clear_used:
            role.last_used, role.last_used_region = used, ("us-east-1" if used else None)
        return
    user = backend.users.get(name)
    if user is None:
        raise HttpError(404, f"no user {name!r} in account {body.get('account', DEFAULT_ACCOUNT)}")
    if kind == "user":
        user.create_date = created or user.create_date
        if used or clear_used:
            user.password_last_used = used
    elif kind == "login_profile":
        if created:
            # GetLoginProfile reports User.create_date; moto keeps no date of its own.
            raise HttpError(400, "moto has no login-profile create date; backdate the user instead")
        if used or clear_used:
            user.password_last_used = used
    elif kind == "access_key":
        key = next((k for k in user.access_keys if k.access_key_id == body.get("key_id")), None)
        if key is None:
            raise HttpError(404, f"no access key {body.get('key_id')!r} for user {name!r}")
        key.create_date = created or key.create_date
        if used or clear_used:
            key.last_used = used and AccessKeyLastUsed(
                used, body.get("service", "iam"), body.get("region", "us-east-1"))
    else:
        raise HttpError(400, f"unknown kind {kind!r} (user|role|access_key|login_profile)")


def control(environ, path, query):
    """The /_dormant/ endpoints. Returns (status, json-able body)."""
    method = environ["REQUEST_METHOD"]
    raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    body = json.loads(raw) if raw.strip() else {}
    account = query.get("account", [None])[0]
    with lock:
        if path == "health":
            return 200, {"ok": True}
        if path == "iam/backdate" and method == "POST":
            backdate(body)
            return 200, {"ok": True}
        if path == "faults" and method == "POST":
            if body.get("fault") not in (*FAULTS, "latency"):
                raise HttpError(400, f"unknown fault {body.get('fault')!r}")
            faults.append({"service": "*", "operation": "*", "account": None, "count": 1, **body})
            return 200, {"ok": True}
        if path == "ses/sent" and method == "GET":
            # The emails moto's SES kept for this account (SES v2 sends through v1's backend).
            from moto.ses.models import ses_backends
            region = query.get("region", ["us-east-1"])[0]
            sent = ses_backends[account][region].sent_messages if account else []
            return 200, [{"source": m.source, "destinations": m.destinations,
                          "subject": m.subject, "body": m.body}
                         for m in sent if hasattr(m, "destinations") and hasattr(m, "subject")]
        if path == "requests" and method == "GET":
            # Copies: in-flight entries still get their "status" from other threads.
            return 200, [dict(r) for r in requests if account in (None, r["account"])]
        if path == "iam/rate" and method == "POST":
            delay = float(body.pop("after_seconds", 0) or 0)
            if delay > 0:
                # Lowering the rate in the middle of a run: checked now, applied later.
                for cls in ("read", "write"):
                    if cls in body:
                        rate_spec(body[cls], cls)
                timer = threading.Timer(delay, lambda: locked(set_rates, body))
                timer.daemon = True
                timer.start()
            else:
                set_rates(body)
            return 200, {"ok": True}
        if path == "iam/rate" and method == "GET":
            return 200, describe_rates(account)
        if path == "iam/rate" and method == "DELETE":
            for key in [k for k in buckets if account in (None, k[0])]:
                del buckets[key]
            if account is None:
                default_rates.update(read=None, write=None)
            return 200, {"ok": True}
        if path == "sts/answer-as" and method == "POST":
            # Credentials of `account` that say they are `answer_as`: what a role ARN naming
            # the wrong account would give. Only GetCallerIdentity is affected.
            impostors[body["account"]] = body["answer_as"]
            return 200, {"ok": True}
        if path == "automations" and method == "GET":
            return 200, [dict(a) for a in automations if account in (None, a["account"])]
        if path == "automations/status" and method == "POST":
            # What GetAutomationExecution answers from now on for an account's executions.
            for a in automations:
                if a["account"] == body["account"]:
                    a["status"], a["failure"] = body["status"], body.get("failure")
            return 200, {"ok": True}
        if path == "faults" and method == "GET":
            return 200, [dict(f) for f in faults if account in (None, f["account"])]
        if path in ("faults", "requests") and method == "DELETE":
            kept = faults if path == "faults" else requests
            kept[:] = [x for x in kept if account not in (None, x["account"])]
            return 200, {"ok": True}
        if path == "reset" and method == "POST":
            moto_api_backend.reset()
            faults.clear()
            requests.clear()
            automations.clear()
            impostors.clear()
            buckets.clear()  # the --iam-* defaults stay: they are the server's configuration
            return 200, {"ok": True}
    raise HttpError(404, f"no control endpoint {method} /_dormant/{path}")


# What dormant's member stack deploys in every account: its quarantine policy. Created the first
# time an account's IAM is called, as the stack would have; a test that deletes it sees an account
# without the stack.
QUARANTINE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "DormantQuarantine", "Effect": "Deny", "Action": "*", "Resource": "*"}]})
provisioned = set()


def provision_member_stack(account, region):
    partition = get_partition(region or "us-east-1")
    if (account, partition) in provisioned:
        return
    with lock:
        if (account, partition) in provisioned:
            return
        provisioned.add((account, partition))
        backend = iam_backends[account]["global" if partition == "aws" else partition]
        try:
            backend.create_policy("dormant's quarantine: denies everything (attached by dormant)",
                                  "/dormant/", QUARANTINE_POLICY, "DormantQuarantineDenyAll", [])
        except Exception:  # already there (created through the API first)
            pass


def names(entry):
    """What a fault's `target` can match in a request: the IAM role, user or access key it names,
    or the DynamoDB item's partition key."""
    return {entry[k] for k in ("RoleName", "UserName", "AccessKeyId", "pk") if k in entry}


def locked(f, *args):
    with lock:
        return f(*args)


def take_fault(account, service, operation, entry):
    with lock:
        for fault in faults:
            if (fault["count"] > 0 and fault["service"] in ("*", service)
                    and fault["operation"] in ("*", operation)
                    and fault["account"] in (None, account)
                    and fault.get("target") in (None, *names(entry))
                    and entry.get("sk", "").startswith(fault.get("sk") or "")):
                fault["count"] -= 1
                if fault["count"] == 0:
                    faults.remove(fault)
                return fault
    return None


def error_response(service, kind, json_type, message=None):
    """An error shaped like the real service's, so the SDK parses and classifies it.

    awsQuery services (IAM, STS) answer in XML; the X-Amz-Target ones in JSON."""
    request_id = str(uuid.uuid4())
    if not json_type:
        code, status, default = FAULTS[kind]["query"]
        message = message or default
        side = "Receiver" if status >= 500 else "Sender"
        body = (f"<ErrorResponse><Error><Type>{side}</Type><Code>{code}</Code><Message>{message}"
                f"</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body
    code, status, default = FAULTS[kind]["json"]
    message = message or default
    namespace = JSON_NAMESPACES.get(service, "com.amazonaws")
    body = json.dumps({"__type": f"{namespace}#{code}", "message": message})
    return status, [("Content-Type", json_type), ("x-amzn-ErrorType", code),
                    ("x-amzn-RequestId", request_id)], body


def over_tag_quota(account, operation, form):
    """The LimitExceeded error IAM gives a TagRole/TagUser that would leave the role or user with
    more than 50 tags (keys compare without case), or None."""
    if operation not in ("TagRole", "TagUser"):
        return None
    backend = iam_backends[account]["global"]
    try:
        if operation == "TagRole":
            current = backend.get_role(form.get("RoleName", "")).tags
        else:
            current = backend.list_user_tags(form.get("UserName", ""))
    except Exception:  # no such identity: moto answers NoSuchEntity itself
        return None
    keys = {t["Key"].lower() for t in current}
    keys |= {v.lower() for k, v in form.items() if re.fullmatch(r"Tags\.member\.\d+\.Key", k)}
    if len(keys) <= TAGS_PER_IDENTITY:
        return None
    kind = "Role" if operation == "TagRole" else "User"
    body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>LimitExceeded</Code><Message>Cannot "
            f"exceed quota for TagsPer{kind}: {TAGS_PER_IDENTITY}</Message></Error><RequestId>"
            f"{uuid.uuid4()}</RequestId></ErrorResponse>")
    return 409, [("Content-Type", "text/xml")], body


def over_policy_quota(account, operation, form):
    """The LimitExceeded error IAM gives an AttachRolePolicy/AttachUserPolicy that would leave the
    role or user with more than 10 managed policies (attaching one already there is a no-op), or
    None."""
    if operation not in ("AttachRolePolicy", "AttachUserPolicy"):
        return None
    backend = iam_backends[account]["global"]
    try:
        if operation == "AttachRolePolicy":
            current = backend.get_role(form.get("RoleName", "")).managed_policies
        else:
            current = backend.get_user(form.get("UserName", "")).managed_policies
    except Exception:  # no such identity: moto answers NoSuchEntity itself
        return None
    if form.get("PolicyArn") in current or len(current) < POLICIES_PER_IDENTITY:
        return None
    kind = "Role" if operation == "AttachRolePolicy" else "User"
    body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>LimitExceeded</Code><Message>Cannot "
            f"exceed quota for PoliciesPer{kind}: {POLICIES_PER_IDENTITY}</Message></Error><RequestId>"
            f"{uuid.uuid4()}</RequestId></ErrorResponse>")
    return 409, [("Content-Type", "text/xml")], body
def item_key(service, raw):
    """`pk` and `sk` of the item a DynamoDB GetItem/PutItem/DeleteItem names (for the log and
    for targeted faults); nothing for other requests."""
    if service != "dynamodb":
        return {}
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {}
    key = body.get("Key") or body.get("Item") or {}
    return {k: key[k]["S"] for k in ("pk", "sk") if isinstance(key.get(k), dict) and "S" in key[k]}


def respond(start_response, status, headers, body):
    data = body.encode()
    start_response(f"{status} {'OK' if status < 400 else 'Error'}",
                   headers + [("Content-Length", str(len(data)))])
    return [data]


class Harness:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        last_activity[0] = time.monotonic()
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_dormant/"):
            # Bound to 127.0.0.1 anyway; this guards against a later --host change.
            if environ.get("REMOTE_ADDR") != "127.0.0.1":
                return respond(start_response, 403, [("Content-Type", "application/json")],
                               json.dumps({"error": "control endpoints are loopback-only"}))
            try:
                status, out = control(environ, path[len("/_dormant/"):], parse_qs(environ.get("QUERY_STRING", "")))
            except HttpError as e:
                status, out = e.status, {"error": e.message}
            except (ValueError, KeyError, TypeError) as e:
                status, out = 400, {"error": f"bad request: {e!r}"}
            return respond(start_response, status, [("Content-Type", "application/json")], json.dumps(out))

        match = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if not match:  # unsigned: /moto-api/..., metadata; not an AWS call worth logging
            return self.app(environ, start_response)
        access_key, region, service = match.group(1), match.group(2), match.group(3).lower()
        service = {"eventbridge": "events"}.get(service, service)
        # Per-test accounts: moto only maps access keys it issued itself, so a
        # 12-digit dummy key id names the account (via moto's own header).
        if re.fullmatch(r"\d{12}", access_key) and "HTTP_X_MOTO_ACCOUNT_ID" not in environ:
            environ["HTTP_X_MOTO_ACCOUNT_ID"] = access_key
        account = environ.get("HTTP_X_MOTO_ACCOUNT_ID") or get_account_id_from(access_key)

        # We read the body to find the Action, so moto needs a fresh stream.
        stream = environ["wsgi.input"]
        raw = stream.read() if environ.get("wsgi.input_terminated") else stream.read(
            int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(raw), str(len(raw))
        target = environ.get("HTTP_X_AMZ_TARGET")
        form = {}
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        operation = target.rsplit(".", 1)[-1] if target else form.get("Action", "")
        if not operation and service == "access-analyzer":  # REST: the path names it
            found = re.match(r"/(finding|findingv2)/", path)
            operation = {"finding": "GetFinding", "findingv2": "GetFindingV2"}.get(
                found.group(1) if found else "", "")
        if not operation and service == "securityhub":  # REST too
            operation = SECURITY_HUB_PATHS.get(path.rstrip("/"), "")
        if not operation and service == "ses" and path.startswith("/v2/"):  # SES v2: REST
            operation = SESV2_PATHS.get(path.rstrip("/"), "")

        if service == "iam" and re.fullmatch(r"\d{12}", account or ""):
            provision_member_stack(account, region)
        entry = {"account": account, "service": service, "operation": operation, "fault": None,
                 **{k: form[k] for k in LOGGED_FIELDS if k in form}, **item_key(service, raw),
                 "started": time.monotonic(), "ended": None}
        with lock:
            requests.append(entry)
        try:
            return self.handle(environ, start_response, entry, access_key, region, service,
                               operation, target, form, raw)
        finally:
            # In flight from "started" to here: tests measure concurrency from the two.
            entry["ended"] = time.monotonic()

    def handle(self, environ, start_response, entry, access_key, region, service, operation,
               target, form, raw):
        account = entry["account"]
        fault = take_fault(account, service, operation, entry)
        if fault:
            entry["fault"] = fault["fault"]
            if fault["fault"] == "latency":
                time.sleep(fault.get("latency_ms", 1000) / 1000)
            else:
                json_type = (target and environ.get("CONTENT_TYPE", "application/x-amz-json-1.0")) or (
                    (service == "securityhub" or (service == "ses" and environ.get("PATH_INFO", "").startswith("/v2/")))
                    and "application/json")
                status, headers, body = error_response(service, fault["fault"], json_type)
                entry["status"] = status
                return respond(start_response, status, headers, body)
        if service == "iam" and locked(rate_limited, account, operation):
            entry["fault"], entry["rate_limited"] = "throttle", True
            status, headers, body = error_response(service, "throttle", None)
            entry["status"] = status
            return respond(start_response, status, headers, body)
        if enforce[0]:
            refused = authorized(entry, account, access_key, service, operation, region, form, raw,
                                 environ, target)
            if refused:
                return respond(start_response, *refused)
        if service == "sts" and operation == "GetCallerIdentity" and account in impostors:
            other = impostors[account]
            entry["status"] = 200
            body = ("<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                    f"<GetCallerIdentityResult><Arn>arn:aws:sts::{other}:assumed-role/dormant-member/dormant</Arn>"
                    f"<UserId>AROAIMPOSTOR:dormant</UserId><Account>{other}</Account></GetCallerIdentityResult>"
                    f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                    "</GetCallerIdentityResponse>")
            return respond(start_response, 200, [("Content-Type", "text/xml")], body)
        if service == "ssm" and operation in AUTOMATION_OPERATIONS:
            status, body = automation(account, operation, json.loads(raw or b"{}"))
            entry["status"] = status
            return respond(start_response, status,
                           [("Content-Type", "application/x-amz-json-1.1")], json.dumps(body))
        if service == "iam":
            refused = (over_tag_quota(account, operation, form)
                       or over_policy_quota(account, operation, form))
            if refused:
                entry["status"] = refused[0]
                return respond(start_response, *refused)

        def recording_start_response(status, headers, exc_info=None):
            entry["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        return self.app(environ, recording_start_response)


def authorized(entry, account, access_key, service, operation, region, form, raw, environ, target):
    """None when the caller's policies allow the request (authorize.py), else the error response;
    the log entry names the refused action and resource, or the condition keys left unchecked."""
    json_type = target and environ.get("CONTENT_TYPE", "application/x-amz-json-1.0")
    if not target and environ.get("CONTENT_TYPE", "").startswith("application/json"):
        json_type = "application/json"  # REST-JSON (Access Analyzer)
    try:
        body = json.loads(raw) if raw.strip() and not form else {}
    except ValueError:
        body = {}
    try:
        principal, ignored = authorize.authorize(account, access_key, service, operation, region, form, body,
                                      environ)
    except authorize.UnknownCredentials:
        entry["denied"] = "unknown credentials"
        entry["status"] = 403
        return error_response(service, "access_denied", json_type,
                              "The security token included in the request is invalid")
    except authorize.Denied as denied:
        entry["caller"] = denied.principal
        entry["denied"] = f"{denied.action} on {denied.resource}"
        status, headers, body = error_response(service, "access_denied", json_type, str(denied))
        entry["status"] = status
        return status, headers, body
    if principal:
        entry["caller"] = principal
    if ignored:
        entry["ignored_conditions"] = sorted(ignored)
    return None


def automation(account, operation, body):
    """SSM Automation as far as dormant uses it, without running anything: an execution is
    recorded in the account that started it (with its document and parameters, for tests to
    read) and reports the status tests set (default Success). Another account cannot see it."""
    with lock:
        if operation == "StartAutomationExecution":
            token = body.get("ClientToken")
            for a in automations:
                if token and a["account"] == account and a["client_token"] == token:
                    return 200, {"AutomationExecutionId": a["id"]}
            execution = {"id": f"exec-{len(automations) + 1:08d}", "account": account,
                         "document": body.get("DocumentName"),
                         "parameters": body.get("Parameters", {}), "client_token": token,
                         "status": "Success", "failure": None}
            automations.append(execution)
            return 200, {"AutomationExecutionId": execution["id"]}
        wanted = body.get("AutomationExecutionId")
        found = next((a for a in automations if a["id"] == wanted and a["account"] == account), None)
        if found is None:
            return 400, {"__type": "AutomationExecutionNotFoundException",
                         "message": f"Execution {wanted} not found"}
        if operation == "StopAutomationExecution":
            if found["status"] not in ("Pending", "InProgress", "Waiting"):
                return 400, {"__type": "InvalidAutomationStatusUpdateException",
                             "message": f"Execution {wanted} is already {found['status']}"}
            found["status"] = "Cancelled"
            return 200, {}
        answer = {"AutomationExecutionId": found["id"], "DocumentName": found["document"],
                  "AutomationExecutionStatus": found["status"]}
        if found["failure"]:
            answer["FailureMessage"] = found["failure"]
        return 200, {"AutomationExecution": answer}


class QuietHandler(MotoRequestHandler):
    def log_request(self, *args, **kwargs):
        pass  # one line per request drowns real errors in the test log


def watch_parent(idle_exit, port_file):
    """Never outlive the test process: stdin EOF, re-parenting or idleness ends us."""
    def leave():
        if port_file:  # nobody else will: statics holding us are never dropped
            try:
                os.remove(port_file)
            except OSError:
                pass
        os._exit(0)  # serve_forever() would not return without a request

    def stdin_eof():
        while sys.stdin.buffer.read(4096):
            pass
        leave()

    # Only a pipe says something about the parent: /dev/null or a terminal
    # (someone running us by hand or in the background) would end us at once.
    try:
        stdin_is_pipe = stat.S_ISFIFO(os.fstat(0).st_mode)
    except OSError:
        stdin_is_pipe = False
    if stdin_is_pipe:
        threading.Thread(target=stdin_eof, daemon=True).start()
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            leave()
        if idle_exit and time.monotonic() - last_activity[0] > idle_exit:
            leave()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="the port is written here once we accept connections")
    parser.add_argument("--idle-exit", type=float, default=0, help="exit after this many idle seconds")
    parser.add_argument("--enforce", action="store_true",
                        help="authorise requests signed with moto-issued credentials (authorize.py)")
    for cls in ("read", "write"):
        parser.add_argument(f"--iam-{cls}-rate", type=float, default=None,
                            help=f"IAM {cls}s per second per account (default: unlimited)")
        parser.add_argument(f"--iam-{cls}-burst", type=float, default=None,
                            help=f"IAM {cls} bucket size (default: twice the rate)")
    args = parser.parse_args()
    enforce[0] = args.enforce
    for cls in ("read", "write"):
        rate = getattr(args, f"iam_{cls}_rate")
        if rate is not None:
            burst = getattr(args, f"iam_{cls}_burst")
            default_rates[cls] = rate_spec({"rate": rate, **({"burst": burst} if burst else {})}, cls)
    if args.enforce:
        authorize.aws_shaped_user_ids()

    server = make_server("127.0.0.1", args.port, Harness(DomainDispatcherApplication(create_backend_app)),
                         threaded=True, request_handler=QuietHandler)
    port = server.server_address[1]
    # The socket listens from here on; connections wait in the backlog until
    # serve_forever. Rename so a reader never sees a half-written file.
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"READY {port}", flush=True)
    threading.Thread(target=watch_parent, args=(args.idle_exit, args.port_file), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
