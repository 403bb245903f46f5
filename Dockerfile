# syntax=docker/dockerfile:1
# summit-config image: a Rust builder stage and a slim Debian runtime stage.
# Docker is not available on the developers' machines; `.ci/check_image_inputs.py` (run by
# .ci/run) replays what the build stage sees and fails when a build input would be missing.

# ---- builder --------------------------------------------------------------------------------
# Cargo.toml requires Rust >= 1.94. The full image has the C compiler for the bundled SQLite.
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# The build inputs. .dockerignore is an allow-list: Cargo.toml, Cargo.lock, build.rs, src/,
# migrations/ (embedded by sqlx::migrate!), proto/ (compiled by build.rs with the vendored
# protoc) and benches/ (Cargo reads every target the manifest declares). No placeholder
# sources: the registry and the target directory are BuildKit cache mounts, so a rebuild after
# a source change recompiles only this crate, with no hand-kept list of targets to go stale.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin summit-config \
 && cp target/release/summit-config /usr/local/bin/summit-config

# ---- runtime --------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 summit \
 && useradd --system --uid 10001 --gid summit --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin summit \
 && mkdir /data \
 && chown summit:summit /data

COPY --from=builder /usr/local/bin/summit-config /usr/local/bin/summit-config

# The SQLite default suits one container with /data on a persistent volume; replicas use
# SUMMIT_DATABASE_URL=postgres://... (see README, "Production deployment").
ENV SUMMIT_HTTP_ADDR=0.0.0.0:8080 \
    SUMMIT_GRPC_ADDR=0.0.0.0:50051 \
    SUMMIT_DATABASE_URL=sqlite:///data/summit-config.db \
    SUMMIT_LOG_FORMAT=json
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080 50051

# Ready: the database answers and the server is not shutting down (orchestrators probe
# GET /live for liveness and GET /ready for readiness themselves).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/ready >/dev/null || exit 1
# SIGTERM (docker stop) shuts down gracefully: in-flight requests finish, watch streams end.
ENTRYPOINT ["/usr/local/bin/summit-config"]
