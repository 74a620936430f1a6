//! [`ReplicatedCluster`]: a PostgreSQL primary of the test's own and a streaming replica
//! of it (`scripts/infra.sh cluster`), which the test may pause, kill and restart
//! without touching any other test's database.

use std::path::PathBuf;
use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

/// A primary and its hot standby on loopback ports, removed when dropped.
pub struct ReplicatedCluster {
    dir: PathBuf,
    /// The primary's port.
    pub primary_port: u16,
    /// The replica's port.
    pub replica_port: u16,
}

#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = BigInt)]
    lsn: i64,
}

fn infra_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/infra.sh")
}

/// Clusters tried on fresh ports before a port clash fails the test.
const PORT_ATTEMPTS: usize = 3;

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl ReplicatedCluster {
    /// Creates and starts a fresh primary and a replica of it (a few seconds).
    pub async fn start() -> Self {
        // A port found free may be taken by another test before PostgreSQL binds it:
        // then the cluster starts again on other ports.
        let mut attempt = 1;
        loop {
            let cluster = Self::on_free_ports();
            match cluster.try_script("up").await {
                Ok(()) => return cluster,
                Err(error)
                    if attempt < PORT_ATTEMPTS && error.contains("Address already in use") =>
                {
                    attempt += 1;
                }
                Err(error) => panic!("scripts/infra.sh cluster up failed: {error}"),
            }
        }
    }

    fn on_free_ports() -> Self {
        Self {
            dir: std::env::temp_dir().join(format!(
                "agentic-replicated-{}",
                uuid::Uuid::new_v4().simple()
            )),
            primary_port: free_port(),
            replica_port: free_port(),
        }
    }

    async fn script(&self, action: &str) {
        if let Err(error) = self.try_script(action).await {
            panic!("scripts/infra.sh cluster {action} failed: {error}");
        }
    }

    /// Runs `scripts/infra.sh cluster <action>`; its standard error if it fails.
    async fn try_script(&self, action: &str) -> Result<(), String> {
        let output = tokio::process::Command::new("bash")
            .arg(infra_script())
            .args(["cluster", action])
            .arg(&self.dir)
            .arg(self.primary_port.to_string())
            .arg(self.replica_port.to_string())
            .output()
            .await
            .expect("run scripts/infra.sh");
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// The primary's admin database, for [`super::TestDatabase::create_on`].
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.primary_port
        )
    }

    /// The URL of `database` on the replica.
    pub fn replica_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            self.replica_port
        )
    }

    async fn replica(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.replica_url("postgres"))
            .await
            .expect("connect to the replica")
    }

    async fn primary(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.admin_url())
            .await
            .expect("connect to the primary")
    }

    /// Stops WAL replay on the replica (`pg_wal_replay_pause()`): it keeps answering,
    /// with what it had replayed.
    pub async fn pause_replay(&self) {
        let mut replica = self.replica().await;
        replica
            .batch_execute("SELECT pg_wal_replay_pause()")
            .await
            .expect("pause replay");
        // Paused once the state says so, not when the call returns.
        for _ in 0..100 {
            let paused: Vec<Position> = diesel::sql_query(
                "SELECT (pg_get_wal_replay_pause_state() = 'paused')::int::bigint AS lsn",
            )
            .load(&mut replica)
            .await
            .expect("replay pause state");
            if paused.iter().any(|p| p.lsn == 1) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("replay did not pause");
    }

    /// Resumes WAL replay (`pg_wal_replay_resume()`).
    pub async fn resume_replay(&self) {
        self.replica()
            .await
            .batch_execute("SELECT pg_wal_replay_resume()")
            .await
            .expect("resume replay");
    }

    /// Waits (up to 10 s) until the replica has replayed everything the primary has
    /// written by now.
    pub async fn wait_for_replay(&self) {
        let target: Vec<Position> = diesel::sql_query(
            "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS lsn",
        )
        .load(&mut self.primary().await)
        .await
        .expect("primary position");
        let target = target[0].lsn;
        let mut replica = self.replica().await;
        for _ in 0..500 {
            let replayed: Vec<Position> = diesel::sql_query(
                "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS lsn",
            )
            .load(&mut replica)
            .await
            .expect("replay position");
            if replayed[0].lsn >= target {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the replica did not catch up with the primary");
    }

    /// Kills the replica's postmaster with SIGKILL, as a crash would.
    pub fn kill_replica(&self) {
        let pid_file = self.dir.join("replica/postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file).expect("the replica's postmaster.pid");
        let pid = pid.lines().next().expect("a pid").trim().to_owned();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("run kill");
        assert!(killed.success(), "SIGKILL sent to the replica ({pid})");
    }

    /// Starts the replica again (after [`ReplicatedCluster::kill_replica`]).
    pub async fn restart_replica(&self) {
        self.script("replica-up").await;
    }
}

impl Drop for ReplicatedCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(infra_script())
            .args(["cluster", "down"])
            .arg(&self.dir)
            .arg(self.primary_port.to_string())
            .arg(self.replica_port.to_string())
            .output();
    }
}
