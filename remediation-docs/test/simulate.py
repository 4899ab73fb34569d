"""Runs every dormant Automation document against the moto emulator and checks what it did to IAM.

Each document runs in @cdklabs/cdk-ssm-documents' simulator (test/sim-runner.js): its
aws:executeAwsApi steps call IAM through the AWS SDK for JavaScript, its aws:executeScript
steps run the document's own Python with boto3, both against moto (AWS_ENDPOINT_URL), so the
documents really change IAM state. For each document: seed an identity, dump its state, run the
document, check the state, run it again (nothing may change), run the reversal where there is one
(the dump must equal the original), and check the emulator's request log (which calls, in which
order). Usage: python test/simulate.py   (from anywhere; needs node_modules and the root .venv)
"""

import copy
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent
ROOT = DOCS.parent
ACCOUNT = "210000000017"  # a 12-digit access key id is the account, in the dormant launcher
# dormant's quarantine policy: the launcher creates it in every account, as the member stack does.
QUARANTINE_ARN = f"arn:aws:iam::{ACCOUNT}:policy/dormant/DormantQuarantineDenyAll"
# The names of the inline deny-all earlier versions wrote instead (still recognised on release).
QUARANTINE_POLICY = "DormantQuarantineDenyAll"
SECOND_POLICY = "DormantQuarantineDenyAll-2"
# The document dormant versions before policy ownership wrote (still recognised as dormant's), and
# the managed policy's (tests/emulator/launcher.py, src/domain/quarantine.rs managed_document).
DENY_ALL = {"Version": "2012-10-17", "Statement": [
    {"Sid": "DormantQuarantine", "Effect": "Deny", "Action": "*", "Resource": "*"}]}
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
STAGE_TAGS = ["dormant:stage", "dormant:next-step", "dormant:next-step-at"]
GHOST_KEY = "AKIAGHOST00000000000"

results = []


def check(label, ok, detail=None):
    results.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'} {label}")
    if not ok and detail is not None:
        print(f"       {detail}")


def doc(name):
    return str(DOCS / f"Dormant-{name}.yaml")


def script_function(document, function):
    """A function of a document's script, e.g. its `marker`."""
    import yaml
    steps = yaml.safe_load(Path(doc(document)).read_text())["mainSteps"]
    namespace = {}
    exec(next(s["inputs"]["Script"] for s in steps if s["action"] == "aws:executeScript"), namespace)
    return namespace[function]


def deny_all(kind, name):
    """The inline quarantine policy an earlier version wrote for one identity (Sid with its marker)."""
    sid = "DormantQuarantine" + script_function("ReleaseIdentity", "marker")(kind, name)
    return {"Version": "2012-10-17", "Statement": [{"Sid": sid, "Effect": "Deny", "Action": "*", "Resource": "*"}]}


# --- processes -----------------------------------------------------------------------------


class Emulator:
    """tests/emulator/launcher.py: moto on 127.0.0.1, a free port, plus /_dormant/ controls."""

    def __init__(self, workdir):
        port_file = Path(workdir) / "moto.port"
        self.log = open(Path(workdir) / "launcher.log", "w")
        # stdin is a pipe: the launcher exits when we close it (or when we die).
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/emulator/launcher.py"), "--port", "0",
             "--port-file", str(port_file)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"emulator did not start; see {self.log.name}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text().strip()}"

    def requests(self):
        with urllib.request.urlopen(f"{self.url}/_dormant/requests?account={ACCOUNT}") as r:
            return json.load(r)

    def clear_requests(self):
        req = urllib.request.Request(f"{self.url}/_dormant/requests?account={ACCOUNT}", method="DELETE")
        urllib.request.urlopen(req).close()

    def mutations(self):
        """The log's IAM calls that change something (not Get*/List*), oldest first."""
        return [r for r in self.requests()
                if r["service"] == "iam" and not r["operation"].startswith(("Get", "List"))]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


ANSWER = "@@dormant-sim@@ "


class Simulator:
    """test/sim-runner.js: one JSON request per line in, one marked JSON result line out."""

    def __init__(self, env, workdir):
        self.log = open(Path(workdir) / "simulator.log", "w")
        self.proc = subprocess.Popen(
            ["node", str(HERE / "sim-runner.js")], cwd=DOCS, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)

    def run(self, document, **inputs):
        self.proc.stdin.write(json.dumps({"document": document, "inputs": inputs}) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"simulator died; see {self.log.name}")
            if line.startswith(ANSWER):
                return json.loads(line[len(ANSWER):])
            self.log.write(line)  # the simulator's worker threads log to stdout

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --- IAM state ---------------------------------------------------------------------------------


class State:
    def __init__(self, iam, ssc_file):
        self.iam, self.ssc_file = iam, ssc_file

    def service_specific(self):
        return json.loads(Path(self.ssc_file).read_text())

    def dump(self, kind, name):
        """Everything the documents may touch on one role or user (and nothing time-dependent)."""
        iam = self.iam
        try:
            if kind == "role":
                iam.get_role(RoleName=name)
            else:
                iam.get_user(UserName=name)
        except ClientError as e:
            if e.response["Error"]["Code"] == "NoSuchEntity":
                return {"exists": False}
            raise
        if kind == "role":
            who = {"RoleName": name}
            policies = iam.list_role_policies(**who)["PolicyNames"]
            d = {"inline": {p: iam.get_role_policy(**who, PolicyName=p)["PolicyDocument"] for p in policies},
                 "attached": sorted(a["PolicyArn"] for a in iam.list_attached_role_policies(**who)["AttachedPolicies"]),
                 "tags": {t["Key"]: t["Value"] for t in iam.list_role_tags(**who)["Tags"]},
                 "instance_profiles": sorted(p["InstanceProfileName"] for p in
                                             iam.list_instance_profiles_for_role(**who)["InstanceProfiles"])}
        else:
            who = {"UserName": name}
            policies = iam.list_user_policies(**who)["PolicyNames"]
            try:
                iam.get_login_profile(**who)
                login = True
            except ClientError as e:
                if e.response["Error"]["Code"] != "NoSuchEntity":
                    raise
                login = False
            d = {"inline": {p: iam.get_user_policy(**who, PolicyName=p)["PolicyDocument"] for p in policies},
                 "attached": sorted(a["PolicyArn"] for a in iam.list_attached_user_policies(**who)["AttachedPolicies"]),
                 "tags": {t["Key"]: t["Value"] for t in iam.list_user_tags(**who)["Tags"]},
                 "keys": {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(**who)["AccessKeyMetadata"]},
                 "login_profile": login,
                 "groups": sorted(g["GroupName"] for g in iam.list_groups_for_user(**who)["Groups"]),
                 "signing_certs": {c["CertificateId"]: c["Status"] for c in
                                   iam.list_signing_certificates(**who)["Certificates"]},
                 "ssh_keys": {k["SSHPublicKeyId"]: k["Status"] for k in iam.list_ssh_public_keys(**who)["SSHPublicKeys"]},
                 "mfa": sorted(m["SerialNumber"] for m in iam.list_mfa_devices(**who)["MFADevices"]),
                 "service_specific": sorted(c["ServiceSpecificCredentialId"]
                                            for c in self.service_specific().get(name, []))}
        return {"exists": True, **d}


