//! The cache under faults and across replicas: what a read may return after a write.
//!
//! Stated bounds (README, "Consistency"): once Redis answers again after a hang, no
//! replica serves a value older than an acknowledged write for more than 1 s; a read on
//! another replica sees a write within 100 ms (p99); a strong read is never stale.

use std::time::Duration;

use agentic_e2e::{
    Harness, Options, UserFixture, UserService, create_user, get_user as get, rename, slug,
};
use agentic_platform::cache::{Cache, KindSpec, ScopedKey};
use agentic_platform::config::CacheArgs;
use agentic_platform::testsuite::RedisServer;
use agentic_proto::user::v1 as pb;
use tokio::time::Instant;

async fn name_on(client: &mut agentic_e2e::UserClient, id: &str) -> String {
    client
        .get_user(get(id))
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user")
        .display_name
}

#[tokio::test]
async fn a_write_during_a_redis_hang_is_seen_everywhere_within_a_second_of_redis_answering() {
    let redis = RedisServer::start().await;
    let options = Options {
        redis_url: Some(redis.url.clone()),
        ..Options::default()
    };
    let harness = Harness::start_with(options.clone()).await;
    let (db_url, prefix) = (harness.db.url.clone(), harness.db.name.clone());
    let (tenant, mut on_a) = harness.service.tenant(&slug("hang")).await;
    let user = create_user(&mut on_a, "hang@example.com").await;
    let replica_b = UserService::start_on(&db_url, &prefix, &options).await;
    let mut on_b = replica_b
        .client(Some(&replica_b.token(tenant, "admin")))
        .await;
    for _ in 0..3 {
        // Warm both levels: B's L1 and Redis hold the user.
        assert_eq!(name_on(&mut on_b, &user.id).await, user.display_name);
        assert_eq!(name_on(&mut on_a, &user.id).await, user.display_name);
    }

    redis.pause();
    on_a.update_user(rename(&user.id, "Renamed during the hang"))
        .await
        .expect("the write succeeds without redis");
    assert_eq!(
        name_on(&mut on_a, &user.id).await,
        "Renamed during the hang",
        "the writer reads its own write"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        name_on(&mut on_b, &user.id).await,
        "Renamed during the hang",
        "a replica that hears no heartbeat does not trust its L1"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.resume();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let replica_c = UserService::start_on(&db_url, &prefix, &options).await;
    let mut on_c = replica_c
        .client(Some(&replica_c.token(tenant, "admin")))
        .await;
    for (replica, client) in [("A", &mut on_a), ("B", &mut on_b), ("C", &mut on_c)] {
        assert_eq!(
            name_on(client, &user.id).await,
            "Renamed during the hang",
            "replica {replica}, 1 s after redis answers again"
        );
    }
}

fn stamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

#[tokio::test]
async fn a_load_that_read_the_old_row_cannot_store_it_after_the_invalidation() {
    let redis = RedisServer::start().await;
    let mut args = CacheArgs::with_redis(Some(redis.url.clone()));
    args.cache_key_prefix = format!("race-{}", uuid::Uuid::new_v4().simple());
    let kind = KindSpec::new("thing");
    let (replica_a, replica_b) = (Cache::new(&args, "race"), Cache::new(&args, "race"));

    // B reads the old row (1) from the database, and is held there...
    let (loading, loaded) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let load_on_b = tokio::spawn({
        let replica_b = replica_b.clone();
        async move {
            let kind = replica_b.kind(&kind);
            replica_b
                .get_or_load(&kind, "k", || async move {
                    let _ = loading.send(());
                    let _ = released.await;
                    Ok(Some(stamp(1)))
                })
                .await
        }
    });
    loaded.await.expect("B is loading");
    // ...while A commits row 2 and invalidates...
    replica_a
        .invalidate(&[(&replica_a.kind(&kind), "k".to_owned())])
        .await;
    // ...and only then does B's load finish and try to store the old row.
    release.send(()).expect("release B");
    let seen_by_b = load_on_b.await.expect("task").expect("load");
    assert_eq!(seen_by_b, Some(stamp(1)), "B's read began before the write");

    let replica_c = Cache::new(&args, "race");
    let on_c = replica_c
        .get_or_load(&replica_c.kind(&kind), "k", || async { Ok(Some(stamp(2))) })
        .await
        .expect("load");
    assert_eq!(on_c, Some(stamp(2)), "redis does not hold the old row");

    let mut on_b = None;
    for _ in 0..50 {
        on_b = replica_b
            .get_or_load(&replica_b.kind(&kind), "k", || async { Ok(Some(stamp(2))) })
            .await
            .expect("load");
        if on_b == Some(stamp(2)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(on_b, Some(stamp(2)), "B's L1 dropped the old row too");
}

fn strong(request: pb::GetUserRequest) -> tonic::Request<pb::GetUserRequest> {
    let mut request = tonic::Request::new(request);
    request
        .metadata_mut()
        .insert("x-read-consistency", "strong".parse().expect("ascii"));
    request
}

#[tokio::test]
async fn another_replica_sees_a_write_within_the_stated_bound_and_strong_reads_never_lag() {
    let harness = Harness::start().await;
    let (tenant, mut on_a) = harness.service.tenant(&slug("lag")).await;
    let user = create_user(&mut on_a, "lag@example.com").await;
    let replica_b =
        UserService::start_on(&harness.db.url, &harness.db.name, &Options::default()).await;
    let mut on_b = replica_b
        .client(Some(&replica_b.token(tenant, "admin")))
        .await;

    let mut lags = Vec::new();
    for round in 0..200 {
        let name = format!("Round {round}");
        // B holds the previous name in its L1.
        name_on(&mut on_b, &user.id).await;
        on_a.update_user(rename(&user.id, name.clone()))
            .await
            .expect("update");
        let written = Instant::now();
        while name_on(&mut on_b, &user.id).await != name {
            assert!(
                written.elapsed() < Duration::from_secs(5),
                "B never saw {name}"
            );
        }
        lags.push(written.elapsed());
    }
    lags.sort();
    let p99 = lags[lags.len() * 99 / 100];
    eprintln!(
        "cross-replica lag: p50 {:?}, p99 {p99:?}",
        lags[lags.len() / 2]
    );
    assert!(p99 < Duration::from_millis(100), "p99 lag {p99:?}");

    for round in 0..100 {
        let name = format!("Strong {round}");
        name_on(&mut on_b, &user.id).await;
        on_a.update_user(rename(&user.id, name.clone()))
            .await
            .expect("update");
        let read = on_b
            .get_user(strong(get(&user.id)))
            .await
            .expect("strong get")
            .into_inner()
            .user
            .expect("user");
        assert_eq!(
            read.display_name, name,
            "a strong read right after the write"
        );
    }
}

/// Loads `key` of `tenant` through `cache`, counting loads in `loads`; the value is `value`.
async fn load_counting(
    cache: &Cache,
    kind: &KindSpec,
    key: ScopedKey<&str>,
    value: i64,
    loads: &std::sync::atomic::AtomicUsize,
) -> prost_types::Timestamp {
    cache
        .get_or_load(&cache.kind(kind), key, || async {
            loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Some(stamp(value)))
        })
        .await
        .expect("load")
        .expect("present")
}

#[tokio::test]
async fn a_tenant_wide_invalidation_drops_every_entry_of_the_tenant_on_every_replica() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let redis = RedisServer::start().await;
    let mut args = CacheArgs::with_redis(Some(redis.url.clone()));
    args.cache_key_prefix = format!("ns-{}", uuid::Uuid::new_v4().simple());
    let by_id = KindSpec::new("thing").in_namespace("things");
    let by_name = KindSpec::new("thing_by_name").in_namespace("things");
    let (replica_a, replica_b) = (Cache::new(&args, "ns"), Cache::new(&args, "ns"));
    let (tenant, other_tenant) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let keys = [(&by_id, "1"), (&by_id, "2"), (&by_name, "one")];

    // Both replicas cache three entries of the tenant and one of another tenant.
    let loads = AtomicUsize::new(0);
    for cache in [&replica_a, &replica_b] {
        for (kind, key) in keys {
            load_counting(cache, kind, ScopedKey(tenant, key), 1, &loads).await;
        }
        load_counting(cache, &by_id, ScopedKey(other_tenant, "1"), 1, &loads).await;
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        4,
        "B read A's loads from redis"
    );
    for (kind, key) in keys {
        load_counting(&replica_b, kind, ScopedKey(tenant, key), 1, &loads).await;
    }
    assert_eq!(loads.load(Ordering::SeqCst), 4, "cached");

    let mut conn = redis::Client::open(redis.url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .expect("resetstat");
    replica_a.invalidate_scope("things", tenant).await;

    // Every entry of the tenant reloads on both replicas, with the new value...
    let reloads = AtomicUsize::new(0);
    for (name, cache) in [("A", &replica_a), ("B", &replica_b)] {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let seen = load_counting(cache, &by_id, ScopedKey(tenant, "1"), 2, &reloads).await;
            if seen == stamp(2) || Instant::now() > deadline {
                assert_eq!(seen, stamp(2), "replica {name} reloads after the bump");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for (kind, key) in &keys[1..] {
            let seen = load_counting(cache, kind, ScopedKey(tenant, key), 2, &reloads).await;
            assert_eq!(seen, stamp(2), "replica {name}, {key}");
        }
        // ...while another tenant's entry stays cached.
        let seen = load_counting(cache, &by_id, ScopedKey(other_tenant, "1"), 2, &reloads).await;
        assert_eq!(
            seen,
            stamp(1),
            "replica {name}: the other tenant is untouched"
        );
    }
    assert_eq!(
        reloads.load(Ordering::SeqCst),
        3,
        "the first replica's reloads are stored for the second"
    );

    // One script call did it: no key was enumerated.
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("info");
    for command in ["cmdstat_keys:", "cmdstat_scan:"] {
        assert!(!stats.contains(command), "{command} was used:\n{stats}");
    }
    assert!(stats.contains("cmdstat_evalsha:"), "the bump ran:\n{stats}");
}

#[tokio::test]
async fn a_tenant_wide_invalidation_works_without_redis() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let cache = Cache::new(&CacheArgs::with_redis(None), "ns");
    let kind = KindSpec::new("thing").in_namespace("things");
    let tenant = uuid::Uuid::now_v7();
    let loads = AtomicUsize::new(0);
    load_counting(&cache, &kind, ScopedKey(tenant, "1"), 1, &loads).await;
    load_counting(&cache, &kind, ScopedKey(tenant, "1"), 1, &loads).await;
    assert_eq!(loads.load(Ordering::SeqCst), 1, "cached in process");

    cache.invalidate_scope("things", tenant).await;
    let seen = load_counting(&cache, &kind, ScopedKey(tenant, "1"), 2, &loads).await;
    assert_eq!(seen, stamp(2));

    cache
        .invalidate(&[(&cache.kind(&kind), ScopedKey(tenant, "1"))])
        .await;
    let seen = load_counting(&cache, &kind, ScopedKey(tenant, "1"), 3, &loads).await;
    assert_eq!(
        seen,
        stamp(3),
        "one key of a namespace is dropped alone too"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 3);
}
