//! A fresh `agentic-user` process records into every metric it declares: the handles made
//! at start-up (cache kinds, RPC methods) record once traffic flows.

mod common;

use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{ServiceProcess, TestDatabase, admin_get};
use agentic_proto::user::v1 as pb;
use agentic_user::UserApp;

/// The value of the series whose line starts with `name{` and holds every label.
fn value(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn every_declared_series_records_in_a_fresh_process() {
    let db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
    let process = ServiceProcess::start(env!("CARGO_BIN_EXE_agentic-user"), &db.url).await;
    let (mut admin, tenant) = common::tenant_admin(process.addr, "metrics").await;
    let user = admin
        .create_user(pb::CreateUserRequest {
            email: "m@example.com".into(),
            username: "metric".into(),
            display_name: "M".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();

    // Twice each: a miss that fills the in-process level, then a hit on it.
    for _ in 0..2 {
        admin
            .get_user(pb::GetUserRequest {
                id: user.id.clone(),
                read_mask: None,
            })
            .await
            .unwrap();
        admin
            .get_tenant(pb::GetTenantRequest {
                id: tenant.to_string(),
            })
            .await
            .unwrap();
        for key in [
            pb::lookup_user_request::Key::Email("m@example.com".into()),
            pb::lookup_user_request::Key::Username("metric".into()),
        ] {
            admin
                .lookup_user(pb::LookupUserRequest { key: Some(key) })
                .await
                .unwrap();
        }
    }

    let (_, metrics) = admin_get(process.admin_addr, "/metrics").await;
    for kind in UserApp::CACHE_KINDS {
        let hits = value(
            &metrics,
            "cache_requests_total",
            &[
                &format!("kind=\"{}\"", kind.name),
                "layer=\"l1\"",
                "result=\"hit\"",
            ],
        );
        assert!(
            hits.is_some_and(|hits| hits >= 1.0),
            "no L1 hit recorded for {}: {hits:?}\n{metrics}",
            kind.name
        );
    }
    for method in ["GetUser", "GetTenant", "LookupUser", "CreateUser"] {
        let handled = value(
            &metrics,
            "grpc_server_handled_total",
            &[&format!("grpc_method=\"{method}\""), "grpc_code=\"OK\""],
        );
        assert!(handled.is_some_and(|n| n >= 1.0), "{method}: {handled:?}");
    }
    assert!(value(&metrics, "db_queries_total", &["pool=\"user\""]).is_some_and(|n| n >= 1.0));
}
