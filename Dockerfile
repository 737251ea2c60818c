# Orgbase in a container: built with the Rust toolchain, run on a slim Debian as a non-root user.
#
#   docker build -t orgbase .
#   docker run -p 8080:8080 -v orgbase-data:/var/lib/orgbase orgbase
#
# The binary alone keeps its data in /var/lib/orgbase/orgbase.db (SQLite); compose.yaml runs two
# nodes on PostgreSQL and Redis. TLS roots are compiled in (Mozilla's, through rustls), so the
# runtime image needs no packages.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep the registry and the build between image builds; the binary is copied out of
# the cached target directory, which the next stage cannot see.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p orgbase \
    && cp target/release/orgbase /usr/local/bin/orgbase

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/orgbase --create-home \
        --shell /usr/sbin/nologin orgbase
COPY --from=build /usr/local/bin/orgbase /usr/local/bin/orgbase
USER 10001:10001
WORKDIR /var/lib/orgbase
VOLUME ["/var/lib/orgbase"]
ENV ORGBASE_LISTEN=0.0.0.0:8080 \
    ORGBASE_LOG_FORMAT=json
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/orgbase"]
CMD ["serve"]
