"""Test-only: service-specific credentials for boto3 clients talking to moto.

moto 5.2.5 does not implement ListServiceSpecificCredentials / DeleteServiceSpecificCredential
(it answers HTTP 500), so Dormant-DeleteIdentity could not run against it. When
DORMANT_SIM_SSC_FILE is set, this module (imported by Python at start-up because its directory
is on PYTHONPATH) answers those two IAM operations from that JSON file instead:
{"<user name>": [{"ServiceSpecificCredentialId": "...", "ServiceName": "...", ...}, ...]}.
botocore still validates the request parameters against the service model before the handler
runs, and the calls are appended to the file's "_calls" list so tests can see them, each with
the length the emulator's request log had at that moment (where it falls among the real calls).

Only the simulation tests set DORMANT_SIM_SSC_FILE; nothing here runs in AWS.
"""

import os

_STATE_FILE = os.environ.get("DORMANT_SIM_SSC_FILE")


def _install():
    import json
    import fcntl
    import botocore.session
    from botocore.awsrequest import AWSResponse

    def transact(change):
        with open(_STATE_FILE, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            state = json.load(f)
            result = change(state)
            f.seek(0)
            f.truncate()
            json.dump(state, f)
            return result

    def request_log_length():
        # The dormant test launcher's loopback-only request log, for this client's account.
        import urllib.request
        endpoint = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
        account = os.environ["AWS_ACCESS_KEY_ID"]
        with urllib.request.urlopen(f"{endpoint}/_dormant/requests?account={account}") as r:
            return len(json.load(r))

    def respond(status, parsed):
        return AWSResponse("http://sitecustomize.invalid/", status, {}, None), parsed

    def fields(request_dict):
        # IAM is a query-protocol service: the serialized request body is a dict of form fields.
        return {k: v for k, v in request_dict["body"].items() if k not in ("Action", "Version")}

    def list_creds(params, **_):
        params = fields(params)

        def change(state):
            state.setdefault("_calls", []).append(
                ["ListServiceSpecificCredentials", params, request_log_length()])
            return [dict(c) for c in state.get(params["UserName"], [])]
        return respond(200, {"ServiceSpecificCredentials": transact(change)})

    def delete_cred(params, **_):
        params = fields(params)

        def change(state):
            state.setdefault("_calls", []).append(
                ["DeleteServiceSpecificCredential", params, request_log_length()])
            creds = state.get(params["UserName"], [])
            kept = [c for c in creds
                    if c["ServiceSpecificCredentialId"] != params["ServiceSpecificCredentialId"]]
            state[params["UserName"]] = kept
            return len(kept) != len(creds)
        if transact(change):
            return respond(200, {})
        return respond(404, {"Error": {"Code": "NoSuchEntity", "Message": "No such credential"}})

    create_client = botocore.session.Session.create_client

    def create_client_with_ssc(self, service_name, *args, **kwargs):
        client = create_client(self, service_name, *args, **kwargs)
        if service_name == "iam":
            client.meta.events.register("before-call.iam.ListServiceSpecificCredentials", list_creds)
            client.meta.events.register("before-call.iam.DeleteServiceSpecificCredential", delete_cred)
        return client

    botocore.session.Session.create_client = create_client_with_ssc


if _STATE_FILE:
    _install()
