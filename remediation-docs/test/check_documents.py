"""Checks the Automation documents against the AWS API models and against themselves.

Usage: python test/check_documents.py DOC.yaml...            exit 1 if any check fails
       python test/check_documents.py --self-test DOC.yaml...  broken copies must be caught

API (botocore's service models, the same ones boto3 uses):
- aws:executeAwsApi and aws:assertAwsResourceProperty: Service is a botocore service, Api one of
  its operations, and the inputs pass botocore's own parameter validation (unknown or missing
  parameters, wrong types) with each '{{ Parameter }}' replaced by a value of the parameter's
  declared type; every output Selector (an assertion's PropertySelector) '$.Member...' names a
  member of the operation's output; an assertion has DesiredValues.
- aws:executeScript: the Python parses; the Handler is defined; every attribute used on an AWS
  client (a name bound by `NAME = boto3.client("service")`, and the same name inside helper
  functions) is a method of that boto3 client; keyword arguments of a call to an API method
  are members of its input and include the required ones; get_paginator/can_paginate name a
  pageable operation; a helper called as f(client, "operation", "ResultKey", **params) names
  an operation, a member of its output, and members of its input; events["X"] reads a key of
  InputPayload; every '$.Payload.X' output selector names a key the script writes; every
  boto3.client(...) is bound to a name (else its calls would go unchecked).

Permissions: every call above (service:Api) is listed, in backquotes, in the description.

Structure: the parameters every dormant document takes (AutomationAssumeRole, PrincipalKind,
PrincipalName) with their constraints; assumeRole; every '{{ X }}' is a parameter or an
earlier step's output; document outputs name declared step outputs; branch targets exist;
step names are unique; no nextStep (the simulator ignores it: steps run in document order,
branches end with isEnd).
"""

import ast
import re
import sys
from pathlib import Path

import boto3
import botocore.session
import yaml
from botocore.validate import ParamValidator

PLACEHOLDER = re.compile(r"^\{\{\s*([\w.:-]+)\s*\}\}$")
ANY_PLACEHOLDER = re.compile(r"\{\{\s*([\w.:-]+)\s*\}\}")
SESSION = botocore.session.get_session()
CLIENTS = {}


def client(service):
    if service not in CLIENTS:
        # Only introspected, never called: no credentials or endpoint needed.
        CLIENTS[service] = boto3.client(service, region_name="us-east-1",
                                        aws_access_key_id="x", aws_secret_access_key="x")
    return CLIENTS[service]


def operation_model(service, api):
    model = SESSION.get_service_model(service)
    return model.operation_model(api) if api in model.operation_names else None


def sample(param):
    """A value of the parameter's declared type, standing in for '{{ param }}'."""
    kind = param.get("type")
    value = param.get("default") or "placeholder"
    return {"StringList": [value] if isinstance(value, str) else value, "Integer": 1,
            "Boolean": True, "StringMap": {"k": "v"}, "MapList": [{"k": "v"}]}.get(kind, value)


def substitute(value, params):
    if isinstance(value, str):
        match = PLACEHOLDER.match(value)
        if match and match.group(1) in params:
            return sample(params[match.group(1)])
        return value
    if isinstance(value, list):
        return [substitute(v, params) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, params) for k, v in value.items()}
    return value


def check_aws_api(step, params, errors, used):
    inputs = dict(step["inputs"])
    service, api = inputs.pop("Service", None), inputs.pop("Api", None)
    used.add(f"{service}:{api}")
    where = f"step {step['name']}"
    selectors = [(out.get("Name"), out.get("Selector", "")) for out in step.get("outputs", [])]
    if step.get("action") == "aws:assertAwsResourceProperty":
        selectors.append(("PropertySelector", inputs.pop("PropertySelector", "")))
        desired = inputs.pop("DesiredValues", None)
        if not (isinstance(desired, list) and desired and all(isinstance(v, str) for v in desired)):
            errors.append(f"{where}: DesiredValues must be a non-empty list of strings")
    if service not in SESSION.get_available_services():
        errors.append(f"{where}: unknown Service {service!r}")
        return
    op = operation_model(service, api)
    if op is None:
        errors.append(f"{where}: {service} has no Api {api!r}")
        return
    report = ParamValidator().validate(substitute(inputs, params), op.input_shape)
    if report.has_errors():
        errors.append(f"{where}: {service}.{api} inputs: "
                      + report.generate_report().replace("\n", "; "))
    outputs = op.output_shape.members if op.output_shape else {}
    for name, selector in selectors:
        first = re.match(r"^\$\.(\w+)", selector)
        if not first or first.group(1) not in outputs:
            errors.append(f"{where}: {name} selector {selector!r} is "
                          f"not in {api}'s output ({', '.join(outputs) or 'empty'})")


