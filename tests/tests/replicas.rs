//! Read replicas with read-your-writes, against a real streaming replica that each test
//! starts (a primary of its own and a hot standby, `scripts/infra.sh cluster`): replay
//! paused, the replica killed and restarted, reads counted on each database.

use std::future::Future;
use std::time::Duration;

use agentic_agent::AgentApp;
use agentic_conversation::ConversationApp;
use agentic_e2e::agent::{AgentFixture, AgentService, agent, create_agent, mask};
use agentic_e2e::conversation::{ConversationService, Suite};
use agentic_e2e::{UserFixture, UserService, create_user, get_user, rename, slug};
use agentic_platform::auth::roles;
use agentic_platform::db::Pool;
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{Options, ReplicatedCluster, TestDatabase};
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::conversation::v1 as pb;
use agentic_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use agentic_proto::user::v1 as user_pb;
use agentic_user::UserApp;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tonic::Code;

/// A database for `S` on the cluster's primary, once the replica has it too.
async fn replicated_database<S: ServiceType>(cluster: &ReplicatedCluster) -> TestDatabase {
    let db = TestDatabase::create_on(&cluster.admin_url(), S::SPEC.name, S::MIGRATIONS).await;
    cluster.wait_for_replay().await;
    db
}

/// Service settings reading from the cluster's replica of `db`.
fn on_replica(cluster: &ReplicatedCluster, db: &TestDatabase, cache_enabled: bool) -> Options {
    Options {
        replica_urls: vec![cluster.replica_url(&db.name)],
        cache_enabled,
        ..Options::default()
    }
}

