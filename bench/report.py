#!/usr/bin/env python3
"""Writes docs/performance.md and docs/performance.svg from the JSON that bench/compare.sh left
in bench/results/: plastic on the embedded hub and on Mosquitto (`plastic bench`), IPython
Parallel doing the same `2+3` work (bench/ipyparallel_bench.py), and Mosquitto's own memory.

Shows every figure side by side, the ratios to IPython Parallel and to the raw MQTT floor, and
the project's targets marked pass or miss. Anything absent reads "not measured". Stdlib only.
Usage: report.py [--results DIR] [--out FILE.md] [--svg FILE.svg] [--quick]
"""

import argparse
import datetime
import json
import math
import os
import sys

NOT_MEASURED = "not measured"


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        print(f"report.py: ignoring {path}: {e}", file=sys.stderr)
        return None


def get(d, *path):
    """d[path[0]][path[1]]..., or None if any step is missing or null."""
    for key in path:
        if isinstance(d, dict):
            d = d.get(key)
        elif isinstance(d, list) and isinstance(key, int) and -len(d) <= key < len(d):
            d = d[key]
        else:
            return None
    return d


def by_nodes(d, section, nodes):
    for row in get(d, section) or []:
        if isinstance(row, dict) and row.get("nodes") == nodes:
            return row
    return None


def num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt(x, unit="", digits=1):
    """A number for a table: integers and large values with separators, others to `digits`."""
    if not num(x):
        return NOT_MEASURED
    if isinstance(x, int) or abs(x) >= 1000:
        s = f"{x:,.0f}"
    else:
        s = f"{x:.{digits}f}"
    return f"{s} {unit}".rstrip()


def ratio(a, b):
    return a / b if num(a) and num(b) and b else None


def fmt_ratio(r):
    return f"{r:.2f}x" if num(r) else NOT_MEASURED


# --- the table of every figure -------------------------------------------------------------

def figures(d):
    """Ordered (label, value-text) pairs of one `plastic bench` result."""
    rows = []
    for key, title in (("latency", "latency, eval '2+3'"), ("raw_mqtt_floor", "raw MQTT floor")):
        sec = get(d, key) or {}
        rows.append((f"{title}: requests", fmt(sec.get("requests"))))
        for p in ("p50", "p90", "p99", "mean"):
            rows.append((f"{title}: {p}", fmt(sec.get(f"{p}_us"), "µs")))
    for row in get(d, "throughput") or []:
        n, w = fmt(row.get("nodes")), fmt(row.get("window"))
        label = f"throughput, {n} nodes, window {w}"
        rows.append((f"{label}: requests in s", f"{fmt(row.get('requests'))} in {fmt(row.get('seconds'), 's', 3)}"))
        rows.append((f"{label}: req/s", fmt(row.get("rps"))))
    for row in get(d, "fanout") or []:
        n = fmt(row.get("nodes"))
        if row.get("skipped"):
            rows.append((f"broadcast to {n} nodes", "skipped: " + row["skipped"]))
            continue
        rows.append((f"broadcast to {n} nodes: all replies in", fmt(row.get("seconds"), "s", 3)))
        rows.append((f"broadcast to {n} nodes: replies", fmt(row.get("replies"))))
    external = get(d, "broker") not in (None, "embedded")
    for row in get(d, "memory") or []:
        n = fmt(row.get("nodes"))

        def hub(key, digits=1):
            v = row.get(key)
            return "n/a (external broker)" if v is None and external else fmt(v, "KB", digits)

        rows.append((f"memory, {n} idle nodes: hub RSS before", hub("hub_rss_kb_before")))
        rows.append((f"memory, {n} idle nodes: hub RSS", hub("hub_rss_kb")))
        rows.append((f"memory, {n} idle nodes: hub per node", hub("hub_kb_per_node", 2)))
        rows.append((f"memory, {n} idle nodes: sim RSS", fmt(row.get("sim_rss_kb"), "KB")))
        rows.append((f"memory, {n} idle nodes: sim per node", fmt(row.get("sim_kb_per_node"), "KB", 2)))
    dep = get(d, "deploy")
    if dep:
        label = f"deploy {fmt(dep.get('bytes'))} B to {fmt(dep.get('nodes'))} nodes"
        rows.append((f"{label}: time", fmt(dep.get("seconds"), "s", 3)))
        rows.append((f"{label}: rate", fmt(dep.get("mb_per_s"), "MB/s", 2)))
    return rows


