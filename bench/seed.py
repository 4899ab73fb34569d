"""Seeds one emulated AWS account with N IAM identities in a fixed, realistic mix, and returns
the ground truth: which of them dormant's default policy should notice.

Deterministic: identity i gets the profile PROFILES[i % 20], so two accounts seeded with the
same N hold the same content (only the account id differs). Dates are relative to `today` and
keep well clear of the 45/90-day thresholds, so a few minutes between seeding and measuring
change nothing.

Roles and users alternate (10 + 10 per block of 20). Per block: 8 principals dormant as a whole
(4 roles, 4 users), 1 user with one idle access key, 1 user with an idle console password, so
half of the identities are to be noticed; plus busy ones, young ones, exempt ones (tag
`dormant:exempt`), a protected service-linked role, group memberships, inline and customer
managed policies.

Run directly: `python bench/seed.py --endpoint URL --account 12DIGITS --n 1000` prints the truth
as JSON. The benchmark imports `seed()`.
"""

import argparse
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
READ_ONLY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
EXEMPT_TAGS = [{"Key": "dormant:exempt", "Value": "true"},
               {"Key": "dormant:exempt-reason", "Value": "benchmark: owner opted out"}]

# (name suffix, spec, expected verdict under dormant's defaults)
# Roles: created/used are days ago (used None = never used).
ROLE_PROFILES = [
    ("never-used", dict(created=200), "dormant"),
    ("idle-120d", dict(created=300, used=120), "dormant"),
    ("idle-300d-managed", dict(created=400, used=300, managed=True), "dormant"),
    ("busy", dict(created=300, used=2), "active"),
    ("used-30d-inline", dict(created=300, used=30, inline=True), "active"),
    ("young", dict(created=20), "young"),
    ("exempt", dict(created=300, tags=EXEMPT_TAGS), "exempt"),
    ("service-linked", dict(created=500, path="/aws-service-role/bench.amazonaws.com/"), "protected"),
    ("idle-150d-inline", dict(created=250, used=150, inline=True), "dormant"),
    ("used-60d", dict(created=300, used=60), "active"),
]
# Users: keys are (created days ago, last used days ago or None, active).
USER_PROFILES = [
    ("departed", dict(created=400, password=200, keys=[(300, 150, True), (300, None, False)], group=True), "dormant"),
    ("no-credentials", dict(created=300), "dormant"),
    ("old-key", dict(created=300, keys=[(250, 120, True)]), "dormant"),
    ("active", dict(created=400, password=3, keys=[(200, 1, True)], group=True), "active"),
    ("idle-second-key", dict(created=400, keys=[(300, 1, True), (200, 60, True)]), "key"),
    ("idle-password", dict(created=400, password=100, keys=[(200, 1, True)]), "password"),
    ("exempt", dict(created=300, keys=[(300, None, True)], tags=EXEMPT_TAGS), "exempt"),
    ("young", dict(created=20, keys=[(20, None, True)]), "young"),
    ("never-used-key", dict(created=300, keys=[(200, None, True)], managed=True, group=True), "dormant"),
    ("key-used-10d-inline", dict(created=300, keys=[(300, 10, True)], inline=True), "active"),
]


