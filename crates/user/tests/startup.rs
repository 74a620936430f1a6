//! A misconfigured `agentic-user` says which setting is wrong and exits non-zero.

#[test]
fn a_short_jwt_secret_is_named_with_what_is_wrong() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_agentic-user"))
        .env_clear()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("JWT_SECRET", "short")
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .output()
        .expect("run agentic-user");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("JWT_SECRET") && stderr.contains("at least 32 bytes"),
        "{stderr}"
    );
}
