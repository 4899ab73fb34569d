#!/usr/bin/env python3
"""Lint every IAM policy of the synthesized templates with parliament and cloudsplaining.

Usage: lint-policies.py [--allow FILE] [--list] TEMPLATE...

Takes the identity policies (AWS::IAM::Policy, AWS::IAM::ManagedPolicy, inline Policies of roles,
users and groups) to both tools and the SQS/SNS/S3 resource policies to parliament, with
CloudFormation intrinsics replaced by plausible ARNs. Fails on any finding that the allow-list
(default: cdk/policy-lint-allow.json) does not cover, and on any entry no finding needs. Offline:
both tools ship their IAM data. Prints one summary line per template.
"""
import argparse
import fnmatch
import json
import os
import re
import sys
import warnings

# parliament imports pkg_resources, which warns on import; the warning is not ours to fix.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
import parliament  # noqa: E402
from parliament.cli import is_finding_filtered  # noqa: E402
from cloudsplaining.command.scan_policy_file import scan_policy  # noqa: E402
from cloudsplaining.shared.exclusions import DEFAULT_EXCLUSIONS_CONFIG  # noqa: E402

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "stack",
    "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/stack/0",
    "AWS::NoValue": None,
}
POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
INLINE_OWNERS = ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group")
# Resource policies go to parliament only (cloudsplaining reads identity policies).
RESOURCE_POLICY_TYPES = ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy")
# cloudsplaining's categories that fail the lint (InfrastructureModification is every write action
# once ARN-scoped statements count, so it is not one: the reviewed actions are permissions.json).
CLOUDSPLAINING_CHECKS = ("PrivilegeEscalation", "ResourceExposure", "CredentialsExposure", "DataExfiltration", "ServiceWildcard")


class Resolver:
    """Turns Ref, Fn::GetAtt, Fn::Join, Fn::Sub, ... into strings shaped like what they stand for."""

    def __init__(self, template):
        self.resources = template.get("Resources", {})
        self.parameters = template.get("Parameters", {})

    def name(self, logical_id):
        props = self.resources[logical_id].get("Properties", {})
        for key in ("RoleName", "UserName", "GroupName", "TableName", "QueueName", "FunctionName", "LogGroupName", "Name", "TopicName"):
            if isinstance(props.get(key), str):
                return props[key]
        return logical_id.lower()

    def ref(self, target):
        if target in PSEUDO:
            return PSEUDO[target]
        if target in self.parameters:
            default = self.parameters[target].get("Default")
            # Without a default (the member stack's ControllerAccountId): another account than ours.
            return str(default) if default is not None else "210987654321"
        if target in self.resources:
            if self.resources[target]["Type"] == "AWS::SQS::Queue":
                return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.name(target)}"
            if self.resources[target]["Type"] == "AWS::SecretsManager::Secret":
                # A secret's Ref is its ARN: CloudFormation's name (one `-`) plus Secrets Manager's suffix.
                return f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{target}-AbCdEfGhIjKl-AbCdEf"
            return self.name(target)
        raise ValueError(f"Ref to unknown {target}")

    def arn(self, logical_id):
        kind = self.resources[logical_id]["Type"]
        n = self.name(logical_id)
        shapes = {
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{n}",
            "AWS::IAM::User": f"arn:{PARTITION}:iam::{ACCOUNT}:user/{n}",
            "AWS::IAM::ManagedPolicy": f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{n}",
            "AWS::DynamoDB::Table": f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{n}",
            "AWS::SQS::Queue": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{n}",
            "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{n}:*",
            "AWS::Lambda::Function": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{n}",
            "AWS::SNS::Topic": f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{n}",
            "AWS::Events::Rule": f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{n}",
        }
        if kind not in shapes:
            raise ValueError(f"no ARN shape for {kind} ({logical_id}); add one to lint-policies.py")
        return shapes[kind]

    def getatt(self, logical_id, attr):
        if attr == "Arn":
            return self.arn(logical_id)
        if attr == "QueueName":
            return self.name(logical_id)
        if attr == "QueueUrl":
            return self.ref(logical_id)
        raise ValueError(f"Fn::GetAtt {logical_id}.{attr} not stubbed; add it to lint-policies.py")

    def __call__(self, v):
        if isinstance(v, list):
            return [x for x in (self(x) for x in v) if x is not None]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (key, arg), = v.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(logical_id, attr)
            if key == "Fn::Join":
                return arg[0].join(str(self(x)) for x in self(arg[1]))
            if key == "Fn::Select":
                return self(arg[1])[int(self(arg[0]))]
            if key == "Fn::Split":
                return self(arg[1]).split(arg[0])
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

                def sub(m):
                    ref = m.group(1)
                    if ref in extra:
                        return str(self(extra[ref]))
                    if "." in ref and not ref.startswith("AWS::"):
                        return str(self.getatt(*ref.split(".", 1)))
                    return str(self.ref(ref))

                return re.sub(r"\$\{([^!}][^}]*)\}", sub, text)
            if key == "Fn::If":
                raise ValueError("Fn::If in a policy: lint-policies.py does not choose a branch")
            if key.startswith("Fn::") or key == "Condition":
                raise ValueError(f"{key} in a policy is not stubbed; add it to lint-policies.py")
        return {k: self(x) for k, x in v.items()}


