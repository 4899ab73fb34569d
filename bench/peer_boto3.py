"""The per-identity boto3 approach of the AWS sample scripts, with dormant's rules.

List roles and users, then read every identity on its own: GetRole (RoleLastUsed, tags);
GetUser (PasswordLastUsed, tags), ListAccessKeys + GetAccessKeyLastUsed per key and
GetLoginProfile (does the user have a console password?). Decide with the same rules as dormant's
defaults (90 days for a role or user, 45 days for one key or password of a user otherwise in use,
minimum age 90 days, `dormant:exempt` tag, protected service-linked / SSO / Organizations roles),
and with `--apply` tag what it found (one TagRole/TagUser per finding, like dormant's notice).
Sequential, like the samples. No state: nothing is recorded anywhere but in the tags.

Prints one JSON document: counts by kind. Credentials come from the environment (AWS_ENDPOINT_URL
points it at the emulator).
"""

import argparse
import json
import re
import sys
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config

PROTECTED_PATH = re.compile(r"^/(aws-service-role|aws-reserved)/")
PROTECTED_NAME = re.compile(r"^(AWSReservedSSO_.*|OrganizationAccountAccessRole)$")


def exempt(tags):
    value = {t["Key"]: t["Value"] for t in tags or ()}.get("dormant:exempt")
    return value is not None and value.lower() != "false"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--apply", action="store_true", help="tag what is found (default: report only)")
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--credential-days", type=int, default=45)
    args = ap.parse_args()

    now = datetime.now(timezone.utc)
    threshold, cred_threshold = timedelta(days=args.days), timedelta(days=args.credential_days)
    min_age = threshold
    # Our own retries (like the samples: botocore's standard mode).
    iam = boto3.client("iam", config=Config(retries={"mode": "standard", "max_attempts": 3}))
    notice = [("dormant:stage",
               "noticed next quarantine at " + (now + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"))]
    tags = [{"Key": k, "Value": v} for k, v in notice]
    found = {"roles": 0, "users": 0, "keys": 0, "passwords": 0}
    evaluated = 0

    for page in iam.get_paginator("list_roles").paginate():
        for listed in page["Roles"]:
            evaluated += 1
            role = iam.get_role(RoleName=listed["RoleName"])["Role"]
            if PROTECTED_PATH.match(role["Path"]) or PROTECTED_NAME.match(role["RoleName"]):
                continue
            if exempt(role.get("Tags")) or now - role["CreateDate"] < min_age:
                continue
            last = (role.get("RoleLastUsed") or {}).get("LastUsedDate") or role["CreateDate"]
            if now - last >= threshold:
                found["roles"] += 1
                if args.apply:
                    iam.tag_role(RoleName=role["RoleName"], Tags=tags)

    for page in iam.get_paginator("list_users").paginate():
        for listed in page["Users"]:
            evaluated += 1
            name = listed["UserName"]
            user = iam.get_user(UserName=name)["User"]
            if exempt(user.get("Tags")) or now - user["CreateDate"] < min_age:
                continue
            # Each credential's last sign of life; a never-used one counts from its creation.
            keys = []
            for meta in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
                used = iam.get_access_key_last_used(AccessKeyId=meta["AccessKeyId"])["AccessKeyLastUsed"]
                keys.append((meta["Status"] == "Active", used.get("LastUsedDate") or meta["CreateDate"]))
            try:
                profile = iam.get_login_profile(UserName=name)["LoginProfile"]
            except iam.exceptions.NoSuchEntityException:
                profile = None
            password = None
            if profile is not None:
                used = user.get("PasswordLastUsed")
                password = used if used and used >= profile["CreateDate"] else profile["CreateDate"]
            signs = [user["CreateDate"]] + [t for _, t in keys] + ([password] if password else [])
            if user.get("PasswordLastUsed"):
                signs.append(user["PasswordLastUsed"])
            if now - max(signs) >= threshold:
                found["users"] += 1
                if args.apply:
                    iam.tag_user(UserName=name, Tags=tags)
                continue
            idle = [t for active, t in keys if active and now - t >= cred_threshold]
            found["keys"] += len(idle)
            idle_password = password is not None and now - password >= cred_threshold
            found["passwords"] += 1 if idle_password else 0
            if args.apply and (idle or idle_password):
                iam.tag_user(UserName=name, Tags=tags)

    json.dump({"evaluated": evaluated, "found": found}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
