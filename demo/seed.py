"""Seeds the demo account in the emulator: a dozen identities, each a case dormant must handle.

Prints the demo's "today" (RFC 3339); every date below is relative to it. Dates are set through
the emulator's loopback test endpoint, because IAM never lets a client set them.
"""

import json
import os
import sys
import urllib.request
from datetime import datetime, timedelta, timezone

import boto3

ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
ACCOUNT = os.environ["AWS_ACCESS_KEY_ID"]
TODAY = datetime.now(timezone.utc).replace(microsecond=0)
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
READ_ONLY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})

iam = boto3.client("iam", region_name="us-east-1")


def ago(days):
    return (TODAY - timedelta(days=days)).isoformat().replace("+00:00", "Z")


def backdate(**body):
    body["account"] = ACCOUNT
    req = urllib.request.Request(f"{ENDPOINT}/_dormant/iam/backdate", data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()


def role(name, created, used=None, path="/", tags=()):
    iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=TRUST, Description=f"demo: {name}", Tags=[{"Key": k, "Value": v} for k, v in tags])
    iam.put_role_policy(RoleName=name, PolicyName="read", PolicyDocument=READ_ONLY)
    backdate(kind="role", name=name, created=ago(created), last_used=ago(used) if used is not None else None)


def user(name, created, password_used=None, keys=(), password=False):
    iam.create_user(UserName=name)
    backdate(kind="user", name=name, created=ago(created))
    if password:
        iam.create_login_profile(UserName=name, Password="Demo-Passw0rd!")
        if password_used is not None:
            backdate(kind="login_profile", name=name, last_used=ago(password_used))
    for created_days, used_days, active in keys:
        key = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
        backdate(kind="access_key", name=name, key_id=key, created=ago(created_days), last_used=ago(used_days) if used_days is not None else None)
        if not active:
            iam.update_access_key(UserName=name, AccessKeyId=key, Status="Inactive")


role("legacy-etl", created=200, tags=[("owner", "data-team")])  # never used: dormant; its owner routes to data-team@example.com
role("old-deploy", created=300, used=120)                         # last used 120 days ago: dormant
role("ci-runner", created=300, used=2)                            # busy
role("breakglass-role", created=400)                              # never used, but matched by a configured glob
role("vendor-audit", created=300, tags=[("dormant:exempt", "true"), ("dormant:exempt-until", (TODAY + timedelta(days=60)).date().isoformat()), ("dormant:exempt-reason", "annual vendor audit")])
role("AWSServiceRoleForElasticBeanstalk", created=500, path="/aws-service-role/elasticbeanstalk.amazonaws.com/")  # protected
role("new-service", created=20)                                   # too young to judge
user("former-contractor", created=400, password=True, password_used=200, keys=[(300, 150, True), (300, None, False)])
user("alice", created=400, password=True, password_used=3, keys=[(200, 1, True)])        # active
user("bob", created=400, keys=[(300, 1, True), (200, 60, True)])                           # one key idle 60 days
user("carol", created=400, password=True, password_used=100, keys=[(200, 1, True)])      # console password idle 100 days
user("svc-reporting", created=300)                                 # never had a credential
iam.create_group(GroupName="analysts")
iam.add_user_to_group(GroupName="analysts", UserName="former-contractor")

print(TODAY.isoformat().replace("+00:00", "Z"))
sys.stdout.flush()
