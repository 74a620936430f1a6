//! `agentic-agent`: the agent service alone (`agentic serve agent` runs the same).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    agentic_agent::run::local::settle_math_threads();
    agentic_platform::service::main::<agentic_agent::AgentApp>()
}
