//! What operators and probes see: reflection through the real grpcurl, health and
//! readiness that follow the database, and statement timeouts capped by the caller's
//! deadline.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use agentic_e2e::{
    Harness, Options, UserFixture, UserService, create_user, new_user, rename, slug, url_via,
};
use agentic_platform::server::readiness::LIVENESS;
use agentic_platform::testsuite::{TcpProxy, TestDatabase, lock_waiters};
use agentic_proto::user::v1 as pb;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

/// The grpcurl that `scripts/tools.sh` installs (or `$GRPCURL`).
fn grpcurl() -> PathBuf {
    let path = std::env::var_os("GRPCURL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/bin/grpcurl"));
    assert!(
        path.exists(),
        "grpcurl not found at {}: run scripts/tools.sh (make test does)",
        path.display()
    );
    path
}

fn run_grpcurl(args: &[&str]) -> String {
    let output = Command::new(grpcurl())
        .args(args)
        .output()
        .expect("run grpcurl");
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[tokio::test]
async fn grpcurl_lists_the_service_through_reflection_and_calls_it() {
    let harness = Harness::start().await;
    let (tenant, mut admin) = harness.service.tenant(&slug("grpcurl")).await;
    let user = create_user(&mut admin, "curl@example.com").await;
    let addr = harness.service.addr.to_string();
    let token = harness.service.token(tenant, "admin");
    let auth = format!("authorization: Bearer {token}");

    let blocking = tokio::task::spawn_blocking(move || {
        let services = run_grpcurl(&["-plaintext", &addr, "list"]);
        assert!(
            services.lines().any(|l| l == "agentic.user.v1.UserService"),
            "{services}"
        );
        assert!(
            services.lines().any(|l| l == "grpc.health.v1.Health"),
            "{services}"
        );
        // grpcurl asks v1alpha; v1 answers too, so it is listed.
        for reflection in [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ] {
            assert!(services.lines().any(|l| l == reflection), "{services}");
        }

        let methods = run_grpcurl(&[
            "-plaintext",
            &addr,
            "describe",
            "agentic.user.v1.UserService",
        ]);
        assert!(methods.contains("rpc GetUser"), "{methods}");

        let health = run_grpcurl(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
        assert!(health.contains("\"SERVING\""), "{health}");

        let body = format!("{{\"id\": \"{}\"}}", user.id);
        let got = run_grpcurl(&[
            "-plaintext",
            "-H",
            &auth,
            "-d",
            &body,
            &addr,
            "agentic.user.v1.UserService/GetUser",
        ]);
        assert!(got.contains("curl@example.com"), "{got}");

        // Errors come back with their code and field.
        let output = Command::new(grpcurl())
            .args(["-plaintext", "-H", &auth, "-d", "{\"id\": \"nope\"}", &addr])
            .arg("agentic.user.v1.UserService/GetUser")
            .output()
            .expect("run grpcurl");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("InvalidArgument"), "{stderr}");
        // Reflection describes google.rpc.BadRequest, so grpcurl decodes the violations.
        assert!(
            stderr.contains(
                r#""fieldViolations":[{"field":"id","description":"is not a valid UUID"}]"#
            ),
            "{stderr}"
        );
    });
    blocking.await.expect("grpcurl checks");
}

async fn admin_status(service: &UserService, path: &str) -> u16 {
    service.admin_get(path).await.0
}

#[tokio::test]
async fn readiness_follows_the_database_and_requests_fail_fast_without_it() {
    let db = TestDatabase::create("user", agentic_e2e::MIGRATIONS).await;
    let proxy = TcpProxy::start(agentic_e2e::database_addr(&db.url)).await;
    let via_proxy = url_via(&db.url, proxy.addr);

    // Readiness starts NOT_SERVING and flips once the database answers.
    proxy.sever();
    let service = UserService::start_unready(&via_proxy, &db.name, &Options::default()).await;
    assert_eq!(service.health("").await, ServingStatus::NotServing);
    assert_eq!(admin_status(&service, "/health/ready").await, 503);
    assert_eq!(admin_status(&service, "/health/live").await, 200);
    assert_eq!(
        service.health(LIVENESS).await,
        ServingStatus::Serving,
        "the liveness probe's name answers without the database"
    );
    proxy.restore();
    service.wait_for(ServingStatus::Serving).await;
    assert_eq!(
        service.health("agentic.user.v1.UserService").await,
        ServingStatus::Serving
    );
    assert_eq!(admin_status(&service, "/health/ready").await, 200);

    let (_, mut admin) = service.tenant(&slug("ready")).await;
    let user = create_user(&mut admin, "ready@example.com").await;

    proxy.sever();
    service.wait_for(ServingStatus::NotServing).await;
    assert_eq!(
        service.health("agentic.user.v1.UserService").await,
        ServingStatus::NotServing
    );
    assert_eq!(admin_status(&service, "/health/ready").await, 503);
    assert_eq!(service.health(LIVENESS).await, ServingStatus::Serving);

    let started = Instant::now();
    let error = admin
        .get_user(pb::GetUserRequest {
            id: user.id.clone(),
            read_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fails fast instead of waiting out the pool timeout"
    );

    proxy.restore();
    service.wait_for(ServingStatus::Serving).await;
    admin
        .get_user(pb::GetUserRequest {
            id: user.id,
            read_mask: None,
        })
        .await
        .expect("serves again once the database is back");

    let (status, metrics) = service.admin_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("grpc_server_handled_total"), "{metrics}");
    assert!(metrics.contains("db_queries_total"), "{metrics}");
}

#[tokio::test]
async fn a_callers_deadline_caps_the_statement_timeout() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("deadline")).await;
    let user = create_user(&mut admin, "locked@example.com").await;

    // Hold the user's row lock so the update has to wait in PostgreSQL.
    let mut locker = AsyncPgConnection::establish(&harness.db.url)
        .await
        .expect("connect");
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM users.users WHERE id = '{}' FOR UPDATE;",
            user.id
        ))
        .await
        .expect("lock the row");

    let mut request = tonic::Request::new(rename(&user.id, "Blocked"));
    request.set_timeout(Duration::from_millis(400));
    let error = admin.update_user(request).await.unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded);

    // The server cancelled its statement: nothing of ours is still waiting on the lock,
    // long before the configured 30 s statement timeout.
    let mut waiting = i64::MAX;
    for _ in 0..40 {
        waiting = lock_waiters(&mut locker, &harness.db.name).await;
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        waiting, 0,
        "the blocked statement was cancelled by its deadline"
    );
    locker.batch_execute("ROLLBACK").await.expect("release");

    let read = admin
        .get_user(pb::GetUserRequest {
            id: user.id,
            read_mask: None,
        })
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user");
    assert_ne!(
        read.display_name, "Blocked",
        "the cancelled update left nothing behind"
    );
}

#[tokio::test]
async fn reflection_v1_lists_the_services_and_gzip_is_spoken_both_ways() {
    let harness = Harness::start().await;
    let names = harness.service.reflected_services().await;
    assert!(
        names.iter().any(|n| n == "agentic.user.v1.UserService"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );

    let (_, admin) = harness.service.tenant(&slug("gzip")).await;
    let mut gzip = admin
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let requests = (0..50)
        .map(|i| new_user(&format!("z{i}@example.com")))
        .collect();
    gzip.batch_create_users(pb::BatchCreateUsersRequest {
        request_id: String::new(),
        requests,
    })
    .await
    .expect("a gzip-compressed request is accepted");
    let page = gzip
        .list_users(pb::ListUsersRequest {
            page_size: 50,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page.metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip"),
        "the response was compressed"
    );
    assert_eq!(page.into_inner().users.len(), 50);
}
