# syntax=docker/dockerfile:1
# cvm-operator image: the release binary on distroless cc (glibc + libgcc, no shell).
#   docker build -t cvm-operator .
#   docker run --rm cvm-operator --help

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and the target directory between
# builds (BuildKit); the binary is copied out of the cached target dir.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cvm-operator \
 && cp target/release/cvm-operator /cvm-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /cvm-operator /cvm-operator
USER 65532:65532
ENTRYPOINT ["/cvm-operator"]
CMD ["run"]
