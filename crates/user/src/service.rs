//! The `agentic.user.v1.UserService` implementation: validation, tenant scoping, caching,
//! and mapping between protobuf and the store.

use std::sync::Arc;

use agentic_platform::auth::{Caller, Tokens};
use agentic_platform::cache::{Cache, CacheKind, ScopedKey};
use agentic_platform::db::Pool;
use agentic_platform::error::{Error, Result};
use agentic_platform::fieldmask::{self, FieldPaths};
use agentic_platform::paging::{self, PageTokens};
use agentic_platform::service::Context;
use agentic_platform::time::to_timestamp;
use agentic_platform::validate::{self, Violations};
use agentic_proto::user::v1 as pb;
use agentic_proto::user::v1::user_service_server::UserService as UserServiceApi;
use chrono::Utc;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::input::{self, MAX_BATCH};
use crate::kinds;
use crate::model::{self, NewTenant, NewUser, USER_FIELDS, UserChanges, UserFilter, UserRow};
use crate::password;
use crate::store::{self, UserKey};

/// Paths an `update_mask` may name.
const UPDATABLE_FIELDS: &[&str] = &["email", "username", "display_name", "role", "status"];

pub struct UserService {
    pool: Pool,
    cache: Cache,
    tokens: Arc<Tokens>,
    pages: PageTokens,
    kinds: Kinds,
}

/// Cached kinds: users by id, by email and by username, and tenants by id.
struct Kinds {
    user: CacheKind,
    user_by_email: CacheKind,
    user_by_username: CacheKind,
    tenant: CacheKind,
}

impl UserService {
    pub fn new(context: &Context) -> Self {
        let cache = &context.cache;
        let kinds = Kinds {
            user: cache.kind(&kinds::USER),
            user_by_email: cache.kind(&kinds::USER_BY_EMAIL),
            user_by_username: cache.kind(&kinds::USER_BY_USERNAME),
            tenant: cache.kind(&kinds::TENANT),
        };
        Self {
            pool: context.pool.clone(),
            cache: context.cache.clone(),
            tokens: context.tokens.clone(),
            pages: context.pages.clone(),
            kinds,
        }
    }

    async fn cached_user(&self, tenant: Uuid, id: Uuid) -> Result<Option<pb::User>> {
        self.cache
            .get_or_load(&self.kinds.user, ScopedKey(tenant, id), || {
                self.pool.read(async |conn| {
                    Ok(store::find_user(conn, tenant, id)
                        .await?
                        .map(pb::User::from))
                })
            })
            .await
    }

    async fn cached_lookup(&self, tenant: Uuid, key: UserKey<'_>) -> Result<Option<pb::User>> {
        let (kind, value) = match key {
            UserKey::Email(email) => (&self.kinds.user_by_email, email),
            UserKey::Username(username) => (&self.kinds.user_by_username, username),
        };
        self.cache
            .get_or_load(kind, ScopedKey(tenant, value), || {
                self.pool.read(async |conn| {
                    Ok(store::find_user_by(conn, tenant, key)
                        .await?
                        .map(pb::User::from))
                })
            })
            .await
    }

    /// The cache entries a user can be read through: by id, by email, by username.
    fn user_keys<'k>(&'k self, user: &UserRow, keys: &mut Vec<(&'k CacheKind, String)>) {
        keys.push((&self.kinds.user, format!("{}:{}", user.tenant_id, user.id)));
        self.lookup_keys(user, keys);
    }

    /// The lookup entries of a user. Lookups may hold a cached "absent" for a user that
    /// now exists, or the user itself.
    fn lookup_keys<'k>(&'k self, user: &UserRow, keys: &mut Vec<(&'k CacheKind, String)>) {
        let tenant = user.tenant_id;
        keys.push((
            &self.kinds.user_by_email,
            format!("{tenant}:{}", user.email),
        ));
        if let Some(username) = &user.username {
            keys.push((&self.kinds.user_by_username, format!("{tenant}:{username}")));
        }
    }

    async fn hash_optional(password: Option<String>) -> Result<Option<String>> {
        match password {
            Some(password) => password::hash(password).await.map(Some),
            None => Ok(None),
        }
    }
}

fn new_user_row(
    tenant: Uuid,
    input: input::NewUserInput,
    password_hash: Option<String>,
) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        email: input.email,
        username: input.username,
        display_name: input.display_name,
        role: input.role.to_owned(),
        status: "active".to_owned(),
        password_hash,
    }
}

#[tonic::async_trait]
impl UserServiceApi for UserService {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        if !Caller::of(&request)?.is_platform() {
            return Err(Error::PermissionDenied("creating tenants needs a platform token").into());
        }
        let message = request.get_ref();
        // Every field is checked before any error returns, so a client fixes them all at once.
        let mut violations = Violations::new();
        let name = violations
            .check(validate::text(
                "name",
                &message.name,
                1,
                input::MAX_NAME_LEN,
            ))
            .unwrap_or_default();
        let slug = violations
            .check(validate::identifier("slug", &message.slug, 3, 63, &['-']))
            .unwrap_or_default();
        violations.into_result()?;