/// Waits (up to 10 s) until `pool`'s replica serves reads.
async fn replica_serving(pool: &Pool) {
    for _ in 0..500 {
        if pool.replicas_serving() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the replica never started serving reads");
}

/// The queries `read` sent to (primary, replica) of `pool`.
async fn counted<T>(pool: &Pool, read: impl Future<Output = T>) -> ((u64, u64), T) {
    let before = (pool.queries(), pool.replica_queries());
    let out = read.await;
    let after = (pool.queries(), pool.replica_queries());
    ((after.0 - before.0, after.1 - before.1), out)
}

fn list_users() -> user_pb::ListUsersRequest {
    user_pb::ListUsersRequest::default()
}

fn names(response: user_pb::ListUsersResponse) -> Vec<String> {
    response.users.into_iter().map(|u| u.display_name).collect()
}

#[tokio::test]
async fn a_write_is_read_back_from_the_primary_while_the_replica_lags_then_from_the_replica() {
    let cluster = ReplicatedCluster::start().await;
    let db = replicated_database::<UserApp>(&cluster).await;
    // No cache: every read below reaches a database, so where it went is counted.
    let options = on_replica(&cluster, &db, false);
    let writer = UserService::start_on(&db.url, &db.name, &options).await;
    let other = UserService::start_on(&db.url, &db.name, &options).await;
    replica_serving(&writer.pool).await;
    replica_serving(&other.pool).await;

    let (tenant, mut admin) = writer.tenant(&slug("ryw")).await;
    let user = create_user(&mut admin, "ryw@example.com").await;
    let (quiet_tenant, mut quiet_admin) = writer.tenant(&slug("quiet")).await;
    create_user(&mut quiet_admin, "quiet@example.com").await;
    let mut admin_elsewhere = other.client(Some(&other.token(tenant, roles::ADMIN))).await;
    let mut quiet_elsewhere = other
        .client(Some(&other.token(quiet_tenant, roles::ADMIN)))
        .await;
    cluster.wait_for_replay().await;

    cluster.pause_replay().await;
    let updated = admin
        .update_user(rename(&user.id, "Renamed while replay is paused"))
        .await
        .expect("update");
    let announced = updated
        .metadata()
        .get("x-min-lsn")
        .expect("the write answers with its WAL position")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(announced.contains('/'), "{announced}");

    // The same scope, from the writer's process and from another: the primary serves.
    let ((primary, replica), listed) = counted(&writer.pool, admin.list_users(list_users())).await;
    assert_eq!(
        names(listed.expect("list").into_inner()),
        ["Renamed while replay is paused"]
    );
    assert_eq!((primary, replica), (1, 0), "the writer read the primary");
    let ((primary, replica), listed) =
        counted(&other.pool, admin_elsewhere.list_users(list_users())).await;
    assert_eq!(
        names(listed.expect("list").into_inner()),
        ["Renamed while replay is paused"]
    );
    assert_eq!(
        (primary, replica),
        (1, 0),
        "another process read the primary"
    );
    let got = admin_elsewhere
        .get_user(get_user(&user.id))
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(got.display_name, "Renamed while replay is paused");

    // Another scope has nothing unreplayed: the replica serves it, paused or not.
    let ((primary, replica), listed) =
        counted(&other.pool, quiet_elsewhere.list_users(list_users())).await;
    assert_eq!(names(listed.expect("list").into_inner()).len(), 1);
    assert_eq!(
        (primary, replica),
        (0, 1),
        "another tenant read the replica"
    );

    // Replay resumed and caught up: the scope's reads go back to the replica.
    cluster.resume_replay().await;
    cluster.wait_for_replay().await;
    let mut back_on_replica = false;
    for _ in 0..250 {
        let ((primary, replica), listed) =
            counted(&other.pool, admin_elsewhere.list_users(list_users())).await;
        assert_eq!(
            names(listed.expect("list").into_inner()),
            ["Renamed while replay is paused"]
        );
        if (primary, replica) == (0, 1) {
            back_on_replica = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        back_on_replica,
        "reads of the scope returned to the replica"
    );
}

#[tokio::test]
async fn a_caller_passing_x_min_lsn_is_served_only_by_a_database_that_far() {
    let cluster = ReplicatedCluster::start().await;
    let db = replicated_database::<UserApp>(&cluster).await;
    let options = on_replica(&cluster, &db, false);
    let service = UserService::start_on(&db.url, &db.name, &options).await;
    replica_serving(&service.pool).await;
    let (tenant, mut admin) = service.tenant(&slug("floor")).await;
    create_user(&mut admin, "floor@example.com").await;
    cluster.wait_for_replay().await;
    cluster.pause_replay().await;

    // A write in another tenant moves the primary on; this tenant announced nothing.
    let (_, mut elsewhere) = service.tenant(&slug("elsewhere")).await;
    let written = elsewhere
        .create_user(agentic_e2e::new_user("moves@example.com"))
        .await
        .expect("create");
    let position = written
        .metadata()
        .get("x-min-lsn")
        .expect("position")
        .clone();

    let mut plain = service
        .client(Some(&service.token(tenant, roles::ADMIN)))
        .await;
    let ((primary, replica), _) = counted(&service.pool, plain.list_users(list_users())).await;
    assert_eq!(
        (primary, replica),
        (0, 1),
        "nothing asked: the replica serves"
    );

    let mut asking = tonic::Request::new(list_users());
    asking.metadata_mut().insert("x-min-lsn", position);
    let ((primary, replica), _) = counted(&service.pool, plain.list_users(asking)).await;
    assert_eq!(
        (primary, replica),
        (1, 0),
        "the caller's position: the primary serves"
    );

    let mut malformed = tonic::Request::new(list_users());
    malformed
        .metadata_mut()
        .insert("x-min-lsn", "yesterday".parse().expect("ascii"));
    let refused = plain.list_users(malformed).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("x-min-lsn"), "{refused:?}");
    cluster.resume_replay().await;
}

#[tokio::test]
async fn a_cache_miss_after_a_write_never_caches_the_replicas_older_row() {
    let cluster = ReplicatedCluster::start().await;
    let db = replicated_database::<UserApp>(&cluster).await;
    let options = on_replica(&cluster, &db, true);
    let writer = UserService::start_on(&db.url, &db.name, &options).await;
    let reader = UserService::start_on(&db.url, &db.name, &options).await;
    replica_serving(&reader.pool).await;
    let (tenant, mut admin) = writer.tenant(&slug("cached")).await;
    let user = create_user(&mut admin, "cached@example.com").await;
    cluster.wait_for_replay().await;
    cluster.pause_replay().await;

    admin
        .update_user(rename(&user.id, "After the write"))
        .await
        .expect("update");
    // The reader's first read misses both cache levels and loads from a database.
    let mut reader_admin = reader
        .client(Some(&reader.token(tenant, roles::ADMIN)))
        .await;
    let ((primary, replica), got) =
        counted(&reader.pool, reader_admin.get_user(get_user(&user.id))).await;
    let got = got.expect("get").into_inner().user.expect("user");
    assert_eq!(got.display_name, "After the write");
    assert_eq!((primary, replica), (1, 0), "the load read the primary");

    // What the cache now holds is the new row, in this process and in Redis.
    for client in [&mut reader_admin, &mut admin] {
        let again = client
            .get_user(get_user(&user.id))
            .await
            .expect("get")
            .into_inner()
            .user
            .expect("user");
        assert_eq!(again.display_name, "After the write");
    }
    // The replica still has the old row: it was never what the cache was given.
    let mut direct = AsyncPgConnection::establish(&cluster.replica_url(&db.name))
        .await
        .expect("connect to the replica");
    let old = old_name(&mut direct, &user.id).await;
    assert_eq!(
        old, user.display_name,
        "the replica had not replayed the write"
    );
    cluster.resume_replay().await;
}

/// The display name the replica holds for `id`.
async fn old_name(conn: &mut AsyncPgConnection, id: &str) -> String {
    use diesel::QueryableByName;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        display_name: String,
    }
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT display_name FROM users.users WHERE id = '{id}'"
    ))
    .load(conn)
    .await
    .expect("read the replica");
    rows.into_iter().next().expect("the user").display_name
}

