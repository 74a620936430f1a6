//! `agentic-user`: the user service alone (`agentic serve user` runs the same).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    agentic_platform::service::main::<agentic_user::UserApp>()
}