def python_api_name(client_obj, method):
    return client_obj.meta.method_to_api_mapping.get(method)


def check_call_params(where, svc, method, keywords, has_star, errors, used):
    c = client(svc)
    api = python_api_name(c, method)
    if api is None:
        return
    used.add(f"{svc}:{api}")
    shape = operation_model(svc, api).input_shape
    members = shape.members if shape else {}
    for kw in keywords:
        if kw not in members:
            errors.append(f"{where}: {svc}.{method}() has no parameter {kw!r}")
    if not has_star:
        for required in (shape.required_members if shape else []):
            if required not in keywords:
                errors.append(f"{where}: {svc}.{method}() misses required parameter {required!r}")


def check_script(step, errors, used):
    inputs = step["inputs"]
    where = f"step {step['name']}"
    runtime = inputs.get("Runtime", "")
    if not re.fullmatch(r"python3\.\d+", runtime):
        errors.append(f"{where}: Runtime {runtime!r} is not a Python 3 runtime")
        return
    try:
        tree = ast.parse(inputs.get("Script", ""))
    except SyntaxError as e:
        errors.append(f"{where}: script does not parse: {e}")
        return
    handler = inputs.get("Handler", "")
    functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    if handler not in functions:
        errors.append(f"{where}: Handler {handler!r} is not a function of the script")

    # Names bound to boto3 clients: NAME = boto3.client("service").
    def is_client_call(node):
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "client" and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "boto3")

    clients = {}
    bound = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and is_client_call(node.value)
                and all(isinstance(t, ast.Name) for t in node.targets)):
            bound.add(id(node.value))
            svc = node.value.args[0].value if node.value.args else None
            if svc not in SESSION.get_available_services():
                errors.append(f"{where}: boto3.client({svc!r}) is not a service")
                continue
            for target in node.targets:
                if isinstance(target, ast.Name):
                    clients[target.id] = svc
    if not clients:
        errors.append(f"{where}: no boto3 client found (NAME = boto3.client('service'))")
    for node in ast.walk(tree):
        if is_client_call(node) and id(node) not in bound:
            errors.append(f"{where}: line {node.lineno}: bind the client to a name on its own "
                          "(NAME = boto3.client('service')), or its calls go unchecked")

    for node in ast.walk(tree):
        # Every client.method used (called, or passed on) exists on the boto3 client.
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in clients):
            svc = clients[node.value.id]
            if not hasattr(client(svc), node.attr):
                errors.append(f"{where}: the boto3 {svc} client has no method {node.attr!r}")
        if not isinstance(node, ast.Call):
            continue
        keywords = [k.arg for k in node.keywords if k.arg]
        has_star = any(k.arg is None for k in node.keywords)
        func = node.func
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and func.value.id in clients):
            svc = clients[func.value.id]
            c = client(svc)
            if func.attr in ("get_paginator", "can_paginate"):
                name = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                if name is None:
                    continue  # a variable: checked where the literal is written (helper calls)
                if not (hasattr(c, name) and c.can_paginate(name)):
                    errors.append(f"{where}: {svc}.{func.attr}({name!r}): not a pageable operation")
            elif hasattr(c, func.attr):
                check_call_params(where, svc, func.attr, keywords, has_star, errors, used)
        # client.get_paginator("operation").paginate(**params)
        if (isinstance(func, ast.Attribute) and func.attr == "paginate"
                and isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Attribute)
                and func.value.func.attr == "get_paginator"
                and isinstance(func.value.func.value, ast.Name) and func.value.func.value.id in clients
                and func.value.args and isinstance(func.value.args[0], ast.Constant)):
            svc, method = clients[func.value.func.value.id], func.value.args[0].value
            if hasattr(client(svc), method):
                check_call_params(where, svc, method, keywords, has_star, errors, used)
        # helper(client, "operation", "ResultKey", **params)
        args = node.args
        if (len(args) >= 2 and isinstance(args[0], ast.Name) and args[0].id in clients
                and isinstance(args[1], ast.Constant) and isinstance(args[1].value, str)
                and re.fullmatch(r"[a-z][a-z0-9_]*", args[1].value)):
            svc, method = clients[args[0].id], args[1].value
            api = python_api_name(client(svc), method)
            if api is None:
                errors.append(f"{where}: the boto3 {svc} client has no operation {method!r}")
                continue
            check_call_params(where, svc, method, keywords, has_star, errors, used)
            if len(args) >= 3 and isinstance(args[2], ast.Constant):
                out = operation_model(svc, api).output_shape
                if not out or args[2].value not in out.members:
                    errors.append(f"{where}: {svc}.{method} output has no {args[2].value!r}")

    # events["X"] reads only what InputPayload provides.
    payload = inputs.get("InputPayload") or {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                and node.value.id == "events" and isinstance(node.slice, ast.Constant)
                and node.slice.value not in payload):
            errors.append(f"{where}: script reads events[{node.slice.value!r}], not in InputPayload")
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for out in step.get("outputs", []):
        m = re.fullmatch(r"\$\.Payload\.(\w+)", out.get("Selector", ""))
        if not m or m.group(1) not in strings:
            errors.append(f"{where}: output selector {out.get('Selector')!r} names no key the script returns")