def figure_table(emb, mos):
    a, b = dict(figures(emb)), dict(figures(mos))
    labels = [k for k, _ in figures(emb)] + [k for k, _ in figures(mos) if k not in a]
    out = ["| figure | embedded hub | Mosquitto |", "|---|---:|---:|"]
    for k in labels:
        out.append(f"| {k} | {a.get(k, NOT_MEASURED)} | {b.get(k, NOT_MEASURED)} |")
    return out


# --- targets -------------------------------------------------------------------------------

def max_rps(d):
    rates = [r.get("rps") for r in get(d, "throughput") or [] if num(r.get("rps"))]
    return max(rates) if rates else None


def mark(ok):
    return NOT_MEASURED if ok is None else ("**pass**" if ok else "**miss**")


def targets(emb, mos, ipp):
    p50 = get(emb, "latency", "p50_us")
    floor = get(emb, "raw_mqtt_floor", "p50_us")
    ipp_p50 = get(ipp, "latency", "p50_us")
    rps = max_rps(emb)
    fan = by_nodes(emb, "fanout", 10000)
    mem = [r for r in get(emb, "memory") or [] if num(r.get("hub_kb_per_node"))]
    mem = max(mem, key=lambda r: r.get("nodes") or 0) if mem else None
    mos_p50, mos_rps = get(mos, "latency", "p50_us"), max_rps(mos)

    def check(*values, test):
        return test() if all(num(v) for v in values) else None

    rows = [
        ("latency p50 <= 150 µs", fmt(p50, "µs"), check(p50, test=lambda: p50 <= 150)),
        ("latency within 1.5x the raw MQTT floor (p50)", fmt_ratio(ratio(p50, floor)),
         check(p50, floor, test=lambda: p50 <= 1.5 * floor)),
        (">= 20x lower latency than IPython Parallel (p50)", fmt_ratio(ratio(ipp_p50, p50)),
         check(p50, ipp_p50, test=lambda: ipp_p50 >= 20 * p50)),
        (">= 50,000 req/s pipelined (best row)", fmt(rps, "req/s"), check(rps, test=lambda: rps >= 50_000)),
    ]
    if fan:
        s, n = fan.get("seconds"), fan.get("replies")
        rows.append(("broadcast to 10,000 nodes, all replies within 1 s",
                     f"{fmt(n)} replies in {fmt(s, 's', 3)}",
                     False if num(n) and n < 10000 else check(s, n, test=lambda: s <= 1.0)))
    else:
        rows.append(("broadcast to 10,000 nodes, all replies within 1 s", NOT_MEASURED, None))
    kb = mem.get("hub_kb_per_node") if mem else None
    rows.append(("hub <= 10 KB per idle node",
                 f"{fmt(kb, 'KB', 2)} ({fmt(mem.get('nodes'))} nodes)" if mem else NOT_MEASURED,
                 check(kb, test=lambda: kb <= 10)))
    rows.append(("embedded hub at least as fast as Mosquitto (latency p50, best req/s)",
                 f"{fmt(p50, 'µs')} vs {fmt(mos_p50, 'µs')}; {fmt(rps)} vs {fmt(mos_rps)} req/s",
                 check(p50, mos_p50, rps, mos_rps, test=lambda: p50 <= mos_p50 and rps >= mos_rps)))
    out = ["| target | measured (embedded hub) | result |", "|---|---|---|"]
    out += [f"| {t} | {m} | {mark(ok)} |" for t, m, ok in rows]
    return out


# --- the chart -----------------------------------------------------------------------------

