#!/usr/bin/env bash
# Measures plastic against its baselines, all in one run on this machine, and writes
# docs/performance.md (+ docs/performance.svg):
#   1. `plastic bench` on the embedded hub             -> bench/results/plastic-embedded.json
#   2. `plastic bench` on Mosquitto (Debian, loopback) -> bench/results/plastic-mosquitto.json
#   3. IPython Parallel doing the same `2+3` work      -> bench/results/ipyparallel.json
#   4. bench/report.py                                 -> docs/performance.md, docs/performance.svg
#   5. the Python client (python/, bench/python_client.py) beside the Rust client and IPython
#      Parallel                                        -> bench/results/python-client.json, and
#                                                         a section appended to docs/performance.md
# Installs what it needs first (mosquitto, a venv .venv-bench from bench/requirements.txt, the
# release build). Usage: bench/compare.sh [--quick]   (--quick: small counts, a smoke run)
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=(--quick) ;;
    *) echo "usage: bench/compare.sh [--quick]" >&2; exit 2 ;;
  esac
done

say() { printf '\n== %s\n' "$*" >&2; }

# --- what the run needs --------------------------------------------------------------------
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  say "installing mosquitto"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi
mosquitto_bin="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
mosquitto_version="$("$mosquitto_bin" -h 2>/dev/null | awk 'NR == 1 { print $3 }')" || true

if [ ! -x .venv-bench/bin/python ]; then
  say "creating .venv-bench"
  python3 -m venv .venv-bench
fi
if ! cmp -s bench/requirements.txt .venv-bench/requirements.txt; then
  say "installing bench/requirements.txt into .venv-bench"
  .venv-bench/bin/python -m pip install -q --disable-pip-version-check -r bench/requirements.txt
  cp bench/requirements.txt .venv-bench/requirements.txt
fi

say "cargo build --release --locked"
cargo build --release --locked
plastic=target/release/plastic

# 10,000 simulated nodes are 10,000 sockets in the sim and in the broker.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

workdir="$(mktemp -d /tmp/plastic-compare.XXXXXX)"
mosq_pid=""
child=""
# Runs a step in the background and waits, so that INT/TERM stop it at once (bash would defer
# its traps until a foreground command ended).
run() { "$@" & child=$!; wait "$child"; child=""; }
cleanup() {
  for pid in $child $mosq_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load="$(cut -d' ' -f1 /proc/loadavg)"
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
  echo "warning: load average is $load; other work on this machine will skew the figures" >&2
fi

mkdir -p bench/results docs

# --- 1. embedded hub -----------------------------------------------------------------------
say "plastic bench (embedded hub)"
run "$plastic" bench "${quick[@]}" --json-out bench/results/plastic-embedded.json

# --- 2. Mosquitto --------------------------------------------------------------------------
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# Same per-client limits as the embedded hub (crates/plastic-hub/src/broker.rs): 128 in flight,
# 10,000 queued; Mosquitto's defaults (20, 1,000) would drop replies to a 10,000-node broadcast.
cat >"$workdir/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_inflight_messages 128
max_queued_messages 10000
user root
log_dest stderr
log_type error
log_type warning
EOF
say "mosquitto on 127.0.0.1:$port"
"$mosquitto_bin" -c "$workdir/mosquitto.conf" 2>"$workdir/mosquitto.log" &
mosq_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$mosq_pid" 2>/dev/null || { cat "$workdir/mosquitto.log" >&2; exit 1; }
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "mosquitto did not listen on $port" >&2; exit 1; }
mosq_rss_start="$(awk '/^VmRSS/ { print $2 }' "/proc/$mosq_pid/status")"

say "plastic bench (Mosquitto $mosquitto_version)"
run "$plastic" bench "${quick[@]}" --broker "mqtt://127.0.0.1:$port" \
  --json-out bench/results/plastic-mosquitto.json

# Mosquitto's own memory, for the table: resident at start, and the peak over the whole run.
{
  printf '{"version": "%s", ' "$mosquitto_version"
  printf '"rss_kb_start": %s, ' "$mosq_rss_start"
  printf '"rss_kb_peak": %s}\n' "$(awk '/^VmHWM/ { print $2 }' "/proc/$mosq_pid/status")"
} >bench/results/mosquitto-process.json
kill "$mosq_pid"
wait "$mosq_pid" 2>/dev/null || true
mosq_pid=""

# --- 3. IPython Parallel -------------------------------------------------------------------
say "IPython Parallel"
run .venv-bench/bin/python bench/ipyparallel_bench.py "${quick[@]}" --json-out bench/results/ipyparallel.json >/dev/null

# --- 4. report -----------------------------------------------------------------------------
say "report"
python3 bench/report.py "${quick[@]}"

# --- 5. the Python client --------------------------------------------------------------------
say "Python client: pip install ./python into .venv-bench"
.venv-bench/bin/python -m pip install -q --disable-pip-version-check ./python
say "Python client"
run .venv-bench/bin/python bench/python_client.py "${quick[@]}" --plastic "$plastic" \
  --rust-json bench/results/plastic-embedded.json --ipp-json bench/results/ipyparallel.json \
  --json-out bench/results/python-client.json --markdown docs/performance.md
