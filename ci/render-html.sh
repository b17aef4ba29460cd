#!/usr/bin/env bash
# Renders the linearizability checker's HTML view with headless Chromium and saves screenshots,
# to check by eye that the page renders (one not-linearizable Jepsen log, one kv log, and a
# small etcd history with a fault window).
#
# Usage: ci/render-html.sh [OUT_DIR]   (default: target/html-render)
# Skips (exit 0 with a message) when Chromium is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/html-render}"
data="../shared/data/porcupine"
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "render-html: $chromium not found; skipping (apt-get install -y chromium)"
  exit 0
fi
mkdir -p "$out"
cargo build --release -q -p linearizability --example check
bin=target/release/examples/check

render() { # name, check args...
  local name="$1"; shift
  set +e
  "$bin" check "$@" --html "$out/$name.html" >"$out/$name.txt"
  local code=$?
  set -e
  if [ "$code" -ne 0 ] && [ "$code" -ne 1 ]; then
    echo "render-html: check failed for $name (exit $code)"; cat "$out/$name.txt"; exit 1
  fi
  "$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --hide-scrollbars --window-size=1400,1000 \
    --screenshot="$out/$name.png" "file://$PWD/$out/$name.html" 2>/dev/null
  [ -s "$out/$name.png" ] || { echo "render-html: no screenshot for $name"; exit 1; }
  echo "render-html: $out/$name.png ($(head -c 60 "$out/$name.txt"))"
}

render etcd_000 "$data/etcd/etcd_000.log"
render kv_c01_bad "$data/kv/c01-bad.txt"
cat >"$out/etcd-small.json" <<'JSON'
{"model":"etcd","faults":[{"start":15,"end":45,"label":"partition n1 | n2 n3"}],"operations":[
 {"client":1,"call":0,"ret":10,"input":{"put":{"key":"a","value":"1"}},"output":{"ok":{"revision":2,"result":{"put":{}}}}},
 {"client":2,"call":12,"ret":40,"input":{"put":{"key":"a","value":"2"}}},
 {"client":3,"call":20,"ret":30,"input":{"range":{"key":"a"}},"output":{"ok":{"revision":2,"result":{"range":{"kvs":[{"key":"a","value":"1","create_revision":2,"mod_revision":2,"version":1}],"count":1}}}}},
 {"client":1,"call":50,"ret":60,"input":{"range":{"key":"a"}},"output":{"ok":{"revision":3,"result":{"range":{"kvs":[{"key":"a","value":"2","create_revision":2,"mod_revision":3,"version":2}],"count":1}}}}},
 {"client":3,"call":62,"ret":70,"input":{"range":{"key":"a"}},"output":{"ok":{"revision":2,"result":{"range":{"kvs":[{"key":"a","value":"1","create_revision":2,"mod_revision":2,"version":1}],"count":1}}}}}
]}
JSON
render etcd_small "$out/etcd-small.json"
