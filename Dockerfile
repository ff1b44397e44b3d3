# verdict in a container: built with the Rust image, run on Debian slim as a non-root user.
#
#   docker build -t verdict .          (or: podman build -t verdict .)
#
# The build context excludes target/, the private cluster's data, keys and .git
# (.dockerignore), so neither gigabytes of build output nor a signing key end up in a layer.
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so changing verdict's own code does not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && for b in intake pages proofs; do echo 'fn main() {}' > benches/$b.rs; done \
    && cargo build --release --locked \
    && rm -rf src benches
COPY src src
COPY migrations migrations
COPY templates templates
COPY benches benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/verdict --create-home verdict
COPY --from=build /src/target/release/verdict /usr/local/bin/verdict
USER verdict
WORKDIR /var/lib/verdict
# The data directory (checkpoint signing key, kept runtime password) is a volume: a
# re-created container keeps its key.
ENV VERDICT_LISTEN=0.0.0.0:3000 \
    VERDICT_DATA_DIR=/var/lib/verdict \
    VERDICT_LOG_FORMAT=json
VOLUME ["/var/lib/verdict"]
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
    CMD ["verdict", "healthcheck"]
ENTRYPOINT ["verdict"]
CMD ["serve"]
