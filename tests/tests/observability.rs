//! What an operator watches: the alert rules pass promtool's checks and unit tests, every
//! series a rule or a dashboard panel names is in a live scrape of the services, and the
//! seeds' metrics move by what traffic does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use agentic_e2e::conversation::{Suite, new_conversation};
use agentic_e2e::{local_tool, metric_sum, run_to_success, slug};
use agentic_platform::auth::roles;
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{Options, TestDatabase, TestService};
use agentic_proto::rag::v1 as rag_pb;
use agentic_proto::rag::v1::rag_service_client::RagServiceClient;
use agentic_rag::RagApp;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn observability(file: &str) -> PathBuf {
    root().join("deploy/observability").join(file)
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = observability("prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        run_to_success(
            std::process::Command::new(local_tool("promtool"))
                .args(&args)
                .current_dir(&dir),
            &format!("promtool {args:?}"),
        );
    }
}

/// Every PromQL expression of the alert rules and the dashboard.
fn expressions() -> Vec<String> {
    let rules: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(observability("prometheus/alerts.yml")).expect("alerts.yml"),
    )
    .expect("alerts.yml is YAML");
    let mut exprs: Vec<String> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules").clone())
        .map(|rule| rule["expr"].as_str().expect("expr").to_owned())
        .collect();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(observability("grafana/agentic.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    exprs
}

/// PromQL's functions, aggregations and operators: identifiers that are not metrics
/// (the grouping keywords are [`GROUPINGS`]).
const NOT_METRICS: &[&str] = &[
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "increase",
    "irate",
    "histogram_quantile",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
];

/// The grouping keywords whose parenthesised lists hold labels, not metrics.
const GROUPINGS: &[&str] = &[
    "by",
    "without",
    "ignoring",
    "on",
    "group_left",
    "group_right",
];

/// The metric names an expression reads: identifiers outside label matchers, grouping
/// lists, strings and range selectors.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Matchers, ranges and strings go (a space stays, so tokens do not join).
    let mut cleaned = String::new();
    let (mut braces, mut brackets, mut in_string) = (0, 0, false);
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            '{' if !in_string => braces += 1,
            '}' if !in_string => braces -= 1,
            '[' if !in_string => brackets += 1,
            ']' if !in_string => brackets -= 1,
            _ if in_string || braces > 0 || brackets > 0 => {}
            _ => {
                cleaned.push(c);
                continue;
            }
        }
        cleaned.push(' ');
    }
    // Tokens, with each grouping keyword's parenthesised list dropped.
    let mut tokens = Vec::new();
    let mut rest = cleaned.as_str();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while let Some(start) = rest.find(is_word) {
        let after = &rest[start..];
        let end = after.find(|c: char| !is_word(c)).unwrap_or(after.len());
        let token = &after[..end];
        rest = &after[end..];
        if GROUPINGS.contains(&token) && rest.trim_start().starts_with('(') {
            let close = rest.find(')').map_or(rest.len(), |i| i + 1);
            rest = &rest[close..];
            continue;
        }
        tokens.push(token);
    }
    tokens
        .into_iter()
        .filter(|t| !NOT_METRICS.contains(t) && !GROUPINGS.contains(t))
        .filter(|t| !t.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

#[test]
fn metric_names_are_read_from_expressions() {
    let names = metric_names(
        "sum by (job, le) (rate(grpc_server_handling_seconds_bucket{grpc_service!=\"x\"}[5m])) / ignoring(state) db_connection_pool_size > 0.5",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "db_connection_pool_size",
            "grpc_server_handling_seconds_bucket"
        ]
    );
}

