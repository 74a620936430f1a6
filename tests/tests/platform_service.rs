//! A service is one `ServiceType` implementation: the test-only echo service, which is
//! nothing else, gets serving, auth, health, readiness, reflection, metrics and drain
//! from the platform.

use std::time::Duration;

use agentic_e2e::echo::{EchoApp, pb};
use agentic_platform::auth::roles;
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{Harness, Options, TcpProxy, TestDatabase, TestService};
use pb::echo_service_client::EchoServiceClient;
use tonic_health::pb::health_check_response::ServingStatus;
use uuid::Uuid;

const ECHO: &str = "agentic.echo.v1.EchoService";

fn say(message: &str, delay_ms: u32) -> pb::EchoRequest {
    pb::EchoRequest {
        message: message.into(),
        delay_ms,
    }
}

#[tokio::test]
async fn the_echo_service_serves_with_auth_health_reflection_and_metrics() {
    let harness = Harness::<EchoApp>::start().await;
    let service = &harness.service;

    let anonymous = EchoServiceClient::new(service.bearer_channel(None).await)
        .echo(say("hi", 0))
        .await
        .expect_err("a call without a token is refused");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);

    let tenant = Uuid::now_v7();
    let token = service.token(tenant, roles::MEMBER);
    let mut client = EchoServiceClient::new(service.bearer_channel(Some(&token)).await);
    let reply = client
        .echo(say("hello", 0))
        .await
        .expect("echo")
        .into_inner();
    assert_eq!(reply.message, "hello");
    assert_eq!(reply.tenant_id, tenant.to_string());

    assert_eq!(service.health(ECHO).await, ServingStatus::Serving);
    assert_eq!(service.health("").await, ServingStatus::Serving);
    let (status, _) = service.admin_get("/health/ready").await;
    assert_eq!(status, 200);

    let names = service.reflected_services().await;
    for wanted in [
        ECHO,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }

    let (status, metrics) = service.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let handled = agentic_e2e::metric_sum(
        &metrics,
        "grpc_server_handled_total",
        &[&format!("grpc_service=\"{ECHO}\""), "grpc_code=\"OK\""],
    );
    assert!(handled >= 1.0, "no Ok series for {ECHO} in:\n{metrics}");
}

#[tokio::test]
async fn the_echo_service_is_ready_only_while_its_database_answers() {
    let db = TestDatabase::create(EchoApp::SPEC.name, EchoApp::MIGRATIONS).await;
    let proxy = TcpProxy::start(agentic_e2e::database_addr(&db.url)).await;
    proxy.sever();
    let url = agentic_e2e::url_via(&db.url, proxy.addr);
    let service = TestService::<EchoApp>::start_unready(&url, &db.name, &Options::default()).await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(service.health(ECHO).await, ServingStatus::NotServing);
    assert_eq!(service.admin_get("/health/ready").await.0, 503);

    proxy.restore();
    service.wait_for(ServingStatus::Serving).await;
    assert_eq!(service.health(ECHO).await, ServingStatus::Serving);
    assert_eq!(service.admin_get("/health/ready").await.0, 200);
}

