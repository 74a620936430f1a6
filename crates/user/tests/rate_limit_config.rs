//! A bad rate limit setting stops `agentic-user` at start, with a message naming it.

use std::process::{Command, Output};

use agentic_platform::testsuite::JWT_SECRET;

/// Runs the binary with `env` and returns how it ended (it must end by itself).
fn run_with(env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agentic-user"))
        .env_clear()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("JWT_SECRET", JWT_SECRET)
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .output()
        .expect("run agentic-user")
}

fn refused(env: &[(&str, &str)], named: &str) {
    let output = run_with(env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{env:?} started: {stderr}");
    assert!(
        stderr.contains(named),
        "{env:?}: {named} not named in {stderr}"
    );
}

fn rules(text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("rules-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("rules.toml");
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

#[test]
fn bad_settings_stop_the_process_naming_them() {
    refused(&[("RATE_LIMIT_PER_MINUTE", "0")], "RATE_LIMIT_PER_MINUTE");
    refused(&[("RATE_LIMIT_PER_HOUR", "-5")], "RATE_LIMIT_PER_HOUR");
    refused(&[("RATE_LIMIT_MODE", "sometimes")], "RATE_LIMIT_MODE");
    refused(
        &[("RATE_LIMIT_RULES", "/no/such/rules.toml")],
        "RATE_LIMIT_RULES",
    );
    let malformed = rules("[[rules]\nname = ");
    refused(&[("RATE_LIMIT_RULES", &malformed)], "RATE_LIMIT_RULES");
    let zero = rules(
        "[[rules]]\nname = \"z\"\nkey = \"user\"\nwindows = [{ limit = 0, per = \"minute\" }]\n",
    );
    refused(&[("RATE_LIMIT_RULES", &zero)], "windows[0].limit");
    let unit = rules(
        "[[rules]]\nname = \"u\"\nkey = \"user\"\nwindows = [{ limit = 5, per = \"fortnight\" }]\n",
    );
    refused(&[("RATE_LIMIT_RULES", &unit)], "windows[0].per");
}