def check_structure(doc, errors):
    params = doc.get("parameters", {})
    for name in ("AutomationAssumeRole", "PrincipalKind", "PrincipalName"):
        if name not in params:
            errors.append(f"parameter {name} missing")
    if doc.get("assumeRole") != "{{ AutomationAssumeRole }}":
        errors.append("assumeRole must be '{{ AutomationAssumeRole }}'")
    if "allowedPattern" not in params.get("AutomationAssumeRole", {}):
        errors.append("AutomationAssumeRole needs an allowedPattern")
    if not set(params.get("PrincipalKind", {}).get("allowedValues", [])) <= {"role", "user"}:
        errors.append("PrincipalKind allowedValues must be role and/or user")
    if "allowedPattern" not in params.get("PrincipalName", {}):
        errors.append("PrincipalName needs an allowedPattern")
    if not doc.get("description", "").lstrip().startswith("# "):
        errors.append("description should start with a markdown title")

    steps = doc.get("mainSteps", [])
    names = [s.get("name") for s in steps]
    if len(set(names)) != len(names):
        errors.append(f"step names are not unique: {names}")
    known = set(params)
    declared_outputs = set()
    for step in steps:
        where = f"step {step.get('name')}"
        if "nextStep" in step:
            errors.append(f"{where}: nextStep is not used in these documents (the simulator "
                          "ignores it); order the steps and end branches with isEnd")
        for ref in ANY_PLACEHOLDER.findall(yaml.safe_dump(step.get("inputs", {}))):
            if ref not in known and not ref.startswith(("automation:", "global:")):
                errors.append(f"{where}: '{{{{ {ref} }}}}' is neither a parameter nor an earlier output")
        if step.get("action") == "aws:branch":
            for choice in step["inputs"].get("Choices", []):
                if choice.get("NextStep") not in names:
                    errors.append(f"{where}: branch target {choice.get('NextStep')!r} is not a step")
        for out in step.get("outputs", []):
            known.add(f"{step['name']}.{out['Name']}")
            declared_outputs.add(f"{step['name']}.{out['Name']}")
    for out in doc.get("outputs", []):
        if out not in declared_outputs:
            errors.append(f"document output {out!r} is not a declared step output")
    if not doc.get("outputs"):
        errors.append("the document declares no outputs")


def check(text):
    doc = yaml.safe_load(text)
    errors = []
    params = doc.get("parameters", {})
    check_structure(doc, errors)
    used = set()  # "service:Api" of every call the document makes
    for step in doc.get("mainSteps", []):
        if step.get("action") in ("aws:executeAwsApi", "aws:assertAwsResourceProperty"):
            check_aws_api(step, params, errors, used)
        elif step.get("action") == "aws:executeScript":
            check_script(step, errors, used)
    # The description's permission list is what operators grant the automation role: every
    # call the document makes is named there, as `service:Api`.
    description = doc.get("description", "")
    for action in sorted(used):
        if f"`{action}`" not in description:
            errors.append(f"the description does not list the permission `{action}`, which the "
                          "document calls")
    return errors