def show(label, dump):
    """One concise line: inline policies by name, no empty fields, ARNs without the account."""
    if dump.get("exists"):
        dump = {k: v for k, v in {**dump, "inline": sorted(dump["inline"])}.items()
                if k != "exists" and v not in ([], {})}
    text = json.dumps(dump, sort_keys=True, separators=(",", ":"))
    print(f"       {label:<14} {text.replace(f'arn:aws:iam::{ACCOUNT}:', '')}")


def mutation_summary(entries):
    return [f"{e['operation']}({e.get('AccessKeyId') or e.get('PolicyName') or e.get('PolicyArn') or ''})"
            .replace("()", "") for e in entries]


# --- seeding -----------------------------------------------------------------------------------


def make_credentials():
    """A self-signed certificate and an SSH public key (moto parses both)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dormant-sim")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    ssh = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return cert.public_bytes(serialization.Encoding.PEM).decode(), ssh.decode()


def managed_policy(iam, name):
    return iam.create_policy(PolicyName=name, PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}))["Policy"]["Arn"]


APP_POLICY = json.dumps({"Version": "2012-10-17",
                         "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})


def tags(mapping):
    return [{"Key": k, "Value": v} for k, v in mapping.items()]


# --- scenarios ---------------------------------------------------------------------------------


def quarantined(dump):
    """The dump with dormant's quarantine policy attached and dormant:stage=quarantined."""
    expected = copy.deepcopy(dump)
    expected["attached"] = sorted(expected["attached"] + [QUARANTINE_ARN])
    expected["tags"]["dormant:stage"] = "quarantined"
    return expected


def scenario_quarantine_release_role(sim, emu, state, iam):
    print("== Dormant-QuarantineIdentity <-> Dormant-ReleaseIdentity, role")
    name = "sim-quarantine-role"
    iam.create_role(RoleName=name, Path="/app/", AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName=name, PolicyName="app-inline", PolicyDocument=APP_POLICY)
    iam.attach_role_policy(RoleName=name, PolicyArn=managed_policy(iam, "sim-quarantine-role-managed"))
    # A lapsed exemption: the owners' tags, which release must never remove.
    iam.tag_role(RoleName=name, Tags=tags({"team": "payments", "dormant:exempt-until": "2020-01-01",
                                           "dormant:exempt-reason": "until the migration"}))
    before = state.dump("role", name)
    show("before", before)

    emu.clear_requests()
    run = sim.run(doc("QuarantineIdentity"), PrincipalKind="role", PrincipalName=name)
    after = state.dump("role", name)
    show("after", after)
    log = [r["operation"] for r in emu.requests() if r["service"] in ("iam", "sts")]
    check("quarantine role: succeeds", run["status"] == "Success", run.get("error"))
    check("quarantine role: runs the role branch and its read-back assertion",
          run["steps"] == ["QuarantineIdentity", "ChoosePrincipalKind", "VerifyRoleQuarantined"], run["steps"])
    check("quarantine role: outputs name the policy of the role's account, attached by this run, tag written",
          run["outputs"] == {"QuarantineIdentity.PolicyArn": QUARANTINE_ARN, "QuarantineIdentity.Attached": True,
                             "QuarantineIdentity.TagWritten": True}, run["outputs"])
    check("quarantine role: attaches dormant's managed policy and tags; no inline policy written",
          after == quarantined(before), {"expected": quarantined(before), "got": after})
    calls = mutation_summary(emu.mutations())
    check("quarantine role: IAM changes are AttachRolePolicy(dormant's policy), TagRole; never PutRolePolicy",
          calls == [f"AttachRolePolicy({QUARANTINE_ARN})", "TagRole"], calls)
    check("quarantine role: the policy's default version is read before the attach",
          "AttachRolePolicy" in log
          and log.index("GetPolicy") < log.index("GetPolicyVersion") < log.index("AttachRolePolicy"), log)

    emu.clear_requests()
    run2 = sim.run(doc("QuarantineIdentity"), PrincipalKind="role", PrincipalName=name)
    again = state.dump("role", name)
    show("after again", again)
    check("quarantine role: second run succeeds and writes nothing (Attached=false)",
          run2["status"] == "Success" and again == after and not emu.mutations()
          and run2["outputs"].get("QuarantineIdentity.Attached") is False,
          run2.get("error") or run2["outputs"] or again or emu.mutations())

    emu.clear_requests()
    rel = sim.run(doc("ReleaseIdentity"), PrincipalKind="role", PrincipalName=name)
    released = state.dump("role", name)
    show("after release", released)
    check("release role: succeeds", rel["status"] == "Success", rel.get("error"))
    check("release role: outputs say the policy was detached and dormant:stage removed",
          rel["outputs"] == {"ReleaseIdentity.PolicyArn": QUARANTINE_ARN, "ReleaseIdentity.PolicyDetached": True,
                             "ReleaseIdentity.LegacyPolicyDeleted": False, "ReleaseIdentity.PoliciesKept": [],
                             "ReleaseIdentity.TagsRemoved": ["dormant:stage"],
                             "ReleaseIdentity.PrincipalFound": True}, rel["outputs"])
    check("release role: IAM changes are DetachRolePolicy(dormant's policy), UntagRole",
          mutation_summary(emu.mutations()) == [f"DetachRolePolicy({QUARANTINE_ARN})", "UntagRole"],
          mutation_summary(emu.mutations()))
    check("release role: state equals the original (exemption tags kept)", released == before,
          {"expected": before, "got": released})
    check("release role: dormant's policy itself stays in the account",
          iam.get_policy(PolicyArn=QUARANTINE_ARN)["Policy"]["Arn"] == QUARANTINE_ARN)
    rel2 = sim.run(doc("ReleaseIdentity"), PrincipalKind="role", PrincipalName=name)
    check("release role: second run succeeds, removes nothing, changes nothing",
          rel2["status"] == "Success" and state.dump("role", name) == before
          and rel2["outputs"] == {"ReleaseIdentity.PolicyArn": QUARANTINE_ARN, "ReleaseIdentity.PolicyDetached": False,
                                  "ReleaseIdentity.LegacyPolicyDeleted": False, "ReleaseIdentity.PoliciesKept": [],
                                  "ReleaseIdentity.TagsRemoved": [],
                                  "ReleaseIdentity.PrincipalFound": True}, rel2)


