//! `agentic-conversation`: the conversation service alone (`agentic serve conversation`
//! runs the same).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    agentic_platform::service::main::<agentic_conversation::ConversationApp>()
}
