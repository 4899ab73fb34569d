"""The benchmark driver; `bench/run.sh` starts the emulator and calls this. Not part of the tests.

For each N: reset the emulator, seed an account with N identities (bench/seed.py), run one tool
on it (first its dry run, then its real first pass), and repeat for the next tool on a freshly
reset emulator and a freshly seeded account of identical content. Each run is measured from
outside: wall time, user+sys CPU and peak RSS (GNU time), AWS calls by service and operation
(the emulator's request log, filtered to the run's account), the emulator's own CPU time, and
what the tool found against the seeded truth. Prints a table and the ratios; writes the raw
results as JSON (and the table as Markdown) to bench/results/.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import seed as seeder  # noqa: E402

BULK_IAM = {"GetAccountAuthorizationDetails", "GenerateCredentialReport", "GetCredentialReport",
            "ListRoles", "ListUsers"}
REPORT_POLLING = {"GenerateCredentialReport"}
WRITE = re.compile(r"^(Tag|Untag|Put|Delete|Update|Attach|Detach|Create|Add|Remove)")
TOOLS = ("dormant", "custodian", "boto3")


# ---- emulator --------------------------------------------------------------------------------

class Emulator:
    def __init__(self, endpoint, pid):
        self.endpoint, self.pid = endpoint.rstrip("/"), pid

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.endpoint}/_dormant/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read() or b"null")

    def reset(self):
        self.call("POST", "reset")

    def set_rates(self, account, throttle):
        """IAM's token buckets for `account` (None lifts them): see tests/emulator/README.md."""
        if throttle is None:
            self.call("DELETE", f"iam/rate?account={account}")
            return
        w_rate, w_burst, r_rate, r_burst = throttle
        self.call("POST", "iam/rate", {"account": account, "write": {"rate": w_rate, "burst": w_burst},
                                       "read": {"rate": r_rate, "burst": r_burst}})

    def clear_log(self, account):
        self.call("DELETE", f"requests?account={account}")

    def log(self, account):
        return self.call("GET", f"requests?account={account}")

    def cpu_seconds(self):
        """utime + stime of the launcher process (all its threads)."""
        if not self.pid:
            return None
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- measuring one process -------------------------------------------------------------------