def scenario_quarantine_release_user(sim, emu, state, iam):
    print("== Dormant-QuarantineIdentity <-> Dormant-ReleaseIdentity, user noticed by an earlier version")
    name = "sim-quarantine-user"
    iam.create_user(UserName=name)
    iam.create_login_profile(UserName=name, Password="Sim-Passw0rd!")
    iam.create_access_key(UserName=name)
    iam.create_group(GroupName="sim-quarantine-group")
    iam.add_user_to_group(GroupName="sim-quarantine-group", UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="app-inline", PolicyDocument=APP_POLICY)
    iam.tag_user(UserName=name, Tags=tags({
        "owner": "alice", "dormant:exempt": "false", "dormant:stage": "noticed",
        "dormant:next-step": "quarantine", "dormant:next-step-at": "2030-01-08T00:00:00Z"}))
    before = state.dump("user", name)
    show("before", before)

    emu.clear_requests()
    run = sim.run(doc("QuarantineIdentity"), PrincipalKind="user", PrincipalName=name)
    after = state.dump("user", name)
    show("after", after)
    check("quarantine user: succeeds through the user branch",
          run["status"] == "Success" and run["steps"] == [
              "QuarantineIdentity", "ChoosePrincipalKind", "VerifyUserQuarantined"]
          and run["outputs"].get("QuarantineIdentity.PolicyArn") == QUARANTINE_ARN, run)
    expected = quarantined(before)
    del expected["tags"]["dormant:next-step"], expected["tags"]["dormant:next-step-at"]
    check("quarantine user: attaches the policy, sets dormant:stage, drops the earlier version's other two "
          "stage tags, leaves keys/password/groups/inline policies", after == expected,
          {"expected": expected, "got": after})
    calls = mutation_summary(emu.mutations())
    check("quarantine user: IAM changes are AttachUserPolicy, UntagUser, TagUser; never PutUserPolicy",
          calls == [f"AttachUserPolicy({QUARANTINE_ARN})", "UntagUser", "TagUser"], calls)
    run2 = sim.run(doc("QuarantineIdentity"), PrincipalKind="user", PrincipalName=name)
    again = state.dump("user", name)
    show("after again", again)
    check("quarantine user: second run changes nothing", run2["status"] == "Success" and again == after)

    rel = sim.run(doc("ReleaseIdentity"), PrincipalKind="user", PrincipalName=name)
    released = state.dump("user", name)
    show("after release", released)
    expected = copy.deepcopy(before)
    for key in STAGE_TAGS:
        del expected["tags"][key]
    check("release user: detaches the policy, removes the stage tag, keeps dormant:exempt and owner",
          rel["status"] == "Success" and released == expected, {"expected": expected, "got": released})
    check("release user: outputs list the removed tag and the detach",
          rel["outputs"].get("ReleaseIdentity.TagsRemoved") == ["dormant:stage"]
          and rel["outputs"].get("ReleaseIdentity.PolicyDetached") is True, rel["outputs"])
    rel2 = sim.run(doc("ReleaseIdentity"), PrincipalKind="user", PrincipalName=name)
    check("release user: second run changes nothing",
          rel2["status"] == "Success" and state.dump("user", name) == released)


