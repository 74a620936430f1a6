//! Principals: a token is honoured only while its tenant exists and is active, and, for
//! a user's token, while that user exists and is active. Signature and expiry are not
//! enough: a suspended tenant or a deleted user is locked out of every service at once.
//!
//! The standing of each (tenant, user) is cached in every process in a cache shared by
//! all services ([`PrincipalCache`]: its own Redis namespace and pub/sub channel, so the
//! user service's invalidations reach every replica of every service), and loaded on a
//! miss from a [`PrincipalSource`]: the user service's own database there, a call to the
//! user service everywhere else ([`RemotePrincipals`]). A source that fails leaves an
//! uncached principal `UNAVAILABLE` (fail closed); a cached standing is served.
//!
//! Platform tokens are not checked (they belong to no tenant), and neither is the user of
//! a token whose subject is no user id (a service's or an operator's token): only its
//! tenant is.

use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::auth::{Caller, Tokens, roles};
use crate::cache::{Cache, CacheKind, KindSpec, ScopedKey};
use crate::client::{CallError, ClientArgs, Credentials, Dependency, Rpc};
use crate::config::CacheArgs;
use crate::error::{Error, Result};

pub use agentic_proto::user::v1::{GetPrincipalResponse as Standings, Standing};

/// The principal check's settings, shared by every service.
#[derive(Debug, Clone, Args)]
pub struct PrincipalArgs {
    /// Refuse tokens whose tenant or user no longer exists or is suspended. Turn off only
    /// where the user service is out of reach on purpose (a load test of one service).
    #[arg(long, env = "PRINCIPAL_CHECK", default_value_t = true, action = ArgAction::Set)]
    pub principal_check: bool,

    /// How long a principal's standing is cached when no change is announced (changes
    /// are announced to every replica at once through Redis).
    #[arg(long, env = "PRINCIPAL_CACHE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub principal_cache_ttl: Duration,
}

/// Where services that check principals find the user service.
#[derive(Debug, Clone, Args)]
pub struct UserServiceArgs {
    /// The user service: one URL, several comma-separated, or a DNS name of many pods.
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub user_service_url: String,
    /// How calls to other services behave.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Where standings come from on a cache miss.
pub trait PrincipalSource: Send + Sync + 'static {
    /// The standing of `tenant` and, when given, of its user `user`.
    fn load(&self, tenant: Uuid, user: Option<Uuid>) -> BoxFuture<'_, Result<Standings>>;
}

/// The cache namespace every service shares for standings.
const NAMESPACE: &str = "principals";
/// Tenants' standing, by tenant id.
const TENANT: KindSpec = KindSpec::new("tenant_standing").ttl_of("principal");
/// Users' standing, by tenant and user id (a tenant's standing is kept apart, so a check
/// of a token of no user is one lookup, and a tenant's change drops one entry).
const USER: KindSpec = KindSpec::new("user_standing").ttl_of("principal");

/// Standings, cached in a namespace every service shares; cheap to clone.
#[derive(Clone)]
pub struct PrincipalCache {
    cache: Cache,
    tenants: CacheKind,
    users: CacheKind,
}

impl PrincipalCache {
    /// The shared cache on `cache`'s Redis. It caches even where `CACHE_ENABLED=false`
    /// turns the service's own cache off: a check per request must not cost a query.
    pub fn new(cache: &CacheArgs, args: &PrincipalArgs) -> Self {
        let mut cache = cache.clone();
        cache.cache_enabled = true;
        cache.cache_ttls.insert(
            TENANT.ttl_setting,
            args.principal_cache_ttl.as_secs().max(1),
        );
        let cache = Cache::new(&cache, NAMESPACE);
        Self {
            tenants: cache.kind(&TENANT),
            users: cache.kind(&USER),
            cache,
        }
    }

    /// The standing of `tenant` and, when given and the tenant is active, of its user
    /// `user`: from the cache, else from `source`.
    pub async fn standings(
        &self,
        tenant: Uuid,
        user: Option<Uuid>,
        source: &dyn PrincipalSource,
    ) -> Result<Standings> {
        let mut standings = self
            .cache
            .get_or_load(&self.tenants, tenant, || async {
                source.load(tenant, None).await.map(Some)
            })
            .await?
            .ok_or_else(|| Error::internal("a principal source returned nothing"))?;
        if let (Some(user), Standing::Active) = (user, standings.tenant()) {
            let loaded = self
                .cache
                .get_or_load(&self.users, ScopedKey(tenant, user), || async {
                    source.load(tenant, Some(user)).await.map(Some)
                })
                .await?
                .ok_or_else(|| Error::internal("a principal source returned nothing"))?;
            standings.user = loaded.user;
        }
        Ok(standings)
    }

    /// Drops the standing of `user` of `tenant` in every replica of every service: after
    /// the user was changed or deleted.
    pub async fn forget_user(&self, tenant: Uuid, user: Uuid) {
        self.cache
            .invalidate(&[(&self.users, ScopedKey(tenant, user))])
            .await;
    }

    /// Drops the standing of `tenant` everywhere: after the tenant was created or changed.
    pub async fn forget_tenant(&self, tenant: Uuid) {
        self.cache.invalidate(&[(&self.tenants, tenant)]).await;
    }
}

