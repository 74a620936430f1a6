//! Rate limits: one budget per key across replicas (real Redis, real gRPC), exact at the
//! limit, smooth across window edges, per method and per tenant, changed at run time by
//! a tenant's plan, in shadow mode, for sign-in failures per account, counted once across
//! services, failing open when Redis stops, and described on every response.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agentic_e2e::conversation::{Suite, new_conversation};
use agentic_e2e::{UserFixture, UserService, metric_sum, slug, violated_fields};
use agentic_platform::auth::roles;
use agentic_platform::ratelimit::RateLimitArgs;
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{Options, RedisServer, TestDatabase};
use agentic_proto::user::v1 as pb;
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use agentic_user::UserApp;
use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic_types::StatusExt;
use uuid::Uuid;

/// Rate limits on, from `flags` (`--rate-limit-per-minute 30`, ...).
fn limits(flags: &[&str]) -> RateLimitArgs {
    agentic_platform::config::from_flags(flags)
}

/// A rules file of `toml` in a fresh temporary folder.
fn rules_file(toml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rules-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("rules.toml");
    std::fs::write(&path, toml).expect("write rules");
    path
}

/// Limits from a rules file of `toml`.
fn with_rules(toml: &str) -> RateLimitArgs {
    RateLimitArgs {
        rate_limit_rules: Some(rules_file(toml)),
        ..limits(&[])
    }
}

/// `replicas` user services on one database, sharing Redis (one key prefix).
async fn user_replicas(limits: RateLimitArgs, replicas: usize) -> (TestDatabase, Vec<UserService>) {
    let db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
    let options = Options {
        rate_limits: limits,
        ..Options::default()
    };
    let mut services = Vec::new();
    for _ in 0..replicas {
        services.push(UserService::start_on(&db.url, &db.name, &options).await);
    }
    (db, services)
}

/// A client of `service` acting as the user `user` of `tenant`.
async fn as_user(
    service: &UserService,
    tenant: Uuid,
    user: Uuid,
) -> UserServiceClient<agentic_platform::testsuite::BearerChannel> {
    let token = service.user_token(&user.to_string(), tenant, roles::ADMIN);
    service.client(Some(&token)).await
}

async fn list(
    client: &mut UserServiceClient<agentic_platform::testsuite::BearerChannel>,
) -> Result<MetadataMap, tonic::Status> {
    client
        .list_users(pb::ListUsersRequest::default())
        .await
        .map(|response| response.metadata().clone())
}

fn header(metadata: &MetadataMap, name: &str) -> String {
    metadata
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} in {metadata:?}"))
        .to_owned()
}

fn number(metadata: &MetadataMap, name: &str) -> u64 {
    header(metadata, name).parse().expect("a number")
}

/// `limit + 20` calls of one user, alternating between `replicas`: how many passed.
async fn passed_of_limit_plus_20(limit: usize, replicas: usize) -> usize {
    let per_minute = limit.to_string();
    let (_db, services) =
        user_replicas(limits(&["--rate-limit-per-minute", &per_minute]), replicas).await;
    let (tenant, user) = (Uuid::now_v7(), Uuid::now_v7());
    let mut clients = Vec::new();
    for service in &services {
        clients.push(as_user(service, tenant, user).await);
    }
    let mut passed = 0;
    for call in 0..limit + 20 {
        match list(&mut clients[call % replicas]).await {
            Ok(_) => passed += 1,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        }
    }
    passed
}

#[tokio::test]
async fn a_limit_of_n_lets_exactly_n_through_over_two_replicas_round_robin() {
    // 30 a minute: grants of up to three tokens; 200: batches of up to 25 spent locally.
    for limit in [30, 200] {
        assert_eq!(
            passed_of_limit_plus_20(limit, 2).await,
            limit,
            "limit {limit}"
        );
        assert_eq!(
            passed_of_limit_plus_20(limit, 1).await,
            limit,
            "limit {limit}"
        );
    }
}