# What the controller's attach check accepts and refuses (src/domain/quarantine.rs, the test
# only_a_document_of_denies_with_a_full_deny_all_passes_the_attach_check): the document's copy
# must agree.
ATTACHABLE = [DENY_ALL, {"Statement": {"Effect": "Deny", "Action": ["*"], "Resource": "*"}}]
NOT_ATTACHABLE = [
    {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}, {"Effect": "Allow", "Action": "*", "Resource": "*"}]},
    {"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]},
    {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "arn:aws:s3:::b"}]},
    {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                    "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}}]},
    {"Statement": [{"Effect": "Deny", "NotAction": "iam:*", "Action": "*", "Resource": "*"}]},
    {"Statement": []},
    "not json",
]
TAMPERED = {"Version": "2012-10-17", "Statement": [
    {"Sid": "DormantQuarantine", "Effect": "Deny", "Action": "*", "Resource": "*"},
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}


def refused(run, state, kind, name, before, words):
    """The run failed with an error containing `words` and the identity is as it was."""
    error = run.get("error") or ""
    return (run["status"] != "Success" and run["steps"] == ["QuarantineIdentity"]
            and all(w in error for w in words) and state.dump(kind, name) == before)


def scenario_quarantine_refusals(sim, emu, state, iam):
    """Runs first: it deletes dormant's policy, which AWS allows only while it is attached to no one."""
    print("== Dormant-QuarantineIdentity refuses: no policy, a tampered policy, no room for it")
    check_policy = script_function("QuarantineIdentity", "denies_all_and_grants_nothing")
    check("the document's deny-all check agrees with the controller's",
          all(check_policy(d) for d in ATTACHABLE) and not any(check_policy(d) for d in NOT_ATTACHABLE)
          and check_policy(json.dumps(DENY_ALL)) and not check_policy(json.dumps(TAMPERED)))

    name = "sim-refused-role"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST,
                    Tags=tags({"dormant:stage": "noticed"}))
    before = state.dump("role", name)
    check("dormant's policy is attached to no one yet (so it can be deleted)",
          iam.get_policy(PolicyArn=QUARANTINE_ARN)["Policy"]["AttachmentCount"] == 0)

    # An account without dormant's member stack.
    iam.delete_policy(PolicyArn=QUARANTINE_ARN)
    emu.clear_requests()
    run = sim.run(doc("QuarantineIdentity"), PrincipalKind="role", PrincipalName=name)
    check("missing policy: fails naming the member stack, changes nothing, writes nothing",
          refused(run, state, "role", name, before, [QUARANTINE_ARN, "does not exist", "member stack",
                                                          "nothing was changed"])
          and not emu.mutations(), run.get("error", "")[-400:])
    iam.create_policy(PolicyName="DormantQuarantineDenyAll", Path="/dormant/", PolicyDocument=json.dumps(DENY_ALL))

    # Someone made the policy grant something: a new default version with an Allow.
    user = "sim-refused-user"
    iam.create_user(UserName=user)
    user_before = state.dump("user", user)
    good = iam.get_policy(PolicyArn=QUARANTINE_ARN)["Policy"]["DefaultVersionId"]
    bad = iam.create_policy_version(PolicyArn=QUARANTINE_ARN, PolicyDocument=json.dumps(TAMPERED),
                                    SetAsDefault=True)["PolicyVersion"]["VersionId"]
    emu.clear_requests()
    for kind, who, was in (("user", user, user_before), ("role", name, before)):
        run = sim.run(doc("QuarantineIdentity"), PrincipalKind=kind, PrincipalName=who)
        check(f"tampered policy ({bad} allows s3:GetObject): {kind} quarantine fails, changes nothing",
              refused(run, state, kind, who, was, ["is not a deny-all", f"version {bad}",
                                                        "nothing was changed"]),
              run.get("error", "")[-400:])
    check("tampered policy: no IAM write at all", not emu.mutations(), emu.mutations())
    iam.set_default_policy_version(PolicyArn=QUARANTINE_ARN, VersionId=good)
    iam.delete_policy_version(PolicyArn=QUARANTINE_ARN, VersionId=bad)

    # IAM's quota of 10 managed policies per identity (the emulator enforces it, as IAM does).
    arns = [managed_policy(iam, f"sim-quota-{i:02}") for i in range(10)]
    for arn in arns:
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        iam.attach_user_policy(UserName=user, PolicyArn=arn)
    for kind, who in (("role", name), ("user", user)):
        full = state.dump(kind, who)
        emu.clear_requests()
        run = sim.run(doc("QuarantineIdentity"), PrincipalKind=kind, PrincipalName=who)
        writes = emu.mutations()
        check(f"10 managed policies: {kind} quarantine fails naming the quota, changes nothing",
              refused(run, state, kind, who, full, ["quota", f"Managed policies per {kind}",
                                                         "nothing was changed"])
              and [(w["operation"], w.get("status")) for w in writes]
              == [(f"Attach{kind.title()}Policy", 409)], (run.get("error", "")[-400:], writes))

    # With room again it goes through: the refusal was the quota's.
    iam.detach_role_policy(RoleName=name, PolicyArn=arns[0])
    run = sim.run(doc("QuarantineIdentity"), PrincipalKind="role", PrincipalName=name)
    check("with one policy detached the quarantine goes through",
          run["status"] == "Success" and state.dump("role", name)["attached"] == sorted(arns[1:] + [QUARANTINE_ARN]),
          run.get("error"))


def scenario_verify_step(sim, emu, state, iam, workdir):
    print("== the read-back assertion fails when the policy is not attached")
    name = "sim-not-attached"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)
    # A copy whose script skips the attach: only the read-back step can notice.
    text = Path(doc("QuarantineIdentity")).read_text()
    call = "                attach(iam, arn, kind, name)\n"
    check("the test finds the attach call in the script", text.count(call) == 1)
    broken = Path(workdir) / "Dormant-QuarantineIdentity-no-attach.yaml"
    broken.write_text(text.replace(call, "                pass  # the test's copy: no attach\n"))
    run = sim.run(str(broken), PrincipalKind="role", PrincipalName=name)
    check("read-back: VerifyRoleQuarantined fails the execution",
          run["status"] != "Success" and run["steps"][-1:] == ["VerifyRoleQuarantined"]
          and "DormantQuarantineDenyAll" in run.get("error", ""), run)


OPERATORS_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "NoBucketDeletes", "Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"}]}


