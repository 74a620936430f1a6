//! `agentic-rag`: the RAG service alone (`agentic serve rag` runs the same).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    agentic_platform::service::main::<agentic_rag::RagApp>()
}
