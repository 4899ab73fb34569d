"""Deadline mode of the benchmark (issue 18): `bench/run.sh --deadline-mode 15m 10000`.

For one N, under IAM's token buckets (`--throttle`, default 10/20/20/40):

1. reference: reset the emulator, seed an account, run `dormant sweep` once without a deadline,
   and snapshot the final state;
2. for each deadline D (`--deadline-mode 15m` or `15m,3m`): reset, seed an identical account
   (same content, same `today`) and run `dormant sweep --deadline D` again and again, each a
   separate process as Lambda invocations would be, until a run reports nothing `unfinished`
   (at most `--max-runs`), then snapshot the final state the same way.

Every run gets the same `--now` (the seeding's `today`), so due times are comparable. A snapshot
is every identity's IAM state that a step could change (its `dormant:*` tags, attached and
inline policy names, group memberships, access key statuses) and every item of dormant's table.
Normalised: the account id, IAM unique ids and access key ids become names (`role/NAME`,
`user/NAME#key0`), so the checks that they match stay; what differs between any two runs by
design is dropped: the wall-clock `written` attribute of audit items and the per-process write
ids (`<16 hex>-<n>`, e.g. the suffix of an audit item's sort key), and a sweep cursor item
that says the pass is complete (`"from": ""`, which dormant reads as no cursor: only a run that
continued a pass writes it). Nothing else is dropped.

Printed: runs needed against the fewest the write rate allows (ceil(floor / D), floor = accepted
IAM writes / write rate), each run's wall time and what it left, totals against the reference,
throttled responses and failed steps, whether the two final states are identical (and what
differs if not), and any IAM mutating call accepted twice for the same identity. Written to
`deadline.json`, `deadline.md` and `state-*.json` in the results directory.
"""

import json
import math
import re
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import boto3
from botocore.config import Config

import bench
import seed as seeder

TABLE = "dormant-bench"  # bench/dormant.toml
# IAM ids: what AWS issues (and moto for roles and keys), to flag one no identity has; and any
# token that may be one (moto's user ids are 20 lowercase letters and digits), looked up.
UNIQUE_ID = re.compile(r"\b(?:AROA|AIDA|AKIA|ASIA|ANPA|AGPA)[A-Z0-9]{12,}\b")
TOKEN = re.compile(r"\b[A-Za-z0-9]{16,32}\b")
WRITE_ID = re.compile(r"\b[0-9a-f]{16}-\d+\b")
DROP_ATTRS = {"written"}  # the wall clock at writing (item.rs), whatever --now says


def seconds(d):
    """'15m', '10s', '1h', '500ms' -> seconds, as dormant's --deadline reads them."""
    m = re.fullmatch(r"([0-9.]+)(ms|s|m|h)?", d.strip())
    if not m:
        raise ValueError(f"not a duration: {d}")
    return float(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m[2]]


# ---- runs ------------------------------------------------------------------------------------

def one_run(emu, args, account, env, cmd, label, rdir):
    """One dormant process under GNU time; its report and its share of the request log."""
    timefile, out, err = (rdir / f"{label}.{x}" for x in ("time", "out", "err"))
    t0 = time.monotonic()
    with open(out, "wb") as o, open(err, "wb") as e:
        rc = subprocess.run(["/usr/bin/time", "-v", "-o", str(timefile), *cmd], env=env,
                            cwd=bench.HERE, stdout=o, stderr=e).returncode
    wall = time.monotonic() - t0
    log = emu.log(account)
    emu.clear_log(account)
    try:
        report = json.loads(out.read_text())
    except ValueError:
        report = {}
        print(f"  ! {label} exited {rc} without a JSON report; stderr tail:\n"
              f"{err.read_text(errors='replace')[-2000:]}", flush=True)
    outcomes = Counter(f"{a['step']}:{a['outcome']}" for a in report.get("actions", []))
    m = {"label": label, "exit_code": rc, "wall_s": round(wall, 2), **bench.parse_gnu_time(timefile),
         "unfinished": report.get("unfinished", 0), "evaluated": report.get("evaluated"),
         "outcomes": dict(outcomes),
         "failed_steps": sum(v for k, v in outcomes.items() if k.endswith(":failed")),
         "calls": bench.summarize_calls(log)}
    m["calls"].pop("tagged")
    return m, log


