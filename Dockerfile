# scanbridge: multi-stage build. The runtime image is distroless (glibc, libgcc, CA certificates, no
# shell, no package manager) with a stripped release binary, the reference config.toml and the example
# rules; it runs as the non-root user 65532 and keeps its store in a volume. scripts/container builds
# and checks it with podman on a machine without a registry (RUNTIME_BASE: a local stand-in base).

ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin scanbridge \
    && strip target/release/scanbridge \
    && mkdir -p /out/data

FROM ${RUNTIME_BASE}
COPY --from=build /src/target/release/scanbridge /usr/local/bin/scanbridge
COPY config.toml /etc/scanbridge/config.toml
COPY rules/ /etc/scanbridge/rules/
COPY --from=build --chown=65532:65532 /out/data /var/lib/scanbridge
ENV SCANBRIDGE__SERVER__LISTEN=0.0.0.0:8080 \
    SCANBRIDGE__STORE__DATA_DIR=/var/lib/scanbridge \
    SCANBRIDGE__RULES__DIR=/etc/scanbridge/rules
USER 65532:65532
WORKDIR /var/lib/scanbridge
VOLUME ["/var/lib/scanbridge"]
EXPOSE 8080
# `health` reaches the configured listen address (SCANBRIDGE__SERVER__LISTEN) on loopback.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["scanbridge", "health"]
ENTRYPOINT ["scanbridge"]
CMD ["serve"]