def profile(i):
    """(kind, name, spec, verdict) of identity i."""
    slot = i % 20
    if slot % 2 == 0:
        suffix, spec, verdict = ROLE_PROFILES[slot // 2]
        return "role", f"bench-r{i:06d}-{suffix}", spec, verdict
    suffix, spec, verdict = USER_PROFILES[slot // 2]
    return "user", f"bench-u{i:06d}-{suffix}", spec, verdict


def truth(n):
    """What dormant's defaults should notice, by kind; plus the full census."""
    t = {"identities": n, "roles": 0, "users": 0, "dormant_roles": 0, "dormant_users": 0,
         "idle_keys": 0, "idle_passwords": 0, "exempt": 0, "protected": 0, "young": 0,
         "active": 0, "access_keys": 0, "login_profiles": 0}
    names = {"role": [], "user": [], "key": [], "password": []}
    for i in range(n):
        kind, name, spec, verdict = profile(i)
        t["roles" if kind == "role" else "users"] += 1
        t["access_keys"] += len(spec.get("keys", ()))
        t["login_profiles"] += 1 if "password" in spec else 0
        if verdict == "dormant":
            t["dormant_roles" if kind == "role" else "dormant_users"] += 1
            names[kind].append(name)
        elif verdict == "key":
            t["idle_keys"] += 1
            names["key"].append(name)
        elif verdict == "password":
            t["idle_passwords"] += 1
            names["password"].append(name)
        else:
            t[verdict] += 1
    t["principals_to_notice"] = t["dormant_roles"] + t["dormant_users"]
    t["subjects_to_notice"] = t["principals_to_notice"] + t["idle_keys"] + t["idle_passwords"]
    # Users that get any notice (whole or one credential): what a tagging peer would tag.
    t["principals_touched"] = t["subjects_to_notice"]
    t["names"] = names
    return t


class Seeder:
    def __init__(self, endpoint, account, today):
        self.endpoint, self.account, self.today = endpoint, account, today
        session = boto3.session.Session(aws_access_key_id=account, aws_secret_access_key="x",
                                        region_name="us-east-1")
        # Clients are thread-safe; enough pooled connections for every worker thread.
        self.iam = session.client("iam", endpoint_url=endpoint,
                                  config=Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 8}))

    def call(self, op, **kw):
        """One IAM call, retried when moto fails with an HTML 500: its IAM backend iterates dicts
        (roles, every account's keys) that concurrent requests change ("dictionary changed size
        during iteration"). Such a failure happens before anything is stored, so a retry is safe."""
        for attempt in range(10):
            try:
                return getattr(self.iam, op)(**kw)
            except (ResponseParserError, ClientError) as e:
                server = isinstance(e, ResponseParserError) or e.response.get(
                    "ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
                if not server or attempt == 9:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def ago(self, days):
        return (self.today - timedelta(days=days)).isoformat().replace("+00:00", "Z")

    def backdate(self, **body):
        body["account"] = self.account
        req = urllib.request.Request(f"{self.endpoint}/_dormant/iam/backdate", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        # The launcher's backdate iterates moto's role dict without moto's lock, so a CreateRole in
        # another thread can make it fail with HTTP 500 ("dictionary changed size during
        # iteration"). Retrying is safe: backdating is idempotent.
        for attempt in range(8):
            try:
                with urllib.request.urlopen(req) as r:
                    r.read()
                return
            except urllib.error.HTTPError as e:
                if e.code != 500 or attempt == 7:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def shared(self, n):
        """Groups and customer managed policies the identities are attached to."""
        self.groups = [f"bench-group-{g:04d}" for g in range(max(1, n // 100))]
        self.policies = []
        for g in self.groups:
            self.call("create_group", GroupName=g)
        for p in range(max(1, n // 200)):
            arn = self.call("create_policy", PolicyName=f"bench-policy-{p:04d}", PolicyDocument=READ_ONLY)["Policy"]["Arn"]
            self.policies.append(arn)

    def one(self, i):
        kind, name, spec, _ = profile(i)
        iam = self.iam  # for its exception classes
        if kind == "role":
            try:
                self.call("create_role", RoleName=name, Path=spec.get("path", "/"), AssumeRolePolicyDocument=TRUST,
                                Description="benchmark identity", Tags=spec.get("tags", []))
            except iam.exceptions.EntityAlreadyExistsException:
                pass  # a retried request whose first attempt got through
            if spec.get("inline"):
                self.call("put_role_policy", RoleName=name, PolicyName="read", PolicyDocument=READ_ONLY)
            if spec.get("managed"):
                self.call("attach_role_policy", RoleName=name, PolicyArn=self.policies[i % len(self.policies)])
            used = spec.get("used")
            self.backdate(kind="role", name=name, created=self.ago(spec["created"]),
                          last_used=self.ago(used) if used is not None else None)
            return
        self.call("create_user", UserName=name, Tags=spec.get("tags", []))
        self.backdate(kind="user", name=name, created=self.ago(spec["created"]))
        if "password" in spec:
            self.call("create_login_profile", UserName=name, Password="Bench-Passw0rd!")
            self.backdate(kind="login_profile", name=name, last_used=self.ago(spec["password"]))
        for created, used, active in spec.get("keys", ()):
            key = self.call("create_access_key", UserName=name)["AccessKey"]["AccessKeyId"]
            self.backdate(kind="access_key", name=name, key_id=key, created=self.ago(created),
                          last_used=self.ago(used) if used is not None else None)
            if not active:
                self.call("update_access_key", UserName=name, AccessKeyId=key, Status="Inactive")
        if spec.get("inline"):
            self.call("put_user_policy", UserName=name, PolicyName="read", PolicyDocument=READ_ONLY)
        if spec.get("managed"):
            self.call("attach_user_policy", UserName=name, PolicyArn=self.policies[i % len(self.policies)])
        if spec.get("group"):
            self.call("add_user_to_group", GroupName=self.groups[(i // 20) % len(self.groups)], UserName=name)


def seed(endpoint, account, n, today=None, threads=8):
    today = today or datetime.now(timezone.utc).replace(microsecond=0)
    s = Seeder(endpoint, account, today)
    s.shared(n)
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(s.one, range(n)):
            pass
    t = truth(n)
    # Check the content: every identity, key and password is there.
    roles = users = keys = passwords = 0
    for page in s.iam.get_paginator("get_account_authorization_details").paginate(Filter=["Role", "User"]):
        roles += len(page["RoleDetailList"])
        users += len(page["UserDetailList"])
    report = s.iam.generate_credential_report() and None
    for _ in range(20):
        try:
            report = s.iam.get_credential_report()["Content"].decode()
            break
        except s.iam.exceptions.CredentialReportNotReadyException:
            time.sleep(0.2)
    for row in report.splitlines()[1:]:
        cols = row.split(",")
        passwords += cols[3] == "true"
        keys += (cols[9] != "N/A") + (cols[14] != "N/A")
    got = (roles, users, keys, passwords)
    want = (t["roles"], t["users"], t["access_keys"], t["login_profiles"])
    if got != want:
        raise RuntimeError(f"seeded account {account} holds (roles, users, keys, passwords) {got}, expected {want}")
    t["today"] = today.isoformat().replace("+00:00", "Z")
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--account", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    t = seed(args.endpoint, args.account, args.n, threads=args.threads)
    t.pop("names")
    print(json.dumps(t, indent=2))


if __name__ == "__main__":
    main()