def scenario_policy_ownership(sim, emu, state, iam):
    print("== inline policies of earlier versions vs. an operator's policy of the same name")
    check("the marker is the controller's (src/domain/quarantine.rs)",
          script_function("ReleaseIdentity", "marker")("role", "Legacy-ETL") == "f0151f9c09f899e3"
          and script_function("ReleaseIdentity", "marker")("role", "legacy-etl") == "f0151f9c09f899e3")

    name = "sim-shared-name"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName=name, PolicyName=QUARANTINE_POLICY, PolicyDocument=json.dumps(OPERATORS_POLICY))
    before = state.dump("role", name)
    emu.clear_requests()
    run = sim.run(doc("QuarantineIdentity"), PrincipalKind="role", PrincipalName=name)
    after = state.dump("role", name)
    show("after", after)
    check("quarantine: an operator's inline policy under dormant's old name is left as it is",
          run["status"] == "Success" and after == quarantined(before)
          and [m["operation"] for m in emu.mutations()] == ["AttachRolePolicy", "TagRole"],
          {"run": run, "expected": quarantined(before), "got": after})
    rel = sim.run(doc("ReleaseIdentity"), PrincipalKind="role", PrincipalName=name)
    check("release: dormant's policy is detached; the operator's inline one stays, unchanged",
          rel["status"] == "Success" and state.dump("role", name) == before
          and rel["outputs"].get("ReleaseIdentity.PoliciesKept") == [QUARANTINE_POLICY]
          and rel["outputs"].get("ReleaseIdentity.PolicyDetached") is True
          and rel["outputs"].get("ReleaseIdentity.LegacyPolicyDeleted") is False, rel)

    # Noticed only: nothing of dormant's but the tag; the operator's policy must survive a release.
    noticed = "sim-noticed-shared-name"
    iam.create_role(RoleName=noticed, AssumeRolePolicyDocument=TRUST,
                    Tags=tags({"dormant:stage": "noticed next quarantine at 2030-01-08T00:00:00Z"}))
    no_sid = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=noticed, PolicyName=QUARANTINE_POLICY, PolicyDocument=json.dumps(no_sid))
    kept = state.dump("role", noticed)
    emu.clear_requests()
    rel = sim.run(doc("ReleaseIdentity"), PrincipalKind="role", PrincipalName=noticed)
    expected = copy.deepcopy(kept)
    del expected["tags"]["dormant:stage"]
    check("release of a noticed role leaves a deny-all dormant did not write (no Sid) in place",
          rel["status"] == "Success" and state.dump("role", noticed) == expected
          and [m["operation"] for m in emu.mutations()] == ["UntagRole"], rel)

    # Copied from another identity: its Sid names that one, so it is not this one's.
    copied = "sim-copied-quarantine"
    iam.create_role(RoleName=copied, AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName=copied, PolicyName=QUARANTINE_POLICY, PolicyDocument=json.dumps(deny_all("role", name)))
    rel = sim.run(doc("ReleaseIdentity"), PrincipalKind="role", PrincipalName=copied)
    check("release leaves an earlier version's policy copied from another role",
          rel["status"] == "Success" and QUARANTINE_POLICY in state.dump("role", copied)["inline"], rel)

    # Quarantined by an earlier version (Sid DormantQuarantine), quarantined again by this one:
    # the release takes both off.
    legacy = "sim-legacy-quarantine"
    iam.create_user(UserName=legacy)
    iam.put_user_policy(UserName=legacy, PolicyName=QUARANTINE_POLICY, PolicyDocument=json.dumps(DENY_ALL))
    before = state.dump("user", legacy)
    emu.clear_requests()
    run = sim.run(doc("QuarantineIdentity"), PrincipalKind="user", PrincipalName=legacy)
    check("quarantine of an identity an earlier version quarantined attaches the policy, writes no inline one",
          run["status"] == "Success" and state.dump("user", legacy) == quarantined(before)
          and [m["operation"] for m in emu.mutations()] == ["AttachUserPolicy", "TagUser"], run)
    emu.clear_requests()
    rel = sim.run(doc("ReleaseIdentity"), PrincipalKind="user", PrincipalName=legacy)
    released = state.dump("user", legacy)
    check("release detaches the policy and deletes the earlier version's inline one",
          rel["status"] == "Success" and released["inline"] == {} and released["attached"] == []
          and rel["outputs"].get("ReleaseIdentity.PolicyDetached") is True
          and rel["outputs"].get("ReleaseIdentity.LegacyPolicyDeleted") is True
          and mutation_summary(emu.mutations()) == [f"DetachUserPolicy({QUARANTINE_ARN})",
                                                    f"DeleteUserPolicy({QUARANTINE_POLICY})", "UntagUser"],
          (rel, released, mutation_summary(emu.mutations())))

    # An earlier version's policy under the second name (the operator's held the first): only
    # dormant's goes.
    both = "sim-legacy-second-name"
    iam.create_role(RoleName=both, AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName=both, PolicyName=QUARANTINE_POLICY, PolicyDocument=json.dumps(OPERATORS_POLICY))
    iam.put_role_policy(RoleName=both, PolicyName=SECOND_POLICY, PolicyDocument=json.dumps(deny_all("role", both)))
    expected = state.dump("role", both)
    del expected["inline"][SECOND_POLICY]
    rel = sim.run(doc("ReleaseIdentity"), PrincipalKind="role", PrincipalName=both)
    check("release deletes an earlier version's policy under the second name, keeps the operator's",
          rel["status"] == "Success" and state.dump("role", both) == expected
          and rel["outputs"].get("ReleaseIdentity.LegacyPolicyDeleted") is True
          and rel["outputs"].get("ReleaseIdentity.PoliciesKept") == [QUARANTINE_POLICY], rel)


def scenario_release_keeps_an_operators_quarantine(sim, emu, state, iam):
    print("== Dormant-ReleaseIdentity with DetachQuarantine=false: an operator's quarantine stays")
    name = "sim-operator-quarantine"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)
    # An operator's incident response attached the deny-all before dormant's quarantine step.
    iam.attach_role_policy(RoleName=name, PolicyArn=QUARANTINE_ARN)
    iam.tag_role(RoleName=name, Tags=tags({"team": "payments", "dormant:stage": "quarantined"}))
    emu.clear_requests()
    rel = sim.run(doc("ReleaseIdentity"), PrincipalKind="role", PrincipalName=name, DetachQuarantine="false")
    after = state.dump("role", name)
    check("release keeping the quarantine: succeeds, detaches nothing, removes dormant:stage only",
          rel["status"] == "Success" and rel["outputs"].get("ReleaseIdentity.PolicyDetached") is False
          and rel["outputs"].get("ReleaseIdentity.TagsRemoved") == ["dormant:stage"]
          and after["attached"] == [QUARANTINE_ARN] and after["tags"] == {"team": "payments"}, rel)
    check("release keeping the quarantine: the only IAM change is UntagRole",
          mutation_summary(emu.mutations()) == ["UntagRole"], mutation_summary(emu.mutations()))
    run = sim.run(doc("ReleaseIdentity"), PrincipalKind="role", PrincipalName=name, DetachQuarantine="yes")
    check("parameters: DetachQuarantine other than true/false is refused before anything runs",
          run["status"] != "Success" and not run["steps"], run)
    rel = sim.run(doc("ReleaseIdentity"), PrincipalKind="role", PrincipalName=name)
    check("release without DetachQuarantine (default true) detaches the policy",
          rel["status"] == "Success" and rel["outputs"].get("ReleaseIdentity.PolicyDetached") is True
          and state.dump("role", name)["attached"] == [], rel)


