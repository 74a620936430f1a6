//! Users: create (one or a batch), read (by id, by email or username, list), update and
//! delete.

use agentic_platform::auth::Caller;
use agentic_platform::cache::ScopedKey;
use agentic_platform::error::{Error, Result};
use agentic_proto::user::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{StaleKey, UserService};
use crate::input::{self, Lookup, NewUserInput};
use crate::model::{self, NewUser, UserRow};
use crate::password;
use crate::store::{self, UserKey};

impl UserService {
    /// The tenant's user `id`, from the cache.
    async fn cached_user(&self, tenant: Uuid, id: Uuid) -> Result<Option<pb::User>> {
        self.cache
            .get_or_load(&self.kinds.user, ScopedKey(tenant, id), || {
                self.pool.read_in(tenant, async |conn| {
                    Ok(store::find_user(conn, tenant, id)
                        .await?
                        .map(pb::User::from))
                })
            })
            .await
    }

    /// The tenant's user with that email or username, from the cache.
    async fn cached_lookup(&self, tenant: Uuid, key: UserKey<'_>) -> Result<Option<pb::User>> {
        let (kind, value) = match key {
            UserKey::Email(email) => (&self.kinds.user_by_email, email),
            UserKey::Username(username) => (&self.kinds.user_by_username, username),
        };
        self.cache
            .get_or_load(kind, ScopedKey(tenant, value), || {
                self.pool.read_in(tenant, async |conn| {
                    Ok(store::find_user_by(conn, tenant, key)
                        .await?
                        .map(pb::User::from))
                })
            })
            .await
    }

    /// The cache entries a user can be read through: by id, by email, by username.
    fn user_keys<'k>(&'k self, user: &UserRow, keys: &mut Vec<StaleKey<'k>>) {
        keys.push((
            &self.kinds.user,
            ScopedKey(user.tenant_id, user.id.to_string()),
        ));
        self.lookup_keys(user, keys);
    }

    /// The lookup entries of a user. Lookups may hold a cached "absent" for a user that
    /// now exists, or the user itself.
    fn lookup_keys<'k>(&'k self, user: &UserRow, keys: &mut Vec<StaleKey<'k>>) {
        self.lookup_keys_of(user.tenant_id, &user.email, user.username.as_deref(), keys);
    }

    /// The lookup entries of a user of `tenant` with `email` and `username`.
    fn lookup_keys_of<'k>(
        &'k self,
        tenant: Uuid,
        email: &str,
        username: Option<&str>,
        keys: &mut Vec<StaleKey<'k>>,
    ) {
        keys.push((
            &self.kinds.user_by_email,
            ScopedKey(tenant, email.to_owned()),
        ));
        if let Some(username) = username {
            keys.push((
                &self.kinds.user_by_username,
                ScopedKey(tenant, username.to_owned()),
            ));
        }
    }

    /// Drops the lookup entries of users just created (which may hold a cached "absent").
    async fn forget_lookups(&self, tenant: Uuid, users: &[pb::User]) {
        let mut stale = Vec::with_capacity(users.len() * 2);
        for user in users {
            let username = (!user.username.is_empty()).then_some(user.username.as_str());
            self.lookup_keys_of(tenant, &user.email, username, &mut stale);
        }
        self.cache.invalidate(&stale).await;
    }
}

/// The row of a new user of `tenant`, its password (if any) hashed.
async fn new_user_row(tenant: Uuid, mut input: NewUserInput) -> Result<NewUser> {
    let password_hash = match input.password.take() {
        Some(password) => Some(password::hash(password).await?),
        None => None,
    };
    Ok(NewUser {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        email: input.email,
        username: input.username,
        display_name: input.display_name,
        role: input.role.to_owned(),
        status: model::ACTIVE.to_owned(),
        password_hash,
    })
}

pub(super) async fn create(
    service: &UserService,
    request: Request<pb::CreateUserRequest>,
) -> Result<Response<pb::CreateUserResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let message = request.get_ref();
    let input = input::new_user(message)?;
    let request_id = input.request_id;
    let new_user = new_user_row(tenant, input).await?;
    let response = service
        .request_ids
        .once(
            &service.pool,
            tenant,
            request_id,
            "CreateUser",
            message,
            async |conn| {
                let row = store::insert_user(conn, &new_user).await?;
                Ok(pb::CreateUserResponse {
                    user: Some(row.into()),
                })
            },
        )
        .await?;
    service
        .forget_lookups(tenant, response.user.as_slice())
        .await;
    Ok(Response::new(response))
}