#[tokio::test]
async fn a_conversation_sees_an_agent_update_made_through_the_agent_service_moments_before() {
    let cluster = ReplicatedCluster::start().await;
    let agent_db = replicated_database::<AgentApp>(&cluster).await;
    let user_db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
    let conversation_db =
        TestDatabase::create(ConversationApp::SPEC.name, ConversationApp::MIGRATIONS).await;
    let users = UserService::start_on(&user_db.url, &user_db.name, &Options::default()).await;
    let agents = AgentService::start_on(
        &agent_db.url,
        &agent_db.name,
        &on_replica(&cluster, &agent_db, true),
    )
    .await;
    replica_serving(&agents.pool).await;
    let conversations: ConversationService = Suite::start_conversations(
        &conversation_db,
        &format!("http://{}", users.addr),
        &format!("http://{}", agents.addr),
    )
    .await;

    let (tenant, mut user_admin) = users.tenant(&slug("xsvc")).await;
    let user = create_user(&mut user_admin, "xsvc@example.com").await;
    let mut agent_admin = agents.client_as(tenant, roles::ADMIN).await;
    let created = create_agent(&mut agent_admin, agent("xsvc-agent", "m")).await;
    let conversation_token = conversations.token(tenant, roles::ADMIN);
    let mut conversation_admin = ConversationServiceClient::new(
        conversations
            .bearer_channel(Some(&conversation_token))
            .await,
    );
    let request = pb::CreateConversationRequest {
        request_id: String::new(),
        agent_id: created.id.clone(),
        user_id: user.id.clone(),
        title: "before".into(),
        metadata: None,
    };
    conversation_admin
        .create_conversation(request.clone())
        .await
        .expect("an active agent takes conversations");
    cluster.wait_for_replay().await;

    cluster.pause_replay().await;
    agent_admin
        .update_agent(agent_pb::UpdateAgentRequest {
            agent: Some(agent_pb::Agent {
                id: created.id.clone(),
                status: agent_pb::AgentStatus::Paused as i32,
                ..Default::default()
            }),
            update_mask: mask(&["status"]),
        })
        .await
        .expect("pause the agent");
    // The conversation service asks the agent service, whose replica still has the
    // agent active: the announced position sends that read to the primary.
    let refused = conversation_admin
        .create_conversation(request)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("agent"), "{refused:?}");
    cluster.resume_replay().await;
}