#[tokio::test]
async fn remaining_counts_down_by_one_while_tokens_are_spent_locally() {
    let (_db, replicas) = user_replicas(limits(&["--rate-limit-per-minute", "100"]), 1).await;
    let mut client = as_user(&replicas[0], Uuid::now_v7(), Uuid::now_v7()).await;
    let mut remaining = Vec::new();
    for _ in 0..40 {
        let metadata = list(&mut client).await.expect("within the limit");
        remaining.push(number(&metadata, "x-ratelimit-remaining"));
    }
    let expected: Vec<u64> = (60..100).rev().collect();
    assert_eq!(remaining, expected);
}

#[tokio::test]
async fn remaining_counts_down_by_one_and_calls_pass_again_after_the_announced_reset() {
    let rules = with_rules(
        "[[rules]]\nname = \"burst\"\nkey = \"user\"\nwindows = [{ limit = 5, per = \"second\" }]\n",
    );
    let (_db, replicas) = user_replicas(rules, 1).await;
    let mut client = as_user(&replicas[0], Uuid::now_v7(), Uuid::now_v7()).await;
    // A first call pays for connections and a cold cache; on a busy machine it can take
    // longer than the window, and the burst would straddle two. Its grant leaves the
    // window before the burst starts.
    list(&mut client).await.expect("a first call");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let metadata = list(&mut client).await.expect("within the limit");
        assert_eq!(number(&metadata, "x-ratelimit-limit"), 5);
        remaining.push(number(&metadata, "x-ratelimit-remaining"));
    }
    assert_eq!(remaining, [4, 3, 2, 1, 0]);

    let status = list(&mut client).await.expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(number(status.metadata(), "x-ratelimit-remaining"), 0);
    let details = status.get_error_details();
    let retry = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_secs(1),
        "{retry:?}"
    );
    let quota = details.quota_failure().expect("QuotaFailure");
    assert!(quota.violations[0].subject.starts_with("user:"));
    assert!(quota.violations[0].description.contains("burst"));
    assert_eq!(
        details.error_info().expect("ErrorInfo").reason,
        "RATE_LIMIT_EXCEEDED"
    );
    let pushback: u64 = header(status.metadata(), "grpc-retry-pushback-ms")
        .parse()
        .unwrap();
    assert_eq!(Duration::from_millis(pushback), retry);

    let reset = number(status.metadata(), "x-ratelimit-reset");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset >= now && reset <= now + 2, "reset {reset}, now {now}");
    tokio::time::sleep(retry + Duration::from_millis(50)).await;
    list(&mut client)
        .await
        .expect("passes again after the retry delay");
}

#[tokio::test]
async fn at_twice_the_rate_no_window_lets_more_than_the_limit_through() {
    let rules = with_rules(
        "[[rules]]\nname = \"pace\"\nkey = \"user\"\nwindows = [{ limit = 10, per = \"second\" }]\n",
    );
    let (_db, replicas) = user_replicas(rules, 1).await;
    let mut client = as_user(&replicas[0], Uuid::now_v7(), Uuid::now_v7()).await;
    let start = Instant::now();
    // Each accepted call's (sent, answered): the server decided it in between.
    let mut accepted_at = Vec::new();
    // 20 calls a second for three seconds.
    for call in 0..60u32 {
        let due = start + Duration::from_millis(50) * call;
        tokio::time::sleep_until(due.into()).await;
        let sent = Instant::now();
        if list(&mut client).await.is_ok() {
            accepted_at.push((sent, Instant::now()));
        }
    }
    // Calls answered less than a second after another was sent were decided less than a
    // second apart: wherever a one-second stretch starts, it holds at most ten of them.
    for (i, (first_sent, _)) in accepted_at.iter().enumerate() {
        let inside = accepted_at[i..]
            .iter()
            .take_while(|(_, answered)| {
                answered.duration_since(*first_sent) < Duration::from_secs(1)
            })
            .count();
        assert!(inside <= 10, "{inside} calls within a second of call {i}");
    }
    assert!(
        accepted_at.len() >= 20,
        "only {} accepted",
        accepted_at.len()
    );
}

