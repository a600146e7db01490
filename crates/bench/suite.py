#!/usr/bin/env python3
"""The udpchat benchmark suite: runs udpchat-bench against the release relay
and the Python reference relay, back to back in one run, and writes
BENCHMARKS.md. Start it through crates/bench/run.sh (which builds first).

Every relay run gets a fresh relay process on a free loopback port
(--bind 127.0.0.1:0), so peak RSS belongs to that run alone. Figures are
medians of --reps runs with min..max. Only loopback traffic; every run is
bounded by udpchat-bench's own --duration and deadlines, and by a timeout here.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "target", "release", "udpchat-bench")
RELAY = os.path.join(ROOT, "target", "release", "udpchat-relay")
PYRELAY = os.path.join(ROOT, "crates", "bench", "reference", "relay.py")
DELIVERY = os.path.join(ROOT, "target", "release", "udpchat-delivery")
HOSTILE = os.path.join(ROOT, "target", "release", "udpchat-hostile")
CLIENT = os.path.join(ROOT, "target", "release", "udpchat")

# Relay flags for throughput and latency: lift the per-address rate limit
# (one sender sends thousands of messages a second) and the member cap.
OURS_LOAD = ["--max-clients", "20000", "--rate-burst", "1000000", "--rate-per-sec", "1000000"]
# Overload: the relay's default rate limit holds the flooder. Given explicitly
# so that an earlier build (--baseline) with other defaults runs the same one.
RATE_BURST, RATE_PER_SEC = 80, 40
OURS_DEFAULT = ["--rate-burst", str(RATE_BURST), "--rate-per-sec", str(RATE_PER_SEC)]
FLOOD_HELD = (RATE_BURST + RATE_PER_SEC * 5) / 5  # accepted/s at most over a 5 s run

LOG = []  # every benchmark command run, in order: (relay label or None, command)
RELAYS = {}  # relay command line -> label (R1, R2, ...)


def rel(path):
    return os.path.relpath(path, ROOT)


PIN = {"on": False}
BASELINE = {"path": None, "label": None}  # --baseline: an earlier relay binary, kind "before"  # --pin: relay on CPU 1, the benchmark's receiver on CPU 0


class RelayProcess:
    """A relay child on 127.0.0.1:0; its first stdout line names the address."""

    def __init__(self, kind, flags, pin=False):
        if kind == "ours":
            argv = [RELAY, "--bind", "127.0.0.1:0"] + flags
        elif kind == "before":
            argv = [BASELINE["path"], "--bind", "127.0.0.1:0"] + flags
        else:
            argv = [sys.executable, PYRELAY, "--bind", "127.0.0.1:0"]
        if pin:
            argv = ["taskset", "-c", "1"] + argv
        self.kind = kind
        self.shown = " ".join(shlex.quote(rel(a) if a.startswith(ROOT) else a) for a in argv)
        if kind == "before":
            self.shown = self.shown.replace(shlex.quote(BASELINE["path"]), "BASELINE")
        if kind == "python":
            self.shown = self.shown.replace(sys.executable, "python3")
        self.log = open(os.path.join(OUT_DIR, f"relay-{kind}.log"), "ab")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")),
        )
        line = self.proc.stdout.readline().decode().strip()
        if "listening on " not in line:
            self.stop()
            raise RuntimeError(f"{self.shown}: unexpected first line {line!r}")
        self.addr = line.rsplit(" ", 1)[1]
        self.pid = self.proc.pid
        time.sleep(0.2)
        self.idle_rss_kib = vm_kib(self.pid, "VmHWM")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def vm_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def bench(args, relay=None, timeout=900):
    """Runs udpchat-bench; returns its JSON report (dict)."""
    argv = [BENCH, "--progress", "never"] + [str(a) for a in args]
    shown = ["target/release/udpchat-bench"] + [str(a) for a in args]
    label = None
    if relay is not None:
        argv += ["--relay", relay.addr, "--relay-pid", str(relay.pid)]
        shown += ["--relay", "ADDR", "--relay-pid", "PID"]
        label = RELAYS.setdefault(relay.shown, f"R{len(RELAYS) + 1}")
    LOG.append((label, " ".join(shown)))
    out = subprocess.run(argv, capture_output=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(shown)} failed:\n{out.stderr.decode()}")
    report = json.loads(out.stdout)
    with open(os.path.join(OUT_DIR, "results.jsonl"), "a") as f:
        f.write(json.dumps({"command": " ".join(shown), "report": report}) + "\n")
    return report


# The limit's variants; the denominator is the best of them (median of each).
# "closed loop": the sender keeps at most W rounds of C datagrams unreceived,
# with the W of the relay's closed-loop run (--limit-window).
LIMIT_VARIANTS = ("sendmmsg", "sendto", "sendmmsg closed loop")

FAILURES = []  # (what, error) of runs that failed; the suite goes on without them


def with_relay(kind, flags, args, timeout=900, pin=True):
    """One run against a fresh relay; None (and a note in FAILURES) if it fails.
    With --pin (and pin=True) the relay runs on CPU 1 and the benchmark on CPU 0."""
    pin = pin and PIN["on"]
    if pin:
        args = list(args) + ["--cpu", 0]
    try:
        relay = RelayProcess(kind, flags, pin)
    except (OSError, RuntimeError) as e:
        FAILURES.append((f"starting the {kind} relay", str(e)))
        return None
    try:
        report = bench(args, relay, timeout)
        report["_idle_rss_kib"] = relay.idle_rss_kib
        return report
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
        FAILURES.append((f"{kind}: udpchat-bench {' '.join(map(str, args))}", str(e).strip()))
        progress(f"FAILED: {e}")
        return None
    finally:
        relay.stop()


def keep(table, key, report):
    if report is not None:
        table.setdefault(key, []).append(report)


def med(values):
    """(median, min, max) of a list of numbers."""
    return (statistics.median(values), min(values), max(values))


def fmt(triple, spec="{:,.0f}"):
    m, lo, hi = triple
    return f"{spec.format(m)} ({spec.format(lo)}..{spec.format(hi)})"


def progress(msg):
    print(f"[{datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def window_for(clients):
    # Enough messages in flight to keep the relay busy without queueing more
    # than a few thousand copies in the clients' buffers.
    # At C = 10 a small window leaves the relay idle while the benchmark's
    # one thread turns deliveries into new messages (measured: W = 8, 32, 128
    # gave 106k, 128k, 201k deliveries/s), so up to 128.
    return max(2, min(128, 20_000 // clients))


def main():
    global OUT_DIR
    p = argparse.ArgumentParser(description="udpchat benchmark suite")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--duration", type=float, default=3.0, help="seconds per throughput run")
    p.add_argument("--clients", default="10,100,1000,10000")
    p.add_argument("--skip-python", action="store_true")
    p.add_argument("--pin", action="store_true",
                   help="relay (or limit sender) on CPU 1, receiver on CPU 0; not in overload")
    p.add_argument("--baseline", metavar="RELAY_BINARY",
                   help="also run this earlier build of udpchat-relay (kind 'before') in every "
                        "relay run, back to back with ours, for a before/after comparison "
                        "against the same limit in one run")
    p.add_argument("--baseline-label", default="an earlier build",
                   help="what --baseline is, for the report (e.g. 'main at b484feb')")
    p.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--one-join-from", type=int, default=1_000_000,
                   help="from this many members on, one relay run per size with --rounds REPS "
                        "(for relays whose joins are slow: announcing every join to every "
                        "member makes 10,000 joins cost 50 million datagrams)")
    p.add_argument("--storm-clients", default="1000,10000",
                   help="member counts of the join-storm runs (join only, 64 joins at once)")
    p.add_argument("--delivery-seeds", type=int, default=5,
                   help="seeds per loss pattern in the delivery section (real binaries through "
                        "the loss proxy; each run takes a few seconds to minutes)")
    p.add_argument("--only", default="limit,throughput,latency,overload,storm,delivery,hostile",
                   help="comma-separated sections")
    a = p.parse_args()
    if a.reps < 1:
        sys.exit("--reps must be at least 1")
    OUT_DIR = os.path.join(ROOT, "target", "bench")
    PIN["on"] = a.pin
    if a.baseline:
        BASELINE["path"] = os.path.abspath(a.baseline)
        BASELINE["label"] = a.baseline_label
    os.makedirs(OUT_DIR, exist_ok=True)
    open(os.path.join(OUT_DIR, "results.jsonl"), "w").close()
    sizes = [int(c) for c in a.clients.split(",")]
    only = set(a.only.split(","))
    kinds = (["ours"] + (["before"] if a.baseline else [])
             + ([] if a.skip_python else ["python"]))
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    res = {"limit": {}, "thr": {}, "lat": {}, "over": {}, "storm": {}, "delivery": None,
           "delivery_sim": None, "hostile": {}}
    storm_sizes = [int(c) for c in a.storm_clients.split(",") if c]

    for rep in range(a.reps):
        # One round of everything per repetition, so slow drifts of the
        # machine's load spread over all figures instead of one.
        if "limit" in only:
            for c in sizes:
                for call in LIMIT_VARIANTS:
                    progress(f"rep {rep + 1}: limit C={c} {call}")
                    try:
                        pin = ["--cpu", 0, "--sender-cpu", 1] if a.pin else []
                        variant = ["--send-call", call.split()[0]]
                        if call.endswith("closed loop"):
                            variant += ["--limit-window", window_for(c)]
                        r = bench(["--limit", "-c", c, "-d", a.duration] + variant + pin)
                    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                        FAILURES.append((f"limit C={c} {call}", str(e).strip()))
                        r = None
                    keep(res["limit"], (c, call), r)
        if "throughput" in only:
            for c in sizes:
                one_join = c >= a.one_join_from
                if one_join and rep > 0:
                    continue
                for kind in kinds:
                    progress(f"rep {rep + 1}: closed loop C={c} {kind}"
                             + (f", one join, {a.reps} rounds" if one_join else ""))
                    # Paced joins (each client joins when the previous one is
                    # answered): the peak RSS after the join is then what the
                    # members cost, not a transient of the join burst.
                    args = ["-c", c, "-w", window_for(c), "-d", a.duration, "--join-window", 1,
                            "--join-deadline", 1700]
                    if one_join:
                        args += ["--rounds", a.reps]
                    r = with_relay(kind, OURS_LOAD, args, timeout=1800)
                    if r is not None and r.get("rounds"):
                        for rnd in r["rounds"]:
                            rnd["_idle_rss_kib"] = r["_idle_rss_kib"]
                            rnd["_one_join"] = True
                            keep(res["thr"], (c, kind), rnd)
                    else:
                        keep(res["thr"], (c, kind), r)
        if "latency" in only:
            for c in (100, 1000):
                for kind in kinds:
                    progress(f"rep {rep + 1}: latency 20 msg/s C={c} {kind}")
                    r = with_relay(kind, OURS_LOAD,
                                   ["-c", c, "-s", 10, "--mode", "rate", "--rate", 20, "-d", 5])
                    keep(res["lat"], (c, kind), r)
        if "overload" in only:
            for kind in kinds:
                for flooders in (0, 1):
                    progress(f"rep {rep + 1}: overload flooders={flooders} {kind}")
                    r = with_relay(kind, OURS_DEFAULT,
                                   ["-c", 100, "-s", 10, "--mode", "rate", "--rate", 20,
                                    "-d", 5, "--flooders", flooders], pin=False)
                    keep(res["over"], (kind, flooders), r)
        if "storm" in only:
            for c in storm_sizes:
                if c >= a.one_join_from and rep > 0:
                    continue
                for kind in kinds:
                    progress(f"rep {rep + 1}: join storm C={c} {kind}")
                    r = with_relay(kind, OURS_LOAD, ["-c", c, "-d", 0, "--join-window", 64,
                                                     "--join-deadline", 1700],
                                   timeout=1800)
                    keep(res["storm"], (c, kind), r)
        if "delivery" in only and rep == a.reps - 1:
            res["delivery"] = delivery(a.delivery_seeds)
            res["delivery_sim"] = delivery_sim()
        if "hostile" in only and rep == a.reps - 1:
            for kind in [k for k in kinds if k != "python"]:
                progress(f"hostile classroom (issue 12): {kind}")
                r = hostile(kind)
                if r is not None:
                    res["hostile"][kind] = r
        # Written after every repetition, so a run cut short still leaves
        # its figures (with the count of repetitions done).
        finished = datetime.datetime.now(datetime.timezone.utc)
        write_markdown(a, res, sizes, storm_sizes, kinds, rep + 1, started, finished,
                       load_before, os.getloadavg())
        progress(f"wrote {a.out} after repetition {rep + 1}")


def hostile(kind):
    """The issue-12 attacks (crates/hostile) against one relay binary:
    udpchat-hostile starts a fresh relay per scenario. Needs root for the
    forged packets (scenarios are marked skipped otherwise)."""
    relay = RELAY if kind == "ours" else BASELINE["path"]
    shown_relay = "target/release/udpchat-relay" if kind == "ours" else "BASELINE"
    shown = f"target/release/udpchat-hostile --relay-bin {shown_relay} --client-bin target/release/udpchat"
    LOG.append((None, shown))
    try:
        out = subprocess.run([HOSTILE, "--relay-bin", relay, "--client-bin", CLIENT],
                             capture_output=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.decode())
        report = json.loads(out.stdout)
    except (OSError, RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
        FAILURES.append((f"{kind}: {shown}", str(e).strip()))
        return None
    with open(os.path.join(OUT_DIR, "results.jsonl"), "a") as f:
        f.write(json.dumps({"command": shown, "report": report}) + "\n")
    return report


def hostile_rows(r):
    """(item, attack, figure, target, value, passed) rows of one udpchat-hostile report."""
    rows = []

    def add(item, attack, figure, target, scenario, value, passed):
        if scenario is None:
            rows.append((item, attack, figure, target, "not run", None))
        elif "skipped" in scenario or "error" in scenario:
            why = scenario.get("skipped") or scenario.get("error")
            rows.append((item, attack, figure, target, f"({why})", None))
        else:
            rows.append((item, attack, figure, target, value(scenario), passed(scenario)))

    def yn(b):
        return "yes" if b else "no"

    def amp(t):
        return t["bytes_out"] / t["bytes_in"] if t["bytes_in"] else 0.0

    def lat_ratio(c):
        q, x = c["quiet"], c["attack"]
        timeout = 2_000_000
        q50 = max(q["p50_us"] if q["samples"] else timeout, 1)
        q99 = max(q["p99_us"] if q["samples"] else timeout, 1)
        a50 = x["p50_us"] if x["samples"] else timeout
        a99 = x["p99_us"] if x["samples"] else timeout
        if x["lost"] and x["lost"] * 100 >= x["samples"] + x["lost"]:
            a99 = timeout
        return a50 / q50, a99 / q99

    def honest_row(item, scenario):
        add(item, "", "honest echo p50 / p99 vs quiet", "-", scenario,
            lambda s: "{:.1f}x / {:.1f}x ({} lost)".format(*lat_ratio(s["honest"]),
                                                           s["honest"]["attack"]["lost"]),
            lambda s: None)

    icmp, icmp6 = r.get("icmp"), r.get("icmp6")
    add(1, "forged ICMP port unreachable from another IP", "member evicted", "no", icmp,
        lambda s: yn(s["foreign_evicted"]), lambda s: s["foreign_evicted"] is False)
    add(1, "forged ICMP from the member's own IP, member talking", "member evicted", "no", icmp,
        lambda s: yn(s["own_ip_evicted_while_talking"]),
        lambda s: not s["own_ip_evicted_while_talking"])
    add(1, "forged ICMPv6 from ::1, member talking", "member evicted", "no", icmp6,
        lambda s: yn(s["own_ip_evicted_while_talking"]),
        lambda s: not s["own_ip_evicted_while_talking"])
    churn = r.get("churn")
    add(2, "4,096 strangers fill the table, then `N x`/`Q x` churn 2 s",
        "joins accepted", "<= 240", churn,
        lambda s: f"{s['joins_accepted']:,} of {s['churn']['datagrams_in'] // 2:,}",
        lambda s: s["joins_accepted"] <= 240)
    add(2, "", "datagrams out / in", "<= 3", churn,
        lambda s: f"{s['churn']['datagrams_out'] / max(s['churn']['datagrams_in'], 1):.2f}",
        lambda s: s["churn"]["datagrams_out"] <= 3 * max(s["churn"]["datagrams_in"], 1))
    add(2, "", "honest echo p50 / p99 vs quiet", ">= 5 echoes, <= 1/4 lost", churn,
        lambda s: "{:.1f}x / {:.1f}x ({} lost)".format(*lat_ratio(s), s["attack"]["lost"]),
        lambda s: s["attack"]["samples"] >= 5
        and 4 * s["attack"]["lost"] <= s["attack"]["samples"] + s["attack"]["lost"])
    ampl = r.get("amplification")
    for key, what in [("forged_joins", "300 forged `N` from 300 ports of a victim IP"),
                      ("forged_who", "100 forged `WHO` (non-member victim)"),
                      ("forged_ping", "100 forged `PING` with a 32-byte token"),
                      ("forged_hello", "100 forged cookie-less `HELLO`")]:
        add(3, what, "amplification at the victim", "<= 3x (+1 KiB)", ampl,
            lambda s, k=key: f"{amp(s[k]):.1f}x",
            lambda s, k=key: s[k]["bytes_out"] <= 3 * s[k]["bytes_in"] + 1024)
    honest_row(3, ampl)
    fr = r.get("forged_relay")
    add(4, "datagrams forged from the relay to a real client", "real messages shown",
        "30 of 30", fr, lambda s: f"{s['real_shown']} of {s['real_sent']}",
        lambda s: s["real_shown"] == s["real_sent"])
    add(4, "", "forged lines shown; forged BYE believed", "0; no", fr,
        lambda s: f"{len(s['forged_shown'])}; {yn(s['bye_accepted'])}",
        lambda s: not s["forged_shown"] and not s["bye_accepted"])
    fj = r.get("flood_joins")
    add(5, "3,000/s `PING` flood from 64 other IPs for 4 s, 3 real clients join 1 s in",
        "joins within the flood",
        "3 of 3", fj, lambda s: f"{s['joins_ok']} of {s['joins_tried']}",
        lambda s: s["joins_ok"] == s["joins_tried"])
    honest_row(5, fj)
    rc = r.get("reply_cost")
    add(6, "a member sends `WHO` for 2 s in a room of 150 long nicks",
        "reply datagrams (bytes out / in)", "<= 360", rc,
        lambda s: f"{s['member_who']['datagrams_out']:,} ({amp(s['member_who']):,.0f}x)",
        lambda s: s["member_who"]["datagrams_out"] <= 360)
    for key, what in [("member_resend", "a structured member sends `RESEND 1 64` for 2 s"),
                      ("member_hello", "a structured member repeats its cookie `HELLO` for 2 s "
                                       "(`--history-on-join 64`)")]:
        add(6, what, "reply bytes (out / in)", "<= 196,608", rc,
            lambda s, k=key: "could not join" if s.get(k) is None
            else f"{s[k]['bytes_out']:,} ({amp(s[k]):,.0f}x)",
            lambda s, k=key: s.get(k) is not None and s[k]["bytes_out"] <= 196_608)
    add(6, "100 `WHO` forged from a member's address", "amplification at that member", "-", rc,
        lambda s: f"{amp(s['forged_who_at_member']):,.0f}x", lambda s: None)
    honest_row(6, rc)
    sp = r.get("spoof")
    add(7, "forged `SAY`/`M`, `NICK`, `N`, `PING` flood, `Q` from a real client's address",
        "said / renamed / downgraded / blocked / quit", "all no", sp,
        lambda s: " / ".join(yn(s[k]) for k in ["said", "renamed", "downgraded", "blocked", "quit"]),
        lambda s: not any(s[k] for k in ["said", "renamed", "downgraded", "blocked", "quit"]))
    honest_row(7, sp)

    def refused(s):
        o = s["outcomes"]
        ok = [x for x in o if not x["relayed"] and x["reply"].startswith(("ERROR", "错误"))]
        return f"{len(ok)} of {len(o)}"

    def all_refused(s):
        return all(not x["relayed"] and x["reply"].startswith(("ERROR", "错误"))
                   for x in s["outcomes"])

    add(8, "text padded to show `* teacher left` / `[host]` on an `nc` row", "refused",
        "all", r.get("fake_lines"), refused, all_refused)
    add(9, "invisible format characters in text", "refused", "all", r.get("invisible"),
        refused, all_refused)
    return rows


def write_hostile(w, res):
    w("## Hostile classroom (issue 12)")
    w("")
    w("`udpchat-hostile` (crates/hostile, the scenarios of tests/e2e/hostile.rs) against a "
      "fresh relay per scenario: forged datagrams and ICMP errors from `127.x.y.z` addresses "
      "(raw sockets, root), floods from real sockets at other IPs, the real `udpchat` as the "
      "structured victim. Amplification = bytes the victim received / bytes the attacker "
      "sent. Latency: an honest classic member's echo (`M` until its own line returns), one "
      "probe every 50 ms, p50 / p99 during the attack as a ratio to the same member's quiet "
      "second before it (a lost probe counts as 2 s). One run each.")
    w("")
    kinds = [k for k in ("ours", "before") if k in res["hostile"]]
    rows = {k: hostile_rows(res["hostile"][k]) for k in kinds}
    head = "| item | attack | figure | target | " + " | ".join(
        "ours" if k == "ours" else f"before ({BASELINE['label']})" for k in kinds) + " |"
    w(head)
    w("|---|---|---|---|" + "---|" * len(kinds))
    for i, row in enumerate(rows[kinds[0]]):
        item, attack, figure, target = row[:4]
        cells = []
        for k in kinds:
            value, passed = rows[k][i][4], rows[k][i][5]
            mark = "" if passed is None else (" pass" if passed else " **FAIL**")
            cells.append(f"{value}{mark}")
        w(f"| {item} | {attack} | {figure} | {target} | " + " | ".join(cells) + " |")
    w("")


def delivery(seeds):
    """The delivery table of udpchat-delivery (real binaries through the
    seeded loss proxy), or None if it failed."""
    argv = [DELIVERY, "--loss", "0,0.2,0.3", "--seeds", str(seeds)]
    progress(f"delivery through loss, {seeds} seeds per pattern")
    LOG.append((None, " ".join(["target/release/udpchat-delivery"] + argv[1:])))
    try:
        out = subprocess.run(argv, capture_output=True, timeout=3600)
    except subprocess.TimeoutExpired as e:
        FAILURES.append(("udpchat-delivery", str(e)))
        return None
    if out.returncode != 0:
        FAILURES.append(("udpchat-delivery", out.stderr.decode()))
        return None
    return out.stdout.decode().strip()


def delivery_sim():
    """The simulator's delivery table (crates/netsim/tests/delivery.rs, its
    ignored measurement: virtual time, 20 seeds), or None if it failed."""
    argv = ["cargo", "test", "-q", "-p", "udpchat-netsim", "--test", "delivery", "--",
            "--ignored", "--nocapture"]
    progress("delivery on the simulator")
    LOG.append((None, " ".join(argv)))
    try:
        out = subprocess.run(argv, capture_output=True, timeout=1800, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        FAILURES.append(("simulator delivery table", str(e)))
        return None
    # The table is printed to the test's stderr (--nocapture), cargo's own
    # lines to stderr too: keep the table's.
    lines = (out.stdout.decode() + out.stderr.decode()).splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("3 clients")), None)
    keep = []
    if start is not None:
        for l in lines[start:]:
            if not l.strip() or l.startswith(("test result", ".")):
                break
            keep.append(l)
    if out.returncode != 0 or not keep:
        FAILURES.append(("simulator delivery table", out.stderr.decode()[-500:]))
        return None
    return "\n".join(keep)


def limit_of(res, c):
    """The better of sendmmsg and sendto (median), the denominator."""
    best = None
    for call in LIMIT_VARIANTS:
        runs = res["limit"].get((c, call))
        if runs:
            m = med([r["deliveries_per_sec"] for r in runs])
            if best is None or m[0] > best[0][0]:
                best = (m, call)
    return best


def write_markdown(a, res, sizes, storm_sizes, kinds, reps_done, started, finished,
                   load_before, load_after):
    L = []
    w = L.append
    uname = platform.uname()
    w("# udpchat benchmarks")
    w("")
    w(f"Measured {started:%Y-%m-%d %H:%M}–{finished:%H:%M} UTC by `crates/bench/run.sh` "
      f"in one run, back to back, so the ratios compare like with like.")
    w(f"Machine: {os.cpu_count()} cores, Linux {uname.release} ({uname.machine}); "
      f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.")
    w(f"Every figure is the **median of {reps_done} runs, with min..max** in parentheses. "
      "Each relay run starts a fresh relay on a free loopback port. Datagrams are 64 bytes "
      "(the fan-out line `nick: text` of a measured message is padded to 64 bytes, as the "
      "limit's datagram).")
    w("")
    if a.pin:
        w("Pinned (`--pin`): the relay (`taskset -c 1`) and the limit's sender thread on CPU 1, "
          "the benchmark's receiving thread on CPU 0 (`--cpu 0`), so each side has one core; "
          "the overload runs are not pinned.")
        w("")
    w("The limit is one thread sending 64-byte datagrams round robin to C sockets as fast "
      "as it can (`--limit`; the best of `sendmmsg`, `sendto`, and `sendmmsg` held to the "
      "relay run's window W, `--limit-window`), received by the same receiver "
      "(mio + recvmmsg) as the relay runs: a single-threaded relay cannot fan out faster.")
    w("")

    summary(w, res, kinds)
    if "before" in kinds:
        before_after(w, res, sizes, storm_sizes)
    notes = kept_notes(a.out)
    if notes:
        w(notes)
        w("")
    if res["thr"]:
        w("## Throughput (closed loop)")
        w("")
        w("One sender, at most W messages in flight (a new one when the last copy of an "
          f"earlier one arrives), {a.duration:g} s per run. Deliveries/s = copies received by "
          "members per second. **Target (issue 5): ours / limit ≥ 0.95 at C = 100 and 1,000**; "
          "a simple Python relay reaches 0.71–0.87.")
        w("")
        head = "| C | W | limit deliveries/s | ours deliveries/s | ours / limit |"
        sep = "|---|---|---|---|---|"
        if "python" in kinds:
            head += " Python deliveries/s | Python / limit | ours / Python |"
            sep += "---|---|---|"
        head += " ours loss |"
        sep += "---|"
        w(head)
        w(sep)
        for c in sizes:
            lim = limit_of(res, c)
            ours = res["thr"].get((c, "ours"))
            if not ours:
                continue
            o = med([r["deliveries_per_sec"] for r in ours])
            row = f"| {c:,}{' †' if ours[0].get('_one_join') else ''} | {ours[0].get('window')} | "
            row += (fmt(lim[0]) + f" {lim[1]}" if lim else "–") + " | "
            row += fmt(o) + " | "
            row += (fmt(ratio_runs(ours, lim), "{:.2f}") if lim else "–") + " |"
            if "python" in kinds:
                py = res["thr"].get((c, "python"))
                if py:
                    pm = med([r["deliveries_per_sec"] for r in py])
                    row += f" {fmt(pm)} | "
                    row += (fmt(ratio_runs(py, lim), "{:.2f}") if lim else "–") + " | "
                    row += f"{o[0] / pm[0]:.2f} |" if pm[0] else "– |"
                else:
                    row += " – | – | – |"
            row += f" {loss_text(ours)} |"
            w(row)
        w("")
        if any(r and r[0].get("_one_join") for r in res["thr"].values()):
            w(f"† C ≥ {a.one_join_from:,}: the {a.reps} runs are {a.reps} rounds after one "
              "join (`--rounds`), each its own measurement.")
            w("")
        w("Limit by system call (median deliveries/s; the least share of sent datagrams "
          "received: below 100 % the receiver, not the sender, bounds the limit): " + "; ".join(
            f"C={c:,}: " + ", ".join(
                f"{call} {statistics.median([r['deliveries_per_sec'] for r in res['limit'][(c, call)]]):,.0f}"
                f" ({min(r['loss']['delivery_share'] for r in res['limit'][(c, call)]) * 100:.1f} % received)"
                for call in LIMIT_VARIANTS if (c, call) in res["limit"])
            for c in sizes if any((c, k) in res["limit"] for k in LIMIT_VARIANTS)) + ".")
        w("")
        cpu = [(c, med([r["relay_process"]["cpu_load_share"] for r in res["thr"][(c, "ours")]]))
               for c in sizes if (c, "ours") in res["thr"]]
        w("Relay CPU during the closed-loop runs (share of one core): "
          + ", ".join(f"C={c:,}: {m[0]:.2f}" for c, m in cpu) + ".")
        w("")

    if res["lat"]:
        w("## Latency at a fixed 20 messages/s")
        w("")
        w("10 senders, 20 messages/s in all, 5 s; one-way latency of every copy, sender's "
          "send to member's receive, on the benchmark's one monotonic clock. The kernel "
          "bound for the last of C recipients is about C / limit deliveries/s.")
        w("")
        w("| C | relay | p50 µs | p99 µs | max µs | kernel bound C/limit µs | loss |")
        w("|---|---|---|---|---|---|---|")
        for c in (100, 1000):
            for kind in kinds:
                runs = res["lat"].get((c, kind))
                if not runs:
                    continue
                lim = limit_of(res, c)
                bound = f"{c / lim[0][0] * 1e6:,.0f}" if lim else "–"
                w(f"| {c:,} | {kind} | {fmt(med([r['latency']['p50_us'] for r in runs]))} | "
                  f"{fmt(med([r['latency']['p99_us'] for r in runs]))} | "
                  f"{fmt(med([r['latency']['max_us'] for r in runs]))} | {bound} | {loss_text(runs)} |")
        w("")

    if res["over"]:
        w("## Overload")
        w("")
        w("C = 100 members; 10 honest senders at 2 messages/s each (20/s in all) for 5 s; "
          "plus one more member flooding chat as fast as one thread can (sendmmsg). Our relay "
          f"runs with its default rate limit (burst {RATE_BURST}, refill {RATE_PER_SEC}/s per address). **Targets: "
          "honest delivery share ≥ 99 %, honest p99 ≤ 2× the run without the flooder, the "
          f"flooder held to the configured limit** (at most ({RATE_BURST} + {RATE_PER_SEC}·5) / 5 = "
          f"{FLOOD_HELD:g} messages/s over 5 s).")
        w("")
        w("| relay | flooder | honest delivery share | honest p50 µs | honest p99 µs | p99 / no-flood p99 | flooder sent/s | flooder accepted/s |")
        w("|---|---|---|---|---|---|---|---|")
        for kind in kinds:
            base = res["over"].get((kind, 0))
            for flooders in (0, 1):
                runs = res["over"].get((kind, flooders))
                if not runs:
                    continue
                share = med([100 * r["loss"]["delivery_share"] for r in runs])
                p99 = med([r["latency"]["p99_us"] for r in runs])
                rel_p99 = "–"
                if flooders and base:
                    rel_p99 = fmt(med([r["latency"]["p99_us"] / b["latency"]["p99_us"]
                                       for r, b in zip(runs, base) if b["latency"]["p99_us"]]),
                                  "{:.2f}")
                fl = [r["flood"] for r in runs if r.get("flood")]
                sent = fmt(med([f["sent_per_sec"] for f in fl])) if fl else "–"
                acc = fmt(med([f["accepted_per_sec"] for f in fl]), "{:,.1f}") if fl else "–"
                w(f"| {kind} | {'yes' if flooders else 'no'} | {fmt(share, '{:.1f} %')} | "
                  f"{fmt(med([r['latency']['p50_us'] for r in runs]))} | {fmt(p99)} | "
                  f"{rel_p99} | {sent} | {acc} |")
        w("")

    if res["storm"] or res["thr"]:
        w("## Memory and join storm")
        w("")
        w("**Targets: peak RSS ≤ 4 MiB at C = 1,000 (the Python relay: about 15 MiB), "
          "≤ 16 MiB at C = 10,000.** Peak RSS is VmHWM from /proc. *Paced*: the closed-loop "
          "runs above, each client joining when the previous one is answered "
          "(`--join-window 1`), peak RSS read right after the last join (what the members "
          "cost; bytes/member = (that − peak of the idle relay) / C) and again after the load. "
          "*Storm*: join-only runs with 64 joins outstanding at once (retrying lost ones), "
          "as when a class joins together. Join time: first join datagram to last answer. "
          "Our relay announces joins (`* nick joined`) only while the room has at most "
          "`--announce-limit` (default 200) members, so a join costs at most 200 datagrams; "
          "the Python relay announces nothing.")
        w("")
        if any(r and r[0].get("_one_join") for r in res["thr"].values()):
            w(f"From {a.one_join_from:,} members on, each join is measured once (one relay "
              "run; its closed-loop figures above are that run's rounds).")
            w("")
        w("| C | relay | joins | runs | idle peak RSS KiB | peak RSS joined KiB | bytes/member | peak RSS after load KiB | join time s | joins/s |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        rows = []
        for c in sorted(set(storm_sizes) | {c for c in sizes if c >= 1000}):
            for kind in kinds:
                rows.append((c, kind, "paced", res["thr"].get((c, kind))))
                rows.append((c, kind, "storm", res["storm"].get((c, kind))))
        for c, kind, how, runs in rows:
            if not runs:
                continue
            idle = med([r["_idle_rss_kib"] for r in runs])
            joined = med([r["relay_process"]["peak_rss_joined_kib"] for r in runs])
            per = med([(r["relay_process"]["peak_rss_joined_kib"] - r["_idle_rss_kib"]) * 1024 / c
                       for r in runs])
            after = (fmt(med([r["relay_process"]["peak_rss_kib"] for r in runs]))
                     if how == "paced" else "–")
            jt = med([r["join"]["secs"] for r in runs])
            jr = med([r["join"]["per_sec"] for r in runs])
            n = 1 if runs[0].get("_one_join") else len(runs)
            w(f"| {c:,} | {kind} | {how} | {n} | {fmt(idle)} | {fmt(joined)} | {fmt(per)} | {after} | "
              f"{fmt(jt, '{:.2f}')} | {fmt(jr)} |")
        w("")

    if res["delivery_sim"]:
        w("## Delivery through loss (simulator)")
        w("")
        w("The same scenario on the deterministic network simulator (crates/netsim: the real "
          "room and client session, virtual clock, seeded loss), 20 seeds per pattern. "
          "**Targets (issue 11): every client complete within 3 s at 20 % loss + 2 % dup + 3 % "
          "reorder, 10 s at 30 %, 5 s with bursts; at most 1.5 datagrams per message per member "
          "without loss.**")
        w("")
        w("```")
        w(res["delivery_sim"])
        w("```")
        w("")
    if res["delivery"]:
        w("## Delivery through loss (real binaries)")
        w("")
        w("`udpchat-delivery`: the relay, the seeded loss proxy in front of it and 3 piped "
          "`udpchat` clients; each client types 40 lines at 20 lines/s. Completion: from the "
          "last line typed until every client shows all 120 lines exactly once (faults count "
          "lines shown twice or out of their sender's order). Datagrams and bytes: both "
          "directions on the wire, per delivered message per member. A client not complete "
          "within 120 s counts as incomplete and is left out of the times.")
        w("")
        w(res["delivery"])
        w("")

    if res.get("hostile"):
        write_hostile(w, res)

    if FAILURES:
        w("## Runs that failed")
        w("")
        w("These runs are missing from the medians above:")
        w("")
        for what, err in FAILURES:
            w(f"- {what}: {err.splitlines()[-1] if err else '?'}")
        w("")

    w("## How to reproduce")
    w("")
    w("From a clean clone (Linux, Rust, python3): `crates/bench/run.sh` "
      f"(this run: `crates/bench/run.sh {shlex.join(shown_args())}`). "
      "It builds the release binaries, then runs these commands in this order, "
      f"{a.reps} times over. A run marked [Rn] first starts a fresh relay Rn, whose first "
      "stdout line gives ADDR; PID is its process id; it is stopped with SIGTERM after the "
      "run. Raw JSON reports land in target/bench/results.jsonl.")
    w("")
    w("```")
    for shown, label in RELAYS.items():
        w(f"R{label[1:]}: {shown}")
    seen = []
    for label, line in LOG:
        entry = f"[{label}] {line}" if label else line
        if entry not in seen:
            seen.append(entry)
    w("\n".join(seen))
    w("```")
    w("")
    with open(a.out, "w") as f:
        f.write("\n".join(L))


def before_after(w, res, sizes, storm_sizes):
    """Our relay against the --baseline build, run for run in the same suite."""
    w("## Before and after (`--baseline`)")
    w("")
    w(f"*before* is BASELINE, {BASELINE['label']}, run back to back with *ours* "
      "in every repetition, against the same limit and with the same benchmark binary.")
    w("")
    w("| what | before | ours | ours / before |")
    w("|---|---|---|---|")

    def row(what, b, o, spec="{:,.0f}"):
        if b and o:
            w(f"| {what} | {fmt(b, spec)} | {fmt(o, spec)} | {o[0] / b[0]:.2f} |")

    for c in sizes:
        b, o = res["thr"].get((c, "before")), res["thr"].get((c, "ours"))
        lim = limit_of(res, c)
        if b and o:
            row(f"throughput deliveries/s, C = {c:,}",
                med([r["deliveries_per_sec"] for r in b]), med([r["deliveries_per_sec"] for r in o]))
            if lim:
                row(f"throughput / limit, C = {c:,}", ratio_runs(b, lim), ratio_runs(o, lim), "{:.2f}")
    for c in (100, 1000):
        b, o = res["lat"].get((c, "before")), res["lat"].get((c, "ours"))
        if b and o:
            row(f"latency p50 µs at 20 msg/s, C = {c:,}",
                med([r["latency"]["p50_us"] for r in b]), med([r["latency"]["p50_us"] for r in o]))
            row(f"latency p99 µs at 20 msg/s, C = {c:,}",
                med([r["latency"]["p99_us"] for r in b]), med([r["latency"]["p99_us"] for r in o]))
    b, o = res["over"].get(("before", 1)), res["over"].get(("ours", 1))
    if b and o:
        row("overload: honest delivery share %", med([100 * r["loss"]["delivery_share"] for r in b]),
            med([100 * r["loss"]["delivery_share"] for r in o]), "{:.1f}")
    for c in sorted(set(storm_sizes) | {c for c in sizes if c >= 1000}):
        for how, table in (("paced", "thr"), ("storm", "storm")):
            b, o = res[table].get((c, "before")), res[table].get((c, "ours"))
            if b and o:
                row(f"peak RSS KiB, C = {c:,} ({how} joins)",
                    med([r["relay_process"]["peak_rss_joined_kib"] for r in b]),
                    med([r["relay_process"]["peak_rss_joined_kib"] for r in o]))
    w("")


def shown_args():
    """This run's arguments, the baseline's path replaced by BASELINE."""
    return ["BASELINE" if BASELINE["path"] and os.path.abspath(arg) == BASELINE["path"] else arg
            for arg in sys.argv[1:]]


def kept_notes(path):
    """The hand-written "## Findings" section of an existing BENCHMARKS.md
    (up to the next "## " heading), kept across runs of the suite."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    out, inside = [], False
    for line in lines:
        if line.startswith("## "):
            inside = line.startswith("## Findings")
        if inside:
            out.append(line)
    return "\n".join(out).rstrip()