#[tokio::test]
async fn a_killed_replica_fails_no_read_and_takes_reads_back_when_it_returns() {
    let cluster = ReplicatedCluster::start().await;
    let db = replicated_database::<UserApp>(&cluster).await;
    let service = UserService::start_on(&db.url, &db.name, &on_replica(&cluster, &db, false)).await;
    replica_serving(&service.pool).await;
    let (tenant, mut admin) = service.tenant(&slug("kill")).await;
    create_user(&mut admin, "kill@example.com").await;
    cluster.wait_for_replay().await;

    // Readers in a tenant with nothing unreplayed: they read the replica.
    let token = service.token(tenant, roles::ADMIN);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut readers = Vec::new();
    for _ in 0..4 {
        let mut client = service.client(Some(&token)).await;
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            while !stop.is_cancelled() {
                match client.list_users(list_users()).await {
                    Ok(listed) if listed.get_ref().users.len() == 1 => ok += 1,
                    Ok(listed) => failed.push(format!("{} users", listed.get_ref().users.len())),
                    Err(status) => failed.push(format!("{status:?}")),
                }
            }
            (ok, failed)
        }));
    }
    let on_replica_before = service.pool.replica_queries();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        service.pool.replica_queries() > on_replica_before,
        "the readers read the replica"
    );

    cluster.kill_replica();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        service.pool.replicas_serving(),
        0,
        "the dead replica is out"
    );
    let primary_before = service.pool.queries();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        service.pool.queries() > primary_before,
        "the primary serves the reads meanwhile"
    );

    cluster.restart_replica().await;
    replica_serving(&service.pool).await;
    let replica_before = service.pool.replica_queries();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        service.pool.replica_queries() > replica_before,
        "reads went back to the replica"
    );

    // What operators watch: reads by target, fallbacks by reason, the replica's standing
    // and lag, registered for the pool and its replica.
    let (_, page) = service.admin_get("/metrics").await;
    for series in [
        r#"db_reads_total{pool="user",target="replica"}"#,
        r#"db_reads_total{pool="user",target="primary"}"#,
        r#"db_replica_fallbacks_total{pool="user",reason="down"}"#,
        r#"db_replica_fallbacks_total{pool="user",reason="behind"}"#,
        r#"db_replica_up{pool="user",replica="user-replica-1"}"#,
        r#"db_replica_quarantined{pool="user",replica="user-replica-1"}"#,
        r#"db_replica_lag_seconds{pool="user",replica="user-replica-1"}"#,
        r#"db_replica_lag_bytes{pool="user",replica="user-replica-1"}"#,
        r#"db_queries_total{pool="user-replica-1"}"#,
    ] {
        assert!(page.contains(series), "{series} is not scraped");
    }
    assert!(
        agentic_e2e::metric_sum(&page, "db_reads_total", &["target=\"replica\""]) > 0.0,
        "replica reads are counted"
    );

    stop.cancel();
    let mut served = 0;
    for reader in readers {
        let (ok, failed) = reader.await.expect("reader");
        assert!(failed.is_empty(), "failed reads: {failed:?}");
        served += ok;
    }
    assert!(served > 0);
}

#[tokio::test]
async fn a_replica_lagging_past_its_bound_is_out_of_reads_until_it_catches_up() {
    let cluster = ReplicatedCluster::start().await;
    let db = replicated_database::<UserApp>(&cluster).await;
    let options = on_replica(&cluster, &db, false);
    let mut args = options.service_args(&db.url, &db.name);
    args.database.db_replica_max_lag_bytes = 256 * 1024;
    let service = UserService::start_with_args(args, options.own_args::<UserApp>()).await;
    service
        .wait_for(tonic_health::pb::health_check_response::ServingStatus::Serving)
        .await;
    replica_serving(&service.pool).await;
    let (_, mut admin) = service.tenant(&slug("lagging")).await;
    create_user(&mut admin, "lagging@example.com").await;
    cluster.wait_for_replay().await;

    // A megabyte or so of WAL the paused replica does not replay: past its byte bound.
    cluster.pause_replay().await;
    db.execute("CREATE TABLE public.ballast AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 10000) g")
        .await;
    let mut quarantined = false;
    for _ in 0..250 {
        let (_, page) = service.admin_get("/metrics").await;
        if agentic_e2e::metric_sum(&page, "db_replica_quarantined", &["user-replica-1"]) == 1.0 {
            quarantined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(quarantined, "the lagging replica was quarantined");
    assert_eq!(service.pool.replicas_serving(), 0);
    // A tenant with nothing unreplayed still reads the primary: the replica is out.
    let ((primary, replica), listed) = counted(&service.pool, admin.list_users(list_users())).await;
    assert_eq!(names(listed.expect("list").into_inner()).len(), 1);
    assert_eq!((primary, replica), (1, 0));

    cluster.resume_replay().await;
    replica_serving(&service.pool).await;
    let ((primary, replica), _) = counted(&service.pool, admin.list_users(list_users())).await;
    assert_eq!(
        (primary, replica),
        (0, 1),
        "caught up, the replica serves again"
    );
}
