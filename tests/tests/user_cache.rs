//! The two-level cache, asserted by counting the queries the service sends to PostgreSQL.

use std::time::Duration;

use agentic_e2e::{
    Harness, Options, UserFixture, UserService, create_user as create, get_user as get, rename,
    slug,
};
use agentic_platform::testsuite::{RedisServer, TcpProxy, TestDatabase};
use agentic_proto::user::v1 as pb;
use futures::future::join_all;
use tonic::Code;

#[tokio::test]
async fn a_second_get_makes_no_query_and_another_replica_reads_redis() {
    let harness = Harness::start().await;
    let (tenant, mut admin) = harness.service.tenant(&slug("cache")).await;
    let user = create(&mut admin, "cached@example.com").await;

    let before = harness.service.queries();
    admin.get_user(get(&user.id)).await.expect("cold get");
    assert_eq!(
        harness.service.queries() - before,
        1,
        "a cold get queries once"
    );
    for _ in 0..5 {
        let again = admin
            .get_user(get(&user.id))
            .await
            .expect("warm get")
            .into_inner();
        assert_eq!(again.user.as_ref(), Some(&user));
    }
    assert_eq!(
        harness.service.queries() - before,
        1,
        "warm gets make no query"
    );

    // A second replica on the same database and Redis finds the user in Redis (L2).
    let replica =
        UserService::start_on(&harness.db.url, &harness.db.name, &Options::default()).await;
    let mut replica_client = replica.client(Some(&replica.token(tenant, "admin"))).await;
    let from_replica = replica_client
        .get_user(get(&user.id))
        .await
        .expect("replica get");
    assert_eq!(from_replica.into_inner().user.as_ref(), Some(&user));
    assert_eq!(replica.queries(), 0, "the replica was served by redis");
}

#[tokio::test]
async fn updates_and_deletes_are_visible_to_the_next_get() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("fresh")).await;
    let user = create(&mut admin, "fresh@example.com").await;
    admin.get_user(get(&user.id)).await.expect("warm the cache");

    for round in 0..3 {
        let name = format!("Renamed {round}");
        admin
            .update_user(rename(&user.id, &name))
            .await
            .expect("update");
        let read = admin
            .get_user(get(&user.id))
            .await
            .expect("get")
            .into_inner()
            .user
            .expect("user");
        assert_eq!(read.display_name, name, "no stale read after update");
    }

    admin
        .delete_user(pb::DeleteUserRequest {
            id: user.id.clone(),
        })
        .await
        .expect("delete");
    let error = admin.get_user(get(&user.id)).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound, "no stale read after delete");
}

#[tokio::test]
async fn fifty_concurrent_gets_of_a_cold_user_make_one_query() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("herd")).await;
    let user = create(&mut admin, "herd@example.com").await;

    let before = harness.service.queries();
    let herd = (0..50).map(|_| {
        let mut client = admin.clone();
        let id = user.id.clone();
        async move { client.get_user(get(&id)).await }
    });
    let results = join_all(herd).await;
    assert!(results.iter().all(|r| {
        r.as_ref()
            .is_ok_and(|r| r.get_ref().user.as_ref() == Some(&user))
    }));
    assert_eq!(
        harness.service.queries() - before,
        1,
        "single-flight: one query for the herd"
    );

    // A herd asking for a user that does not exist is also one query (negative cache).
    let missing = uuid::Uuid::now_v7().to_string();
    let before = harness.service.queries();
    let herd = (0..50).map(|_| {
        let mut client = admin.clone();
        let id = missing.clone();
        async move { client.get_user(get(&id)).await }
    });
    let results = join_all(herd).await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.code() == Code::NotFound))
    );
    assert_eq!(harness.service.queries() - before, 1);
}

