//! A service binary as a real process, for what only a process shows (signals, exit
//! codes). Its log is printed if the test fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use tonic_health::pb::health_check_response::ServingStatus;

use super::service::{JWT_SECRET, free_addr, reports_health_within};

/// How long a service process may take to report Serving.
const PROCESS_START: std::time::Duration = std::time::Duration::from_secs(30);

/// A service binary running as a child process.
pub struct ServiceProcess {
    /// Its gRPC address.
    pub addr: SocketAddr,
    /// Its admin HTTP address.
    pub admin_addr: SocketAddr,
    /// The process.
    pub child: tokio::process::Child,
    log: PathBuf,
}

impl ServiceProcess {
    /// Starts `binary` on `database_url` with free loopback ports and the test secret,
    /// and waits until it reports `SERVING`.
    pub async fn start(binary: &str, database_url: &str) -> Self {
        Self::start_with_env(binary, database_url, &[]).await
    }

    /// [`ServiceProcess::start`] with more environment (`(name, value)` pairs).
    pub async fn start_with_env(binary: &str, database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::start_command(binary, &[], database_url, env).await
    }

    /// `binary args…` (such as `agentic serve user`) as [`ServiceProcess::start_with_env`]
    /// starts a service binary.
    pub async fn start_command(
        binary: &str,
        args: &[&str],
        database_url: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let (addr, admin_addr) = (free_addr().await, free_addr().await);
        let log = std::env::temp_dir().join(format!("agentic-{}.log", uuid::Uuid::new_v4()));
        let out = std::fs::File::create(&log).expect("log file");
        let child = tokio::process::Command::new(binary)
            .args(args)
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", JWT_SECRET)
            .env("GRPC_ADDR", addr.to_string())
            .env("ADMIN_ADDR", admin_addr.to_string())
            .env("READINESS_INTERVAL", "100ms")
            .env("RUST_LOG", "info")
            // As for services in-process: tests act in tenants only a token names.
            .env("PRINCIPAL_CHECK", "false")
            // As for services in-process: tests call faster than the default limits.
            .env("RATE_LIMIT_ENABLED", "false")
            .envs(env.iter().copied())
            .stdout(Stdio::from(out.try_clone().expect("log file")))
            .stderr(Stdio::from(out))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let process = Self {
            addr,
            admin_addr,
            child,
            log,
        };
        // A process (a debug build, its pools and connections) starts slower than a
        // server in the test's own process, the more so while other tests load both cores.
        if !reports_health_within(addr, ServingStatus::Serving, PROCESS_START).await {
            let log = std::fs::read_to_string(&process.log).unwrap_or_default();
            panic!(
                "{binary} {args:?} at {addr} did not report Serving within {PROCESS_START:?}; \
                 its output:\n{log}"
            );
        }
        process
    }

    /// Kills the process at once (SIGKILL), as a crash or an OOM kill would, and waits for
    /// it to be gone.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill the service process");
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("the process is running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "SIGTERM sent to {pid}");
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- service log ---\n{log}");
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
