//! Tenants' rate limit plans: the rules as JSON, one row per tenant with a plan.

use agentic_platform::error::Result;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::tenant_rate_limits;

/// `tenant`'s plan, if it has one.
pub async fn find_rate_limits(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
) -> Result<Option<serde_json::Value>> {
    Ok(tenant_rate_limits::table
        .find(tenant)
        .select(tenant_rate_limits::rules)
        .first(conn)
        .await
        .optional()?)
}

/// Stores `tenant`'s plan; `None` removes it.
pub async fn store_rate_limits(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    rules: Option<&serde_json::Value>,
) -> Result<()> {
    match rules {
        Some(rules) => {
            diesel::insert_into(tenant_rate_limits::table)
                .values((
                    tenant_rate_limits::tenant_id.eq(tenant),
                    tenant_rate_limits::rules.eq(rules),
                ))
                .on_conflict(tenant_rate_limits::tenant_id)
                .do_update()
                .set((
                    tenant_rate_limits::rules.eq(rules),
                    tenant_rate_limits::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
        }
        None => {
            diesel::delete(tenant_rate_limits::table.find(tenant))
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// Every tenant's plan.
pub async fn all_rate_limits(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(Uuid, serde_json::Value)>> {
    Ok(tenant_rate_limits::table
        .select((tenant_rate_limits::tenant_id, tenant_rate_limits::rules))
        .load(conn)
        .await?)
}