def scenario_full_tags(sim, emu, state, iam):
    print("== Dormant-QuarantineIdentity on a role with 50 tags")
    name = "sim-fifty-tags"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST,
                    Tags=tags({f"owner-{i:02}": "x" for i in range(50)}))
    before = state.dump("role", name)
    emu.clear_requests()
    run = sim.run(doc("QuarantineIdentity"), PrincipalKind="role", PrincipalName=name)
    after = state.dump("role", name)
    expected = copy.deepcopy(before)
    expected["attached"] = [QUARANTINE_ARN]
    check("quarantine with no room for the tag: the policy is attached, no TagRole is tried, the output says so",
          run["status"] == "Success" and after == expected
          and run["outputs"].get("QuarantineIdentity.TagWritten") is False
          and [m["operation"] for m in emu.mutations()] == ["AttachRolePolicy"], run)


def scenario_keys(sim, emu, state, iam):
    print("== Dormant-DeactivateAccessKeys <-> Dormant-ReactivateAccessKeys")
    name = "sim-keys-user"
    iam.create_user(UserName=name)
    recorded = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    owners_off = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName=name, AccessKeyId=owners_off, Status="Inactive")
    iam.create_login_profile(UserName=name, Password="Sim-Passw0rd!")
    before = state.dump("user", name)
    show("before", before)
    ids = [recorded, GHOST_KEY]

    emu.clear_requests()
    run = sim.run(doc("DeactivateAccessKeys"), PrincipalName=name, AccessKeyIds=ids)
    after = state.dump("user", name)
    show("after", after)
    check("deactivate: succeeds", run["status"] == "Success", run.get("error"))
    check("deactivate: outputs Changed=[recorded], NotFound=[ghost]",
          run["outputs"] == {"DeactivateAccessKeys.Changed": [recorded], "DeactivateAccessKeys.AlreadyDone": [],
                             "DeactivateAccessKeys.NotFound": [GHOST_KEY]}, run["outputs"])
    expected = copy.deepcopy(before)
    expected["keys"][recorded] = "Inactive"
    check("deactivate: only the listed key changed", after == expected, {"expected": expected, "got": after})
    calls = emu.mutations()
    check("deactivate: one UpdateAccessKey, for the listed key",
          mutation_summary(calls) == [f"UpdateAccessKey({recorded})"], mutation_summary(calls))

    emu.clear_requests()
    run2 = sim.run(doc("DeactivateAccessKeys"), PrincipalName=name, AccessKeyIds=ids)
    again = state.dump("user", name)
    show("after again", again)
    check("deactivate: second run changes nothing (no IAM write) and says AlreadyDone",
          run2["status"] == "Success" and again == after and not emu.mutations()
          and run2["outputs"]["DeactivateAccessKeys.AlreadyDone"] == [recorded], run2)

    rea = sim.run(doc("ReactivateAccessKeys"), PrincipalName=name, AccessKeyIds=ids)
    restored = state.dump("user", name)
    show("after reversal", restored)
    check("reactivate: succeeds with Changed=[recorded]",
          rea["status"] == "Success" and rea["outputs"]["ReactivateAccessKeys.Changed"] == [recorded], rea)
    check("reactivate: state equals the original (the owner's inactive key stays inactive)",
          restored == before, {"expected": before, "got": restored})
    rea2 = sim.run(doc("ReactivateAccessKeys"), PrincipalName=name, AccessKeyIds=ids)
    check("reactivate: second run changes nothing",
          rea2["status"] == "Success" and state.dump("user", name) == before
          and rea2["outputs"]["ReactivateAccessKeys.Changed"] == [], rea2)

    gone = sim.run(doc("DeactivateAccessKeys"), PrincipalName="sim-no-such-user", AccessKeyIds=[GHOST_KEY])
    check("deactivate: a user that does not exist counts as done",
          gone["status"] == "Success" and gone["outputs"]["DeactivateAccessKeys.NotFound"] == [GHOST_KEY], gone)
    role = sim.run(doc("DeactivateAccessKeys"), PrincipalKind="role", PrincipalName=name, AccessKeyIds=ids)
    check("deactivate: PrincipalKind=role is refused before anything runs",
          role["status"] != "Success" and not role["steps"], role.get("error", "")[:200])


# dormant's deny goes last, just before DeleteUser (an earlier version's inline policy, then the
# managed quarantine policy): a teardown cut short stays denied.
USER_TEARDOWN = ["DeleteLoginProfile", "DeleteAccessKey", "DeleteAccessKey", "DeleteSigningCertificate",
                 "DeleteSSHPublicKey", "DeleteServiceSpecificCredential", "DeactivateMFADevice",
                 "DeleteUserPolicy", "DetachUserPolicy", "RemoveUserFromGroup",
                 "RemoveUserFromGroup", "DeleteUserPolicy", "DetachUserPolicy", "DeleteUser"]


