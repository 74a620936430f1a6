# syntax=docker/dockerfile:1
# One image for every service: `agentic serve <service>`, `agentic migrate`, `agentic health`.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin agentic \
 && cp target/release/agentic /agentic

# glibc and nothing else; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /agentic /usr/local/bin/agentic
USER nonroot
EXPOSE 50051 9151
ENTRYPOINT ["/usr/local/bin/agentic"]
CMD ["serve", "user"]