def strip_hash(logical_id):
    """CDK's logical ids end in an 8-hex hash of the construct path; the allow-list names without it."""
    return re.sub(r"[0-9A-F]{8}$", "", logical_id)


def extract(template_path):
    """(policy id, resolved document, kind) for every identity and resource policy of the template.

    Trust policies are left out: parliament reads them as malformed identity policies.
    """
    with open(template_path, encoding="utf-8") as f:
        template = json.load(f)
    stack = os.path.basename(template_path).split(".")[0]
    resolve = Resolver(template)
    out = []
    for logical_id, res in template.get("Resources", {}).items():
        props = res.get("Properties", {})
        pid = f"{stack}/{strip_hash(logical_id)}"
        if res["Type"] in POLICY_TYPES:
            out.append((pid, resolve(props["PolicyDocument"]), "identity"))
        elif res["Type"] in INLINE_OWNERS:
            for p in props.get("Policies", []):
                out.append((f"{pid}/{p['PolicyName']}", resolve(p["PolicyDocument"]), "identity"))
        elif res["Type"] in RESOURCE_POLICY_TYPES:
            out.append((pid, resolve(props["PolicyDocument"]), "resource"))
    return out


def as_list(x):
    return x if isinstance(x, list) else [x]


def statements(doc):
    return as_list(doc.get("Statement", []))


def sid(doc, i):
    return statements(doc)[i].get("Sid", f"#{i}")


def statements_allowing(doc, action):
    """The Sids (else #index) of the Allow statements that grant `action`."""
    return [
        sid(doc, i)
        for i, s in enumerate(statements(doc))
        if s.get("Effect") == "Allow" and any(fnmatch.fnmatch(action.lower(), a.lower()) for a in as_list(s.get("Action", [])))
    ]


def spelled(doc, action):
    """The tools report actions lowercased; the policy's own spelling reads better."""
    for s in statements(doc):
        for a in as_list(s.get("Action", [])):
            if a.lower() == action.lower():
                return a
    return action


def finding(tool, check, policy_id, doc, actions, where=None, detail=""):
    actions = sorted({spelled(doc, a) for a in actions})
    where = where if where is not None else sorted({w for a in actions for w in statements_allowing(doc, a)})
    return {"tool": tool, "check": check, "policy": policy_id, "statements": sorted(where), "actions": actions, "detail": detail}


def one_statement_per_line(doc):
    """The policy as JSON with statement i on line i + 2, so a finding's line names its statement."""
    head = {k: v for k, v in doc.items() if k != "Statement"}
    body = ",\n".join(json.dumps(s) for s in statements(doc))
    return json.dumps(head)[:-1] + (", " if head else "") + '"Statement": [\n' + body + "\n]}"


# As `parliament --include-community-auditors`: their findings' titles and severities.
parliament.override_config(os.path.join(os.path.dirname(parliament.__file__), "community_auditors", "config_override.yaml"))


def parliament_findings(policy_id, doc):
    policy = parliament.analyze_policy_string(one_statement_per_line(doc), filepath=policy_id, include_community_auditors=True)
    out = []
    for f in policy.findings:
        f = parliament.enhance_finding(f)
        if is_finding_filtered(f):  # the CLI's default: LOW and above, less the config's ignores
            continue
        loc = f.location if isinstance(f.location, dict) else {}
        line = loc.get("lineno", loc.get("line"))
        where = [sid(doc, line - 2)] if isinstance(line, int) and 0 <= line - 2 < len(statements(doc)) else None
        detail = f"{f.severity} {f.title}: {f.detail or {k: v for k, v in loc.items() if k != 'filepath'}}"
        if "type" in loc:  # PRIVILEGE_ESCALATION: one method, its actions together
            out.append(finding("parliament", f"{f.issue}:{loc['type']}", policy_id, doc, loc["actions"], where, detail))
        elif "actions" in loc:  # one finding per action, as cloudsplaining reports them
            for a in as_list(loc["actions"]):
                out.append(finding("parliament", f.issue, policy_id, doc, [a], where, detail))
        else:
            named = f.detail if isinstance(f.detail, list) else []
            actions = [d["action"] for d in named if isinstance(d, dict) and "action" in d]
            out.append(finding("parliament", f.issue, policy_id, doc, actions, where, detail))
    return out


