"""IAM authorisation for the launcher's --enforce mode (README.md, 'Enforcing IAM policies').

moto 5.2.5 can check permissions itself (INITIAL_NO_AUTH_ACTION_COUNT, /moto-api/reset-auth), but
it is process-wide and evaluates every non-S3 request against Resource "*": a statement scoped to
an ARN never matches, and an Allow whose Condition is not met denies the whole request. Least
privilege policies are all scoped, so the launcher decides itself, before moto sees the request:
the caller's identity policies (inline and attached) with the action, the resource ARN of the
request, and the condition keys it can know; AssumeRole also needs the target's trust policy,
StartAutomationExecution also iam:PassRole on its AutomationAssumeRole.

Requests signed with a 12-digit access key (the test's own admin, README.md 'Accounts') are not
checked: they set the scene. Only credentials moto issued (AssumeRole, CreateAccessKey) are.
"""

import json
import re
from urllib.parse import parse_qs, unquote, urlparse

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

PARTITION = "aws"
# Operations IAM authorises under another operation's name.
ACTION_ALIASES = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    # The Service Authorization Reference data the CDK tests use has no GetFindingV2 action.
    "access-analyzer:GetFindingV2": "access-analyzer:GetFinding",
}
# IAM actions without resource-level permissions (Resource must be "*").
IAM_ACCOUNT_LEVEL = {
    "GenerateCredentialReport", "GetCredentialReport", "GetAccountAuthorizationDetails",
    "GetServiceLastAccessedDetails", "ListRoles", "ListUsers", "ListPolicies", "ListGroups",
    "ListInstanceProfiles", "GetAccountSummary", "ListAccountAliases",
}
IAM_INSTANCE_PROFILE_OPS = {"AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile",
                            "GetInstanceProfile", "CreateInstanceProfile"}
IAM_GROUP_OPS = {"AddUserToGroup", "RemoveUserFromGroup"}
# Condition keys this module can supply; any other key is reported as ignored (and treated as met).
KNOWN_KEYS = ("aws:principalarn", "aws:principalaccount", "aws:requestedregion",
              "iam:passedtoservice", "aws:resourcetag/", "aws:principaltag/", "iam:policyarn",
              "aws:tagkeys", "aws:requesttag/")


class Denied(Exception):
    def __init__(self, principal, action, resource, why):
        super().__init__(f"User: {principal} is not authorized to perform: {action} on resource: "
                         f"{resource} because {why}")
        self.principal, self.action, self.resource = principal, action, resource


class UnknownCredentials(Exception):
    pass


def aws_shaped_user_ids():
    """moto gives users lowercase ids; AWS's are AIDA + 17 of [A-Z0-9], which is what Config
    events carry and dormant resolves with ListUsers. Roles already get AROA ids."""
    import random
    import string

    from moto.iam import models

    original = models.User.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.id = "AIDA" + "".join(random.choices(string.ascii_uppercase + string.digits, k=17))

    models.User.__init__ = init


def is_admin(access_key):
    return re.fullmatch(r"\d{12}", access_key) is not None


def caller(account, access_key):
    """(principal ARN, role or user ARN, kind, name) of moto-issued credentials."""
    for assumed in sts_backends[account][PARTITION].assumed_roles:
        if assumed.access_key_id == access_key:
            role_arn = assumed.role_arn
            name = role_arn.split("/")[-1]
            session = f"arn:{PARTITION}:sts::{account}:assumed-role/{name}/{assumed.session_name}"
            return session, role_arn, "role", name
    backend = iam_backends[account][PARTITION]
    for user in backend.users.values():
        if any(k.access_key_id == access_key for k in user.access_keys):
            return user.arn, user.arn, "user", user.name
    raise UnknownCredentials(access_key)


