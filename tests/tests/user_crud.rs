//! CRUD, validation, batches and sign-in of the user service, over real gRPC against
//! real PostgreSQL and Redis.

use agentic_e2e::{Harness, UserFixture, new_user, slug, violated_fields};
use agentic_proto::user::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;

#[tokio::test]
async fn create_get_update_delete_round_trip() {
    let harness = Harness::start().await;
    let (tenant, mut admin) = harness.service.tenant(&slug("crud")).await;

    let created = admin
        .create_user(pb::CreateUserRequest {
            request_id: String::new(),
            email: "  Ada@Example.COM ".into(),
            username: "ada".into(),
            display_name: "Ada Lovelace".into(),
            role: pb::Role::Viewer as i32,
            password: String::new(),
        })
        .await
        .expect("create")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(created.email, "ada@example.com", "emails are normalised");
    assert_eq!(created.tenant_id, tenant.to_string());
    assert_eq!(created.role, pb::Role::Viewer as i32);
    assert_eq!(created.status, pb::UserStatus::Active as i32);
    assert!(
        uuid::Uuid::parse_str(&created.id)
            .unwrap()
            .get_version_num()
            == 7
    );

    let fetched = admin
        .get_user(pb::GetUserRequest {
            id: created.id.clone(),
            read_mask: None,
        })
        .await
        .expect("get")
        .into_inner()
        .user;
    assert_eq!(fetched.as_ref(), Some(&created));

    let updated = admin
        .update_user(pb::UpdateUserRequest {
            user: Some(pb::User {
                id: created.id.clone(),
                display_name: "Countess of Lovelace".into(),
                status: pb::UserStatus::Suspended as i32,
                email: "ignored@example.com".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["display_name".into(), "status".into()],
            }),
        })
        .await
        .expect("update")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(updated.display_name, "Countess of Lovelace");
    assert_eq!(updated.status, pb::UserStatus::Suspended as i32);
    assert_eq!(
        updated.email, "ada@example.com",
        "fields outside the mask are kept"
    );
    let time = |t: &Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos));
    assert!(time(&updated.update_time) > time(&created.update_time));

    let masked = admin
        .get_user(pb::GetUserRequest {
            id: created.id.clone(),
            read_mask: Some(FieldMask {
                paths: vec!["id".into(), "display_name".into()],
            }),
        })
        .await
        .expect("get with mask")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(masked.display_name, "Countess of Lovelace");
    assert_eq!(
        (masked.email.as_str(), masked.role, masked.create_time),
        ("", 0, None)
    );

    admin
        .delete_user(pb::DeleteUserRequest {
            id: created.id.clone(),
        })
        .await
        .expect("delete");
    let gone = admin
        .get_user(pb::GetUserRequest {
            id: created.id.clone(),
            read_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let again = admin
        .delete_user(pb::DeleteUserRequest { id: created.id })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

#[tokio::test]
async fn duplicate_email_within_a_tenant_already_exists_but_not_across_tenants() {
    let harness = Harness::start().await;
    let (_, mut first) = harness.service.tenant(&slug("dup-a")).await;
    let (_, mut second) = harness.service.tenant(&slug("dup-b")).await;

    first
        .create_user(new_user("same@example.com"))
        .await
        .expect("first");
    let duplicate = first
        .create_user(new_user("SAME@example.com"))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    assert!(
        duplicate.message().contains("email"),
        "{}",
        duplicate.message()
    );

    second
        .create_user(new_user("same@example.com"))
        .await
        .expect("another tenant may use the same email");

    let taken_slug = harness.service.tenant(&slug("dup-c")).await;
    let mut platform = harness
        .service
        .client(Some(&harness.service.platform_token()))
        .await;
    let tenant = platform
        .get_tenant(pb::GetTenantRequest {
            id: taken_slug.0.to_string(),
        })
        .await
        .expect("platform reads any tenant")
        .into_inner()
        .tenant
        .expect("tenant");
    let same_slug = platform
        .create_tenant(pb::CreateTenantRequest {
            request_id: String::new(),
            name: "again".into(),
            slug: tenant.slug,
        })
        .await
        .unwrap_err();
    assert_eq!(same_slug.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn invalid_input_is_rejected_naming_the_field() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("invalid")).await;

    let bad_id = admin
        .get_user(pb::GetUserRequest {
            id: "not-a-uuid".into(),
            read_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad_id), ["id"]);

    let cases = [
        (new_user("not-an-email"), "email"),
        (
            pb::CreateUserRequest {
                display_name: String::new(),
                ..new_user("a@example.com")
            },
            "display_name",
        ),
        (
            pb::CreateUserRequest {
                display_name: "x".repeat(201),
                ..new_user("b@example.com")
            },
            "display_name",
        ),
        (
            pb::CreateUserRequest {
                username: "No Spaces".into(),
                ..new_user("c@example.com")
            },
            "username",
        ),
        (
            pb::CreateUserRequest {
                password: "short".into(),
                ..new_user("d@example.com")
            },
            "password",
        ),
        (
            pb::CreateUserRequest {
                role: 99,
                ..new_user("e@example.com")
            },
            "role",
        ),
    ];
    for (request, field) in cases {
        let error = admin.create_user(request).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{field}");
        assert_eq!(violated_fields(&error), [field]);
        assert!(
            error.message().contains(field),
            "message names {field}: {}",
            error.message()
        );
    }

    let several = admin
        .create_user(pb::CreateUserRequest {
            email: "nope".into(),
            display_name: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&several), ["email", "display_name"]);

    let negative = admin
        .list_users(pb::ListUsersRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&negative), ["page_size"]);

    let bad_mask = admin
        .update_user(pb::UpdateUserRequest {
            user: Some(pb::User {
                id: uuid::Uuid::now_v7().to_string(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["password_hash".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad_mask), ["update_mask"]);

    let bad_tenant = harness
        .service
        .client(Some(&harness.service.platform_token()))
        .await
        .create_tenant(pb::CreateTenantRequest {
            request_id: String::new(),
            name: "x".into(),
            slug: "Not A Slug".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad_tenant), ["slug"]);

    // Nothing invalid was written.
    let listed = admin
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.users.is_empty());
}

#[tokio::test]
async fn page_size_above_the_maximum_is_clamped() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("clamp")).await;
    let requests = (0..130)
        .map(|i| new_user(&format!("u{i}@example.com")))
        .collect();
    admin
        .batch_create_users(pb::BatchCreateUsersRequest {
            request_id: String::new(),
            requests,
        })
        .await
        .expect("batch");

    let page = admin
        .list_users(pb::ListUsersRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.users.len(), 100);
    assert!(!page.next_page_token.is_empty());

    let default_page = admin
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(default_page.users.len(), 20);
}

#[tokio::test]
async fn lookup_by_email_and_username() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("lookup")).await;
    let user = admin
        .create_user(pb::CreateUserRequest {
            username: "grace".into(),
            ..new_user("grace@example.com")
        })
        .await
        .expect("create")
        .into_inner()
        .user
        .expect("user");

    use pb::lookup_user_request::Key;
    for key in [
        Key::Email("Grace@Example.com".into()),
        Key::Username("grace".into()),
    ] {
        let found = admin
            .lookup_user(pb::LookupUserRequest { key: Some(key) })
            .await
            .expect("lookup")
            .into_inner()
            .user
            .expect("user");
        assert_eq!(found.id, user.id);
    }
    let missing = admin
        .lookup_user(pb::LookupUserRequest {
            key: Some(Key::Email("nobody@example.com".into())),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // A cached "absent" must not hide a user created afterwards.
    admin
        .create_user(new_user("nobody@example.com"))
        .await
        .expect("create");
    admin
        .lookup_user(pb::LookupUserRequest {
            key: Some(Key::Email("nobody@example.com".into())),
        })
        .await
        .expect("found after creation");

    // Changing the email moves the lookup with it.
    admin
        .update_user(pb::UpdateUserRequest {
            user: Some(pb::User {
                id: user.id.clone(),
                email: "hopper@example.com".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["email".into()],
            }),
        })
        .await
        .expect("update");
    let old = admin
        .lookup_user(pb::LookupUserRequest {
            key: Some(Key::Email("grace@example.com".into())),
        })
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::NotFound);
}

#[tokio::test]
async fn batch_create_is_one_transaction_with_one_insert_per_chunk() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("batch")).await;

    let requests: Vec<_> = (0..1000)
        .map(|i| new_user(&format!("b{i}@example.com")))
        .collect();
    let before = harness.service.queries();
    let created = admin
        .batch_create_users(pb::BatchCreateUsersRequest {
            request_id: String::new(),
            requests,
        })
        .await
        .expect("batch of 1000")
        .into_inner()
        .users;
    let queries = harness.service.queries() - before;
    assert_eq!(created.len(), 1000);
    // BEGIN, two INSERTs of 500 rows, COMMIT.
    assert_eq!(
        queries, 4,
        "one round trip per chunk inside one transaction"
    );

    let too_many: Vec<_> = (0..1001)
        .map(|i| new_user(&format!("x{i}@example.com")))
        .collect();
    let error = admin
        .batch_create_users(pb::BatchCreateUsersRequest {
            request_id: String::new(),
            requests: too_many,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), ["requests"]);

    let mut with_bad_item: Vec<_> = (0..3)
        .map(|i| new_user(&format!("ok{i}@example.com")))
        .collect();
    with_bad_item[1].email = "broken".into();
    let error = admin
        .batch_create_users(pb::BatchCreateUsersRequest {
            request_id: String::new(),
            requests: with_bad_item,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), ["requests[1].email"]);

    // A duplicate anywhere rolls the whole batch back.
    let mut with_duplicate: Vec<_> = (0..600)
        .map(|i| new_user(&format!("new{i}@example.com")))
        .collect();
    with_duplicate.push(new_user("b7@example.com"));
    let error = admin
        .batch_create_users(pb::BatchCreateUsersRequest {
            request_id: String::new(),
            requests: with_duplicate,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists);
    let lookup = admin
        .lookup_user(pb::LookupUserRequest {
            key: Some(pb::lookup_user_request::Key::Email(
                "new0@example.com".into(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(
        lookup.code(),
        Code::NotFound,
        "nothing of the failed batch was kept"
    );
}

#[tokio::test]
async fn authenticate_issues_a_token_that_works_and_refuses_bad_credentials() {
    let harness = Harness::start().await;
    let tenant_slug = slug("signin");
    let (_, mut admin) = harness.service.tenant(&tenant_slug).await;
    admin
        .create_user(pb::CreateUserRequest {
            password: "correct horse battery".into(),
            role: pb::Role::Member as i32,
            ..new_user("linus@example.com")
        })
        .await
        .expect("create");

    let mut anonymous = harness.service.client(None).await;
    let signed_in = anonymous
        .authenticate(pb::AuthenticateRequest {
            tenant_slug: tenant_slug.clone(),
            email: "Linus@example.com".into(),
            password: "correct horse battery".into(),
        })
        .await
        .expect("sign in")
        .into_inner();
    assert_eq!(signed_in.token_type, "Bearer");
    let user = signed_in.user.expect("user");
    let caller = harness
        .service
        .tokens
        .verify(&signed_in.access_token)
        .expect("valid token");
    assert_eq!(caller.subject, user.id);
    assert_eq!(caller.role, "member");

    let mut member = harness.service.client(Some(&signed_in.access_token)).await;
    let me = member
        .get_user(pb::GetUserRequest {
            id: user.id.clone(),
            read_mask: None,
        })
        .await
        .expect("the issued token reads its tenant");
    assert_eq!(
        me.into_inner().user.expect("user").email,
        "linus@example.com"
    );
    let denied = member
        .create_user(new_user("new@example.com"))
        .await
        .unwrap_err();
    assert_eq!(
        denied.code(),
        Code::PermissionDenied,
        "members cannot create users"
    );

    for (slug_used, email, password) in [
        (tenant_slug.as_str(), "linus@example.com", "wrong password"),
        (
            tenant_slug.as_str(),
            "nobody@example.com",
            "correct horse battery",
        ),
        (
            "no-such-tenant",
            "linus@example.com",
            "correct horse battery",
        ),
    ] {
        let error = anonymous
            .authenticate(pb::AuthenticateRequest {
                tenant_slug: slug_used.into(),
                email: email.into(),
                password: password.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated);
        assert_eq!(error.message(), "invalid credentials");
    }

    let missing = anonymous
        .authenticate(pb::AuthenticateRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&missing),
        ["tenant_slug", "email", "password"]
    );
}
