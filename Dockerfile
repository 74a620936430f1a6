# syntax=docker/dockerfile:1
# One image for every service: `agentic serve <service>`, `agentic migrate`, `agentic health`.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin agentic \
 && cp target/release/agentic /agentic
# The local embedding model (WordLlama l2_supercat) from its PyPI wheel: the RAG service
# downloads nothing at run time.
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip \
 && scripts/models.sh

# glibc and nothing else; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /agentic /usr/local/bin/agentic
COPY --from=build /src/.local/models /usr/local/share/agentic/models
ENV EMBEDDING_MODEL_DIR=/usr/local/share/agentic/models \
    LOCAL_MODEL_PATH=/usr/local/share/agentic/models/SmolLM2-135M-Instruct.Q4_1.gguf
USER nonroot
EXPOSE 50051 50052 50053 50054 9151 9152 9153 9154
ENTRYPOINT ["/usr/local/bin/agentic"]
CMD ["serve", "user"]
