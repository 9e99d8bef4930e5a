#!/usr/bin/env python3
"""IPython Parallel on this machine, doing the same work as `plastic bench`: `2+3`.

Measures
  latency     `apply_sync(eval, "2+3")` round trips to one engine (DirectView), sequential,
              after a warm-up: p50/p90/p99/mean in microseconds.
  throughput  M tasks of `eval("2+3")` submitted with apply_async through a LoadBalancedView
              over 2 engines, all in flight at once, then waited for: tasks per second.

The cluster (controller + 2 engines) is started from Python on 127.0.0.1 with a throw-away
IPYTHONDIR and stopped at the end. Prints one JSON object on stdout; progress goes to stderr.
Usage: ipyparallel_bench.py [--quick] [--json-out FILE]
"""

import argparse
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time

FULL = {"warmup": 500, "latency": 5000, "tasks": 20000}
QUICK = {"warmup": 100, "latency": 500, "tasks": 2000}


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_stats(samples_ns):
    us = sorted(ns / 1000 for ns in samples_ns)
    return {
        "requests": len(us),
        "p50_us": round(percentile(us, 50), 1),
        "p90_us": round(percentile(us, 90), 1),
        "p99_us": round(percentile(us, 99), 1),
        "mean_us": round(statistics.fmean(us), 1),
    }


def log(msg):
    print(f"[ipyparallel_bench] {msg}", file=sys.stderr, flush=True)


def measure(rc, counts):
    direct = rc[rc.ids[0]]
    assert direct.apply_sync(eval, "2+3") == 5

    log(f"latency: {counts['warmup']} warm-up + {counts['latency']} sequential apply_sync")
    for _ in range(counts["warmup"]):
        direct.apply_sync(eval, "2+3")
    samples = []
    for _ in range(counts["latency"]):
        t0 = time.perf_counter_ns()
        direct.apply_sync(eval, "2+3")
        samples.append(time.perf_counter_ns() - t0)

    lview = rc.load_balanced_view()
    for r in [lview.apply_async(eval, "2+3") for _ in range(counts["warmup"])]:
        r.get(timeout=60)
    m = counts["tasks"]
    log(f"throughput: {m} tasks through a LoadBalancedView over 2 engines")
    t0 = time.perf_counter()
    results = [lview.apply_async(eval, "2+3") for _ in range(m)]
    if not rc.wait(results, timeout=600):
        raise RuntimeError("throughput tasks did not finish within 600 s")
    seconds = time.perf_counter() - t0
    assert all(r.get() == 5 for r in results)
    return {
        "latency": latency_stats(samples),
        "throughput": {"tasks": m, "seconds": round(seconds, 3), "tps": round(m / seconds, 1)},
    }


def run(counts):
    import ipyparallel as ipp

    cluster = ipp.Cluster(n=2, controller_ip="127.0.0.1", log_level=40)
    log(f"starting controller + 2 engines (ipyparallel {ipp.__version__})")
    try:
        rc = cluster.start_and_connect_sync(n=2)
        try:
            rc.wait_for_engines(2, timeout=120)
            result = measure(rc, counts)
        finally:
            rc.close()
    finally:
        log("stopping the cluster")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the stop finish
        cluster.stop_cluster_sync()
    return {**result, "version": ipp.__version__, "engines": 2}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    ap.add_argument("--json-out", help="also write the JSON to this file")
    args = ap.parse_args()
    # TERM (from compare.sh's trap) unwinds like Ctrl-C, so the cluster is stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="ipp-bench-") as ipython_dir:
        os.environ["IPYTHONDIR"] = ipython_dir  # no profile from, or left in, ~/.ipython
        real_stdout, sys.stdout = sys.stdout, sys.stderr  # stray prints must not spoil the JSON
        try:
            result = run(QUICK if args.quick else FULL)
        finally:
            sys.stdout = real_stdout

    text = json.dumps(result, indent=1)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
