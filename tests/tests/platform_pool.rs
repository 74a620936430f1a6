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
