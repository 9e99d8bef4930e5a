#!/usr/bin/env python3
"""The Python client (`import plastic`) doing `plastic bench`'s work: `eval 2+3`.

Starts its own hub and `plastic sim --nodes 10` on 127.0.0.1, then measures
  latency     sequential `View.eval("2+3")` on one node after a warm-up: p50/p90/p99/mean us;
  throughput  `eval(..., block=False)` with 256 requests in flight over the 10 nodes: req/s;
  lb.map      `load_balanced_view("bench").map(f, range(10000))` of a trivial function over
              the 10 nodes as one pool (`plastic sim --pool bench`): tasks/s, beside IPython
              Parallel's LoadBalancedView throughput;
and, on the same connection to the same nodes in the same run, interleaved with those, the
Rust client's own loops (`Client::request`, timed in Rust inside the extension: the figure
the Python layer is to be within 1.2x of). With --rust-json / --ipp-json (compare.sh passes
the figures of its `plastic bench` and IPython Parallel runs) the report sets them beside.

Usage: python_client.py [--quick] [--plastic BIN] [--json-out F] [--rust-json F]
                        [--ipp-json F] [--markdown F]   (--markdown: append a section to F)
Needs the plastic wheel installed in the interpreter that runs it.
"""

import argparse
import collections
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FULL = {"warmup": 1000, "latency": 5000, "rounds": 5, "pipelined": 50000, "window": 256, "map": 10000, "map_rounds": 3}
QUICK = {"warmup": 100, "latency": 500, "rounds": 2, "pipelined": 4000, "window": 64, "map": 2000, "map_rounds": 1}
NODES = 10


def log(msg):
    print(f"[python_client] {msg}", file=sys.stderr, flush=True)


