#!/usr/bin/env bash
# Release qualification, real mode: hunts etcd bugs that real etcd 3.5.1 has natively (nothing
# planted) with the same harness as the simulation, and runs the same scenarios on our own
# etcd-server, which must pass them. Too long for `cargo test`; run it before a release.
#
#   bash ci/hunt-real-etcd.sh [SEEDS] [BUDGET] [OUR_SEEDS]   (defaults: 0..100, 15m, 0..20)
#
# Prints each hunt's result; exits 1 if our server fails a seed real etcd is hunted on.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-0..100}
budget=${2:-15m}
ours=${3:-0..20}
etcd_dir=$(bash ci/install-etcd.sh)
cargo build --release -p scenarios -p etcd-server
sim=target/release/etcd-sim
out=target/etcd-sim/real-hunts

echo "== etcd 13766 (kill -9 under high traffic, --snapshot-count=100) on real etcd 3.5.1"
"$sim" hunt 13766 --real --etcd-bin "$etcd_dir/etcd" --scenario kill-under-load \
  --seeds "$seeds" --budget "$budget" --report-dir "$out/etcd-3.5.1" || true

echo "== etcd 15220 (requested progress overtakes queued events) on real etcd 3.5.1"
"$sim" hunt 15220 --real --etcd-bin "$etcd_dir/etcd" --scenario baseline \
  --seeds "$seeds" --budget "$budget" --report-dir "$out/etcd-3.5.1" || true

echo "== etcd 18667 (txn reads at compacted revisions strip on the other members) on real etcd 3.5.1"
"$sim" hunt 18667 --real --etcd-bin "$etcd_dir/etcd" --scenario txn-reads-at-revision \
  --seeds "$seeds" --budget "$budget" --report-dir "$out/etcd-3.5.1" || true

echo "== our etcd-server on the same recipes (must pass)"
"$sim" run kill-under-load --seeds "$ours" --real --report-dir "$out/ours"
"$sim" run txn-reads-at-revision --seeds "$ours" --real --report-dir "$out/ours"