pub(super) async fn get(
    service: &UserService,
    request: Request<pb::GetUserRequest>,
) -> Result<Response<pb::GetUserResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let (id, mask) = input::user_read(request.get_ref())?;
    let mut user = service
        .cached_user(tenant, id)
        .await?
        .ok_or(Error::NotFound("user"))?;
    model::apply_read_mask(&mut user, &mask);
    Ok(Response::new(pb::GetUserResponse { user: Some(user) }))
}

pub(super) async fn lookup(
    service: &UserService,
    request: Request<pb::LookupUserRequest>,
) -> Result<Response<pb::LookupUserResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let user = match input::lookup(request.get_ref())? {
        Lookup::Email(email) => {
            service
                .cached_lookup(tenant, UserKey::Email(&email))
                .await?
        }
        Lookup::Username(username) => {
            service
                .cached_lookup(tenant, UserKey::Username(&username))
                .await?
        }
    };
    let user = user.ok_or(Error::NotFound("user"))?;
    Ok(Response::new(pb::LookupUserResponse { user: Some(user) }))
}

pub(super) async fn update(
    service: &UserService,
    request: Request<pb::UpdateUserRequest>,
) -> Result<Response<pb::UpdateUserResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let update = input::user_update(request.get_ref())?;
    let (before, after) = service
        .pool
        .write_in(tenant, async |conn| {
            store::update_user(conn, tenant, update.id, &update.changes).await
        })
        .await?
        .ok_or(Error::NotFound("user"))?;
    // The old email and username, and the new ones (which may hold a cached "absent").
    let mut stale = Vec::new();
    service.user_keys(&before, &mut stale);
    service.lookup_keys(&after, &mut stale);
    service.cache.invalidate(&stale).await;
    // Its status may have changed: every service sees it now.
    service.principals.forget_user(tenant, after.id).await;
    Ok(Response::new(pb::UpdateUserResponse {
        user: Some(after.into()),
    }))
}

pub(super) async fn delete(
    service: &UserService,
    request: Request<pb::DeleteUserRequest>,
) -> Result<Response<pb::DeleteUserResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let id = agentic_platform::validate::id("id", &request.get_ref().id)?;
    let deleted = service
        .pool
        .write_in(tenant, async |conn| {
            store::delete_user(conn, tenant, id).await
        })
        .await?
        .ok_or(Error::NotFound("user"))?;
    let mut stale = Vec::new();
    service.user_keys(&deleted, &mut stale);
    service.cache.invalidate(&stale).await;
    service.principals.forget_user(tenant, deleted.id).await;
    Ok(Response::new(pb::DeleteUserResponse {}))
}

pub(super) async fn list(
    service: &UserService,
    request: Request<pb::ListUsersRequest>,
) -> Result<Response<pb::ListUsersResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let listing = input::user_listing(message)?;
    let fingerprint = listing.filter.fingerprint(tenant);
    let filter = &listing.filter;
    let (rows, next_page_token) = service
        .pages
        .uuid_page(
            &message.page_token,
            &fingerprint,
            listing.page_size,
            |row: &UserRow| row.id,
            |after, limit| {
                service.pool.query_in(tenant, async move |conn| {
                    store::list_users(conn, tenant, filter, after, limit).await
                })
            },
        )
        .await?;
    let users = rows
        .into_iter()
        .map(|row| {
            let mut user = pb::User::from(row);
            model::apply_read_mask(&mut user, &listing.mask);
            user
        })
        .collect();
    Ok(Response::new(pb::ListUsersResponse {
        users,
        next_page_token,
    }))
}

pub(super) async fn batch_create(
    service: &UserService,
    request: Request<pb::BatchCreateUsersRequest>,
) -> Result<Response<pb::BatchCreateUsersResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let message = request.get_ref();
    let (inputs, request_id) = input::new_users(message)?;
    // Hashed on the blocking pool in parallel; most imports carry no passwords at all.
    let new_users =
        futures::future::try_join_all(inputs.into_iter().map(|item| new_user_row(tenant, item)))
            .await?;
    let response = service
        .request_ids
        .once(
            &service.pool,
            tenant,
            request_id,
            "BatchCreateUsers",
            message,
            async |conn| {
                let rows = store::insert_users(conn, &new_users).await?;
                Ok(pb::BatchCreateUsersResponse {
                    users: rows.into_iter().map(pb::User::from).collect(),
                })
            },
        )
        .await?;
    service.forget_lookups(tenant, &response.users).await;
    Ok(Response::new(response))
}
