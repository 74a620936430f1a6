//! The `agentic-user` process drains in-flight requests on SIGTERM, then exits 0.

use std::time::Duration;

mod common;

use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{ServiceProcess, TestDatabase, lock_waiters};
use agentic_proto::user::v1 as pb;
use agentic_user::UserApp;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let db = TestDatabase::create(UserApp::SPEC.name, UserApp::MIGRATIONS).await;
    let mut process = ServiceProcess::start(env!("CARGO_BIN_EXE_agentic-user"), &db.url).await;

    let (mut client, _) = common::tenant_admin(process.addr, "drain").await;
    let user = client
        .create_user(pb::CreateUserRequest {
            email: "drain@example.com".into(),
            display_name: "D".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();

    // Hold the row lock so updates stay in flight until the test lets them go.
    let mut locker = AsyncPgConnection::establish(&db.url).await.unwrap();
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM users.users WHERE id = '{}' FOR UPDATE",
            user.id
        ))
        .await
        .unwrap();
    let in_flight: Vec<_> = (0..3)
        .map(|i| {
            let mut client = client.clone();
            let request = pb::UpdateUserRequest {
                user: Some(pb::User {
                    id: user.id.clone(),
                    display_name: format!("Drained {i}"),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into()],
                }),
            };
            tokio::spawn(async move { client.update_user(request).await })
        })
        .collect();
    let mut waiting = 0;
    for _ in 0..100 {
        waiting = lock_waiters(&mut locker, &db.name).await;
        if waiting >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(waiting, 3, "three requests are in flight");

    process.terminate();

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        process.child.try_wait().unwrap().is_none(),
        "the process waits for in-flight requests"
    );

    locker.batch_execute("ROLLBACK").await.unwrap();
    for request in in_flight {
        let response = request.await.unwrap();
        assert!(
            response.is_ok(),
            "in-flight request completed: {response:?}"
        );
    }

    let exit = tokio::time::timeout(Duration::from_secs(10), process.child.wait())
        .await
        .expect("exits after draining")
        .unwrap();
    assert_eq!(exit.code(), Some(0), "clean exit");
}