/// The check every service's server runs after auth.
#[derive(Clone)]
pub struct PrincipalCheck {
    cache: PrincipalCache,
    source: Arc<dyn PrincipalSource>,
}

impl PrincipalCheck {
    /// A check of standings from `source`, cached in `cache`.
    pub fn new(cache: PrincipalCache, source: Arc<dyn PrincipalSource>) -> Self {
        Self { cache, source }
    }

    /// Whether `caller` needs checking at all (platform tokens do not).
    pub fn applies_to(caller: &Caller) -> bool {
        caller.role != roles::PLATFORM && caller.tenant.is_some()
    }

    /// Fails unless `caller`'s tenant, and its user if the token names one, may call:
    /// `UNAUTHENTICATED` for one that no longer exists, `PERMISSION_DENIED` for one that
    /// is suspended or not active, `UNAVAILABLE` when its standing is unknown and the
    /// source does not answer.
    pub async fn check(&self, caller: &Caller) -> Result<()> {
        let Some(tenant) = caller.tenant.filter(|_| Self::applies_to(caller)) else {
            return Ok(());
        };
        let user = Uuid::try_parse(&caller.subject).ok();
        let standings = self
            .cache
            .standings(tenant, user, self.source.as_ref())
            .await?;
        verdict(&standings)
    }
}

/// What a standing means for a call.
fn verdict(standings: &Standings) -> Result<()> {
    match standings.tenant() {
        Standing::Active => {}
        Standing::Suspended => {
            return Err(Error::PermissionDenied("the token's tenant is suspended"));
        }
        Standing::Missing | Standing::Unspecified => {
            return Err(Error::Unauthenticated(
                "the token's tenant no longer exists",
            ));
        }
    }
    match standings.user() {
        Standing::Active | Standing::Unspecified => Ok(()),
        Standing::Suspended => Err(Error::PermissionDenied("the token's user is not active")),
        Standing::Missing => Err(Error::Unauthenticated("the token's user no longer exists")),
    }
}

/// Standings from the user service's `GetPrincipal`, asked with a platform token of this
/// service's own.
pub struct RemotePrincipals {
    users: Dependency,
    tokens: Arc<Tokens>,
    /// The subject of this service's tokens (`<service>-principals`).
    subject: String,
}

impl RemotePrincipals {
    /// Standings from the user service at `args.user_service_url`, for the service `name`.
    pub fn new(name: &str, args: &UserServiceArgs, tokens: Arc<Tokens>) -> Result<Self> {
        Ok(Self {
            users: Dependency::new("user", &args.user_service_url, &args.client)?,
            tokens,
            subject: format!("{name}-principals"),
        })
    }
}

impl PrincipalSource for RemotePrincipals {
    fn load(&self, tenant: Uuid, user: Option<Uuid>) -> BoxFuture<'_, Result<Standings>> {
        use agentic_proto::user::v1::GetPrincipalRequest;
        use agentic_proto::user::v1::user_service_client::UserServiceClient;
        Box::pin(async move {
            // Minted per miss: tokens expire, and misses are rare.
            let credentials =
                Credentials::service(&self.tokens, &self.subject, None, roles::PLATFORM)?;
            let request = GetPrincipalRequest {
                tenant_id: tenant.to_string(),
                user_id: user.map(|user| user.to_string()).unwrap_or_default(),
            };
            self.users
                .call(
                    Rpc::read("agentic.user.v1.UserService", "GetPrincipal"),
                    &credentials,
                    request,
                    |channel, request| async move {
                        UserServiceClient::new(channel).get_principal(request).await
                    },
                )
                .await
                .map_err(|error| match error {
                    // Whatever the user service answered, the principal is unknown here.
                    CallError::Status(status) => {
                        tracing::warn!(code = ?status.code(), "the user service refused a principal check");
                        Error::DependencyUnavailable("user")
                    }
                    other => other.into(),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standings(tenant: Standing, user: Standing) -> Standings {
        Standings {
            tenant: tenant as i32,
            user: user as i32,
        }
    }

    #[test]
    fn each_standing_has_its_code() {
        assert!(verdict(&standings(Standing::Active, Standing::Active)).is_ok());
        assert!(verdict(&standings(Standing::Active, Standing::Unspecified)).is_ok());
        let cases = [
            (Standing::Missing, Standing::Active, "unauthenticated"),
            (Standing::Suspended, Standing::Active, "denied"),
            (Standing::Active, Standing::Missing, "unauthenticated"),
            (Standing::Active, Standing::Suspended, "denied"),
        ];
        for (tenant, user, want) in cases {
            let error = verdict(&standings(tenant, user)).unwrap_err();
            let code = match error {
                Error::Unauthenticated(_) => "unauthenticated",
                Error::PermissionDenied(_) => "denied",
                other => panic!("{other:?}"),
            };
            assert_eq!(code, want, "{tenant:?} {user:?}");
        }
    }

    #[test]
    fn platform_tokens_are_not_checked() {
        let platform = Caller::new("ops".into(), None, roles::PLATFORM.into());
        assert!(!PrincipalCheck::applies_to(&platform));
        let user = Caller::new(
            Uuid::now_v7().to_string(),
            Some(Uuid::now_v7()),
            roles::MEMBER.into(),
        );
        assert!(PrincipalCheck::applies_to(&user));
    }
}