        let tenant = NewTenant {
            id: Uuid::now_v7(),
            name,
            slug,
        };
        let row = self
            .pool
            .run(async |conn| store::insert_tenant(conn, &tenant).await)
            .await?;
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(row.into()),
        }))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = validate::id("id", &request.get_ref().id)?;
        // A tenant sees only itself; anything else is as good as absent.
        if !caller.is_platform() && caller.tenant != Some(id) {
            return Err(Error::NotFound("tenant").into());
        }
        let tenant = self
            .cache
            .get_or_load(&self.kinds.tenant, id, || {
                self.pool
                    .run(async |conn| Ok(store::find_tenant(conn, id).await?.map(pb::Tenant::from)))
            })
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        Ok(Response::new(pb::GetTenantResponse {
            tenant: Some(tenant),
        }))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let tenant = Caller::of(&request)?.admin_tenant()?;
        let mut user_input = input::new_user(request.get_ref()).map_err(Error::from)?;
        let password_hash = Self::hash_optional(user_input.password.take()).await?;
        let new_user = new_user_row(tenant, user_input, password_hash);

        let row = self
            .pool
            .run(async |conn| store::insert_user(conn, &new_user).await)
            .await?;
        let mut stale = Vec::new();
        self.lookup_keys(&row, &mut stale);
        self.cache.invalidate(&stale).await;
        Ok(Response::new(pb::CreateUserResponse {
            user: Some(row.into()),
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let tenant = Caller::of(&request)?.tenant()?;
        let message = request.get_ref();
        let id = validate::id("id", &message.id)?;
        let mask = FieldPaths::parse(message.read_mask.as_ref(), USER_FIELDS, "read_mask")?;
        let mut user = self
            .cached_user(tenant, id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        model::apply_read_mask(&mut user, &mask);
        Ok(Response::new(pb::GetUserResponse { user: Some(user) }))
    }

    async fn lookup_user(
        &self,
        request: Request<pb::LookupUserRequest>,
    ) -> Result<Response<pb::LookupUserResponse>, Status> {
        let tenant = Caller::of(&request)?.tenant()?;
        let user = match &request.get_ref().key {
            Some(pb::lookup_user_request::Key::Email(email)) => {
                let email = input::email("email", email)?;
                self.cached_lookup(tenant, UserKey::Email(&email)).await?
            }
            Some(pb::lookup_user_request::Key::Username(username)) => {
                let username = input::username("username", username)?
                    .ok_or_else(|| Error::invalid("username", "is required"))?;
                self.cached_lookup(tenant, UserKey::Username(&username))
                    .await?
            }
            None => return Err(Error::invalid("key", "set email or username").into()),
        };
        let user = user.ok_or(Error::NotFound("user"))?;
        Ok(Response::new(pb::LookupUserResponse { user: Some(user) }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let tenant = Caller::of(&request)?.admin_tenant()?;
        let message = request.get_ref();
        let user = message
            .user
            .as_ref()
            .ok_or_else(|| Error::invalid("user", "is required"))?;
        let id = validate::id("user.id", &user.id)?;
        let mask = fieldmask::update_mask(message.update_mask.as_ref(), UPDATABLE_FIELDS)?;

        let mut violations = Violations::new();
        let mut changes = UserChanges {
            updated_at: Some(Utc::now()),
            ..UserChanges::default()
        };
        if mask.includes("email") {
            changes.email = violations.check(input::email("user.email", &user.email));
        }
        if mask.includes("username") {
            changes.username = violations.check(input::username("user.username", &user.username));
        }
        if mask.includes("display_name") {
            changes.display_name =
                violations.check(input::display_name("user.display_name", &user.display_name));
        }
        if mask.includes("role") {
            changes.role = violations
                .check(input::role("user.role", user.role, None))
                .map(str::to_owned);
        }
        if mask.includes("status") {
            changes.status = violations
                .check(input::status("user.status", user.status, None))
                .map(str::to_owned);
        }
        violations.into_result()?;

        let (before, after) = self
            .pool
            .run(async |conn| store::update_user(conn, tenant, id, &changes).await)
            .await?
            .ok_or(Error::NotFound("user"))?;
        // The old email and username, and the new ones (which may hold a cached "absent").
        let mut stale = Vec::new();
        self.user_keys(&before, &mut stale);
        self.lookup_keys(&after, &mut stale);
        self.cache.invalidate(&stale).await;
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(after.into()),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let tenant = Caller::of(&request)?.admin_tenant()?;
        let id = validate::id("id", &request.get_ref().id)?;
        let deleted = self
            .pool
            .run(async |conn| store::delete_user(conn, tenant, id).await)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let mut stale = Vec::new();
        self.user_keys(&deleted, &mut stale);
        self.cache.invalidate(&stale).await;
        Ok(Response::new(pb::DeleteUserResponse {}))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let tenant = Caller::of(&request)?.tenant()?;
        let message = request.get_ref();
        let mut violations = Violations::new();
        let page_size = violations
            .check(paging::page_size(message.page_size))
            .unwrap_or_default();
        let status = violations
            .check(input::status("status", message.status, Some("")))
            .unwrap_or_default();
        let role = violations
            .check(input::role("role", message.role, Some("")))
            .unwrap_or_default();
        let mask = violations
            .check(FieldPaths::parse(
                message.read_mask.as_ref(),
                USER_FIELDS,
                "read_mask",
            ))
            .unwrap_or_default();
        violations.into_result()?;

        let filter = UserFilter {
            status: (!status.is_empty()).then_some(status),
            role: (!role.is_empty()).then_some(role),
        };
        let fingerprint = filter.fingerprint(tenant);
        let filter = &filter;
        let (rows, next_page_token) = self
            .pages
            .uuid_page(
                &message.page_token,
                &fingerprint,
                page_size,
                |row: &UserRow| row.id,
                |after, limit| {
                    self.pool.run(async move |conn| {
                        store::list_users(conn, tenant, filter, after, limit).await
                    })
                },
            )
            .await?;
        let users = rows
            .into_iter()
            .map(|row| {
                let mut user = pb::User::from(row);
                model::apply_read_mask(&mut user, &mask);
                user
            })
            .collect();
        Ok(Response::new(pb::ListUsersResponse {
            users,
            next_page_token,
        }))
    }

    async fn batch_create_users(
        &self,
        request: Request<pb::BatchCreateUsersRequest>,
    ) -> Result<Response<pb::BatchCreateUsersResponse>, Status> {
        let tenant = Caller::of(&request)?.admin_tenant()?;
        let requests = &request.get_ref().requests;
        if requests.is_empty() || requests.len() > MAX_BATCH {
            return Err(
                Error::invalid("requests", format!("must hold 1 to {MAX_BATCH} users")).into(),
            );
        }
        let mut violations = Violations::new();
        let mut inputs = Vec::with_capacity(requests.len());
        for (index, item) in requests.iter().enumerate() {
            match input::new_user(item) {
                Ok(valid) => inputs.push(valid),
                Err(bad) => violations.extend(bad.nest(&format!("requests[{index}]."))),
            }
        }
        violations.into_result()?;

        // Hash on the blocking pool in parallel; most imports carry no passwords at all.
        let hashes = futures::future::try_join_all(
            inputs
                .iter_mut()
                .map(|item| Self::hash_optional(item.password.take())),
        )
        .await?;
        let new_users: Vec<NewUser> = inputs
            .into_iter()
            .zip(hashes)
            .map(|(item, hash)| new_user_row(tenant, item, hash))
            .collect();

        let rows = self
            .pool
            .run(async |conn| store::insert_users(conn, &new_users).await)
            .await?;
        let mut stale = Vec::with_capacity(rows.len() * 2);
        for row in &rows {
            self.lookup_keys(row, &mut stale);
        }
        self.cache.invalidate(&stale).await;
        Ok(Response::new(pb::BatchCreateUsersResponse {
            users: rows.into_iter().map(pb::User::from).collect(),
        }))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let message = request.into_inner();
        let mut violations = Violations::new();
        if message.tenant_slug.is_empty() {
            violations.add("tenant_slug", "is required");
        }
        violations.check(validate::visible("tenant_slug", &message.tenant_slug));
        if message.email.is_empty() {
            violations.add("email", "is required");
        }
        violations.check(validate::visible("email", &message.email));
        if message.password.is_empty() {
            violations.add("password", "is required");
        }
        violations.into_result()?;
        // One answer for every failure, so callers cannot probe which part was wrong.
        let denied = || Status::from(Error::Unauthenticated("invalid credentials"));

        let email = message.email.trim().to_lowercase();
        let slug = message.tenant_slug.trim();
        let found = self
            .pool
            .run(
                async |conn| match store::find_tenant_by_slug(conn, slug).await? {
                    Some(tenant) => store::find_credentials(conn, tenant.id, &email).await,
                    None => Ok(None),
                },
            )
            .await?;

        let (user, stored_hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, None),
        };
        let matches = password::verify(message.password, stored_hash).await?;
        let user = match user {
            Some(user) if matches && user.status == "active" => user,
            _ => return Err(denied()),
        };
        let (token, expires) =
            self.tokens
                .issue(&user.id.to_string(), Some(user.tenant_id), &user.role, None)?;
        Ok(Response::new(pb::AuthenticateResponse {
            access_token: token,
            token_type: "Bearer".into(),
            expire_time: Some(to_timestamp(expires)),
            user: Some(user.into()),
        }))
    }
}
