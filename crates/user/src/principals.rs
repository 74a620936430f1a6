//! The standing of tenants and users, from this service's own database: the principal
//! check's source here, and the answer of `GetPrincipal` to every other service.

use agentic_platform::db::Pool;
use agentic_platform::error::Result;
use agentic_platform::principal::{PrincipalSource, Standing, Standings};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::model::{TenantRow, UserRow};
use crate::store;

/// Standings read from the database.
pub struct UserPrincipals {
    pool: Pool,
}

impl UserPrincipals {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

/// What a tenant row (and a user row, if one was asked for) say about calling.
pub(crate) fn standings(tenant: Option<&TenantRow>, user: Option<Option<&UserRow>>) -> Standings {
    let tenant = match tenant {
        Some(row) if row.is_active() => Standing::Active,
        Some(_) => Standing::Suspended,
        None => Standing::Missing,
    };
    let user = match user {
        None => Standing::Unspecified,
        Some(Some(row)) if row.is_active() => Standing::Active,
        Some(Some(_)) => Standing::Suspended,
        Some(None) => Standing::Missing,
    };
    Standings {
        tenant: tenant as i32,
        user: user as i32,
    }
}

impl UserPrincipals {
    /// The standing of `tenant` and, when given, its user `user`.
    pub(crate) async fn load(&self, tenant: Uuid, user: Option<Uuid>) -> Result<Standings> {
        let found = self
            .pool
            .read(async |conn| store::find_principal(conn, tenant, user).await)
            .await?;
        let (tenant_row, user_row) = match &found {
            Some((tenant, user)) => (Some(tenant), user.as_ref()),
            None => (None, None),
        };
        Ok(standings(tenant_row, user.map(|_| user_row)))
    }
}

impl PrincipalSource for UserPrincipals {
    fn load(&self, tenant: Uuid, user: Option<Uuid>) -> BoxFuture<'_, Result<Standings>> {
        Box::pin(UserPrincipals::load(self, tenant, user))
    }
}