def scenario_delete_user(sim, emu, state, iam):
    print("== Dormant-DeleteIdentity, user with every kind of attachment")
    name = "sim-delete-user"
    cert_pem, ssh_pub = make_credentials()
    iam.create_user(UserName=name, Path="/people/", Tags=tags({"owner": "bob", "dormant:stage": "pending_delete"}))
    iam.create_login_profile(UserName=name, Password="Sim-Passw0rd!")
    keys = [iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"] for _ in range(2)]
    cert = iam.upload_signing_certificate(UserName=name, CertificateBody=cert_pem)["Certificate"]["CertificateId"]
    ssh = iam.upload_ssh_public_key(UserName=name, SSHPublicKeyBody=ssh_pub)["SSHPublicKey"]["SSHPublicKeyId"]
    ssc = "ACCASIMULATED0000001"  # moto lacks these: the test shim (pyshim/sitecustomize.py) holds it
    store = state.service_specific()
    store[name] = [{"ServiceSpecificCredentialId": ssc, "ServiceName": "codecommit.amazonaws.com",
                    "ServiceUserName": f"{name}-at-000", "UserName": name, "Status": "Active"}]
    Path(state.ssc_file).write_text(json.dumps(store))
    mfa = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{name}-mfa")["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(UserName=name, SerialNumber=mfa, AuthenticationCode1="123456",
                          AuthenticationCode2="654321")
    iam.put_user_policy(UserName=name, PolicyName="app-inline", PolicyDocument=APP_POLICY)
    # Quarantined by an earlier version (inline) and again by this one (managed).
    iam.put_user_policy(UserName=name, PolicyName=QUARANTINE_POLICY, PolicyDocument=json.dumps(DENY_ALL))
    iam.attach_user_policy(UserName=name, PolicyArn=QUARANTINE_ARN)
    policy_arn = managed_policy(iam, "sim-delete-user-managed")
    iam.attach_user_policy(UserName=name, PolicyArn=policy_arn)
    groups = ["sim-delete-group-a", "sim-delete-group-b"]
    for group in groups:
        iam.create_group(GroupName=group)
        iam.add_user_to_group(GroupName=group, UserName=name)
    before = state.dump("user", name)
    show("before", before)

    emu.clear_requests()
    run = sim.run(doc("DeleteIdentity"), PrincipalKind="user", PrincipalName=name)
    after = state.dump("user", name)
    show("after", after)
    log = emu.requests()
    check("delete user: succeeds", run["status"] == "Success", run.get("error"))
    check("delete user: the user is gone", after == {"exists": False}, after)
    outputs = run["outputs"]
    check("delete user: outputs Result=deleted and the ARN",
          outputs.get("DeleteIdentity.Result") == "deleted"
          and outputs.get("DeleteIdentity.Arn") == f"arn:aws:iam::{ACCOUNT}:user/people/{name}", outputs)
    expected_actions = (["DeleteLoginProfile"] + [f"DeleteAccessKey {k}" for k in keys]
                        + [f"DeleteSigningCertificate {cert}", f"DeleteSSHPublicKey {ssh}",
                           f"DeleteServiceSpecificCredential {ssc}", f"DeactivateMFADevice {mfa}"]
                        + [f"DeleteUserPolicy {p}" for p in sorted(before["inline"]) if p != QUARANTINE_POLICY]
                        + [f"DetachUserPolicy {policy_arn}"] + [f"RemoveUserFromGroup {g}" for g in groups]
                        + [f"DeleteUserPolicy {QUARANTINE_POLICY}", f"DetachUserPolicy {QUARANTINE_ARN}",
                           "DeleteUser"])
    actions = outputs.get("DeleteIdentity.Actions", [])
    check("delete user: Actions output lists every change in teardown order",
          sorted(actions) == sorted(expected_actions)
          and [a.split()[0] for a in actions] == USER_TEARDOWN, actions)
    check("delete user: dormant's deny (inline, then the managed policy) is taken off last, before DeleteUser",
          actions[-3:] == expected_actions[-3:], actions)

    # The order as IAM saw it. Service-specific credentials do not reach moto: the shim records
    # where its call fell in the request log.
    ops = [(i, r["operation"]) for i, r in enumerate(log)
           if r["service"] == "iam" and not r["operation"].startswith(("Get", "List"))]
    shim_calls = [c for c in state.service_specific().get("_calls", []) if c[0] == "DeleteServiceSpecificCredential"
                  and c[1].get("UserName") == name]
    position = shim_calls[0][2] if shim_calls else None
    merged = [op for i, op in ops if position is None or i < position]
    merged += ["DeleteServiceSpecificCredential"] if position is not None else []
    merged += [op for i, op in ops if position is not None and i >= position]
    print(f"       {'IAM writes':<14} {' > '.join(merged)}")
    check("delete user: teardown happened in the order IAM requires (request log)",
          merged == USER_TEARDOWN, merged)
    check("delete user: every write succeeded (HTTP 200)",
          all(log[i].get("status") == 200 for i, _ in ops), [log[i] for i, _ in ops])
    check("delete user: groups, managed policies (dormant's too) and the virtual MFA device still exist",
          all(iam.get_group(GroupName=g)["Group"] for g in groups)
          and iam.get_policy(PolicyArn=policy_arn)["Policy"] and iam.get_policy(PolicyArn=QUARANTINE_ARN)["Policy"]
          and mfa in [d["SerialNumber"] for d in iam.list_virtual_mfa_devices()["VirtualMFADevices"]])

    emu.clear_requests()
    run2 = sim.run(doc("DeleteIdentity"), PrincipalKind="user", PrincipalName=name)
    check("delete user: second run succeeds as absent and writes nothing",
          run2["status"] == "Success" and run2["outputs"].get("DeleteIdentity.Result") == "absent"
          and run2["outputs"].get("DeleteIdentity.Actions") == [] and not emu.mutations(), run2)


def scenario_delete_role(sim, emu, state, iam):
    print("== Dormant-DeleteIdentity, role in instance profiles")
    name = "sim-delete-role"
    iam.create_role(RoleName=name, Path="/service/", AssumeRolePolicyDocument=TRUST,
                    Tags=tags({"dormant:stage": "pending_delete"}))
    profiles = ["sim-delete-profile-a", "sim-delete-profile-b"]
    for profile in profiles:
        iam.create_instance_profile(InstanceProfileName=profile)
        iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=name)
    iam.put_role_policy(RoleName=name, PolicyName="app-inline", PolicyDocument=APP_POLICY)
    # Quarantined by this version: dormant's managed policy, listed first (IAM lists by name).
    iam.attach_role_policy(RoleName=name, PolicyArn=QUARANTINE_ARN)
    arns = [managed_policy(iam, f"sim-delete-role-managed-{i}") for i in (1, 2)]
    for arn in arns:
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    before = state.dump("role", name)
    show("before", before)

    emu.clear_requests()
    run = sim.run(doc("DeleteIdentity"), PrincipalKind="role", PrincipalName=name)
    after = state.dump("role", name)
    show("after", after)
    ops = mutation_summary(emu.mutations())
    print(f"       {'IAM writes':<14} {' > '.join(ops)}")
    check("delete role: succeeds, the role is gone",
          run["status"] == "Success" and after == {"exists": False}
          and run["outputs"].get("DeleteIdentity.Result") == "deleted", run)
    check("delete role: teardown in order, dormant's policy detached last before DeleteRole (request log)",
          ops == ["RemoveRoleFromInstanceProfile"] * 2 + ["DeleteRolePolicy(app-inline)"]
          + [f"DetachRolePolicy({a})" for a in arns] + [f"DetachRolePolicy({QUARANTINE_ARN})", "DeleteRole"], ops)
    check("delete role: instance profiles (now empty) and managed policies remain",
          all(iam.get_instance_profile(InstanceProfileName=p)["InstanceProfile"]["Roles"] == [] for p in profiles)
          and all(iam.get_policy(PolicyArn=a)["Policy"] for a in arns))
    emu.clear_requests()
    run2 = sim.run(doc("DeleteIdentity"), PrincipalKind="role", PrincipalName=name)
    check("delete role: second run succeeds as absent and writes nothing",
          run2["status"] == "Success" and run2["outputs"].get("DeleteIdentity.Result") == "absent"
          and not emu.mutations(), run2)