def cloudsplaining_findings(policy_id, doc):
    # Every risky action counts, ARN-scoped or conditioned or not: "role/*" is every role.
    results = scan_policy(doc, DEFAULT_EXCLUSIONS_CONFIG, flag_conditional_statements=True, flag_resource_arn_statements=True)
    out = []
    for check in CLOUDSPLAINING_CHECKS:
        detail = re.sub(r"<[^>]+>", "", results[check]["description"]).split(". ")[0]
        for item in results[check]["findings"]:
            if isinstance(item, dict):  # a privilege-escalation method: its actions together
                out.append(finding("cloudsplaining", f"{check}:{item['type']}", policy_id, doc, item["actions"], None, detail))
            else:
                out.append(finding("cloudsplaining", check, policy_id, doc, [item], None, detail))
    return out


def matches(entry, f):
    return (
        f"{f['tool']}:{f['check']}" in entry["checks"]
        and f["policy"] in entry["policies"]
        and set(f["statements"]) <= set(entry["statements"])
        and set(f["actions"]) <= set(entry["actions"])
    )


def load_allow(path):
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)["allow"]
    for i, e in enumerate(entries):
        missing = {"checks", "policies", "statements", "actions", "reason"} - set(e)
        if missing or len(e.get("reason", "")) < 40:
            raise SystemExit(f"{path}: entry {i} needs checks, policies, statements, actions and a specific reason (missing {sorted(missing)})")
    return entries


def stale_parts(entry, hits):
    """What an entry names that no finding needed: each check, policy, statement and action must be."""
    seen = {
        "checks": {f"{f['tool']}:{f['check']}" for f in hits},
        "policies": {f["policy"] for f in hits},
        "statements": {s for f in hits for s in f["statements"]},
        "actions": {a for f in hits for a in f["actions"]},
    }
    return [f"{key} {x}" for key in seen for x in entry[key] if x not in seen[key]]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--allow", default=os.path.join(here, "..", "policy-lint-allow.json"))
    ap.add_argument("--list", action="store_true", help="print every finding, allow-listed or not")
    ap.add_argument("templates", nargs="+")
    args = ap.parse_args()
    allow = load_allow(args.allow)
    hits = {i: [] for i in range(len(allow))}
    failed = False
    for path in args.templates:
        policies = extract(path)
        findings = []
        for policy_id, doc, kind in policies:
            findings += parliament_findings(policy_id, doc)
            if kind == "identity":
                findings += cloudsplaining_findings(policy_id, doc)
        unexpected = []
        for f in findings:
            matched = [i for i, e in enumerate(allow) if matches(e, f)]
            for i in matched:
                hits[i].append(f)
            if not matched:
                unexpected.append(f)
            if args.list or not matched:
                mark = "NOT ALLOWED" if not matched else f"allowed by #{matched[0]}"
                acts = " ".join(f["actions"][:8]) + (f" (+{len(f['actions']) - 8} more)" if len(f["actions"]) > 8 else "")
                print(f"  {mark}: {f['tool']}:{f['check']} {f['policy']} [{','.join(f['statements'])}] {acts}\n      {f['detail'][:300]}")
        n_statements = sum(len(statements(d)) for _, d, _ in policies)
        print(
            f"policy-lint {os.path.basename(path)}: {len(policies)} policies, {n_statements} statements, "
            f"{len(findings)} findings, {len(findings) - len(unexpected)} allow-listed, {len(unexpected)} not"
        )
        failed = failed or bool(unexpected)
    for i, e in enumerate(allow):
        parts = stale_parts(e, hits[i])
        if parts:
            failed = True
            print(f"  STALE allow-list entry #{i} ({e['reason'][:60]}...): no finding needs its {', '.join(parts)}")
    if failed:
        print(f"policy-lint: failed; narrow the policy, or allow-list the finding with its reason in {os.path.relpath(args.allow)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