# Deliberately broken copies; each must be caught. (document, description, old, new)
BREAKAGES = [
    ("Dormant-QuarantineIdentity.yaml", "misspelled Api", "Api: ListAttachedRolePolicies",
     "Api: ListAttachedRolePolicy"),
    ("Dormant-QuarantineIdentity.yaml", "misspelled parameter", "      UserName: '{{ PrincipalName }}'\n      PathPrefix",
     "      UserNme: '{{ PrincipalName }}'\n      PathPrefix"),
    ("Dormant-QuarantineIdentity.yaml", "unknown Service", "Service: iam", "Service: iamx"),
    ("Dormant-QuarantineIdentity.yaml", "output of an unknown step", "RoleName: '{{ PrincipalName }}'",
     "RoleName: '{{ Quarantine.PolicyName }}'"),
    ("Dormant-QuarantineIdentity.yaml", "misspelled script parameter", "iam.tag_role(RoleName=name, Tags=tags)",
     "iam.tag_role(RoleName=name, Tag=tags)"),
    ("Dormant-QuarantineIdentity.yaml", "assertion selector not in response",
     "PropertySelector: $.AttachedPolicies[0]", "PropertySelector: $.Policies[0]"),
    ("Dormant-QuarantineIdentity.yaml", "assertion without DesiredValues",
     "      DesiredValues:\n        - DormantQuarantineDenyAll\n    isEnd: true\n  - name: VerifyUserQuarantined",
     "    isEnd: true\n  - name: VerifyUserQuarantined"),
    ("Dormant-QuarantineIdentity.yaml", "misspelled sts method", "sts.get_caller_identity()",
     "sts.get_caller_identities()"),
    ("Dormant-QuarantineIdentity.yaml", "misspelled attach parameter", "iam.attach_user_policy(UserName=name, PolicyArn=arn)",
     "iam.attach_user_policy(UserName=name, Policy=arn)"),
    ("Dormant-QuarantineIdentity.yaml", "client not bound to a name", 'sts = boto3.client("sts")',
     'sts = [boto3.client("sts")][0]'),
    ("Dormant-QuarantineIdentity.yaml", "permission missing from the description",
     "`iam:AttachUserPolicy`, `iam:ListUserTags`", "`iam:ListUserTags`"),
    ("Dormant-QuarantineIdentity.yaml", "undefined placeholder", "UserName: '{{ PrincipalName }}'", "UserName: '{{ UserName }}'"),
    ("Dormant-ReleaseIdentity.yaml", "misspelled script method", "iam.delete_role_policy(", "iam.delete_role_polcy("),
    ("Dormant-ReleaseIdentity.yaml", "misspelled detach parameter", "iam.detach_role_policy(RoleName=name, PolicyArn=arn)",
     "iam.detach_role_policy(Role=name, PolicyArn=arn)"),
    ("Dormant-ReleaseIdentity.yaml", "misspelled script parameter", "iam.untag_user(UserName=name, TagKeys=",
     "iam.untag_user(UserName=name, TagKey="),
    ("Dormant-ReleaseIdentity.yaml", "misspelled paginator", '"list_role_tags"', '"list_role_tag"'),
    ("Dormant-ReleaseIdentity.yaml", "misspelled paginate parameter", 'paginate(UserName=name)', 'paginate(User=name)'),
    ("Dormant-DeleteIdentity.yaml", "misspelled helper operation", '"list_mfa_devices"', '"list_mfa_device"'),
    ("Dormant-DeleteIdentity.yaml", "wrong helper result key", '"MFADevices"', '"MfaDevices"'),
    ("Dormant-DeleteIdentity.yaml", "missing required parameter", "iam.delete_access_key(UserName=name, AccessKeyId=key_id)",
     "iam.delete_access_key(UserName=name)"),
    ("Dormant-DeleteIdentity.yaml", "method passed on, misspelled", "iam.detach_role_policy(", "iam.detach_role_polices("),
    ("Dormant-DeactivateAccessKeys.yaml", "events key not in InputPayload", 'events["AccessKeyIds"]', 'events["KeyIds"]'),
    ("Dormant-DeactivateAccessKeys.yaml", "output key never returned", "Selector: $.Payload.Changed", "Selector: $.Payload.Updated"),
]


def main(argv):
    self_test = argv[:1] == ["--self-test"]
    files = [Path(f) for f in (argv[1:] if self_test else argv)]
    if not files:
        raise SystemExit("no documents given")
    failures, checks = 0, 0
    if not self_test:
        for f in files:
            errors = check(f.read_text())
            print(f"{'FAIL' if errors else 'ok  '} api+structure {f.name}")
            for e in errors:
                print(f"       {e}")
            failures += bool(errors)
            checks += 1
        scripts = {}
        for f in files:
            for step in yaml.safe_load(f.read_text())["mainSteps"]:
                scripts[f.name] = step.get("inputs", {}).get("Script")
        pair = [scripts.get(f"Dormant-{w}AccessKeys.yaml") for w in ("Deactivate", "Reactivate")]
        if all(pair):
            same = pair[0].replace('"Inactive"', '"Active"') == pair[1]
            print(f"{'ok  ' if same else 'FAIL'} key scripts differ only in TARGET_STATUS")
            failures += not same
            checks += 1
        print(f"api: {checks - failures} passed, {failures} failed")
        return failures
    by_name = {f.name: f for f in files}
    for name, label, old, new in BREAKAGES:
        if name not in by_name:
            continue
        text = by_name[name].read_text()
        if old not in text:
            print(f"FAIL self-test {label}: {old!r} not found in {name} (update the self-test)")
            failures += 1
            checks += 1
            continue
        errors = check(text.replace(old, new, 1))
        print(f"{'ok  ' if errors else 'FAIL'} api check catches {label} in {name}"
              + (f": {errors[0]}" if errors else " (not caught!)"))
        failures += not errors
        checks += 1
    print(f"api-self-test: {checks - failures} passed, {failures} failed")
    return failures


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:]) else 0)
