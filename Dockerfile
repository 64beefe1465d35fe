# scanbridge: multi-stage build; the runtime image runs as a non-root user with CA certificates,
# the reference config.toml and the example rules, and keeps its store in a volume.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin scanbridge

FROM debian:bookworm-slim
# ca-certificates follows the distribution's security updates, so it is deliberately not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 scanbridge \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/scanbridge --shell /usr/sbin/nologin scanbridge \
    && mkdir -p /var/lib/scanbridge /etc/scanbridge \
    && chown scanbridge:scanbridge /var/lib/scanbridge
COPY --from=build /src/target/release/scanbridge /usr/local/bin/scanbridge
COPY config.toml /etc/scanbridge/config.toml
COPY rules/ /etc/scanbridge/rules/
ENV SCANBRIDGE__SERVER__LISTEN=0.0.0.0:8080 \
    SCANBRIDGE__STORE__DATA_DIR=/var/lib/scanbridge \
    SCANBRIDGE__RULES__DIR=/etc/scanbridge/rules
USER 10001:10001
WORKDIR /var/lib/scanbridge
VOLUME ["/var/lib/scanbridge"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["scanbridge", "health", "--url", "http://127.0.0.1:8080"]
ENTRYPOINT ["scanbridge"]
CMD ["serve"]
