# verdict in a container: build with the Rust image, run on Debian slim.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/verdict /usr/local/bin/verdict
ENV VERDICT_LISTEN=0.0.0.0:3000
EXPOSE 3000
ENTRYPOINT ["verdict"]
CMD ["serve"]
