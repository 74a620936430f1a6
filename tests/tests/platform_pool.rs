//! The pool under connection failures, against real PostgreSQL through a TCP proxy.

use agentic_platform::config::DatabaseArgs;
use agentic_platform::db::Pool;
use agentic_platform::error::Error;
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{TcpProxy, TestDatabase};
use agentic_user::UserApp;
use diesel_async::SimpleAsyncConnection;

#[tokio::test]
async fn one_refused_connect_fails_one_waiter_and_the_others_connect() {
    let db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
    let proxy = TcpProxy::start(agentic_e2e::database_addr(&db.url)).await;
    let mut args = DatabaseArgs::with_url(agentic_e2e::url_via(&db.url, proxy.addr));
    // No idle connections kept: every checkout below needs a connect of its own.
    args.db_pool_size = 0;
    args.db_max_overflow = 4;
    args.db_pool_timeout = 5;
    let pool = Pool::new("faults", &args);
    proxy.refuse_next(1);

    let checkouts = (0..4).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.run(async |conn| Ok(conn.batch_execute("SELECT pg_sleep(0.2)").await?))
                .await
        })
    });
    let outcomes: Vec<_> = futures::future::join_all(checkouts)
        .await
        .into_iter()
        .map(|joined| joined.expect("task"))
        .collect();
    let failed: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert_eq!(
        failed.len(),
        1,
        "one refused connect, one failure: {outcomes:?}"
    );
    assert!(matches!(failed[0], Error::Unavailable(_)), "{failed:?}");
}

#[tokio::test]
async fn a_query_on_a_hung_server_is_abandoned_soon_after_its_statement_timeout() {
    let db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
    let proxy = TcpProxy::start(agentic_e2e::database_addr(&db.url)).await;
    let mut args = DatabaseArgs::with_url(agentic_e2e::url_via(&db.url, proxy.addr));
    args.db_pool_size = 1;
    args.db_max_overflow = 0;
    args.db_query_timeout = 500;
    args.db_pool_timeout = 2;
    let pool = Pool::new("hung", &args);
    pool.run(async |conn| Ok(conn.batch_execute("SELECT 1").await?))
        .await
        .expect("healthy first");

    proxy.stall();
    let hung = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        pool.run(async |conn| Ok(conn.batch_execute("SELECT 1").await?)),
    )
    .await
    .expect("the call does not hang");
    assert!(matches!(hung, Err(Error::Unavailable(_))), "{hung:?}");

    proxy.resume();
    // The abandoned connection was discarded; a fresh one works at once.
    pool.run(async |conn| Ok(conn.batch_execute("SELECT 1").await?))
        .await
        .expect("recovers when the server answers again");
}

/// The backend process serving a read: tells which connection its query went down.
async fn backend_pid(pool: &Pool) -> Result<i32, Error> {
    use diesel_async::RunQueryDsl;
    pool.read(async |conn| {
        Ok(
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
                "pg_backend_pid()",
            ))
            .get_result::<i32>(conn)
            .await?,
        )
    })
    .await
}

#[tokio::test]
async fn concurrent_point_reads_share_the_pipelined_connections_and_check_out_none() {
    let db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
    let mut args = DatabaseArgs::with_url(&db.url);
    args.db_pool_size = 0;
    args.db_max_overflow = 4;
    args.db_pipelined_connections = 2;
    let pool = Pool::new("pipelined", &args);

    let reads = (0..200).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move { backend_pid(&pool).await })
    });
    let pids: std::collections::BTreeSet<i32> = futures::future::join_all(reads)
        .await
        .into_iter()
        .map(|joined| joined.expect("task").expect("every read succeeds"))
        .collect();

    assert!(
        (1..=2).contains(&pids.len()),
        "200 concurrent reads went down at most the 2 shared connections: {pids:?}"
    );
    assert_eq!(
        pool.status().size,
        0,
        "no read checked out a pool connection"
    );
    assert_eq!(pool.queries(), 200, "each read is one counted query");
}

#[tokio::test]
async fn without_pipelined_connections_reads_check_out_pool_connections() {
    let db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
    let mut args = DatabaseArgs::with_url(&db.url);
    args.db_pool_size = 0;
    args.db_max_overflow = 2;
    args.db_pipelined_connections = 0;
    let pool = Pool::new("unpipelined", &args);

    backend_pid(&pool).await.expect("a read");
    assert_eq!(pool.status().size, 1, "the read opened a pool connection");
}

#[tokio::test]
async fn a_pipelined_connection_that_dies_is_replaced() {
    let db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
    let mut args = DatabaseArgs::with_url(&db.url);
    args.db_pipelined_connections = 1;
    let pool = Pool::new("replaced", &args);
    let first = backend_pid(&pool).await.expect("a read");

    pool.run(async |conn| {
        Ok(conn
            .batch_execute(&format!("SELECT pg_terminate_backend({first})"))
            .await?)
    })
    .await
    .expect("terminate the shared connection's backend");

    // The read that finds the connection dead fails UNAVAILABLE (a caller may retry it);
    // the one after it runs on a new connection.
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let outcome = backend_pid(&pool).await;
        let done = outcome.is_ok();
        outcomes.push(outcome);
        if done {
            break;
        }
    }
    let (last, failures) = outcomes.split_last().expect("at least one read");
    assert!(failures.len() <= 1, "{outcomes:?}");
    assert!(
        failures
            .iter()
            .all(|f| matches!(f, Err(Error::Unavailable(_)))),
        "{outcomes:?}"
    );
    let second = last.as_ref().expect("a new connection answers");
    assert_ne!(*second, first, "the dead connection was replaced");
}

#[tokio::test]
async fn pipelined_reads_on_a_hung_server_fail_unavailable_and_recover() {
    let db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
    let proxy = TcpProxy::start(agentic_e2e::database_addr(&db.url)).await;
    let mut args = DatabaseArgs::with_url(agentic_e2e::url_via(&db.url, proxy.addr));
    args.db_query_timeout = 500;
    args.db_pipelined_connections = 1;
    let pool = Pool::new("hung-reads", &args);
    backend_pid(&pool).await.expect("healthy first");

    proxy.stall();
    let reads = (0..5).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move {
            tokio::time::timeout(std::time::Duration::from_secs(10), backend_pid(&pool)).await
        })
    });
    for joined in futures::future::join_all(reads).await {
        let outcome = joined.expect("task").expect("the read does not hang");
        assert!(matches!(outcome, Err(Error::Unavailable(_))), "{outcome:?}");
    }

    proxy.resume();
    backend_pid(&pool)
        .await
        .expect("a new connection answers once the server does");
}
