//! The `agentic.user.v1.UserService` implementation: one module per resource (`tenants`,
//! `users`) and sign-in (`sign_in`); this file holds what they share and the tonic trait,
//! which hands each RPC to its module.

mod principals;
mod rate_limits;
mod sign_in;
mod tenants;
mod users;

use std::sync::Arc;

use agentic_platform::auth::Tokens;
use agentic_platform::cache::{Cache, CacheKind, ScopedKey};
use agentic_platform::db::Pool;
use agentic_platform::idempotency::RequestIds;
use agentic_platform::paging::PageTokens;
use agentic_platform::principal::PrincipalCache;
use agentic_platform::ratelimit::RateLimiter;
use agentic_platform::service::Context;
use agentic_proto::user::v1 as pb;
use agentic_proto::user::v1::user_service_server::UserService as Api;
use tonic::{Request, Response, Status};

pub use self::rate_limits::PlanBoard;
use crate::kinds;
use crate::principals::UserPrincipals;

/// Where the service keeps idempotent creates' request ids.
pub const REQUEST_IDS: &str = "users.request_ids";

pub struct UserService {
    pool: Pool,
    cache: Cache,
    tokens: Arc<Tokens>,
    pages: PageTokens,
    kinds: Kinds,
    /// Standings from this database, for GetPrincipal.
    standings: UserPrincipals,
    /// Every service's cached standings, dropped here when tenants and users change.
    principals: PrincipalCache,
    /// Idempotent creates' request ids.
    request_ids: RequestIds,
    /// Tenants' rate limit plans, announced to every replica.
    plans: PlanBoard,
    /// Counts failed sign-ins per account (`None` where rate limits are off).
    limiter: Option<RateLimiter>,
}

/// Cached kinds: users by id, by email and by username, and tenants by id.
struct Kinds {
    user: CacheKind,
    user_by_email: CacheKind,
    user_by_username: CacheKind,
    tenant: CacheKind,
}

/// A cache entry a write made stale.
type StaleKey<'k> = (&'k CacheKind, ScopedKey<String>);

impl UserService {
    pub fn new(context: &Context, plans: PlanBoard) -> Self {
        let cache = &context.cache;
        Self {
            pool: context.pool.clone(),
            cache: context.cache.clone(),
            tokens: context.tokens.clone(),
            pages: context.pages.clone(),
            standings: UserPrincipals::new(context.pool.clone()),
            principals: context.principals.clone(),
            request_ids: context.request_ids(REQUEST_IDS),
            plans,
            limiter: context.limiter.clone(),
            kinds: Kinds {
                user: cache.kind(&kinds::USER),
                user_by_email: cache.kind(&kinds::USER_BY_EMAIL),
                user_by_username: cache.kind(&kinds::USER_BY_USERNAME),
                tenant: cache.kind(&kinds::TENANT),
            },
        }
    }
}

#[tonic::async_trait]
impl Api for UserService {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        tenants::create(self, request).await
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        tenants::get(self, request).await
    }

    async fn update_tenant(
        &self,
        request: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::UpdateTenantResponse>, Status> {
        tenants::update(self, request).await
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        tenants::list(self, request).await
    }

    async fn get_principal(
        &self,
        request: Request<pb::GetPrincipalRequest>,
    ) -> Result<Response<pb::GetPrincipalResponse>, Status> {
        principals::get(self, request).await
    }

    async fn set_tenant_rate_limits(
        &self,
        request: Request<pb::SetTenantRateLimitsRequest>,
    ) -> Result<Response<pb::SetTenantRateLimitsResponse>, Status> {
        rate_limits::set(self, request).await
    }

    async fn get_tenant_rate_limits(
        &self,
        request: Request<pb::GetTenantRateLimitsRequest>,
    ) -> Result<Response<pb::GetTenantRateLimitsResponse>, Status> {
        rate_limits::get(self, request).await
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        users::create(self, request).await
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        users::get(self, request).await
    }

    async fn lookup_user(
        &self,
        request: Request<pb::LookupUserRequest>,
    ) -> Result<Response<pb::LookupUserResponse>, Status> {
        users::lookup(self, request).await
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        users::update(self, request).await
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        users::delete(self, request).await
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        users::list(self, request).await
    }

    async fn batch_create_users(
        &self,
        request: Request<pb::BatchCreateUsersRequest>,
    ) -> Result<Response<pb::BatchCreateUsersResponse>, Status> {
        users::batch_create(self, request).await
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        sign_in::authenticate(self, request).await
    }
}
