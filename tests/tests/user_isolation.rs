//! Tenant isolation and authentication: another tenant's users are invisible, and only
//! valid, unexpired tokens signed with the service's secret get in.

use std::time::Duration;

use agentic_e2e::{Harness, JWT_SECRET, UserFixture, new_user, rename, slug};
use agentic_platform::auth::{Tokens, roles};
use agentic_platform::config::AuthArgs;
use agentic_proto::user::v1 as pb;
use tonic::Code;

#[tokio::test]
async fn another_tenants_token_cannot_get_list_update_or_delete_its_users() {
    let harness = Harness::start().await;
    let (tenant_a, mut admin_a) = harness.service.tenant(&slug("tenant-a")).await;
    let (_, mut admin_b) = harness.service.tenant(&slug("tenant-b")).await;
    let victim = admin_a
        .create_user(pb::CreateUserRequest {
            username: "victim".into(),
            ..new_user("victim@example.com")
        })
        .await
        .expect("create in A")
        .into_inner()
        .user
        .expect("user");

    let get = admin_b
        .get_user(pb::GetUserRequest {
            id: victim.id.clone(),
            read_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::NotFound);

    let lookup = admin_b
        .lookup_user(pb::LookupUserRequest {
            key: Some(pb::lookup_user_request::Key::Email(
                "victim@example.com".into(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(lookup.code(), Code::NotFound);

    let listed = admin_b
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("list B")
        .into_inner();
    assert!(
        listed.users.iter().all(|u| u.id != victim.id),
        "A's user is not listed for B"
    );

    let update = admin_b
        .update_user(rename(&victim.id, "pwned"))
        .await
        .unwrap_err();
    assert_eq!(update.code(), Code::NotFound);

    let delete = admin_b
        .delete_user(pb::DeleteUserRequest {
            id: victim.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(delete.code(), Code::NotFound);

    let tenant = admin_b
        .get_tenant(pb::GetTenantRequest {
            id: tenant_a.to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(tenant.code(), Code::NotFound);

    // A's user is untouched.
    let still = admin_a
        .get_user(pb::GetUserRequest {
            id: victim.id.clone(),
            read_mask: None,
        })
        .await
        .expect("A still reads it")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(still, victim);
}

#[tokio::test]
async fn missing_expired_or_wrongly_signed_tokens_are_unauthenticated() {
    let harness = Harness::start().await;
    let (tenant, _) = harness.service.tenant(&slug("authn")).await;
    let request = || pb::ListUsersRequest::default();

    let mut anonymous = harness.service.client(None).await;
    let missing = anonymous.list_users(request()).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);

    let args = AuthArgs {
        jwt_secret: JWT_SECRET.into(),
        jwt_issuer: "agentic".into(),
        jwt_ttl: 1,
    };
    let tokens = Tokens::new(&args).unwrap();
    // Expired a minute ago: beyond the verifier's few seconds of leeway.
    let (expired, _) = tokens
        .issue("e2e", Some(tenant), roles::ADMIN, Some(Duration::ZERO))
        .unwrap();
    let expired = rewrite_exp(&expired, -60, JWT_SECRET);
    let mut late = harness.service.client(Some(&expired)).await;
    let error = late.list_users(request()).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    assert_eq!(error.message(), "token expired");

    let forger = Tokens::new(&AuthArgs {
        jwt_secret: "a-different-secret-0123456789abcdef".into(),
        ..args.clone()
    })
    .unwrap();
    let (forged, _) = forger
        .issue("e2e", Some(tenant), roles::ADMIN, None)
        .unwrap();
    let mut forged_client = harness.service.client(Some(&forged)).await;
    let error = forged_client.list_users(request()).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);

    let other_issuer = Tokens::new(&AuthArgs {
        jwt_issuer: "someone-else".into(),
        ..args
    })
    .unwrap();
    let (wrong_issuer, _) = other_issuer
        .issue("e2e", Some(tenant), roles::ADMIN, None)
        .unwrap();
    let mut wrong = harness.service.client(Some(&wrong_issuer)).await;
    assert_eq!(
        wrong.list_users(request()).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let mut garbage = harness.service.client(Some("not.a.jwt")).await;
    assert_eq!(
        garbage.list_users(request()).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // Health needs no token.
    assert_eq!(
        harness.service.health("").await,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

#[tokio::test]
async fn only_platform_tokens_create_tenants_and_only_admins_write_users() {
    let harness = Harness::start().await;
    let (tenant, _) = harness.service.tenant(&slug("roles")).await;
    let mut admin = harness
        .service
        .client(Some(&harness.service.token(tenant, roles::ADMIN)))
        .await;
    let error = admin
        .create_tenant(pb::CreateTenantRequest {
            request_id: String::new(),
            name: "x".into(),
            slug: slug("nope"),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);

    let mut viewer = harness
        .service
        .client(Some(&harness.service.token(tenant, roles::VIEWER)))
        .await;
    let error = viewer
        .create_user(new_user("v@example.com"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    viewer
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("viewers read");

    let mut platform = harness
        .service
        .client(Some(&harness.service.platform_token()))
        .await;
    let error = platform
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::PermissionDenied,
        "platform tokens act in no tenant"
    );
}

/// Re-signs `token` with its `exp` moved `offset_secs` from now.
fn rewrite_exp(token: &str, offset_secs: i64, secret: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = token.split('.').nth(1).expect("jwt payload");
    let mut claims: agentic_platform::auth::Claims =
        serde_json::from_slice(&engine.decode(payload).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    claims.exp = now + offset_secs;
    claims.iat = now + offset_secs - 1;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}
