//! Keyset paging of ListUsers: complete, ordered, stable under concurrent inserts, and
//! with tamper-evident page tokens.

use std::collections::HashSet;

use agentic_e2e::{Harness, UserFixture, new_user, slug, violated_fields};
use agentic_proto::user::v1 as pb;
use base64::Engine;
use tonic::Code;

#[tokio::test]
async fn paging_returns_every_user_once_in_order_while_others_are_inserted() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("paging")).await;
    let requests = (0..300)
        .map(|i| new_user(&format!("p{i}@example.com")))
        .collect();
    let existing: Vec<String> = admin
        .batch_create_users(pb::BatchCreateUsersRequest {
            request_id: String::new(),
            requests,
        })
        .await
        .expect("seed")
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.id)
        .collect();

    // Insert more users while paging, from another connection.
    let mut writer = admin.clone();
    let inserting = tokio::spawn(async move {
        for i in 0..60 {
            writer
                .create_user(new_user(&format!("late{i}@example.com")))
                .await
                .expect("concurrent insert");
        }
    });

    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = admin
            .list_users(pb::ListUsersRequest {
                page_size: 17,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(page.users.len() <= 17);
        seen.extend(page.users.into_iter().map(|u| u.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        tokio::task::yield_now().await;
    }
    inserting.await.expect("inserter");

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no user is returned twice");
    let parsed: Vec<uuid::Uuid> = seen.iter().map(|id| id.parse().unwrap()).collect();
    assert!(
        parsed.windows(2).all(|w| w[0] < w[1]),
        "ids ascend across pages"
    );
    for id in &existing {
        assert!(
            unique.contains(id),
            "user {id} that existed before paging was returned"
        );
    }
    assert!(pages >= 300 / 17, "paged in pages of 17");
}

#[tokio::test]
async fn filters_by_status_and_role_page_through_their_own_results() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("filter")).await;
    let requests = (0..45)
        .map(|i| pb::CreateUserRequest {
            role: if i % 3 == 0 {
                pb::Role::Admin
            } else {
                pb::Role::Member
            } as i32,
            ..new_user(&format!("f{i}@example.com"))
        })
        .collect();
    let users = admin
        .batch_create_users(pb::BatchCreateUsersRequest {
            request_id: String::new(),
            requests,
        })
        .await
        .expect("seed")
        .into_inner()
        .users;
    for user in users.iter().take(10) {
        admin
            .update_user(pb::UpdateUserRequest {
                user: Some(pb::User {
                    id: user.id.clone(),
                    status: pb::UserStatus::Inactive as i32,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["status".into()],
                }),
            })
            .await
            .expect("deactivate");
    }

    let collect = |status: pb::UserStatus, role: pb::Role| {
        let mut client = admin.clone();
        async move {
            let mut all = Vec::new();
            let mut token = String::new();
            loop {
                let page = client
                    .list_users(pb::ListUsersRequest {
                        page_size: 4,
                        page_token: token,
                        status: status as i32,
                        role: role as i32,
                        read_mask: None,
                    })
                    .await
                    .expect("list")
                    .into_inner();
                all.extend(page.users);
                if page.next_page_token.is_empty() {
                    return all;
                }
                token = page.next_page_token;
            }
        }
    };

    let admins = collect(pb::UserStatus::Unspecified, pb::Role::Admin).await;
    assert_eq!(admins.len(), 15);
    assert!(admins.iter().all(|u| u.role == pb::Role::Admin as i32));
    let inactive = collect(pb::UserStatus::Inactive, pb::Role::Unspecified).await;
    assert_eq!(inactive.len(), 10);
    let active_members = collect(pb::UserStatus::Active, pb::Role::Member).await;
    let expected = users
        .iter()
        .skip(10)
        .filter(|u| u.role == pb::Role::Member as i32)
        .count();
    assert_eq!(active_members.len(), expected);
}

#[tokio::test]
async fn tampered_or_foreign_page_tokens_are_invalid_arguments() {
    let harness = Harness::start().await;
    let (_, mut admin) = harness.service.tenant(&slug("tamper")).await;
    let requests = (0..5)
        .map(|i| new_user(&format!("t{i}@example.com")))
        .collect();
    admin
        .batch_create_users(pb::BatchCreateUsersRequest {
            request_id: String::new(),
            requests,
        })
        .await
        .expect("seed");
    let token = admin
        .list_users(pb::ListUsersRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .expect("first page")
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());

    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut raw = engine.decode(&token).expect("token is base64url");
    raw[5] ^= 0x01;
    let tampered = engine.encode(&raw);

    for bad in [tampered, "garbage!".to_owned(), format!("{token}x")] {
        let error = admin
            .list_users(pb::ListUsersRequest {
                page_size: 2,
                page_token: bad,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&error), ["page_token"]);
    }

    // The token belongs to the unfiltered query; another filter may not reuse it.
    let error = admin
        .list_users(pb::ListUsersRequest {
            page_size: 2,
            page_token: token.clone(),
            role: pb::Role::Admin as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), ["page_token"]);

    let resumed = admin
        .list_users(pb::ListUsersRequest {
            page_size: 2,
            page_token: token,
            ..Default::default()
        })
        .await
        .expect("the genuine token still works")
        .into_inner();
    assert_eq!(resumed.users.len(), 2);
}