/// The series names of a Prometheus text page.
fn scraped(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

async fn rag_service() -> (TestDatabase, TestService<RagApp>) {
    let db = TestDatabase::create(RagApp::SPEC.name, RagApp::MIGRATIONS).await;
    let service = TestService::<RagApp>::start_on(&db.url, &db.name, &Options::default()).await;
    (db, service)
}

#[tokio::test]
async fn every_series_a_rule_or_panel_names_is_in_a_live_scrape_and_moves_with_traffic() {
    let suite = Suite::start_with(Options {
        rate_limits: agentic_platform::config::from_flags(&["--rate-limit-per-minute", "1000"]),
        ..Options::default()
    })
    .await;
    let (_rag_db, rag) = rag_service().await;
    let mut tenant = suite.tenant(&slug("observe")).await;
    let (_, before) = suite.users.admin_get("/metrics").await;

    // Two reads of one user: the first reaches the database, the second is a hit.
    for _ in 0..2 {
        tenant
            .users
            .get_user(agentic_e2e::get_user(&tenant.user_id))
            .await
            .expect("get user");
    }
    let (_, after_gets) = suite.users.admin_get("/metrics").await;
    tenant
        .conversations
        .create_conversation(new_conversation(&tenant, "observed"))
        .await
        .expect("create conversation");
    let mut rag_client = RagServiceClient::new(
        rag.bearer_channel(Some(&rag.token(tenant.id, roles::ADMIN)))
            .await,
    );
    rag_client
        .list_collections(rag_pb::ListCollectionsRequest::default())
        .await
        .expect("list collections");

    // The services of this process share one registry: one scrape shows them all.
    let (_, page) = suite.users.admin_get("/metrics").await;
    let series = scraped(&page);
    for expr in expressions() {
        // Replicas' own series exist only where DATABASE_REPLICA_URL names one:
        // tests/tests/replicas.rs scrapes them from such a service.
        for name in metric_names(&expr)
            .into_iter()
            .filter(|name| !name.starts_with("db_replica_") || name == "db_replica_fallbacks_total")
        {
            assert!(
                series.contains(&name),
                "{name} (in `{expr}`) is not scraped"
            );
        }
    }
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
        "grpc_server_started_total",
        "grpc_client_handled_total",
        "grpc_client_handling_seconds_bucket",
        "db_query_duration_seconds_bucket",
        "db_connection_pool_overflow",
        "service_ready",
    ] {
        assert!(series.contains(name), "{name} is not scraped");
    }

    let moved = |name: &str, filters: &[&str]| {
        metric_sum(&page, name, filters) - metric_sum(&before, name, filters)
    };
    let by_gets = |name: &str, filters: &[&str]| {
        metric_sum(&after_gets, name, filters) - metric_sum(&before, name, filters)
    };
    let user_kind = ["kind=\"user\""];
    assert_eq!(
        by_gets("cache_misses_total", &user_kind),
        1.0,
        "one lookup reached the database"
    );
    assert_eq!(
        by_gets("cache_hits_total", &["kind=\"user\"", "layer=\"l1\""]),
        1.0,
        "one lookup was answered in memory"
    );
    let get_user = ["grpc_method=\"GetUser\""];
    assert_eq!(by_gets("grpc_server_started_total", &get_user), 2.0);
    assert_eq!(
        by_gets(
            "grpc_server_handled_total",
            &["grpc_method=\"GetUser\"", "grpc_code=\"OK\""]
        ),
        2.0
    );
    assert!(
        !page.contains("grpc_code=\"Ok\""),
        "codes are spelled as go-grpc-prometheus spells them"
    );
    let client = [
        "dependency=\"agent\"",
        "grpc_method=\"GetAgent\"",
        "grpc_code=\"OK\"",
    ];
    assert_eq!(moved("grpc_client_handled_total", &client), 1.0);
    assert!(moved("db_query_duration_seconds_count", &["operation=\"select\""]) >= 1.0);
    assert!(moved("db_query_duration_seconds_count", &["operation=\"insert\""]) >= 1.0);
    assert!(metric_sum(&page, "process_resident_memory_bytes", &[]) > 1e6);
    assert_eq!(
        metric_sum(&page, "service_ready", &["service=\"rag\""]),
        1.0
    );
    assert_eq!(
        metric_sum(&page, "db_connection_pool_size", &["pool=\"user\""]),
        4.0,
        "the test pool's configured size"
    );
}