#[tokio::test]
async fn per_method_and_per_tenant_rules_hold() {
    let rules = with_rules(
        "[[rules]]\nname = \"tenant-lists\"\nkey = \"tenant\"\nmethods = [\"ListUsers\"]\n\
         windows = [{ limit = 8, per = \"minute\" }]\n",
    );
    let (_db, replicas) = user_replicas(rules, 1).await;
    let tenant = Uuid::now_v7();
    let mut a = as_user(&replicas[0], tenant, Uuid::now_v7()).await;
    let mut b = as_user(&replicas[0], tenant, Uuid::now_v7()).await;
    let mut passed = 0;
    for _ in 0..5 {
        passed += usize::from(list(&mut a).await.is_ok());
        passed += usize::from(list(&mut b).await.is_ok());
    }
    assert_eq!(passed, 8, "the tenant's users share its budget");
    let mut other_tenant = as_user(&replicas[0], Uuid::now_v7(), Uuid::now_v7()).await;
    list(&mut other_tenant)
        .await
        .expect("another tenant has its own");
    // Other methods are not limited by the rule.
    let status = a
        .get_user(agentic_e2e::get_user(&Uuid::now_v7().to_string()))
        .await
        .expect_err("no such user");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn health_and_reflection_are_never_limited() {
    let rules = with_rules(
        "[[rules]]\nname = \"tiny\"\nkey = \"address\"\nwindows = [{ limit = 2, per = \"hour\" }]\n",
    );
    let (_db, replicas) = user_replicas(rules, 1).await;
    let channel = replicas[0].channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let checks = (0..1000).map(|_| {
        let mut health = health.clone();
        async move {
            health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .map(|_| ())
        }
    });
    let results = futures::future::join_all(checks).await;
    assert!(results.iter().all(Result::is_ok));
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("still served");
    assert!(!replicas[0].reflected_services().await.is_empty());
}

#[tokio::test]
async fn counters_are_registered_before_the_first_rejection() {
    let (_db, replicas) = user_replicas(limits(&[]), 1).await;
    let (_, page) = replicas[0].admin_get("/metrics").await;
    for rule in ["per-user", "expensive", "sign-in", "anonymous"] {
        assert!(
            page.lines()
                .any(|l| l.starts_with("ratelimit_decisions_total")
                    && l.contains(&format!("rule=\"{rule}\""))
                    && l.contains("result=\"rejected\"")),
            "no counter for {rule}"
        );
    }
    let expensive = metric_sum(
        &page,
        "ratelimit_decisions_total",
        &["rule=\"expensive\"", "method=\"BatchCreateUsers\""],
    );
    assert_eq!(expensive, 0.0);
    assert!(!page.contains("method=\"GetUser\",rule=\"expensive\""));
    assert!(page.contains("ratelimit_fallback_active"));
}

#[tokio::test]
async fn shadow_mode_rejects_nothing_and_counts_what_it_would_have() {
    let (_db, replicas) = user_replicas(
        limits(&[
            "--rate-limit-per-minute",
            "3",
            "--rate-limit-mode",
            "shadow",
        ]),
        1,
    )
    .await;
    let user = Uuid::now_v7();
    let mut client = as_user(&replicas[0], Uuid::now_v7(), user).await;
    for _ in 0..10 {
        list(&mut client)
            .await
            .expect("shadow mode serves every call");
    }
    let (_, page) = replicas[0].admin_get("/metrics").await;
    let filters = [
        "service=\"user\"",
        "method=\"ListUsers\"",
        "rule=\"per-user\"",
        "result=\"shadow_rejected\"",
    ];
    assert!(metric_sum(&page, "ratelimit_decisions_total", &filters) >= 7.0);
}

async fn stored_plan(
    platform: &UserServiceClient<agentic_platform::testsuite::BearerChannel>,
    tenant: Uuid,
) -> pb::GetTenantRateLimitsResponse {
    platform
        .clone()
        .get_tenant_rate_limits(pb::GetTenantRateLimitsRequest {
            tenant_id: tenant.to_string(),
        })
        .await
        .expect("get")
        .into_inner()
}

#[tokio::test]
async fn a_plan_reaches_every_replica_within_five_seconds_and_a_bad_one_changes_nothing() {
    let (_db, replicas) = user_replicas(limits(&[]), 2).await;
    let platform = replicas[0]
        .client(Some(&replicas[0].platform_token()))
        .await;
    let (tenant, _) = replicas[0].tenant(&slug("plan")).await;
    let plan = pb::SetTenantRateLimitsRequest {
        tenant_id: tenant.to_string(),
        rules: vec![pb::RateLimitRule {
            name: "per-user".into(),
            key: "user".into(),
            methods: vec![],
            windows: vec![pb::RateLimitWindow {
                limit: 2,
                per: "minute".into(),
            }],
            mode: String::new(),
        }],
    };

    let mut bad = plan.clone();
    bad.rules[0].windows[0].per = "fortnight".into();
    bad.rules[0].key = "address".into();
    let status = platform
        .clone()
        .set_tenant_rate_limits(bad)
        .await
        .expect_err("a bad plan");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        ["rules[0].key", "rules[0].windows[0].per"]
    );
    let stored = stored_plan(&platform, tenant).await;
    assert!(stored.rules.is_empty(), "nothing changed");

    let user = Uuid::now_v7();
    let mut clients = [
        as_user(&replicas[0], tenant, user).await,
        as_user(&replicas[1], tenant, user).await,
    ];
    let set_at = Instant::now();
    platform
        .clone()
        .set_tenant_rate_limits(plan.clone())
        .await
        .expect("set");
    let stored = stored_plan(&platform, tenant).await;
    assert_eq!(stored.rules, plan.rules);
    // Each replica in turn, until both apply the plan's 2 a minute.
    for client in &mut clients {
        loop {
            assert!(
                set_at.elapsed() < Duration::from_secs(5),
                "not applied in 5 s"
            );
            if let Err(status) = list(client).await {
                assert_eq!(status.code(), Code::ResourceExhausted);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut other_user = as_user(&replicas[1], tenant, Uuid::now_v7()).await;
    let metadata = list(&mut other_user)
        .await
        .expect("another user has its own");
    assert!(header(&metadata, "ratelimit-policy").contains("\"per-user-minute\";q=2;w=60"));
}

#[tokio::test]
async fn the_eleventh_wrong_password_is_refused_from_any_address_and_others_are_unaffected() {
    let (_db, replicas) = user_replicas(limits(&[]), 1).await;
    let service = &replicas[0];
    let slug = slug("signin");
    let (_, mut admin) = service.tenant(&slug).await;
    for email in ["a@example.com", "b@example.com"] {
        admin
            .create_user(pb::CreateUserRequest {
                email: email.into(),
                display_name: "x".into(),
                password: "correct horse battery".into(),
                ..Default::default()
            })
            .await
            .expect("create");
    }
    let from = |address: &'static str| async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", service.addr))
            .unwrap()
            .local_address(Some(address.parse().unwrap()))
            .connect()
            .await
            .expect("connect");
        UserServiceClient::new(channel)
    };
    let mut clients = [from("127.0.0.1").await, from("127.0.0.2").await];
    let attempt = |email: &str, password: &str| pb::AuthenticateRequest {
        tenant_slug: slug.clone(),
        email: email.into(),
        password: password.into(),
    };
    for i in 0..10 {
        let status = clients[i % 2]
            .authenticate(attempt("a@example.com", "wrong password"))
            .await
            .expect_err("wrong");
        assert_eq!(status.code(), Code::Unauthenticated, "attempt {i}");
    }
    for client in &mut clients {
        let status = client
            .authenticate(attempt("a@example.com", "wrong password"))
            .await
            .expect_err("throttled");
        assert_eq!(status.code(), Code::ResourceExhausted);
        let quota = status
            .get_error_details()
            .quota_failure()
            .cloned()
            .expect("quota");
        assert_eq!(quota.violations[0].subject, "account");
    }
    let status = clients[0]
        .authenticate(attempt("b@example.com", "wrong password"))
        .await
        .expect_err("wrong");
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "another account is not throttled"
    );
    clients[1]
        .authenticate(attempt("b@example.com", "correct horse battery"))
        .await
        .expect("b signs in");
}

#[tokio::test]
async fn a_conversation_created_through_the_conversation_service_spends_the_budget_once() {
    let suite = Suite::start_with(Options {
        rate_limits: limits(&["--rate-limit-per-minute", "1000"]),
        ..Options::default()
    })
    .await;
    let slug = slug("hop");
    let tenant = suite.tenant(&slug).await;
    let user = Uuid::now_v7();
    let token = suite
        .conversations
        .user_token(&user.to_string(), tenant.id, roles::ADMIN);
    let mut client = agentic_proto::conversation::v1::conversation_service_client::ConversationServiceClient::new(
        suite.conversations.bearer_channel(Some(&token)).await,
    );
    let (_, before) = suite.users.admin_get("/metrics").await;
    let response = client
        .create_conversation(new_conversation(&tenant, "once"))
        .await
        .expect("create");
    assert_eq!(
        number(response.metadata(), "x-ratelimit-remaining"),
        999,
        "one call spent at the edge"
    );
    let (_, after) = suite.users.admin_get("/metrics").await;
    let counted = |page: &str, service: &str| {
        metric_sum(
            page,
            "ratelimit_decisions_total",
            &[&format!("service=\"{service}\""), "result=\"allowed\""],
        )
    };
    // The services share one metrics registry in this process.
    assert_eq!(
        counted(&after, "user"),
        counted(&before, "user"),
        "user hop counted"
    );
    assert_eq!(
        counted(&after, "agent"),
        counted(&before, "agent"),
        "agent hop counted"
    );

    // A client cannot claim to have been counted.
    let mut forged = agentic_proto::user::v1::user_service_client::UserServiceClient::new(
        suite.users.channel().await,
    );
    let mut request = tonic::Request::new(pb::ListUsersRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
        .metadata_mut()
        .insert("x-agentic-counted", "00".repeat(32).parse().unwrap());
    let response = forged.list_users(request).await.expect("list");
    assert!(
        response.metadata().get("x-ratelimit-remaining").is_some(),
        "counted"
    );
}

#[tokio::test]
async fn redis_stopped_then_killed_costs_no_errors_and_the_fallback_shows_it() {
    let mut redis = RedisServer::start().await;
    let db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
    let options = Options {
        redis_url: Some(redis.url.clone()),
        rate_limits: limits(&[
            "--rate-limit-per-minute",
            "100000",
            "--rate-limit-timeout",
            "30ms",
        ]),
        ..Options::default()
    };
    let service = UserService::start_on(&db.url, &db.name, &options).await;
    let mut client = as_user(&service, Uuid::now_v7(), Uuid::now_v7()).await;
    for _ in 0..5 {
        list(&mut client).await.expect("redis up");
    }
    let fallback =
        |page: &str| metric_sum(page, "ratelimit_fallback_active", &["service=\"user\""]);
    let (_, page) = service.admin_get("/metrics").await;
    assert_eq!(fallback(&page), 0.0);

    redis.pause();
    // Fresh users: each must be decided by Redis, or without it.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let mut fresh = as_user(&service, Uuid::now_v7(), Uuid::now_v7()).await;
        let started = Instant::now();
        list(&mut fresh)
            .await
            .expect("served while redis is stopped");
        slowest = slowest.max(started.elapsed());
    }
    // Not a speed target: only that nothing waits on the stopped Redis for long (the
    // cache's own timeout, 250 ms, bounds its part of the wait).
    assert!(
        slowest < Duration::from_secs(2),
        "a call waited {slowest:?}"
    );
    let (_, page) = service.admin_get("/metrics").await;
    assert_eq!(fallback(&page), 1.0);
    assert!(
        metric_sum(
            &page,
            "ratelimit_backend_errors_total",
            &["service=\"user\""]
        ) >= 3.0
    );

    redis.resume();
    redis.stop().await;
    for _ in 0..10 {
        let mut fresh = as_user(&service, Uuid::now_v7(), Uuid::now_v7()).await;
        list(&mut fresh).await.expect("served with redis gone");
    }
}

#[tokio::test]
async fn the_fields_parse_as_structured_fields() {
    let (_db, replicas) = user_replicas(limits(&[]), 1).await;
    let mut client = as_user(&replicas[0], Uuid::now_v7(), Uuid::now_v7()).await;
    let metadata = list(&mut client).await.expect("list");
    use sfv::{Item, List, ListEntry, Parser};
    let param = |item: &Item, name: &str| {
        item.params
            .iter()
            .find(|(key, _)| key.as_str() == name)
            .and_then(|(_, value)| value.as_integer())
            .map(i64::from)
    };
    let policy: List = Parser::new(&header(&metadata, "ratelimit-policy"))
        .parse()
        .expect("ratelimit-policy is an sf-list");
    let state: List = Parser::new(&header(&metadata, "ratelimit"))
        .parse()
        .expect("ratelimit is an sf-list");
    assert_eq!(policy.len(), 2, "per-user's minute and hour");
    assert_eq!(state.len(), 2);
    let mut names = Vec::new();
    for entry in &policy {
        let ListEntry::Item(item) = entry else {
            panic!("{entry:?}");
        };
        assert!(param(item, "q").is_some());
        assert!(param(item, "w").is_some());
        names.push(
            item.bare_item
                .as_string()
                .expect("a string")
                .as_str()
                .to_owned(),
        );
    }
    assert_eq!(names, ["per-user-minute", "per-user-hour"]);
    for entry in &state {
        let ListEntry::Item(item) = entry else {
            panic!("{entry:?}");
        };
        assert!(param(item, "r").is_some() && param(item, "t").is_some());
    }
    for name in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        let item: Item = Parser::new(&header(&metadata, name))
            .parse()
            .expect("an sf-item");
        assert!(item.bare_item.as_integer().is_some(), "{name}");
    }
}

#[tokio::test]
async fn remaining_far_from_the_limit_is_rounded_down_to_three_significant_digits() {
    let (_db, services) = user_replicas(
        limits(&[
            "--rate-limit-per-minute",
            "1000000000",
            "--rate-limit-per-hour",
            "2000000000",
        ]),
        1,
    )
    .await;
    let mut client = as_user(&services[0], Uuid::now_v7(), Uuid::now_v7()).await;
    for _ in 0..3 {
        let metadata = list(&mut client).await.expect("far from the limit");
        // 999,999,99x left of the minute's billion: never more than is left.
        assert_eq!(number(&metadata, "x-ratelimit-remaining"), 999_000_000);
        assert_eq!(number(&metadata, "x-ratelimit-limit"), 1_000_000_000);
        let state = header(&metadata, "ratelimit");
        assert!(
            state.contains("\"per-user-minute\";r=999000000;")
                && state.contains("\"per-user-hour\";r=1990000000;"),
            "{state}"
        );
    }
}