def parse_gnu_time(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "User time (seconds)":
            out["user_s"] = float(value)
        elif key == "System time (seconds)":
            out["sys_s"] = float(value)
        elif key == "Maximum resident set size (kbytes)":
            out["peak_rss_mib"] = round(int(value) / 1024, 1)
        elif key == "Exit status":
            out["exit_status"] = int(value)
    return out


def summarize_calls(entries):
    by_op = Counter(f"{e['service']}:{e['operation']}" for e in entries)
    iam = {op.split(":", 1)[1]: n for op, n in by_op.items() if op.startswith("iam:")}
    bulk = sum(n for op, n in iam.items() if op in BULK_IAM)
    writes = sum(n for op, n in iam.items() if WRITE.match(op))
    return {
        "total": len(entries),
        "by_operation": dict(by_op.most_common()),
        "by_service": dict(Counter(e["service"] for e in entries).most_common()),
        "iam_total": sum(iam.values()),
        "iam_bulk_reads": bulk,
        "iam_report_polls": sum(n for op, n in iam.items() if op in REPORT_POLLING),
        "iam_per_identity_reads": sum(iam.values()) - bulk - writes,
        "iam_writes": writes,
        "errors": dict(Counter(str(e.get("status")) for e in entries if (e.get("status") or 0) >= 400)),
        "iam_throttled": sum(1 for e in entries if e.get("rate_limited")),
        "iam_accepted_writes": sum(n for op, n in Counter(
            e["operation"] for e in entries if e["service"] == "iam" and e.get("status") == 200
            and not e.get("rate_limited")).items() if WRITE.match(op)),
        "tagged": sorted({e.get("RoleName") or e.get("UserName") for e in entries
                          if e["operation"] in ("TagRole", "TagUser") and e.get("status") == 200}),
    }


def measure(emu, account, cmd, env, workdir, label, results_dir, stdout_path=None):
    """Runs cmd under GNU time with a clean request log; returns measurements."""
    emu.clear_log(account)
    timefile = results_dir / f"{label}.time"
    stdout_path = stdout_path or results_dir / f"{label}.out"
    stderr_path = results_dir / f"{label}.err"
    load = os.getloadavg()[0]
    cpu0 = emu.cpu_seconds()
    t0 = time.monotonic()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        rc = subprocess.run(["/usr/bin/time", "-v", "-o", str(timefile), *cmd], env=env, cwd=workdir,
                            stdout=out, stderr=err).returncode
    wall = time.monotonic() - t0
    cpu1 = emu.cpu_seconds()
    m = {"command": cmd, "exit_code": rc, "wall_s": round(wall, 3), "load_avg_before": round(load, 2),
         **parse_gnu_time(timefile)}
    m["cpu_s"] = round(m.get("user_s", 0) + m.get("sys_s", 0), 3)
    m["emulator_cpu_s"] = round(cpu1 - cpu0, 2) if cpu0 is not None and cpu1 is not None else None
    m["calls"] = summarize_calls(emu.log(account))
    if rc != 0:
        tail = stderr_path.read_text(errors="replace")[-2000:]
        print(f"  ! {label} exited {rc}; stderr tail:\n{tail}", file=sys.stderr)
    return m


# ---- the tools -------------------------------------------------------------------------------

def aws_env(endpoint, account):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=account, AWS_SECRET_ACCESS_KEY="x",
               AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    return env


def found_dormant(stdout_path):
    report = json.loads(Path(stdout_path).read_text())
    found = Counter()
    outcomes = Counter()
    for a in report.get("actions", []):
        outcomes[f"{a['step']}:{a['outcome']}"] += 1
        if a["step"] != "notice" or a["outcome"] not in ("dry_run", "done"):
            continue
        ident = a["identity"]
        kind = ("keys" if "/key/" in ident else "passwords" if ident.endswith("/password")
                else "roles" if ":role/" in ident else "users")
        found[kind] += 1
    out = {"found": dict(found), "outcomes": dict(outcomes), "evaluated": report.get("evaluated")}
    if "api_calls" in report:  # dormant's own count (an SDK interceptor), checked against the log
        out["self_reported_calls"] = {k.replace("eventbridge:", "events:"): v for k, v in report["api_calls"].items()}
    return out


def check_self_report(m):
    """dormant's api_calls must equal the emulator's request log, operation by operation."""
    own = m.get("self_reported_calls")
    if own is None:
        return None
    logged = m["calls"]["by_operation"]
    diff = {op: (own.get(op, 0), logged.get(op, 0)) for op in set(own) | set(logged)
            if own.get(op, 0) != logged.get(op, 0)}
    return "agrees" if not diff else f"differs (dormant, emulator): {diff}"


def throttled(emu, args, account, mode):
    """The real pass runs under IAM's buckets when --throttle is given; the dry run never."""
    emu.set_rates(account, args.throttle if mode == "real" else None)


def run_dormant(emu, args, account, n, rdir):
    env = aws_env(args.endpoint, account)
    env["DORMANT_LOG"] = "warn"
    # Where the --dry-run sweep notes itself for the real sweep's first-run question.
    env["DORMANT_STATE_DIR"] = str(rdir / "state")
    cfg = str(HERE / "dormant.toml")
    base = [args.dormant, "--config", cfg, "--output", "json"]
    t0 = time.monotonic()
    subprocess.run([*base, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    init_s = round(time.monotonic() - t0, 2)
    out = {}
    for mode, extra in (("dry-run", ["--dry-run"]), ("real", [])):
        label = f"N{n}-dormant-{mode}"
        throttled(emu, args, account, mode)
        m = measure(emu, account, [*base, *extra, "sweep"], env, HERE, label, rdir)
        emu.set_rates(account, None)
        if m["exit_code"] == 0:
            m.update(found_dormant(rdir / f"{label}.out"))
            m["self_report_check"] = check_self_report(m)
        out[mode] = m
    out["init_s"] = init_s
    return out


def run_custodian(emu, args, account, n, rdir):
    env = aws_env(args.endpoint, account)
    custodian = str(Path(args.peer_python).parent / "custodian")
    out = {}
    for mode, extra in (("dry-run", ["--dryrun"]), ("real", [])):
        label = f"N{n}-custodian-{mode}"
        outdir = rdir / label
        shutil.rmtree(outdir, ignore_errors=True)
        # --cache memory: the credential report and resource lists are shared by the policies of
        # one run, never between runs (the default file cache would serve the real run from the
        # dry run's listing).
        cmd = [custodian, "run", "--cache", "memory", "-r", "us-east-1", "-s", str(outdir), *extra,
               str(HERE / "custodian.yml")]
        throttled(emu, args, account, mode)
        m = measure(emu, account, cmd, env, HERE, label, rdir)
        emu.set_rates(account, None)
        found = {}
        for policy, kind in (("dormant-roles", "roles"), ("dormant-users", "users"),
                             ("dormant-user-credentials", "credential_users")):
            res = outdir / policy / "resources.json"
            if res.exists():
                found[kind] = len(json.loads(res.read_text()))
        m["found"] = found
        out[mode] = m
    return out


def run_boto3(emu, args, account, n, rdir):
    env = aws_env(args.endpoint, account)
    out = {}
    for mode, extra in (("dry-run", []), ("real", ["--apply"])):
        label = f"N{n}-boto3-{mode}"
        throttled(emu, args, account, mode)
        m = measure(emu, account, [args.peer_python, str(HERE / "peer_boto3.py"), *extra], env, HERE, label, rdir)
        emu.set_rates(account, None)
        if m["exit_code"] == 0:
            m.update(json.loads((rdir / f"{label}.out").read_text()))
        out[mode] = m
    return out


RUNNERS = {"dormant": run_dormant, "custodian": run_custodian, "boto3": run_boto3}


# ---- verdicts and the table ------------------------------------------------------------------

def expected(truth):
    return {"roles": truth["dormant_roles"], "users": truth["dormant_users"],
            "keys": truth["idle_keys"], "passwords": truth["idle_passwords"],
            "credential_users": truth["idle_keys"] + truth["idle_passwords"]}


def found_vs_truth(tool, m, truth):
    """'found/expected' and whether every kind matches."""
    f = m.get("found") or {}
    exp = expected(truth)
    kinds = ("roles", "users", "credential_users") if tool == "custodian" else ("roles", "users", "keys", "passwords")
    ok = all(f.get(k, 0) == exp[k] for k in kinds)
    total = sum(f.get(k, 0) for k in kinds)
    want = sum(exp[k] for k in kinds)
    return f"{total}/{want}" + ("" if ok else " MISMATCH"), ok


def top_iam(calls, k=3):
    ops = [(op.split(":", 1)[1], n) for op, n in calls["by_operation"].items() if op.startswith("iam:")]
    return ", ".join(f"{op} {n}" for op, n in ops[:k])


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "n/a"


def build_report(results):
    lines = []
    header = ("| N | tool | mode | wall s | CPU s | peak RSS MiB | IAM calls (bulk / per-identity / writes) "
              "| other calls | top IAM operations | found / truth | emulator CPU s |")
    lines += [header, "|" + "---|" * 11]
    for n, per_n in results["runs"].items():
        truth = per_n["truth"]
        for tool in TOOLS:
            if tool not in per_n:
                continue
            for mode in ("dry-run", "real"):
                m = per_n[tool][mode]
                c = m["calls"]
                other = ", ".join(f"{s} {k}" for s, k in c["by_service"].items() if s != "iam") or "-"
                fv, _ = found_vs_truth(tool, m, truth)
                lines.append(
                    f"| {n} | {tool} | {mode} | {m['wall_s']:.2f} | {m['cpu_s']:.2f} | {m.get('peak_rss_mib', '?')} "
                    f"| {c['iam_total']} ({c['iam_bulk_reads']} / {c['iam_per_identity_reads']} / {c['iam_writes']}) "
                    f"| {other} | {top_iam(c)} | {fv} | {m['emulator_cpu_s']} |")
    lines.append("")
    lines.append("| N | ratio | dry run | real pass |")
    lines.append("|---|---|---|---|")
    for n, per_n in results["runs"].items():
        d = per_n.get("dormant")
        for peer in ("custodian", "boto3"):
            p = per_n.get(peer)
            if not d or not p:
                continue
            for what, key in (("wall time", "wall_s"), ("IAM calls", None), ("peak RSS", "peak_rss_mib")):
                def val(m):
                    return m["calls"]["iam_total"] if key is None else m.get(key)
                lines.append(f"| {n} | dormant / {peer}: {what} | {ratio(val(d['dry-run']), val(p['dry-run']))} "
                             f"| {ratio(val(d['real']), val(p['real']))} |")
    return "\n".join(lines)


def throttled_verdicts(results):
    """Under IAM's buckets: each tool's real pass against the floor (its IAM writes / the write
    rate), its throttled share and what it failed to tag."""
    w_rate, w_burst, r_rate, r_burst = results["throttle"]
    out = [f"Under IAM buckets of {w_rate:g} writes/s (burst {w_burst:g}) and {r_rate:g} reads/s "
           f"(burst {r_burst:g}), real passes:"]
    for n, per_n in results["runs"].items():
        truth = per_n["truth"]
        want = truth["dormant_roles"] + truth["dormant_users"] + truth["idle_keys"] + truth["idle_passwords"]
        for tool in TOOLS:
            if tool not in per_n:
                continue
            m = per_n[tool]["real"]
            c = m["calls"]
            writes = c["iam_accepted_writes"]
            floor = writes / w_rate
            failed = (m.get("outcomes") or {})
            failed_steps = sum(v for k, v in failed.items() if k.endswith(":failed"))
            not_tagged = want - len(c["tagged"])
            line = (f"  N={n} {tool}: {m['wall_s']:.1f} s = {ratio(m['wall_s'], floor)} x the floor "
                    f"({writes} IAM writes / {w_rate:g} = {floor:.1f} s); throttled {c['iam_throttled']} of "
                    f"{c['iam_total']} IAM requests ({100 * c['iam_throttled'] / max(c['iam_total'], 1):.1f} %); "
                    f"identities not tagged {not_tagged} of {want}; exit {m['exit_code']}")
            if tool == "dormant":
                line += f"; failed steps {failed_steps}"
            out.append(line)
            m["throttled_verdict"] = {"floor_s": floor, "ratio": m["wall_s"] / floor if floor else None,
                                      "throttled": c["iam_throttled"], "not_tagged": not_tagged}
    return "\n".join(out)


def build_targets(results):
    out = []
    for n, per_n in results["runs"].items():
        d = per_n.get("dormant")
        if not d:
            continue
        truth = per_n["truth"]
        n_int = int(n)
        dry, real = d["dry-run"], d["real"]
        budget = math.ceil(n_int / 1000) + 3
        c = dry["calls"]
        bulk_no_poll = c["iam_bulk_reads"] - c["iam_report_polls"]
        reads = c["iam_total"] - c["iam_writes"]
        out.append(f"N={n}:")
        out.append(f"  detection (dry run) IAM reads: {reads} total = {c['iam_bulk_reads']} bulk "
                   f"({bulk_no_poll} + {c['iam_report_polls']} GenerateCredentialReport polls) + "
                   f"{c['iam_per_identity_reads']} per-identity re-reads; target <= {budget} (+ polls): "
                   f"bulk {'MET' if bulk_no_poll <= budget else 'MISSED'}, "
                   f"total {'MET' if reads - c['iam_report_polls'] <= budget else 'MISSED'}")
        cu = per_n.get("custodian")
        if cu:
            out.append(f"  wall time vs Custodian's dry run: {dry['wall_s']:.2f} s / {cu['dry-run']['wall_s']:.2f} s"
                       f" = {ratio(dry['wall_s'], cu['dry-run']['wall_s'])}")
        for mode, m in (("dry run", dry), ("real pass", real)):
            fv, ok = found_vs_truth("dormant", m, truth)
            out.append(f"  identities found ({mode}): {fv} {'= truth' if ok else '!= truth'} "
                       f"(by kind {m.get('found')}, truth roles {truth['dormant_roles']}, users "
                       f"{truth['dormant_users']}, keys {truth['idle_keys']}, passwords {truth['idle_passwords']})")
        rc = real["calls"]
        noticed = sum((real.get("found") or {}).values())
        principals = noticed  # one principal per noticed subject in this mix
        out.append(f"  real first pass: {rc['iam_total']} IAM calls = {rc['iam_bulk_reads']} bulk + "
                   f"{rc['iam_per_identity_reads']} re-reads + {rc['iam_writes']} writes for {noticed} noticed "
                   f"subjects -> {ratio(rc['iam_writes'], noticed)} writes and "
                   f"{ratio(rc['iam_per_identity_reads'], principals)} re-reads per noticed identity; "
                   f"other: {', '.join(f'{k} {v}' for k, v in rc['by_operation'].items() if not k.startswith('iam:'))}")
        out.append(f"  dormant's own api_calls vs the emulator's log: dry run {dry.get('self_report_check')}, "
                   f"real {real.get('self_report_check')}")
        out.append(f"  peak RSS: dry run {dry.get('peak_rss_mib')} MiB, real {real.get('peak_rss_mib')} MiB")
        out.append(f"  CPU per identity ({results['dormant_profile']} build, includes SDK/HTTP/JSON work): dry run "
                   f"{dry['cpu_s'] / n_int * 1e6:.0f} us, real {real['cpu_s'] / n_int * 1e6:.0f} us")
    return "\n".join(out)


# ---- main ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--launcher-pid", type=int, default=0)
    ap.add_argument("--dormant", required=True)
    ap.add_argument("--dormant-profile", default="debug")
    ap.add_argument("--peer-python", required=True, help="python of bench/.venv (c7n + boto3)")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--threads", type=int, default=8, help="seeding threads")
    ap.add_argument("--throttle", default=None, metavar="W/WB/R/RB",
                    help="run the real passes under IAM token buckets: writes/s, write burst, reads/s, "
                         "read burst (e.g. 10/20/20/40)")
    ap.add_argument("--deadline-mode", default=None, metavar="D[,D...]",
                    help="instead: dormant's first pass under the buckets (default 10/20/20/40) unbounded, "
                         "then as repeated `sweep --deadline D` runs; compares the final states "
                         "(bench/deadline.py)")
    ap.add_argument("--max-runs", type=int, default=10, help="deadline mode: runs per deadline at most")
    ap.add_argument("ns", nargs="*", type=int, default=[1000])
    args = ap.parse_args()
    if args.deadline_mode and not args.throttle:
        args.throttle = "10/20/20/40"
    if args.throttle:
        args.throttle = tuple(float(x) for x in args.throttle.split("/"))
        if len(args.throttle) != 4:
            ap.error("--throttle takes W/WB/R/RB, e.g. 10/20/20/40")

    emu = Emulator(args.endpoint, args.launcher_pid)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    rdir = HERE / "results" / stamp
    rdir.mkdir(parents=True, exist_ok=True)
    tools = [t for t in args.tools.split(",") if t]
    versions = {"dormant": subprocess.run([args.dormant, "--version"], capture_output=True, text=True).stdout.strip(),
                "c7n": subprocess.run([args.peer_python, "-c", "import importlib.metadata as m; print(m.version('c7n'))"],
                                      capture_output=True, text=True).stdout.strip(),
                "boto3 (peers)": subprocess.run([args.peer_python, "-c", "import boto3; print(boto3.__version__)"],
                                                capture_output=True, text=True).stdout.strip()}
    git = subprocess.run(["git", "-C", str(HERE.parent), "describe", "--always", "--dirty", "--exclude", "*"],
                         capture_output=True, text=True).stdout.strip()
    if args.deadline_mode:
        import deadline
        args.git = git
        print(f"dormant: {args.dormant} ({args.dormant_profile} build, {versions['dormant']}, commit {git}); "
              f"deadline mode; results in {rdir}", flush=True)
        deadline.main(emu, args, rdir)
        return
    results = {"started": stamp, "dormant_binary": args.dormant, "dormant_profile": args.dormant_profile,
               "git": git, "throttle": args.throttle,
               "versions": versions, "cores": os.cpu_count(), "runs": {}}
    print(f"dormant: {args.dormant} ({args.dormant_profile} build, {versions['dormant']}, commit {git}); "
          f"c7n {versions['c7n']}; results in {rdir}", flush=True)

    for n in args.ns:
        per_n = results["runs"][str(n)] = {}
        for k, tool in enumerate(tools):
            account = f"7{n:06d}{k + 1:05d}"
            emu.reset()  # moto scans every account's keys on GetAccessKeyLastUsed: keep one account alive
            t0 = time.monotonic()
            truth = seeder.seed(args.endpoint, account, n, threads=args.threads)
            seed_s = round(time.monotonic() - t0, 1)
            names = truth.pop("names")
            per_n["truth"] = truth
            print(f"N={n} {tool}: seeded account {account} in {seed_s} s; measuring...", flush=True)
            r = RUNNERS[tool](emu, args, account, n, rdir)
            r["account"], r["seed_s"] = account, seed_s
            per_n[tool] = r
            for mode in ("dry-run", "real"):
                m = r[mode]
                print(f"  {tool} {mode}: {m['wall_s']:.2f} s, IAM {m['calls']['iam_total']} calls, "
                      f"found {m.get('found')}", flush=True)
        per_n["truth_names_sample"] = {k: v[:3] for k, v in names.items()}
        (rdir / "results.json").write_text(json.dumps(results, indent=2))

    table = build_report(results)
    targets = build_targets(results)
    if results["throttle"]:
        targets += "\n" + throttled_verdicts(results)
    (rdir / "results.json").write_text(json.dumps(results, indent=2))
    head = (f"dormant {results['dormant_profile']} build at commit {git}, c7n {versions['c7n']}, "
            f"{results['cores']} cores, load average at the end {os.getloadavg()[0]:.1f}\n\n")
    (rdir / "table.md").write_text(head + table + "\n\nTargets (printed, not asserted):\n\n```\n" + targets + "\n```\n")
    print()
    print(table)
    print()
    print("Targets (printed, not asserted):")
    print(targets)
    print(f"\nraw results: {rdir / 'results.json'}")


if __name__ == "__main__":
    main()