def scenario_protected_and_missing(sim, emu, state, iam):
    print("== refusals and missing identities")
    protected = [("AWSServiceRoleForDormantSim", "/aws-service-role/sim.amazonaws.com/"),
                 ("OrganizationAccountAccessRole", "/"),
                 ("cdk-hnb659fds-deploy-role-210000000017-us-east-1", "/"),
                 ("AWSControlTowerExecution", "/"),
                 ("stacksets-exec-0123456789abcdef", "/")]
    for name, path in protected:
        iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=TRUST)
        iam.put_role_policy(RoleName=name, PolicyName="app-inline", PolicyDocument=APP_POLICY)
        before = state.dump("role", name)
        emu.clear_requests()
        run = sim.run(doc("DeleteIdentity"), PrincipalKind="role", PrincipalName=name)
        check(f"delete refuses protected role {name} and changes nothing",
              run["status"] != "Success" and "refusing" in run.get("error", "")
              and state.dump("role", name) == before and not emu.mutations(), run)

    missing = "sim-no-such-role"
    run = sim.run(doc("QuarantineIdentity"), PrincipalKind="role", PrincipalName=missing)
    check("quarantine of a role that does not exist fails (nothing to quarantine: a typo?)",
          run["status"] != "Success" and "not found" in run.get("error", ""), run.get("error", "")[:200])
    run = sim.run(doc("ReleaseIdentity"), PrincipalKind="role", PrincipalName=missing,
                  AutomationAssumeRole=f"arn:aws:iam::{ACCOUNT}:role/dormant-remediation")
    check("release of a role that does not exist succeeds, PrincipalFound=false",
          run["status"] == "Success" and run["outputs"].get("ReleaseIdentity.PrincipalFound") is False, run)
    run = sim.run(doc("DeleteIdentity"), PrincipalKind="user", PrincipalName="sim-no-such-user")
    check("delete of a user that does not exist succeeds as absent",
          run["status"] == "Success" and run["outputs"].get("DeleteIdentity.Result") == "absent", run)

    bad = [("PrincipalKind=group", dict(PrincipalKind="group", PrincipalName="x")),
           ("PrincipalName with a space", dict(PrincipalKind="role", PrincipalName="bad name")),
           ("AutomationAssumeRole not a role ARN", dict(PrincipalKind="role", PrincipalName="x",
                                                        AutomationAssumeRole="arn:aws:iam::1:user/x"))]
    for label, inputs in bad:
        run = sim.run(doc("ReleaseIdentity"), **inputs)
        check(f"parameters: {label} is refused before anything runs",
              run["status"] != "Success" and not run["steps"], run)


def main():
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dormant-ssm-sim-") as workdir:
        ssc_file = Path(workdir) / "service-specific-credentials.json"
        ssc_file.write_text("{}")
        emu = Emulator(workdir)
        sim = None
        try:
            env = {**os.environ, "AWS_ENDPOINT_URL": emu.url, "AWS_ACCESS_KEY_ID": ACCOUNT,
                   "AWS_SECRET_ACCESS_KEY": "dummy", "AWS_REGION": "us-east-1",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                   "DORMANT_SIM_PYTHON": sys.executable, "DORMANT_SIM_SSC_FILE": str(ssc_file),
                   "PYTHONPATH": str(HERE / "pyshim"), "PYTHONDONTWRITEBYTECODE": "1",
                   # the simulator writes each inline script to a new directory under TMPDIR
                   "TMPDIR": workdir, "NODE_NO_WARNINGS": "1"}
            for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
                env.pop(var, None)
            sim = Simulator(env, workdir)
            iam = boto3.Session(aws_access_key_id=ACCOUNT, aws_secret_access_key="dummy",
                                region_name="us-east-1").client("iam", endpoint_url=emu.url)
            state = State(iam, ssc_file)
            # The refusals first: they delete dormant's policy, which AWS allows only while it is
            # attached to no one.
            for scenario in (scenario_quarantine_refusals, scenario_quarantine_release_role,
                             scenario_quarantine_release_user, scenario_policy_ownership,
                             scenario_release_keeps_an_operators_quarantine, scenario_full_tags,
                             scenario_verify_step, scenario_keys, scenario_delete_user, scenario_delete_role,
                             scenario_protected_and_missing):
                try:
                    if scenario is scenario_verify_step:
                        scenario(sim, emu, state, iam, workdir)
                    else:
                        scenario(sim, emu, state, iam)
                except Exception as e:  # a crash in one scenario is one failure, not the end
                    check(f"{scenario.__name__} ran to the end", False, repr(e))
        finally:
            if sim:
                sim.close()
            emu.close()
            if not all(results):
                for log in ("simulator.log", "launcher.log"):
                    text = (Path(workdir) / log).read_text(errors="replace").splitlines()
                    print(f"--- last lines of {log}")
                    print("\n".join(text[-30:]))
    passed = sum(results)
    print(f"({time.monotonic() - started:.1f} s)")
    print(f"simulation: {passed} passed, {len(results) - passed} failed")
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
