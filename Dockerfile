# summit-config image: a Rust builder stage and a slim Debian runtime stage.
# Not built in CI: docker is not available on the developers' machines, so this file is untested there.

# ---- builder --------------------------------------------------------------------------------
# Cargo.toml requires Rust >= 1.94. The full image has the C compiler for the bundled SQLite.
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# Dependencies first, against placeholder sources: this layer is rebuilt only when Cargo.toml or
# Cargo.lock change. The [[bench]] target must exist for Cargo to read the manifest, and a
# placeholder build.rs makes Cargo compile any [build-dependencies] here too.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/effective_read.rs \
 && echo 'fn main() {}' > build.rs \
 && cargo build --release --locked --bin summit-config \
 && rm -rf src benches build.rs

# The real build inputs. .dockerignore is an allow-list: Cargo.toml, Cargo.lock, src/,
# migrations/ (embedded by sqlx::migrate!), benches/, and build.rs and proto/ when they exist.
# If build.rs ever runs protoc, install protobuf-compiler in this stage.
COPY . .
# COPY keeps the files' own mtimes, which can be older than the placeholder build.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin summit-config

# ---- runtime --------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 summit \
 && useradd --system --uid 10001 --gid summit --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin summit \
 && mkdir /data \
 && chown summit:summit /data

COPY --from=builder /build/target/release/summit-config /usr/local/bin/summit-config

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

# No HEALTHCHECK: the slim image has no curl or wget. Probe from the orchestrator or load
# balancer instead: GET /live for liveness, GET /ready for readiness.
# SIGTERM (docker stop) shuts down gracefully: in-flight requests finish, watch streams end.
ENTRYPOINT ["/usr/local/bin/summit-config"]
