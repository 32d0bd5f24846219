# syntax=docker/dockerfile:1
# cvm-operator image for Docker users: the same layout as `make image`
# (hack/image.sh, buildah, no daemon): a static musl binary and the CA bundle
# FROM scratch, user 65532:65532. The last stage is Containerfile's, with the
# rootfs from the builder stage (tests/e2e/image.rs checks they stay the same).
#   docker build -t cvm-operator --build-arg VERSION=0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run --rm cvm-operator --help

FROM rust:1.95-bookworm AS builder
RUN apt-get update -qq && apt-get install -y -qq musl-tools ca-certificates \
 && rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and the target directory between
# builds (BuildKit); the binary is copied out of the cached target dir.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    triple="$(uname -m)-unknown-linux-musl" \
 && cargo build --locked --profile dist --target "$triple" --bin cvm-operator \
 && install -D -m 0755 "target/$triple/dist/cvm-operator" /rootfs/cvm-operator \
 && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=""
COPY --from=builder /rootfs/ /
USER 65532:65532
LABEL org.opencontainers.image.title="cvm-operator" \
      org.opencontainers.image.description="Kubernetes operator for Tencent Cloud CVM instances" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"
ENTRYPOINT ["/cvm-operator"]
CMD ["run"]
