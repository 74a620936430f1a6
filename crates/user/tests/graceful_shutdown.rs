//! The `agentic-user` process drains in-flight requests on SIGTERM, then exits 0.

use std::process::Stdio;
use std::time::Duration;

use agentic_platform::auth::{Tokens, roles};
use agentic_platform::config::AuthArgs;
use agentic_platform::testsuite::{TestDatabase, lock_waiters};
use agentic_proto::user::v1 as pb;
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const SECRET: &str = "shutdown-test-secret-0123456789abcdef";

/// Prints the service's log if the test fails, so the failure explains itself.
struct LogOnFailure(std::path::PathBuf);

impl Drop for LogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            eprintln!("--- agentic-user log ---\n{log}");
        }
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn free_addr() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let db = TestDatabase::create("user", agentic_user::MIGRATIONS).await;
    let (grpc_addr, admin_addr) = (free_addr().await, free_addr().await);
    let log_path = std::env::temp_dir().join(format!("{}.log", db.name));
    let _log = LogOnFailure(log_path.clone());
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentic-user"))
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("JWT_SECRET", SECRET)
        .env("GRPC_ADDR", &grpc_addr)
        .env("ADMIN_ADDR", &admin_addr)
        .env("READINESS_INTERVAL", "100ms")
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("start agentic-user");

    let endpoint = format!("http://{grpc_addr}");
    let mut serving = false;
    for _ in 0..100 {
        if let Ok(channel) = Channel::from_shared(endpoint.clone())
            .unwrap()
            .connect()
            .await
            && let Ok(reply) = HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
            && reply.into_inner().status == 1
        {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serving, "the service became ready");

    let tokens = Tokens::new(&AuthArgs {
        jwt_secret: SECRET.into(),
        jwt_issuer: "agentic".into(),
        jwt_ttl: 600,
    })
    .unwrap();
    let channel = Channel::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = UserServiceClient::new(channel);
    let (platform, _) = tokens.issue("test", None, roles::PLATFORM, None).unwrap();
    let tenant = client
        .create_tenant(authorized(
            pb::CreateTenantRequest {
                name: "Drain".into(),
                slug: "drain".into(),
            },
            &platform,
        ))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    let (admin, _) = tokens
        .issue("test", Some(tenant.id.parse().unwrap()), roles::ADMIN, None)
        .unwrap();
    let user = client
        .create_user(authorized(
            pb::CreateUserRequest {
                email: "drain@example.com".into(),
                display_name: "D".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();

    // Hold the row lock so updates stay in flight until the test lets them go.
    let mut locker = AsyncPgConnection::establish(&db.url).await.unwrap();
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM users.users WHERE id = '{}' FOR UPDATE",
            user.id
        ))
        .await
        .unwrap();
    let in_flight: Vec<_> = (0..3)
        .map(|i| {
            let mut client = client.clone();
            let request = authorized(
                pb::UpdateUserRequest {
                    user: Some(pb::User {
                        id: user.id.clone(),
                        display_name: format!("Drained {i}"),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["display_name".into()],
                    }),
                },
                &admin,
            );
            tokio::spawn(async move { client.update_user(request).await })
        })
        .collect();
    let mut waiting = 0;
    for _ in 0..100 {
        waiting = lock_waiters(&mut locker, &db.name).await;
        if waiting >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(waiting, 3, "three requests are in flight");

    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the process waits for in-flight requests"
    );

    locker.batch_execute("ROLLBACK").await.unwrap();
    for request in in_flight {
        let response = request.await.unwrap();
        assert!(
            response.is_ok(),
            "in-flight request completed: {response:?}"
        );
    }

    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after draining")
        .unwrap();
    assert_eq!(exit.code(), Some(0), "clean exit");
}
