#!/usr/bin/env bash
# Regenerates etcd-api's checked-in gRPC code (api/src/generated/) from api/proto/, or with
# --check fails if the checked-in code is not what the protos generate. Needs protoc
# (Debian: apt-get install -y protobuf-compiler); nothing else in the build does.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet -p etcd-api-gen -- "$@"