#[tokio::test]
async fn gets_and_writes_succeed_with_redis_stopped() {
    let mut redis = RedisServer::start().await;
    let harness = Harness::start_with(Options {
        redis_url: Some(redis.url.clone()),
        ..Options::default()
    })
    .await;
    let (_, mut admin) = harness.service.tenant(&slug("no-redis")).await;
    let warm = create(&mut admin, "warm@example.com").await;
    let cold = create(&mut admin, "cold@example.com").await;
    admin.get_user(get(&warm.id)).await.expect("warm up");

    redis.stop().await;

    let before = harness.service.queries();
    let read = admin
        .get_user(get(&warm.id))
        .await
        .expect("warm get without redis");
    assert_eq!(read.into_inner().user.as_ref(), Some(&warm));
    // Without Redis no invalidation can reach this replica, so its L1 is not trusted:
    // reads go to the database (slower, never failing).
    assert_eq!(
        harness.service.queries() - before,
        1,
        "read through to the database"
    );

    let read = admin
        .get_user(get(&cold.id))
        .await
        .expect("cold get without redis");
    assert_eq!(read.into_inner().user.as_ref(), Some(&cold));

    admin
        .update_user(rename(&warm.id, "Still works"))
        .await
        .expect("update without redis");
    let read = admin
        .get_user(get(&warm.id))
        .await
        .expect("get after update")
        .into_inner();
    assert_eq!(read.user.expect("user").display_name, "Still works");

    // A service that starts while Redis is down serves too.
    let late = UserService::start_on(
        &harness.db.url,
        &harness.db.name,
        &Options {
            redis_url: Some(redis.url.clone()),
            ..Options::default()
        },
    )
    .await;
    let (tenant, _) = (warm.tenant_id.parse().unwrap(), ());
    let mut late_client = late.client(Some(&late.token(tenant, "admin"))).await;
    late_client
        .get_user(get(&cold.id))
        .await
        .expect("get on a service started without redis");
}

#[tokio::test]
async fn an_expired_value_is_served_while_the_database_is_unreachable() {
    let db = TestDatabase::create("user", agentic_e2e::MIGRATIONS).await;
    let upstream = agentic_e2e::database_addr(&db.url);
    let proxy = TcpProxy::start(upstream).await;
    let options = Options {
        database_url: Some(agentic_e2e::url_via(&db.url, proxy.addr)),
        cache_ttl: Duration::from_secs(1),
        ..Options::default()
    };
    let service =
        UserService::start_on(options.database_url.as_deref().unwrap(), &db.name, &options).await;
    let (_, mut admin) = service.tenant(&slug("stale")).await;
    let user = create(&mut admin, "stale@example.com").await;
    let never_read = create(&mut admin, "never@example.com").await;
    admin.get_user(get(&user.id)).await.expect("cache it");

    // Let it expire (TTL 1 s ± 10%), then cut the database off.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    proxy.sever();

    let read = admin
        .get_user(get(&user.id))
        .await
        .expect("stale value served");
    assert_eq!(read.into_inner().user.as_ref(), Some(&user));

    let error = admin.get_user(get(&never_read.id)).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "nothing cached: fail fast");

    proxy.restore();
}

#[tokio::test]
async fn a_write_on_one_replica_clears_the_other_replicas_in_process_cache() {
    let harness = Harness::start().await;
    let (tenant, mut admin) = harness.service.tenant(&slug("replicas")).await;
    let user = create(&mut admin, "replica@example.com").await;

    let replica =
        UserService::start_on(&harness.db.url, &harness.db.name, &Options::default()).await;
    let mut on_replica = replica.client(Some(&replica.token(tenant, "admin"))).await;
    admin.get_user(get(&user.id)).await.expect("warm replica A");
    on_replica
        .get_user(get(&user.id))
        .await
        .expect("warm replica B");
    on_replica
        .get_user(get(&user.id))
        .await
        .expect("B now serves from its own L1");

    admin
        .update_user(rename(&user.id, "Changed on A"))
        .await
        .expect("update through A");

    // B learns of the write through Redis pub/sub, well before its 300 s TTL.
    let mut seen = String::new();
    for _ in 0..40 {
        seen = on_replica
            .get_user(get(&user.id))
            .await
            .expect("get on B")
            .into_inner()
            .user
            .expect("user")
            .display_name;
        if seen == "Changed on A" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, "Changed on A", "replica B dropped its stale copy");
}