def identity_policies(account, kind, name):
    backend = iam_backends[account][PARTITION]
    docs = []
    if kind == "role":
        for policy in backend.list_role_policies(name):
            docs.append(backend.get_role_policy(name, policy)[1])
        attached = backend.list_attached_role_policies(name)[0]
    else:
        for policy in backend.list_user_policies(name):
            docs.append(backend.get_user_policy(name, policy)["policy_document"])
        attached = backend.list_attached_user_policies(name)[0]
    for policy in attached:
        docs.append(next(v.document for v in policy.versions if v.is_default))
    return [json.loads(d) if isinstance(d, str) else d for d in docs]


def glob(pattern, value, ignore_case=False):
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def like(value, pattern):
    return glob(pattern, value)


def as_list(x):
    return x if isinstance(x, list) else [x]


def condition_met(conditions, context, ignored):
    for operator, keys in conditions.items():
        quantifier, _, op = operator.rpartition(":")
        if_exists = op.endswith("IfExists")
        op = op.removesuffix("IfExists")
        for key, wanted in keys.items():
            lowered = key.lower()
            if not lowered.startswith(KNOWN_KEYS):
                ignored.add(key)
                continue
            present = lowered in context
            values = as_list(context.get(lowered, []))
            if op == "Null":
                # "false": the key must be in the request; "true": it must not.
                if (str(wanted).lower() == "true") == present:
                    return False
                continue
            if not present:
                if if_exists or op.startswith(("StringNot", "ArnNot")) or quantifier == "ForAllValues":
                    continue
                return False
            wanted = [str(w) for w in as_list(wanted)]
            match = {"StringEquals": lambda v, w: v == w,
                     "StringNotEquals": lambda v, w: v == w,
                     "StringEqualsIgnoreCase": lambda v, w: v.lower() == w.lower(),
                     # The policy's value is the pattern: glob(pattern, request value).
                     "StringLike": like, "StringNotLike": like,
                     "ArnEquals": like, "ArnLike": like, "ArnNotEquals": like, "ArnNotLike": like,
                     "Bool": lambda v, w: v.lower() == w.lower()}.get(op)
            if match is None:
                ignored.add(f"{operator}:{key}")
                continue
            # A negated operator holds for a value that matches none of the policy's values;
            # ForAllValues: every request value must hold, otherwise (and ForAnyValue) one.
            negated = "Not" in op
            holds = [any(match(str(v), w) for w in wanted) != negated for v in values]
            ok = all(holds) if quantifier == "ForAllValues" else any(holds)
            if not ok:
                return False
    return True


def principal_matches(principal, caller_arns):
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for p in as_list(principal.get("AWS", [])):
        if p == "*" or p in caller_arns:
            return True
    return False


def evaluate(documents, action, resource, context, ignored, principals=None):
    """'deny', 'allow' or None (implicit deny) for one action on one resource."""
    allowed = False
    for doc in documents:
        for st in as_list(doc.get("Statement", [])):
            if principals is not None and not principal_matches(st.get("Principal"), principals):
                continue
            if "Action" in st:
                if not any(glob(a, action, ignore_case=True) for a in as_list(st["Action"])):
                    continue
            elif any(glob(a, action, ignore_case=True) for a in as_list(st.get("NotAction", []))):
                continue
            if principals is None:
                if "Resource" in st:
                    if not any(glob(r, resource) for r in as_list(st["Resource"])):
                        continue
                elif any(glob(r, resource) for r in as_list(st.get("NotResource", []))):
                    continue
            if not condition_met(st.get("Condition", {}), context, ignored):
                continue
            if st.get("Effect") == "Deny":
                return "deny"
            allowed = True
    return "allow" if allowed else None


def resource_tags(arn):
    m = re.fullmatch(r"arn:[^:]+:iam::(\d{12}):(role|user)/(?:.*/)?([^/]+)", arn)
    if not m:
        return {}
    backend = iam_backends[m.group(1)][PARTITION]
    try:
        if m.group(2) == "role":
            tags = backend.get_role(m.group(3)).tags
            tags = [{"Key": k, "Value": v["Value"]} for k, v in tags.items()] if isinstance(tags, dict) else tags
        else:
            tags = backend.list_user_tags(m.group(3))
    except Exception:
        return {}
    return {f"aws:resourcetag/{t['Key'].lower()}": t["Value"] for t in tags}


