//! `agentic-user`: the user service alone (`agentic serve user` runs the same).

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "agentic-user", version, about = "The Agentic user service")]
struct Cli {
    #[command(flatten)]
    args: agentic_user::UserArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match agentic_user::run(Cli::parse().args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agentic-user: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