def summary(w, res, kinds):
    """The issue's targets next to the figures, met or not."""
    rows = []

    def ok(cond):
        return "yes" if cond else "**no**"

    for c in (100, 1000):
        lim = limit_of(res, c)
        ours = res["thr"].get((c, "ours"))
        if lim and ours:
            r = ratio_runs(ours, lim)
            py = res["thr"].get((c, "python"))
            extra = f"; Python {fmt(ratio_runs(py, lim), '{:.2f}')}" if py else ""
            rows.append((f"throughput ours/limit, C = {c:,}", "≥ 0.95",
                         fmt(r, "{:.2f}") + extra, ok(r[0] >= 0.95)))
    for c in (100, 1000):
        runs = res["lat"].get((c, "ours"))
        lim = limit_of(res, c)
        if runs:
            bound = f"; kernel bound C/limit ≈ {c / lim[0][0] * 1e6:,.0f} µs" if lim else ""
            rows.append((f"latency at 20 msg/s, C = {c:,}", "report p50, p99",
                         f"p50 {fmt(med([r['latency']['p50_us'] for r in runs]))} µs, "
                         f"p99 {fmt(med([r['latency']['p99_us'] for r in runs]))} µs{bound}", "–"))
    base, flood = res["over"].get(("ours", 0)), res["over"].get(("ours", 1))
    if flood:
        share = med([100 * r["loss"]["delivery_share"] for r in flood])
        rows.append(("overload: honest delivery share", "≥ 99 %", fmt(share, "{:.1f} %"),
                     ok(share[0] >= 99)))
        if base:
            rel = med([f["latency"]["p99_us"] / b["latency"]["p99_us"]
                       for f, b in zip(flood, base) if b["latency"]["p99_us"]])
            rows.append(("overload: honest p99 / p99 without flooder", "≤ 2×",
                         fmt(rel, "{:.2f}"), ok(rel[0] <= 2)))
        acc = med([r["flood"]["accepted_per_sec"] for r in flood])
        rows.append(("overload: flooder's accepted rate",
                     f"held to burst {RATE_BURST} + {RATE_PER_SEC}/s (≤ {FLOOD_HELD:g}/s over 5 s)",
                     fmt(acc, "{:.1f}/s"), ok(acc[0] <= FLOOD_HELD + 0.5)))
    for c, target in ((1000, 4096), (10000, 16384)):
        for how, table in (("paced", "thr"), ("storm", "storm")):
            runs = res[table].get((c, "ours"))
            if runs:
                m = med([r["relay_process"]["peak_rss_joined_kib"] for r in runs])
                py = res[table].get((c, "python"))
                extra = (f"; Python {fmt(med([r['relay_process']['peak_rss_joined_kib'] for r in py]))} KiB"
                         if py else "")
                rows.append((f"peak RSS, C = {c:,} ({how} joins)", f"≤ {target // 1024} MiB",
                             f"{fmt(m)} KiB{extra}", ok(m[0] <= target)))
    for how, table in (("storm", "storm"), ("paced", "thr")):
        runs = res[table].get((10000, "ours"))
        if runs:
            rows.append((f"join time, 10,000 clients ({how})", "report",
                         f"{fmt(med([r['join']['secs'] for r in runs]), '{:.1f}')} s", "–"))
    if not rows:
        return
    w("## Summary against the targets of issue 5")
    w("")
    head = []
    for c in (100, 1000):
        lim = limit_of(res, c)
        ours, py = res["thr"].get((c, "ours")), res["thr"].get((c, "python"))
        if lim and ours:
            text = f"{ratio_runs(ours, lim)[0]:.2f} of the limit at C = {c:,}"
            if py:
                text += f" (Python relay {ratio_runs(py, lim)[0]:.2f})"
            head.append(text)
    if head:
        w("**Throughput**: our relay delivers " + " and ".join(head) + ". ")
    if flood:
        w(f"**Overload**: {med([100 * r['loss']['delivery_share'] for r in flood])[0]:.1f} % "
          "of honest messages reach every member while one address floods.")
    if head or flood:
        w("")
    w("| what | target | measured: median (min..max) | met |")
    w("|---|---|---|---|")
    for row in rows:
        w("| " + " | ".join(row) + " |")
    w("")


def ratio_runs(runs, lim):
    """Median ratio against the limit's median, with min..max over runs."""
    return med([r["deliveries_per_sec"] / lim[0][0] for r in runs])


def loss_text(runs):
    lost = [r["expected"] - r["delivered"] for r in runs]
    never = [r["loss"]["never_fanned_out"] for r in runs]
    if not any(lost):
        return "none"
    return f"{max(lost):,} copies max ({max(never):,} msgs never fanned out)"


if __name__ == "__main__":
    main()
