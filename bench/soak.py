#!/usr/bin/env python3
"""Bounded soak of a plastic fleet: churn, a mixed workload, memory and invariants.

Not run in CI. Starts a hub (embedded broker, 127.0.0.1, a free port) and N `plastic node`
processes, then for --minutes runs a mixed workload from a few client threads, each request one
`plastic --json` CLI run:

  exec    c = globals().get('c', 0) + 1 on a node, printing (boot token, c): a per-node counter
  eval    [a*b, plastic.name] checked against the expected value and the node's own name
  cp      a small file (sometimes a multi-chunk one) uploaded, then read back with eval
  ls      the fleet's presence

while a churn thread kills a random node with SIGKILL every 20-40 s and restarts it (same name
and root), stops one with SIGTERM every 60-90 s and restarts it, and kills the hub with SIGKILL
once or twice, restarting it on the same port. Node `soak-00` is never restarted, so its memory
can be followed over the whole run.

Afterwards it checks invariants (see docs/reliability.md):

  * per node, the final counter equals the execs acknowledged in the node's current process
    (matched by a boot token the exec prints) plus at most the execs whose outcome the client
    could not know (timeouts, dropped connections): more means a request ran twice, fewer means
    an acknowledged exec was lost;
  * every eval answer is the right value from the right node;
  * an uploaded file always reads back as the old or the new content, never anything else;
  * no hub or node process exits unless the soak killed it; every node answers at the end.

Memory: VmRSS of the hub and of every node, sampled every --sample-every seconds.

Exit status: 0 when no invariant was violated, 1 when one was, 3 when the harness itself failed.
Every child process is killed on exit, Ctrl-C and SIGTERM included (not on SIGKILL of this
script: then `pkill -P` its children by hand).

    python3 bench/soak.py --minutes 10 --out bench/results/soak.json
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict

CONTROL_NODE = "soak-00"  # never restarted: its memory spans the run
CLI_TIMEOUT = 10.0  # --timeout of each CLI request
SLOW_S = 1.0  # a successful request slower than this is listed with its time
CLI_HANG_GRACE = 20.0  # a CLI run still alive this long after its --timeout counts as a hang

# Error kinds after which the request certainly did not run: the CLI did not send it (the node's
# presence was not `online`, nothing matched the target, a bad command line). An error the node
# answered (it carries a traceback) did not increment the counter either. Anything else (Timeout,
# NodeLost "may or may not have run", a broker that went away, a CLI that hung) leaves the
# outcome unknown.
NOT_SENT_KINDS = {"NodeNotOnline", "NoTarget", "BadUsage"}


# --------------------------------------------------------------------------------------------
# Child processes: every one is registered, and all are killed on the way out.


class Children:
    def __init__(self):
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()
        self.closing = False

    def spawn(self, args, **kw) -> subprocess.Popen | None:
        with self._lock:
            if self.closing:
                return None
            p = subprocess.Popen(args, **kw)
            self._procs.add(p)
            return p

    def forget(self, p: subprocess.Popen):
        with self._lock:
            self._procs.discard(p)

    def kill_all(self):
        with self._lock:
            self.closing = True
            procs = list(self._procs)
            self._procs.clear()
        for p in procs:
            if p.poll() is None:
                try:
                    p.kill()
                except OSError:
                    pass
        for p in procs:
            try:
                p.wait(timeout=5)
            except Exception:
                pass


CHILDREN = Children()
atexit.register(CHILDREN.kill_all)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------------------------
# Small helpers


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def count_in_file(path: str, needle: str) -> int:
    try:
        with open(path, errors="replace") as f:
            return sum(1 for line in f if needle in line)
    except OSError:
        return 0


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


def slope_per_min(points):
    """Least-squares slope (value per minute) of [(t_seconds, value)]."""
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if den == 0:
        return None
    return 60.0 * sum((t - mt) * (v - mv) for t, v in points) / den


def mib(kib):
    return None if kib is None else round(kib / 1024.0, 1)


# --------------------------------------------------------------------------------------------
# The fleet


class Proc:
    """One hub or node, across its restarts (incarnations)."""

    def __init__(self, kind, name):
        self.kind = kind
        self.name = name
        self.popen: subprocess.Popen | None = None
        self.incarnation = 0
        self.log = None
        self.started_at = None
        self.stopped_at = None  # when the soak last stopped or killed it
        self.expected_down = False  # set while the soak is stopping it


class Fleet:
    def __init__(self, binary, workdir, n_nodes, t0):
        self.binary = binary
        self.workdir = workdir
        self.t0 = t0
        self.port = 0
        self.hub = Proc("hub", "hub")
        self.nodes = {f"soak-{i:02d}": Proc("node", f"soak-{i:02d}") for i in range(n_nodes)}
        self.lock = threading.RLock()  # held while the churn thread changes a process
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PLASTIC_")}
        self.env["PLASTIC_HOME"] = os.path.join(workdir, "home")
        self.env["NO_COLOR"] = "1"
        os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)

    def now(self):
        return time.monotonic() - self.t0

    @property
    def broker(self):
        return f"mqtt://127.0.0.1:{self.port}"

    def root(self, name):
        return os.path.join(self.workdir, "roots", name)

    def _start(self, proc: Proc, args):
        proc.incarnation += 1
        proc.log = os.path.join(self.workdir, "logs", f"{proc.name}-{proc.incarnation}.log")
        with open(proc.log, "wb") as out:
            p = CHILDREN.spawn(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )
        if p is None:
            raise KeyboardInterrupt("closing")
        proc.popen = p
        proc.started_at = self.now()
        proc.expected_down = False

    def _wait_line(self, proc: Proc, pattern: str, timeout: float, count: int = 1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if count_in_file(proc.log, pattern) >= count:
                return True
            if proc.popen.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def start_hub(self, timeout=30.0):
        """Start the hub; on a restart, retry while the port is not yet free."""
        deadline = time.monotonic() + timeout
        while True:
            self._start(self.hub, [self.binary, "hub", "--listen", f"127.0.0.1:{self.port}"])
            if self._wait_line(self.hub, "listening on", 15):
                with open(self.hub.log, errors="replace") as f:
                    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
                self.port = int(m.group(1))
                return self.now()
            if self.hub.popen.poll() is None:
                self.hub.popen.kill()
            self.hub.popen.wait()
            if time.monotonic() > deadline:
                raise RuntimeError(f"hub did not start, see {self.hub.log}")
            time.sleep(0.5)

    def start_node(self, name, timeout=30.0):
        proc = self.nodes[name]
        os.makedirs(self.root(name), exist_ok=True)
        self._start(
            proc,
            [self.binary, "node", "--name", name, "--broker", self.broker, "--root", self.root(name)],
        )
        t = time.monotonic()
        ok = self._wait_line(proc, "online", timeout)
        return ok, time.monotonic() - t

    def stop(self, proc: Proc, sig, timeout=15.0):
        """Send sig and wait for the exit; returns (exited cleanly in time, seconds)."""
        proc.expected_down = True
        proc.stopped_at = self.now()
        t = time.monotonic()
        p = proc.popen
        if p.poll() is None:
            p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
            in_time = True
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            in_time = False
        CHILDREN.forget(p)
        return in_time, time.monotonic() - t, p.returncode

    def online_count(self, name):
        proc = self.nodes[name]
        return count_in_file(proc.log, "online")


# --------------------------------------------------------------------------------------------
# Shared records


class Records:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = 0
        self.ok = 0
        self.errors = Counter()  # kind -> count
        self.errors_by_op = defaultdict(Counter)
        self.ops = Counter()
        self.ok_by_op = Counter()
        self.latency = defaultdict(list)  # op -> seconds (ok only)
        self.per_minute = defaultdict(lambda: Counter())
        self.ok_latency_by_minute = defaultdict(list)
        self.error_samples = {}  # kind -> first message seen
        self.error_log = []  # every failed request: when, what, where
        self.slow_log = []  # successful requests slower than SLOW_S
        self.violations = []
        self.events = []
        # exec counter bookkeeping, per node
        self.acks = defaultdict(Counter)  # node -> boot token -> acked execs
        self.ack_values = defaultdict(lambda: defaultdict(list))  # node -> token -> [c]
        self.unknown_execs = defaultdict(list)  # node -> [send time] of execs with unknown outcome
        self.exec_sent = Counter()
        self.exec_not_sent = Counter()
        self.exec_node_error = Counter()
        self.uploads_checked = 0
        self.uploads_ok = 0

    def violation(self, t, kind, **detail):
        with self.lock:
            self.violations.append({"t": round(t, 1), "kind": kind, **detail})

    def event(self, t, kind, **detail):
        with self.lock:
            self.events.append({"t": round(t, 1), "kind": kind, **detail})


def run_cli(fleet: Fleet, args, timeout=CLI_TIMEOUT):
    """One `plastic --json` run. Returns (kind, reply, seconds): kind None when ok."""
    cmd = [fleet.binary, "--json", "--broker", fleet.broker, "--timeout", str(timeout), *args]
    t = time.monotonic()
    p = CHILDREN.spawn(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=fleet.env,
        text=True,
    )
    if p is None:
        raise KeyboardInterrupt("closing")
    try:
        out, err = p.communicate(timeout=timeout + CLI_HANG_GRACE)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        CHILDREN.forget(p)
        return "CliHang", {"message": f"still running {timeout + CLI_HANG_GRACE:.0f} s in"}, time.monotonic() - t
    CHILDREN.forget(p)
    dt = time.monotonic() - t
    lines = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    if p.returncode == 0:
        return None, (lines if args[0] == "ls" else (lines[0] if lines else {})), dt
    for obj in lines:
        if isinstance(obj, dict) and obj.get("ok") is False:
            e = obj.get("error") or {}
            return e.get("kind") or "UnknownError", {**e, "reply": obj}, dt
    msg = err.strip().splitlines()[-1] if err.strip() else ""
    if p.returncode < 0:
        return f"Signal{-p.returncode}", {"message": msg}, dt
    if p.returncode == 2 and "cannot reach the broker" in err:
        return "BrokerUnreachable", {"message": msg}, dt
    if p.returncode == 2:
        return "BadUsage", {"message": msg}, dt
    return f"Exit{p.returncode}", {"message": msg}, dt


# --------------------------------------------------------------------------------------------
# Workload


EXEC_CODE = (
    "import time\n"
    "c = globals().get('c', 0) + 1\n"
    "print(globals().setdefault('_boot', repr(time.time())), c)"
)


class Worker(threading.Thread):
    def __init__(self, tid, fleet: Fleet, rec: Records, stop: threading.Event, seed):
        super().__init__(name=f"worker-{tid}", daemon=True)
        self.tid = tid
        self.fleet = fleet
        self.rec = rec
        self.stop_ev = stop
        self.rng = random.Random(seed)
        # upload slots: path -> set of contents the file may hold now (None: may be absent)
        self.slots = {}
        self.error = None

    def run(self):
        try:
            while not self.stop_ev.is_set():
                r = self.rng.random()
                node = self.rng.choice(sorted(self.fleet.nodes))
                if r < 0.50:
                    self.op_exec(node)
                elif r < 0.75:
                    self.op_eval(node)
                elif r < 0.95:
                    self.op_cp(node)
                else:
                    self.op_ls()
        except KeyboardInterrupt:
            pass
        except Exception as e:  # a harness bug: report it, do not hide it
            self.error = repr(e)
            import traceback

            traceback.print_exc()

    def record(self, op, kind, reply, dt, sent_at, node=None):
        rec = self.rec
        minute = int(sent_at // 60)
        with rec.lock:
            rec.sent += 1
            rec.ops[op] += 1
            if kind is None:
                rec.ok += 1
                rec.ok_by_op[op] += 1
                rec.latency[op].append(dt)
                rec.ok_latency_by_minute[minute].append(dt)
                if dt > SLOW_S:
                    rec.slow_log.append({"t": round(sent_at, 2), "op": op, "node": node,
                                         "seconds": round(dt, 2)})
                rec.per_minute[minute]["ok"] += 1
            else:
                rec.errors[kind] += 1
                rec.errors_by_op[op][kind] += 1
                rec.per_minute[minute][kind] += 1
                rec.error_log.append({"t": round(sent_at, 2), "op": op, "node": node, "kind": kind,
                                      "seconds": round(dt, 2)})
                if kind not in rec.error_samples:
                    rec.error_samples[kind] = (reply or {}).get("message", "")[:300]

    def op_exec(self, node):
        sent_at = self.fleet.now()
        kind, reply, dt = run_cli(self.fleet, ["exec", node, EXEC_CODE])
        self.record("exec", kind, reply, dt, sent_at, node)
        rec = self.rec
        with rec.lock:
            rec.exec_sent[node] += 1
            if kind is None:
                try:
                    token, value = reply["stdout"].split()
                    rec.acks[node][token] += 1
                    rec.ack_values[node][token].append(int(value))
                except (KeyError, ValueError, AttributeError):
                    rec.violations.append(
                        {"t": round(sent_at, 1), "kind": "bad_exec_reply", "node": node,
                         "reply": str(reply)[:300]}
                    )
            elif kind in NOT_SENT_KINDS:
                rec.exec_not_sent[node] += 1
            elif (reply or {}).get("traceback"):
                rec.exec_node_error[node] += 1  # the node ran it and it raised: no increment
            else:
                rec.unknown_execs[node].append(sent_at)

    def op_eval(self, node):
        a, b = self.rng.randrange(1, 10**6), self.rng.randrange(1, 10**6)
        sent_at = self.fleet.now()
        kind, reply, dt = run_cli(
            self.fleet, ["eval", node, f"[{a}*{b}, __import__('plastic').name]"]
        )
        self.record("eval", kind, reply, dt, sent_at, node)
        if kind is None and reply.get("result") != [a * b, node]:
            self.rec.violation(sent_at, "wrong_eval_result", node=node,
                               expected=[a * b, node], got=reply.get("result"))

    def op_ls(self):
        sent_at = self.fleet.now()
        kind, reply, dt = run_cli(self.fleet, ["ls"])
        self.record("ls", kind, reply, dt, sent_at)

    def op_cp(self, node):
        slot = f"soak/w{self.tid}-{self.rng.randrange(4)}.txt"
        key = (node, slot)
        possible = self.slots.setdefault(key, {None})
        size = self.rng.choice([100, 1000, 4000, 12000, 40000])  # 40000: three 16 KiB chunks
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789\n"
        content = "".join(self.rng.choice(alphabet) for _ in range(size))
        local = os.path.join(self.fleet.workdir, f"upload-{self.tid}.txt")
        with open(local, "w") as f:
            f.write(content)
        sent_at = self.fleet.now()
        kind, reply, dt = run_cli(self.fleet, ["cp", local, f"{node}:{slot}"])
        self.record("cp", kind, reply, dt, sent_at, node)
        if kind is None:
            possible = {content}
        elif kind not in NOT_SENT_KINDS and not (reply or {}).get("traceback"):
            possible = possible | {content}  # unknown outcome: old or new
        self.slots[key] = possible
        # Read it back through the node (a definite answer narrows what the file may hold).
        path = os.path.join(self.fleet.root(node), slot)
        sent_at = self.fleet.now()
        kind, reply, dt = run_cli(self.fleet, ["eval", node, f"open({path!r}).read()"])
        if kind == "FileNotFoundError":
            got = None
        elif kind is None:
            got = reply.get("result")
        else:
            self.record("cp-verify", kind, reply, dt, sent_at, node)
            return
        self.record("cp-verify", None, reply, dt, sent_at, node)
        with self.rec.lock:
            self.rec.uploads_checked += 1
            if got in possible:
                self.rec.uploads_ok += 1
        if got not in possible:
            self.rec.violation(
                sent_at, "upload_content_mismatch", node=node, path=slot,
                got_len=None if got is None else len(got),
                expected_lens=sorted(-1 if c is None else len(c) for c in possible),
            )
        self.slots[key] = {got}


# --------------------------------------------------------------------------------------------
# Churn


class Churn(threading.Thread):
    def __init__(self, fleet: Fleet, rec: Records, stop: threading.Event, seed, duration, hub_kills):
        super().__init__(name="churn", daemon=True)
        self.fleet = fleet
        self.rec = rec
        self.stop_ev = stop
        self.rng = random.Random(seed)
        self.duration = duration
        self.hub_kill_at = [duration * f for f in hub_kills]
        self.counts = Counter()
        self.error = None

    def run(self):
        try:
            self._run()
        except KeyboardInterrupt:
            pass
        except Exception as e:
            self.error = repr(e)
            import traceback

            traceback.print_exc()

    def _run(self):
        f = self.fleet
        base = f.now()
        next_kill = base + self.rng.uniform(20, 40)
        next_term = base + self.rng.uniform(60, 90)
        hub_kills = [base + t for t in self.hub_kill_at]
        while not self.stop_ev.is_set():
            self.supervise()
            now = f.now()
            if hub_kills and now >= hub_kills[0]:
                hub_kills.pop(0)
                self.kill_hub()
            elif now >= next_kill:
                self.restart_node(signal.SIGKILL)
                next_kill = f.now() + self.rng.uniform(20, 40)
            elif now >= next_term:
                self.restart_node(signal.SIGTERM)
                next_term = f.now() + self.rng.uniform(60, 90)
            else:
                self.stop_ev.wait(0.5)

    def supervise(self):
        """A process that exits on its own is a violation; bring it back."""
        f = self.fleet
        with f.lock:
            if f.hub.popen.poll() is not None and not f.hub.expected_down:
                self.rec.violation(f.now(), "unexpected_exit", process="hub",
                                   returncode=f.hub.popen.returncode, log=f.hub.log)
                f.start_hub()
            for name, proc in f.nodes.items():
                if proc.popen.poll() is not None and not proc.expected_down:
                    self.rec.violation(f.now(), "unexpected_exit", process=name,
                                       returncode=proc.popen.returncode, log=proc.log)
                    f.start_node(name)

    def restart_node(self, sig):
        f = self.fleet
        name = self.rng.choice(sorted(n for n in f.nodes if n != CONTROL_NODE))
        proc = f.nodes[name]
        how = "SIGKILL" if sig == signal.SIGKILL else "SIGTERM"
        with f.lock:
            t = f.now()
            in_time, stop_s, rc = f.stop(proc, sig)
            down = self.rng.uniform(0, 3)
            self.stop_ev.wait(down)
            ok, online_s = f.start_node(name)
        self.counts[f"node_{how}"] += 1
        self.rec.event(t, f"node_{how}", node=name, exit_s=round(stop_s, 2), returncode=rc,
                       down_s=round(down, 2), online_s=round(online_s, 2), online=ok)
        if sig == signal.SIGTERM and (not in_time or rc != 0):
            self.rec.violation(t, "graceful_stop_failed", node=name, returncode=rc,
                               seconds=round(stop_s, 2))
        if not ok:
            self.rec.violation(t, "node_not_online_after_restart", node=name, log=proc.log)

    def kill_hub(self):
        f = self.fleet
        with f.lock:
            t = f.now()
            before = {n: f.online_count(n) for n in f.nodes}
            f.stop(f.hub, signal.SIGKILL)
            down = self.rng.uniform(1, 3)
            self.stop_ev.wait(down)
            t_start = time.monotonic()
            f.start_hub()
            listen_s = time.monotonic() - t_start
            # every node reconnects and announces itself online again
            deadline = time.monotonic() + 60
            pending = set(f.nodes)
            while pending and time.monotonic() < deadline:
                pending = {n for n in pending if f.online_count(n) <= before[n]}
                time.sleep(0.1)
            back_s = time.monotonic() - t_start
        self.counts["hub_SIGKILL"] += 1
        self.rec.event(t, "hub_SIGKILL", down_s=round(down, 2), listen_s=round(listen_s, 2),
                       all_nodes_back_s=round(back_s, 2), not_back=sorted(pending))
        if pending:
            self.rec.violation(t, "nodes_not_back_after_hub_restart", nodes=sorted(pending))


# --------------------------------------------------------------------------------------------
# Memory


class Sampler(threading.Thread):
    def __init__(self, fleet: Fleet, stop: threading.Event, every):
        super().__init__(name="sampler", daemon=True)
        self.fleet = fleet
        self.stop_ev = stop
        self.every = every
        self.samples = []

    def sample(self):
        f = self.fleet
        s = {"t": round(f.now(), 1), "load1": round(os.getloadavg()[0], 2), "nodes": {}}
        p = f.hub.popen
        if p is not None and p.poll() is None:
            s["hub"] = {"rss_kib": rss_kib(p.pid), "incarnation": f.hub.incarnation}
        for name, proc in f.nodes.items():
            p = proc.popen
            if p is not None and p.poll() is None:
                r = rss_kib(p.pid)
                if r is not None:
                    s["nodes"][name] = {"rss_kib": r, "incarnation": proc.incarnation}
        self.samples.append(s)

    def run(self):
        while not self.stop_ev.is_set():
            self.sample()
            self.stop_ev.wait(self.every)


def _series(pts, warmup):
    """start/end/max of [(t, kib)], and the same after the first `warmup` seconds, with slope."""
    warm = [(t, v) for t, v in pts if t >= pts[0][0] + warmup]
    sl = slope_per_min(warm if len(warm) >= 3 else pts)
    return {
        "from_s": pts[0][0], "to_s": pts[-1][0], "samples": len(pts),
        "start_kib": pts[0][1], "warm_kib": warm[0][1] if warm else None,
        "end_kib": pts[-1][1], "max_kib": max(v for _, v in pts),
        "slope_kib_per_min": None if sl is None else round(sl, 1),
        "slope_from_s": (warm if len(warm) >= 3 else pts)[0][0],
    }


def memory_report(samples, warmup):
    out = {"warmup_s": warmup}
    hub = [(s["t"], s["hub"]["rss_kib"], s["hub"]["incarnation"]) for s in samples
           if s.get("hub") and s["hub"]["rss_kib"]]
    if hub:
        incs = []
        for inc in sorted({i for _, _, i in hub}):
            pts = [(t, v) for t, v, i in hub if i == inc]
            incs.append({"incarnation": inc, **_series(pts, warmup)})
        out["hub"] = {
            "start_kib": hub[0][1], "end_kib": hub[-1][1], "max_kib": max(v for _, v, _ in hub),
            "incarnations": incs,
        }
    node_pts = [(s["t"], n, v["rss_kib"], v["incarnation"]) for s in samples
                for n, v in s["nodes"].items()]
    if node_pts:
        with_nodes = [s for s in samples if s["nodes"]]
        first, last = with_nodes[0], with_nodes[-1]
        warm = next((s for s in with_nodes if s["t"] >= first["t"] + warmup), None)
        allv = [v for _, _, v, _ in node_pts]
        per_proc = defaultdict(list)
        for t, n, v, i in node_pts:
            per_proc[(n, i)].append((t, v))

        def mean(s):
            return round(sum(v["rss_kib"] for v in s["nodes"].values()) / len(s["nodes"]))

        out["nodes"] = {
            "start_mean_kib": mean(first),
            "warm_mean_kib": mean(warm) if warm else None,
            "end_mean_kib": mean(last),
            "end_max_kib": max(v["rss_kib"] for v in last["nodes"].values()),
            "max_kib": max(allv),
            "end_total_kib": sum(v["rss_kib"] for v in last["nodes"].values()),
            "processes": len(per_proc),
        }
        ctrl = per_proc.get((CONTROL_NODE, 1), [])
        if ctrl:
            out["control_node"] = {"name": CONTROL_NODE, **_series(ctrl, warmup)}
    loads = [s["load1"] for s in samples]
    if loads:
        out["load1"] = {"min": min(loads), "mean": round(sum(loads) / len(loads), 2), "max": max(loads)}
    return out


def attribute_errors(error_log, events):
    """Which failed requests fall in the window of a churn event (the node's own, or the hub's)."""
    windows = []
    for e in events:
        if e["kind"] == "hub_SIGKILL":
            dur, node = e["down_s"] + e["all_nodes_back_s"], None
        else:
            dur, node = e["exit_s"] + e["down_s"] + e["online_s"], e["node"]
        windows.append((e["t"] - CLI_TIMEOUT - 2, e["t"] + dur + 5, node, e["kind"]))
    by_cause = Counter()
    unexplained = []
    for err in error_log:
        hits = [(abs(err["t"] - (a + CLI_TIMEOUT + 2)), k) for a, b, n, k in windows
                if a <= err["t"] <= b and (n is None or n == err["node"])]
        cause = min(hits)[1] if hits else None  # the nearest event whose window holds it
        if cause:
            by_cause[cause] += 1
        else:
            unexplained.append(err)
    return {"by_cause": dict(by_cause), "unexplained": len(unexplained),
            "unexplained_list": unexplained[:50]}


# --------------------------------------------------------------------------------------------
# End of run: quiesce, then check the counters


def final_checks(fleet: Fleet, rec: Records, churn: Churn):
    f = fleet
    # Everyone up (the churn thread is stopped; bring back anything that is down).
    if f.hub.popen.poll() is not None:
        if not f.hub.expected_down:
            rec.violation(f.now(), "unexpected_exit", process="hub", returncode=f.hub.popen.returncode)
        f.start_hub()
    for name, proc in f.nodes.items():
        if proc.popen.poll() is not None:
            if not proc.expected_down:
                rec.violation(f.now(), "unexpected_exit", process=name, returncode=proc.popen.returncode)
            f.start_node(name)
    # Wait until `ls` shows every node online.
    deadline = time.monotonic() + 60
    online = set()
    while time.monotonic() < deadline:
        kind, lines, _ = run_cli(f, ["ls"])
        if kind is None:
            online = {l.get("name") for l in lines if l.get("state") == "online"}
            if online >= set(f.nodes):
                break
        time.sleep(1)
    time.sleep(2 * CLI_TIMEOUT / 5)  # let anything still queued for a node drain

    counters = {}
    for name, proc in sorted(f.nodes.items()):
        for attempt in range(3):
            kind, reply, _ = run_cli(
                f, ["eval", name, "[globals().get('c', 0), globals().get('_boot')]"]
            )
            if kind is None:
                break
            time.sleep(2)
        if kind is not None:
            rec.violation(f.now(), "final_eval_failed", node=name, error=kind)
            counters[name] = {"error": kind}
            continue
        c, token = reply["result"]
        acked = rec.acks[name].get(token, 0) if token else 0
        values = rec.ack_values[name].get(token, []) if token else []
        # Execs with an unknown outcome that could have reached this process: sent after the
        # previous process of this node went down (minus a timeout), or any if never restarted.
        since = (proc.stopped_at - CLI_TIMEOUT - CLI_HANG_GRACE) if proc.stopped_at is not None else -1e9
        unknown = sum(1 for t in rec.unknown_execs[name] if t >= since)
        row = {
            "incarnation": proc.incarnation, "counter": c, "acked": acked,
            "acked_max_value": max(values) if values else 0, "unknown_outcome": unknown,
            "unacked_runs": c - acked, "exec_sent": rec.exec_sent[name],
            "acked_total": sum(rec.acks[name].values()),
        }
        counters[name] = row
        if c > acked + unknown:
            rec.violation(f.now(), "double_execution", node=name, **row)
        if c < acked or (values and c < max(values)):
            rec.violation(f.now(), "acknowledged_exec_lost", node=name, **row)
        if len(values) != len(set(values)):
            rec.violation(f.now(), "duplicate_counter_value_acked", node=name,
                          duplicates=sorted(v for v, k in Counter(values).items() if k > 1)[:10])
    # Leftovers of abandoned uploads under the node roots (hidden temp files).
    leftovers = 0
    for name in f.nodes:
        for dirpath, _dirs, files in os.walk(f.root(name)):
            leftovers += sum(1 for x in files if x.startswith("."))
    return counters, sorted(online), leftovers


# --------------------------------------------------------------------------------------------


def summarize(result):
    r = result
    w = print
    w("")
    w("=" * 78)
    w(f"binary {r['binary']} (built {r['binary_built']}, sha256 {r['binary_sha256'][:16]}...)")
    w(f"plastic soak  {r['date']}  {r['duration_s']:.0f} s  nodes={r['nodes']}  "
      f"clients={r['clients']}  seed={r['seed']}")
    w("=" * 78)
    q = r["requests"]
    w(f"requests sent {q['sent']}  ok {q['ok']}  errors {q['errors_total']}  "
      f"({q['ok'] / max(1, q['sent']) * 100:.2f}% ok, {q['sent'] / max(1, r['duration_s']):.1f} req/s)")
    for op in sorted(q["by_op"]):
        o = q["by_op"][op]
        lat = o.get("latency_ms") or {}
        w(f"  {op:10s} sent {o['sent']:6d}  ok {o['ok']:6d}  errors {dict(o['errors'])}  "
          f"ok latency p50 {lat.get('p50')} p95 {lat.get('p95')} max {lat.get('max')} ms")
    w("per minute (from the start of the soak):")
    for k, v in q["per_minute"].items():
        w(f"  {int(k):3d}: {v}")
    w("errors by kind:")
    for k, v in sorted(q["errors"].items(), key=lambda kv: -kv[1]):
        w(f"  {k:22s} {v:6d}   e.g. {r['error_samples'].get(k, '')[:90]}")
    w(f"timeouts: {q['timeouts']}")
    c = r["churn"]
    w(f"churn: {c['counts']}")
    for e in r["events"]:
        if e["kind"] == "hub_SIGKILL":
            w(f"  t={e['t']:.0f}s hub SIGKILL: down {e['down_s']} s, listening after {e['listen_s']} s, "
              f"all nodes online again after {e['all_nodes_back_s']} s")
    restarts = [e for e in r["events"] if e["kind"].startswith("node_")]
    if restarts:
        on = sorted(e["online_s"] for e in restarts)
        w(f"  node restarts: {len(restarts)}, back online in p50 {percentile(on, 0.5)} s, max {on[-1]} s")
    a = r["error_attribution"]
    w(f"errors inside a churn window (by event): {a['by_cause']}; outside any: {a['unexplained']}")
    for e in a["unexplained_list"][:10]:
        w(f"  unexplained: {e}")
    sl = r["slow_attribution"]
    w(f"successful requests slower than {SLOW_S:.0f} s: {len(r['slow_log'])}; inside a churn window "
      f"{sl['by_cause']}; outside any: {sl['unexplained']}")
    for e in sl["unexplained_list"][:10]:
        w(f"  unexplained slow: {e}")
    m = r["memory"]

    def ser(x):
        return (f"start {mib(x['start_kib'])}  after {m['warmup_s']:.0f} s {mib(x['warm_kib'])}  "
                f"end {mib(x['end_kib'])}  max {mib(x['max_kib'])} MiB; slope "
                f"{x['slope_kib_per_min']} KiB/min from {x['slope_from_s']:.0f} s")

    if "hub" in m:
        h = m["hub"]
        w(f"memory hub: start {mib(h['start_kib'])} MiB  end {mib(h['end_kib'])} MiB  max {mib(h['max_kib'])} MiB")
        for i in h["incarnations"]:
            w(f"  hub #{i['incarnation']} ({i['from_s']:.0f}-{i['to_s']:.0f} s): {ser(i)}")
    if "nodes" in m:
        n = m["nodes"]
        w(f"memory nodes: mean start {mib(n['start_mean_kib'])}  after {m['warmup_s']:.0f} s "
          f"{mib(n['warm_mean_kib'])}  end {mib(n['end_mean_kib'])} MiB; max {mib(n['max_kib'])} MiB "
          f"({n['processes']} node processes)")
    if "control_node" in m:
        k = m["control_node"]
        w(f"  {k['name']} (never restarted): {ser(k)}")
    if "load1" in m:
        w(f"load average (1 min) during the run: {m['load1']}")
    u = r["uploads"]
    w(f"uploads read back: {u['checked']} checked, {u['matched']} matched old-or-new content; "
      f"hidden temp files left under roots: {u['leftover_temp_files']}")
    w("exec counters (final process of each node):")
    for name, row in sorted(r["counters"].items()):
        w(f"  {name}: {row}")
    w(f"invariant violations: {len(r['violations'])}")
    for v in r["violations"][:30]:
        w(f"  {v}")
    w(f"work dir (logs, node roots): {r['workdir']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--binary", default="target/release/plastic")
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--clients", type=int, default=3, help="client threads (default 3)")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--hub-kills", type=int, default=None,
                    help="hub SIGKILLs during the run (default 2, or 1 for runs under 3 minutes)")
    ap.add_argument("--warmup", type=float, default=60.0,
                    help="seconds after a process starts before its memory trend is measured")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, roots)")
    args = ap.parse_args()

    if args.nodes < 2:
        ap.error("--nodes must be at least 2 (one is the never-restarted control node)")
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        ap.error(f"no executable at {binary} (build it with cargo build --release)")
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    hub_kills = args.hub_kills if args.hub_kills is not None else (2 if args.minutes >= 3 else 1)
    fractions = {0: [], 1: [0.5], 2: [0.5, 0.8]}.get(hub_kills) or [
        (i + 1) / (hub_kills + 1) for i in range(hub_kills)]
    duration = args.minutes * 60.0

    # Run a private copy: a `cargo build` during the soak replaces target/release/plastic, and
    # nodes restarted after that would run a different binary than the rest of the fleet.
    workdir = tempfile.mkdtemp(prefix="plastic-soak-")
    binary_src, binary = binary, os.path.join(workdir, "plastic")
    shutil.copy2(binary_src, binary)
    with open(binary, "rb") as f:
        binary_sha = hashlib.sha256(f.read()).hexdigest()
    binary_mtime = datetime.datetime.fromtimestamp(os.stat(binary_src).st_mtime).astimezone()

    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)  # even when started in the background (SIG_IGN)
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:  # nohup: keep ignoring it
        signal.signal(signal.SIGHUP, _on_sigterm)
    t0 = time.monotonic()
    fleet = Fleet(binary, workdir, args.nodes, t0)
    rec = Records()
    stop = threading.Event()
    started_wall = datetime.datetime.now().astimezone()
    workers, churn, sampler = [], None, None
    rc = 3
    try:
        fleet.start_hub()
        print(f"hub on {fleet.broker}; starting {args.nodes} nodes; work dir {workdir}; seed {seed}",
              flush=True)
        for name in fleet.nodes:
            ok, _ = fleet.start_node(name)
            if not ok:
                raise RuntimeError(f"node {name} did not come online, see {fleet.nodes[name].log}")
        sampler = Sampler(fleet, stop, args.sample_every)
        sampler.start()
        t_run = fleet.now()
        churn = Churn(fleet, rec, stop, seed, duration, fractions)
        workers = [Worker(i, fleet, rec, stop, seed * 1000 + i) for i in range(args.clients)]
        churn.start()
        for w in workers:
            w.start()
        last_print = 0
        while fleet.now() - t_run < duration:
            time.sleep(1)
            if fleet.now() - last_print >= 30:
                last_print = fleet.now()
                with rec.lock:
                    print(f"[{fleet.now():6.0f} s] sent {rec.sent} ok {rec.ok} "
                          f"errors {dict(rec.errors)} churn {dict(churn.counts)} "
                          f"violations {len(rec.violations)}", flush=True)
            if churn.error or any(w.error for w in workers):
                raise RuntimeError(f"harness thread failed: {churn.error or [w.error for w in workers]}")
        stop.set()
        churn.join(timeout=120)
        for w in workers:
            w.join(timeout=CLI_TIMEOUT + CLI_HANG_GRACE + 5)
        run_s = fleet.now() - t_run
        print(f"[{fleet.now():6.0f} s] workload stopped; final checks", flush=True)
        counters, online, leftovers = final_checks(fleet, rec, churn)
        sampler.sample()
        sampler.stop_ev.set()

        lat = {}
        for op, vals in rec.latency.items():
            v = sorted(vals)
            lat[op] = {"p50": round(percentile(v, 0.5) * 1000), "p95": round(percentile(v, 0.95) * 1000),
                       "max": round(v[-1] * 1000)}
        by_op = {op: {"sent": rec.ops[op], "ok": rec.ok_by_op[op],
                      "errors": dict(rec.errors_by_op[op]), "latency_ms": lat.get(op)}
                 for op in rec.ops}
        result = {
            "date": started_wall.isoformat(timespec="seconds"),
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
            "binary": binary_src,
            "binary_sha256": binary_sha,
            "binary_built": binary_mtime.isoformat(timespec="seconds"),
            "duration_s": round(run_s, 1),
            "nodes": args.nodes,
            "clients": args.clients,
            "seed": seed,
            "cpus": os.cpu_count(),
            "requests": {
                "sent": rec.sent, "ok": rec.ok, "errors_total": sum(rec.errors.values()),
                "errors": dict(rec.errors), "timeouts": rec.errors.get("Timeout", 0),
                "by_op": by_op,
                "per_minute": {
                    str(k): {**dict(v), "ok_p50_ms": round(1000 * (percentile(
                        sorted(rec.ok_latency_by_minute[k]), 0.5) or 0))}
                    for k, v in sorted(rec.per_minute.items())},
            },
            "error_samples": rec.error_samples,
            "churn": {"counts": dict(churn.counts)},
            "events": rec.events,
            "memory": memory_report(sampler.samples, args.warmup),
            "error_attribution": attribute_errors(rec.error_log, rec.events),
            "error_log": rec.error_log,
            "slow_attribution": attribute_errors(rec.slow_log, rec.events),
            "slow_log": rec.slow_log,
            "memory_samples": sampler.samples,
            "uploads": {"checked": rec.uploads_checked, "matched": rec.uploads_ok,
                        "leftover_temp_files": leftovers},
            "counters": counters,
            "online_at_end": online,
            "violations": rec.violations,
            "workdir": workdir,
        }
        summarize(result)
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump(result, f, indent=1)
                f.write("\n")
            print(f"wrote {args.out}")
        rc = 0 if not rec.violations else 1
    except KeyboardInterrupt:
        print("\ninterrupted; killing every child process", file=sys.stderr)
        rc = 130
    except Exception as e:
        print(f"soak harness failed: {e!r}", file=sys.stderr)
        import traceback

        traceback.print_exc()
        rc = 3
    finally:
        stop.set()
        CHILDREN.kill_all()
        if rc == 0 and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work dir kept: {workdir}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