def iam_arn(account, kind, name):
    """The ARN IAM authorises for a named role or user, with its path when it exists."""
    backend = iam_backends[account][PARTITION]
    path = "/"
    try:
        path = (backend.get_role(name) if kind == "role" else backend.get_user(name)).path
    except Exception:
        pass
    return f"arn:{PARTITION}:iam::{account}:{kind}{path}{name}"


def resources(service, operation, account, region, form, body, environ):
    """[(action, resource ARN)] a request needs: its own action on each resource it touches."""
    own = f"{service}:{operation}"
    if service == "iam":
        if operation in IAM_ACCOUNT_LEVEL:
            return [(own, "*")]
        if operation in IAM_INSTANCE_PROFILE_OPS:
            name = form.get("InstanceProfileName", "*")
            return [(own, f"arn:{PARTITION}:iam::{account}:instance-profile/{name}")]
        if operation in IAM_GROUP_OPS:
            return [(own, f"arn:{PARTITION}:iam::{account}:group/{form.get('GroupName', '*')}")]
        if "RoleName" in form:
            return [(own, iam_arn(account, "role", form["RoleName"]))]
        if "UserName" in form:
            return [(own, iam_arn(account, "user", form["UserName"]))]
        if "AccessKeyId" in form:  # GetAccessKeyLastUsed: authorised on the key's user
            owner = next((u.name for u in iam_backends[account][PARTITION].users.values()
                          if any(k.access_key_id == form["AccessKeyId"] for k in u.access_keys)),
                         "*")
            return [(own, iam_arn(account, "user", owner))]
        return [(own, form.get("PolicyArn") or form.get("Arn", "*"))]
    if service == "sts":
        return [(own, form.get("RoleArn", "*"))]
    if service == "dynamodb":
        table = lambda t: f"arn:{PARTITION}:dynamodb:{region}:{account}:table/{t}"
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [(own, table(t)) for t in body.get("RequestItems", {})]
        if operation in ("TransactWriteItems", "TransactGetItems"):
            out = []
            for item in body.get("TransactItems", []):
                for kind, request in item.items():
                    out.append((f"dynamodb:{kind}Item" if kind != "ConditionCheck" else
                                "dynamodb:ConditionCheckItem", table(request["TableName"])))
            return out
        arn = table(body.get("TableName", "*"))
        if body.get("IndexName"):
            arn += f"/index/{body['IndexName']}"
        return [(own, arn)]
    if service == "events":
        buses = {e.get("EventBusName") or "default" for e in body.get("Entries", [])} or {"default"}
        return [(own, b if b.startswith("arn:") else
                 f"arn:{PARTITION}:events:{region}:{account}:event-bus/{b}") for b in sorted(buses)]
    if service == "sqs":
        url = body.get("QueueUrl") or form.get("QueueUrl")
        if url:
            parts = urlparse(url).path.strip("/").split("/")
            return [(own, f"arn:{PARTITION}:sqs:{region}:{parts[0]}:{parts[-1]}")]
        return [(own, f"arn:{PARTITION}:sqs:{region}:{account}:{body.get('QueueName', '*')}")]
    if service == "ssm" and operation == "StartAutomationExecution":
        doc, version = body.get("DocumentName", "*"), body.get("DocumentVersion", "$DEFAULT")
        base = f"arn:{PARTITION}:ssm:{region}:{account}"
        return [(own, f"{base}:document/{doc}"),
                (own, f"{base}:automation-definition/{doc}:{version}"),
                (own, f"{base}:automation-execution/new")]
    if service == "ssm" and "AutomationExecutionId" in body:
        return [(own, f"arn:{PARTITION}:ssm:{region}:{account}:automation-execution/"
                      f"{body['AutomationExecutionId']}")]
    if service == "access-analyzer":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        return [(own, unquote(query.get("analyzerArn", ["*"])[0]))]
    if service == "securityhub" and operation == "BatchImportFindings":
        # Authorised on the product each finding is imported as.
        return [(own, f.get("ProductArn", "*")) for f in body.get("Findings", [])] or [(own, "*")]
    if service == "securityhub" and operation == "BatchUpdateFindings":
        return [(own, f"arn:{PARTITION}:securityhub:{region}:{account}:hub/default")]
    return [(own, "*")]