def series(emu, args, n, account, today, deadline, rdir):
    """Seeds `account` and sweeps it until done: once without a deadline, else up to max-runs."""
    name = "unbounded" if deadline is None else f"deadline-{deadline}"
    emu.reset()  # the emulator holds one account at a time (bench/README.md)
    t0 = time.monotonic()
    seeder.seed(args.endpoint, account, n, today=today, threads=args.threads)
    seed_s = round(time.monotonic() - t0, 1)
    env = bench.aws_env(args.endpoint, account)
    env["DORMANT_LOG"] = "warn"
    env["DORMANT_STATE_DIR"] = str(rdir / f"state-dir-{name}")
    now = today.isoformat().replace("+00:00", "Z")
    base = [args.dormant, "--config", str(bench.HERE / "dormant.toml"), "--output", "json", "--now", now]
    subprocess.run([*base, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    emu.set_rates(account, args.throttle)
    emu.clear_log(account)
    print(f"N={n} {name}: seeded account {account} in {seed_s} s; sweeping...", flush=True)
    runs, log = [], []
    cap = 1 if deadline is None else args.max_runs
    t_all = time.monotonic()
    while len(runs) < cap:
        extra = [] if deadline is None else ["--deadline", deadline]
        # --yes: the first real sweep of an account asks first; each run is its own process.
        m, entries = one_run(emu, args, account, env, [*base, "--yes", *extra, "sweep"],
                             f"N{n}-{name}-run{len(runs) + 1}", rdir)
        runs.append(m)
        log += entries
        print(f"  run {len(runs)}: {m['wall_s']:.1f} s, exit {m['exit_code']}, unfinished {m['unfinished']}, "
              f"IAM writes {m['calls']['iam_accepted_writes']}, throttled {m['calls']['iam_throttled']}, "
              f"failed steps {m['failed_steps']}", flush=True)
        if not m["unfinished"] or m["exit_code"] not in (0, 1):
            break
    total_s = round(time.monotonic() - t_all, 2)
    emu.set_rates(account, None)
    t0 = time.monotonic()
    state, names = snapshot(args.endpoint, account)
    snap_s = round(time.monotonic() - t0, 1)
    (rdir / f"state-{name}.json").write_text(json.dumps(state, indent=1, sort_keys=True))
    return {"name": name, "deadline": deadline, "account": account, "seed_s": seed_s, "runs": runs,
            "total_wall_s": total_s, "done": not runs[-1]["unfinished"], "snapshot_s": snap_s,
            "mutations": mutations(log, names, account), "calls": bench.summarize_calls(log)}, state


# ---- the final state -------------------------------------------------------------------------

def snapshot(endpoint, account):
    """IAM and the table, normalised (module docstring)."""
    session = boto3.session.Session(aws_access_key_id=account, aws_secret_access_key="x",
                                    region_name="us-east-1")
    cfg = Config(max_pool_connections=16, retries={"mode": "standard", "max_attempts": 8})
    iam = session.client("iam", endpoint_url=endpoint, config=cfg)
    ddb = session.client("dynamodb", endpoint_url=endpoint, config=cfg)
    names = {account: "ACCOUNT"}
    identities = {}
    for page in iam.get_paginator("get_account_authorization_details").paginate(Filter=["Role", "User"]):
        for kind, detail, policies in (("role", "RoleDetailList", "RolePolicyList"),
                                       ("user", "UserDetailList", "UserPolicyList")):
            for d in page[detail]:
                key = f"{kind}/{d[kind.capitalize() + 'Name']}"
                names[d[kind.capitalize() + "Id"]] = key
                identities[key] = {
                    "tags": {t["Key"]: t["Value"] for t in d.get("Tags", []) if t["Key"].startswith("dormant:")},
                    "attached": sorted(p["PolicyArn"] for p in d.get("AttachedManagedPolicies", [])),
                    "inline": sorted(p["PolicyName"] for p in d.get(policies, [])),
                    **({"groups": sorted(d.get("GroupList", []))} if kind == "user" else {}),
                }
    users = [k.split("/", 1)[1] for k in identities if k.startswith("user/")]

    def keys(user):
        return user, iam.list_access_keys(UserName=user)["AccessKeyMetadata"]

    with ThreadPoolExecutor(8) as pool:
        for user, ks in pool.map(keys, users):
            # moto lists a user's keys in creation order; the seeder creates them in order.
            for i, k in enumerate(ks):
                names[k["AccessKeyId"]] = f"user/{user}#key{i}"
            identities[f"user/{user}"]["keys"] = [k["Status"] for k in ks]
    items = []
    for page in ddb.get_paginator("scan").paginate(TableName=TABLE):
        items += [{k: plain(v) for k, v in it.items() if k not in DROP_ATTRS} for it in page["Items"]]
    table = {}
    for it in items:
        for attr in ("record", "entry"):  # domain values are JSON in one string attribute
            if isinstance(it.get(attr), str):
                it[attr] = json.loads(it[attr])
        if it.get("kind") == "sweep_cursor" and it.get("from") == "":
            continue  # a completed pass: "" is no cursor (Store::sweep_cursor), as never written
        table.setdefault(it["pk"], []).append(it)
    state = {"iam": identities, "table": {pk: sorted(v, key=lambda x: json.dumps(x, sort_keys=True))
                                          for pk, v in table.items()}}
    text = json.dumps(state, sort_keys=True)
    text = TOKEN.sub(lambda m: names.get(m[0], m[0]), text)
    text = UNIQUE_ID.sub(lambda m: f"UNKNOWN-ID:{m[0]}", text)
    text = text.replace(account, "ACCOUNT")
    text = WRITE_ID.sub("<write-id>", text)
    return json.loads(text), names


def plain(v):
    """A DynamoDB AttributeValue as a plain value."""
    (t, x), = v.items()
    if t == "M":
        return {k: plain(y) for k, y in x.items()}
    if t == "L":
        return [plain(y) for y in x]
    return sorted(x) if t in ("SS", "NS") else x


def diff_states(a, b, limit=8):
    """What differs between two snapshots: counts and the first few examples per part."""
    out = {}
    for part in ("iam", "table"):
        x, y = a[part], b[part]
        only_a, only_b = sorted(set(x) - set(y)), sorted(set(y) - set(x))
        changed = sorted(k for k in set(x) & set(y) if x[k] != y[k])
        if only_a or only_b or changed:
            out[part] = {"only_reference": len(only_a), "only_deadline": len(only_b), "differ": len(changed),
                         "examples": {"only_reference": only_a[:limit], "only_deadline": only_b[:limit],
                                      "differ": [{"key": k, "reference": x[k], "deadline": y[k]}
                                                 for k in changed[:limit]]}}
    return out


# ---- steps taken twice -----------------------------------------------------------------------

def mutations(log, names, account):
    """IAM mutating calls IAM accepted, per (operation, identity, key/policy), named as in the
    snapshots (key ids by owner, the account id as ACCOUNT)."""
    c = Counter()
    for e in log:
        if e["service"] == "iam" and e.get("status") == 200 and not e.get("rate_limited") \
                and bench.WRITE.match(e["operation"]):
            who = f"role/{e['RoleName']}" if e.get("RoleName") else f"user/{e.get('UserName')}"
            what = e.get("AccessKeyId") or e.get("PolicyArn") or e.get("PolicyName") or ""
            what = TOKEN.sub(lambda m: names.get(m[0], m[0]), what).replace(account, "ACCOUNT")
            c[f"{e['operation']} {who} {what}".strip()] += 1
    return c


def twice(muts):
    """Calls accepted more than once."""
    return {k: v for k, v in muts.items() if v > 1}


# ---- main ------------------------------------------------------------------------------------

def main(emu, args, rdir):
    deadlines = [d for d in args.deadline_mode.split(",") if d]
    for d in deadlines:
        seconds(d)
    w_rate = args.throttle[0]
    today = datetime.now(timezone.utc).replace(microsecond=0)
    results = {"mode": "deadline", "throttle": args.throttle, "now": today.isoformat(), "dormant": args.dormant,
               "dormant_profile": args.dormant_profile, "git": args.git, "n": {}}
    for n in args.ns:
        per = results["n"][str(n)] = {}
        ref, ref_state = series(emu, args, n, f"8{n:06d}00001", today, None, rdir)
        per["unbounded"] = ref
        for k, d in enumerate(deadlines):
            s, state = series(emu, args, n, f"8{n:06d}{k + 2:05d}", today, d, rdir)
            s["state_diff"] = diff_states(ref_state, state)
            s["identical"] = not s["state_diff"]
            per[s["name"]] = s
            (rdir / "deadline.json").write_text(json.dumps(results, indent=2, default=dict))
    text = verdicts(results, w_rate)
    (rdir / "deadline.json").write_text(json.dumps(results, indent=2, default=dict))
    head = (f"dormant {args.dormant_profile} build at commit {args.git}; IAM buckets {args.throttle}; "
            f"--now {today.isoformat()}\n\n")
    (rdir / "deadline.md").write_text(head + "```\n" + text + "\n```\n")
    print()
    print(text)
    print(f"\nraw results: {rdir / 'deadline.json'}")


def verdicts(results, w_rate):
    out = []
    for n, per in results["n"].items():
        ref = per["unbounded"]
        r0 = ref["runs"][0]
        ref_writes = ref["calls"]["iam_accepted_writes"]
        out.append(f"N={n}: unbounded sweep (reference): {r0['wall_s']:.1f} s, {ref_writes} IAM writes "
                   f"(floor {ref_writes / w_rate:.1f} s at {w_rate:g}/s), throttled {ref['calls']['iam_throttled']} "
                   f"of {ref['calls']['iam_total']} IAM requests, failed steps {r0['failed_steps']}, "
                   f"unfinished {r0['unfinished']}, exit {r0['exit_code']}")
        ref_twice = twice(ref["mutations"])
        out.append(f"  IAM mutating calls accepted twice for one identity (reference): {len(ref_twice)}"
                   + (f" {dict(list(ref_twice.items())[:8])}" if ref_twice else ""))
        for name, s in per.items():
            if name == "unbounded":
                continue
            dl = seconds(s["deadline"])
            writes = s["calls"]["iam_accepted_writes"]
            floor = writes / w_rate
            fewest = max(1, math.ceil(floor / dl))
            c = s["calls"]
            out.append(f"  --deadline {s['deadline']}: {len(s['runs'])} runs "
                       f"({'done' if s['done'] else 'NOT DONE after the cap'}); the fewest the rate allows: "
                       f"{fewest} (floor {floor:.1f} s = {writes} IAM writes / {w_rate:g} per s, / {dl:g} s)")
            for i, r in enumerate(s["runs"], 1):
                rc = r["calls"]
                out.append(f"    run {i}: {r['wall_s']:.1f} s ({100 * r['wall_s'] / dl:.0f} % of the deadline), "
                           f"{rc['iam_accepted_writes']} IAM writes, {rc['iam_throttled']} throttled, "
                           f"{r['failed_steps']} failed steps, {r['unfinished']} left, exit {r['exit_code']}")
            out.append(f"    total {s['total_wall_s']:.1f} s vs the unbounded run's {r0['wall_s']:.1f} s "
                       f"(x{s['total_wall_s'] / r0['wall_s']:.2f}); vs the floor x{s['total_wall_s'] / floor:.2f}; "
                       f"throttled {c['iam_throttled']} of {c['iam_total']} IAM requests "
                       f"({100 * c['iam_throttled'] / max(c['iam_total'], 1):.1f} %); "
                       f"failed steps {sum(r['failed_steps'] for r in s['runs'])}")
            out.append(f"    IAM writes {writes} vs the reference's {ref_writes}; IAM reads "
                       f"{c['iam_total'] - c['iam_writes']} vs {ref['calls']['iam_total'] - ref['calls']['iam_writes']}; "
                       f"DynamoDB {c['by_service'].get('dynamodb', 0)} vs {ref['calls']['by_service'].get('dynamodb', 0)}")
            tw = twice(s["mutations"])
            per_id = {k for k in set(s["mutations"]) | set(ref["mutations"])
                      if s["mutations"].get(k, 0) != ref["mutations"].get(k, 0)}
            out.append(f"    IAM mutating calls accepted twice for one identity: {len(tw)}"
                       + (f" {dict(list(tw.items())[:8])}" if tw else "")
                       + f"; calls whose count differs from the reference's: {len(per_id)}"
                       + (f" {sorted(per_id)[:8]}" if per_id else ""))
            out.append(f"    final state identical to the unbounded run's: {'YES' if s['identical'] else 'NO'}"
                       + ("" if s["identical"] else f"\n    diff: {json.dumps(s['state_diff'])[:4000]}"))
    return "\n".join(out)
