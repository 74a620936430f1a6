//! A database that hangs (a SIGSTOPped server: connections open, nothing answered) or a
//! pool saturated by slow queries, seen from the user service's callers and probes.

use std::time::Duration;

use agentic_e2e::{Options, UserFixture, UserService, create_user, get_user, slug, url_via};
use agentic_platform::service::NoArgs;
use agentic_platform::testsuite::{TcpProxy, TestDatabase, lock_waiters};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tokio::time::Instant;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

/// Waits up to `limit` for the overall health to become `wanted`; returns how long it took.
async fn time_until(service: &UserService, wanted: ServingStatus, limit: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if service.health("").await == wanted {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not {wanted:?} within {limit:?}");
}

#[tokio::test]
async fn a_hung_database_turns_readiness_off_fails_calls_fast_and_recovers_at_once() {
    let db = TestDatabase::create("user", agentic_e2e::MIGRATIONS).await;
    let proxy = TcpProxy::start(agentic_e2e::database_addr(&db.url)).await;
    let options = Options {
        cache_enabled: false,
        ..Options::default()
    };
    // The shipped readiness settings, not the tests' quick ones.
    let mut args = options.service_args(&url_via(&db.url, proxy.addr), &db.name);
    args.server.readiness_interval = Duration::from_secs(1);
    args.server.readiness_timeout = Duration::from_secs(1);
    let service = UserService::start_with_args(args, NoArgs {}).await;
    service.wait_for(ServingStatus::Serving).await;
    let (_, mut admin) = service.tenant(&slug("hung")).await;
    let user = create_user(&mut admin, "hung@example.com").await;
    let get = get_user(&user.id);

    proxy.stall();
    // A call without a deadline of its own: bounded by the server, not by the stall.
    let call = tokio::spawn({
        let (mut admin, get) = (admin.clone(), get.clone());
        async move { admin.get_user(get).await }
    });
    let took = time_until(&service, ServingStatus::NotServing, Duration::from_secs(4)).await;
    assert!(
        took <= Duration::from_millis(3_500),
        "readiness took {took:?}"
    );
    // Once readiness has noticed, new calls do not wait for the database at all.
    let error = tokio::time::timeout(Duration::from_secs(1), admin.get_user(get.clone()))
        .await
        .expect("fails at once")
        .expect_err("the database is hung");
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    let error = tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .expect("the call ends while the database is still hung")
        .expect("task")
        .expect_err("no answer from a hung database");
    assert!(
        matches!(error.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{error:?}"
    );

    proxy.resume();
    time_until(&service, ServingStatus::Serving, Duration::from_secs(4)).await;
    admin
        .get_user(get)
        .await
        .expect("serves again once the database answers");
}

#[tokio::test]
async fn readiness_holds_while_slow_queries_saturate_the_pool() {
    let db = TestDatabase::create("user", agentic_e2e::MIGRATIONS).await;
    let options = Options {
        pool_size: 1,
        ..Options::default()
    };
    let mut args = options.service_args(&db.url, &db.name);
    args.server.readiness_interval = Duration::from_millis(200);
    args.server.readiness_timeout = Duration::from_millis(500);
    let service = UserService::start_with_args(args, NoArgs {}).await;
    service.wait_for(ServingStatus::Serving).await;
    let (_, admin) = service.tenant(&slug("busy")).await;
    let user = create_user(&mut admin.clone(), "busy@example.com").await;

    // Every connection of the pool (1 + 1 overflow) blocks on a row lock, and more
    // requests queue for a connection.
    let mut locker = AsyncPgConnection::establish(&db.url)
        .await
        .expect("connect");
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM users.users WHERE id = '{}' FOR UPDATE",
            user.id
        ))
        .await
        .expect("lock");
    let blocked: Vec<_> = (0..4)
        .map(|i| {
            let mut admin = admin.clone();
            let rename = agentic_e2e::rename(&user.id, format!("Busy {i}"));
            tokio::spawn(async move { admin.update_user(rename).await })
        })
        .collect();
    for _ in 0..100 {
        if lock_waiters(&mut locker, &db.name).await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        lock_waiters(&mut locker, &db.name).await,
        2,
        "the pool is saturated"
    );

    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            service.health("").await,
            ServingStatus::Serving,
            "readiness flapped {:?} into the saturation",
            watched.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    locker.batch_execute("ROLLBACK").await.expect("unlock");
    for update in blocked {
        let _ = update.await.expect("task");
    }
}