def authorize(account, access_key, service, operation, region, form, body, environ):
    """(caller ARN or None for the unchecked admin, the condition keys left unchecked) when
    allowed; else raises Denied."""
    ignored = set()
    if is_admin(access_key):
        return None, ignored
    principal, identity_arn, kind, name = caller(account, access_key)
    if (service, operation) == ("sts", "GetCallerIdentity"):
        return principal, ignored  # AWS answers it whatever the policies say
    policies = identity_policies(account, kind, name)
    context = {"aws:principalarn": identity_arn, "aws:principalaccount": account,
               "aws:requestedregion": region}
    needed = resources(service, operation, account, region, form, body, environ)
    if service == "ssm" and operation == "StartAutomationExecution":
        role = (body.get("Parameters", {}).get("AutomationAssumeRole") or [None])[0]
        if role:
            needed.append(("iam:PassRole", role))
    if service == "iam":
        context.update(request_keys(form))
    for action, resource in needed:
        action = ACTION_ALIASES.get(action, action)
        ctx = dict(context, **resource_tags(resource))
        if action == "iam:PassRole":
            ctx["iam:passedtoservice"] = "ssm.amazonaws.com"
        verdict = evaluate(policies, action, resource, ctx, ignored)
        if verdict == "deny":
            raise Denied(principal, action, resource,
                         "an explicit deny in an identity-based policy applies")
        if verdict is None:
            raise Denied(principal, action, resource,
                         f"no identity-based policy allows the {action} action")
        if action == "sts:AssumeRole":
            trusted(principal, identity_arn, account, resource, ctx, ignored)
    return principal, ignored


def request_keys(form):
    """The condition keys an IAM request carries: iam:PolicyARN (Attach/Detach*Policy),
    aws:TagKeys (Tag*/Untag*: Tags.member.N.Key, TagKeys.member.N) and aws:RequestTag/<key>."""
    out = {}
    if "PolicyArn" in form:
        out["iam:policyarn"] = form["PolicyArn"]
    keys = [v for k, v in form.items()
            if re.fullmatch(r"Tags\.member\.\d+\.Key|TagKeys\.member\.\d+", k)]
    if keys:
        out["aws:tagkeys"] = keys
    # aws:RequestTag/<key>: the value a Tag* request writes under that key (key case-blind).
    for k, key in form.items():
        m = re.fullmatch(r"Tags\.member\.(\d+)\.Key", k)
        if m:
            out[f"aws:requesttag/{key.lower()}"] = form.get(f"Tags.member.{m.group(1)}.Value", "")
    return out


def trusted(principal, identity_arn, account, role_arn, context, ignored):
    """The target role's trust policy must name the caller (its role ARN, account or root)."""
    m = re.fullmatch(r"arn:[^:]+:iam::(\d{12}):role/(?:.*/)?([^/]+)", role_arn)
    if not m:
        raise Denied(principal, "sts:AssumeRole", role_arn, "it is not a role ARN")
    try:
        role = iam_backends[m.group(1)][PARTITION].get_role(m.group(2))
    except Exception:
        raise Denied(principal, "sts:AssumeRole", role_arn, "the role does not exist")
    trust = json.loads(role.assume_role_policy_document)
    names = {identity_arn, account, f"arn:{PARTITION}:iam::{account}:root"}
    if evaluate([trust], "sts:AssumeRole", role_arn, context, ignored, principals=names) != "allow":
        raise Denied(principal, "sts:AssumeRole", role_arn,
                     "the role's trust policy does not allow it")
