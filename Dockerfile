# The Shinken image: the six daemons (`shinken`) and the Kubernetes operator (`shinken-operator`)
# in one image, with Debian's monitoring plugins for the pollers and reactionners to run
# (/usr/lib/nagios/plugins). Daemon pods run `shinken <role> ...` (the default entrypoint); the
# operator's Deployment runs `shinken-operator run ...` as its command.
#
#   docker build -t shinken:0.1.0 .

# Build: both release binaries, from the committed Cargo.lock. The workspace's release profile
# keeps line tables for local profiling (277 MB + 161 MB); the image keeps only the symbols
# (function names in backtraces): about 36 MB + 23 MB.
FROM rust:1.95-bookworm AS build
ENV CARGO_PROFILE_RELEASE_STRIP=debuginfo
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p shinken -p shinken-operator

# Runtime: the binaries copied onto Debian slim (the same Debian as the build stage, so the same
# glibc), run as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates monitoring-plugins \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 shinken \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin shinken
COPY --from=build /src/target/release/shinken /src/target/release/shinken-operator /usr/local/bin/
# Shinken's daemon ports (arbiter 7770, scheduler 7768, reactionner 7769, poller 7771, broker
# 7772, receiver 7773) and the operator's metrics and health port.
EXPOSE 7768-7773 8080
USER 10001:10001
ENTRYPOINT ["shinken"]