def percentile(sorted_values, p):
    """Nearest-rank, as `plastic bench` and bench/ipyparallel_bench.py."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def stats(micros):
    us = sorted(micros)
    return {
        "requests": len(us),
        "p50_us": round(percentile(us, 50), 1),
        "p90_us": round(percentile(us, 90), 1),
        "p99_us": round(percentile(us, 99), 1),
        "mean_us": round(statistics.fmean(us), 1),
    }


class Child:
    """A child process whose merged output is read by a thread; `wait_for` a line."""

    def __init__(self, args):
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_for(self, needle, timeout=300):
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    if line is None:
                        raise RuntimeError(f"exited before printing {needle!r}:\n" + "\n".join(filter(None, self.lines)))
                    if needle in line:
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no {needle!r} within {timeout} s")
                self.cond.wait(left)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def python_latency(view, count):
    micros = []
    for _ in range(count):
        t0 = time.perf_counter_ns()
        value = view.eval("2+3")
        micros.append((time.perf_counter_ns() - t0) / 1000)
        if value != 5:
            raise RuntimeError(f"eval 2+3 answered {value!r}")
    return micros


def python_throughput(views, count, window):
    in_flight = collections.deque()
    sent = done = 0
    t0 = time.perf_counter()
    while done < count:
        while len(in_flight) < window and sent < count:
            in_flight.append(views[sent % len(views)].eval("2+3", block=False))
            sent += 1
        if in_flight.popleft().get() != 5:
            raise RuntimeError("eval 2+3 answered something else")
        done += 1
    seconds = time.perf_counter() - t0
    return {"nodes": len(views), "window": window, "requests": done,
            "seconds": round(seconds, 3), "rps": round(done / seconds, 1)}


def twice(x):
    return 2 * x


def lb_map(lb, count, rounds):
    """The best of `rounds` maps of `count` trivial tasks (the first one warms up each
    member: it compiles the function once)."""
    lb.map(twice, range(200))
    best = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = lb.map(twice, range(count))
        seconds = time.perf_counter() - t0
        if out != [2 * x for x in range(count)]:
            raise RuntimeError("lb.map gave other results")
        if best is None or seconds < best:
            best = seconds
    return {"nodes": NODES, "tasks": count, "rounds": rounds, "seconds": round(best, 3),
            "tps": round(count / best, 1)}


def measure(plastic_bin, counts):
    import plastic

    hub = Child([plastic_bin, "hub", "--listen", "127.0.0.1:0"])
    sim = None
    try:
        port = int(hub.wait_for("MQTT broker listening on").rsplit(":", 1)[1])
        broker = f"mqtt://127.0.0.1:{port}"
        log(f"hub on {broker}; starting {NODES} simulated nodes")
        sim = Child([plastic_bin, "sim", "--nodes", str(NODES), "--name-prefix", "b", "--broker", broker,
                     "--pool", "bench", "--root", f"/tmp/plastic-pybench-{os.getpid()}"])
        sim.wait_for(f"{NODES} nodes online")
        c = plastic.Client(broker, timeout=30)
        try:
            names = [f"b-{i}" for i in range(1, NODES + 1)]
            one = c[names[0]]
            log(f"warm-up: {counts['warmup']} requests each")
            python_latency(one, counts["warmup"])
            c._core.rust_latency(names[0], counts["warmup"])
            py, rust = [], []
            per_round = counts["latency"] // counts["rounds"]
            for r in range(counts["rounds"]):
                log(f"latency round {r + 1}/{counts['rounds']}: {per_round} Python, {per_round} Rust")
                py += python_latency(one, per_round)
                rust += c._core.rust_latency(names[0], per_round)
            log(f"throughput: {counts['pipelined']} requests, window {counts['window']}, {NODES} nodes")
            py_tp = python_throughput([c[n] for n in names], counts["pipelined"], counts["window"])
            rust_rps = c._core.rust_throughput(names, counts["pipelined"], counts["window"])
            log(f"lb.map: {counts['map']} tasks over the pool of {NODES}, best of {counts['map_rounds']}")
            mapped = lb_map(c.load_balanced_view("bench"), counts["map"], counts["map_rounds"])
            return {
                "python": {"latency": stats(py), "throughput": py_tp, "lb_map": mapped},
                "rust_same_connection": {
                    "latency": stats(rust),
                    "throughput": {"nodes": NODES, "window": counts["window"],
                                   "requests": counts["pipelined"], "rps": round(rust_rps, 1)},
                },
            }
        finally:
            c.close()
    finally:
        if sim:
            sim.stop()
        hub.stop()


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def report(result):
    py = result["python"]["latency"]["p50_us"]
    rust = result["rust_same_connection"]["latency"]["p50_us"]
    lines = [
        "## Python client",
        "",
        "Generated by `bench/python_client.py` (run by `bench/compare.sh`): `import plastic`, "
        "`View.eval(\"2+3\")` on one simulated node of an embedded hub, and the Rust client's own "
        "loop on the same connection to the same node, interleaved in rounds.",
        "",
        "| | p50 | p90 | p99 | mean | requests |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def row(name, lat):
        return (f"| {name} | {lat['p50_us']:,.1f} µs | {lat['p90_us']:,.1f} µs | {lat['p99_us']:,.1f} µs "
                f"| {lat['mean_us']:,.1f} µs | {lat['requests']:,} |")

    lines.append(row("Python client `View.eval`", result["python"]["latency"]))
    lines.append(row("Rust client, same connection", result["rust_same_connection"]["latency"]))
    if result.get("rust_plastic_bench"):
        lines.append(row("Rust client, `plastic bench` (embedded hub)", result["rust_plastic_bench"]["latency"]))
    if result.get("ipyparallel"):
        lines.append(row("IPython Parallel `apply_sync`", result["ipyparallel"]["latency"]))
    tp = result["python"]["throughput"]
    rtp = result["rust_same_connection"]["throughput"]
    lines += [
        "",
        "| pipelined | nodes | window | requests | per second |",
        "|---|---:|---:|---:|---:|",
        f"| Python client, `eval(block=False)` | {tp['nodes']} | {tp['window']} | {tp['requests']:,} | {tp['rps']:,.1f} |",
        f"| Rust client, same connection | {rtp['nodes']} | {rtp['window']} | {rtp['requests']:,} | {rtp['rps']:,.1f} |",
    ]
    m = result["python"]["lb_map"]
    lines.append(f"| Python client, `load_balanced_view(...).map` of a trivial function | {m['nodes']} (one pool) "
                 f"| 32 per member | {m['tasks']:,} | {m['tps']:,.1f} |")
    if result.get("ipyparallel"):
        t = result["ipyparallel"]["throughput"]
        lines.append(f"| IPython Parallel, LoadBalancedView | 2 engines | all | {t['tasks']:,} | {t['tps']:,.1f} |")
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    ratio = py / rust
    lines.append(f"| Python p50 within 1.2x of the Rust client | {ratio:.2f}x ({py:,.1f} vs {rust:,.1f} µs) "
                 f"| **{'pass' if ratio <= 1.2 else 'miss'}** |")
    if result.get("ipyparallel"):
        ipp = result["ipyparallel"]["latency"]["p50_us"]
        lines.append(f"| Python p50 at least 15x lower than IPython Parallel `apply_sync` | {ipp / py:.2f}x "
                     f"({ipp:,.1f} vs {py:,.1f} µs) | **{'pass' if ipp / py >= 15 else 'miss'}** |")
    if result.get("ipyparallel"):
        lb_ratio = m["tps"] / result["ipyparallel"]["throughput"]["tps"]
        lines.append(f"| `lb.map` of 10,000 trivial tasks over 10 nodes at least 20x IPython Parallel's "
                     f"LoadBalancedView throughput | {lb_ratio:.1f}x ({m['tps']:,.0f} vs "
                     f"{result['ipyparallel']['throughput']['tps']:,.0f} tasks/s) | **{'pass' if lb_ratio >= 20 else 'miss'}** |")
    result["targets"] = {"python_over_rust_p50": round(ratio, 3)}
    if result.get("ipyparallel"):
        result["targets"]["lb_map_over_ipyparallel"] = round(lb_ratio, 2)
    if result.get("ipyparallel"):
        result["targets"]["ipyparallel_over_python_p50"] = round(result["ipyparallel"]["latency"]["p50_us"] / py, 2)
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    ap.add_argument("--plastic", default=str(REPO / "target" / "release" / "plastic"))
    ap.add_argument("--json-out")
    ap.add_argument("--rust-json", help="`plastic bench --json-out` figures of the same run")
    ap.add_argument("--ipp-json", help="bench/ipyparallel_bench.py figures of the same run")
    ap.add_argument("--markdown", help="append the report to this Markdown file")
    args = ap.parse_args()
    result = measure(args.plastic, QUICK if args.quick else FULL)
    if args.rust_json:
        result["rust_plastic_bench"] = (load(args.rust_json) or {}).get("latency") and {
            "latency": load(args.rust_json)["latency"]}
    if args.ipp_json:
        result["ipyparallel"] = load(args.ipp_json)
    text = report(result)
    print(text)
    print(json.dumps(result, indent=1), file=sys.stderr)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
