# syntax=docker/dockerfile:1
# etcd-sim and etcd-server in one image, for running `etcd-sim qualify` shards on an engine
# such as Kubernetes (ci/k8s/). From the repo root:
#
#   docker build --build-arg GIT_COMMIT="$(git describe --always --dirty --abbrev=12)" -t etcd-sim .
#
# The image has no entrypoint: a pod's command is `etcd-sim ...` or `sh -c '...'`.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The commit etcd-sim writes into its reports, which `qualify merge` compares across shards.
# .git is not in the build context (.dockerignore), so `git describe` cannot find it here:
# scenarios/build.rs takes ETCD_SIM_GIT_COMMIT from the environment instead.
ARG GIT_COMMIT=unknown
ENV ETCD_SIM_GIT_COMMIT=${GIT_COMMIT}
# No protoc: the etcd API code is checked in. The binaries are copied out of the cached target
# directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p scenarios -p etcd-server \
    && mkdir -p /out \
    && cp target/release/etcd-sim target/release/etcd-server /out/

FROM debian:bookworm-slim
# procps: real mode pauses and resumes members with /bin/kill -STOP/-CONT. tar: kubectl cp.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates procps tar \
    && rm -rf /var/lib/apt/lists/*
# Side by side: real mode runs the etcd-server next to etcd-sim.
COPY --from=builder /out/etcd-sim /out/etcd-server /usr/local/bin/
CMD ["etcd-sim", "--help"]
