# The runner image: one build per container, beside a docker:dind sidecar.
#
# Nixpacks is fetched from its GitHub release at a pinned version and checked
# against a pinned SHA-256; the build fails when the checksum is not given or
# does not match. Nothing is piped into a shell.
#
#   docker build --build-arg NIXPACKS_SHA256_AMD64=<sha256 of the release tarball> -t af-builder-runner .

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/runner ./runner

FROM debian:bookworm-slim AS nixpacks
ARG NIXPACKS_VERSION=1.39.0
ARG NIXPACKS_SHA256_AMD64
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
RUN test -n "$NIXPACKS_SHA256_AMD64" || { echo "set NIXPACKS_SHA256_AMD64 to the checksum of nixpacks-v${NIXPACKS_VERSION}-x86_64-unknown-linux-musl.tar.gz" >&2; exit 1; } \
 && curl -fsSLo /tmp/nixpacks.tar.gz "https://github.com/railwayapp/nixpacks/releases/download/v${NIXPACKS_VERSION}/nixpacks-v${NIXPACKS_VERSION}-x86_64-unknown-linux-musl.tar.gz" \
 && echo "${NIXPACKS_SHA256_AMD64}  /tmp/nixpacks.tar.gz" | sha256sum -c - \
 && tar -xzf /tmp/nixpacks.tar.gz -C /usr/local/bin nixpacks \
 && /usr/local/bin/nixpacks --version

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin builder
COPY --from=nixpacks /usr/local/bin/nixpacks /usr/local/bin/nixpacks
COPY --from=build /out/runner /usr/local/bin/runner
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/runner"]