def svg_chart(series):
    """Grouped bars (p50, p99) on a log axis in µs; series = [(name, p50, p99)]."""
    series = [(n, a, b) for n, a, b in series if num(a) and num(b) and a > 0 and b > 0]
    W, H, left, right, top, bottom = 720, 360, 70, 20, 40, 70
    plot_w, plot_h = W - left - right, H - top - bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">'
           'Round-trip latency of eval 2+3 (µs, log scale)</text>']
    if not series:
        out.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">not measured</text></svg>')
        return "\n".join(out) + "\n"
    lo = 10 ** math.floor(math.log10(min(min(a, b) for _, a, b in series)))
    hi = 10 ** math.ceil(math.log10(max(max(a, b) for _, a, b in series)))
    if hi <= lo:
        hi = lo * 10

    def y(v):
        return top + plot_h * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    decade = lo
    while decade <= hi:
        yy = y(decade)
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{W - right}" y2="{yy:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{decade:,.0f}</text>')
        decade *= 10
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>')
    group = plot_w / len(series)
    bar = min(60, group / 3)
    for i, (name, p50, p99) in enumerate(series):
        x0 = left + i * group + group / 2 - bar
        for j, (v, color, tag) in enumerate(((p50, "#4878cf", "p50"), (p99, "#d65f5f", "p99"))):
            x, yy = x0 + j * bar, y(v)
            out.append(f'<rect x="{x:.1f}" y="{yy:.1f}" width="{bar - 4:.1f}" '
                       f'height="{top + plot_h - yy:.1f}" fill="{color}"><title>{name} {tag}: '
                       f'{v:,.1f} µs</title></rect>')
            out.append(f'<text x="{x + (bar - 4) / 2:.1f}" y="{yy - 4:.1f}" text-anchor="middle" '
                       f'font-size="10">{v:,.0f}</text>')
        out.append(f'<text x="{x0 + bar:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{name}</text>')
    ly = H - 22
    for k, (color, tag) in enumerate((("#4878cf", "p50"), ("#d65f5f", "p99"))):
        lx = W / 2 - 60 + k * 80
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{lx + 16}" y="{ly}">{tag}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- the document --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--out", default="docs/performance.md")
    ap.add_argument("--svg", default="docs/performance.svg")
    ap.add_argument("--quick", action="store_true", help="say the figures come from a --quick run")
    args = ap.parse_args()

    emb = load(os.path.join(args.results, "plastic-embedded.json"))
    mos = load(os.path.join(args.results, "plastic-mosquitto.json"))
    ipp = load(os.path.join(args.results, "ipyparallel.json"))
    mosq_proc = load(os.path.join(args.results, "mosquitto-process.json"))

    machine = get(emb, "machine") or get(mos, "machine") or {}
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    md = [
        "# Performance",
        "",
        "Generated by `bench/compare.sh` (which runs `plastic bench` on both brokers, "
        "`bench/ipyparallel_bench.py`, then `bench/report.py`). Do not edit by hand.",
        "",
        f"- Date: {today}",
        f"- Machine: {machine.get('cpus', '?')} CPUs, {machine.get('cpu_model', '?')}, "
        f"{fmt(machine.get('memory_gb'), 'GB')} memory, kernel {machine.get('kernel', '?')}"
        if machine else f"- Machine: {NOT_MEASURED}",
        f"- Brokers: embedded rmqtt hub; Mosquitto {get(mosq_proc, 'version') or '(version unknown)'} on 127.0.0.1 "
        "(`set_tcp_nodelay true`, 128 in flight and 10,000 queued per client, as the embedded hub)",
        f"- IPython Parallel {get(ipp, 'version')}, {get(ipp, 'engines') or 2} engines on localhost"
        if ipp else f"- IPython Parallel: {NOT_MEASURED}",
        "- Everything ran on the same machine in the same run, over loopback.",
    ]
    if args.quick:
        md += ["", "**Quick run (small counts): the figures are indicative only.**"]

    md += ["", "## Targets", ""] + targets(emb, mos, ipp)

    svg_rel = os.path.relpath(args.svg, os.path.dirname(args.out) or ".")
    md += ["", "## Latency", "", f"![latency p50 and p99]({svg_rel})", ""]
    md += ["| | p50 | p90 | p99 | mean | requests |", "|---|---:|---:|---:|---:|---:|"]
    lat_rows = [("plastic, embedded hub", get(emb, "latency")),
                ("plastic, Mosquitto", get(mos, "latency")),
                ("raw MQTT floor, embedded hub", get(emb, "raw_mqtt_floor")),
                ("raw MQTT floor, Mosquitto", get(mos, "raw_mqtt_floor")),
                ("raw MQTT floor at QoS 0, embedded hub", get(emb, "raw_mqtt_floor_qos0")),
                ("raw MQTT floor at QoS 0, Mosquitto", get(mos, "raw_mqtt_floor_qos0")),
                ("IPython Parallel `apply_sync`", get(ipp, "latency"))]
    for name, sec in lat_rows:
        sec = sec or {}
        md.append(f"| {name} | " + " | ".join(fmt(sec.get(f"{p}_us"), "µs") for p in ("p50", "p90", "p99", "mean"))
                  + f" | {fmt(sec.get('requests'))} |")
    md += ["", "Latency is one sequential request at a time, after a warm-up: `eval '2+3'` on one Rust "
           "node through the broker; the raw floor is a bare MQTT QoS 1 request/reply through the same "
           "broker without plastic's envelope or Python (and the same at QoS 0: what a QoS 0 request path "
           "could gain at most); IPython Parallel is `apply_sync(eval, '2+3')` "
           "on one engine.", ""]

    md += ["### Ratios", "", "| ratio | embedded hub | Mosquitto |", "|---|---:|---:|"]
    for p in ("p50", "p99"):
        md.append(f"| plastic / raw MQTT floor, {p} | "
                  + " | ".join(fmt_ratio(ratio(get(d, "latency", f"{p}_us"), get(d, "raw_mqtt_floor", f"{p}_us")))
                               for d in (emb, mos)) + " |")
    for p in ("p50", "p99"):
        md.append(f"| IPython Parallel / plastic latency, {p} (higher is better) | "
                  + " | ".join(fmt_ratio(ratio(get(ipp, "latency", f"{p}_us"), get(d, "latency", f"{p}_us")))
                               for d in (emb, mos)) + " |")
    ipp_tps = get(ipp, "throughput", "tps")
    md.append("| plastic best req/s / IPython Parallel tasks/s | "
              + " | ".join(fmt_ratio(ratio(max_rps(d), ipp_tps)) for d in (emb, mos)) + " |")

    md += ["", "## Throughput", "", "| | requests | seconds | per second |", "|---|---:|---:|---:|"]
    for name, d in (("plastic, embedded hub", emb), ("plastic, Mosquitto", mos)):
        for r in get(d, "throughput") or []:
            md.append(f"| {name}, {r.get('nodes')} nodes, window {r.get('window')} | {fmt(r.get('requests'))} | "
                      f"{fmt(r.get('seconds'), digits=3)} | {fmt(r.get('rps'))} |")
        if not get(d, "throughput"):
            md.append(f"| {name} | {NOT_MEASURED} | | |")
    for name, d in (("embedded hub", emb), ("Mosquitto", mos)):
        for key, qos in (("raw_mqtt_floor", "QoS 1"), ("raw_mqtt_floor_qos0", "QoS 0")):
            r = get(d, key, "pipelined")
            if r:
                lost = f", {fmt(r.get('lost'))} lost" if r.get("lost") else ""
                md.append(f"| raw MQTT floor {qos}, {name}, 1 echo client, window {r.get('window')}{lost} | "
                          f"{fmt(r.get('requests'))} | {fmt(r.get('seconds'), digits=3)} | {fmt(r.get('rps'))} |")
    md.append(f"| IPython Parallel, LoadBalancedView, 2 engines | {fmt(get(ipp, 'throughput', 'tasks'))} | "
              f"{fmt(get(ipp, 'throughput', 'seconds'), digits=3)} | {fmt(ipp_tps)} |")
    md += ["", "plastic keeps `window` requests in flight over the nodes; IPython Parallel gets all its "
           "tasks submitted with `apply_async` before waiting for them.", ""]

    md += ["## Every figure", ""] + figure_table(emb, mos)
    if mosq_proc:
        md += ["", f"Mosquitto's own resident memory: {fmt(mosq_proc.get('rss_kb_start'), 'KB')} at start, "
               f"{fmt(mosq_proc.get('rss_kb_peak'), 'KB')} at its peak over the whole `plastic bench` run "
               "(plastic reports no hub memory for an external broker)."]
    # What limits the figures: written by people, kept beside the script, appended as is.
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            md += ["", f.read().rstrip("\n")]
    md += ["", "## Reproduce", "", "```sh", "bench/compare.sh          # full run, several minutes",
           "bench/compare.sh --quick  # small counts", "```", ""]

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(md).rstrip("\n") + "\n")
    chart = [("plastic embedded", get(emb, "latency", "p50_us"), get(emb, "latency", "p99_us")),
             ("plastic Mosquitto", get(mos, "latency", "p50_us"), get(mos, "latency", "p99_us")),
             ("raw MQTT floor (embedded)", get(emb, "raw_mqtt_floor", "p50_us"), get(emb, "raw_mqtt_floor", "p99_us")),
             ("IPython Parallel", get(ipp, "latency", "p50_us"), get(ipp, "latency", "p99_us"))]
    with open(args.svg, "w") as f:
        f.write(svg_chart(chart))
    print(f"wrote {args.out} and {args.svg}", file=sys.stderr)


if __name__ == "__main__":
    main()
