#!/usr/bin/env bash
# Side-by-side benchmark: a 3-member cluster of real etcd 3.5.1 and one of etcd-server on
# loopback, both with fdatasync on and their own data dirs under one temp dir. The same
# `etcd-sim bench` runs against each (1 and 64 clients, put and range); the script prints both
# sides, the ratio, and each cluster's peak RSS (sum of the members' VmHWM).
# Usage: bash ci/bench-vs-etcd.sh [TOTAL_OPS]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-20000}
ETCD_DIR=$(bash ci/install-etcd.sh 2>/dev/null)
cargo build --release -q -p etcd-server -p scenarios
OURS=target/release/etcd-server
SIM=target/release/etcd-sim
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_cluster KIND BIN -> sets ENDPOINTS and CLUSTER_PIDS
start_cluster() {
  local kind=$1 bin=$2 init="" i
  local -a cp pp
  for i in 0 1 2; do cp[$i]=$(port); pp[$i]=$(port); init+="${init:+,}m$i=http://127.0.0.1:${pp[$i]}"; done
  CLUSTER_PIDS=(); ENDPOINTS=""
  for i in 0 1 2; do
    "$bin" --name "m$i" --data-dir "$TMP/$kind/m$i" \
      --listen-client-urls "http://127.0.0.1:${cp[$i]}" --advertise-client-urls "http://127.0.0.1:${cp[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${pp[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${pp[$i]}" \
      --initial-cluster "$init" --initial-cluster-state new --log-level error \
      >"$TMP/$kind-m$i.log" 2>&1 &
    CLUSTER_PIDS+=($!); PIDS+=($!)
    ENDPOINTS+="${ENDPOINTS:+,}127.0.0.1:${cp[$i]}"
  done
  for _ in $(seq 1 100); do
    if "$ETCD_DIR/etcdctl" --endpoints "$ENDPOINTS" endpoint health >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "$kind cluster did not become healthy; logs in $TMP" >&2; tail -5 "$TMP/$kind-m0.log" >&2; exit 1
}

peak_rss_mib() { local s=0 p; for p in "$@"; do s=$((s + $(awk '/VmHWM/{print $2}' /proc/$p/status))); done; echo $((s / 1024)); }

run_side() { # KIND BIN -> writes $TMP/KIND.jsonl and $TMP/KIND.rss
  start_cluster "$1" "$2"
  : >"$TMP/$1.jsonl"
  for op in put range; do for c in 1 64; do
    "$SIM" bench --endpoints "$ENDPOINTS" --clients $c --total "$TOTAL" --op $op --json >>"$TMP/$1.jsonl"
  done; done
  peak_rss_mib "${CLUSTER_PIDS[@]}" >"$TMP/$1.rss"
  for p in "${CLUSTER_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

echo "benchmark: $TOTAL ops per run, 3 members each, loopback, fdatasync on"
run_side etcd "$ETCD_DIR/etcd"
run_side ours "$OURS"
python3 - "$TMP" <<'PY'
import json, sys
d = sys.argv[1]
e = [json.loads(l) for l in open(f"{d}/etcd.jsonl")]
o = [json.loads(l) for l in open(f"{d}/ours.jsonl")]
print(f"{'op':6} {'clients':>7} | {'etcd ops/s':>10} {'p50':>7} {'p99':>7} | {'ours ops/s':>10} {'p50':>7} {'p99':>7} | {'thr x':>6} {'p99 x':>6}")
for a, b in zip(e, o):
    print(f"{a['op']:6} {a['clients']:>7} | {a['ops_per_sec']:>10.0f} {a['latency']['p50_ms']:>7.2f} {a['latency']['p99_ms']:>7.2f} | "
          f"{b['ops_per_sec']:>10.0f} {b['latency']['p50_ms']:>7.2f} {b['latency']['p99_ms']:>7.2f} | "
          f"{b['ops_per_sec']/max(a['ops_per_sec'],1e-9):>6.2f} {b['latency']['p99_ms']/max(a['latency']['p99_ms'],1e-9):>6.2f}")
    if a['failed'] or b['failed']:
        print(f"   failures: etcd {a['failed']}, ours {b['failed']}")
re, ro = int(open(f"{d}/etcd.rss").read()), int(open(f"{d}/ours.rss").read())
print(f"peak RSS (3 members): etcd {re} MiB, ours {ro} MiB, ratio {ro/max(re,1):.2f}")
PY
