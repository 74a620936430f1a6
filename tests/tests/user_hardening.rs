//! Bad input and abuse get clean gRPC errors naming the field, and bounded work.

use std::time::Duration;

use agentic_e2e::{Harness, UserFixture, new_user, slug, violated_fields};
use agentic_platform::auth::roles;
use agentic_proto::user::v1 as pb;
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use uuid::Uuid;

#[tokio::test]
async fn nul_bytes_and_invisible_characters_are_invalid_arguments_naming_the_field() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("nul")).await;

    let mut anonymous = harness.service.client(None).await;
    let error = anonymous
        .authenticate(pb::AuthenticateRequest {
            tenant_slug: "ac\0me".into(),
            email: "a\0@example.com".into(),
            password: "long enough password".into(),
        })
        .await
        .expect_err("NUL is refused");
    assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error:?}");
    let fields = violated_fields(&error);
    assert!(fields.contains(&"tenant_slug".to_owned()), "{fields:?}");
    assert!(fields.contains(&"email".to_owned()), "{fields:?}");

    for sneaky in [
        "ad\u{202E}min@example.com",
        "a\u{200B}b@example.com",
        "x\0y@example.com",
    ] {
        let error = admin
            .create_user(new_user(sneaky))
            .await
            .expect_err("refused");
        assert_eq!(error.code(), tonic::Code::InvalidArgument, "{sneaky:?}");
        assert!(violated_fields(&error).contains(&"email".to_owned()));

        let error = admin
            .lookup_user(pb::LookupUserRequest {
                key: Some(pb::lookup_user_request::Key::Email(sneaky.into())),
            })
            .await
            .expect_err("refused");
        assert_eq!(error.code(), tonic::Code::InvalidArgument, "{sneaky:?}");
    }
}

#[tokio::test]
async fn a_token_whose_tenant_does_not_exist_cannot_write_users() {
    let harness = Harness::start().await;
    let ghost = harness.service.token(Uuid::now_v7(), roles::ADMIN);
    let mut client = harness.service.client(Some(&ghost)).await;

    let error = client
        .create_user(new_user("ghost@example.com"))
        .await
        .expect_err("no such tenant");
    assert_eq!(error.code(), tonic::Code::FailedPrecondition, "{error:?}");
    assert!(!error.message().contains("fkey"), "{}", error.message());

    let error = client
        .batch_create_users(pb::BatchCreateUsersRequest {
            request_id: String::new(),
            requests: vec![new_user("g1@example.com"), new_user("g2@example.com")],
        })
        .await
        .expect_err("no such tenant");
    assert_eq!(error.code(), tonic::Code::FailedPrecondition, "{error:?}");
}

#[tokio::test]
async fn a_huge_unknown_read_mask_path_is_a_small_invalid_argument() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("mask")).await;
    let huge = "x".repeat(10_000);
    let error = admin
        .get_user(pb::GetUserRequest {
            id: Uuid::now_v7().to_string(),
            read_mask: Some(prost_types::FieldMask {
                paths: vec![huge.clone(), huge],
            }),
        })
        .await
        .expect_err("unknown path");
    assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error:?}");
    assert!(error.message().len() < 1024, "{}", error.message().len());
    assert!(!violated_fields(&error).is_empty());
}

/// Peak resident memory of this test process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("proc status")
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn concurrent_password_batches_hash_one_per_core_and_shed_the_rest() {
    let harness = Harness::start().await;
    let (tenant, _) = harness.service.tenant(&slug("argon")).await;
    let token = harness.service.token(tenant, roles::ADMIN);
    let channel = harness.service.bearer_channel(Some(&token)).await;
    let before = peak_rss_kib();

    let batches = (0..20).map(|b| {
        let mut client = UserServiceClient::new(channel.clone());
        let requests = (0..1000)
            .map(|i| pb::CreateUserRequest {
                password: format!("password-{b}-{i}"),
                ..new_user(&format!("u{b}-{i}@example.com"))
            })
            .collect();
        async move {
            // The deadline as any gRPC client sends it; the server must answer within it.
            let mut request = tonic::Request::new(pb::BatchCreateUsersRequest {
                request_id: String::new(),
                requests,
            });
            request
                .metadata_mut()
                .insert("grpc-timeout", "2S".parse().expect("ascii"));
            tokio::time::timeout(Duration::from_secs(10), client.batch_create_users(request))
                .await
                .expect("the server answers")
        }
    });
    let outcomes = futures::future::join_all(batches).await;
    let shed = outcomes
        .iter()
        .filter(|outcome| {
            outcome
                .as_ref()
                .is_err_and(|status| status.code() == tonic::Code::ResourceExhausted)
        })
        .count();
    for outcome in &outcomes {
        if let Err(status) = outcome {
            // A batch that got its cores but not its database write in time may run out
            // of deadline on a saturated machine; nothing else is acceptable.
            assert!(
                matches!(
                    status.code(),
                    tonic::Code::ResourceExhausted | tonic::Code::DeadlineExceeded
                ),
                "a batch that cannot get a core in time is shed: {status:?}"
            );
        }
    }
    assert!(
        shed > 0,
        "20,000 hashes do not fit in 2 s: some batches are shed"
    );

    // One argon2 hash holds 19 MiB; unbounded, hundreds would run at once.
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 150, "peak memory grew by {grown_mib} MiB");
}