#[tokio::test]
async fn stopping_the_echo_service_drains_a_call_in_flight() {
    let harness = Harness::<EchoApp>::start().await;
    let token = harness.service.token(Uuid::now_v7(), roles::VIEWER);
    let mut client = EchoServiceClient::new(harness.service.bearer_channel(Some(&token)).await);
    let in_flight = tokio::spawn(async move { client.echo(say("late", 700)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopped = tokio::spawn(harness.service.stop());
    let reply = in_flight
        .await
        .expect("task")
        .expect("the call in flight completes");
    assert_eq!(reply.into_inner().message, "late");
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("the server stops once drained")
        .expect("server task");
}

/// Calls `path` with an empty message; returns the status code.
async fn call_path(channel: tonic::transport::Channel, path: String) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).expect("path");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(tonic::Request::new(()), path, codec).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

/// The lines of `/metrics` that are gRPC server series.
async fn grpc_series(service: &TestService<EchoApp>) -> Vec<String> {
    let (_, metrics) = service.admin_get("/metrics").await;
    metrics
        .lines()
        .filter(|line| line.starts_with("grpc_server_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn random_paths_from_anonymous_clients_do_not_grow_the_metrics() {
    use futures::StreamExt;

    let harness = Harness::<EchoApp>::start().await;
    let channel = harness.service.channel().await;
    let random = || format!("/x{0}.Svc{0}/M{0}", Uuid::new_v4().simple());
    assert_eq!(
        call_path(channel.clone(), random()).await,
        tonic::Code::Unauthenticated
    );
    let before = grpc_series(&harness.service).await.len();

    let codes: Vec<tonic::Code> = futures::stream::iter(0..10_000)
        .map(|_| call_path(channel.clone(), random()))
        .buffer_unordered(64)
        .collect()
        .await;
    let others: Vec<_> = codes
        .iter()
        .filter(|c| **c != tonic::Code::Unauthenticated)
        .collect();
    assert!(others.is_empty(), "other codes: {others:?}");

    let after = grpc_series(&harness.service).await;
    assert_eq!(after.len(), before, "series added: {after:#?}");
    let unknown = after
        .iter()
        .find(|l| {
            l.starts_with("grpc_server_handled_total")
                && l.contains("grpc_method=\"unknown\"")
                && l.contains("grpc_code=\"Unauthenticated\"")
        })
        .expect("unknown methods share one series");
    assert!(unknown.ends_with(" 10001"), "{unknown}");
}

#[tokio::test]
async fn a_call_the_client_abandons_is_counted_as_cancelled() {
    let harness = Harness::<EchoApp>::start().await;
    let token = harness.service.token(Uuid::now_v7(), roles::MEMBER);
    let mut client = EchoServiceClient::new(harness.service.bearer_channel(Some(&token)).await);
    let abandoned = tokio::spawn(async move { client.echo(say("never", 5_000)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let in_flight = |series: &[String]| {
        series
            .iter()
            .find(|l| l.starts_with("grpc_server_in_flight") && l.contains("grpc_method=\"Echo\""))
            .cloned()
    };
    let series = grpc_series(&harness.service).await;
    assert_eq!(
        in_flight(&series).as_deref().map(|l| l.ends_with(" 1")),
        Some(true),
        "{series:#?}"
    );
    abandoned.abort();

    for _ in 0..100 {
        let series = grpc_series(&harness.service).await;
        let cancelled = series.iter().any(|l| {
            l.starts_with("grpc_server_handled_total")
                && l.contains("grpc_method=\"Echo\"")
                && l.contains("grpc_code=\"Canceled\"")
                && l.ends_with(" 1")
        });
        if cancelled {
            assert!(
                in_flight(&series).is_some_and(|l| l.ends_with(" 0")),
                "{series:#?}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the abandoned call was never counted");
}

/// An echo client for `service` that may send and receive messages of `size` bytes.
async fn big_client(
    service: &TestService<EchoApp>,
    size: usize,
) -> EchoServiceClient<agentic_platform::testsuite::BearerChannel> {
    let token = service.token(Uuid::now_v7(), roles::MEMBER);
    EchoServiceClient::new(service.bearer_channel(Some(&token)).await)
        .max_encoding_message_size(size)
        .max_decoding_message_size(size)
}

#[tokio::test]
async fn a_message_over_the_limit_is_resource_exhausted_compressed_or_not() {
    let harness = Harness::<EchoApp>::start().await;
    let five_mib = "a".repeat(5 * 1024 * 1024);
    let mut plain = big_client(&harness.service, 16 << 20).await;
    let error = plain
        .echo(say(&five_mib, 0))
        .await
        .expect_err("over the 4 MiB default");
    assert_eq!(error.code(), tonic::Code::ResourceExhausted, "{error:?}");

    let mut gzip = big_client(&harness.service, 16 << 20)
        .await
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let error = gzip
        .echo(say(&five_mib, 0))
        .await
        .expect_err("inflates past the 4 MiB default");
    assert_eq!(error.code(), tonic::Code::ResourceExhausted, "{error:?}");

    let reply = gzip
        .echo(say("small", 0))
        .await
        .expect("small messages pass");
    assert_eq!(reply.into_inner().message, "small");
}

#[tokio::test]
async fn the_message_limit_is_configurable() {
    let db = TestDatabase::create(EchoApp::SPEC.name, EchoApp::MIGRATIONS).await;
    let options = Options::default();
    let mut args = options.service_args(&db.url, &db.name);
    args.server.grpc_max_message_size = 8 << 20;
    let service =
        TestService::<EchoApp>::start_with_args(args, options.own_args::<EchoApp>()).await;
    service.wait_for(ServingStatus::Serving).await;

    let mut client = big_client(&service, 16 << 20).await;
    let five_mib = "b".repeat(5 * 1024 * 1024);
    let reply = client.echo(say(&five_mib, 0)).await.expect("under 8 MiB");
    assert_eq!(reply.into_inner().message.len(), five_mib.len());
    let nine_mib = "c".repeat(9 * 1024 * 1024);
    let error = client
        .echo(say(&nine_mib, 0))
        .await
        .expect_err("over 8 MiB");
    assert_eq!(error.code(), tonic::Code::ResourceExhausted, "{error:?}");
}

#[tokio::test]
async fn a_connection_runs_at_most_its_limit_of_calls_and_the_rest_wait() {
    let db = TestDatabase::create(EchoApp::SPEC.name, EchoApp::MIGRATIONS).await;
    let options = Options::default();
    let mut args = options.service_args(&db.url, &db.name);
    args.server.concurrency_limit_per_connection = 2;
    let service =
        TestService::<EchoApp>::start_with_args(args, options.own_args::<EchoApp>()).await;
    service.wait_for(ServingStatus::Serving).await;

    // Six slow calls at once down one connection: two run, the others wait their turn
    // (HTTP/2 tells the client the limit), and none is refused. The first call lets the
    // client hear the server's settings: streams a client opens before that, past the
    // limit, are refused unprocessed (REFUSED_STREAM, UNAVAILABLE), safe to retry.
    let token = service.token(Uuid::now_v7(), roles::MEMBER);
    let mut client = EchoServiceClient::new(service.bearer_channel(Some(&token)).await);
    client.echo(say("hello", 0)).await.expect("first call");
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move { client.echo(say(&format!("call {i}"), 400)).await })
        })
        .collect();
    let in_flight = async || {
        let (_, metrics) = service.admin_get("/metrics").await;
        metrics
            .lines()
            .find(|l| l.starts_with("grpc_server_in_flight") && l.contains("grpc_method=\"Echo\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut most = 0.0_f64;
    while !calls.iter().all(|call| call.is_finished()) {
        most = most.max(in_flight().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for call in calls {
        call.await.expect("task").expect("every call is served");
    }
    assert_eq!(most, 2.0, "calls in flight at once on one connection");
}
